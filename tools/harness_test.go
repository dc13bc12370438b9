package tools

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
	"github.com/keygate/keygate/rotation"
)

// clock is a settable time source shared by the store and the tools.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

// env is one keygate instance over the real embedded store, reached through
// an in-process MCP client.
type env struct {
	t       *testing.T
	store   *local.Store
	deps    *Deps
	admin   string // the admin token keygate acts with
	adminID string
	envFile string
	clock   *clock
	logs    *strings.Builder
	elicit  client.ElicitationHandler
	options Options
	client  *client.Client
	server  *server.MCPServer
	// serverOpts are the options server was built with.
	serverOpts Options
	redactor   *auth.Redactor
	auditPath  string
	journal    *audit.Log
	engine     *rotation.Engine
}

type envOption func(*env)

func withElicitation(h client.ElicitationHandler) envOption { return func(e *env) { e.elicit = h } }

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	e := &env{t: t, clock: &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}, logs: &strings.Builder{},
		envFile: filepath.Join(dir, ".env")}
	for _, o := range opts {
		o(e)
	}
	store, err := local.Open(ctx, filepath.Join(dir, "keygate.db"), local.Options{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	issued, err := store.CreateKey(ctx, provider.NewKey{Name: "admin", Scopes: auth.Scopes{{Action: auth.Admin}},
		ExpiresAt: e.clock.t.Add(365 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	e.store, e.admin, e.adminID = store, issued.Secret.Reveal(), issued.Key.ID
	if err := auth.SetEnvVar(e.envFile, EnvTokenVar, e.admin, auth.EnvWriteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.redactor = auth.NewRedactor()
	e.redactor.Add(e.admin)
	e.auditPath = filepath.Join(dir, "audit.jsonl")
	journal, err := audit.Open(e.auditPath, e.redactor.Redact)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { journal.Close() })
	e.journal = journal
	places := delivery.Places{EnvFile: e.envFile, KeysDir: filepath.Join(dir, "keys")}
	e.engine = &rotation.Engine{Name: "local", Dir: filepath.Join(dir, "rotation"), EnvFile: e.envFile, Legacy: EnvTokenVar,
		Backend: store.RotationBackend(), Places: places, Now: e.clock.Now}
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) { e.logs.Write(p) }), &slog.HandlerOptions{ReplaceAttr: e.redactor.SlogReplaceAttr}))
	e.deps = newDeps(store, identity.NewIdentity(store, auth.Credential{Secret: auth.NewSecret(e.admin), Source: auth.SourceEnvFile, Var: EnvTokenVar}),
		e.redactor, places, logger, e.clock.Now)
	e.deps.Audit = journal
	e.deps.Credentials.Changed = func() { e.deps.Identity.Invalidate() }
	e.deps.Providers = NewProviders(e.localProvider(store))
	e.connect()
	return e
}

// newDeps wires the tools over the local store as main.go does, the one
// way this package's tests build them: content and keys from store, keys
// delivered to places; now may be nil (the wall clock). The audit journal
// is off until a test sets Audit.
func newDeps(store *local.Store, ident *identity.Identity, redactor *auth.Redactor, places delivery.Places, logger *slog.Logger, now func() time.Time) *Deps {
	return &Deps{
		Providers:   NewProviders(Provider{Name: "local", Content: store, Ring: credentials.Ring{Provider: "local", Local: true}}),
		Identity:    ident,
		Redactor:    redactor,
		Credentials: &credentials.Service{Store: store, Places: places, Learn: redactor.Add, Changed: ident.Invalidate, Now: now},
		EnvFile:     places.EnvFile,
		HTTP:        ident.PerRequest(),
		Logger:      logger,
		Now:         now,
	}
}

// localProvider is the embedded store as keygate wires it, with content
// served by content (the store, or a wrapper of it).
func (e *env) localProvider(content ContentStore) Provider {
	return Provider{Name: "local", Content: content, Ring: credentials.LocalRing(e.store, e.engine, e.envFile, identityOf{e})}
}

// identityOf follows e.deps.Identity, which tests replace.
type identityOf struct{ e *env }

