package transport

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/tools"
)

// tokenTable verifies tokens from a fixed table: the transport only needs
// the Verifier contract, which the local store's own tests cover.
type tokenTable map[string]auth.Principal

func (tt tokenTable) Verify(_ context.Context, tok string) (auth.Principal, error) {
	if p, ok := tt[tok]; ok {
		return p, nil
	}
	return auth.Principal{}, auth.ErrInvalidToken
}

func newTestHandler(t *testing.T) (http.Handler, *[]string) {
	t.Helper()
	h, _, calls := newTestHandlerWith(t, func(*HTTPConfig) {})
	return h, calls
}

// newTestHandlerWith is newTestHandler with its configuration changed by
// edit; it returns the handler's internals too.
func newTestHandlerWith(t *testing.T, edit func(*HTTPConfig)) (http.Handler, *httpHandler, *[]string) {
	t.Helper()
	s := server.NewMCPServer("t", "1", server.WithToolCapabilities(false))
	var calls []string
	s.AddTool(mcp.NewTool("write_thing"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		calls = append(calls, req.Params.Name)
		return mcp.NewToolResultText("ok"), nil
	})
	cfg := HTTPConfig{
		MaxBodyBytes: 4096,
		Verifier: tokenTable{
			"admin":  {KeyID: "admin", Scopes: auth.Scopes{{Action: auth.Admin}}},
			"reader": {KeyID: "reader", Scopes: auth.Scopes{{Action: auth.ContentRead}}},
		},
		ScopeCheck: tools.ScopeCheckFor([]tools.ServerTool{{Tool: mcp.NewTool("write_thing"), Needs: auth.ContentWrite}}),
		Logger:     slog.New(slog.DiscardHandler),
	}
	edit(&cfg)
	hh, mux := newHTTPHandler(s, cfg, []string{"http://127.0.0.1:9"})
	return mux, hh, &calls
}

func do(t *testing.T, h http.Handler, method string, headers map[string]string, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "http://127.0.0.1:9/mcp", strings.NewReader(body))
	req.RemoteAddr = "127.0.0.1:5555"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

func TestHTTPGuards(t *testing.T) {
	h, calls := newTestHandler(t)
	callWrite := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"write_thing","arguments":{}}}`
	tests := []struct {
		name      string
		headers   map[string]string
		body      string
		want      int
		challenge string
	}{
		{"no auth", nil, initialize, 401, `Bearer realm="keygate"`},
		{"bad token", map[string]string{"Authorization": "Bearer nope"}, initialize, 401, `error="invalid_token"`},
		{"lower-case scheme", map[string]string{"Authorization": "bearer admin"}, initialize, 200, ""},
		{"two tokens", map[string]string{"Authorization": "Bearer admin reader"}, initialize, 401, `error="invalid_request"`},
		{"oversized header", map[string]string{"Authorization": "Bearer " + strings.Repeat("a", 600)}, initialize, 401, "invalid_request"},
		{"hostile origin", map[string]string{"Authorization": "Bearer admin", "Origin": "http://evil.example"}, initialize, 403, ""},
		{"own origin", map[string]string{"Authorization": "Bearer admin", "Origin": "http://127.0.0.1:9"}, initialize, 200, ""},
		{"null origin", map[string]string{"Authorization": "Bearer admin", "Origin": "null"}, initialize, 403, ""},
		{"body too large", map[string]string{"Authorization": "Bearer admin"}, strings.Repeat(" ", 5000) + initialize, 413, ""},
		{"missing scope", map[string]string{"Authorization": "Bearer reader"}, callWrite, 403, `error="insufficient_scope", scope="content:write"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(t, h, http.MethodPost, tc.headers, tc.body)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); !strings.Contains(got, tc.challenge) {
				t.Errorf("WWW-Authenticate %q, want it to contain %q", got, tc.challenge)
			}
		})
	}
	if len(*calls) != 0 {
		t.Errorf("a refused request ran a tool: %v", *calls)
	}
}

func TestHTTPQueryTokenRefused(t *testing.T) {
	h, _ := newTestHandler(t)
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:9/mcp?access_token=admin", strings.NewReader(initialize))
	req.Header.Set("Authorization", "Bearer admin")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Errorf("status %d, want 401", rec.Code)
	}
}

func TestHTTPChunkedBodyOverLimit(t *testing.T) {
	h, _ := newTestHandler(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(strings.Repeat(" ", 8000)))
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/mcp", pr) // no Content-Length: chunked
	req.Header.Set("Authorization", "Bearer admin")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}
}

