package authserver

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/provider/local"
)

const redirect = "http://127.0.0.1:7777/callback"

// wantErrorRedirect checks that p sends the browser back to the client's
// redirect URI with error code and the request's state.
func wantErrorRedirect(t *testing.T, p page, a authorization, code string) url.Values {
	t.Helper()
	if p.location == nil || !strings.HasPrefix(p.location.String(), a.redirectURI+"?") {
		t.Fatalf("want a redirect to %s, got %d %v %s", a.redirectURI, p.status, p.location, p.body)
	}
	q := p.location.Query()
	if q.Get("error") != code || q.Get("state") != a.state || q.Get("code") != "" || !strings.HasPrefix(q.Get("iss"), "http://127.0.0.1:") {
		t.Fatalf("redirect %s: want error=%s with the state and the issuer, and no code", p.location, code)
	}
	return q
}

// wantShownNotRedirected checks that an error is shown to the person and
// the browser is sent nowhere: an unchecked redirect_uri is an open redirect.
func wantShownNotRedirected(t *testing.T, p page) {
	t.Helper()
	if p.status != http.StatusBadRequest || p.location != nil {
		t.Fatalf("want 400 and no redirect, got %d, Location %v", p.status, p.location)
	}
}

func TestPKCEIsRequiredAndS256Only(t *testing.T) {
	e := newEnv(t)
	client := e.registerClient(redirect)
	tests := []struct {
		name  string
		set   url.Values
		words string
	}{
		{"no code_challenge", url.Values{"code_challenge": {""}, "code_challenge_method": {""}}, "PKCE"},
		{"plain", url.Values{"code_challenge_method": {"plain"}}, "S256"},
		{"no method, which means plain", url.Values{"code_challenge_method": {""}}, "S256"},
		{"a challenge that is no SHA-256", url.Values{"code_challenge": {"short"}}, "43"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAuthorization(client, redirect, "content:read")
			a.extra = tt.set
			q := wantErrorRedirect(t, newBrowser(t).get(e.authorizeURL(a)), a, "invalid_request")
			if !strings.Contains(q.Get("error_description"), tt.words) {
				t.Errorf("error_description %q does not mention %s", q.Get("error_description"), tt.words)
			}
		})
	}

	t.Run("wrong or missing verifier", func(t *testing.T) {
		a := newAuthorization(client, redirect, "content:read")
		c := code(t, e.consent(newBrowser(t), e.authorizeURL(a), e.alicePAT, "content:read"), a)
		for _, verifier := range []string{"wrong-verifier-wrong-verifier-wrong-verifier-00", ""} {
			b := a
			b.verifier = verifier
			if tr := e.exchange(b, c); tr.status != http.StatusBadRequest || tr.AccessToken != "" {
				t.Fatalf("verifier %q: %+v", verifier, tr)
			}
		}
		if tr := e.exchange(a, c); tr.status != http.StatusOK {
			t.Fatalf("right verifier after failures: %+v", tr)
		}
	})

	t.Run("a confidential client must send the verifier too", func(t *testing.T) {
		id, secret := e.registerConfidential(redirect)
		a := newAuthorization(id, redirect, "content:read")
		c := code(t, e.consent(newBrowser(t), e.authorizeURL(a), e.alicePAT, "content:read"), a)
		tr := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirect},
			"client_id": {id}, "client_secret": {secret}})
		if tr.status != http.StatusBadRequest || tr.AccessToken != "" {
			t.Fatalf("exchange without verifier: %+v", tr)
		}
	})
}

func (e *env) registerConfidential(redirectURI string) (id, secret string) {
	e.t.Helper()
	body := fmt.Sprintf(`{"client_name":"Confidential","redirect_uris":[%q],"token_endpoint_auth_method":"client_secret_post"}`, redirectURI)
	resp, err := http.Post(e.base+RegisterPath, "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out registered
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("register: %d %v", resp.StatusCode, err)
	}
	if !strings.HasPrefix(out.ClientSecret, clientSecretPrefix) {
		e.t.Fatalf("client secret %q lacks the prefix the redactor masks", out.ClientSecret)
	}
	return out.ClientID, out.ClientSecret
}

