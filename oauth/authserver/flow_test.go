package authserver

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

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
	if _, err := e.srv.Verifier().Verify(t.Context(), tr.AccessToken); err != nil {
		t.Fatal(err) // and the verifier now remembers the token's signature as checked
	}
	e.clock.Add(DefaultAccessTokenTTL)
	_, err := e.srv.Verifier().Verify(t.Context(), tr.AccessToken)
	wantInvalidToken(t, err)
}

func TestMetadata(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CIMD.Disabled = true })
	var md map[string]any
	getJSON(t, e.base+MetadataPath, &md)
	want := map[string]any{
		"issuer": e.base, "authorization_endpoint": e.base + AuthorizePath, "token_endpoint": e.base + TokenPath,
		"registration_endpoint": e.base + RegisterPath, "revocation_endpoint": e.base + RevokePath, "jwks_uri": e.base + JWKSPath,
		"code_challenge_methods_supported": []any{"S256"}, "response_types_supported": []any{"code"},
		"grant_types_supported":                          []any{"authorization_code", "refresh_token"},
		"authorization_response_iss_parameter_supported": true, "client_id_metadata_document_supported": false,
	}
	for k, v := range want {
		if got, _ := json.Marshal(md[k]); string(got) != string(must(json.Marshal(v))) {
			t.Errorf("%s = %s, want %v", k, got, v)
		}
	}
	req, _ := http.NewRequest(http.MethodOptions, e.base+RegisterPath, nil)
	req.Header.Set("Origin", "https://inspector.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("preflight of registration: %d %v", resp.StatusCode, resp.Header)
	}
	resp, err = http.Get(e.base + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("OpenID Connect discovery: %d, want 404 (keygate is no OpenID provider)", resp.StatusCode)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestVerifierRemembersBoundedTokens(t *testing.T) {
	e := newEnv(t)
	v := e.srv.Verifier()
	v.maxVerified = 2
	var tokens []string
	for range 3 {
		_, tr := e.grant(e.alicePAT, "content:read")
		tokens = append(tokens, tr.AccessToken)
	}
	for range 2 {
		for _, tok := range tokens {
			if _, err := v.Verify(t.Context(), tok); err != nil {
				t.Fatal(err)
			}
		}
	}
	v.mu.Lock()
	n := len(v.verified)
	v.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d tokens remembered, want the bound, 2", n)
	}
}
