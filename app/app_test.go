package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/app"
	"github.com/keygate/keygate/auth"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// session runs every tool once against a connected client and checks the
// answers: the same script serves stdio and HTTP.
func session(t *testing.T, c *client.Client) {
	t.Helper()
	list, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Tools) != 13 {
		t.Fatalf("admin sees %d tools, want 13", len(list.Tools))
	}
	ok := func(name string, args map[string]any) map[string]any {
		t.Helper()
		r := callTool(t, c, name, args)
		if r.IsError {
			t.Fatalf("%s: %v", name, r.Content)
		}
		return structured(t, r)
	}
	fail := func(name string, args map[string]any, field string) {
		t.Helper()
		r := callTool(t, c, name, args)
		if !r.IsError {
			t.Fatalf("%s %v: want an error naming %s", name, args, field)
		}
		if got := structured(t, r)["error"].(map[string]any)["field"]; got != field {
			t.Errorf("%s: error names %v, want %s", name, got, field)
		}
	}
	if w := ok("auth_whoami", nil); w["authenticated"] != true {
		t.Fatalf("whoami: %v", w)
	}
	ok("auth_check_scopes", map[string]any{"tool": "content_delete"})
	ok("content_types", nil)
	created := ok("content_create", map[string]any{"type": "posts", "title": "End to end", "fields": map[string]any{"body": "e2e"}})
	id := created["object"].(map[string]any)["id"].(string)
	fail("content_create", map[string]any{"type": "posts", "title": "End to end", "fields": map[string]any{}}, "slug")
	fail("content_list", map[string]any{"type": "nope"}, "type")
	fail("content_get", map[string]any{"type": "posts", "id": "obj_missing"}, "id")
	if l := ok("content_list", map[string]any{"type": "posts", "filter": map[string]any{"slug": "end-to-end"}}); l["total"] != 1.0 {
		t.Errorf("list total = %v", l["total"])
	}
	ok("content_get", map[string]any{"type": "posts", "slug": "end-to-end"})
	ok("content_update", map[string]any{"type": "posts", "id": id, "title": "End to end, edited", "expected_version": 1})
	fail("content_update", map[string]any{"type": "posts", "id": id, "title": "stale", "expected_version": 1}, "expected_version")
	ok("credentials_list", nil)
	created = ok("credentials_create", map[string]any{"name": "e2e reader", "scopes": []any{"content:read"}, "expires_in_days": 7, "deliver": "reveal"})
	keyID := created["key"].(map[string]any)["id"].(string)
	ok("credentials_rotate", map[string]any{"credential": keyID, "deliver": "reveal", "confirm": true})
	ok("credentials_revoke", map[string]any{"credential": keyID, "confirm": true})
	ok("credentials_revoke", map[string]any{"credential": keyID, "confirm": true})
	ok("content_delete", map[string]any{"type": "posts", "id": id, "confirm": true})
	fail("auth_authenticate", map[string]any{"token": "kg_pat_x"}, "token")
}

// TestStdioSession runs every tool over stdio, rotates keygate's own key,
// and starts a second keygate on the same files.
func TestStdioSession(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	c, s := connect(t, in, nil)
	tok := in.token(t)
	if !auth.LooksLikeToken(tok) {
		t.Fatalf("first run did not write a token to %s", in.envFile)
	}
	if fi, err := os.Stat(in.envFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("env file: %v %v", fi, err)
	}
	session(t, c)
	// Rotating keygate's own key keeps the session working and updates .env.
	r := callTool(t, c, "credentials_rotate", map[string]any{"credential": "current", "confirm": true})
	if r.IsError {
		t.Fatalf("self-rotation: %v", r.Content)
	}
	if next := in.token(t); next == tok || !auth.LooksLikeToken(next) {
		t.Error("self-rotation did not update the env file")
	}
	if w := structured(t, callTool(t, c, "auth_whoami", nil)); w["authenticated"] != true {
		t.Errorf("after self-rotation: %v", w)
	}
	c.Close()
	if err := s.wait(); err != nil {
		t.Errorf("keygate stopped with %v", err)
	}
	if log := s.stderr.String(); strings.Contains(log, tok) || strings.Contains(log, in.token(t)) {
		t.Error("a token reached the log")
	}
	if !strings.Contains(s.stderr.String(), in.envFile) {
		t.Errorf("first run did not say where the token went:\n%s", s.stderr.String())
	}

	// A second run reuses the store and the token.
	c2, _ := connect(t, in, nil)
	if w := structured(t, callTool(t, c2, "auth_whoami", nil)); w["authenticated"] != true {
		t.Errorf("second run: %v", w)
	}
}