func TestRedirectURIMustBeRegistered(t *testing.T) {
	e := newEnv(t)
	client := e.registerClient(redirect)
	for _, uri := range []string{
		"https://evil.example/callback",
		"http://127.0.0.1:7777/other",
		"http://127.0.0.1:7777/callback/more",
		"http://127.0.0.1:7777/callback?next=https://evil.example",
		"http://127.0.0.1:7777/callback#x",
		"http://127.0.0.1.evil.example:7777/callback",
		"http://evil@127.0.0.1:7777/callback",
		"javascript:alert(1)",
		"",
	} {
		t.Run(uri, func(t *testing.T) {
			a := newAuthorization(client, uri, "content:read")
			wantShownNotRedirected(t, newBrowser(t).get(e.authorizeURL(a)))
		})
	}
	t.Run("unknown client", func(t *testing.T) {
		a := newAuthorization("dcr_nosuchclient", "https://evil.example/callback", "content:read")
		wantShownNotRedirected(t, newBrowser(t).get(e.authorizeURL(a)))
	})
	t.Run("a loopback redirect may use another port (RFC 8252 section 7.3)", func(t *testing.T) {
		a := newAuthorization(client, "http://127.0.0.1:8888/callback", "content:read")
		p := e.consent(newBrowser(t), e.authorizeURL(a), e.alicePAT, "content:read")
		if !strings.HasPrefix(p.location.String(), "http://127.0.0.1:8888/callback?") {
			t.Fatalf("redirect = %v", p.location)
		}
	})
	t.Run("the token request must name the same redirect_uri", func(t *testing.T) {
		a := newAuthorization(client, redirect, "content:read")
		c := code(t, e.consent(newBrowser(t), e.authorizeURL(a), e.alicePAT, "content:read"), a)
		b := a
		b.redirectURI = "http://127.0.0.1:8888/callback"
		if tr := e.exchange(b, c); tr.status != http.StatusBadRequest || tr.Error != "invalid_grant" {
			t.Fatalf("exchange with another redirect_uri: %+v", tr)
		}
	})
}

func TestConsentFormIsProtected(t *testing.T) {
	e := newEnv(t)
	client := e.registerClient(redirect)
	a := newAuthorization(client, redirect, "content:read")
	b := newBrowser(t)
	p := b.get(b.get(e.authorizeURL(a)).location.String())
	h := p.header
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	for k, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for _, want := range []string{`method="post"`, `action="/oauth/consent"`, `type="password"`, "Read content", "<code>content:read</code>"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(p.body, "<script") {
		t.Error("the page carries a script")
	}
	style := p.body[strings.Index(p.body, "<style>")+len("<style>") : strings.Index(p.body, "</style>")]
	sum := sha256.Sum256([]byte(style))
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
		t.Errorf("the page's style is not the one the Content-Security-Policy allows: %s", csp)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' http://127.0.0.1:7777") {
		t.Errorf("form-action does not allow the redirect that follows the form: %s", csp)
	}
	form := p.form(t)
	answer := func(b *browser, f url.Values) page {
		f = maps(f)
		f.Set("action", "approve")
		f.Set("token", e.alicePAT)
		f.Set("scope", "content:read")
		return b.post(e.base+ConsentPath, f)
	}
	noCSRF := maps(form)
	noCSRF.Del("csrf")
	wrongCSRF := maps(form)
	wrongCSRF.Set("csrf", strings.Repeat("A", len(form.Get("csrf"))))
	for name, try := range map[string]func() page{
		"no token in the form": func() page { return answer(b, noCSRF) },
		"a wrong token":        func() page { return answer(b, wrongCSRF) },
		"another browser":      func() page { return answer(newBrowser(t), form) },
		"the token in the URL": func() page { return b.post(e.base+ConsentPath+"?csrf="+form.Get("csrf"), noCSRFWith(form)) },
		"a cookie that differs": func() page {
			other := newBrowser(t)
			u, _ := url.Parse(e.base + ConsentPath)
			other.c.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName(form.Get("id")), Value: "wrong", Path: ConsentPath}})
			return answer(other, form)
		},
	} {
		if p := try(); p.status != http.StatusForbidden || p.location != nil {
			t.Errorf("%s: %d %v, want 403", name, p.status, p.location)
		}
	}
	if grants, _ := e.store.ListGrants(t.Context(), local.GrantFilter{}); len(grants) != 0 {
		t.Fatalf("grants after forged answers: %+v", grants)
	}
	if p := answer(b, form); p.status != http.StatusSeeOther {
		t.Fatalf("the real form: %d %s", p.status, p.body)
	}
	refused := 0
	for _, r := range e.journalRecords() {
		if r.Tool == "oauth.consent" && r.Outcome == audit.OutcomeDenied {
			refused += max(r.Count, 1)
		}
	}
	if refused != 5 {
		t.Errorf("journal holds %d refused consent forms, want 5", refused)
	}
}

