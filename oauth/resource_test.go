package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/auth"
)

func TestCanonicalURL(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "https://KG.example.com/mcp/", want: "https://kg.example.com/mcp"},
		{in: "HTTPS://kg.example.com", want: "https://kg.example.com"},
		{in: "http://127.0.0.1:8080/mcp", want: "http://127.0.0.1:8080/mcp"},
		{in: "http://[::1]:8080/mcp", want: "http://[::1]:8080/mcp"},
		{in: "http://localhost:8080/mcp", want: "http://localhost:8080/mcp"},
		{in: "http://kg.example.com/mcp", wantErr: "must use https"},
		{in: "ftp://kg.example.com/mcp", wantErr: "must use https"},
		{in: "kg.example.com/mcp", wantErr: "absolute URL"},
		{in: "https://kg.example.com/mcp#frag", wantErr: "fragment"},
		{in: "https://kg.example.com/mcp#", wantErr: "fragment"},
		{in: "https://kg.example.com/mcp?x=1", wantErr: "query"},
		{in: "https://user:pw@kg.example.com/mcp", wantErr: "user name"},
	}
	for _, tt := range tests {
		got, err := CanonicalURL(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("CanonicalURL(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CanonicalURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestMetadataServedWhereClientsLook(t *testing.T) {
	r, err := NewResource("https://kg.example.com/mcp", "https://kg.example.com")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	r.Register(mux)
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d", path, rec.Code)
		}
		var doc struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
			ScopesSupported      []string `json:"scopes_supported"`
			BearerMethods        []string `json:"bearer_methods_supported"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Resource != "https://kg.example.com/mcp" || !slices.Equal(doc.AuthorizationServers, []string{"https://kg.example.com"}) ||
			!slices.Equal(doc.BearerMethods, []string{"header"}) {
			t.Errorf("GET %s = %+v", path, doc)
		}
		for _, a := range auth.AllActions {
			if !slices.Contains(doc.ScopesSupported, string(a)) {
				t.Errorf("scopes_supported %v lacks %s", doc.ScopesSupported, a)
			}
		}
	}
	if got, want := r.MetadataURL(), "https://kg.example.com/.well-known/oauth-protected-resource/mcp"; got != want {
		t.Errorf("MetadataURL = %q, want %q", got, want)
	}
}

func TestChallenges(t *testing.T) {
	r, err := NewResource("http://127.0.0.1:8080/mcp", "http://127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	const meta = `resource_metadata="http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp"`
	tests := []struct{ name, got, want string }{
		{"401 without a token", r.Challenge([]string{"content:read"}),
			`Bearer ` + meta + `, scope="content:read"`},
		{"401 without a token, all scopes", r.Challenge(nil),
			`Bearer ` + meta + `, scope="content:read content:write content:delete credentials:read credentials:write admin"`},
		{"401 bad token", r.InvalidTokenChallenge("the token has expired", []string{"content:read"}),
			`Bearer error="invalid_token", error_description="the token has expired", ` + meta + `, scope="content:read"`},
		{"401 malformed header", r.InvalidRequestChallenge("send one Authorization header", []string{"content:read"}),
			`Bearer error="invalid_request", error_description="send one Authorization header", ` + meta + `, scope="content:read"`},
		{"403", r.InsufficientScopeChallenge([]string{"content:read", "content:write"}, `needs "content:write"`),
			`Bearer error="insufficient_scope", scope="content:read content:write", ` + meta + `, error_description="needs \"content:write\""`},
		{"403 with a line break in the description", r.InsufficientScopeChallenge([]string{"admin"}, "a\r\nSet-Cookie: x"),
			`Bearer error="insufficient_scope", scope="admin", ` + meta + `, error_description="a  Set-Cookie: x"`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, tt.got, tt.want)
		}
	}
}

func TestByShape(t *testing.T) {
	pat := VerifierFunc(func(context.Context, string) (auth.Principal, error) { return auth.Principal{KeyID: "pat"}, nil })
	jwt := VerifierFunc(func(context.Context, string) (auth.Principal, error) { return auth.Principal{KeyID: "jwt"}, nil })
	const patTok = "kg_pat_000000000000_00000000000000000000000000000000000000"
	const jwtTok = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
	tests := []struct {
		name     string
		pat, jwt Verifier
		token    string
		want     string
	}{
		{"pat", pat, jwt, patTok, "pat"},
		{"jwt", pat, jwt, jwtTok, "jwt"},
		{"pat when PATs are off", nil, jwt, patTok, ""},
		{"jwt when OAuth is off", pat, nil, jwtTok, ""},
		{"neither shape", pat, jwt, "hello", ""},
		{"two parts", pat, jwt, "a.b", ""},
		{"empty part", pat, jwt, "a..c", ""},
		{"not base64url", pat, jwt, "a.b+c.d", ""},
		{"too long", pat, jwt, strings.Repeat("a", MaxJWTLen) + ".b.c", ""},
	}
	for _, tt := range tests {
		p, err := ByShape(tt.pat, tt.jwt).Verify(t.Context(), tt.token)
		if tt.want == "" {
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("%s: error = %v, want ErrInvalidToken", tt.name, err)
			}
			continue
		}
		if err != nil || p.KeyID != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.name, p.KeyID, err, tt.want)
		}
	}
}
