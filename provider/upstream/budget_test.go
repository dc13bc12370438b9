package upstream

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// fakeClock moves only when Sleep is called, and records every sleep.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
	c.t = c.t.Add(d)
	return nil
}

func (c *fakeClock) Slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.slept)
}

// testBudget is a Cencori-like budget, 6 requests a minute, whose only
// content type is memories: callers without a scope for it get 1.
func testBudget(clk *fakeClock) *Budget {
	return NewBudget(BudgetConfig{Provider: "Cencori", Limit: 6, Window: time.Minute, Terms: "6 requests per minute",
		HasType: func(typ string) bool { return typ == "memories" }, Scope: "content:read:memories",
		Now: clk.Now, Sleep: clk.Sleep})
}

func as(t *testing.T, scopes ...string) context.Context {
	t.Helper()
	var ss auth.Scopes
	if len(scopes) > 0 {
		var err error
		if ss, err = auth.ParseScopes(scopes); err != nil {
			t.Fatal(err)
		}
	}
	return auth.WithCallerScopes(t.Context(), ss)
}

func TestBudgetPriority(t *testing.T) {
	b := testBudget(newFakeClock())
	tests := []struct {
		name string
		ctx  context.Context
		want bool
	}{
		{"admin", as(t, "admin"), true},
		{"content:read", as(t, "content:read"), true},
		{"content:read:memories", as(t, "content:read:memories"), true},
		{"content:read:posts", as(t, "content:read:posts"), false},
		{"credentials:read", as(t, "credentials:read"), false},
		{"no credential", as(t), false},
		{"not a tool call", t.Context(), true},
	}
	for _, tc := range tests {
		if got := b.Priority(tc.ctx); got != tc.want {
			t.Errorf("%s: Priority = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A caller without a scope gets its share and is then refused at once,
// without waiting; a caller with a scope still finds the rest free.
func TestBudgetLowShareRefusedNotQueued(t *testing.T) {
	clk := newFakeClock()
	b := testBudget(clk)
	if b.LowShare() != 1 {
		t.Fatalf("LowShare = %d", b.LowShare())
	}
	low := as(t, "content:read:posts")
	if err := b.Take(low); err != nil {
		t.Fatalf("first low request: %v", err)
	}
	clk.Advance(10 * time.Second)
	err := b.Take(low)
	var re *provider.RationedError
	if !errors.As(err, &re) || !errors.Is(err, provider.ErrRateLimited) {
		t.Fatalf("second low request: %v", err)
	}
	if re.RetryAfter != 50*time.Second || re.Fix() != "retry in 50 s or use a key with content:read:memories" {
		t.Errorf("refusal %+v: %s", re, re.Fix())
	}
	if !strings.Contains(re.Error(), "keygate keeps Cencori's rate limit (6 requests per minute) for callers with a scope for it") {
		t.Errorf("message %q", re.Error())
	}
	admin := as(t, "admin")
	for i := range 5 {
		if err := b.Take(admin); err != nil {
			t.Fatalf("admin request %d: %v", i+1, err)
		}
	}
	if s := clk.Slept(); len(s) != 0 {
		t.Errorf("slept %v: nobody should have waited", s)
	}
	// A window later the share is back.
	clk.Advance(50 * time.Second)
	if err := b.Take(low); err != nil {
		t.Errorf("low request a window later: %v", err)
	}
}

// When callers with a scope fill the window, or wait for it, a caller
// without one is refused rather than queued behind or before them.
func TestBudgetLowNeverWaits(t *testing.T) {
	clk := newFakeClock()
	b := testBudget(clk)
	for range 6 {
		if err := b.Take(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	var re *provider.RationedError
	if err := b.Take(as(t)); !errors.As(err, &re) || re.RetryAfter != time.Minute {
		t.Fatalf("low request into a full window: %v", err)
	}
	if err := b.Take(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := clk.Slept(); !slices.Equal(s, []time.Duration{time.Minute}) {
		t.Errorf("slept %v, want the priority caller's minute only", s)
	}
}

// A provider's request to wait holds everyone back: callers with a scope
// wait, others are refused, and a wait beyond the deadline is an
// ErrRateLimited answer that says nothing was sent.
func TestBudgetHold(t *testing.T) {
	clk := newFakeClock()
	b := testBudget(clk)
	b.Hold(5 * time.Second)
	var re *provider.RationedError
	if err := b.Take(as(t, "credentials:read")); !errors.As(err, &re) || re.RetryAfter != 5*time.Second {
		t.Fatalf("low request while held: %v", err)
	}
	short, cancel := context.WithDeadline(as(t, "admin"), clk.Now().Add(time.Second))
	defer cancel()
	var ue *provider.UpstreamError
	if err := b.Take(short); !errors.As(err, &ue) || ue.RetryAfter != 5*time.Second || !strings.Contains(ue.Message, "nothing was sent") {
		t.Fatalf("admin request past its deadline: %v", err)
	}
	if err := b.Take(as(t, "admin")); err != nil {
		t.Fatal(err)
	}
	if s := clk.Slept(); !slices.Equal(s, []time.Duration{5 * time.Second}) {
		t.Errorf("slept %v", s)
	}
}

// Through a Caller: the refused send is not made, RetryAt holds requests
// back, and a retry that gets no slot leaves the last answer.
func TestCallerBudget(t *testing.T) {
	clk := newFakeClock()
	srv, n := server(t, []int{http.StatusServiceUnavailable}, http.Header{"Retry-After": {"2"}})
	b := NewBudget(BudgetConfig{Provider: "Test", Limit: 6, Window: time.Minute, Terms: "6 a minute", Scope: "content:read:x",
		HasType: func(typ string) bool { return typ == "x" }, Now: clk.Now, Sleep: clk.Sleep,
		RetryAt: func(h http.Header, status int, now time.Time) time.Time {
			if d, ok := RetryAfter(h, now); ok && status == http.StatusServiceUnavailable {
				return now.Add(d)
			}
			return time.Time{}
		}})
	c := &Caller{HTTP: srv.Client(), Budget: b, Now: clk.Now, Sleep: func(context.Context, time.Duration) error { return nil }}
	get := func(ctx context.Context) (*Response, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		return c.Do(req, true)
	}
	// The low caller's one slot goes to the first send; the 503 asks for
	// 2 s, and the retry is refused, so the 503 stands.
	resp, err := get(as(t, "content:read:y"))
	if err != nil || resp.Status != http.StatusServiceUnavailable || n.Load() != 1 {
		t.Fatalf("low caller: %v, %v after %d requests", resp, err, n.Load())
	}
	if _, err := get(as(t, "content:read:y")); !errors.As(err, new(*provider.RationedError)) || n.Load() != 1 {
		t.Fatalf("low caller's second call: %v after %d requests", err, n.Load())
	}
	// A caller with a scope waits out the 2 s the server asked for.
	if resp, err := get(as(t, "content:read:x")); err != nil || resp.Status != http.StatusOK || n.Load() != 2 {
		t.Fatalf("scoped caller: %v, %v", resp, err)
	}
	if s := clk.Slept(); !slices.Equal(s, []time.Duration{2 * time.Second}) {
		t.Errorf("slept %v", s)
	}
}