func maps(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

func noCSRFWith(form url.Values) url.Values {
	f := maps(form)
	f.Del("csrf")
	f.Set("action", "approve")
	f.Set("scope", "content:read")
	return f
}

func TestGrantNeverExceedsTheToken(t *testing.T) {
	e := newEnv(t)
	client := e.registerClient(redirect)
	postsPAT, _ := e.mint("posts-reader", 24*time.Hour, "content:read:posts")

	try := func(token string, ask []string, tick ...string) page {
		a := newAuthorization(client, redirect, ask...)
		return e.consent(newBrowser(t), e.authorizeURL(a), token, tick...)
	}
	for _, tt := range []struct {
		name  string
		token string
		ask   []string
		tick  []string
		words string
	}{
		{"a scope the token lacks", e.alicePAT, []string{"content:read", "content:write"}, []string{"content:read", "content:write"}, "cannot grant content:write"},
		{"admin", e.alicePAT, []string{"admin"}, []string{"admin"}, "cannot grant admin"},
		{"a whole action from a narrowed token", postsPAT, []string{"content:read"}, []string{"content:read"}, "cannot grant content:read"},
		{"a scope that was not asked for", e.alicePAT, []string{"content:read"}, []string{"admin"}, "was not asked for"},
		{"nothing ticked", e.alicePAT, []string{"content:read"}, nil, "Tick at least one"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := try(tt.token, tt.ask, tt.tick...)
			if p.status < 400 || p.location != nil || !strings.Contains(p.body, htmlEscape(tt.words)) {
				t.Fatalf("%d %v, want the form again saying %q; body: %s", p.status, p.location, tt.words, p.body)
			}
		})
	}
	if grants, _ := e.store.ListGrants(t.Context(), local.GrantFilter{}); len(grants) != 0 {
		t.Fatalf("grants made: %+v", grants)
	}

	// What the token holds is granted, and the grant ends with the token.
	p := try(postsPAT, []string{"content:read:posts", "content:write"}, "content:read:posts")
	if p.status != http.StatusSeeOther {
		t.Fatalf("a subset: %d %s", p.status, p.body)
	}
	grants, _ := e.store.ListGrants(t.Context(), local.GrantFilter{})
	if len(grants) != 1 || !slices.Equal(grants[0].Scopes, []string{"content:read:posts"}) ||
		grants[0].ExpiresAt.After(e.clock.Now().Add(24*time.Hour)) {
		t.Fatalf("grant = %+v, want content:read:posts ending with the 1-day token", grants)
	}
}

func htmlEscape(s string) string { return strings.ReplaceAll(s, `"`, "&#34;") }

func TestRotatedKeyCannotApprove(t *testing.T) {
	e := newEnv(t)
	if _, err := e.store.RotateKey(t.Context(), e.alice.ID, "rot1"); err != nil {
		t.Fatal(err)
	}
	a := newAuthorization(e.registerClient(redirect), redirect, "content:read")
	p := e.consent(newBrowser(t), e.authorizeURL(a), e.alicePAT, "content:read")
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "rotated") {
		t.Fatalf("%d %s", p.status, p.body)
	}
}

func TestWrongTokenIsRetriedThenRefused(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.ConsentFailures = 7 })
	client := e.registerClient(redirect)
	a := newAuthorization(client, redirect, "content:read")
	b := newBrowser(t)
	form := b.get(b.get(e.authorizeURL(a)).location.String()).form(t)
	form.Set("action", "approve")
	form.Set("scope", "content:read")
	for i := range DefaultLimits.FailuresPerRequest {
		form.Set("token", "kg_pat_wrong"+fmt.Sprint(i))
		p := b.post(e.base+ConsentPath, form)
		if i < DefaultLimits.FailuresPerRequest-1 {
			if p.status != http.StatusBadRequest || !strings.Contains(p.body, "not a keygate token that works") || strings.Contains(p.body, "kg_pat_wrong") {
				t.Fatalf("wrong token %d: %d %s", i, p.status, p.body)
			}
			continue
		}
		wantErrorRedirect(t, p, a, "access_denied")
	}
	// Two more wrong tokens on a new request reach the per-address limit
	// of 7; then even the right token is not tried.
	a2 := newAuthorization(client, redirect, "content:read")
	form = b.get(b.get(e.authorizeURL(a2)).location.String()).form(t)
	form.Set("action", "approve")
	form.Set("scope", "content:read")
	for range 2 {
		form.Set("token", "kg_pat_wrong")
		b.post(e.base+ConsentPath, form)
	}
	form.Set("token", e.alicePAT)
	if p := b.post(e.base+ConsentPath, form); p.status != http.StatusTooManyRequests {
		t.Fatalf("after 7 wrong tokens: %d, want 429", p.status)
	}
}

