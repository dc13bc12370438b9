package transport

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/auth"
)

// TestSessionsPerKeyAreCapped opens more sessions with one key than it may
// hold: that key's oldest ends, another key's session does not.
func TestSessionsPerKeyAreCapped(t *testing.T) {
	h, _ := newTestHandler(t)
	open := func(tok string) string {
		t.Helper()
		rec := do(t, h, http.MethodPost, map[string]string{"Authorization": "Bearer " + tok}, initialize)
		sid := rec.Header().Get("Mcp-Session-Id")
		if rec.Code != http.StatusOK || sid == "" {
			t.Fatalf("initialize: %d", rec.Code)
		}
		return sid
	}
	list := `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`
	status := func(tok, sid string) int {
		return do(t, h, http.MethodPost, map[string]string{"Authorization": "Bearer " + tok, "Mcp-Session-Id": sid}, list).Code
	}
	victim := open("reader")
	first := open("admin")
	for range maxSessionsPerKey {
		open("admin")
	}
	if got := status("admin", first); got != http.StatusNotFound {
		t.Errorf("the key's oldest session survived past the cap: %d", got)
	}
	if got := status("reader", victim); got != http.StatusOK {
		t.Errorf("another key's session was ended: %d", got)
	}
}

// TestShedsLoadPastTheInflightLimit fills every slot and checks the next
// POST gets 503 with Retry-After instead of waiting.
func TestShedsLoadPastTheInflightLimit(t *testing.T) {
	s := server.NewMCPServer("t", "1")
	h, hd := newHTTPHandler(s, HTTPConfig{Verifier: tokenTable{"admin": {KeyID: "admin"}}, Logger: slog.New(slog.DiscardHandler)}, nil)
	for range maxInflight {
		h.inflight <- struct{}{}
	}
	rec := do(t, hd, http.MethodPost, map[string]string{"Authorization": "Bearer admin"}, initialize)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("with every slot taken: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	<-h.inflight
	if rec := do(t, hd, http.MethodPost, map[string]string{"Authorization": "Bearer admin"}, initialize); rec.Code != http.StatusOK {
		t.Errorf("with a slot free: %d", rec.Code)
	}
}

// One key cannot hold every POST slot with subscriptions/listen requests,
// which stay open as long as their client: past its share it gets 429, and
// another key is still served.
func TestListensPerKeyAreBounded(t *testing.T) {
	s := server.NewMCPServer("t", "1")
	h, hd := newHTTPHandler(s, HTTPConfig{Verifier: tokenTable{"a": {KeyID: "a"}, "b": {KeyID: "b"}}, Logger: slog.New(slog.DiscardHandler)}, nil)
	for range maxListensPerKey {
		if !h.takeListen("a") {
			t.Fatal("a listen within the key's share was refused")
		}
	}
	listen := `{"jsonrpc":"2.0","id":9,"method":"subscriptions/listen","params":{}}`
	rec := do(t, hd, http.MethodPost, map[string]string{"Authorization": "Bearer a"}, listen)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "too many open subscriptions") {
		t.Errorf("key a past its share: %d %q", rec.Code, rec.Body.String())
	}
	if rec := do(t, hd, http.MethodPost, map[string]string{"Authorization": "Bearer b"}, initialize); rec.Code != http.StatusOK {
		t.Errorf("key b while a holds its share: %d", rec.Code)
	}
	h.releaseListen("a")
	if !h.takeListen("a") {
		t.Error("a listen was refused after one was released")
	}
}

// sessionsFixture is keygate's HTTP handler over an mcp-go server whose
// session hooks show which sessions mcp-go holds. mcp-go unregisters a
// session in the same step that frees the rest of its per-session state
// (docs/http-sessions.md), so a session missing from held has left
// nothing behind in mcp-go.
type sessionsFixture struct {
	h     *httpHandler
	mux   http.Handler
	mcp   *server.MCPServer
	clock *settableClock
	ended chan string // OnSessionEnd, in order

	mu   sync.Mutex
	held map[string]bool
}

