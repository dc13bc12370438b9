package local

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/provider"
)

func newGrant(t *testing.T, s *Store, clock *testClock, approvedBy string, sc ...string) Grant {
	t.Helper()
	g, err := s.CreateGrant(t.Context(), NewGrant{ClientID: "dcr_client", ClientName: "Test client", RedirectHost: "127.0.0.1",
		Resource: "https://kg.example/mcp", Scopes: scopes(t, sc...), ApprovedBy: approvedBy, ExpiresAt: clock.Now().Add(day)})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func wantEnded(t *testing.T, s *Store, id string) {
	t.Helper()
	if _, err := s.LiveGrant(t.Context(), id); !errors.Is(err, ErrGrantEnded) {
		t.Fatalf("LiveGrant(%s) error = %v, want ErrGrantEnded", id, err)
	}
}

func wantLive(t *testing.T, s *Store, id string) Grant {
	t.Helper()
	g, err := s.LiveGrant(t.Context(), id)
	if err != nil {
		t.Fatalf("LiveGrant(%s): %v", id, err)
	}
	return g
}

func TestGrantEndsWithTheKeyThatApprovedIt(t *testing.T) {
	tests := []struct {
		name string
		// end ends the approving credential; the grant must end with it.
		end func(t *testing.T, s *Store, clock *testClock, approver, parent string)
	}{
		{"the key is revoked", func(t *testing.T, s *Store, _ *testClock, approver, _ string) {
			if _, _, _, err := s.RevokeKey(t.Context(), approver); err != nil {
				t.Fatal(err)
			}
		}},
		{"the key that created it is revoked", func(t *testing.T, s *Store, _ *testClock, _, parent string) {
			if _, _, _, err := s.RevokeKey(t.Context(), parent); err != nil {
				t.Fatal(err)
			}
		}},
		{"the key expires", func(t *testing.T, s *Store, clock *testClock, _, _ string) {
			clock.Add(31 * day)
		}},
		{"its successor after a rotation is revoked", func(t *testing.T, s *Store, _ *testClock, approver, _ string) {
			next, err := s.RotateKey(t.Context(), approver, "rot1")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.RetireKey(t.Context(), approver, 0); err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := s.RevokeKey(t.Context(), next.Key.ID); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, clock := newTestStore(t)
			_, parent := mint(t, s, clock, "parent", "admin")
			child, err := s.CreateKey(t.Context(), provider.NewKey{Name: "alice", Scopes: scopes(t, "content:read"),
				ExpiresAt: clock.Now().Add(30 * day), CreatedBy: parent.ID})
			if err != nil {
				t.Fatal(err)
			}
			g, err := s.CreateGrant(t.Context(), NewGrant{ClientID: "c", ClientName: "n", RedirectHost: "h", Resource: "r",
				Scopes: scopes(t, "content:read"), ApprovedBy: child.Key.ID, ExpiresAt: clock.Now().Add(40 * day)})
			if err != nil {
				t.Fatal(err)
			}
			wantLive(t, s, g.ID)
			tt.end(t, s, clock, child.Key.ID, parent.ID)
			wantEnded(t, s, g.ID)
			got, err := s.GetGrant(t.Context(), g.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.ExpiresAt.After(clock.Now()) && got.RevokedReason != GrantRevokedKeyEnded {
				t.Errorf("revoked_reason = %q, want %q", got.RevokedReason, GrantRevokedKeyEnded)
			}
		})
	}
}

func TestGrantSurvivesRotationOfItsKey(t *testing.T) {
	s, clock := newTestStore(t)
	_, k := mint(t, s, clock, "alice", "content:read")
	g := newGrant(t, s, clock, k.ID, "content:read")
	if _, err := s.RotateKey(t.Context(), k.ID, "rot1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RetireKey(t.Context(), k.ID, 0); err != nil {
		t.Fatal(err)
	}
	wantLive(t, s, g.ID)
	// Revoking the old key, already retired, ends its successor too
	// (RevokeKey's lineage), and so the grant.
	if _, _, _, err := s.RevokeKey(t.Context(), k.ID); err != nil {
		t.Fatal(err)
	}
	wantEnded(t, s, g.ID)
}

func TestGrantEndedByItsKeyStaysEnded(t *testing.T) {
	s, clock := newTestStore(t)
	_, k := mint(t, s, clock, "alice", "content:read")
	g := newGrant(t, s, clock, k.ID, "content:read")
	next, err := s.RotateKey(t.Context(), k.ID, "rot1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RetireKey(t.Context(), k.ID, 0); err != nil {
		t.Fatal(err)
	}
	// The rotation is rolled back after the old key was retired: no key of
	// the chain works any more, so the grant ends, and it is recorded so.
	if err := s.DiscardSuccessor(t.Context(), next.Key.ID); err != nil {
		t.Fatal(err)
	}
	wantEnded(t, s, g.ID)
	got, err := s.GetGrant(t.Context(), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.RevokedAt.IsZero() || got.RevokedReason != GrantRevokedKeyEnded {
		t.Fatalf("grant = %+v, want revoked because its key ended", got)
	}
}

func TestGrantExpires(t *testing.T) {
	s, clock := newTestStore(t)
	_, k := mint(t, s, clock, "alice", "content:read")
	g := newGrant(t, s, clock, k.ID, "content:read")
	clock.Add(day)
	wantEnded(t, s, g.ID)
}

func TestCreateGrantRefusesADeadKeyAndBoundsGrantsPerKey(t *testing.T) {
	s, clock := newTestStore(t)
	_, k := mint(t, s, clock, "alice", "content:read")
	var first Grant
	for i := range MaxLiveGrantsPerKey {
		g := newGrant(t, s, clock, k.ID, "content:read")
		if i == 0 {
			first = g
		}
	}
	_, err := s.CreateGrant(t.Context(), NewGrant{ClientID: "c", Scopes: scopes(t, "content:read"), ApprovedBy: k.ID, ExpiresAt: clock.Now().Add(day)})
	var fe *provider.FieldError
	if !errors.As(err, &fe) || !strings.Contains(fe.Problem, fmt.Sprint(MaxLiveGrantsPerKey)) {
		t.Fatalf("grant %d: error = %v, want a FieldError naming the bound", MaxLiveGrantsPerKey+1, err)
	}
	if _, _, err := s.RevokeGrant(t.Context(), first.ID, GrantRevokedByUser); err != nil {
		t.Fatal(err)
	}
	newGrant(t, s, clock, k.ID, "content:read")

	if _, _, _, err := s.RevokeKey(t.Context(), k.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateGrant(t.Context(), NewGrant{ClientID: "c", Scopes: scopes(t, "content:read"), ApprovedBy: k.ID, ExpiresAt: clock.Now().Add(day)})
	if !errors.As(err, &fe) || fe.Field != "token" {
		t.Fatalf("grant by a revoked key: error = %v, want a FieldError on token", err)
	}
}

func TestEndedGrantsAreDeletedAfterRetention(t *testing.T) {
	s, clock := newTestStore(t)
	_, k := mint(t, s, clock, "alice", "content:read")
	old := newGrant(t, s, clock, k.ID, "content:read")
	if _, _, err := s.RevokeGrant(t.Context(), old.ID, GrantRevokedByUser); err != nil {
		t.Fatal(err)
	}
	clock.Add(endedGrantRetention + time.Second)
	_, k2 := mint(t, s, clock, "bob", "content:read")
	newGrant(t, s, clock, k2.ID, "content:read")
	if _, err := s.GetGrant(t.Context(), old.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("grant ended %v ago: error = %v, want not found", endedGrantRetention, err)
	}
}

func hashOf(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func TestRefreshTokenRotationAndReuse(t *testing.T) {
	s, clock := newTestStore(t)
	_, k := mint(t, s, clock, "alice", "content:read")
	g := newGrant(t, s, clock, k.ID, "content:read")
	if err := s.AddRefreshToken(t.Context(), g.ID, hashOf("rt1")); err != nil {
		t.Fatal(err)
	}
	rt, err := s.RotateRefreshToken(t.Context(), hashOf("rt1"), hashOf("rt2"))
	if err != nil {
		t.Fatal(err)
	}
	if rt.GrantID != g.ID || rt.Generation != 2 {
		t.Fatalf("rotated = %+v, want generation 2 of %s", rt, g.ID)
	}
	// rt1 again: a replay. The grant is revoked and rt2 dies with it.
	if _, err := s.RotateRefreshToken(t.Context(), hashOf("rt1"), hashOf("rt3")); !errors.Is(err, ErrRefreshTokenReused) {
		t.Fatalf("replayed refresh token: error = %v, want ErrRefreshTokenReused", err)
	}
	wantEnded(t, s, g.ID)
	got, _ := s.GetGrant(t.Context(), g.ID)
	if got.RevokedReason != GrantRevokedReuse {
		t.Errorf("revoked_reason = %q, want %q", got.RevokedReason, GrantRevokedReuse)
	}
	if _, err := s.RotateRefreshToken(t.Context(), hashOf("rt2"), hashOf("rt4")); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("refresh token of a revoked grant: error = %v, want not found", err)
	}
}

func TestRefreshTokenOfEndedGrantIsRefused(t *testing.T) {
	s, clock := newTestStore(t)
	_, k := mint(t, s, clock, "alice", "content:read")
	g := newGrant(t, s, clock, k.ID, "content:read")
	if err := s.AddRefreshToken(t.Context(), g.ID, hashOf("rt1")); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.RevokeKey(t.Context(), k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateRefreshToken(t.Context(), hashOf("rt1"), hashOf("rt2")); !errors.Is(err, ErrGrantEnded) {
		t.Fatalf("refresh after the key was revoked: error = %v, want ErrGrantEnded", err)
	}
	if err := s.AddRefreshToken(t.Context(), g.ID, hashOf("rt9")); !errors.Is(err, ErrGrantEnded) {
		t.Fatalf("AddRefreshToken to an ended grant: error = %v, want ErrGrantEnded", err)
	}
}

func TestRefreshTokensPerGrantAreBounded(t *testing.T) {
	s, clock := newTestStore(t)
	_, k := mint(t, s, clock, "alice", "content:read")
	g := newGrant(t, s, clock, k.ID, "content:read")
	if err := s.AddRefreshToken(t.Context(), g.ID, hashOf("rt0")); err != nil {
		t.Fatal(err)
	}
	for i := range 3 * maxRefreshGenerations {
		if _, err := s.RotateRefreshToken(t.Context(), hashOf(fmt.Sprint("rt", i)), hashOf(fmt.Sprint("rt", i+1))); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := s.ro.QueryRowContext(t.Context(), `SELECT count(*) FROM oauth_refresh_tokens WHERE grant_id = ?`, g.ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n > maxRefreshGenerations {
		t.Fatalf("%d refresh tokens kept after %d rotations, want at most %d", n, 3*maxRefreshGenerations, maxRefreshGenerations)
	}
	wantLive(t, s, g.ID)
}

func TestListGrantsShowsGrantsEndedByTheirKey(t *testing.T) {
	s, clock := newTestStore(t)
	_, a := mint(t, s, clock, "alice", "content:read")
	_, b := mint(t, s, clock, "bob", "content:read")
	ga := newGrant(t, s, clock, a.ID, "content:read")
	newGrant(t, s, clock, b.ID, "content:read")
	if _, _, _, err := s.RevokeKey(t.Context(), a.ID); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListGrants(t.Context(), GrantFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("listed %d grants, want 2", len(all))
	}
	mine, err := s.ListGrants(t.Context(), GrantFilter{ApprovedBy: a.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(mine) != 1 || mine[0].ID != ga.ID || mine[0].RevokedAt.IsZero() || mine[0].RevokedReason != GrantRevokedKeyEnded {
		t.Fatalf("alice's grants = %+v, want %s revoked because its key ended", mine, ga.ID)
	}
}

func TestRegisterOAuthClientIsBounded(t *testing.T) {
	s, clock := newTestStore(t)
	lim := ClientLimits{MaxIdle: 3, IdleTTL: time.Hour}
	register := func(id string) error {
		_, err := s.RegisterOAuthClient(t.Context(), OAuthClient{ID: id, Name: id, AuthMethod: "none", RedirectURIs: []string{"http://127.0.0.1/cb"}}, lim)
		return err
	}
	for i := range 3 {
		if err := register(fmt.Sprint("dcr_", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := register("dcr_3"); !errors.Is(err, ErrTooManyClients) {
		t.Fatalf("4th idle client: error = %v, want ErrTooManyClients", err)
	}
	// A client with a live grant is not idle: it neither counts nor expires.
	_, k := mint(t, s, clock, "alice", "content:read")
	if _, err := s.CreateGrant(t.Context(), NewGrant{ClientID: "dcr_0", ClientName: "dcr_0", Scopes: scopes(t, "content:read"),
		ApprovedBy: k.ID, ExpiresAt: clock.Now().Add(day)}); err != nil {
		t.Fatal(err)
	}
	if err := register("dcr_3"); err != nil {
		t.Fatalf("after dcr_0 got a grant: %v", err)
	}
	clock.Add(time.Hour)
	for i := 4; i < 7; i++ {
		if err := register(fmt.Sprint("dcr_", i)); err != nil {
			t.Fatalf("after the idle ones expired: %v", err)
		}
	}
	all, idle, err := s.CountOAuthClients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if all != 4 || idle != 3 {
		t.Fatalf("clients = %d (%d idle), want 4 (3 idle): dcr_0 and the three new ones", all, idle)
	}
	if _, err := s.GetOAuthClient(t.Context(), "dcr_0"); err != nil {
		t.Fatalf("client with a live grant was deleted: %v", err)
	}
}

func TestRotateSigningKey(t *testing.T) {
	s, clock := newTestStore(t)
	const every, keep = 30 * day, 20 * time.Minute
	rotate := func(id string) bool {
		t.Helper()
		ok, err := s.RotateSigningKey(t.Context(), SigningKey{ID: id, Algorithm: "ES256", PKCS8: []byte("private-" + id)}, clock.Now().Add(-every), keep)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	ids := func() []string {
		keys, err := s.SigningKeys(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range keys {
			out = append(out, k.ID)
		}
		return out
	}
	if !rotate("k1") || rotate("k2") {
		t.Fatal("want the first call to add a key and the second to keep it")
	}
	clock.Add(every + time.Second)
	if !rotate("k3") {
		t.Fatal("a key older than the period was not rotated")
	}
	if got := strings.Join(ids(), ","); got != "k3,k1" {
		t.Fatalf("keys = %s, want k3 (active) then k1 (verifying)", got)
	}
	clock.Add(keep)
	if got := strings.Join(ids(), ","); got != "k3" {
		t.Fatalf("keys after %v = %s, want k3 only", keep, got)
	}
	keys, _ := s.SigningKeys(t.Context())
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(verb, keys[0]); strings.Contains(out, "private-") {
			t.Errorf("Sprintf(%q) shows the private key: %s", verb, out)
		}
	}
}
