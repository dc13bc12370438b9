package tools

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/provider/cencori"
	"github.com/keygate/keygate/provider/cencori/cencoritest"
)

// upstreamClock is the Cencori client's and fake's clock: Sleep moves it
// instead of waiting, and records every wait the rate limiter asks for.
type upstreamClock struct {
	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

func (c *upstreamClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *upstreamClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
	c.t = c.t.Add(d)
	return nil
}

func (c *upstreamClock) Slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.slept)
}

// cencoriEnv is keygate with the local store and a Cencori client on the
// fake, whose live credential checks are shared for ttl.
type cencoriEnv struct {
	*env
	fake   *cencoritest.Server
	client *cencori.Client
	clk    *upstreamClock
}

func newCencoriEnv(t *testing.T, ttl time.Duration) *cencoriEnv {
	t.Helper()
	e := newEnv(t)
	clk := &upstreamClock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	fake := cencoritest.New(cencoritest.WithClock(clk.Now), cencoritest.WithMemoryEnabled())
	srv := fake.Start()
	t.Cleanup(srv.Close)
	vars := map[string]string{"CENCORI_API_KEY": cencoritest.DemoSecretKey, "CENCORI_API_URL": srv.URL, "CENCORI_GATEWAY_URL": srv.URL}
	cfg, ok, err := cencori.LoadConfig(func(name string) (string, string, bool) { v, ok := vars[name]; return v, "env", ok })
	if err != nil || !ok {
		t.Fatalf("cencori config: %v", err)
	}
	c, err := cencori.New(cfg, cencori.Options{Now: clk.Now, Sleep: clk.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	e.redactor.Add(cencoritest.DemoSecretKey)
	e.deps.Providers = NewProviders(e.localProvider(e.store),
		Provider{Name: "cencori", Content: c, Inspect: c, Ring: credentials.Ring{Provider: "cencori", RotateHint: cencori.RotateHint}})
	e.deps.InspectTTL = ttl
	e.connect()
	return &cencoriEnv{env: e, fake: fake, client: c, clk: clk}
}

const rationedText = "keygate keeps Cencori's rate limit (60 requests per minute per project) for callers with a scope for it"

// adminReadsWithoutWaiting checks that the admin's content call goes
// straight through: one request, and no wait asked of the limiter.
func (e *cencoriEnv) adminReadsWithoutWaiting(t *testing.T) {
	t.Helper()
	e.actAs(e.admin)
	sent, slept := e.fake.TotalRequests(), len(e.clk.Slept())
	mustOK(t, e.call("content_list", map[string]any{"provider": "cencori", "type": "memories"}))
	if waits := e.clk.Slept()[slept:]; len(waits) != 0 {
		t.Errorf("the admin's content call waited %v for the rate limiter", waits)
	}
	if n := e.fake.TotalRequests() - sent; n != 1 {
		t.Errorf("the admin's content call made %d requests, want 1", n)
	}
}

// A token with no scope for Cencori (content:read:posts; Cencori's only
// type is memories) calls auth_whoami 120 times with sharing off: only its
// share of the limit (10 of 60 a minute) reaches Cencori, the rest is
// refused at once with a clear answer, and the admin's content call that
// follows neither waits nor is refused.
func TestLowScopeCannotSpendCencoriLimit(t *testing.T) {
	e := newCencoriEnv(t, -1)
	low, _ := e.mint("posts-reader", "content:read:posts")
	e.actAs(low)
	refused := 0
	for i := range 120 {
		r := mustOK(t, e.call("auth_whoami", map[string]any{"provider": "cencori"}))
		if strings.Contains(r.Text, rationedText) {
			refused++
			if !strings.Contains(r.Text, "use a key with content:read:memories") || !strings.Contains(r.Text, "retry in ") {
				t.Fatalf("call %d: the refusal does not say what to do: %s", i+1, r.Text)
			}
		}
	}
	// A whoami check costs two requests (metrics, and whether memory is
	// served), so the share of 10 lets 5 through.
	if n, sent := e.fake.Requests("/v1/metrics"), e.fake.TotalRequests(); n != 5 || sent > 10 || refused != 115 {
		t.Errorf("%d whoami checks reached Cencori (%d requests) and %d were refused; want 5 (at most 10 requests) and 115", n, sent, refused)
	}
	if s := e.clk.Slept(); len(s) != 0 {
		t.Errorf("the low-scope calls waited %v; they must be refused instead", s)
	}
	// auth_check_scopes' live check is refused the same way, as an error.
	r := e.call("auth_check_scopes", map[string]any{"provider": "cencori", "operations": []any{"content:read"}})
	if !r.IsError || !strings.Contains(r.Text, rationedText) || !strings.Contains(r.Text, "content:read:memories") {
		t.Errorf("check_scopes: %+v", r.Text)
	}
	e.adminReadsWithoutWaiting(t)
}

// With sharing on (the default), 120 whoami calls cost one request, for
// any caller; a new one is made only when the answer is older than the TTL.
func TestWhoamiFloodCostsOneCencoriCheck(t *testing.T) {
	e := newCencoriEnv(t, 0)
	low, _ := e.mint("posts-reader", "content:read:posts")
	e.actAs(low)
	for range 120 {
		r := mustOK(t, e.call("auth_whoami", map[string]any{"provider": "cencori"}))
		if !strings.Contains(r.Text, "CENCORI_API_KEY") || !strings.Contains(r.Text, ": ok") {
			t.Fatalf("whoami: %s", r.Text)
		}
	}
	if n := e.fake.Requests("/v1/metrics"); n != 1 {
		t.Errorf("120 whoami calls made %d requests, want 1", n)
	}
	e.clock.t = e.clock.t.Add(DefaultInspectTTL)
	mustOK(t, e.call("auth_whoami", map[string]any{"provider": "cencori"}))
	if n := e.fake.Requests("/v1/metrics"); n != 2 {
		t.Errorf("after the TTL: %d requests, want 2", n)
	}
	e.adminReadsWithoutWaiting(t)
}

// A shared answer shows nobody more than a live one would: a caller
// without a credential sees no upstream description at all, a low-scope
// caller sees exactly what Cencori's Describe says live, and upstream
// reasons are attached only to checks keygate allows the caller.
func TestSharedCheckRevealsNoMore(t *testing.T) {
	e := newCencoriEnv(t, 0)
	mustOK(t, e.call("auth_whoami", map[string]any{"provider": "cencori"}))
	mustOK(t, e.call("auth_check_scopes", map[string]any{"provider": "cencori", "operations": []any{"content:read"}}))
	// whoami asks for the metrics and whether memory is served; the
	// scope check asks whether memory is served.
	if n := e.fake.TotalRequests(); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}

	e.actAs("")
	r := e.call("auth_whoami", map[string]any{"provider": "cencori"})
	if r.Structured["upstream"] != nil || strings.Contains(r.Text, "CENCORI_API_KEY") {
		t.Errorf("a caller without a credential sees the upstream description: %s", r.Text)
	}

	low, _ := e.mint("posts-reader", "content:read:posts")
	e.actAs(low)
	r = mustOK(t, e.call("auth_whoami", map[string]any{"provider": "cencori"}))
	live, err := e.client.Describe(auth.WithCallerScopes(context.Background(), auth.Scopes{{Action: auth.ContentRead, Type: "posts"}}))
	if err != nil {
		t.Fatal(err)
	}
	// The usage figures move with every request; everything else, the
	// shape included, must be the same.
	got, want := withoutUsage(t, r.Structured["upstream"]), withoutUsage(t, []any{live})
	if got != want {
		t.Errorf("shared description differs from a live one:\n got %s\nwant %s", got, want)
	}
	r = mustOK(t, e.call("auth_check_scopes", map[string]any{"provider": "cencori", "operations": []any{"content:read"}}))
	if strings.Contains(r.Text, "upstream:") || get(r.Structured, "checks", 0, "allowed") != false {
		t.Errorf("a denied check carries the shared upstream answer: %s", r.Text)
	}
	if n := e.fake.TotalRequests(); n != 5 {
		t.Errorf("%d requests, want the 3 of the shared checks and the 2 of the live Describe", n)
	}
}

// withoutUsage is descriptions as JSON with the usage figures' values
// blanked (their keys stay).
func withoutUsage(t *testing.T, v any) string {
	t.Helper()
	b, _ := json.Marshal(v)
	var ds []map[string]any
	if err := json.Unmarshal(b, &ds); err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		details, _ := d["details"].(map[string]any)
		for _, k := range []string{"requests_24h", "cost_24h", "cost_usd_24h", "tokens_24h"} {
			if _, ok := details[k]; ok {
				details[k] = "…"
			}
		}
	}
	out, _ := json.Marshal(ds)
	return string(out)
}