// newSessionsFixture serves keys a to e. configure, if set, may add
// hooks before the server is built.
func newSessionsFixture(t *testing.T, configure func(f *sessionsFixture, hooks *server.Hooks)) *sessionsFixture {
	t.Helper()
	f := &sessionsFixture{held: map[string]bool{}, clock: &settableClock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}, ended: make(chan string, 1024)}
	hooks := &server.Hooks{}
	hooks.AddOnRegisterSession(func(_ context.Context, s server.ClientSession) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.held[s.SessionID()] = true
	})
	hooks.AddOnUnregisterSession(func(_ context.Context, s server.ClientSession) {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.held, s.SessionID())
	})
	if configure != nil {
		configure(f, hooks)
	}
	f.mcp = server.NewMCPServer("t", "1", server.WithHooks(hooks), server.WithToolCapabilities(false))
	keys := tokenTable{}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		keys[k] = auth.Principal{KeyID: k, Scopes: auth.Scopes{{Action: auth.Admin}}}
	}
	f.h, f.mux = newHTTPHandler(f.mcp, HTTPConfig{
		Verifier:     keys,
		Logger:       slog.New(slog.DiscardHandler),
		OnSessionEnd: func(id string) { f.ended <- id },
	}, []string{"http://127.0.0.1:9"})
	f.h.sessions.now = f.clock.Now
	return f
}

func (f *sessionsFixture) open(t *testing.T, key string) string {
	t.Helper()
	rec := do(t, f.mux, http.MethodPost, bearer(key), initialize)
	sid := rec.Header().Get("Mcp-Session-Id")
	if rec.Code != http.StatusOK || sid == "" {
		t.Fatalf("initialize as %s: %d %s", key, rec.Code, rec.Body)
	}
	return sid
}

func (f *sessionsFixture) list(t *testing.T, key, sid string) int {
	t.Helper()
	return do(t, f.mux, http.MethodPost, map[string]string{"Authorization": "Bearer " + key, "Mcp-Session-Id": sid},
		`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`).Code
}

func (f *sessionsFixture) advance(d time.Duration) { f.clock.Set(f.clock.Now().Add(d)) }

// heldByMCP lists the sessions mcp-go holds, sorted.
func (f *sessionsFixture) heldByMCP() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.held))
}

// checkHeld fails unless mcp-go holds exactly the sessions want.
func (f *sessionsFixture) checkHeld(t *testing.T, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := f.heldByMCP(); !slices.Equal(got, want) {
		t.Errorf("mcp-go holds %d sessions %v, want %d %v", len(got), got, len(want), want)
	}
}

// TestEndedSessionsLeaveNothingInMCPGo ends sessions every way keygate ends
// them and checks mcp-go lets go of each, that a session-scoped call on it
// gets 404, and that OnSessionEnd hears of it.
func TestEndedSessionsLeaveNothingInMCPGo(t *testing.T) {
	tests := []struct {
		name string
		// end ends victim (opened by key a) and returns the sessions
		// that must still be held.
		end func(t *testing.T, f *sessionsFixture, victim string) []string
	}{
		{"DELETE", func(t *testing.T, f *sessionsFixture, victim string) []string {
			if rec := do(t, f.mux, http.MethodDelete, map[string]string{"Authorization": "Bearer a", "Mcp-Session-Id": victim}, ""); rec.Code != http.StatusOK {
				t.Fatalf("DELETE: %d", rec.Code)
			}
			return nil
		}},
		{"evicted past the key's cap", func(t *testing.T, f *sessionsFixture, victim string) []string {
			var kept []string
			for range maxSessionsPerKey {
				kept = append(kept, f.open(t, "a"))
			}
			return kept
		}},
		{"idle past the TTL, then used", func(t *testing.T, f *sessionsFixture, victim string) []string {
			f.advance(sessionIdleTTL + time.Second)
			return nil // the 404 check below is the use that ends it
		}},
		{"idle past the TTL, swept when a session opens", func(t *testing.T, f *sessionsFixture, victim string) []string {
			f.advance(sessionIdleTTL + time.Second)
			return []string{f.open(t, "b")}
		}},
		{"idle past the TTL, swept in the background", func(t *testing.T, f *sessionsFixture, victim string) []string {
			f.advance(sessionIdleTTL + time.Second)
			f.h.sessions.sweep()
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newSessionsFixture(t, nil)
			victim := f.open(t, "a")
			f.checkHeld(t, victim)
			kept := tc.end(t, f, victim)
			if got := f.list(t, "a", victim); got != http.StatusNotFound {
				t.Errorf("tools/list on the ended session: %d, want 404", got)
			}
			f.checkHeld(t, kept...)
			// OnSessionEnd runs before the request that ended the session
			// returns.
			select {
			case got := <-f.ended:
				if got != victim {
					t.Errorf("OnSessionEnd heard of %q first, want the victim", got)
				}
			default:
				t.Error("OnSessionEnd was not told")
			}
		})
	}
}

