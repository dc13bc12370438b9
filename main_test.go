package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
)

// binary is keygate built once for the end-to-end tests, which run it as a
// real subprocess, the way MCP clients do.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keygate-e2e-*")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "keygate")
	if out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building keygate: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cleanEnv is the parent environment without KEYGATE_* settings, so a
// developer's own configuration cannot leak into a test. The race-enabled
// binary would otherwise sleep a second at every exit, waiting for late
// race reports; it still reports races and exits 66.
func cleanEnv(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYGATE_") && !strings.HasPrefix(kv, "GORACE=") {
			out = append(out, kv)
		}
	}
	out = append(out, "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	return append(out, extra...)
}

// lockedBuffer collects a subprocess's stderr, which mcp-go's stdio client
// writes from its own goroutine while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type instance struct {
	dir, store, envFile string
}

func newInstance(t *testing.T) instance {
	dir := t.TempDir()
	return instance{dir: dir, store: filepath.Join(dir, "data", "keygate.db"), envFile: filepath.Join(dir, ".env")}
}

func (in instance) args(extra ...string) []string {
	return append([]string{"serve", "--store", in.store, "--env-file", in.envFile}, extra...)
}

func (in instance) token(t *testing.T) string {
	t.Helper()
	vars, err := auth.ReadEnvFile(in.envFile)
	if err != nil {
		t.Fatal(err)
	}
	return vars["KEYGATE_TOKEN"]
}

