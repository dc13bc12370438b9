package app_test

// OAuth against a whole keygate over HTTP (issue 15): the flow with
// mcp-go's OAuth client, the attacks on grants, and the external issuer
// mode against a second keygate acting as the issuer.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/app"
	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/oauth/authserver"
	"github.com/keygate/keygate/provider/local"
)

const oauthRedirect = "http://127.0.0.1:7777/callback"

// oServer is a keygate over HTTP with OAuth, and its base URL (its public
// URL: http://127.0.0.1:PORT).
type oServer struct {
	*hServer
	base string
}

// reserve makes the loopback listener a keygate will serve on, so its URL
// is known before it is built (another keygate may need to name it).
func reserve(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	return srv
}

// serveOn builds keygate for in over HTTP with opts and serves it on srv.
func serveOn(t *testing.T, srv *httptest.Server, in instance, opts app.Options, extra ...string) *oServer {
	t.Helper()
	s := &hServer{in: in, stderr: &lockedBuffer{}}
	opts.Stderr, opts.Version = s.stderr, "test"
	s.app = build(t, serveConfig(t, in, nil, append([]string{"--transport", "http", "--addr", "127.0.0.1:0"}, extra...)...), opts)
	h, err := s.app.HTTPHandler(t.Context(), srv.Listener.Addr())
	if err != nil {
		t.Fatalf("HTTP handler: %v", err)
	}
	srv.Config.Handler = h
	srv.Start()
	s.listening(t, srv.Listener.Addr())
	return &oServer{hServer: s, base: "http://127.0.0.1:" + s.port}
}

// clock is a clock the test moves forward.
type clock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.d)
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.d += d
}

// browser is a person's browser: cookies, redirects shown to the test.
func browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="(id|csrf)" value="([^"]*)">`)

