package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
	"github.com/keygate/keygate/tools"
)

// BenchmarkHTTPToolCall is one tools/call through the whole streamable HTTP
// handler in-process (no network): keygate's middleware (origin, bearer,
// shed, body limit and scope, session binding), mcp-go's transport and
// keygate's tool, wired as main.go wires them, against the same call on a
// bare mcp-go server with an echo tool, the baseline of bench/httpload.
func BenchmarkHTTPToolCall(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	store, err := local.Open(ctx, filepath.Join(dir, "keygate.db"), local.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	if err := store.Seed(ctx); err != nil {
		b.Fatal(err)
	}
	issued, err := store.CreateKey(ctx, provider.NewKey{Name: "admin", Scopes: auth.Scopes{{Action: auth.Admin}}, ExpiresAt: time.Now().Add(30 * 24 * time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	tok := issued.Secret.Reveal()
	page, err := store.List(ctx, provider.ListQuery{Type: "posts", Limit: 1})
	if err != nil || len(page.Objects) == 0 {
		b.Fatalf("no posts: %v", err)
	}
	redactor := auth.NewRedactor()
	redactor.Add(tok)
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{ReplaceAttr: redactor.SlogReplaceAttr}))
	verifier := identity.NewCachingVerifier(store, identity.DefaultVerifyCacheTTL, nil)
	deps := newDeps(store, identity.NewHTTPIdentity(verifier), redactor, dir, filepath.Join(dir, ".env"), logger, nil)
	mcpServer, served, err := tools.NewServer(deps, tools.Options{Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	keygate := NewHTTPHandler(mcpServer, HTTPConfig{
		Verifier:     verifier,
		ScopeCheck:   tools.ScopeCheckFor(served),
		Logger:       logger,
		Version:      "bench",
		OnSessionEnd: deps.Identity.ForgetSession,
	}, []string{"http://127.0.0.1:9"})

	bare := server.NewMCPServer("bare", "1")
	bare.AddTool(mcp.NewTool("echo", mcp.WithString("message", mcp.Required())), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText(req.GetString("message", "")), nil
	})
	baseline := server.NewStreamableHTTPServer(bare)

	for _, c := range []struct {
		name, token, tool string
		h                 http.Handler
		args              map[string]any
	}{
		{"echo (bare mcp-go)", "", "echo", baseline, map[string]any{"message": "hello"}},
		{"keygate content_get", tok, "content_get", keygate, map[string]any{"type": "posts", "id": page.Objects[0].ID}},
	} {
		b.Run(c.name, func(b *testing.B) {
			post := func(sid, body string) *httptest.ResponseRecorder {
				req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:9/mcp", strings.NewReader(body))
				req.RemoteAddr = "127.0.0.1:5555"
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				if c.token != "" {
					req.Header.Set("Authorization", "Bearer "+c.token)
				}
				if sid != "" {
					req.Header.Set("Mcp-Session-Id", sid)
					req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
				}
				rec := httptest.NewRecorder()
				c.h.ServeHTTP(rec, req)
				return rec
			}
			rec := post("", initialize)
			sid := rec.Header().Get("Mcp-Session-Id")
			if rec.Code != http.StatusOK || sid == "" {
				b.Fatalf("initialize: %d %s", rec.Code, rec.Body)
			}
			post(sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
			params, err := json.Marshal(map[string]any{"name": c.tool, "arguments": c.args})
			if err != nil {
				b.Fatal(err)
			}
			call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":` + string(params) + `}`
			for b.Loop() {
				rec := post(sid, call)
				if body := rec.Body.Bytes(); rec.Code != http.StatusOK || !bytes.Contains(body, []byte(`"result"`)) || bytes.Contains(body, []byte(`"isError":true`)) {
					b.Fatalf("tools/call: %d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// everyTokenIsAKey admits any token as a key of the same name: a caller
// with as many keys as it likes.
type everyTokenIsAKey struct{}

func (everyTokenIsAKey) Verify(_ context.Context, tok string) (auth.Principal, error) {
	return auth.Principal{KeyID: tok}, nil
}

// BenchmarkAbandonedSessions opens sessions that are never DELETEd, with
// one key or with a new key for each, and reports the heap still in use
// after a collection: per session opened, and in all. The caps (64 per
// key, 1,000 overall) hold it flat however many are opened; up to the
// overall cap, "a key each" shows what one live session costs.
//
//	go test -run '^$' -bench AbandonedSessions -benchtime 100000x ./transport
//	go test -run '^$' -bench 'AbandonedSessions/a_key_each' -benchtime 1000x ./transport
func BenchmarkAbandonedSessions(b *testing.B) {
	for _, c := range []struct {
		name  string
		token func(i int) string
	}{
		{"one key", func(int) string { return "k" }},
		{"a key each", func(i int) string { return fmt.Sprintf("k%d", i) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			_, h := newHTTPHandler(server.NewMCPServer("t", "1"), HTTPConfig{Verifier: everyTokenIsAKey{}, Logger: slog.New(slog.DiscardHandler)}, nil)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			i := 0
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:9/mcp", strings.NewReader(initialize))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				req.Header.Set("Authorization", "Bearer "+c.token(i))
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || rec.Header().Get("Mcp-Session-Id") == "" {
					b.Fatalf("initialize: %d %s", rec.Code, rec.Body)
				}
				i++
			}
			b.StopTimer()
			runtime.GC()
			runtime.ReadMemStats(&after)
			retained := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			b.ReportMetric(float64(retained)/float64(b.N), "retained-B/session")
			b.ReportMetric(float64(retained)/1e6, "retained-MB")
			runtime.KeepAlive(h)
		})
	}
}
