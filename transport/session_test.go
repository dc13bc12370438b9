package transport

import (
	"log/slog"
	"net/http"
	"testing"

	"github.com/mark3labs/mcp-go/server"
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
