package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/cosmic"
	"github.com/keygate/keygate/provider/cosmic/cosmictest"
	"github.com/keygate/keygate/provider/local"
	"github.com/keygate/keygate/query"
	"github.com/keygate/keygate/shape"
)

// Benchmarks for the figures in bench/README.md: one content_get or
// content_list call in-process (no transport), the steps such a call goes
// through, and projection (project) and budget fitting (fit).

// benchPost is a realistic post: a ~1.6 KB body, tags and counters.
func benchPost(i int) provider.NewObject {
	body := strings.Repeat(fmt.Sprintf("Paragraph %d of a post about scoped tokens, rotation and revocation, written for people who run content APIs. ", i), 14)
	fields, _ := json.Marshal(map[string]any{
		"body": body, "author": []string{"ada", "grace", "linus"}[i%3], "tags": []string{"security", "tokens", fmt.Sprintf("topic-%d", i%7)},
		"views": 100 + i*37,
	})
	return provider.NewObject{Type: "posts", Title: fmt.Sprintf("Scoped tokens in practice, part %d", i), Slug: fmt.Sprintf("scoped-tokens-part-%d", i),
		Status: provider.StatusPublished, Fields: fields}
}

type benchEnv struct {
	deps   *Deps
	store  *local.Store
	server *server.MCPServer
	id     string // a post id
}

