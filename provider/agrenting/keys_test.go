package agrenting

import (
	"errors"
	"strings"
	"testing"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
)

func TestListCreateRevoke(t *testing.T) {
	f := newFixture(t, keyEnv())
	ctx := t.Context()
	keys, err := f.c.ListKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].ID != "cred_demo" || !strings.HasSuffix(keys[0].Masked, agrentingtest.DemoAgentKey[len(agrentingtest.DemoAgentKey)-4:]) {
		t.Fatalf("%+v %v", keys, err)
	}
	noSecret(t, keys[0].Masked, agrentingtest.DemoAgentKey)
	issued, err := f.c.CreateKey(ctx, "ci")
	if err != nil || issued.Secret.IsZero() || issued.Key.Name != "ci" || issued.Key.RevokedAt.IsZero() == false {
		t.Fatalf("%+v %v", issued, err)
	}
	// The new key works on its own.
	g := newFixtureAt(t, env{EnvAPIKey: issued.Secret.Reveal()}, f.base, f.fake, f.clk)
	if _, err := g.c.List(ctx, tasksQ); err != nil {
		t.Fatalf("new key: %v", err)
	}
	k, already, err := f.c.RevokeKey(ctx, issued.Key.ID)
	if err != nil || already || k.RevokedAt.IsZero() {
		t.Fatalf("%+v %v %v", k, already, err)
	}
	if _, err := g.c.List(ctx, tasksQ); !errors.Is(err, provider.ErrUnauthorized) {
		t.Errorf("revoked key still works: %v", err)
	}
	deletes := f.fake.Requests("/api/v1/agents/" + agrentingtest.DemoAgentID + "/credentials/" + issued.Key.ID)
	k, already, err = f.c.RevokeKey(ctx, issued.Key.ID)
	if err != nil || !already || k.RevokedAt.IsZero() || f.fake.Requests("/api/v1/agents/"+agrentingtest.DemoAgentID+"/credentials/"+issued.Key.ID) != deletes {
		t.Errorf("second revoke: %v %v", already, err)
	}
	_, _, err = f.c.RevokeKey(ctx, "cred_nope")
	wantNotFound(t, err, "key")
	_, _, err = f.c.RevokeKey(ctx, "cred_demo")
	wantFieldError(t, err, "id")
}

// The undocumented paths come from configuration.
func TestCredentialPathOverrides(t *testing.T) {
	rot, rev := "/agents/:agent_id/keys/:id/roll", "/agents/:agent_id/keys/:id"
	clk := newClock()
	fake := agrentingtest.New(agrentingtest.WithClock(clk.Now), agrentingtest.WithCredentialPaths(rot, rev))
	hs := fake.Start()
	defer hs.Close()
	other := fake.AddCredential(agrentingtest.DemoAgentID, "other", "agr_other_key_0000000000000000")
	// Defaults against a platform on other paths: a clear error.
	f := newFixtureAt(t, keyEnv(), hs.URL+"/api/v1", fake, clk)
	_, _, err := f.c.RevokeKey(t.Context(), other)
	if !errors.Is(err, provider.ErrUnsupported) || !strings.Contains(err.Error(), EnvRevokePath) {
		t.Fatalf("%v", err)
	}
	e := keyEnv()
	e[EnvRotatePath], e[EnvRevokePath] = rot, rev
	g := newFixtureAt(t, e, hs.URL+"/api/v1", fake, clk)
	if _, already, err := g.c.RevokeKey(t.Context(), other); err != nil || already {
		t.Fatal(err)
	}
}
