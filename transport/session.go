package transport

import (
	"container/list"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/server"
)

const (
	sessionPrefix = "kgs_"
	// sessionIdleTTL ends a session nobody has used for this long. An agent
	// works in bursts of calls seconds or minutes apart, so half an hour of
	// silence means the conversation is over; a client that comes back later
	// gets 404 and initializes again, as the spec has it. This is also the
	// longest an abandoned session's memory is held. An open GET stream
	// counts as use.
	sessionIdleTTL = 30 * time.Minute
	// unboundTTL ends a session whose initialize answer never reached the
	// client (it disconnected, or the answer went out as SSE without the id).
	unboundTTL = time.Minute
	// maxSessionsPerKey bounds what one key can hold open: past it, that
	// key's least recently used session ends, never another key's.
	maxSessionsPerKey = 64
	// maxLiveSessions bounds all sessions together, however many keys open
	// them. Each live session costs about 10.5 KB of heap, most of it
	// mcp-go's, and the collector lets the heap grow to 5x the live part:
	// with 200 keys flooding, 1,000 sessions took the server to 89 MB where
	// 10,000 took it to 258 MB (bench/README.md section 10). A thousand
	// sessions idle under 30 minutes is far more than the people and agents
	// one keygate serves need. Past it, one of the keys holding the most
	// sessions loses its least recently used, so a key with a few sessions
	// keeps them unless every key has as few, and the loser's client gets
	// 404 and initializes again.
	maxLiveSessions = 1_000
	// maxStreamsPerKey bounds the GET (SSE) streams one key holds open; each
	// is a connection and two goroutines until the client goes away.
	maxStreamsPerKey = 16
	// maxStreams bounds GET streams over all keys. A stream is optional:
	// a client without one still gets every answer on its POSTs.
	maxStreams = 256
	// sweepEvery spaces out the background sweep that ends expired sessions
	// when no request comes to end them.
	sweepEvery = time.Minute
	// streamRetryAfter is the Retry-After, in seconds, of a refused stream.
	streamRetryAfter = "30"
)

// sessionLimits are the bounds above; tests shrink them.
type sessionLimits struct {
	perKey, live, streamsPerKey, streams int
	idleTTL, unboundTTL                  time.Duration
}

var defaultSessionLimits = sessionLimits{
	perKey: maxSessionsPerKey, live: maxLiveSessions,
	streamsPerKey: maxStreamsPerKey, streams: maxStreams,
	idleTTL: sessionIdleTTL, unboundTTL: unboundTTL,
}

var (
	errUnknownSession = errors.New("unknown session")
	// errKeyStreams and errAllStreams refuse a GET stream past a cap.
	errKeyStreams = errors.New("too many streams for this key")
	errAllStreams = errors.New("too many streams")
)

// sessionManager issues unguessable session ids (crypto/rand, 128+ bits),
// remembers which are live and which key opened each, so that an ended,
// expired, unknown or foreign id gets 404 (mcp-go's default manager
// accepts any well-formed id), and bounds what callers can make keygate
// hold: sessions per key and overall, GET streams per session, per key
// and overall. Every session that ends, for whatever reason, is reported
// to onEnd, outside the lock, so that mcp-go's state for it is freed.
type sessionManager struct {
	mu      sync.Mutex
	limits  sessionLimits
	now     func() time.Time
	onEnd   func(id string)
	live    map[string]*session
	byIdle  list.List // every live session, least recently seen first
	pending list.List // sessions whose initialize answer is not delivered, oldest first
	keys    map[string]*keySessions
	byCount map[int]map[*keySessions]struct{} // keys by how many sessions they hold
	streams int
	unkeyed *requestSessions
}

type session struct {
	id                string
	version           string // the protocol version its initialize negotiated
	key               *keySessions
	created, lastSeen time.Time
	idleElem, keyElem *list.Element
	pendingElem       *list.Element // nil once the answer is delivered
	stream            *stream       // the open GET stream, if any
}