// TestIdleTTLCountsUse: a session in use, by calls or by an open stream,
// does not idle out.
func TestIdleTTLCountsUse(t *testing.T) {
	f := newSessionsFixture(t, nil)
	sid := f.open(t, "a")
	f.advance(sessionIdleTTL - time.Second)
	if got := f.list(t, "a", sid); got != http.StatusOK {
		t.Fatalf("used just before the TTL: %d", got)
	}
	f.advance(sessionIdleTTL - time.Second)
	f.h.sessions.sweep()
	if got := f.list(t, "a", sid); got != http.StatusOK {
		t.Errorf("a TTL after open, but used since: %d", got)
	}
	f.checkHeld(t, sid)
}

// TestUndeliveredInitializeExpires: an initialize answered as an SSE
// stream carries no Mcp-Session-Id, so the client never learns its
// session; mcp-go registers it anyway. keygate ends it after unboundTTL.
func TestUndeliveredInitializeExpires(t *testing.T) {
	var issued atomic.Value
	f := newSessionsFixture(t, func(f *sessionsFixture, hooks *server.Hooks) {
		hooks.AddAfterInitialize(func(ctx context.Context, _ any, _ *mcp.InitializeRequest, _ *mcp.InitializeResult) {
			issued.Store(server.ClientSessionFromContext(ctx).SessionID())
			// A notification during initialize turns the answer into SSE.
			_ = server.ServerFromContext(ctx).SendNotificationToClient(ctx, "notifications/message", map[string]any{"level": "info", "data": "hello"})
		})
	})
	rec := do(t, f.mux, http.MethodPost, bearer("a"), initialize)
	sid, _ := issued.Load().(string)
	if rec.Code != http.StatusOK || rec.Header().Get("Mcp-Session-Id") != "" || sid == "" {
		t.Fatalf("initialize: %d, header %q, issued %q: want an SSE answer without the id", rec.Code, rec.Header().Get("Mcp-Session-Id"), sid)
	}
	f.checkHeld(t, sid)
	f.advance(unboundTTL + time.Second)
	f.h.sessions.sweep()
	f.checkHeld(t)
	if sessions, _ := f.h.sessions.counts(); sessions != 0 {
		t.Errorf("%d sessions live, want 0", sessions)
	}
}

// TestSessionEndedWhileItsInitializeRuns: a key opening sessions
// concurrently can push out one whose initialize is still running, before
// mcp-go has registered it. mcp-go registers it when the initialize ends;
// keygate frees it then.
func TestSessionEndedWhileItsInitializeRuns(t *testing.T) {
	var nested atomic.Bool
	var inner string
	f := newSessionsFixture(t, func(f *sessionsFixture, hooks *server.Hooks) {
		hooks.AddAfterInitialize(func(ctx context.Context, _ any, _ *mcp.InitializeRequest, _ *mcp.InitializeResult) {
			if nested.CompareAndSwap(false, true) {
				// The same key fills its share while the outer initialize runs.
				for range maxSessionsPerKey {
					inner = f.open(t, "a")
				}
			}
		})
	})
	outer := f.open(t, "a")
	if got := f.list(t, "a", outer); got != http.StatusNotFound {
		t.Errorf("the pushed-out session answers %d, want 404", got)
	}
	held := f.heldByMCP()
	if len(held) != maxSessionsPerKey || slices.Contains(held, outer) || !slices.Contains(held, inner) {
		t.Errorf("mcp-go holds %d sessions (outer held: %v), want the key's %d newest", len(held), slices.Contains(held, outer), maxSessionsPerKey)
	}
}

