package transport

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/tools"
)

const (
	appOrigin  = "https://app.example"
	evilOrigin = "https://evil.example"
)

// countingTable is a tokenTable that counts the verifications asked of it.
type countingTable struct {
	tokenTable
	calls atomic.Int64
}

func (c *countingTable) Verify(ctx context.Context, tok string) (auth.Principal, error) {
	c.calls.Add(1)
	return c.tokenTable.Verify(ctx, tok)
}

// libraryCORS stands for a route handler with a CORS policy of its own
// (the authorization server's library allows every origin, with
// credentials): the transport's allow-list must replace it.
func libraryCORS(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" {
			w.Header().Set("Access-Control-Allow-Origin", o)
			w.Header().Set("Access-Control-Allow-Credentials", "true")
		}
		if isPreflight(r) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		_, _ = w.Write([]byte(body))
	})
}

// newOAuthHandler is /mcp as an OAuth protected resource on
// http://127.0.0.1:9, with an allowed browser origin and three routes: a
// metadata document and a token endpoint that browser clients call, and a
// consent page that they do not.
func newOAuthHandler(t *testing.T) (http.Handler, *countingTable) {
	t.Helper()
	res, err := oauth.NewResource("http://127.0.0.1:9/mcp", "http://127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	s := server.NewMCPServer("t", "1", server.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("write_thing"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("ok"), nil
	})
	jwt := "aaaa." + strings.Repeat("b", 2000) + ".cccc"
	v := &countingTable{tokenTable: tokenTable{
		"admin":  {KeyID: "admin", Scopes: auth.Scopes{{Action: auth.Admin}}},
		"reader": {KeyID: "reader", Scopes: auth.Scopes{{Action: auth.ContentRead}}},
		jwt:      {KeyID: "gr_x", Scopes: auth.Scopes{{Action: auth.ContentRead}}},
	}}
	cfg := HTTPConfig{
		MaxBodyBytes:    4096,
		AllowedOrigins:  []string{appOrigin},
		Verifier:        v,
		ScopeCheck:      tools.ScopeCheckFor([]tools.ServerTool{{Tool: mcp.NewTool("write_thing"), Needs: auth.ContentWrite}}),
		Logger:          slog.New(slog.DiscardHandler),
		Challenges:      res,
		ChallengeScopes: []string{"content:read", "content:write"},
		MaxAuthHeader:   len("Bearer ") + oauth.MaxJWTLen,
		Routes: []Route{
			{Pattern: res.MetadataPath(), Handler: res.MetadataHandler(), CORS: true},
			{Pattern: "/oauth/token", Handler: libraryCORS(`{"access_token":"x"}`), CORS: true},
			{Pattern: "/oauth/consent", Handler: libraryCORS("consent page")},
		},
	}
	return NewHTTPHandler(s, cfg, []string{"http://127.0.0.1:9"}), v
}