func TestDenyReturnsAccessDenied(t *testing.T) {
	e := newEnv(t)
	a := newAuthorization(e.registerClient(redirect), redirect, "content:read")
	b := newBrowser(t)
	form := b.get(b.get(e.authorizeURL(a)).location.String()).form(t)
	form.Set("action", "deny")
	p := b.post(e.base+ConsentPath, form)
	if p.status != http.StatusSeeOther {
		t.Fatalf("deny: %d", p.status)
	}
	wantErrorRedirect(t, p, a, "access_denied")
	if p := b.post(e.base+ConsentPath, form); p.status != http.StatusBadRequest {
		t.Fatalf("answering again: %d, want 400", p.status)
	}
}

func TestCodeIsSingleUseAndShortLived(t *testing.T) {
	e := newEnv(t)
	client := e.registerClient(redirect)
	a := newAuthorization(client, redirect, "content:read")
	c := code(t, e.consent(newBrowser(t), e.authorizeURL(a), e.alicePAT, "content:read"), a)
	first := e.exchange(a, c)
	if first.status != http.StatusOK {
		t.Fatal(first)
	}
	if again := e.exchange(a, c); again.status != http.StatusBadRequest || again.Error != "invalid_grant" {
		t.Fatalf("second exchange: %+v", again)
	}
	if status, _ := e.callMCP(first.AccessToken); status != http.StatusUnauthorized {
		t.Fatalf("the first exchange's token still works after the code was replayed: %d", status)
	}

	a2 := newAuthorization(client, redirect, "content:read")
	c2 := code(t, e.consent(newBrowser(t), e.authorizeURL(a2), e.alicePAT, "content:read"), a2)
	e.clock.Add(DefaultCodeTTL)
	if late := e.exchange(a2, c2); late.status != http.StatusBadRequest || late.Error != "invalid_grant" {
		t.Fatalf("exchange after %v: %+v", DefaultCodeTTL, late)
	}
}