// consent runs the browser's part of a flow from the authorization URL:
// the consent page, answered with a keygate token and the scopes ticked.
// It returns the final redirect to the client.
func consent(t *testing.T, authURL, token string, scopes ...string) *url.URL {
	t.Helper()
	b := browser()
	get := func(u string) *http.Response {
		t.Helper()
		resp, err := b.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := get(authURL)
	page, err := resp.Location()
	if resp.StatusCode != http.StatusFound || err != nil || page.Path != authserver.ConsentPath {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("authorize: %d %v %s", resp.StatusCode, page, body)
	}
	resp = get(page.String())
	body, _ := io.ReadAll(resp.Body)
	form := url.Values{"action": {"approve"}, "token": {token}, "scope": scopes}
	for _, m := range hiddenField.FindAllStringSubmatch(string(body), -1) {
		form.Set(m[1], m[2])
	}
	if form.Get("csrf") == "" {
		t.Fatalf("no consent form (%d): %s", resp.StatusCode, body)
	}
	u, _ := url.Parse(authURL)
	resp, err = b.PostForm(u.Scheme+"://"+u.Host+authserver.ConsentPath, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	back, err := resp.Location()
	if resp.StatusCode != http.StatusSeeOther || err != nil || back.Query().Get("code") == "" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("consent: %d %v %s", resp.StatusCode, back, body)
	}
	return back
}

// tokens are a token endpoint's answer.
type tokens struct {
	Access  string `json:"access_token"`
	Refresh string `json:"refresh_token"`
	Error   string `json:"error"`
}

// grant runs the whole flow against the authorization server at issuer by
// hand (dynamic registration, PKCE, consent with token, code exchange) for
// a token for resource, and returns the tokens.
func grant(t *testing.T, issuer, resource, token string, scopes ...string) tokens {
	t.Helper()
	resp, err := http.Post(issuer+authserver.RegisterPath, "application/json",
		strings.NewReader(fmt.Sprintf(`{"client_name":"Attack test","redirect_uris":[%q],"token_endpoint_auth_method":"none"}`, oauthRedirect)))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reg); err != nil || reg.ClientID == "" {
		t.Fatalf("register: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {oauthRedirect}, "state": {"st"},
		"scope": {strings.Join(scopes, " ")}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}, "resource": {resource}}
	back := consent(t, issuer+authserver.AuthorizePath+"?"+q.Encode(), token, scopes...)
	resp, err = http.PostForm(issuer+authserver.TokenPath, url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
		"redirect_uri": {oauthRedirect}, "client_id": {reg.ClientID}, "code_verifier": {verifier}, "resource": {resource}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokens
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.Access == "" {
		t.Fatalf("token: %d %+v %v", resp.StatusCode, tr, err)
	}
	return tr
}

// wantChallenge checks a 401 for an access token: invalid_token, with the
// resource's metadata and scopes to ask for.
func (s *oServer) wantChallenge(t *testing.T, what, token string) {
	t.Helper()
	r := s.post(t, map[string]string{"Authorization": "Bearer " + token}, initBody)
	got := r.header.Get("WWW-Authenticate")
	if r.status != http.StatusUnauthorized || !strings.Contains(got, `error="invalid_token"`) ||
		!strings.Contains(got, `resource_metadata="`+s.base+`/.well-known/oauth-protected-resource/mcp"`) || !strings.Contains(got, `scope="content:read `) {
		t.Errorf("%s: %d %q, want 401 invalid_token with the challenge", what, r.status, got)
	}
}

// records reads the audit journal of in.
func records(t *testing.T, in instance) []audit.Record {
	t.Helper()
	var out []audit.Record
	if err := audit.Read(filepath.Join(in.dir, "data", "audit.jsonl"), audit.Filter{}, func(r audit.Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func mcpCall(ctx context.Context, c *client.Client, name string, args map[string]any) (*mcp.CallToolResult, error) {
	return c.CallTool(ctx, mcp.CallToolRequest{Params: mcp.CallToolParams{Name: name, Arguments: args}})
}

func structuredOf(t *testing.T, r *mcp.CallToolResult) map[string]any {
	t.Helper()
	if r.IsError {
		t.Fatalf("tool error: %v", r.Content)
	}
	return structured(t, r)
}

// TestOAuthWholeFlowWithMCPGoClient drives keygate's OAuth with mcp-go's
// client, which keygate does not control: discovery from the 401's
// challenge, registration (RFC 7591, and a Client ID Metadata Document),
// PKCE, the consent page answered with the admin's keygate token, the code
// exchange, tool calls, a refresh; credentials_list shows the grant,
// credentials_revoke ends it, and the next call gets 401 with the
// challenge.
func TestOAuthWholeFlowWithMCPGoClient(t *testing.T) {
	t.Parallel()
	docs := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"client_id":"https://%s/client.json","client_name":"Doc Client","redirect_uris":[%q],"token_endpoint_auth_method":"none"}`,
			r.Host, oauthRedirect)
	}))
	t.Cleanup(docs.Close)
	pool := x509.NewCertPool()
	pool.AddCert(docs.Certificate())
	cimd := &authserver.CIMDConfig{AllowLoopback: true, TLSConfig: &tls.Config{RootCAs: pool}}

	for _, tc := range []struct{ name, clientID, clientName string }{
		{"dynamic registration", "", "mcp-go test client"},
		{"client id metadata document", docs.URL + "/client.json", "Doc Client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := newInstance(t)
			s := serveOn(t, reserve(t), in, app.Options{OAuthCIMD: cimd})
			ctx := t.Context()
			admin := keyID(s.token)

			// Discovery starts from the 401.
			r := s.post(t, map[string]string{"Authorization": ""}, initBody)
			if ch := r.header.Get("WWW-Authenticate"); r.status != 401 ||
				ch != `Bearer resource_metadata="`+s.base+`/.well-known/oauth-protected-resource/mcp", scope="content:read content:write content:delete credentials:read credentials:write"` {
				t.Fatalf("401 without a token: %d %q", r.status, ch)
			}

			store := client.NewMemoryTokenStore()
			c, err := client.NewOAuthStreamableHttpClient(s.url, client.OAuthConfig{ClientID: tc.clientID, RedirectURI: oauthRedirect,
				Scopes: []string{"content:read", "credentials:read", "credentials:write"}, TokenStore: store, PKCEEnabled: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			_, err = c.Initialize(ctx, mcp.InitializeRequest{Params: mcp.InitializeParams{ProtocolVersion: mcp.LATEST_PROTOCOL_VERSION,
				ClientInfo: mcp.Implementation{Name: "keygate-oauth-test", Version: "1"}}})
			if !client.IsOAuthAuthorizationRequiredError(err) {
				t.Fatalf("initialize without a token: %v", err)
			}
			h := client.GetOAuthHandler(err)
			if tc.clientID == "" {
				if err := h.RegisterClient(ctx, tc.clientName); err != nil {
					t.Fatal(err)
				}
			}
			verifier, err := client.GenerateCodeVerifier()
			if err != nil {
				t.Fatal(err)
			}
			state, _ := client.GenerateState()
			authURL, err := h.GetAuthorizationURL(ctx, state, client.GenerateCodeChallenge(verifier))
			if err != nil {
				t.Fatal(err)
			}
			back := consent(t, authURL, s.token, "content:read", "credentials:read", "credentials:write")
			if back.Query().Get("state") != state || back.Query().Get("iss") != s.base {
				t.Fatalf("redirect %s: want the state and iss=%s", back, s.base)
			}
			if err := h.ProcessAuthorizationResponse(ctx, back.Query().Get("code"), state, verifier); err != nil {
				t.Fatal(err)
			}
			first, err := store.GetToken(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s.secrets = append(s.secrets, first.AccessToken, first.RefreshToken)

			if _, err := c.Initialize(ctx, mcp.InitializeRequest{Params: mcp.InitializeParams{ProtocolVersion: mcp.LATEST_PROTOCOL_VERSION,
				ClientInfo: mcp.Implementation{Name: "keygate-oauth-test", Version: "1"}}}); err != nil {
				t.Fatalf("initialize with the access token: %v", err)
			}
			res, err := mcpCall(ctx, c, "auth_whoami", nil)
			if err != nil {
				t.Fatal(err)
			}
			who := structuredOf(t, res)
			grantID, _ := who["key_id"].(string)
			if !strings.HasPrefix(grantID, auth.GrantPrefix) || who["created_by"] != admin || who["owner"] != tc.clientName ||
				hGet(who, "credential", "kind") != "oauth_access_token" {
				t.Fatalf("whoami through the grant: %v", who)
			}
			if res, err := mcpCall(ctx, c, "content_list", map[string]any{"type": "posts", "limit": 1}); err != nil || res.IsError {
				t.Fatalf("content_list: %v %v", res, err)
			}

			// A refresh: a new access token for the same grant.
			next, err := h.RefreshToken(ctx, first.RefreshToken)
			if err != nil || next.AccessToken == first.AccessToken {
				t.Fatalf("refresh: %v", err)
			}
			s.secrets = append(s.secrets, next.AccessToken, next.RefreshToken)
			res, err = mcpCall(ctx, c, "credentials_list", nil)
			if err != nil {
				t.Fatal(err)
			}
			var listed map[string]any
			for _, k := range structuredOf(t, res)["keys"].([]any) {
				if hGet(k, "id") == grantID {
					listed, _ = k.(map[string]any)
				}
			}
			if listed["kind"] != "oauth_grant" || listed["client_name"] != tc.clientName || listed["redirect_host"] != "127.0.0.1" ||
				listed["approved_by"] != admin || fmt.Sprint(listed["scopes"]) != "[content:read credentials:read credentials:write]" {
				t.Fatalf("credentials_list through the grant does not show it: %v", structuredOf(t, res)["keys"])
			}

			// The admin revokes the grant; the client's next call is refused.
			sid := s.session(t, "")
			out := s.ok(t, "", sid, "credentials_revoke", map[string]any{"credential": grantID, "confirm": true})
			if out["revoked"] != true || hGet(out, "grant", "id") != grantID {
				t.Fatalf("credentials_revoke: %v", out)
			}
			if res, err := mcpCall(ctx, c, "content_list", map[string]any{"type": "posts", "limit": 1}); err == nil {
				t.Fatalf("a call after the grant was revoked succeeded: %v", res)
			}
			s.wantChallenge(t, "the revoked grant's access token", next.AccessToken)
			if _, err := h.RefreshToken(ctx, next.RefreshToken); err == nil {
				t.Fatal("the revoked grant's refresh token still works")
			}
		})
	}
}

// TestOAuthGrantAttacks: what a grant's token cannot do. Each case is an
// attack of issue 15: beyond its scopes, beyond its approver's keys, at
// another resource, after its grant or its approving key was revoked.
func TestOAuthGrantAttacks(t *testing.T) {
	t.Parallel()
	const other = "https://other.example/mcp"
	in := newInstance(t)
	s := serveOn(t, reserve(t), in, app.Options{}, "--oauth-resources", other)
	admin := keyID(s.token)
	resource := s.base + "/mcp"
	alice := mintCLI(t, in, "alice", "content:read,credentials:read,credentials:write")
	bob := mintCLI(t, in, "bob", "content:read")
	s.secrets = append(s.secrets, alice, bob)
	flow := func(token string, scopes ...string) string {
		t.Helper()
		tr := grant(t, s.base, resource, token, scopes...)
		s.secrets = append(s.secrets, tr.Access, tr.Refresh)
		return tr.Access
	}

	t.Run("a grant with content:read cannot create keys", func(t *testing.T) {
		reader := flow(s.token, "content:read")
		sid := s.session(t, reader)
		r := s.call(t, reader, sid, "credentials_create", map[string]any{"name": "x", "scopes": []any{"content:read"}, "expires_in_days": 1, "deliver": "reveal"})
		if ch := r.header.Get("WWW-Authenticate"); r.status != 403 || !strings.Contains(ch, `error="insufficient_scope", scope="content:read credentials:write"`) ||
			!strings.Contains(ch, `resource_metadata="`+s.base+`/.well-known/oauth-protected-resource/mcp"`) {
			t.Fatalf("credentials_create through a content:read grant of the admin: %d %q", r.status, ch)
		}
	})

	t.Run("a grant is narrowed to its scopes and lifetime", func(t *testing.T) {
		writer := flow(s.token, "content:read", "credentials:write")
		sid := s.session(t, writer)
		s.refused(t, writer, sid, "credentials_create", map[string]any{"name": "wide", "scopes": []any{"content:write"}, "expires_in_days": 1, "deliver": "reveal"},
			"cannot grant content:write")
		s.refused(t, writer, sid, "credentials_create", map[string]any{"name": "long", "scopes": []any{"content:read"}, "expires_in_days": 100, "deliver": "reveal"},
			"would outlive your credential")
		made := s.ok(t, writer, sid, "credentials_create", map[string]any{"name": "made through a grant", "scopes": []any{"content:read"}, "expires_in_days": 1, "deliver": "reveal"})
		s.secrets = append(s.secrets, newToken(t, made))
		if hGet(made, "key", "created_by") != admin {
			t.Fatalf("the key made through the grant belongs to %v, want the approving key %s", hGet(made, "key", "created_by"), admin)
		}
		var found bool
		for _, rec := range records(t, in) {
			if rec.Tool == "credentials_create" && rec.Outcome == audit.OutcomeOK && strings.HasPrefix(rec.Principal, auth.GrantPrefix) {
				found = strings.Contains(rec.Detail, "approved by key "+admin)
			}
		}
		if !found {
			t.Error("the journal does not name the grant and its approver for a key made through it")
		}
	})

	t.Run("a grant cannot revoke a key its approver does not own", func(t *testing.T) {
		alices := flow(alice, "content:read", "credentials:write")
		sid := s.session(t, alices)
		s.refused(t, alices, sid, "credentials_revoke", map[string]any{"credential": keyID(bob), "confirm": true}, "neither yours nor one your key created")
		s.refused(t, alices, sid, "credentials_revoke", map[string]any{"credential": admin, "confirm": true}, "neither yours nor one your key created")
		if !s.works(t, bob) || !s.works(t, s.token) {
			t.Fatal("a key the approver does not own was revoked")
		}
		var refused bool
		for _, rec := range records(t, in) {
			refused = refused || (rec.Tool == "credentials_revoke" && rec.Outcome == audit.OutcomeRefused && rec.Target == keyID(bob) &&
				strings.HasPrefix(rec.Principal, auth.GrantPrefix))
		}
		if !refused {
			t.Error("the refusal is not in the journal")
		}
	})

	t.Run("a token for another resource is refused", func(t *testing.T) {
		tr := grant(t, s.base, other, s.token, "content:read")
		s.secrets = append(s.secrets, tr.Access, tr.Refresh)
		s.wantChallenge(t, "a token for "+other, tr.Access)
	})

	t.Run("a revoked grant's token is refused at once", func(t *testing.T) {
		tok := flow(s.token, "content:read", "credentials:read")
		sid := s.session(t, tok)
		list := s.ok(t, tok, sid, "credentials_list", nil)
		var grantID string
		for _, k := range list["keys"].([]any) {
			if hGet(k, "kind") == "oauth_grant" && hGet(k, "revoked_at") == nil && hGet(k, "client_name") == "Attack test" && fmt.Sprint(hGet(k, "scopes")) == "[content:read credentials:read]" {
				grantID, _ = hGet(k, "id").(string)
			}
		}
		if grantID == "" {
			t.Fatalf("the grant does not list itself: %v", list["keys"])
		}
		// Revoked by another process, as the token CLI would: no cache
		// admits the token after that, not even for the verification
		// cache's second.
		other, err := local.Open(t.Context(), in.store, local.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		if _, _, err := other.RevokeGrant(t.Context(), grantID, local.GrantRevokedByUser); err != nil {
			t.Fatal(err)
		}
		s.wantChallenge(t, "the token of a grant revoked a moment ago", tok)
	})

	t.Run("revoking the approving key ends the grant", func(t *testing.T) {
		carol := mintCLI(t, in, "carol", "content:read")
		s.secrets = append(s.secrets, carol)
		tok := flow(carol, "content:read")
		if !s.works(t, tok) {
			t.Fatal("the grant does not work")
		}
		sid := s.session(t, "")
		s.ok(t, "", sid, "credentials_revoke", map[string]any{"credential": keyID(carol), "confirm": true})
		s.wantChallenge(t, "the token of a grant whose key was revoked", tok)
	})
}

// TestOAuthExternalIssuer: keygate trusting another keygate's
// authorization server (--oauth external), which issues tokens for it
// (RFC 8707 resource, the issuer's --oauth-resources). Tokens work by
// their mapped scopes; the subject holds no key unless mapped to admin; a
// token for another audience, an expired one and one signed by an unknown
// key are refused with the challenge.
func TestOAuthExternalIssuer(t *testing.T) {
	t.Parallel()
	resourceSrv := reserve(t)
	resource := "http://" + resourceSrv.Listener.Addr().String() + "/mcp"
	issuerIn := newInstance(t)
	issuer := serveOn(t, reserve(t), issuerIn, app.Options{}, "--oauth-resources", resource)
	clk := &clock{}
	in := newInstance(t)
	s := serveOn(t, resourceSrv, in, app.Options{OAuthNow: clk.Now}, "--oauth", "external", "--oauth-issuer", issuer.base,
		"--oauth-scope-map", "content:read=content:read,credentials:read=credentials:read,credentials:write=credentials:write,admin=admin")
	if s.base+"/mcp" != resource {
		t.Fatalf("resource %s, want %s", s.base+"/mcp", resource)
	}
	resp, err := http.Get(s.base + "/.well-known/oauth-protected-resource/mcp")
	if err != nil {
		t.Fatal(err)
	}
	var prm struct {
		Resource string   `json:"resource"`
		Servers  []string `json:"authorization_servers"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&prm)
	resp.Body.Close()
	if prm.Resource != resource || len(prm.Servers) != 1 || prm.Servers[0] != issuer.base {
		t.Fatalf("metadata %+v: want the issuer %s", prm, issuer.base)
	}

	if !s.works(t, s.token) {
		t.Fatal("keygate tokens stopped working in external mode")
	}

	get := func(scopes ...string) string {
		t.Helper()
		tr := grant(t, issuer.base, resource, issuer.token, scopes...)
		s.secrets = append(s.secrets, tr.Access, tr.Refresh)
		issuer.secrets = append(issuer.secrets, tr.Access, tr.Refresh)
		return tr.Access
	}
	user := get("content:read", "credentials:read", "credentials:write")
	sid := s.session(t, user)
	who := s.ok(t, user, sid, "auth_whoami", nil)
	if sub, _ := who["key_id"].(string); !strings.HasPrefix(sub, auth.ExternalPrefix+auth.GrantPrefix) || who["created_by"] != issuer.base {
		t.Fatalf("whoami with the issuer's token: %v", who)
	}
	s.ok(t, user, sid, "content_list", map[string]any{"type": "posts", "limit": 1})
	s.refused(t, user, sid, "credentials_create", map[string]any{"name": "x", "scopes": []any{"content:read"}, "expires_in_days": 1, "deliver": "reveal"},
		"stands for no keygate key")
	s.refused(t, user, sid, "credentials_revoke", map[string]any{"credential": keyID(s.token), "confirm": true}, "stands for no keygate key")
	list := s.ok(t, user, sid, "credentials_list", nil)
	if keys, _ := list["keys"].([]any); len(keys) != 0 || !strings.Contains(fmt.Sprint(list["note"]), "stands for no keygate key") {
		t.Fatalf("credentials_list for an external subject: %v", list)
	}

	root := get("admin")
	rootSid := s.session(t, root)
	made := s.ok(t, root, rootSid, "credentials_create", map[string]any{"name": "by the external admin", "scopes": []any{"content:read"}, "expires_in_days": 1, "deliver": "reveal"})
	s.secrets = append(s.secrets, newToken(t, made))
	if hGet(made, "key", "created_by") != nil {
		t.Fatalf("a key made by an external admin belongs to %v, want no key (the operator's)", hGet(made, "key", "created_by"))
	}
	var named bool
	for _, rec := range records(t, in) {
		named = named || (rec.Tool == "credentials_create" && rec.Outcome == audit.OutcomeOK && strings.HasPrefix(rec.Principal, auth.ExternalPrefix) &&
			strings.Contains(rec.Detail, "external issuer "+issuer.base))
	}
	if !named {
		t.Error("the journal does not name the external subject")
	}

	// A token of the issuer for its own resource: the wrong audience.
	own := grant(t, issuer.base, issuer.base+"/mcp", issuer.token, "content:read")
	s.secrets = append(s.secrets, own.Access, own.Refresh)
	s.wantChallenge(t, "a token for another audience", own.Access)

	// A token signed by a key the issuer never published, with every
	// claim right.
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: priv, KeyID: "not-the-issuers"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{"iss": issuer.base, "aud": []string{resource}, "sub": "mallory", "scope": "admin",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
	jws, err := signer.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := jws.CompactSerialize()
	s.wantChallenge(t, "a token signed by an unknown key", forged)

	// Eleven minutes on, the issuer's ten-minute token has expired.
	if !s.works(t, user) {
		t.Fatal("the good token stopped working")
	}
	clk.add(11 * time.Minute)
	s.wantChallenge(t, "an expired token", user)
}

// TestHTTPSWithOAuth: with --tls-cert and --tls-key keygate serves HTTPS
// (app.Run listening itself), and its OAuth URLs default to https.
func TestHTTPSWithOAuth(t *testing.T) {
	t.Parallel()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := x509.MarshalPKCS8PrivateKey(priv)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := hServeHTTP(t, newInstance(t), "127.0.0.1:0", nil, "--tls-cert", cert, "--tls-key", key)
	parsed, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(parsed)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := "https://127.0.0.1:" + s.port

	resp, err := c.Get(base + "/.well-known/oauth-protected-resource/mcp")
	if err != nil {
		t.Fatal(err)
	}
	var prm struct {
		Resource string   `json:"resource"`
		Servers  []string `json:"authorization_servers"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&prm)
	resp.Body.Close()
	if prm.Resource != base+"/mcp" || len(prm.Servers) != 1 || prm.Servers[0] != base {
		t.Fatalf("metadata over HTTPS: %+v", prm)
	}
	resp, err = c.Post(base+"/mcp", "application/json", strings.NewReader(initBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.Contains(ch, `resource_metadata="`+base+`/.well-known/oauth-protected-resource/mcp"`) {
		t.Fatalf("401 over HTTPS: %d %q", resp.StatusCode, ch)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/mcp", strings.NewReader(initBody))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if resp, err = c.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("a keygate token over HTTPS: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp, err := http.Get(strings.Replace(base, "https", "http", 1) + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP is served on the HTTPS port")
		}
	}
}

// TestOAuthBrowserPagesAndCORS: the authorization server's pages are
// browser navigations, outside /mcp's Origin guard, and keep their own
// protections; browser-based clients at an allowed origin may call the
// metadata, token, registration and revocation endpoints and /mcp, and no
// other origin may read them.
func TestOAuthBrowserPagesAndCORS(t *testing.T) {
	t.Parallel()
	const appOrigin = "https://app.example"
	in := newInstance(t)
	s := serveOn(t, reserve(t), in, app.Options{}, "--allowed-origins", appOrigin)
	resp, err := http.Post(s.base+authserver.RegisterPath, "application/json",
		strings.NewReader(fmt.Sprintf(`{"client_name":"Browser test","redirect_uris":[%q],"token_endpoint_auth_method":"none"}`, oauthRedirect)))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	sum := sha256.Sum256([]byte(rand.Text() + rand.Text()))
	q := url.Values{"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {oauthRedirect}, "state": {"st"},
		"scope": {"content:read"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}

	b := browser()
	resp, err = b.Get(s.base + authserver.AuthorizePath + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	page, err := resp.Location()
	if err != nil {
		t.Fatalf("authorize: %d", resp.StatusCode)
	}
	resp, err = b.Get(page.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") || resp.Header.Get("X-Frame-Options") != "DENY" ||
		resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("consent page headers: %v", resp.Header)
	}
	form := url.Values{"action": {"approve"}, "token": {s.token}, "scope": {"content:read"}}
	for _, m := range hiddenField.FindAllStringSubmatch(string(body), -1) {
		form.Set(m[1], m[2])
	}
	post := func(c *http.Client, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.base+authserver.ConsentPath, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// A form posted from another browser (no cookie) is refused by the
	// consent page itself, not by /mcp's Origin guard.
	if r := post(browser(), "https://evil.example"); r.StatusCode != http.StatusForbidden || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Errorf("forged consent: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	// The person's own browser sends the page's origin, which need not be
	// on /mcp's allow-list (behind a proxy it is the public URL's).
	if r := post(b, "https://keygate.example.com"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("consent from the person's browser: %d", r.StatusCode)
	}

	preflight := func(path, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, s.base+path, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, mcp-protocol-version")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, path := range []string{"/mcp", "/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource",
		authserver.MetadataPath, authserver.TokenPath, authserver.RegisterPath, authserver.RevokePath} {
		if r := preflight(path, appOrigin); r.StatusCode != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != appOrigin ||
			!strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Errorf("preflight of %s from %s: %d %v", path, appOrigin, r.StatusCode, r.Header)
		}
		r := preflight(path, "https://evil.example")
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != "" || (path == "/mcp" && r.StatusCode != http.StatusForbidden) {
			t.Errorf("preflight of %s from another origin: %d, Access-Control-Allow-Origin %q", path, r.StatusCode, got)
		}
	}
	for origin, want := range map[string]string{appOrigin: appOrigin, "https://evil.example": ""} {
		req, _ := http.NewRequest(http.MethodGet, s.base+authserver.MetadataPath, nil)
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); resp.StatusCode != 200 || got != want {
			t.Errorf("metadata from %s: %d, Access-Control-Allow-Origin %q", origin, resp.StatusCode, got)
		}
	}
	r := s.post(t, map[string]string{"Origin": appOrigin, "Authorization": ""}, initBody)
	if r.status != 401 || r.header.Get("Access-Control-Allow-Origin") != appOrigin || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
		t.Errorf("401 to an allowed origin: %d %v", r.status, r.header)
	}
}

// TestOAuthOff: --oauth off serves no OAuth endpoint and keeps keygate
// tokens' plain challenge; access tokens are refused.
func TestOAuthOff(t *testing.T) {
	t.Parallel()
	s := serveOn(t, reserve(t), newInstance(t), app.Options{}, "--oauth", "off")
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", authserver.MetadataPath, authserver.TokenPath} {
		resp, err := http.Get(s.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s with --oauth off: %d", path, resp.StatusCode)
		}
	}
	if r := s.post(t, map[string]string{"Authorization": ""}, initBody); r.header.Get("WWW-Authenticate") != `Bearer realm="keygate"` {
		t.Errorf("401 with --oauth off: %q", r.header.Get("WWW-Authenticate"))
	}
	if r := s.post(t, map[string]string{"Authorization": "Bearer aaaa.bbbb.cccc"}, initBody); r.status != 401 {
		t.Errorf("an access token with --oauth off: %d", r.status)
	}
	if !s.works(t, s.token) {
		t.Error("a keygate token does not work with --oauth off")
	}
}
