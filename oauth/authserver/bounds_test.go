package authserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fromHeader lets a test speak from many client addresses.
func fromHeader(c *Config) {
	c.ClientAddress = func(r *http.Request) string { return r.Header.Get("X-Test-Address") }
}

func (e *env) registerFrom(addr, body string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base+RegisterPath, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-Address", addr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

const publicClient = `{"client_name":"c","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`

func TestRegistrationIsBounded(t *testing.T) {
	e := newEnv(t, fromHeader, func(c *Config) {
		c.Limits.Register = 3
		c.Limits.MaxIdleClients = 5
		c.Limits.IdleClientTTL = time.Hour
	})
	// One address: 3 an hour.
	for i := range 4 {
		status, body := e.registerFrom("203.0.113.1", publicClient)
		if i < 3 && status != http.StatusCreated {
			t.Fatalf("registration %d: %d %v", i, status, body)
		}
		if i == 3 && (status != http.StatusTooManyRequests || body["error"] != "temporarily_unavailable") {
			t.Fatalf("4th registration from one address: %d %v", status, body)
		}
	}
	// Many addresses: at most 5 clients without a grant, whoever asks.
	for i := range 3 {
		status, body := e.registerFrom(fmt.Sprintf("198.51.100.%d", i), publicClient)
		want := http.StatusCreated
		if i >= 2 {
			want = http.StatusServiceUnavailable
		}
		if status != want {
			t.Fatalf("registration from address %d: %d %v, want %d", i, status, body, want)
		}
	}
	// An IPv6 host counts by its /64.
	for i := range 4 {
		status, _ := e.registerFrom(fmt.Sprintf("2001:db8:1:2::%d", i+1), publicClient)
		if i == 3 && status != http.StatusTooManyRequests {
			t.Fatalf("4th registration from one /64: %d", status)
		}
	}
	all, idle, err := e.store.CountOAuthClients(t.Context())
	if err != nil || all != 5 || idle != 5 {
		t.Fatalf("clients = %d (%d idle), %v; want 5", all, idle, err)
	}
	// Idle clients expire, making room.
	e.clock.Add(time.Hour)
	if status, body := e.registerFrom("192.0.2.1", publicClient); status != http.StatusCreated {
		t.Fatalf("after the idle clients expired: %d %v", status, body)
	}
	if all, _, _ := e.store.CountOAuthClients(t.Context()); all != 1 {
		t.Fatalf("%d clients after expiry, want 1", all)
	}
}

func TestRegistrationIsValidated(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.Register = 100 })
	for _, tt := range []struct{ name, body, code string }{
		{"no redirect URI", `{"client_name":"c"}`, "invalid_redirect_uri"},
		{"http on a public host", `{"redirect_uris":["http://client.example/cb"]}`, "invalid_redirect_uri"},
		{"a fragment", `{"redirect_uris":["https://client.example/cb#x"]}`, "invalid_redirect_uri"},
		{"a scheme that is not a reverse domain", `{"redirect_uris":["myapp:/cb"]}`, "invalid_redirect_uri"},
		{"javascript", `{"redirect_uris":["javascript:alert(1)"]}`, "invalid_redirect_uri"},
		{"too many redirect URIs", `{"redirect_uris":["https://a.example/1","https://a.example/2","https://a.example/3","https://a.example/4","https://a.example/5","https://a.example/6","https://a.example/7","https://a.example/8","https://a.example/9","https://a.example/10","https://a.example/11"]}`, "invalid_redirect_uri"},
		{"implicit grant", `{"redirect_uris":["https://a.example/cb"],"grant_types":["implicit"]}`, "invalid_client_metadata"},
		{"token response", `{"redirect_uris":["https://a.example/cb"],"response_types":["token"]}`, "invalid_client_metadata"},
		{"private_key_jwt", `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`, "invalid_client_metadata"},
		{"not JSON", `redirect_uris=https://a.example/cb`, "invalid_client_metadata"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.registerFrom("", tt.body)
			if status != http.StatusBadRequest || body["error"] != tt.code {
				t.Fatalf("%d %v, want 400 %s", status, body, tt.code)
			}
		})
	}
	t.Run("a native app's scheme and a control character in the name", func(t *testing.T) {
		status, body := e.registerFrom("", `{"client_name":"App\u0007\u202e","redirect_uris":["com.example.app:/cb"],"token_endpoint_auth_method":"none"}`)
		if status != http.StatusCreated || body["client_name"] != "App" {
			t.Fatalf("%d %v", status, body)
		}
	})
	t.Run("the default method is client_secret_basic, with a secret", func(t *testing.T) {
		status, body := e.registerFrom("", `{"redirect_uris":["https://a.example/cb"]}`)
		if status != http.StatusCreated || body["token_endpoint_auth_method"] != "client_secret_basic" ||
			!strings.HasPrefix(fmt.Sprint(body["client_secret"]), clientSecretPrefix) || body["client_name"] != "unnamed application" {
			t.Fatalf("%d %v", status, body)
		}
	})
	req, _ := http.NewRequest(http.MethodPost, e.base+RegisterPath, strings.NewReader(publicClient))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("text/plain registration: %d", resp.StatusCode)
	}
}

func TestAuthorizationRequestsAreBounded(t *testing.T) {
	e := newEnv(t, fromHeader, func(c *Config) {
		c.Limits.MaxPending = 3
		c.Limits.Authorize = 5
	})
	client := e.registerClient(redirect)
	start := func(addr string) (page, authorization) {
		a := newAuthorization(client, redirect, "content:read")
		req, _ := http.NewRequest(http.MethodGet, e.authorizeURL(a), nil)
		req.Header.Set("X-Test-Address", addr)
		return newBrowser(t).do(req), a
	}
	for i := range 3 {
		if p, _ := start(fmt.Sprintf("198.51.100.%d", i)); p.status != http.StatusFound || p.location.Path != ConsentPath {
			t.Fatalf("request %d: %d %v", i, p.status, p.location)
		}
	}
	p, a := start("198.51.100.9")
	q := wantErrorRedirect(t, p, a, "temporarily_unavailable")
	if !strings.Contains(q.Get("error_description"), "too many") {
		t.Errorf("error_description = %q", q.Get("error_description"))
	}
	if n := e.srv.pending.size(); n != 3 {
		t.Fatalf("%d requests held, want 3", n)
	}
	// They expire, and the room is there again.
	e.clock.Add(DefaultRequestTTL)
	if p, _ := start("198.51.100.9"); p.status != http.StatusFound || p.location.Path != ConsentPath {
		t.Fatalf("after expiry: %d %v", p.status, p.location)
	}
	// One address: 5 a minute.
	for i := range 6 {
		p, _ := start("192.0.2.7")
		if i == 5 && p.status != http.StatusTooManyRequests {
			t.Fatalf("6th request in a minute: %d", p.status)
		}
	}
}

func TestMetadataFetchesAreBounded(t *testing.T) {
	docs := newDocServer(t, map[string]string{"/client.json": goodDoc})
	e := newEnv(t, docs.trust(), func(c *Config) { c.Limits.MetadataFetches = 4 })
	for range 6 {
		a := newAuthorization(docs.URL+"/missing.json", redirect, "content:read")
		wantShownNotRedirected(t, newBrowser(t).get(e.authorizeURL(a)))
	}
	if n := docs.fetches.Load(); n != 4 {
		t.Fatalf("%d fetches for 6 requests from one address, want 4", n)
	}
}
