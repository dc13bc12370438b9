package authserver

import (
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/keygate/keygate/auth"
)

// TestNoSecretInLogsJournalOrURLs runs flows that touch every secret the
// server handles — keygate tokens (right and wrong), a client secret,
// authorization codes, access and refresh tokens — with every log captured
// raw, unredacted: the server's logger and the process default, which the
// library and the standard log package write to. None of the secrets may
// appear in a log line or the audit journal, nor in any URL but the one
// the protocol prescribes for a code (the client's redirect URI).
func TestNoSecretInLogsJournalOrURLs(t *testing.T) {
	defaultLog := &logBuffer{}
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(defaultLog, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })

	e := newEnv(t)
	canaries := map[string]string{"alice's token": e.alicePAT, "admin's token": e.adminPAT}
	var codes []string

	// A confidential client, a wrong token, then the right one.
	id, secret := e.registerConfidential(redirect)
	canaries["client secret"] = secret
	a := newAuthorization(id, redirect, "content:read")
	b := newBrowser(t)
	form := b.get(b.get(e.authorizeURL(a)).location.String()).form(t)
	form.Set("action", "approve")
	form.Set("scope", "content:read")
	wrong := "kg_pat_AAAAAAAAAAAA_" + strings.Repeat("B", 38)
	canaries["a mistyped token"] = wrong
	form.Set("token", wrong)
	b.post(e.base+ConsentPath, form)
	form.Set("token", e.alicePAT)
	c := code(t, b.post(e.base+ConsentPath, form), a)
	codes = append(codes, c)
	tr := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirect},
		"client_id": {id}, "client_secret": {secret}, "code_verifier": {a.verifier}})
	canaries["access token"], canaries["refresh token"] = tr.AccessToken, tr.RefreshToken
	// The code again (revokes the grant), a bad secret, a bad verifier.
	e.token(url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirect},
		"client_id": {id}, "client_secret": {secret}, "code_verifier": {a.verifier}})
	e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {id}, "client_secret": {"kg_cs_" + strings.Repeat("x", 40)}})

	// A public client: refresh, replay, revoke.
	pa, ptr := e.grant(e.alicePAT, "content:read")
	next := e.refresh(pa.clientID, ptr.RefreshToken)
	canaries["public access token"], canaries["first refresh token"], canaries["second refresh token"] = ptr.AccessToken, ptr.RefreshToken, next.RefreshToken
	canaries["refreshed access token"] = next.AccessToken
	e.refresh(pa.clientID, ptr.RefreshToken)
	resp, err := http.PostForm(e.base+RevokePath, url.Values{"token": {next.AccessToken}, "client_id": {pa.clientID}})
	if err == nil {
		resp.Body.Close()
	}
	e.callMCP(next.AccessToken)
	e.callMCP(e.alicePAT)

	if err := e.journal.Flush(); err != nil {
		t.Fatal(err)
	}
	journal, err := os.ReadFile(e.jpath)
	if err != nil {
		t.Fatal(err)
	}
	places := map[string]string{"server log": e.logs.String(), "default log": defaultLog.String(), "audit journal": string(journal)}
	if !strings.Contains(places["default log"], "oidc_error") || !strings.Contains(places["audit journal"], "oauth.consent") {
		t.Fatal("the logs captured nothing: the test would prove nothing")
	}
	for name, secret := range canaries {
		if secret == "" {
			t.Fatalf("%s is empty: a step of the flow failed", name)
		}
		for place, text := range places {
			if strings.Contains(text, secret) {
				t.Errorf("%s appears in the %s", name, place)
			}
		}
		for _, u := range e.urls {
			if strings.Contains(u, secret) || strings.Contains(u, url.QueryEscape(secret)) {
				t.Errorf("%s appears in URL %s", name, u)
			}
		}
	}
	for _, c := range codes {
		for place, text := range places {
			if strings.Contains(text, c) {
				t.Errorf("an authorization code appears in the %s", place)
			}
		}
		for _, u := range e.urls {
			if strings.Contains(u, c) && !strings.HasPrefix(u, redirect+"?") {
				t.Errorf("an authorization code appears in URL %s", u)
			}
		}
	}

	// Were they to reach a tool result or an unguarded log line, keygate's
	// redactor masks refresh tokens and client secrets by their shape.
	r := auth.NewRedactor()
	for _, s := range []string{canaries["refresh token"], canaries["client secret"]} {
		if out := r.Redact("value: " + s); strings.Contains(out, s) {
			t.Errorf("the redactor leaves %s… unmasked", s[:8])
		}
	}
}
