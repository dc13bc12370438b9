package cencori

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/cencori/cencoritest"
	"github.com/keygate/keygate/tools"
)

var (
	_ tools.ContentStore = (*Client)(nil)
	_ tools.Inspector    = (*Client)(nil)
)

// testClock is shared by the adapter and the fake: Sleep moves it instead
// of waiting, and records what was asked.
type testClock struct {
	mu      sync.Mutex
	t       time.Time
	slept   []time.Duration
	onSleep func(d time.Duration)
}

func newClock() *testClock { return &testClock{t: time.Now()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	hook := c.onSleep
	c.slept = append(c.slept, d)
	c.mu.Unlock()
	if hook != nil {
		hook(d)
	}
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return nil
}

func (c *testClock) Slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.slept...)
}

type env map[string]string

func (e env) get(name string) (string, string, bool) {
	v, ok := e[name]
	return v, "env", ok
}

// fixture is a client wired to a fresh fake on loopback.
type fixture struct {
	c    *Client
	fake *cencoritest.Server
	url  string
	clk  *testClock
	logs *bytes.Buffer
}

// newFixture serves the memory API, as a deployment where Cencori has it
// enabled does; newGatedFixture is production's default.
func newFixture(t *testing.T, key string, opts ...cencoritest.Option) *fixture {
	t.Helper()
	return newGatedFixture(t, key, append([]cencoritest.Option{cencoritest.WithMemoryEnabled()}, opts...)...)
}

func newGatedFixture(t *testing.T, key string, opts ...cencoritest.Option) *fixture {
	t.Helper()
	clk := newClock()
	fake := cencoritest.New(append([]cencoritest.Option{cencoritest.WithClock(clk.Now)}, opts...)...)
	hs := fake.Start()
	t.Cleanup(hs.Close)
	return newFixtureAt(t, key, hs.URL, fake, clk)
}

func newFixtureAt(t *testing.T, key, base string, fake *cencoritest.Server, clk *testClock) *fixture {
	t.Helper()
	cfg, ok, err := LoadConfig(env{EnvAPIKey: key, EnvAPIURL: base, EnvGatewayURL: base}.get)
	if err != nil || !ok {
		t.Fatalf("LoadConfig: %v %v", ok, err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := New(cfg, Options{Now: clk.Now, Sleep: clk.Sleep, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{c: c, fake: fake, url: base, clk: clk, logs: &logs}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func wantKind(t *testing.T, err, kind error) *provider.UpstreamError {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error = %v (%T), want %v", err, err, kind)
	}
	var ue *provider.UpstreamError
	errors.As(err, &ue)
	return ue
}

func wantFieldError(t *testing.T, err error, field string) {
	t.Helper()
	var fe *provider.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error = %v (%T), want a FieldError on %s", err, err, field)
	}
	if fe.Field != field {
		t.Fatalf("FieldError on %q (%v), want %q", fe.Field, fe, field)
	}
}

func wantNotFound(t *testing.T, err error, what string) {
	t.Helper()
	var nf *provider.NotFoundError
	if !errors.As(err, &nf) || nf.What != what {
		t.Fatalf("error = %v (%T), want NotFoundError{%s}", err, err, what)
	}
}

func noSecret(t *testing.T, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			t.Fatalf("%q contains a secret", s)
		}
	}
}