func (i identityOf) Process() auth.Credential     { return i.e.deps.Identity.Process() }
func (i identityOf) SetProcess(c auth.Credential) { i.e.deps.Identity.SetProcess(c) }

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

// connect builds the server, again only when the options changed (as
// one keygate serves every caller, sharing its state between them), and
// an initialized client.
func (e *env) connect() {
	e.t.Helper()
	if e.server == nil || !reflect.DeepEqual(e.options, e.serverOpts) {
		s, _, err := NewServer(e.deps, e.options)
		if err != nil {
			e.t.Fatal(err)
		}
		e.server, e.serverOpts = s, e.options
	}
	s := e.server
	var copts []client.ClientOption
	if e.elicit != nil {
		copts = append(copts, client.WithElicitationHandler(e.elicit))
	}
	c, err := client.NewInProcessClientWithOptions(s, copts...)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		e.t.Fatal(err)
	}
	if _, err := c.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	e.client = c
}

// actAs makes keygate's process credential tok.
func (e *env) actAs(tok string) {
	e.deps.Identity = identity.NewIdentity(e.store, auth.Credential{Secret: auth.NewSecret(tok), Source: auth.SourceEnv, Var: EnvTokenVar})
	e.connect()
}

// mint creates a key directly in the store.
func (e *env) mint(name string, scopes ...string) (string, provider.Key) {
	e.t.Helper()
	sc, err := auth.ParseScopes(scopes)
	if err != nil {
		e.t.Fatal(err)
	}
	issued, err := e.store.CreateKey(context.Background(), provider.NewKey{Name: name, Scopes: sc, ExpiresAt: e.clock.t.Add(30 * 24 * time.Hour)})
	if err != nil {
		e.t.Fatal(err)
	}
	e.redactor.Add(issued.Secret.Reveal())
	return issued.Secret.Reveal(), issued.Key
}

// result is a tool result decoded for assertions.
type result struct {
	IsError    bool
	Text       string
	Structured map[string]any
	raw        *mcp.CallToolResult
}

func (e *env) call(name string, args map[string]any) result {
	e.t.Helper()
	res, err := e.callErr(name, args)
	if err != nil {
		e.t.Fatalf("%s: protocol error: %v", name, err)
	}
	return res
}

func (e *env) callErr(name string, args map[string]any) (result, error) {
	var req mcp.CallToolRequest
	req.Params.Name, req.Params.Arguments = name, args
	res, err := e.client.CallTool(context.Background(), req)
	if err != nil {
		return result{}, err
	}
	r := result{IsError: res.IsError, raw: res}
	for _, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			r.Text += tc.Text
		}
	}
	if res.StructuredContent != nil {
		b, _ := json.Marshal(res.StructuredContent)
		_ = json.Unmarshal(b, &r.Structured)
	}
	return r, nil
}

func (e *env) toolNames() []string {
	e.t.Helper()
	list, err := e.client.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, t := range list.Tools {
		names = append(names, t.Name)
	}
	return names
}

// get walks a decoded JSON value by keys and indexes: get(m, "object", "id").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			s, _ := v.([]any)
			if k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func mustOK(t *testing.T, r result) result {
	t.Helper()
	if r.IsError {
		t.Fatalf("unexpected error result: %s", r.Text)
	}
	return r
}

func mustFail(t *testing.T, r result, field, contains string) {
	t.Helper()
	if !r.IsError {
		t.Fatalf("want error result naming %q, got success: %s", field, r.Text)
	}
	if got, _ := get(r.Structured, "error", "field").(string); got != field {
		t.Errorf("error field = %q, want %q (text: %s)", got, field, r.Text)
	}
	if !strings.Contains(r.Text, contains) {
		t.Errorf("error text %q does not contain %q", r.Text, contains)
	}
	if fix, _ := get(r.Structured, "error", "fix").(string); fix == "" && field != "" {
		t.Errorf("error for %q has no fix: %s", field, r.Text)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var _ = io.Discard

func contentType(name string) provider.ContentType { return provider.ContentType{Name: name} }

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
