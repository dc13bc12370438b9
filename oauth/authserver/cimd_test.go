package authserver

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// docServer serves Client ID Metadata Documents over https on loopback;
// docs maps a path to the document's body, with "{url}" replaced by the
// document's own URL. It counts the fetches.
type docServer struct {
	*httptest.Server
	fetches atomic.Int64
}

func newDocServer(t *testing.T, docs map[string]string) *docServer {
	d := &docServer{}
	d.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.fetches.Add(1)
		switch r.URL.Path {
		case "/redirect.json":
			http.Redirect(w, r, "/client.json", http.StatusFound)
			return
		case "/missing.json":
			http.NotFound(w, r)
			return
		case "/html.json":
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(`{}`))
			return
		}
		body, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write([]byte(strings.ReplaceAll(body, "{url}", d.URL+r.URL.Path)))
	}))
	t.Cleanup(d.Close)
	return d
}

func (d *docServer) trust() envOption {
	pool := x509.NewCertPool()
	pool.AddCert(d.Certificate())
	return func(c *Config) {
		c.CIMD.AllowLoopback = true
		c.CIMD.TLSConfig = &tls.Config{RootCAs: pool}
	}
}

const goodDoc = `{"client_id":"{url}","client_name":"Doc Client","redirect_uris":["http://127.0.0.1/callback"],"token_endpoint_auth_method":"none"}`