// newBenchEnv opens a seeded store with n extra realistic posts and builds
// keygate's MCP server over it, acting with an admin token as over stdio.
func newBenchEnv(b *testing.B, n int) *benchEnv {
	b.Helper()
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
	for i := range n {
		if _, err := store.Create(ctx, benchPost(i)); err != nil {
			b.Fatal(err)
		}
	}
	issued, err := store.CreateKey(ctx, provider.NewKey{Name: "admin", Scopes: auth.Scopes{{Action: auth.Admin}},
		ExpiresAt: time.Now().Add(24 * time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	redactor := auth.NewRedactor()
	redactor.Add(issued.Secret.Reveal())
	// The verification cache and the redacting text logger, as main.go
	// sets them up: a call verifies its token against the store at most
	// once a second, and logs into a discarding writer.
	ident := identity.NewIdentity(identity.NewCachingVerifier(store, identity.DefaultVerifyCacheTTL, nil),
		auth.Credential{Secret: issued.Secret, Source: auth.SourceEnvFile, Var: EnvTokenVar})
	deps := newDeps(store, ident, redactor, delivery.Places{EnvFile: filepath.Join(dir, ".env"), KeysDir: filepath.Join(dir, "keys")},
		slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{ReplaceAttr: redactor.SlogReplaceAttr})), nil)
	s, _, err := NewServer(deps, Options{Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	page, err := store.List(ctx, provider.ListQuery{Type: "posts", Limit: 1})
	if err != nil || len(page.Objects) == 0 {
		b.Fatalf("no posts: %v", err)
	}
	e := &benchEnv{deps: deps, store: store, server: s, id: page.Objects[0].ID}
	init := s.HandleMessage(ctx, json.RawMessage(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}`))
	if _, ok := init.(mcp.JSONRPCResponse); !ok {
		b.Fatalf("initialize: %#v", init)
	}
	return e
}

func (e *benchEnv) message(b *testing.B, tool string, args map[string]any) json.RawMessage {
	b.Helper()
	params, err := json.Marshal(map[string]any{"name": tool, "arguments": args})
	if err != nil {
		b.Fatal(err)
	}
	return json.RawMessage(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":` + string(params) + `}`)
}

// handle runs one tools/call through mcp-go and keygate's middleware and
// encodes the response, as a transport would.
func (e *benchEnv) handle(b *testing.B, msg json.RawMessage) {
	out := e.server.HandleMessage(context.Background(), msg)
	resp, ok := out.(mcp.JSONRPCResponse)
	if !ok {
		b.Fatalf("not a response: %#v", out)
	}
	if r, ok := resp.Result.(*mcp.CallToolResult); ok && r.IsError {
		b.Fatalf("error result: %v", r.Content)
	}
	if _, err := json.Marshal(out); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkToolCall is one whole tool call in-process: mcp-go dispatch,
// keygate's tool filter and middleware (credential verification, scope
// check, argument validation, redaction, log line), the handler, and the
// JSON encoding of the response. "echo (bare mcp-go)" is the same path on a
// server with one echo tool and nothing else, for scale.
func BenchmarkToolCall(b *testing.B) {
	e := newBenchEnv(b, 20)
	bare := server.NewMCPServer("bare", "1", server.WithToolCapabilities(false))
	bare.AddTool(mcp.NewTool("echo", mcp.WithString("message", mcp.Required())), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText(req.GetString("message", "")), nil
	})
	echo := json.RawMessage(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}`)
	b.Run("echo (bare mcp-go)", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(bare.HandleMessage(context.Background(), echo)); err != nil {
				b.Fatal(err)
			}
		}
	})
	cases := []struct {
		name string
		tool string
		args map[string]any
	}{
		{"content_get", "content_get", map[string]any{"type": "posts", "id": e.id}},
		{"content_list default 20", "content_list", map[string]any{"type": "posts"}},
		{"content_list filter", "content_list", map[string]any{"type": "posts", "filter": map[string]any{"fields.author": "ada"}, "limit": 5}},
		{"auth_whoami", "auth_whoami", nil},
	}
	for _, c := range cases {
		msg := e.message(b, c.tool, c.args)
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				e.handle(b, msg)
			}
		})
	}
}

// BenchmarkCallSteps times, one at a time, the steps of a content_get call,
// so their costs can be compared with the whole call.
func BenchmarkCallSteps(b *testing.B) {
	e := newBenchEnv(b, 20)
	ctx := context.Background()
	selected := Select(All(e.deps), Options{})
	validator, err := newArgValidator(selected)
	if err != nil {
		b.Fatal(err)
	}
	var req mcp.CallToolRequest
	req.Params.Name, req.Params.Arguments = "content_get", map[string]any{"type": "posts", "id": e.id}
	obj, err := e.store.Get(ctx, "posts", provider.Ref{ID: e.id})
	if err != nil {
		b.Fatal(err)
	}
	whole, err := shape.WholeObject(obj)
	if err != nil {
		b.Fatal(err)
	}
	res := GetResult{Provider: "local", Object: whole, Content: shape.UntrustedNotice}
	text := renderGet(res, nil)

	b.Run("verify credential (Identity.Resolve, cached)", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := e.deps.Identity.Resolve(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	tok := e.deps.Identity.Process().Secret.Reveal()
	b.Run("verify credential (store)", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.store.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("validate arguments", func(b *testing.B) {
		for b.Loop() {
			if r := validator.check("content_get", req); r != nil {
				b.Fatal(r.Content)
			}
		}
	})
	b.Run("store Get", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.store.Get(ctx, "posts", provider.Ref{ID: e.id}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("wholeObject (decode, sanitise)", func(b *testing.B) {
		for b.Loop() {
			if _, err := shape.WholeObject(obj); err != nil {
				b.Fatal(err)
			}
		}
	})
	objJSON, err := json.Marshal(whole)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode object", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(whole); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("renderGet (text content)", func(b *testing.B) {
		for b.Loop() {
			renderGet(res, objJSON)
		}
	})
	b.Run("redactResult", func(b *testing.B) {
		for b.Loop() {
			r := mcp.NewToolResultStructured(res.encode(objJSON), text)
			shape.Redact(e.deps.Redactor, r, nil)
		}
	})
	b.Run("log line", func(b *testing.B) {
		for b.Loop() {
			e.deps.Logger.Info("tool call", "tool", "content_get", "key_id", "abcdefghijkl", "outcome", "ok", "duration_ms", 0.123)
		}
	})
}

// BenchmarkProject projects a realistic post onto content_list's default
// summary fields and onto a few field paths.
func BenchmarkProject(b *testing.B) {
	fields := benchPost(1).Fields
	obj := provider.Object{ID: "obj_abcdefghijklmnop", Type: "posts", Slug: "scoped-tokens-part-1", Title: "Scoped tokens in practice, part 1",
		Status: provider.StatusPublished, Version: 3, Fields: fields, CreatedAt: time.Now(), ModifiedAt: time.Now()}
	for _, c := range []struct {
		name  string
		paths []string
	}{
		{"default list fields", query.DefaultListFields},
		{"title+author+tags", []string{"title", "fields.author", "fields.tags"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := shape.Project(obj, c.paths); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFit shrinks an object with a 64 KB body and a 2,000-item array
// into content_get's default budget.
func BenchmarkFit(b *testing.B) {
	tags := make([]any, 2000)
	for i := range tags {
		tags[i] = fmt.Sprintf("tag-%d", i)
	}
	v := map[string]any{"id": "obj_x", "title": "Big", "fields": map[string]any{
		"body": strings.Repeat("All work and no play makes a long post. ", 1600), "tags": tags, "author": "ada"}}
	budget := shape.DefaultMaxBytes - shape.EnvelopeBytes
	if _, _, ok := shape.Fit(v, budget); !ok {
		b.Fatal("does not fit")
	}
	b.Run("over budget", func(b *testing.B) {
		for b.Loop() {
			shape.Fit(v, budget)
		}
	})
	small := map[string]any{"id": "obj_x", "title": "Small", "fields": map[string]any{"body": "short", "author": "ada"}}
	b.Run("within budget", func(b *testing.B) {
		for b.Loop() {
			shape.Fit(small, budget)
		}
	})
}

// BenchmarkUpstreamGet is content_get from the Cosmic provider against the
// fake over loopback HTTP, in-process: a plain GET of the URL the client
// asks for (what bench/upstream calls direct), the provider's Get, and the
// whole tool call. The differences are what the client and the tool add.
func BenchmarkUpstreamGet(b *testing.B) {
	e := newBenchEnv(b, 0)
	fake := cosmictest.New()
	ts := fake.Start()
	b.Cleanup(ts.Close)
	vars := map[string]string{cosmic.EnvBucketSlug: fake.Bucket(), cosmic.EnvReadKey: fake.ReadKey(), cosmic.EnvAPIURL: fake.APIURL(), cosmic.EnvDAPIURL: fake.DAPIURL()}
	cfg, _, err := cosmic.LoadConfig(func(name string) (string, string, bool) { v, ok := vars[name]; return v, "env", ok })
	if err != nil {
		b.Fatal(err)
	}
	client, err := cosmic.New(cfg, cosmic.Options{})
	if err != nil {
		b.Fatal(err)
	}
	e.deps.Providers = NewProviders(Provider{Name: "local", Content: e.store, Ring: credentials.Ring{Provider: "local", Local: true}}, Provider{Name: cosmic.Name, Content: client})
	const id = "65a000000000000000000001"
	ctx := context.Background()
	direct := ts.URL + fake.BucketPath("/objects/"+id) + "?" + url.Values{"read_key": {fake.ReadKey()},
		"props": {"id,slug,title,type,status,created_at,modified_at,metadata"}, "status": {"any"}, "depth": {"0"}}.Encode()
	b.Run("direct GET", func(b *testing.B) {
		for b.Loop() {
			resp, err := http.Get(direct)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadAll(resp.Body); err != nil || resp.StatusCode != http.StatusOK {
				b.Fatal(resp.StatusCode, err)
			}
			resp.Body.Close()
		}
	})
	b.Run("provider Get", func(b *testing.B) {
		for b.Loop() {
			if _, err := client.Get(ctx, "posts", provider.Ref{ID: id}); err != nil {
				b.Fatal(err)
			}
		}
	})
	msg := e.message(b, "content_get", map[string]any{"provider": cosmic.Name, "type": "posts", "id": id})
	b.Run("content_get", func(b *testing.B) {
		for b.Loop() {
			e.handle(b, msg)
		}
	})
}
