package external

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/oauth/authserver"
	"github.com/keygate/keygate/oauth/authserver/authservertest"
)

const resource = "https://kg.example.com/mcp"

var readMap = map[string][]string{"content:read": {"content:read"}, "admin": {"admin"}}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newVerifier(t *testing.T, cfg Config) *Verifier {
	t.Helper()
	v, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantInvalid(t *testing.T, name string, err error) {
	t.Helper()
	// Exactly: the sentinel's own text, so that no detail of why a token
	// failed reaches the caller.
	if !errors.Is(err, auth.ErrInvalidToken) || err.Error() != auth.ErrInvalidToken.Error() {
		t.Errorf("%s: error = %v, want exactly auth.ErrInvalidToken", name, err)
	}
}

// TestTokensOfAnotherKeygateAsIssuer uses a second keygate authorization
// server, on loopback, as the external issuer.
func TestTokensOfAnotherKeygateAsIssuer(t *testing.T) {
	issuer := authservertest.Start(t, resource)
	c := &clock{t: time.Now()}
	v := newVerifier(t, Config{Issuer: issuer.URL, Audience: resource, Scopes: readMap, Now: c.Now})
	access, _ := issuer.AccessToken("content:read")

	p, err := v.Verify(t.Context(), access)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.KeyID, "ext:gr_") || !slices.Equal(p.Scopes.Strings(), []string{"content:read"}) ||
		p.ExpiresAt.Before(time.Now()) || p.ExpiresAt.After(time.Now().Add(authserver.DefaultAccessTokenTTL+time.Minute)) ||
		p.CreatedBy != issuer.URL {
		t.Fatalf("principal = %+v", p)
	}

	t.Run("expired", func(t *testing.T) {
		late := newVerifier(t, Config{Issuer: issuer.URL, Audience: resource, Scopes: readMap,
			Now: func() time.Time { return time.Now().Add(authserver.DefaultAccessTokenTTL + time.Second) }})
		_, err := late.Verify(t.Context(), access)
		wantInvalid(t, "expired token", err)
	})

	t.Run("wrong audience", func(t *testing.T) {
		other := authservertest.Start(t, "https://other.example/mcp")
		v := newVerifier(t, Config{Issuer: other.URL, Audience: resource, Scopes: readMap})
		tok, _ := other.AccessToken("content:read")
		_, err := v.Verify(t.Context(), tok)
		wantInvalid(t, "token for another resource", err)
	})

	t.Run("another issuer for the same resource", func(t *testing.T) {
		other := authservertest.Start(t, resource)
		tok, _ := other.AccessToken("content:read")
		_, err := v.Verify(t.Context(), tok)
		wantInvalid(t, "token of another issuer", err)
	})

	t.Run("scopes that map to nothing", func(t *testing.T) {
		narrow := newVerifier(t, Config{Issuer: issuer.URL, Audience: resource, Scopes: map[string][]string{"content:write": {"content:write"}}})
		p, err := narrow.Verify(t.Context(), access)
		if err != nil || len(p.Scopes) != 0 {
			t.Fatalf("principal %+v, %v; want a principal without scopes (403 insufficient_scope)", p, err)
		}
	})

	t.Run("unknown signing key", func(t *testing.T) {
		var claims map[string]any
		decodePart(t, access, 1, &claims)
		var header struct {
			Kid string `json:"kid"`
		}
		decodePart(t, access, 0, &header)
		stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		fetches := issuer.JWKSFetches.Load()
		for _, kid := range []string{header.Kid, "made-up-1", "made-up-2", "made-up-3", ""} {
			tok := sign(t, jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: stranger, KeyID: kid}}, claims)
			_, err := v.Verify(t.Context(), tok)
			wantInvalid(t, "signed with an unknown key "+kid, err)
		}
		if n := issuer.JWKSFetches.Load() - fetches; n != 0 {
			t.Errorf("unknown key ids made the verifier fetch the keys %d times within a minute", n)
		}
		c.Add(16 * time.Second)
		tok := sign(t, jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: stranger, KeyID: "made-up-4"}}, claims)
		_, err := v.Verify(t.Context(), tok)
		wantInvalid(t, "unknown key after the refetch interval", err)
		if n := issuer.JWKSFetches.Load() - fetches; n != 1 {
			t.Errorf("%d fetches after the interval, want 1", n)
		}
		// The real token still verifies.
		if _, err := v.Verify(t.Context(), access); err != nil {
			t.Fatal(err)
		}
	})
}

// fakeIssuer publishes metadata and one RSA key, and signs what a test asks.
type fakeIssuer struct {
	*httptest.Server
	key      *rsa.PrivateKey
	metadata map[string]any
}

func newFakeIssuer(t *testing.T) *fakeIssuer {
	f := &fakeIssuer{}
	f.key, _ = rsa.GenerateKey(rand.Reader, 2048)
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/oauth-authorization-server":
			http.NotFound(w, r) // an OpenID provider: only the OIDC form
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(f.metadata)
		case "/jwks":
			_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
				{Key: &f.key.PublicKey, KeyID: "rsa1", Algorithm: "RS256", Use: "sig"},
				{Key: []byte("a-shared-secret-that-must-be-ignored"), KeyID: "hmac1", Algorithm: "HS256", Use: "sig"},
			}})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.Close)
	f.metadata = map[string]any{"issuer": f.URL, "jwks_uri": f.URL + "/jwks"}
	return f
}

