package agrenting

import (
	"errors"
	"strings"
	"testing"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
	"github.com/keygate/keygate/provider/internal/providertest"
)

func TestListCreateRevoke(t *testing.T) {
	f := newFixture(t, keyEnv())
	ctx := t.Context()
	keys, err := f.c.ListKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].ID != "cred_demo" || !strings.HasSuffix(keys[0].Masked, agrentingtest.DemoAgentKey[len(agrentingtest.DemoAgentKey)-4:]) {
		t.Fatalf("%+v %v", keys, err)
	}
	providertest.NoSecret(t, keys[0].Masked, agrentingtest.DemoAgentKey)
	issued, err := f.c.CreateKey(ctx, "ci")
	if err != nil || issued.Secret.IsZero() || issued.Key.Name != "ci" || !issued.Key.RevokedAt.IsZero() || !strings.HasPrefix(issued.Key.ID, "cred_") {
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
	providertest.WantNotFound(t, err, "key")
	// keygate's own key, by the platform's id (told by the parts of the
	// secret the list shows) and by keygate's name for it.
	_, _, err = f.c.RevokeKey(ctx, "cred_demo")
	providertest.WantFieldError(t, err, "credential")
	own, _ := f.c.OwnKeyID(ctx)
	_, _, err = f.c.RevokeKey(ctx, own)
	providertest.WantFieldError(t, err, "credential")
	if !strings.Contains(err.Error(), "cut keygate off") {
		t.Errorf("%v", err)
	}
}

// keygate's own key is named by its secret, without any request.
func TestOwnKeyIDFromTheSecret(t *testing.T) {
	f := newFixture(t, keyEnv(), agrentingtest.WithoutCredentialList())
	id, err := f.c.OwnKeyID(t.Context())
	if err != nil || id != keyID(agrentingtest.DemoAgentKey) || !isKeyID(id) || strings.Contains(id, agrentingtest.DemoAgentKey[4:12]) {
		t.Fatalf("%q %v", id, err)
	}
	if n := f.fake.Requests("/api/v1/agents/" + agrentingtest.DemoAgentID + "/credentials"); n != 0 {
		t.Errorf("%d list requests", n)
	}
	g := newFixture(t, tokenEnv())
	if id, err := g.c.OwnKeyID(t.Context()); id != "" || err != nil {
		t.Errorf("with a user token: %q %v", id, err)
	}
}

// The guard against revoking keygate's own key must not depend on fields
// no source documents: when the list shows no part of any key, keygate
// cannot tell which is its own, and refuses, saying why (before, it
// compared invented fields, found no match, and revoked its own key).
func TestRevokeGuardWhenTheListShowsNoKey(t *testing.T) {
	f := newFixture(t, keyEnv(), agrentingtest.WithBareCredentialList())
	other := f.fake.AddCredential(agrentingtest.DemoAgentID, "spare", "agr_spare_key_0000000000000000")
	for _, id := range []string{"cred_demo", other} {
		_, _, err := f.c.RevokeKey(t.Context(), id)
		providertest.WantFieldError(t, err, "credential")
		if !strings.Contains(err.Error(), "cannot tell") || !strings.Contains(err.Error(), "dashboard") {
			t.Errorf("%s: %v", id, err)
		}
	}
	for _, c := range f.fake.Credentials(agrentingtest.DemoAgentID) {
		if !c.RevokedAt.IsZero() {
			t.Errorf("key %s was revoked", c.ID)
		}
	}
	if _, err := f.c.List(t.Context(), tasksQ); err != nil {
		t.Errorf("keygate was cut off: %v", err)
	}
}

// Without a list endpoint, what needs one says so, with the reason and
// the fix; revoking keygate's own key is still refused as such.
func TestNoListEndpoint(t *testing.T) {
	f := newFixture(t, keyEnv(), agrentingtest.WithoutCredentialList())
	ctx := t.Context()
	_, err := f.c.ListKeys(ctx)
	providertest.WantFieldError(t, err, "provider")
	var fe *provider.FieldError
	errors.As(err, &fe)
	if !strings.Contains(fe.Problem, "documents no endpoint that lists") || !strings.Contains(fe.Problem, "404 ROUTE_NOT_FOUND") || !strings.Contains(fe.Fix, "dashboard") {
		t.Errorf("%+v", fe)
	}
	_, _, err = f.c.RevokeKey(ctx, "cred_demo")
	providertest.WantFieldError(t, err, "provider")
	if !strings.Contains(err.Error(), "revoke a key by id") {
		t.Errorf("%v", err)
	}
	own, _ := f.c.OwnKeyID(ctx)
	_, _, err = f.c.RevokeKey(ctx, own)
	providertest.WantFieldError(t, err, "credential")
	// Creating is documented and needs no list.
	issued, err := f.c.CreateKey(ctx, "ci")
	if err != nil || issued.Secret.IsZero() {
		t.Fatalf("create: %v", err)
	}
}

// The revoke path is undocumented and comes from configuration.
func TestRevokePathOverride(t *testing.T) {
	rev := "/agents/:agent_id/keys/:id"
	clk := providertest.NewClock()
	fake := agrentingtest.New(agrentingtest.WithClock(clk.Now), agrentingtest.WithRevokePath(rev))
	hs := fake.Start()
	defer hs.Close()
	other := fake.AddCredential(agrentingtest.DemoAgentID, "other", "agr_other_key_0000000000000000")
	// Defaults against a platform on another path: a clear error.
	f := newFixtureAt(t, keyEnv(), hs.URL+"/api/v1", fake, clk)
	_, _, err := f.c.RevokeKey(t.Context(), other)
	if !errors.Is(err, provider.ErrUnsupported) || !strings.Contains(err.Error(), EnvRevokePath) {
		t.Fatalf("%v", err)
	}
	e := keyEnv()
	e[EnvRevokePath] = rev
	g := newFixtureAt(t, e, hs.URL+"/api/v1", fake, clk)
	if _, already, err := g.c.RevokeKey(t.Context(), other); err != nil || already {
		t.Fatal(err)
	}
}

// A created key is found in the answer whatever its shape; a shape with
// no key is an outcome-unknown error that names no secret.
func TestCreateKeyAnswerShapes(t *testing.T) {
	f := newFixture(t, keyEnv())
	path := "/api/v1/agents/" + agrentingtest.DemoAgentID + "/credentials"
	f.fake.FailNextOn("POST", path, 201, nil, `{"data":{"key":"agr_made_by_hand_0000000000000001"},"meta":{"version":"1.0"}}`)
	issued, err := f.c.CreateKey(t.Context(), "x")
	if err != nil || issued.Secret.Reveal() != "agr_made_by_hand_0000000000000001" || issued.Key.ID != keyID("agr_made_by_hand_0000000000000001") {
		t.Fatalf("%+v %v", issued, err)
	}
	f.fake.FailNextOn("POST", path, 201, nil, `{"data":{"id":"cred_x","created_at":"2026-01-01T00:00:00Z"},"meta":{"version":"1.0"}}`)
	_, err = f.c.CreateKey(t.Context(), "x")
	if !errors.Is(err, provider.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "dashboard") {
		t.Errorf("%v", err)
	}
}
