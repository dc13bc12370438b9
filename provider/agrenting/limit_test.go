package agrenting

import (
	"errors"
	"strings"
	"testing"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// A caller without a scope for Agrenting's types gets a sixth of the
// agent's limit (16 of 100 a minute), then a clear refusal with nothing
// sent; a caller with content:read:tasks still goes straight through, and
// Describe reports the refusal instead of failing.
func TestLowScopeShareOfAgentLimit(t *testing.T) {
	f := newFixture(t, keyEnv())
	if err := f.c.Authenticate(t.Context()); err != nil { // the session, made as keygate itself
		t.Fatal(err)
	}
	low := auth.WithCallerScopes(t.Context(), auth.Scopes{{Action: auth.ContentRead, Type: "memories"}})
	sent := f.fake.Requests("/api/v1/tasks")
	var refusal *provider.RationedError
	for i := range 20 {
		_, err := f.c.List(low, tasksQ)
		if i < 16 && err != nil {
			t.Fatalf("request %d within the share: %v", i+1, err)
		}
		if i >= 16 && !errors.As(err, &refusal) {
			t.Fatalf("request %d beyond the share: %v", i+1, err)
		}
	}
	if n := f.fake.Requests("/api/v1/tasks") - sent; n != 16 {
		t.Errorf("%d requests reached Agrenting, want 16", n)
	}
	if !strings.Contains(refusal.Error(), "keygate keeps Agrenting's rate limit (100 requests per minute per agent)") ||
		!strings.Contains(refusal.Fix(), "use a key with content:read:tasks") || len(f.clk.Slept()) != 0 {
		t.Errorf("refusal %q, slept %v", refusal.Error(), f.clk.Slept())
	}
	d, err := f.c.Describe(low)
	if err != nil || len(d.Credentials) != 1 || !strings.Contains(d.Credentials[0].Detail, "keygate keeps Agrenting's rate limit") {
		t.Errorf("Describe: %+v, %v", d, err)
	}
	scoped := auth.WithCallerScopes(t.Context(), auth.Scopes{{Action: auth.ContentRead, Type: TypeTasks}})
	if _, err := f.c.List(scoped, tasksQ); err != nil || len(f.clk.Slept()) != 0 {
		t.Errorf("scoped caller: %v, slept %v", err, f.clk.Slept())
	}
}