// TestGlobalSessionCap: past the cap on all sessions, a key holding the
// most loses its least recently used; a key with fewer keeps its own, and
// the session being opened is never the one to go.
func TestGlobalSessionCap(t *testing.T) {
	f := newSessionsFixture(t, nil)
	f.h.sessions.limits.live = 4
	f.h.sessions.limits.perKey = 3
	a1, a2, a3 := f.open(t, "a"), f.open(t, "a"), f.open(t, "a")
	b1 := f.open(t, "b")
	f.list(t, "a", a1) // a1 used: a2 is now a's least recently used
	c1 := f.open(t, "c")
	f.checkHeld(t, a1, a3, b1, c1)
	if got := f.list(t, "a", a2); got != http.StatusNotFound {
		t.Errorf("the heaviest key's LRU session answers %d, want 404", got)
	}
	// a holds the most again (two): its least recently used gives way.
	d1 := f.open(t, "d")
	f.checkHeld(t, a1, b1, c1, d1)
	// All at one each: one of the others gives way, never the new one.
	e1 := f.open(t, "e")
	if held := f.heldByMCP(); len(held) != 4 || !slices.Contains(held, e1) {
		t.Errorf("mcp-go holds %v, want 4 including the new session", held)
	}
	if sessions, _ := f.h.sessions.counts(); sessions != 4 {
		t.Errorf("%d sessions live, want 4", sessions)
	}
}

// TestUnauthenticatedCallersOpenNoSession: without a valid token no
// request reaches mcp-go, so nothing is held.
func TestUnauthenticatedCallersOpenNoSession(t *testing.T) {
	f := newSessionsFixture(t, nil)
	for _, h := range []map[string]string{nil, bearer("nope"), {"Authorization": "Basic YTpi"}} {
		for _, method := range []string{http.MethodPost, http.MethodGet} {
			if rec := do(t, f.mux, method, h, initialize); rec.Code != http.StatusUnauthorized {
				t.Errorf("%s with %v: %d, want 401", method, h, rec.Code)
			}
		}
	}
	if sessions, streams := f.h.sessions.counts(); sessions != 0 || streams != 0 {
		t.Errorf("%d sessions and %d streams live, want none", sessions, streams)
	}
	f.checkHeld(t)
}

// streamServer serves the fixture over loopback and reports, by the
// X-Stream tag of the request, each GET whose handler has returned: by
// then keygate has released the stream.
type streamServer struct {
	*httptest.Server
	returned chan string
}

