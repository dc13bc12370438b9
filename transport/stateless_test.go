package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/tools"
)

// Replicas behind a round-robin balancer serve without sessions: what one
// replica answered, another must be able to continue, and no replica holds
// anything for a client between its requests.
func TestStatelessServesEachRequestAlone(t *testing.T) {
	stateless := func(c *HTTPConfig) { c.Stateless = true }
	a, ah, calls := newTestHandlerWith(t, stateless)
	b, bh, _ := newTestHandlerWith(t, stateless)
	admin := map[string]string{"Authorization": "Bearer admin", "Mcp-Protocol-Version": "2025-11-25"}

	for i := range 50 {
		rec := do(t, a, http.MethodPost, admin, initializeAt(i, "2025-11-25"))
		if rec.Code != http.StatusOK || rec.Header().Get("Mcp-Session-Id") != "" {
			t.Fatalf("initialize: %d, Mcp-Session-Id %q, want 200 and none", rec.Code, rec.Header().Get("Mcp-Session-Id"))
		}
	}
	if n := len(ah.sessions.live) + len(bh.sessions.live); n != 0 {
		t.Errorf("%d sessions held after 50 initializes, want none", n)
	}

	// The session "opened" on a continues on b, with no session header.
	if rec := do(t, b, http.MethodPost, admin, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); rec.Code != http.StatusAccepted {
		t.Errorf("notifications/initialized on the other replica: %d %s", rec.Code, rec.Body)
	}
	rec := do(t, b, http.MethodPost, admin, fmt.Sprintf(writeCall, 2))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ok"`) {
		t.Fatalf("tools/call on the other replica: %d %s", rec.Code, rec.Body)
	}
	// Each request is still checked on its own: a reader cannot write.
	reader := map[string]string{"Authorization": "Bearer reader", "Mcp-Protocol-Version": "2025-11-25"}
	if rec := do(t, a, http.MethodPost, reader, fmt.Sprintf(writeCall, 3)); rec.Code != http.StatusForbidden {
		t.Errorf("reader's write: %d, want 403", rec.Code)
	}
	if rec := do(t, a, http.MethodPost, nil, fmt.Sprintf(writeCall, 4)); rec.Code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", rec.Code)
	}
	if len(*calls) != 0 {
		t.Errorf("a's tool ran %d times, want 0 (the allowed call went to b)", len(*calls))
	}

	tests := []struct {
		name, method, body string
		status             int
		allow, why         string
	}{
		{"no stream to open", http.MethodGet, "", http.StatusMethodNotAllowed, statelessMethods, "without sessions"},
		{"no session to end", http.MethodDelete, "", http.StatusMethodNotAllowed, statelessMethods, "without sessions"},
		{"PUT", http.MethodPut, initialize, http.StatusMethodNotAllowed, statelessMethods, "send JSON-RPC messages with POST"},
		{"a batch needs a session's version", http.MethodPost, "[" + fmt.Sprintf(writeCall, 5) + "]", http.StatusBadRequest, "", "without sessions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(t, a, tc.method, admin, tc.body)
			if rec.Code != tc.status || rec.Header().Get("Allow") != tc.allow {
				t.Fatalf("%d, Allow %q; want %d, Allow %q", rec.Code, rec.Header().Get("Allow"), tc.status, tc.allow)
			}
			checkError(t, rec.Body.Bytes(), mcp.INVALID_REQUEST, nil)
			if !strings.Contains(rec.Body.String(), tc.why) {
				t.Errorf("the refusal does not say why: %s", rec.Body)
			}
		})
	}
}

// unreachableStore is a verifier whose store cannot be reached.
type unreachableStore struct{}

func (unreachableStore) Verify(context.Context, string) (auth.Principal, error) {
	return auth.Principal{}, errors.New("dial tcp 127.0.0.1:5432: connect: connection refused (password=canary-pg-password)")
}

// A replica that lost its store answers 503 with Retry-After, to a call
// and to the load balancer's health check, and never shows why (the cause
// can hold a connection string); once the store is back it serves again.
func TestStoreUnavailableAnswers503(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	_, hh, _ := newTestHandlerWith(t, func(c *HTTPConfig) {
		c.Verifier = unreachableStore{}
		c.Ready = func(context.Context) error {
			if down.Load() {
				return errors.New("connection refused (password=canary-pg-password)")
			}
			return nil
		}
	})
	_, mux := newHTTPHandler(server.NewMCPServer("t", "1"), hh.cfg, nil)
	for _, tc := range []struct {
		name, method, path string
	}{
		{"a call", http.MethodPost, "/mcp"},
		{"the health check", http.MethodGet, "/healthz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "http://127.0.0.1:9"+tc.path, strings.NewReader(initialize))
			req.Header.Set("Authorization", "Bearer admin")
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
				t.Errorf("%d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
			}
			if strings.Contains(rec.Body.String(), "canary") || !strings.Contains(rec.Body.String(), "unavailable") {
				t.Errorf("body %s: want a clear refusal without the cause", rec.Body)
			}
		})
	}
	down.Store(false)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("health check once the store is back: %d", rec.Code)
	}
}

// A caller of a stateless server cannot name a session: mcp-go's
// stateless manager would accept any Mcp-Session-Id and key per-session
// state (a credential from auth_authenticate, a log level) by it, so a
// caller could grow that state without bound, or act through a session
// another caller authenticated. Nor can one caller set the log level of
// all the others.
func TestStatelessIgnoresNamedSessions(t *testing.T) {
	s := server.NewMCPServer("t", "1", server.WithLogging())
	s.AddTool(mcp.NewTool("session_id"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		sid := "none"
		if cs := server.ClientSessionFromContext(ctx); cs != nil && cs.SessionID() != "" {
			sid = cs.SessionID()
		}
		return mcp.NewToolResultText("session=" + sid), nil
	})
	h := NewHTTPHandler(s, HTTPConfig{Stateless: true, Logger: slog.New(slog.DiscardHandler),
		Verifier:   tokenTable{"reader": {KeyID: "reader", Scopes: auth.Scopes{{Action: auth.ContentRead}}}},
		ScopeCheck: tools.ScopeCheckFor([]tools.ServerTool{{Tool: mcp.NewTool("session_id"), Needs: auth.ContentRead}}),
	}, nil)
	headers := map[string]string{"Authorization": "Bearer reader", "Mcp-Protocol-Version": "2025-11-25", "Mcp-Session-Id": "victims-session"}
	rec := do(t, h, http.MethodPost, headers, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"session_id","arguments":{}}}`)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "session=none") {
		t.Errorf("a named session reached the tool: %d %s", rec.Code, rec.Body)
	}
	rec = do(t, h, http.MethodPost, headers, `{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"debug"}}`)
	checkError(t, rec.Body.Bytes(), mcp.INVALID_REQUEST, 2.0)
	if !strings.Contains(rec.Body.String(), "without sessions") {
		t.Errorf("logging/setLevel: %s", rec.Body)
	}
}
