package main

// The real binary, run as a subprocess the way MCP clients run it, for what
// only a process shows: exit statuses, signals, crashes, and what reaches
// its stdout. Everything else about keygate is tested in process, in app/,
// cli/ and config/. The fast tier (go test -race ./...) keeps one stdio and
// one HTTP session end to end and the stdout framing check; the crash,
// signal and flood tests belong to the slow tier (-tags slow).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/internal/syncbuf"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// binary is keygate for the end-to-end tests, which run it as a real
// subprocess, the way MCP clients do: this test binary (race-enabled under
// -race), which runs keygate's main when asMainVar is set, so the tests
// need no second build.
var binary string

// asMainVar makes the test binary keygate itself. Its name is not
// KEYGATE_*, which cleanEnv removes.
const asMainVar = "KG_TEST_BINARY_IS_KEYGATE"

func TestMain(m *testing.M) {
	if os.Getenv(asMainVar) == "1" {
		main()
		return
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "finding the test binary:", err)
		os.Exit(1)
	}
	binary = exe
	os.Exit(m.Run())
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
	out = append(out, "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0", asMainVar+"=1")
	return append(out, extra...)
}

// lockedBuffer collects a subprocess's stderr, which mcp-go's stdio client
// writes from its own goroutine while the test reads it.
type lockedBuffer = syncbuf.Buffer

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
	in, url, cmd := httpInstance(t)
	tok := in.token(t)
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			var opts []client.ClientOption
			if legacy {
				opts = append(opts, client.WithLegacyProtocolOnly()) //nolint:staticcheck // SA1019: the legacy protocol is tested on purpose
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
	// SIGTERM drains and exits 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

// TestExitStatus: the process exits with the command's status.
func TestExitStatus(t *testing.T) {
	in := newInstance(t)
	for _, tc := range []struct {
		args []string
		code int
		want string // in stdout or stderr
	}{
		{[]string{"--help"}, 0, "token create --name"},
		{[]string{"version"}, 0, "keygate "},
		{[]string{"frobnicate"}, 1, "keygate --help"},
		{in.args("--transport", "carrier-pigeon"), 1, "invalid KEYGATE_TRANSPORT (--transport)"},
	} {
		cmd := exec.Command(binary, tc.args...)
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		code := 0
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			code = exitErr.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(string(out), tc.want) {
			t.Errorf("keygate %v: exit %d, want %d; output %q", tc.args, code, tc.code, out)
		}
	}
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
