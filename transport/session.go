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
	maxSessions    = 10000
)

var errUnknownSession = errors.New("unknown session")

// sessionManager issues unguessable session ids (crypto/rand, 128+ bits),
// remembers which are live and which ended, and which key opened each, so
// that a terminated, expired, unknown or foreign id gets 404 (mcp-http.md
// section 5; mcp-go's default manager accepts any well-formed id).
type sessionManager struct {
	mu    sync.Mutex
	live  map[string]*sessionState
	ended map[string]time.Time
	onEnd func(string)
	now   func() time.Time
}

type sessionState struct {
	keyID    string
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
	m.live[id] = &sessionState{lastSeen: m.now()}
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

// bind records the key that opened a session; only the first binding counts.
func (m *sessionManager) bind(id, keyID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.live[id]; ok && s.keyID == "" {
		s.keyID = keyID
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

// sweepLocked ends idle sessions and forgets old tombstones, keeping memory
// bounded however many clients come and go.
func (m *sessionManager) sweepLocked() {
	now := m.now()
	for id, s := range m.live {
		if now.Sub(s.lastSeen) > sessionIdleTTL {
			m.endLocked(id)
		}
	}
	for id, t := range m.ended {
		if now.Sub(t) > sessionIdleTTL || len(m.ended) > maxSessions {
			delete(m.ended, id)
		}
	}
	for id := range m.live {
		if len(m.live) < maxSessions {
			break
		}
		m.endLocked(id)
	}
}
