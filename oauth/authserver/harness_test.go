package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/internal/syncbuf"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
)

// clock is a settable clock that starts at the real time: the library
// stamps iat and nbf with time.Now, so tests only move it forward.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer collects log output, for the test that no secret is logged.
type logBuffer = syncbuf.Buffer

// env is an authorization server and an MCP resource on one loopback
// listener, with a store holding two keys: an admin one and alice's,
// which may only read content.
type env struct {
	t        *testing.T
	clock    *clock
	store    *local.Store
	journal  *audit.Log
	jpath    string
	logs     *logBuffer
	srv      *Server
	http     *httptest.Server
	base     string // http://127.0.0.1:port
	resource *oauth.Resource

	adminPAT, alicePAT string
	admin, alice       provider.Key

	mu   sync.Mutex
	urls []string // every URL requested and every Location answered
}

type envOption func(*Config)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	return newEnvServing(t, func(e *env) http.Handler { return e.protect(echoPrincipal()) }, opts...)
}

// newEnvServing is newEnv with mcp serving the resource at /mcp.
func newEnvServing(t *testing.T, mcp func(*env) http.Handler, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, clock: newClock(), logs: &logBuffer{}}
	var err error
	e.store, err = local.Open(t.Context(), filepath.Join(t.TempDir(), "keygate.db"), local.Options{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	e.jpath = filepath.Join(t.TempDir(), "audit.jsonl")
	e.journal, err = audit.OpenWith(e.jpath, audit.Options{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.journal.Close() })
	e.adminPAT, e.admin = e.mint("admin", 30*24*time.Hour, "admin")
	e.alicePAT, e.alice = e.mint("alice", 30*24*time.Hour, "content:read")

	mux := http.NewServeMux()
	e.http = httptest.NewUnstartedServer(e.record(mux))
	e.base = "http://" + e.http.Listener.Addr().String()
	cfg := Config{Issuer: e.base, Resource: e.base + "/mcp", Store: e.store, Journal: e.journal, Now: e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, o := range opts {
		o(&cfg)
	}
	e.srv, err = New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.resource, err = oauth.NewResource(cfg.Resource, e.srv.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Patterns() {
		mux.Handle(p, e.srv.Handler())
	}
	e.resource.Register(mux)
	mux.Handle("/mcp", mcp(e))
	e.http.Start()
	t.Cleanup(e.http.Close)
	return e
}

func (e *env) mint(name string, life time.Duration, scopes ...string) (string, provider.Key) {
	e.t.Helper()
	sc, err := auth.ParseScopes(scopes)
	if err != nil {
		e.t.Fatal(err)
	}
	k, err := e.store.CreateKey(e.t.Context(), provider.NewKey{Name: name, Scopes: sc, ExpiresAt: e.clock.Now().Add(life)})
	if err != nil {
		e.t.Fatal(err)
	}
	return k.Secret.Reveal(), k.Key
}

// record notes every URL requested and every redirect target.
func (e *env) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.urls = append(e.urls, r.URL.String())
		e.mu.Unlock()
		rw := &locationRecorder{ResponseWriter: w, e: e}
		next.ServeHTTP(rw, r)
	})
}

type locationRecorder struct {
	http.ResponseWriter
	e *env
}

func (l *locationRecorder) WriteHeader(code int) {
	if loc := l.Header().Get("Location"); loc != "" {
		l.e.mu.Lock()
		l.e.urls = append(l.e.urls, loc)
		l.e.mu.Unlock()
	}
	l.ResponseWriter.WriteHeader(code)
}

// protect is what the transport will do: a PAT or an access token, chosen
// by shape, or a 401 with the challenge.
func (e *env) protect(next http.Handler) http.Handler {
	verify := oauth.ByShape(e.store, e.srv.Verifier())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", e.resource.Challenge(nil))
			http.Error(w, "a bearer token is required", http.StatusUnauthorized)
			return
		}
		p, err := verify.Verify(r.Context(), tok)
		if err != nil {
			w.Header().Set("WWW-Authenticate", e.resource.InvalidTokenChallenge("the token is invalid, expired or revoked", nil))
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

type principalKey struct{}

func echoPrincipal() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.Context().Value(principalKey{}).(auth.Principal)
		_ = json.NewEncoder(w).Encode(map[string]any{"key_id": p.KeyID, "scopes": p.Scopes.Strings(), "created_by": p.CreatedBy})
	})
}

// callMCP calls the protected endpoint with a bearer token and returns the
// status and the principal's key id.
func (e *env) callMCP(token string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.base+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		KeyID string `json:"key_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.KeyID
}

// registerClient registers a public client by RFC 7591.
func (e *env) registerClient(redirectURI string) string {
	e.t.Helper()
	body := fmt.Sprintf(`{"client_name":"Test client","redirect_uris":[%q],"token_endpoint_auth_method":"none"}`, redirectURI)
	resp, err := http.Post(e.base+RegisterPath, "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out registered
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("register: %d %v", resp.StatusCode, err)
	}
	return out.ClientID
}

// browser is a person's browser: cookies, and redirects shown to the test
// instead of followed.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type page struct {
	status   int
	body     string
	header   http.Header
	location *url.URL
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, body: string(body), header: resp.Header}
	if loc := resp.Header.Get("Location"); loc != "" {
		p.location, _ = resp.Request.URL.Parse(loc)
	}
	return p
}

func (b *browser) get(u string) page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="(id|csrf)" value="([^"]*)">`)