func TestSessionsAreBoundAndEnd(t *testing.T) {
	h, _ := newTestHandler(t)
	rec := do(t, h, http.MethodPost, map[string]string{"Authorization": "Bearer admin"}, initialize)
	sid := rec.Header().Get("Mcp-Session-Id")
	if !strings.HasPrefix(sid, sessionPrefix) {
		t.Fatalf("session id %q", sid)
	}
	list := `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`
	if rec := do(t, h, http.MethodPost, map[string]string{"Authorization": "Bearer admin", "Mcp-Session-Id": sid}, list); rec.Code != 200 {
		t.Errorf("own session: %d", rec.Code)
	}
	if rec := do(t, h, http.MethodPost, map[string]string{"Authorization": "Bearer reader", "Mcp-Session-Id": sid}, list); rec.Code != 404 {
		t.Errorf("foreign session: %d", rec.Code)
	}
	if rec := do(t, h, http.MethodPost, map[string]string{"Authorization": "Bearer admin", "Mcp-Session-Id": sessionPrefix + "GUESS"}, list); rec.Code != 404 {
		t.Errorf("guessed session: %d", rec.Code)
	}
	if rec := do(t, h, http.MethodDelete, map[string]string{"Authorization": "Bearer admin", "Mcp-Session-Id": sid}, ""); rec.Code >= 300 {
		t.Fatalf("delete: %d", rec.Code)
	}
	if rec := do(t, h, http.MethodPost, map[string]string{"Authorization": "Bearer admin", "Mcp-Session-Id": sid}, list); rec.Code != 404 {
		t.Errorf("terminated session: %d", rec.Code)
	}
}

func TestHealthz(t *testing.T) {
	h, _ := newTestHandler(t)
	req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"ok"`) {
		t.Errorf("healthz %d %s", rec.Code, rec.Body)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:8080": true, "localhost:1": true, "[::1]:80": true,
		"0.0.0.0:8080": false, ":8080": false, "10.0.0.1:80": false, "bad": false} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v", addr, got)
		}
	}
}

func TestLineLimiter(t *testing.T) {
	l := &lineLimiter{r: strings.NewReader("short\n" + strings.Repeat("x", 100) + "\n"), max: 50}
	_, err := io.ReadAll(l)
	if !errors.Is(err, errLineTooLong) {
		t.Errorf("err = %v, want errLineTooLong", err)
	}
	l = &lineLimiter{r: strings.NewReader(strings.Repeat("x\n", 1000)), max: 5}
	if _, err := io.ReadAll(l); err != nil {
		t.Errorf("many short lines: %v", err)
	}
}

func TestReadBody(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		declared int64
	}{
		{"no length", `{"a":1}`, -1},
		{"exact length", `{"a":1}`, 7},
		{"shorter than declared", `{"a":1}`, 50},
		{"longer than declared", `{"a":1,"b":2}`, 3},
		{"empty", ``, 0},
		{"declared over the preallocation", `{"a":1}`, preallocMax + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readBody(strings.NewReader(tc.body), tc.declared)
			if err != nil || string(got) != tc.body {
				t.Errorf("readBody = %q, %v; want %q", got, err, tc.body)
			}
		})
	}
	t.Run("error", func(t *testing.T) {
		boom := errors.New("boom")
		if _, err := readBody(io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(boom)), 10); !errors.Is(err, boom) {
			t.Errorf("err = %v, want %v", err, boom)
		}
	})
}

// TestBearerVerifiedOncePerCall: a tools/call over HTTP verifies its bearer
// token once, in the transport; the tool filter and the call middleware
// take that verification from the request's context.
func TestBearerVerifiedOncePerCall(t *testing.T) {
	s := newStack(t)
	sid := s.session(t, s.admin)
	for _, tc := range []struct {
		tool string
		args map[string]any
	}{
		{"auth_whoami", map[string]any{}},
		{"content_list", map[string]any{"type": "posts"}},
		{"credentials_list", map[string]any{}},
	} {
		before := s.verifier.calls.Load()
		code, msg := s.callTool(t, s.admin, sid, tc.tool, tc.args)
		if res, _ := msg["result"].(map[string]any); code != http.StatusOK || res == nil || res["isError"] == true {
			t.Fatalf("%s: %d %v", tc.tool, code, msg)
		}
		if n := s.verifier.calls.Load() - before; n != 1 {
			t.Errorf("%s verified the bearer token %d times, want 1", tc.tool, n)
		}
	}
}
