package credentials_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/policy"
	"github.com/keygate/keygate/provider/local"
)

// grantWorld is a store with grants: the service sees them, and principals
// are made as the embedded authorization server's verifier makes them
// (authserver.Verifier.Verify: KeyID the grant, CreatedBy its approver,
// the grant's scopes and expiry).
type grantWorld struct {
	*world
}

func newGrantWorld(t *testing.T) grantWorld {
	w := newWorld(t, 1)
	w.svc.Grants = w.store
	return grantWorld{w}
}

// key mints a key with the operator's authority and returns its principal.
func (w grantWorld) key(days int, scopes ...string) *auth.Principal {
	w.t.Helper()
	sc, err := auth.ParseScopes(scopes)
	if err != nil {
		w.t.Fatal(err)
	}
	is, err := w.svc.Create(w.t.Context(), credentials.OperatorCaller, w.ring, credentials.CreateRequest{Name: "k", Scopes: sc,
		ExpiresAt: w.m.now.Add(time.Duration(days) * 24 * time.Hour), Deliver: "reveal"})
	if err != nil {
		w.t.Fatal(err)
	}
	p, err := w.store.Verify(w.t.Context(), is.Secret.Reveal())
	if err != nil {
		w.t.Fatal(err)
	}
	return &p
}

// grant stores a grant approved by key approver and returns its principal.
func (w grantWorld) grant(approver *auth.Principal, days int, scopes ...string) *auth.Principal {
	w.t.Helper()
	sc, err := auth.ParseScopes(scopes)
	if err != nil {
		w.t.Fatal(err)
	}
	g, err := w.store.CreateGrant(w.t.Context(), local.NewGrant{ClientID: "dcr_test", ClientName: "Test client", RedirectHost: "127.0.0.1",
		Resource: "http://127.0.0.1:1/mcp", Scopes: sc, ApprovedBy: approver.KeyID, ExpiresAt: w.m.now.Add(time.Duration(days) * 24 * time.Hour)})
	if err != nil {
		w.t.Fatal(err)
	}
	return &auth.Principal{KeyID: g.ID, Name: g.ClientName, Scopes: sc, CreatedAt: g.CreatedAt, ExpiresAt: g.ExpiresAt,
		CreatedBy: g.ApprovedBy, Source: auth.SourceBearer}
}

func (w grantWorld) create(p *auth.Principal, days int, scopes ...string) (credentials.Issued, error) {
	sc, err := auth.ParseScopes(scopes)
	if err != nil {
		w.t.Fatal(err)
	}
	return w.svc.Create(w.t.Context(), caller(p), w.ring, credentials.CreateRequest{Name: "made", Scopes: sc,
		ExpiresAt: w.m.now.Add(time.Duration(days) * 24 * time.Hour), Deliver: "reveal"})
}

func (w grantWorld) revoke(p *auth.Principal, id string) (credentials.Revoked, error) {
	plan, err := w.svc.PlanRevoke(w.t.Context(), caller(p), w.ring, id)
	if err != nil {
		return credentials.Revoked{}, err
	}
	return w.svc.Revoke(w.t.Context(), plan)
}

func wantDenied(t *testing.T, err error, field, text string) {
	t.Helper()
	var d *policy.Denied
	if !errors.As(err, &d) || d.Field != field || !strings.Contains(d.Reason, text) || d.Fix == "" {
		t.Fatalf("error %v, want a refusal of %q saying %q, with a fix", err, field, text)
	}
}