// keySessions are the sessions one key holds, least recently seen first.
type keySessions struct {
	id       string
	sessions list.List
	streams  int
}

// stream is an open GET stream; cancel ends the request serving it.
type stream struct {
	sess   *session
	cancel context.CancelFunc
}

func newSessionManager(onEnd func(string)) *sessionManager {
	m := &sessionManager{
		limits: defaultSessionLimits, now: time.Now, onEnd: onEnd,
		live: map[string]*session{}, keys: map[string]*keySessions{}, byCount: map[int]map[*keySessions]struct{}{},
	}
	m.unkeyed = &requestSessions{m: m}
	return m
}

// requestSessions is the server.SessionIdManager mcp-go uses for one
// request. It knows the key that sent the request, so a new session counts
// against that key from the moment its id exists, and it remembers the id
// it issued.
type requestSessions struct {
	m       *sessionManager
	keyID   string
	version string // what the request's initialize negotiates
	issued  string
}

type requestSessionsKey struct{}

// ResolveSessionIdManager implements server.SessionIdManagerResolver.
// Requests that did not come through bindSession, and mcp-go's own calls
// without a request, get a manager that only validates and terminates.
func (m *sessionManager) ResolveSessionIdManager(r *http.Request) server.SessionIdManager {
	if r != nil {
		if rs, ok := r.Context().Value(requestSessionsKey{}).(*requestSessions); ok {
			return rs
		}
	}
	return m.unkeyed
}

// Generate implements server.SessionIdManager.
func (rs *requestSessions) Generate() string {
	if rs == rs.m.unkeyed {
		return "" // no key to charge a session to: mcp-go answers without one
	}
	rs.issued = rs.m.open(rs.keyID, rs.version)
	return rs.issued
}

// Validate implements server.SessionIdManager. An ended id is unknown
// (mcp-go answers 404 either way), so no tombstones pile up. A request
// that did not pass bindSession (which checks the id is the caller's) is
// told every id is unknown: a 2026-07-28 request skips bindSession, and
// should mcp-go ever take one for an older request, it must not reach a
// session it was never checked against.
func (rs *requestSessions) Validate(id string) (bool, error) {
	if rs == rs.m.unkeyed || !strings.HasPrefix(id, sessionPrefix) {
		return false, errUnknownSession
	}
	if rs.m.use(id, "", false) == nil {
		return false, errUnknownSession
	}
	return false, nil
}

// Terminate implements server.SessionIdManager.
func (rs *requestSessions) Terminate(id string) (bool, error) {
	rs.m.end(id)
	return false, nil
}

// open starts a session for keyID speaking protocol version, making room
// under both caps.
func (m *sessionManager) open(keyID, version string) string {
	id := sessionPrefix + rand.Text()
	m.mu.Lock()
	now := m.now()
	ended := m.expireLocked(now)
	k := m.keys[keyID]
	if k == nil {
		k = &keySessions{id: keyID}
		m.keys[keyID] = k
	}
	s := &session{id: id, version: version, key: k, created: now, lastSeen: now}
	s.idleElem = m.byIdle.PushBack(s)
	s.keyElem = k.sessions.PushBack(s)
	s.pendingElem = m.pending.PushBack(s)
	m.live[id] = s
	m.recountLocked(k, k.sessions.Len()-1)
	if k.sessions.Len() > m.limits.perKey {
		ended = append(ended, m.endLocked(k.sessions.Front().Value.(*session)))
	}
	if len(m.live) > m.limits.live {
		if victim := m.heaviestLRULocked(s); victim != nil {
			ended = append(ended, m.endLocked(victim))
		}
	}
	m.mu.Unlock()
	m.notify(ended)
	return id
}

