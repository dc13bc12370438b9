// Package authservertest runs keygate's embedded authorization server on a
// loopback listener with a store of its own, and obtains access tokens from
// it through the whole authorization code flow over HTTP: registration,
// authorization with PKCE, the consent form answered with a keygate token,
// and the code exchange. Tests of token consumers (the external issuer
// mode, the HTTP transport) use it as a real issuer.
package authservertest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/oauth/authserver"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
)

// Issuer is a running authorization server.
type Issuer struct {
	// URL is the issuer identifier, http://127.0.0.1:port.
	URL      string
	Resource string
	Server   *authserver.Server
	Store    *local.Store
	// Token is an admin keygate token of the issuer's store, which the
	// consent form is answered with.
	Token string
	// JWKSFetches counts requests for the JWKS.
	JWKSFetches atomic.Int64

	t    testing.TB
	http *httptest.Server
}

// Start runs an issuer whose tokens are for resource. opts may change the
// configuration before the server is built.
func Start(t testing.TB, resource string, opts ...func(*authserver.Config)) *Issuer {
	t.Helper()
	store, err := local.Open(t.Context(), filepath.Join(t.TempDir(), "issuer.db"), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("closing the issuer's store: %v", err)
		}
	})
	scopes, _ := auth.ParseScopes([]string{"admin"})
	k, err := store.CreateKey(t.Context(), provider.NewKey{Name: "issuer-admin", Scopes: scopes, ExpiresAt: time.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	i := &Issuer{Resource: resource, Store: store, Token: k.Secret.Reveal(), t: t}
	mux := http.NewServeMux()
	i.http = httptest.NewUnstartedServer(mux)
	i.URL = "http://" + i.http.Listener.Addr().String()
	cfg := authserver.Config{Issuer: i.URL, Resource: resource, Store: store}
	for _, o := range opts {
		o(&cfg)
	}
	i.Server, err = authserver.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := i.Server.Handler()
	for _, p := range authserver.Patterns() {
		if p != authserver.JWKSPath {
			mux.Handle(p, h)
		}
	}
	mux.Handle(authserver.JWKSPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i.JWKSFetches.Add(1)
		h.ServeHTTP(w, r)
	}))
	i.http.Start()
	t.Cleanup(i.http.Close)
	return i
}

const redirectURI = "http://127.0.0.1:7777/callback"

// AccessToken runs the whole flow for a new client and returns the tokens
// granted for scopes.
func (i *Issuer) AccessToken(scopes ...string) (access, refresh string) {
	t := i.t
	t.Helper()
	clientID := i.register()
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	state := rand.Text()
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI}, "state": {state},
		"scope": {strings.Join(scopes, " ")}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}, "resource": {i.Resource}}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	authorized := i.do(browser, http.MethodGet, i.URL+authserver.AuthorizePath+"?"+q.Encode(), nil)
	if authorized.location == nil {
		t.Fatalf("authorize: %d, no redirect to the consent page", authorized.status)
	}
	page := i.do(browser, http.MethodGet, authorized.location.String(), nil)
	form := url.Values{"action": {"approve"}, "token": {i.Token}, "scope": scopes}
	for _, m := range regexp.MustCompile(`name="(id|csrf)" value="([^"]*)"`).FindAllStringSubmatch(string(page.body), -1) {
		form.Set(m[1], m[2])
	}
	approved := i.do(browser, http.MethodPost, i.URL+authserver.ConsentPath, form)
	back := approved.location
	if back == nil || back.Query().Get("code") == "" || back.Query().Get("state") != state {
		t.Fatalf("consent: %d %v", approved.status, back)
	}
	tokens := i.do(http.DefaultClient, http.MethodPost, i.URL+authserver.TokenPath, url.Values{"grant_type": {"authorization_code"},
		"code": {back.Query().Get("code")}, "redirect_uri": {redirectURI}, "client_id": {clientID}, "code_verifier": {verifier},
		"resource": {i.Resource}})
	var tr struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(tokens.body, &tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("token: %d %v", tokens.status, err)
	}
	return tr.AccessToken, tr.RefreshToken
}

func (i *Issuer) register() string {
	i.t.Helper()
	body := fmt.Sprintf(`{"client_name":"authservertest","redirect_uris":[%q],"token_endpoint_auth_method":"none"}`, redirectURI)
	resp, err := http.Post(i.URL+authserver.RegisterPath, "application/json", strings.NewReader(body))
	if err != nil {
		i.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ClientID string `json:"client_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.ClientID == "" {
		i.t.Fatalf("register: %d %v", resp.StatusCode, err)
	}
	return out.ClientID
}

// answer is what the flow reads of a response.
type answer struct {
	status   int
	location *url.URL // the Location header, nil without one
	body     []byte
}

// do sends a request and reads the whole answer.
func (i *Issuer) do(c *http.Client, method, u string, form url.Values) answer {
	i.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(i.t.Context(), method, u, body)
	if err != nil {
		i.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		i.t.Fatal(err)
	}
	defer resp.Body.Close()
	read, err := io.ReadAll(resp.Body)
	if err != nil {
		i.t.Fatalf("%s %s: reading the answer: %v", method, u, err)
	}
	location, _ := resp.Location() // nil when there is none
	return answer{status: resp.StatusCode, location: location, body: read}
}