func newStreamServer(t *testing.T, f *sessionsFixture) *streamServer {
	t.Helper()
	s := &streamServer{returned: make(chan string, 64)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mux.ServeHTTP(w, r)
		if r.Method == http.MethodGet {
			s.returned <- r.Header.Get("X-Stream")
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// get opens a GET stream as key on sid, tagged tag. The caller cancels
// the stream with the returned func.
func (s *streamServer) get(t *testing.T, key, sid, tag string) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("X-Stream", tag)
	resp, err := s.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", tag, err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return resp, cancel
}

// waitReturned waits until the GET tagged tag has been released. The
// deadline only turns a stream that is never released into a failure
// rather than a hang; nothing is timed.
func (s *streamServer) waitReturned(t *testing.T, tag string) {
	t.Helper()
	select {
	case got := <-s.returned:
		if got != tag {
			t.Fatalf("stream %q returned, want %q", got, tag)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("stream %q was never released", tag)
	}
}

// checkRefusal checks a refused stream: status, Retry-After and a JSON-RPC
// error naming the limit.
func checkRefusal(t *testing.T, resp *http.Response, status int, limit string) {
	t.Helper()
	var body struct {
		JSONRPC string `json:"jsonrpc"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	err := json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != status || resp.Header.Get("Retry-After") == "" || err != nil || body.JSONRPC != "2.0" ||
		!strings.Contains(body.Error.Message, limit+" GET streams") {
		t.Errorf("refused stream: %d, Retry-After %q, body %+v (%v); want %d naming %s streams", resp.StatusCode, resp.Header.Get("Retry-After"), body, err, status, limit)
	}
}

// TestGetStreamsAreBounded: one stream per session (a second replaces the
// first), a cap per key (429) and overall (503), and a stream is released
// when its client disconnects or its session ends.
func TestGetStreamsAreBounded(t *testing.T) {
	f := newSessionsFixture(t, nil)
	f.h.sessions.limits.streams = maxStreamsPerKey + 1
	srv := newStreamServer(t, f)
	var sids []string
	for range maxStreamsPerKey + 1 {
		sids = append(sids, f.open(t, "a"))
	}
	b1 := f.open(t, "b")
	b2 := f.open(t, "b")
	streams := func() int { _, n := f.h.sessions.counts(); return n }

	first, _ := srv.get(t, "a", sids[0], "first")
	second, _ := srv.get(t, "a", sids[0], "second")
	if first.StatusCode != http.StatusOK || second.StatusCode != http.StatusOK {
		t.Fatalf("streams on one session: %d then %d", first.StatusCode, second.StatusCode)
	}
	srv.waitReturned(t, "first")
	if _, err := io.ReadAll(first.Body); err != nil {
		t.Errorf("the replaced stream did not end cleanly: %v", err)
	}
	if n := streams(); n != 1 {
		t.Errorf("%d streams counted after a replacement, want 1", n)
	}

	held := map[string]context.CancelFunc{}
	for i := 1; i < maxStreamsPerKey; i++ {
		resp, cancel := srv.get(t, "a", sids[i], sids[i])
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d of the key: %d", i+1, resp.StatusCode)
		}
		held[sids[i]] = cancel
	}
	over, _ := srv.get(t, "a", sids[maxStreamsPerKey], "over the key's cap")
	srv.waitReturned(t, "over the key's cap")
	checkRefusal(t, over, http.StatusTooManyRequests, "16")

	other, _ := srv.get(t, "b", b1, "b1")
	if other.StatusCode != http.StatusOK {
		t.Fatalf("another key's stream: %d", other.StatusCode)
	}
	full, _ := srv.get(t, "b", b2, "over the overall cap")
	srv.waitReturned(t, "over the overall cap")
	checkRefusal(t, full, http.StatusServiceUnavailable, "17")

	// The client goes away: its stream is released and the key may open
	// another.
	held[sids[1]]()
	srv.waitReturned(t, sids[1])
	if n := streams(); n != maxStreamsPerKey {
		t.Errorf("%d streams counted after a disconnect, want %d", n, maxStreamsPerKey)
	}
	if resp, _ := srv.get(t, "a", sids[maxStreamsPerKey], "after the disconnect"); resp.StatusCode != http.StatusOK {
		t.Errorf("a stream after another disconnected: %d", resp.StatusCode)
	}

	// The session ends: its stream ends with it.
	if rec := do(t, f.mux, http.MethodDelete, map[string]string{"Authorization": "Bearer a", "Mcp-Session-Id": sids[2]}, ""); rec.Code != http.StatusOK {
		t.Fatalf("DELETE: %d", rec.Code)
	}
	srv.waitReturned(t, sids[2])
	if n := streams(); n != maxStreamsPerKey {
		t.Errorf("%d streams counted after a session ended, want %d", n, maxStreamsPerKey)
	}

	// An open stream keeps its session from idling out.
	f.advance(sessionIdleTTL + time.Second)
	f.h.sessions.sweep()
	if got := f.list(t, "b", b1); got != http.StatusOK {
		t.Errorf("a session with an open stream idled out: %d", got)
	}
	if got := f.list(t, "b", b2); got != http.StatusNotFound {
		t.Errorf("a session without a stream, idle past the TTL: %d, want 404", got)
	}
}