// TestHTTPSession runs every tool over streamable HTTP, with a client of
// the current protocol and a legacy one.
func TestHTTPSession(t *testing.T) {
	t.Parallel()
	s := hStartHTTP(t, newInstance(t), nil)
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			var opts []client.ClientOption
			if legacy {
				opts = append(opts, client.WithLegacyProtocolOnly()) //nolint:staticcheck // SA1019: the legacy protocol is tested on purpose
			}
			tr, err := transport.NewStreamableHTTP(s.url, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + s.token}))
			if err != nil {
				t.Fatal(err)
			}
			c := client.NewClient(tr, opts...)
			defer c.Close()
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Initialize(context.Background(), mcp.InitializeRequest{}); err != nil {
				t.Fatal(err)
			}
			session(t, c)
		})
	}
}

func post(t *testing.T, url string, headers map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestHTTPRefusals(t *testing.T) {
	t.Parallel()
	in := prepared(t)
	s, stop := hServeHTTP(t, in, "127.0.0.1:0", nil)
	url, tok := s.url, s.token
	bearer := "Bearer " + tok
	oneOff := tok[:20] + string(rune(tok[20]^1)) + tok[21:]

	// A narrowed key, made with the admin CLI.
	reader := mintCLI(t, in, "reader", "content:read")
	expired, revoked := mintAndSpoil(t, in)

	call := func(name string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":%q,"arguments":{"type":"posts","id":"obj_x"}}}`, name)
	}
	tests := []struct {
		name       string
		headers    map[string]string
		body       string
		wantStatus int
		wantHeader string
	}{
		{"missing Authorization", nil, initBody, 401, "WWW-Authenticate"},
		{"not a bearer", map[string]string{"Authorization": "Basic " + tok}, initBody, 401, "WWW-Authenticate"},
		{"invalid token", map[string]string{"Authorization": "Bearer kg_pat_nope"}, initBody, 401, "WWW-Authenticate"},
		{"one character changed", map[string]string{"Authorization": "Bearer " + oneOff}, initBody, 401, "WWW-Authenticate"},
		{"expired token", map[string]string{"Authorization": "Bearer " + expired}, initBody, 401, "WWW-Authenticate"},
		{"revoked token", map[string]string{"Authorization": "Bearer " + revoked}, initBody, 401, "WWW-Authenticate"},
		{"hostile Origin", map[string]string{"Authorization": bearer, "Origin": "https://evil.example"}, initBody, 403, ""},
		{"null Origin", map[string]string{"Authorization": bearer, "Origin": "null"}, initBody, 403, ""},
		{"DNS rebinding Host", map[string]string{"Authorization": bearer, "Host": "evil.example"}, initBody, 403, ""},
		{"oversized body", map[string]string{"Authorization": bearer}, `{"x":"` + strings.Repeat("a", 2<<20) + `"}`, 413, ""},
		{"insufficient scope", map[string]string{"Authorization": "Bearer " + reader}, call("content_delete"), 403, "WWW-Authenticate"},
		{"unknown session", map[string]string{"Authorization": bearer, "Mcp-Session-Id": "kgs_UNKNOWNUNKNOWNUNKNOWN"}, `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`, 404, ""},
		{"own origin allowed", map[string]string{"Authorization": bearer, "Origin": strings.TrimSuffix(url, "/mcp")}, initBody, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			for k, v := range tc.headers {
				if k == "Host" {
					req.Host = v
					continue
				}
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantHeader != "" && resp.Header.Get(tc.wantHeader) == "" {
				t.Errorf("no %s header", tc.wantHeader)
			}
			if strings.Contains(string(body), tok) {
				t.Error("response carries the token")
			}
		})
	}

	// A session cannot be used after DELETE, nor by another key.
	resp, _ := post(t, url, map[string]string{"Authorization": bearer}, initBody)
	sid := resp.Header.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatal("no session id issued")
	}
	list := `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`
	if resp, body := post(t, url, map[string]string{"Authorization": "Bearer " + reader, "Mcp-Session-Id": sid}, list); resp.StatusCode != 404 {
		t.Errorf("foreign session: %d %s", resp.StatusCode, body)
	}
	if resp, body := post(t, url, map[string]string{"Authorization": bearer, "Mcp-Session-Id": sid}, list); resp.StatusCode != 200 {
		t.Errorf("own session: %d %s", resp.StatusCode, body)
	}
	del, _ := http.NewRequest(http.MethodDelete, url, nil)
	del.Header.Set("Authorization", bearer)
	del.Header.Set("Mcp-Session-Id", sid)
	if resp, err := http.DefaultClient.Do(del); err != nil || resp.StatusCode >= 300 {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
	if resp, _ := post(t, url, map[string]string{"Authorization": bearer, "Mcp-Session-Id": sid}, list); resp.StatusCode != 404 {
		t.Errorf("terminated session: %d", resp.StatusCode)
	}

	health, err := http.Get(strings.TrimSuffix(url, "/mcp") + "/healthz")
	if err != nil || health.StatusCode != 200 {
		t.Errorf("healthz: %v %v", health, err)
	}

	// The end of the context (SIGTERM, in a process) shuts down
	// gracefully.
	if err := stop(); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// TestFirstRun: a new store is seeded and its admin token goes to the env
// file, or, with no env file, to a 0600 file beside the store; a token in
// the environment keeps precedence over the new one.
func TestFirstRun(t *testing.T) {
	t.Parallel()
	t.Run("no env file", func(t *testing.T) {
		in := newInstance(t)
		s := &lockedBuffer{}
		build(t, serveConfig(t, in, nil, "--env-file", ""), app.Options{Stderr: s})
		path := filepath.Join(filepath.Dir(in.store), "admin.token")
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("admin.token: %v %v", fi, err)
		}
		b, _ := os.ReadFile(path)
		if !auth.LooksLikeToken(strings.TrimSpace(string(b))) || strings.Contains(s.String(), strings.TrimSpace(string(b))) {
			t.Errorf("admin.token does not hold a token, or the log shows it:\n%s", s.String())
		}
	})
	t.Run("token in the environment", func(t *testing.T) {
		in := newInstance(t)
		s := &lockedBuffer{}
		build(t, serveConfig(t, in, []string{"KEYGATE_TOKEN=kg_pat_AAAAAAAAAAAA_" + strings.Repeat("a", 38)}), app.Options{Stderr: s})
		if !auth.LooksLikeToken(in.token(t)) || !strings.Contains(s.String(), "overrides the new admin token") {
			t.Errorf("env file token %q; log:\n%s", auth.Mask(in.token(t)), s.String())
		}
	})
}

// TestStoreErrorIsWrappedOnce: a store that cannot be opened stops keygate
// with one "opening store", naming the path (it used to say "opening
// store: opening store:").
func TestStoreErrorIsWrappedOnce(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	// The store's directory is a file.
	if err := os.WriteFile(filepath.Dir(in.store), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := app.Build(context.Background(), serveConfig(t, in, nil), app.Options{})
	if err == nil || strings.Count(err.Error(), "opening store") != 1 || !strings.Contains(err.Error(), in.store) {
		t.Errorf("build: %v", err)
	}
}