// discover finds the authorization server the way the MCP specification
// says a client must: from the 401's resource_metadata, then RFC 8414.
func (e *env) discover() metadata {
	e.t.Helper()
	resp, err := http.Get(e.base + "/mcp")
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	m := regexp.MustCompile(`resource_metadata="([^"]+)"`).FindStringSubmatch(resp.Header.Get("WWW-Authenticate"))
	if resp.StatusCode != http.StatusUnauthorized || m == nil {
		e.t.Fatalf("unauthenticated call: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	getJSON(e.t, m[1], &prm)
	if prm.Resource != e.base+"/mcp" || len(prm.AuthorizationServers) != 1 {
		e.t.Fatalf("protected resource metadata = %+v", prm)
	}
	var md metadata
	getJSON(e.t, prm.AuthorizationServers[0]+"/.well-known/oauth-authorization-server", &md)
	if md.Issuer != prm.AuthorizationServers[0] {
		e.t.Fatalf("issuer %q, want %q (RFC 8414 section 3.3)", md.Issuer, prm.AuthorizationServers[0])
	}
	return md
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// TestClientIDMetadataDocumentFlowWithOAuth2 is a whole flow with
// golang.org/x/oauth2 as the client and a Client ID Metadata Document
// served over https as its registration.
func TestClientIDMetadataDocumentFlowWithOAuth2(t *testing.T) {
	docs := newDocServer(t, map[string]string{"/client.json": goodDoc})
	e := newEnv(t, docs.trust())
	md := e.discover()
	if !md.ClientIDMetadataDocumentSupported || strings.Join(md.CodeChallengeMethodsSupported, ",") != "S256" {
		t.Fatalf("metadata = %+v", md)
	}
	ctx := t.Context()
	conf := &oauth2.Config{ClientID: docs.URL + "/client.json", RedirectURL: "http://127.0.0.1:45678/callback",
		Scopes:   []string{"content:read"},
		Endpoint: oauth2.Endpoint{AuthURL: md.AuthorizationEndpoint, TokenURL: md.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams}}
	resource := oauth2.SetAuthURLParam("resource", e.base+"/mcp")
	verifier := oauth2.GenerateVerifier()
	state := "st-" + newTokenID()
	b := newBrowser(t)
	p := b.get(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), resource))
	consent := b.get(p.location.String())
	for _, want := range []string{"Doc Client", "identified by the web site <strong>127.0.0.1</strong>", "a program on the computer"} {
		if !strings.Contains(consent.body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	form := consent.form(t)
	form.Set("action", "approve")
	form.Set("token", e.alicePAT)
	form.Set("scope", "content:read")
	final := b.post(e.base+ConsentPath, form)
	c := code(t, final, authorization{state: state})

	tok, err := conf.Exchange(ctx, c, oauth2.VerifierOption(verifier), resource)
	if err != nil {
		t.Fatal(err)
	}
	if status, keyID := e.callMCP(tok.AccessToken); status != http.StatusOK || !strings.HasPrefix(keyID, "gr_") {
		t.Fatalf("call: %d %q", status, keyID)
	}
	refreshed, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if status, _ := e.callMCP(refreshed.AccessToken); status != http.StatusOK {
		t.Fatalf("call after refresh: %d", status)
	}
	if n := docs.fetches.Load(); n != 1 {
		t.Errorf("document fetched %d times, want once (cached)", n)
	}
}

func TestClientIDMetadataDocumentsAreValidated(t *testing.T) {
	docs := newDocServer(t, map[string]string{
		"/client.json":        goodDoc,
		"/other-id.json":      `{"client_id":"https://elsewhere.example/client.json","client_name":"x","redirect_uris":["http://127.0.0.1/callback"]}`,
		"/no-name.json":       `{"client_id":"{url}","redirect_uris":["http://127.0.0.1/callback"]}`,
		"/no-redirect.json":   `{"client_id":"{url}","client_name":"x"}`,
		"/secret.json":        `{"client_id":"{url}","client_name":"x","redirect_uris":["http://127.0.0.1/callback"],"client_secret":"s3cret"}`,
		"/basic.json":         `{"client_id":"{url}","client_name":"x","redirect_uris":["http://127.0.0.1/callback"],"token_endpoint_auth_method":"client_secret_basic"}`,
		"/jwt.json":           `{"client_id":"{url}","client_name":"x","redirect_uris":["http://127.0.0.1/callback"],"token_endpoint_auth_method":"private_key_jwt"}`,
		"/http-redirect.json": `{"client_id":"{url}","client_name":"x","redirect_uris":["http://evil.example/callback"]}`,
		"/big.json":           `{"client_id":"{url}","client_name":"` + strings.Repeat("x", 6000) + `","redirect_uris":["http://127.0.0.1/callback"]}`,
		"/array.json":         `["not an object"]`,
	})
	e := newEnv(t, docs.trust(), func(c *Config) { c.Limits.MetadataFetches = 100 })
	tests := []struct{ name, path, redirect string }{
		{"client_id differs from the URL", "/other-id.json", ""},
		{"no client_name", "/no-name.json", ""},
		{"no redirect_uris", "/no-redirect.json", ""},
		{"a client_secret", "/secret.json", ""},
		{"a secret-based auth method", "/basic.json", ""},
		{"private_key_jwt", "/jwt.json", ""},
		{"plain http redirect to another host", "/http-redirect.json", "http://evil.example/callback"},
		{"larger than 5 KiB", "/big.json", ""},
		{"not an object", "/array.json", ""},
		{"an HTTP redirect", "/redirect.json", ""},
		{"a 404", "/missing.json", ""},
		{"not JSON", "/html.json", ""},
		{"a redirect_uri the document does not list", "/client.json", "https://evil.example/callback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			redirect := tt.redirect
			if redirect == "" {
				redirect = "http://127.0.0.1:9999/callback"
			}
			a := newAuthorization(docs.URL+tt.path, redirect, "content:read")
			p := newBrowser(t).get(e.authorizeURL(a))
			if p.status != http.StatusBadRequest || p.location != nil {
				t.Fatalf("authorize: %d, Location %v; want 400 and no redirect", p.status, p.location)
			}
		})
	}
}

func TestClientIDMetadataDocumentURLRules(t *testing.T) {
	for _, id := range []string{
		"http://client.example/client.json",
		"https://client.example",
		"https://client.example/",
		"https://user@client.example/client.json",
		"https://client.example/a/../client.json",
		"https://client.example/./client.json",
		"https://client.example/client.json#x",
		"https://client.example/client.json?v=1",
		"https://client.example/" + strings.Repeat("a", maxClientIDLen),
	} {
		if err := checkClientIDURL(id); err == nil {
			t.Errorf("checkClientIDURL(%q) = nil, want an error", id)
		}
	}
	if err := checkClientIDURL("https://client.example/oauth/client.json"); err != nil {
		t.Errorf("a good URL: %v", err)
	}
}

// Without AllowLoopback a document on loopback is never fetched: the check
// is made on the address dialled.
func TestClientIDMetadataDocumentSSRFGuard(t *testing.T) {
	docs := newDocServer(t, map[string]string{"/client.json": goodDoc})
	pool := x509.NewCertPool()
	pool.AddCert(docs.Certificate())
	e := newEnv(t, func(c *Config) { c.CIMD.TLSConfig = &tls.Config{RootCAs: pool} })
	a := newAuthorization(docs.URL+"/client.json", "http://127.0.0.1/callback", "content:read")
	if p := newBrowser(t).get(e.authorizeURL(a)); p.status != http.StatusBadRequest || p.location != nil {
		t.Fatalf("authorize: %d %v", p.status, p.location)
	}
	if n := docs.fetches.Load(); n != 0 {
		t.Fatalf("the document server on loopback was reached %d times", n)
	}
	if !strings.Contains(e.logs.String(), "special-use address") {
		t.Errorf("log does not say why: %s", e.logs.String())
	}

	if _, err := New(t.Context(), Config{Issuer: "https://kg.example.com", Resource: "https://kg.example.com/mcp", Store: e.store,
		CIMD: CIMDConfig{AllowLoopback: true}}); err == nil {
		t.Fatal("AllowLoopback accepted for an issuer that is not on loopback")
	}
}

func TestFetchableIP(t *testing.T) {
	for _, tt := range []struct {
		ip       string
		loopback bool
		want     bool
	}{
		{"93.184.216.34", false, true},
		{"2606:2800:220:1:248:1893:25c8:1946", false, true},
		{"127.0.0.1", false, false},
		{"127.0.0.1", true, true},
		{"::1", false, false},
		{"::ffff:127.0.0.1", false, false},
		{"::ffff:10.0.0.1", false, false},
		{"10.1.2.3", false, false},
		{"172.16.0.1", false, false},
		{"192.168.1.1", false, false},
		{"169.254.169.254", false, false},
		{"100.64.0.1", false, false},
		{"0.0.0.0", false, false},
		{"224.0.0.1", false, false},
		{"255.255.255.255", false, false},
		{"198.18.0.1", false, false},
		{"fe80::1", false, false},
		{"fc00::1", false, false},
		{"64:ff9b::7f00:1", false, false},
		{"2002:7f00:1::", false, false},
		{"10.0.0.1", true, false},
	} {
		if got := fetchableIP(netip.MustParseAddr(tt.ip), tt.loopback); got != tt.want {
			t.Errorf("fetchableIP(%s, loopback=%v) = %v, want %v", tt.ip, tt.loopback, got, tt.want)
		}
	}
}

func TestClientIDMetadataDocumentCache(t *testing.T) {
	d := &documents{minCache: time.Minute, maxCache: 24 * time.Hour}
	for _, tt := range []struct {
		header string
		want   time.Duration
	}{
		{"", defaultDocCache},
		{"max-age=3600", time.Hour},
		{"public, max-age=5", time.Minute},
		{"max-age=999999999", 24 * time.Hour},
		{"no-store", time.Minute},
		{"max-age=x", defaultDocCache},
	} {
		h := http.Header{}
		h.Set("Cache-Control", tt.header)
		if got := d.cacheFor(h); got != tt.want {
			t.Errorf("Cache-Control %q: %v, want %v", tt.header, got, tt.want)
		}
	}
	docs := newDocServer(t, map[string]string{"/client.json": goodDoc})
	e := newEnv(t, docs.trust())
	for range 3 {
		a := newAuthorization(docs.URL+"/missing.json", "http://127.0.0.1/callback", "content:read")
		newBrowser(t).get(e.authorizeURL(a))
	}
	if n := docs.fetches.Load(); n != 3 {
		t.Errorf("a failing document was fetched %d times for 3 requests, want 3: errors are not cached", n)
	}
}