func callTool(t *testing.T, c *client.Client, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	var req mcp.CallToolRequest
	req.Params.Name, req.Params.Arguments = name, args
	res, err := c.CallTool(context.Background(), req)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

func structured(t *testing.T, r *mcp.CallToolResult) map[string]any {
	t.Helper()
	var m map[string]any
	b, _ := json.Marshal(r.StructuredContent)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

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

func TestStdioEndToEnd(t *testing.T) {
	in := newInstance(t)
	var stderr lockedBuffer
	tr := transport.NewStdioWithOptions(binary, cleanEnv(), in.args(), transport.WithCommandStderrWriter(&stderr))
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := client.NewClient(tr)
	if _, err := c.Initialize(context.Background(), mcp.InitializeRequest{}); err != nil {
		t.Fatalf("initialize: %v\n%s", err, stderr.String())
	}
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
	if strings.Contains(stderr.String(), tok) || strings.Contains(stderr.String(), in.token(t)) {
		t.Error("a token reached stderr")
	}
	if !strings.Contains(stderr.String(), in.envFile) {
		t.Errorf("first run did not say where the token went:\n%s", stderr.String())
	}

	// A second run reuses the store and the token.
	tr2 := transport.NewStdioWithOptions(binary, cleanEnv(), in.args())
	if err := tr2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c2 := client.NewClient(tr2)
	defer c2.Close()
	if _, err := c2.Initialize(context.Background(), mcp.InitializeRequest{}); err != nil {
		t.Fatal(err)
	}
	if w := structured(t, callTool(t, c2, "auth_whoami", nil)); w["authenticated"] != true {
		t.Errorf("second run: %v", w)
	}
}

// TestStdioOutputIsOnlyFrames drives the binary by hand and checks that every
// stdout line is a JSON-RPC message.
func TestStdioOutputIsOnlyFrames(t *testing.T) {
	in := newInstance(t)
	cmd := exec.Command(binary, in.args("--log-level", "debug")...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}
{"jsonrpc":"2.0","method":"notifications/initialized"}
{"jsonrpc":"2.0","id":2,"method":"tools/list"}
{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"content_list","arguments":{"type":"posts"}}}
{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"nope","arguments":{}}}
`)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 4 responses, got %d:\n%s", len(lines), stdout.String())
	}
	for _, l := range lines {
		var msg struct {
			JSONRPC string `json:"jsonrpc"`
		}
		if json.Unmarshal([]byte(l), &msg) != nil || msg.JSONRPC != "2.0" {
			t.Errorf("stdout line is not a JSON-RPC frame: %q", l)
		}
	}
	if tok := in.token(t); strings.Contains(stdout.String()+stderr.String(), tok) {
		t.Error("token printed")
	}
}

// httpInstance starts keygate over HTTP on a free loopback port.
func httpInstance(t *testing.T, extra ...string) (instance, string, *exec.Cmd) {
	t.Helper()
	in := newInstance(t)
	cmd := exec.Command(binary, in.args(append([]string{"--transport", "http", "--addr", "127.0.0.1:0"}, extra...)...)...)
	cmd.Env = cleanEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	urlRe := regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+/mcp)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := urlRe.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case u := <-found:
		return in, u, cmd
	case <-time.After(30 * time.Second):
		t.Fatal("keygate did not start listening")
	}
	return in, "", nil
}

func TestHTTPEndToEnd(t *testing.T) {
	in, url, _ := httpInstance(t)
	tok := in.token(t)
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			var opts []client.ClientOption
			if legacy {
				opts = append(opts, client.WithLegacyProtocolOnly())
			}
			tr, err := transport.NewStreamableHTTP(url, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + tok}))
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

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

func TestHTTPRefusals(t *testing.T) {
	in, url, cmd := httpInstance(t)
	tok := in.token(t)
	bearer := "Bearer " + tok
	oneOff := tok[:20] + string(rune(tok[20]^1)) + tok[21:]

	// A narrowed key, made with the admin CLI.
	out, err := exec.Command(binary, "token", "create", "--store", in.store, "--env-file", in.envFile,
		"--name", "reader", "--scopes", "content:read").Output()
	if err != nil {
		t.Fatal(err)
	}
	reader := strings.TrimSpace(string(out))
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

	// SIGTERM shuts down gracefully.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

// mintAndSpoil makes one token that has expired and one that was revoked,
// through the store directly (the CLI refuses lifetimes under a day).
func mintAndSpoil(t *testing.T, in instance) (expired, revoked string) {
	t.Helper()
	out, err := exec.Command(binary, "token", "create", "--store", in.store, "--env-file", in.envFile,
		"--name", "soon revoked", "--scopes", "content:read").Output()
	if err != nil {
		t.Fatal(err)
	}
	revoked = strings.TrimSpace(string(out))
	pid, _, _ := auth.ParseToken(revoked)
	if out, err := exec.Command(binary, "token", "revoke", "--store", in.store, pid.PublicID).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	expired = expiredToken(t, in.store)
	return expired, revoked
}

func TestConfigErrorsNameTheVariableNotTheValue(t *testing.T) {
	in := newInstance(t)
	secret := "kg_pat_SECRETSECRET_" + strings.Repeat("s", 38)
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"bad transport", []string{"KEYGATE_TRANSPORT=carrier-pigeon" + secret}, in.args(), "KEYGATE_TRANSPORT"},
		{"bad log level", nil, in.args("--log-level", "loud"+secret), "KEYGATE_LOG_LEVEL"},
		{"bad toolset", []string{"KEYGATE_TOOLSETS=content," + secret}, in.args(), "KEYGATE_TOOLSETS"},
		{"bad origin", []string{"KEYGATE_ALLOWED_ORIGINS=*"}, in.args(), "KEYGATE_ALLOWED_ORIGINS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binary, tc.args...)
			cmd.Env = cleanEnv(tc.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatal("started with bad configuration")
			}
			if !strings.Contains(string(out), tc.want) || strings.Contains(string(out), secret) {
				t.Errorf("output %q should name %s and not the value", out, tc.want)
			}
		})
	}
}

// expiredToken mints, in the same store file, a key whose life ended an hour
// ago: the store is opened with a clock two hours behind.
func expiredToken(t *testing.T, storePath string) string {
	t.Helper()
	past := time.Now().Add(-2 * time.Hour)
	s, err := local.Open(context.Background(), storePath, local.Options{Now: func() time.Time { return past }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	issued, err := s.CreateKey(context.Background(), provider.NewKey{Name: "expired", Scopes: auth.Scopes{{Action: auth.ContentRead}},
		ExpiresAt: past.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return issued.Secret.Reveal()
}