func (f *fakeIssuer) claims(extra map[string]any) map[string]any {
	c := map[string]any{"iss": f.URL, "aud": resource, "sub": "user@example.com", "exp": time.Now().Add(time.Hour).Unix(),
		"iat": time.Now().Unix()}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func TestClaimsAndAlgorithms(t *testing.T) {
	f := newFakeIssuer(t)
	v := newVerifier(t, Config{Issuer: f.URL, Audience: resource, Scopes: map[string][]string{
		"mcp.read": {"content:read"}, "mcp.write": {"content:write", "content:read"}}})
	rsaKey := jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: f.key, KeyID: "rsa1"}}
	for _, tt := range []struct {
		name   string
		claims map[string]any
		want   []string
	}{
		{"scope string", map[string]any{"scope": "mcp.read openid"}, []string{"content:read"}},
		{"scp list", map[string]any{"scp": []string{"mcp.write", "mcp.read"}}, []string{"content:write", "content:read"}},
		{"scp string", map[string]any{"scp": "mcp.read"}, []string{"content:read"}},
		{"no scope", nil, nil},
	} {
		p, err := v.Verify(t.Context(), sign(t, rsaKey, f.claims(tt.claims)))
		if err != nil || !slices.Equal(p.Scopes.Strings(), tt.want) || p.KeyID != "ext:user@example.com" {
			t.Errorf("%s: %+v, %v; want scopes %v", tt.name, p, err, tt.want)
		}
	}
	p, _ := v.Verify(t.Context(), sign(t, rsaKey, f.claims(map[string]any{"sub": "evil\u202e\nname" + strings.Repeat("x", 300)})))
	if strings.ContainsAny(p.KeyID, "\n\u202e") || len(p.KeyID) > 4+maxSubjectLen {
		t.Errorf("subject kept as %q", p.KeyID)
	}

	hmac := jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: []byte("a-shared-secret-that-must-be-ignored"), KeyID: "hmac1"}}
	_, err := v.Verify(t.Context(), sign(t, hmac, f.claims(nil)))
	wantInvalid(t, "HS256 with a key the JWKS publishes", err)

	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." +
		base64.RawURLEncoding.EncodeToString(mustJSON(t, f.claims(nil))) + ".x"
	_, err = v.Verify(t.Context(), none)
	wantInvalid(t, "alg none", err)

	for name, c := range map[string]map[string]any{
		"no subject":      f.claims(map[string]any{"sub": ""}),
		"no expiry":       f.claims(map[string]any{"exp": nil}),
		"other issuer":    f.claims(map[string]any{"iss": "https://evil.example"}),
		"not yet valid":   f.claims(map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}),
		"audience list":   f.claims(map[string]any{"aud": []string{"https://other.example/mcp"}}),
		"audience prefix": f.claims(map[string]any{"aud": resource + "/more"}),
	} {
		_, err := v.Verify(t.Context(), sign(t, rsaKey, c))
		wantInvalid(t, name, err)
	}
	_, err = v.Verify(t.Context(), "kg_pat_notajwt")
	wantInvalid(t, "not a JWT", err)
}

func TestNewRefusesBadConfigurationAndMetadata(t *testing.T) {
	f := newFakeIssuer(t)
	good := Config{Issuer: f.URL, Audience: resource, Scopes: readMap}
	for name, change := range map[string]func(*Config){
		"http issuer off loopback":    func(c *Config) { c.Issuer = "http://login.example.com" },
		"audience with a fragment":    func(c *Config) { c.Audience = resource + "#x" },
		"no scope mapping":            func(c *Config) { c.Scopes = nil },
		"an unknown keygate scope":    func(c *Config) { c.Scopes = map[string][]string{"x": {"content:fly"}} },
		"a symmetric algorithm":       func(c *Config) { c.Algorithms = []string{"HS256"} },
		"an issuer with no metadata":  func(c *Config) { c.Issuer = f.URL + "/tenant" },
		"metadata naming another one": func(c *Config) { f.metadata["issuer"] = "https://evil.example" },
		"a jwks_uri over plain http": func(c *Config) {
			f.metadata["issuer"], f.metadata["jwks_uri"] = f.URL, "http://keys.example.com/jwks"
		},
	} {
		t.Run(name, func(t *testing.T) {
			f.metadata = map[string]any{"issuer": f.URL, "jwks_uri": f.URL + "/jwks"}
			cfg := good
			change(&cfg)
			if _, err := New(t.Context(), cfg); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
	f.metadata = map[string]any{"issuer": f.URL, "jwks_uri": f.URL + "/jwks"}
	if _, err := New(t.Context(), good); err != nil {
		t.Fatalf("the good configuration: %v", err)
	}
}

func TestMetadataURLs(t *testing.T) {
	got := metadataURLs("https://auth.example.com/tenant1")
	want := []string{"https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
		"https://auth.example.com/.well-known/openid-configuration/tenant1",
		"https://auth.example.com/tenant1/.well-known/openid-configuration"}
	if !slices.Equal(got, want) {
		t.Errorf("with a path: %v", got)
	}
	got = metadataURLs("https://auth.example.com/")
	want = []string{"https://auth.example.com/.well-known/oauth-authorization-server", "https://auth.example.com/.well-known/openid-configuration"}
	if !slices.Equal(got, want) {
		t.Errorf("without a path: %v", got)
	}
}

func sign(t *testing.T, key jose.SigningKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(mustJSON(t, claims))
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodePart(t *testing.T, token string, i int, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