func request(t *testing.T, h http.Handler, method, path string, headers map[string]string, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "http://127.0.0.1:9"+path, strings.NewReader(body))
	req.RemoteAddr = "127.0.0.1:5555"
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestCORSForAllowedOrigins: a browser page at an allowed origin gets its
// preflight answered before authentication, and can read the answers of
// /mcp (with the challenge and the session id), the metadata document and
// the token endpoint; any other origin gets 403 on /mcp and no CORS header
// anywhere, whatever a route's own handler set; a page that browsers only
// navigate to (the consent page) gets no CORS header but is not refused.
func TestCORSForAllowedOrigins(t *testing.T) {
	h, v := newOAuthHandler(t)
	preflight := func(origin string) map[string]string {
		return map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization, content-type, mcp-session-id, mcp-protocol-version"}
	}
	meta := "/.well-known/oauth-protected-resource/mcp"
	for _, tc := range []struct {
		name, method, path string
		headers            map[string]string
		status             int
		allowOrigin        string // "" for none
		allowHeaders       string // checked on preflights
	}{
		{"mcp preflight", http.MethodOptions, "/mcp", preflight(appOrigin), 204, appOrigin, corsMCPHeaders},
		{"mcp preflight, own origin", http.MethodOptions, "/mcp", preflight("http://127.0.0.1:9"), 204, "http://127.0.0.1:9", corsMCPHeaders},
		{"mcp preflight, other origin", http.MethodOptions, "/mcp", preflight(evilOrigin), 403, "", ""},
		{"mcp without a token", http.MethodPost, "/mcp", map[string]string{"Origin": appOrigin, "Content-Type": "application/json"}, 401, appOrigin, ""},
		{"mcp, other origin", http.MethodPost, "/mcp", map[string]string{"Origin": evilOrigin, "Authorization": "Bearer admin"}, 403, "", ""},
		{"metadata preflight", http.MethodOptions, meta, preflight(appOrigin), 204, appOrigin, corsRouteHeaders},
		{"metadata", http.MethodGet, meta, map[string]string{"Origin": appOrigin}, 200, appOrigin, ""},
		{"metadata, other origin", http.MethodGet, meta, map[string]string{"Origin": evilOrigin}, 200, "", ""},
		{"metadata, no origin", http.MethodGet, meta, nil, 200, "", ""},
		{"token preflight", http.MethodOptions, "/oauth/token", preflight(appOrigin), 204, appOrigin, corsRouteHeaders},
		{"token preflight, other origin", http.MethodOptions, "/oauth/token", preflight(evilOrigin), 204, "", ""},
		{"token", http.MethodPost, "/oauth/token", map[string]string{"Origin": appOrigin}, 200, appOrigin, ""},
		{"token, other origin", http.MethodPost, "/oauth/token", map[string]string{"Origin": evilOrigin}, 200, "", ""},
		{"consent, allowed origin", http.MethodPost, "/oauth/consent", map[string]string{"Origin": appOrigin}, 200, "", ""},
		{"consent, keygate's own form", http.MethodPost, "/oauth/consent", map[string]string{"Origin": "http://127.0.0.1:9"}, 200, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := request(t, h, tc.method, tc.path, tc.headers, "")
			got := rec.Header()
			if rec.Code != tc.status || got.Get("Access-Control-Allow-Origin") != tc.allowOrigin {
				t.Fatalf("%d, Access-Control-Allow-Origin %q; want %d, %q", rec.Code, got.Get("Access-Control-Allow-Origin"), tc.status, tc.allowOrigin)
			}
			if got.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("credentials allowed: %v", got)
			}
			if tc.allowOrigin != "" && got.Get("Access-Control-Expose-Headers") != corsExposedHeaders {
				t.Errorf("exposed headers %q", got.Get("Access-Control-Expose-Headers"))
			}
			if tc.allowHeaders != "" && got.Get("Access-Control-Allow-Headers") != tc.allowHeaders {
				t.Errorf("allowed headers %q, want %q", got.Get("Access-Control-Allow-Headers"), tc.allowHeaders)
			}
		})
	}
	if n := v.calls.Load(); n != 0 {
		t.Errorf("%d verifications: preflights and refused origins must be answered before authentication", n)
	}
}

// TestOAuthChallenges: with /mcp an OAuth protected resource, every 401
// names the metadata and the scopes to ask for, and a 403 for a missing
// scope names the scope needed beside those held.
func TestOAuthChallenges(t *testing.T) {
	h, _ := newOAuthHandler(t)
	const meta = `resource_metadata="http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp"`
	callWrite := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"write_thing","arguments":{}}}`
	for _, tc := range []struct {
		name    string
		headers map[string]string
		body    string
		status  int
		want    []string
	}{
		{"no token", nil, initialize, 401, []string{"Bearer " + meta, `scope="content:read content:write"`}},
		{"bad token", map[string]string{"Authorization": "Bearer nope"}, initialize, 401, []string{`error="invalid_token"`, meta, `scope="content:read content:write"`}},
		{"two tokens", map[string]string{"Authorization": "Bearer admin reader"}, initialize, 401, []string{`error="invalid_request"`, meta}},
		{"token over 8 KiB", map[string]string{"Authorization": "Bearer " + strings.Repeat("a", oauth.MaxJWTLen+1)}, initialize, 401, []string{`error="invalid_request"`, meta}},
		{"missing scope", map[string]string{"Authorization": "Bearer reader"}, callWrite, 403,
			[]string{`error="insufficient_scope"`, `scope="content:read content:write"`, meta}},
		{"a 2 KB access token", map[string]string{"Authorization": "Bearer aaaa." + strings.Repeat("b", 2000) + ".cccc"}, initialize, 200, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			headers := map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
			for k, v := range tc.headers {
				headers[k] = v
			}
			rec := request(t, h, http.MethodPost, "/mcp", headers, tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			for _, w := range tc.want {
				if got := rec.Header().Get("WWW-Authenticate"); !strings.Contains(got, w) {
					t.Errorf("WWW-Authenticate %q, want %q in it", got, w)
				}
			}
		})
	}
}

// TestRoutesRefuseAForeignHostOnLoopback: the routes beside /mcp keep the
// DNS-rebinding check mcp-go applies to /mcp.
func TestRoutesRefuseAForeignHostOnLoopback(t *testing.T) {
	h, _ := newOAuthHandler(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	for host, want := range map[string]int{"evil.example": 403, "localhost": 200, "127.0.0.1": 200} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/.well-known/oauth-protected-resource/mcp", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}