// TestGrantIsItsApproversAuthorityNarrowed: a grant acts as the key that
// approved it, within the grant's scopes and lifetime; what it creates
// belongs to that key and outlives the grant.
func TestGrantIsItsApproversAuthorityNarrowed(t *testing.T) {
	w := newGrantWorld(t)
	admin := w.key(365, "admin")
	reader := w.grant(admin, 7, "content:read")
	writer := w.grant(admin, 7, "content:read", "credentials:write")

	_, err := w.create(reader, 1, "content:read")
	wantDenied(t, err, "", "creating keys needs credentials:write")
	_, err = w.create(writer, 1, "content:write")
	wantDenied(t, err, "scopes", "cannot grant content:write")
	_, err = w.create(writer, 30, "content:read")
	wantDenied(t, err, "expires_in_days", "outlive your credential")

	made, err := w.create(writer, 1, "content:read")
	if err != nil {
		t.Fatal(err)
	}
	if made.Key.CreatedBy != admin.KeyID {
		t.Fatalf("a key created through a grant has created_by %q, want the approving key %s", made.Key.CreatedBy, admin.KeyID)
	}
	if _, err := w.revoke(admin, writer.KeyID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.Verify(t.Context(), made.Secret.Reveal()); err != nil {
		t.Fatalf("the key made through a grant died with the grant: %v", err)
	}
}

// TestGrantCannotRevokeWhatItsApproverDoesNotOwn: a grant with
// credentials:write approved by a non-admin key revokes only what that key
// owns: not a colleague's key, nor a grant a colleague approved.
func TestGrantCannotRevokeWhatItsApproverDoesNotOwn(t *testing.T) {
	w := newGrantWorld(t)
	alice := w.key(30, "content:read", "credentials:read", "credentials:write")
	bob := w.key(30, "content:read", "credentials:read", "credentials:write")
	alices := w.grant(alice, 7, "content:read", "credentials:write")
	bobs := w.grant(bob, 7, "content:read")

	_, err := w.revoke(alices, bob.KeyID)
	wantDenied(t, err, "credential", "neither yours nor one your key created")
	_, err = w.revoke(alices, bobs.KeyID)
	wantDenied(t, err, "credential", "approved neither by your key")
	_, err = w.revoke(alices, "gr_doesnotexist00000")
	wantDenied(t, err, "credential", "approved neither by your key")
	if _, err := w.store.LiveGrant(t.Context(), bobs.KeyID); err != nil {
		t.Fatalf("bob's grant ended: %v", err)
	}

	child, err := w.create(alices, 1, "content:read")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.revoke(alices, child.Key.ID); err != nil {
		t.Fatalf("the grant may revoke a key its approver owns: %v", err)
	}
	// "current" is the grant itself: it may end itself.
	res, err := w.revoke(alices, "current")
	if err != nil || res.Grant == nil || res.Grant.ID != alices.KeyID || res.Already {
		t.Fatalf("revoking current through a grant: %+v %v", res, err)
	}
	if _, err := w.store.LiveGrant(t.Context(), alices.KeyID); !errors.Is(err, local.ErrGrantEnded) {
		t.Fatalf("the grant still works: %v", err)
	}
	// A grant cannot be rotated.
	_, err = w.svc.PlanRotate(t.Context(), caller(bob), w.ring, credentials.RotateRequest{Credential: bobs.KeyID, Deliver: "reveal"})
	wantDenied(t, err, "credential", "cannot be rotated")
}

// TestGrantFollowsItsApproversRotation: a grant stays live while its
// approving key or a key it was rotated into works (local.Store.LiveGrant),
// so it acts as the newest of them: not as a superseded key, which may
// make nothing.
func TestGrantFollowsItsApproversRotation(t *testing.T) {
	w := newGrantWorld(t)
	alice := w.key(30, "content:read", "credentials:write")
	g := w.grant(alice, 7, "content:read", "credentials:write")
	plan, err := w.svc.PlanRotate(t.Context(), credentials.OperatorCaller, w.ring, credentials.RotateRequest{Credential: alice.KeyID, Grace: time.Hour, Deliver: "reveal"})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := w.svc.Rotate(t.Context(), plan)
	if err != nil {
		t.Fatal(err)
	}
	a, err := w.svc.Actor(t.Context(), caller(g))
	if err != nil {
		t.Fatal(err)
	}
	if a.Principal.KeyID != rotated.New.ID || a.SupersededBy != "" || a.Grant != g.KeyID {
		t.Fatalf("actor %+v, want the successor %s, not superseded, through grant %s", a, rotated.New.ID, g.KeyID)
	}
	made, err := w.create(g, 1, "content:read")
	if err != nil || made.Key.CreatedBy != rotated.New.ID {
		t.Fatalf("create through the grant after its approver's rotation: %+v %v", made.Key, err)
	}
}

// TestGrantsAreListedToWhoOwnsTheirApprover: admin sees every grant; a key
// sees the grants approved by keys it owns; a grant with credentials:read
// sees its approver's.
func TestGrantsAreListedToWhoOwnsTheirApprover(t *testing.T) {
	w := newGrantWorld(t)
	admin := w.key(365, "admin")
	alice := w.key(30, "content:read", "credentials:read", "credentials:write")
	bob := w.key(30, "content:read", "credentials:read")
	alices := w.grant(alice, 7, "content:read", "credentials:read")
	bobs := w.grant(bob, 7, "content:read")
	ids := func(p *auth.Principal) []string {
		t.Helper()
		l, err := w.svc.ListCredentials(t.Context(), caller(p), w.ring)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, g := range l.Grants {
			out = append(out, g.ID)
		}
		slices.Sort(out)
		return out
	}
	for name, tc := range map[string]struct {
		who  *auth.Principal
		want []string
	}{
		"admin":         {admin, []string{bobs.KeyID, alices.KeyID}},
		"alice":         {alice, []string{alices.KeyID}},
		"bob":           {bob, []string{bobs.KeyID}},
		"alice's grant": {alices, []string{alices.KeyID}},
	} {
		slices.Sort(tc.want)
		if got := ids(tc.who); !slices.Equal(got, tc.want) {
			t.Errorf("%s lists grants %v, want %v", name, got, tc.want)
		}
	}
	// Revoking the approving key ends the grant.
	if _, err := w.revoke(admin, alice.KeyID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.LiveGrant(t.Context(), alices.KeyID); !errors.Is(err, local.ErrGrantEnded) {
		t.Fatalf("alice's grant outlived her key: %v", err)
	}
}

// TestExternalSubjectHoldsNoKey: an external issuer's subject without
// admin creates, rotates and revokes nothing, lists nothing and is told
// why; one mapped to admin acts as the operator.
func TestExternalSubjectHoldsNoKey(t *testing.T) {
	w := newGrantWorld(t)
	alice := w.key(30, "content:read")
	sc, _ := auth.ParseScopes([]string{"credentials:read", "credentials:write", "content:read"})
	ext := &auth.Principal{KeyID: "ext:alice@example.com", Scopes: sc, ExpiresAt: w.m.now.Add(time.Hour), CreatedBy: "https://idp.example", Source: auth.SourceBearer}

	_, err := w.create(ext, 1, "content:read")
	wantDenied(t, err, "", "stands for no keygate key")
	_, err = w.revoke(ext, alice.KeyID)
	wantDenied(t, err, "", "stands for no keygate key")
	_, err = w.svc.PlanRotate(t.Context(), caller(ext), w.ring, credentials.RotateRequest{Credential: alice.KeyID, Deliver: "reveal"})
	wantDenied(t, err, "", "stands for no keygate key")
	if _, err := w.revoke(ext, "current"); err == nil || !strings.Contains(err.Error(), "external issuer") {
		t.Fatalf("revoke current: %v", err)
	}
	l, err := w.svc.ListCredentials(t.Context(), caller(ext), w.ring)
	if err != nil || len(l.Keys) != 0 || len(l.Grants) != 0 || !strings.Contains(l.Note, "stands for no keygate key") {
		t.Fatalf("list: %+v %v", l, err)
	}

	adminScopes, _ := auth.ParseScopes([]string{"admin"})
	extAdmin := &auth.Principal{KeyID: "ext:root", Scopes: adminScopes, ExpiresAt: w.m.now.Add(time.Hour), Source: auth.SourceBearer}
	made, err := w.create(extAdmin, 30, "content:read")
	if err != nil || made.Key.CreatedBy != "" {
		t.Fatalf("an admin external subject creates as the operator: %+v %v", made.Key, err)
	}
	if l, err := w.svc.ListCredentials(t.Context(), caller(extAdmin), w.ring); err != nil || len(l.Keys) < 2 || l.Note != "" {
		t.Fatalf("an admin external subject lists every key: %+v %v", l, err)
	}
}
