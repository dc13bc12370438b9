package authserver

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/keygate/keygate/provider/local"
)

func TestCodeFlowRefreshAndRevocation(t *testing.T) {
	e := newEnv(t)
	a, tr := e.grant(e.alicePAT, "content:read")
	if tr.RefreshToken == "" || tr.ExpiresIn <= 0 || tr.ExpiresIn > int(DefaultAccessTokenTTL.Seconds()) || tr.Scope != "content:read" {
		t.Fatalf("token response = %+v", tr)
	}
	status, keyID := e.callMCP(tr.AccessToken)
	if status != http.StatusOK || keyID == "" {
		t.Fatalf("call with the access token: %d %q", status, keyID)
	}
	p, err := e.srv.Verifier().Verify(t.Context(), tr.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if p.KeyID != keyID || p.CreatedBy != e.alice.ID || !slices.Equal(p.Scopes.Strings(), []string{"content:read"}) {
		t.Fatalf("principal = %+v, want grant %s approved by %s with content:read", p, keyID, e.alice.ID)
	}

	next := e.refresh(a.clientID, tr.RefreshToken)
	if next.status != http.StatusOK || next.RefreshToken == tr.RefreshToken || next.AccessToken == "" {
		t.Fatalf("refresh: %+v", next)
	}
	if status, _ := e.callMCP(next.AccessToken); status != http.StatusOK {
		t.Fatalf("call with the refreshed token: %d", status)
	}

	// The first refresh token again: a replay. The grant is revoked, and
	// with it the access token the refresh just returned.
	replay := e.refresh(a.clientID, tr.RefreshToken)
	if replay.status != http.StatusBadRequest || replay.Error != "invalid_grant" {
		t.Fatalf("replayed refresh token: %+v", replay)
	}
	if status, _ := e.callMCP(next.AccessToken); status != http.StatusUnauthorized {
		t.Fatalf("call after the replay: %d, want 401", status)
	}
	if again := e.refresh(a.clientID, next.RefreshToken); again.status != http.StatusBadRequest {
		t.Fatalf("refresh with the newest token after the replay: %+v", again)
	}
	g, err := e.store.GetGrant(t.Context(), keyID)
	if err != nil {
		t.Fatal(err)
	}
	if g.RevokedReason != local.GrantRevokedReuse {
		t.Fatalf("grant = %+v, want revoked for reuse", g)
	}
}

func TestAccessTokenExpires(t *testing.T) {
	e := newEnv(t)
	_, tr := e.grant(e.alicePAT, "content:read")
	e.clock.Add(DefaultAccessTokenTTL + time.Second)
	_, err := e.srv.Verifier().Verify(t.Context(), tr.AccessToken)
	wantInvalidToken(t, err)
}
