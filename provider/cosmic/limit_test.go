package cosmic

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/cosmic/cosmictest"
)

// A caller without a scope for the bucket's types gets a sixth of the
// limit (16 of 100 a second), then a clear refusal with nothing sent. A
// scope narrowed to a type counts once Types has listed it.
func TestLowScopeShareOfBucketLimit(t *testing.T) {
	fake := cosmictest.New()
	ts := fake.Start()
	t.Cleanup(ts.Close)
	cfg, _, err := LoadConfig(fakeEnv(fake).Get)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC) // still: the window never moves
	var slept []time.Duration
	c, err := New(cfg, Options{Now: func() time.Time { return now },
		Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	posts := auth.WithCallerScopes(t.Context(), auth.Scopes{{Action: auth.ContentRead, Type: "posts"}})
	objects := fake.BucketPath("/objects")
	var refusal *provider.RationedError
	for i := range 20 {
		_, err := c.List(posts, provider.ListQuery{Type: "posts"})
		if i < 16 && err != nil {
			t.Fatalf("request %d within the share: %v", i+1, err)
		}
		if i >= 16 && !errors.As(err, &refusal) {
			t.Fatalf("request %d beyond the share: %v", i+1, err)
		}
	}
	if n := fake.Requests(objects); n != 16 || len(slept) != 0 {
		t.Errorf("%d requests reached Cosmic (want 16), slept %v", n, slept)
	}
	if !strings.Contains(refusal.Error(), "keygate keeps Cosmic's rate limit (100 requests per second per bucket)") || refusal.RetryAfter != time.Second {
		t.Errorf("refusal %q after %s", refusal.Error(), refusal.RetryAfter)
	}
	d, _ := c.Describe(posts)
	for _, cr := range d.Credentials {
		if cr.Verified != provider.VerifiedNotChecked || !strings.Contains(cr.Detail, "not checked now: keygate keeps Cosmic's rate limit") {
			t.Errorf("Describe while refused: %+v", cr)
		}
	}

	// Once keygate has listed the types (as itself here), posts is one of
	// them and content:read:posts comes first.
	if _, err := c.Types(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(posts, provider.ListQuery{Type: "posts"}); err != nil {
		t.Errorf("content:read:posts after Types: %v", err)
	}
	memories := auth.WithCallerScopes(t.Context(), auth.Scopes{{Action: auth.ContentRead, Type: "memories"}})
	if c.api.Caller.Budget.Priority(memories) {
		t.Error("content:read:memories (not a bucket type) comes first")
	}
}
