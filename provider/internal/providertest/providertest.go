// Package providertest is what the tests of keygate's remote providers
// share: a fake clock and a sleep recorder for a client and its fake, an
// environment for LoadConfig, a debug log to read back, and checks of the
// errors a provider returns.
package providertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/provider"
)

// Clock is a fake clock shared by a client and its fake: Sleep moves it
// instead of waiting, and records each wait. It starts at the real time,
// so that deadlines of contexts made from it make sense. It is safe for
// concurrent use.
type Clock struct {
	// OnSleep, when set, runs at each Sleep, before the clock moves.
	OnSleep func(d time.Duration)

	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

// NewClock returns a Clock at the real time.
func NewClock() *Clock { return NewClockAt(time.Now()) }

// NewClockAt returns a Clock at t.
func NewClockAt(t time.Time) *Clock { return &Clock{t: t} }

// Advance moves the clock by d, as time passing would.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Sleep records d and moves the clock by it, unless ctx is done.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	hook := c.OnSleep
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

// Slept returns every wait asked for, in order.
func (c *Clock) Slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.slept)
}

// Sleeps stands in for a Caller's Sleep on the real clock: it records each
// wait and returns at once (with ctx's error). It is safe for concurrent
// use.
type Sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

// Sleep records d.
func (s *Sleeps) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

// All returns every wait asked for, in order.
func (s *Sleeps) All() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d)
}

// Env is an environment for a provider's LoadConfig.
type Env map[string]string

// Get reads a variable as set in keygate's environment ("env").
func (e Env) Get(name string) (value, source string, ok bool) {
	v, ok := e[name]
	return v, "env", ok
}

// FromFile reads a variable as set in keygate's env file ("env_file").
func (e Env) FromFile(name string) (value, source string, ok bool) {
	v, ok := e[name]
	return v, "env_file", ok
}

// With returns a copy of e with name set to v.
func (e Env) With(name, v string) Env {
	out := maps.Clone(e)
	out[name] = v
	return out
}

// Without returns a copy of e without name.
func (e Env) Without(name string) Env {
	out := maps.Clone(e)
	delete(out, name)
	return out
}

// Log holds what a debug logger wrote; it is safe for concurrent use.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// NewLogger returns a logger of every level and the Log it writes to.
func NewLogger() (*slog.Logger, *Log) {
	l := &Log{}
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})), l
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns the lines written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Context is the test's context, with a deadline that ends a hung test.
func Context(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// WantKind fails the test unless err is kind, and returns err's
// UpstreamError (nil when it has none).
func WantKind(t *testing.T, err, kind error) *provider.UpstreamError {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error = %v (%T), want %v", err, err, kind)
	}
	ue, _ := errors.AsType[*provider.UpstreamError](err)
	return ue
}

// WantFieldError fails the test unless err is a FieldError on field.
func WantFieldError(t *testing.T, err error, field string) {
	t.Helper()
	fe, ok := errors.AsType[*provider.FieldError](err)
	if !ok {
		t.Fatalf("error = %v (%T), want a FieldError on %s", err, err, field)
	}
	if fe.Field != field {
		t.Fatalf("FieldError on %q (%v), want %q", fe.Field, fe, field)
	}
}

// WantNotFound fails the test unless err is a NotFoundError for what.
func WantNotFound(t *testing.T, err error, what string) {
	t.Helper()
	if nf, ok := errors.AsType[*provider.NotFoundError](err); !ok || nf.What != what {
		t.Fatalf("error = %v (%T), want NotFoundError{%s}", err, err, what)
	}
}

// NoSecret fails the test when s contains one of secrets.
func NoSecret(t *testing.T, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			t.Fatalf("%q contains a secret", s)
		}
	}
}

// WantConfigError checks LoadConfig's error: none when name is "";
// otherwise one that names the variable name and does not show the value
// (value "" skips that check).
func WantConfigError(t *testing.T, err error, name, value string) {
	t.Helper()
	switch {
	case name == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case name == "":
	case err == nil:
		t.Fatalf("no error, want one naming %s", name)
	case !strings.Contains(err.Error(), name):
		t.Errorf("error %q does not name %s", err, name)
	case value != "" && strings.Contains(err.Error(), value):
		t.Errorf("error %q contains the value", err)
	}
}

// Eq is the filter condition path $eq v.
func Eq(path string, v any) provider.Condition {
	return provider.Condition{Path: path, Op: provider.OpEq, Value: v}
}

// FieldsOf decodes an object's fields.
func FieldsOf(t *testing.T, o provider.Object) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(o.Fields, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// CrossHostRedirector serves, until the test ends, a redirect of every
// request to the same path on target (a loopback URL) under another host
// name, and returns its URL: a client must not follow it with its key.
func CrossHostRedirector(t *testing.T, target string, status int) string {
	t.Helper()
	other := strings.Replace(target, "127.0.0.1", "localhost", 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other+r.URL.RequestURI(), status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Answer is a fake's answer, its body decoded as a JSON object (nil when
// the body is empty).
type Answer struct {
	Status int
	Header http.Header
	Body   map[string]any
}

// Call sends a request to a fake on loopback and reads its answer; the
// test fails when no answer comes or its body is not a JSON object.
func Call(t *testing.T, method, url string, headers map[string]string, body string) Answer {
	t.Helper()
	var rdr io.Reader
	if body != "" {
		rdr = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rdr)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := Answer{Status: resp.StatusCode, Header: resp.Header}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a.Body); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object", method, req.URL.Path, raw)
		}
	}
	return a
}