// heaviestLRULocked picks the least recently used session of one of the
// keys holding the most sessions, never spare (the session being opened).
func (m *sessionManager) heaviestLRULocked(spare *session) *session {
	for n := m.limits.perKey + 1; n > 0; n-- {
		for k := range m.byCount[n] {
			if lru := k.sessions.Front().Value.(*session); lru != spare {
				return lru
			}
		}
	}
	return nil
}

// recountLocked moves k to the bucket of its current session count.
func (m *sessionManager) recountLocked(k *keySessions, was int) {
	if b := m.byCount[was]; b != nil {
		delete(b, k)
	}
	n := k.sessions.Len()
	if n == 0 {
		delete(m.keys, k.id)
		return
	}
	if m.byCount[n] == nil {
		m.byCount[n] = map[*keySessions]struct{}{}
	}
	m.byCount[n][k] = struct{}{}
}

// use returns the live session id, marking it used, or nil when it is
// unknown, ended, expired (then it ends now) or, with keyID set, not that
// key's. It is what every request naming a session goes through.
func (m *sessionManager) use(id, keyID string, mustOwn bool) *session {
	m.mu.Lock()
	now := m.now()
	s := m.live[id]
	var ended []string
	switch {
	case s == nil:
	case m.expiredLocked(s, now):
		ended = append(ended, m.endLocked(s))
		s = nil
	case mustOwn && s.key.id != keyID:
		s = nil
	default:
		m.touchLocked(s, now)
	}
	m.mu.Unlock()
	m.notify(ended)
	return s
}

func (m *sessionManager) expiredLocked(s *session, now time.Time) bool {
	return (s.stream == nil && now.Sub(s.lastSeen) > m.limits.idleTTL) ||
		(s.pendingElem != nil && now.Sub(s.created) > m.limits.unboundTTL)
}

func (m *sessionManager) touchLocked(s *session, now time.Time) {
	s.lastSeen = now
	m.byIdle.MoveToBack(s.idleElem)
	s.key.sessions.MoveToBack(s.keyElem)
}

// end ends a live session; an unknown id is a no-op.
func (m *sessionManager) end(id string) {
	m.mu.Lock()
	var ended []string
	if s := m.live[id]; s != nil {
		ended = append(ended, m.endLocked(s))
	}
	m.mu.Unlock()
	m.notify(ended)
}

// endLocked forgets s and cancels its stream. The caller reports the
// returned id with notify once the lock is released.
func (m *sessionManager) endLocked(s *session) string {
	delete(m.live, s.id)
	m.byIdle.Remove(s.idleElem)
	if s.pendingElem != nil {
		m.pending.Remove(s.pendingElem)
		s.pendingElem = nil
	}
	if s.stream != nil {
		s.stream.cancel()
		m.dropStreamLocked(s)
	}
	k := s.key
	k.sessions.Remove(s.keyElem)
	m.recountLocked(k, k.sessions.Len()+1)
	return s.id
}

func (m *sessionManager) notify(ended []string) {
	if m.onEnd == nil {
		return
	}
	for _, id := range ended {
		m.onEnd(id)
	}
}

// expireLocked ends sessions whose initialize answer was never delivered
// in time, then idle ones. Both lists are in age order, so it costs only
// what it ends. A session with an open stream is in use, not idle.
func (m *sessionManager) expireLocked(now time.Time) []string {
	var ended []string
	for e := m.pending.Front(); e != nil && now.Sub(e.Value.(*session).created) > m.limits.unboundTTL; e = m.pending.Front() {
		ended = append(ended, m.endLocked(e.Value.(*session)))
	}
	for e := m.byIdle.Front(); e != nil && now.Sub(e.Value.(*session).lastSeen) > m.limits.idleTTL; e = m.byIdle.Front() {
		if s := e.Value.(*session); s.stream != nil {
			m.touchLocked(s, now)
		} else {
			ended = append(ended, m.endLocked(s))
		}
	}
	return ended
}

// sweep ends expired sessions. Requests end them too as they come; this
// frees them when none do.
func (m *sessionManager) sweep() {
	m.mu.Lock()
	ended := m.expireLocked(m.now())
	m.mu.Unlock()
	m.notify(ended)
}

