package transport

import (
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"time"
)

const (
	sessionPrefix  = "kgs_"
	sessionIdleTTL = 24 * time.Hour
	// maxSessionsPerKey bounds what one key can hold open: past it, that
	// key's least recently used session ends, never another key's.
	maxSessionsPerKey = 64
	// unboundTTL ends a session whose initialize never completed.
	unboundTTL = time.Minute
	// sweepEvery spaces out the idle sweep, which walks every session.
	sweepEvery = time.Minute
)

var errUnknownSession = errors.New("unknown session")

// sessionManager issues unguessable session ids (crypto/rand, 128+ bits),
// remembers which are live and which ended, and which key opened each, so
// that a terminated, expired, unknown or foreign id gets 404 (mcp-http.md
// section 5; mcp-go's default manager accepts any well-formed id).
type sessionManager struct {
	mu        sync.Mutex
	live      map[string]*sessionState
	ended     map[string]time.Time
	onEnd     func(string)
	now       func() time.Time
	lastSweep time.Time
}

type sessionState struct {
	keyID    string
	created  time.Time
	lastSeen time.Time
}

func newSessionManager(onEnd func(string)) *sessionManager {
	return &sessionManager{live: map[string]*sessionState{}, ended: map[string]time.Time{}, onEnd: onEnd, now: time.Now}
}

// Generate implements server.SessionIdManager.
func (m *sessionManager) Generate() string {
	id := sessionPrefix + rand.Text()
	m.mu.Lock()
	m.sweepLocked()
	now := m.now()
	m.live[id] = &sessionState{created: now, lastSeen: now}
	m.mu.Unlock()
	return id
}

// Validate implements server.SessionIdManager.
func (m *sessionManager) Validate(id string) (bool, error) {
	if !strings.HasPrefix(id, sessionPrefix) {
		return false, errUnknownSession
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.ended[id]; ok {
		return true, nil
	}
	s, ok := m.live[id]
	if !ok {
		return false, errUnknownSession
	}
	s.lastSeen = m.now()
	return false, nil
}

// Terminate implements server.SessionIdManager.
func (m *sessionManager) Terminate(id string) (bool, error) {
	m.mu.Lock()
	_, ok := m.live[id]
	if ok {
		m.endLocked(id)
	}
	m.mu.Unlock()
	return false, nil
}

func (m *sessionManager) endLocked(id string) {
	delete(m.live, id)
	m.ended[id] = m.now()
	if m.onEnd != nil {
		go m.onEnd(id)
	}
}

// bind records the key that opened a session; only the first binding
// counts. A key over its share of sessions loses its least recently used.
func (m *sessionManager) bind(id, keyID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.live[id]
	if !ok || s.keyID != "" {
		return
	}
	s.keyID = keyID
	var oldest string
	n := 0
	for sid, st := range m.live {
		if st.keyID != keyID {
			continue
		}
		n++
		if oldest == "" || st.lastSeen.Before(m.live[oldest].lastSeen) {
			oldest = sid
		}
	}
	if n > maxSessionsPerKey {
		m.endLocked(oldest)
	}
}

// ownedBy reports whether id may be used by keyID. Unknown and ended ids
// pass here so that mcp-go gives them its own 404.
func (m *sessionManager) ownedBy(id, keyID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.live[id]
	return !ok || s.keyID == "" || s.keyID == keyID
}

// liveOwnedBy reports whether id is a live session opened by keyID: what a
// GET stream or a DELETE needs.
func (m *sessionManager) liveOwnedBy(id, keyID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.live[id]
	return ok && s.keyID == keyID
}

// sweepLocked ends idle sessions, sessions whose initialize never finished,
// and forgets old tombstones, keeping memory bounded however many clients
// come and go. It runs at most once a minute.
func (m *sessionManager) sweepLocked() {
	now := m.now()
	if now.Sub(m.lastSweep) < sweepEvery {
		return
	}
	m.lastSweep = now
	for id, s := range m.live {
		if now.Sub(s.lastSeen) > sessionIdleTTL || (s.keyID == "" && now.Sub(s.created) > unboundTTL) {
			m.endLocked(id)
		}
	}
	for id, t := range m.ended {
		if now.Sub(t) > sessionIdleTTL {
			delete(m.ended, id)
		}
	}
}