func TestTokensAreBoundToThisResource(t *testing.T) {
	e := newEnv(t)
	client := e.registerClient(redirect)
	const other = "https://other.example/mcp"

	a := newAuthorization(client, redirect, "content:read")
	a.extra = url.Values{"resource": {other}}
	wantErrorRedirect(t, newBrowser(t).get(e.authorizeURL(a)), a, "invalid_target")

	a = newAuthorization(client, redirect, "content:read")
	c := code(t, e.consent(newBrowser(t), e.authorizeURL(a), e.alicePAT, "content:read"), a)
	tr := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirect},
		"client_id": {client}, "code_verifier": {a.verifier}, "resource": {other}})
	if tr.status != http.StatusBadRequest || tr.Error != "invalid_target" {
		t.Fatalf("exchange for another resource: %+v", tr)
	}
	tr = e.exchange(a, c)
	if tr.status != http.StatusOK {
		t.Fatal(tr)
	}
	if r := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {client},
		"resource": {other}}); r.Error != "invalid_target" {
		t.Fatalf("refresh for another resource: %+v", r)
	}

	// Tokens signed with keygate's own key for a live grant, differing from
	// a good one in a single claim.
	var claims map[string]any
	if err := jsonPart(tr.AccessToken, &claims); err != nil {
		t.Fatal(err)
	}
	key, err := e.srv.keys.active(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sign := func(change func(map[string]any)) string {
		c := map[string]any{}
		for k, v := range claims {
			c[k] = v
		}
		change(c)
		return signJWT(t, jose.SigningKey{Algorithm: key.SignatureAlgorithm(), Key: jose.JSONWebKey{Key: key.Key(), KeyID: key.ID()}}, c)
	}
	if _, err := e.srv.Verifier().Verify(t.Context(), sign(func(map[string]any) {})); err != nil {
		t.Fatalf("the unchanged token, signed again: %v", err)
	}
	for name, change := range map[string]func(map[string]any){
		"another audience":        func(c map[string]any) { c["aud"] = []string{other} },
		"no audience":             func(c map[string]any) { delete(c, "aud") },
		"another issuer":          func(c map[string]any) { c["iss"] = "https://other.example" },
		"expired":                 func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() },
		"another client":          func(c map[string]any) { c["client_id"] = "dcr_other" },
		"a grant that is unknown": func(c map[string]any) { c["sub"] = "gr_nosuchgrant" },
		"a scope the grant lacks": func(c map[string]any) { c["scope"] = "admin" },
	} {
		if _, err := e.srv.Verifier().Verify(t.Context(), sign(change)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRevokingTheGrantOrItsKeyEndsAccess(t *testing.T) {
	e := newEnv(t)
	a, tr := e.grant(e.alicePAT, "content:read")
	_, keyID := e.callMCP(tr.AccessToken)
	if _, _, err := e.store.RevokeGrant(t.Context(), keyID, local.GrantRevokedByUser); err != nil {
		t.Fatal(err)
	}
	if status, _ := e.callMCP(tr.AccessToken); status != http.StatusUnauthorized {
		t.Fatalf("call after the grant was revoked: %d", status)
	}
	if r := e.refresh(a.clientID, tr.RefreshToken); r.Error != "invalid_grant" {
		t.Fatalf("refresh after the grant was revoked: %+v", r)
	}

	a, tr = e.grant(e.alicePAT, "content:read")
	if _, _, _, err := e.store.RevokeKey(t.Context(), e.alice.ID); err != nil {
		t.Fatal(err)
	}
	if status, _ := e.callMCP(tr.AccessToken); status != http.StatusUnauthorized {
		t.Fatalf("call after the approving key was revoked: %d", status)
	}
	if r := e.refresh(a.clientID, tr.RefreshToken); r.Error != "invalid_grant" {
		t.Fatalf("refresh after the approving key was revoked: %+v", r)
	}
}

func TestRevocationEndpoint(t *testing.T) {
	e := newEnv(t)
	a, tr := e.grant(e.alicePAT, "content:read")
	other, otherTokens := e.grant(e.alicePAT, "content:read")
	revoke := func(clientID, token string) int {
		resp, err := http.PostForm(e.base+RevokePath, url.Values{"token": {token}, "client_id": {clientID}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Another client's token: 200, and nothing happens.
	if status := revoke(other.clientID, tr.RefreshToken); status != http.StatusOK {
		t.Fatalf("revoke someone else's token: %d", status)
	}
	if status, _ := e.callMCP(tr.AccessToken); status != http.StatusOK {
		t.Fatalf("a client revoked another's grant: %d", status)
	}
	if status := revoke(a.clientID, "kg_rt_nosuchtoken"); status != http.StatusOK {
		t.Fatalf("revoke an unknown token: %d", status)
	}
	if status := revoke(a.clientID, tr.RefreshToken); status != http.StatusOK {
		t.Fatal(status)
	}
	if status, _ := e.callMCP(tr.AccessToken); status != http.StatusUnauthorized {
		t.Fatalf("access token after its refresh token was revoked: %d", status)
	}
	if status := revoke(other.clientID, otherTokens.AccessToken); status != http.StatusOK {
		t.Fatal(status)
	}
	if r := e.refresh(other.clientID, otherTokens.RefreshToken); r.Error != "invalid_grant" {
		t.Fatalf("refresh after the access token was revoked: %+v", r)
	}
}

func TestConfidentialClientAuthenticates(t *testing.T) {
	e := newEnv(t)
	id, secret := e.registerConfidential(redirect)
	a := newAuthorization(id, redirect, "content:read")
	c := code(t, e.consent(newBrowser(t), e.authorizeURL(a), e.alicePAT, "content:read"), a)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirect}, "client_id": {id},
		"code_verifier": {a.verifier}}
	form.Set("client_secret", "kg_cs_wrongwrongwrongwrongwrongwrong")
	if tr := e.token(form); tr.status != http.StatusUnauthorized && tr.status != http.StatusBadRequest || tr.AccessToken != "" {
		t.Fatalf("wrong secret: %+v", tr)
	}
	form.Set("client_secret", secret)
	if tr := e.token(form); tr.status != http.StatusOK {
		t.Fatalf("right secret: %+v", tr)
	}
}

func TestKeysRotateAndOldTokensStillVerify(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.KeyRotation = 5 * time.Minute })
	_, first := e.grant(e.alicePAT, "content:read")
	e.clock.Add(6 * time.Minute)
	_, second := e.grant(e.alicePAT, "content:read")
	kid := func(tok string) string {
		var h struct {
			Kid string `json:"kid"`
		}
		if err := jsonHeader(tok, &h); err != nil {
			t.Fatal(err)
		}
		return h.Kid
	}
	if kid(first.AccessToken) == kid(second.AccessToken) {
		t.Fatal("the signing key did not rotate")
	}
	if _, err := e.srv.Verifier().Verify(t.Context(), first.AccessToken); err != nil {
		t.Fatalf("a token signed before the rotation: %v", err)
	}
	jwks := func() []string {
		var set jose.JSONWebKeySet
		getJSON(t, e.base+JWKSPath, &set)
		var ids []string
		for _, k := range set.Keys {
			if !k.IsPublic() {
				t.Fatal("the JWKS holds a private key")
			}
			ids = append(ids, k.KeyID)
		}
		return ids
	}
	if ids := jwks(); !slices.Contains(ids, kid(first.AccessToken)) || !slices.Contains(ids, kid(second.AccessToken)) {
		t.Fatalf("JWKS = %v, want the new and the old key", ids)
	}
	e.clock.Add(DefaultAccessTokenTTL + 5*time.Minute)
	if ids := jwks(); slices.Contains(ids, kid(first.AccessToken)) || !slices.Contains(ids, kid(second.AccessToken)) {
		t.Fatalf("JWKS after the old key's tokens expired = %v, want it without the first key", ids)
	}
}

// TestTokensForAnotherTrustedResource: a server configured to issue tokens
// for another keygate (Config.Resources) issues them when the client names
// that resource, binds the grant and every later exchange or refresh to it,
// and its own resource refuses those tokens (their audience is the other
// one). A request naming two resources is refused.
func TestTokensForAnotherTrustedResource(t *testing.T) {
	const other = "https://other.example/mcp"
	e := newEnv(t, func(c *Config) { c.Resources = []string{other + "/"} })
	client := e.registerClient(redirect)

	two := newAuthorization(client, redirect, "content:read")
	two.extra = url.Values{"resource": {other, e.base + "/mcp"}}
	wantErrorRedirect(t, newBrowser(t).get(e.authorizeURL(two)), two, "invalid_target")

	a := newAuthorization(client, redirect, "content:read")
	a.extra = url.Values{"resource": {other}}
	c := code(t, e.consent(newBrowser(t), e.authorizeURL(a), e.alicePAT, "content:read"), a)
	if tr := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirect},
		"client_id": {client}, "code_verifier": {a.verifier}, "resource": {e.base + "/mcp"}}); tr.Error != "invalid_target" {
		t.Fatalf("exchange naming this server's resource for a grant of the other: %+v", tr)
	}
	tr := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirect},
		"client_id": {client}, "code_verifier": {a.verifier}, "resource": {other}})
	if tr.status != http.StatusOK {
		t.Fatalf("exchange for the other resource: %+v", tr)
	}
	var claims struct {
		Aud any `json:"aud"`
	}
	if err := jsonPart(tr.AccessToken, &claims); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(claims.Aud) != "["+other+"]" && fmt.Sprint(claims.Aud) != other {
		t.Fatalf("aud = %v, want %s", claims.Aud, other)
	}
	if status, _ := e.callMCP(tr.AccessToken); status != http.StatusUnauthorized {
		t.Fatalf("this server's resource took a token for another: %d", status)
	}
	wantInvalidToken(t, func() error { _, err := e.srv.Verifier().Verify(t.Context(), tr.AccessToken); return err }())
	if r := e.refresh(client, tr.RefreshToken); r.Error != "invalid_target" {
		t.Fatalf("refresh naming this server's resource: %+v", r)
	}
	if r := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {client},
		"resource": {other}}); r.status != http.StatusOK {
		t.Fatalf("refresh for the other resource: %+v", r)
	}
	grants, err := e.store.ListGrants(t.Context(), local.GrantFilter{ClientID: client})
	if err != nil || len(grants) != 1 || grants[0].Resource != other {
		t.Fatalf("grants %+v %v, want one for %s", grants, err, other)
	}
}