// form reads the hidden fields of the consent form.
func (p page) form(t *testing.T) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(p.body, -1) {
		v.Set(m[1], m[2])
	}
	if v.Get("id") == "" || v.Get("csrf") == "" {
		t.Fatalf("no consent form in page (%d): %s", p.status, p.body)
	}
	return v
}

// authorization is an authorization request a client builds.
type authorization struct {
	clientID, redirectURI, state, verifier string
	scopes                                 []string
	extra                                  url.Values
}

func newAuthorization(clientID, redirectURI string, scopes ...string) authorization {
	return authorization{clientID: clientID, redirectURI: redirectURI, state: "st-" + newTokenID(),
		verifier: newTokenID() + newTokenID(), scopes: scopes, extra: url.Values{}}
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (e *env) authorizeURL(a authorization) string {
	q := url.Values{"response_type": {"code"}, "client_id": {a.clientID}, "redirect_uri": {a.redirectURI}, "state": {a.state},
		"scope": {strings.Join(a.scopes, " ")}, "code_challenge": {s256(a.verifier)}, "code_challenge_method": {"S256"},
		"resource": {e.base + "/mcp"}}
	for k, v := range a.extra {
		q[k] = v
	}
	return e.base + AuthorizePath + "?" + q.Encode()
}

// consent runs the browser part of a flow: the authorization request, the
// consent page, and the answer with token and the scopes ticked. It returns
// the final redirect to the client.
func (e *env) consent(b *browser, authURL, token string, scopes ...string) page {
	e.t.Helper()
	p := b.get(authURL)
	if p.status != http.StatusFound || p.location == nil || p.location.Path != ConsentPath {
		e.t.Fatalf("authorize: %d %v %s", p.status, p.location, p.body)
	}
	p = b.get(p.location.String())
	if p.status != http.StatusOK {
		e.t.Fatalf("consent page: %d %s", p.status, p.body)
	}
	form := p.form(e.t)
	form.Set("action", "approve")
	form.Set("token", token)
	form["scope"] = scopes
	return b.post(e.base+ConsentPath, form)
}

// code reads the code from the final redirect, checking the state.
func code(t *testing.T, p page, a authorization) string {
	t.Helper()
	if p.status != http.StatusSeeOther || p.location == nil {
		t.Fatalf("answer: %d %v %s", p.status, p.location, p.body)
	}
	q := p.location.Query()
	if q.Get("state") != a.state || q.Get("code") == "" || !strings.HasPrefix(q.Get("iss"), "http://127.0.0.1:") {
		t.Fatalf("redirect %s: want a code, state %s and the issuer (RFC 9207)", p.location, a.state)
	}
	return q.Get("code")
}

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	status       int
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

func (e *env) token(form url.Values) tokenResponse {
	e.t.Helper()
	resp, err := http.PostForm(e.base+TokenPath, form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		e.t.Fatalf("token response: %v", err)
	}
	tr.status = resp.StatusCode
	return tr
}

func (e *env) exchange(a authorization, code string) tokenResponse {
	return e.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.redirectURI},
		"client_id": {a.clientID}, "code_verifier": {a.verifier}, "resource": {e.base + "/mcp"}})
}

func (e *env) refresh(clientID, refreshToken string) tokenResponse {
	return e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {clientID},
		"resource": {e.base + "/mcp"}})
}

// grant runs a whole flow for a new public client and returns its tokens.
func (e *env) grant(token string, scopes ...string) (authorization, tokenResponse) {
	e.t.Helper()
	redirect := "http://127.0.0.1:7777/callback"
	a := newAuthorization(e.registerClient(redirect), redirect, scopes...)
	c := code(e.t, e.consent(newBrowser(e.t), e.authorizeURL(a), token, scopes...), a)
	tr := e.exchange(a, c)
	if tr.status != http.StatusOK {
		e.t.Fatalf("exchange: %d %s %s", tr.status, tr.Error, tr.Description)
	}
	return a, tr
}

// journal returns the audit records written so far.
func (e *env) journalRecords() []audit.Record {
	e.t.Helper()
	if err := e.journal.Flush(); err != nil {
		e.t.Fatal(err)
	}
	var out []audit.Record
	if err := audit.Read(e.jpath, audit.Filter{}, func(r audit.Record) error { out = append(out, r); return nil }); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func wantInvalidToken(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("error = %v, want auth.ErrInvalidToken", err)
	}
}

// jsonPart decodes the payload of a compact JWS.
func jsonPart(token string, v any) error { return decodePart(token, 1, v) }

// jsonHeader decodes the protected header of a compact JWS.
func jsonHeader(token string, v any) error { return decodePart(token, 0, v) }

func decodePart(token string, i int, v any) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("not a compact JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// signJWT signs claims with key, as any issuer would.
func signJWT(t *testing.T, key jose.SigningKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