// sweepPeriodically runs sweep every interval until ctx is done.
func (m *sessionManager) sweepPeriodically(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.sweep()
		}
	}
}

// settle is told, after mcp-go has answered an initialize, whether the id
// it issued reached the client. It reports false when the session ended
// while its initialize ran: mcp-go registered it afterwards, so its state
// must be freed again.
func (m *sessionManager) settle(id string, delivered bool) (live bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.live[id]
	if s == nil {
		return false
	}
	if delivered && s.pendingElem != nil {
		m.pending.Remove(s.pendingElem)
		s.pendingElem = nil
	}
	return true
}

// ownedBy reports whether id may be used by keyID. Unknown and ended ids
// pass here so that mcp-go gives them its own 404.
func (m *sessionManager) ownedBy(id, keyID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.live[id]
	return !ok || s.key.id == keyID
}

// versionOf is the protocol version of id, a live session of keyID, marking
// it used; live is false for any other id.
func (m *sessionManager) versionOf(id, keyID string) (version string, live bool) {
	s := m.use(id, keyID, true)
	if s == nil {
		return "", false
	}
	return s.version, true
}

// liveOwnedBy reports whether id is a live session opened by keyID: what a
// DELETE needs.
func (m *sessionManager) liveOwnedBy(id, keyID string) bool {
	return m.use(id, keyID, true) != nil
}

// openStream records a GET stream on session id for keyID; cancel ends the
// request that serves it. A session has one stream: a second replaces the
// first, which is cancelled, so a client reconnecting before keygate has
// noticed its old connection died is served at once. Past the per-key or
// overall cap the answer is errKeyStreams or errAllStreams.
func (m *sessionManager) openStream(id, keyID string, cancel context.CancelFunc) (*stream, error) {
	m.mu.Lock()
	now := m.now()
	s := m.live[id]
	var ended []string
	var err error
	switch {
	case s == nil || s.key.id != keyID:
		err = errUnknownSession
	case m.expiredLocked(s, now):
		ended = append(ended, m.endLocked(s))
		err = errUnknownSession
	case s.stream != nil:
		s.stream.cancel() // replaced: the count stays as it is
	case s.key.streams >= m.limits.streamsPerKey:
		err = errKeyStreams
	case m.streams >= m.limits.streams:
		err = errAllStreams
	default:
		s.key.streams++
		m.streams++
	}
	var st *stream
	if err == nil {
		st = &stream{sess: s, cancel: cancel}
		s.stream = st
		m.touchLocked(s, now)
	}
	m.mu.Unlock()
	m.notify(ended)
	return st, err
}

// closeStream releases st when the request serving it returns. A stream
// already replaced, or whose session ended, was released then.
func (m *sessionManager) closeStream(st *stream) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := st.sess; s.stream == st {
		m.dropStreamLocked(s)
		m.touchLocked(s, m.now())
	}
}

func (m *sessionManager) dropStreamLocked(s *session) {
	s.stream = nil
	s.key.streams--
	m.streams--
}

// counts reports the live sessions and open streams, for tests.
func (m *sessionManager) counts() (sessions, streams int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.live), m.streams
}

// streamRefusal is the answer to a GET stream refused by openStream.
func (m *sessionManager) streamRefusal(err error) (status int, msg string) {
	switch {
	case errors.Is(err, errKeyStreams):
		return http.StatusTooManyRequests, fmt.Sprintf("too many open streams: this key already holds %d GET streams, the most it may; close one or DELETE its session, then retry", m.limits.streamsPerKey)
	case errors.Is(err, errAllStreams):
		return http.StatusServiceUnavailable, fmt.Sprintf("too many open streams: keygate already serves %d GET streams, the most it holds at once; retry later", m.limits.streams)
	default:
		return http.StatusNotFound, "session not found"
	}
}
