package app_test

// A whole keygate built inside the test binary: the configuration as
// "keygate serve" resolves it (cli.ServeConfig, with a process environment
// of the test's choosing), app.Build, and Run over stdio on pipes or the
// HTTP handler on an httptest server. The token CLI runs in process too
// (cli.Run). Only what needs a real process (exit status, signals, a
// crash, the real binary's stdout) stays in the module root's tests.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/app"
	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/cli"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/internal/syncbuf"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
)

// lockedBuffer collects what keygate logs while the test reads it.
type lockedBuffer = syncbuf.Buffer

// instance is one keygate's files in a directory of its own.
type instance struct {
	dir, store, envFile string
}

func newInstance(t *testing.T) instance {
	dir := t.TempDir()
	return instance{dir: dir, store: filepath.Join(dir, "data", "keygate.db"), envFile: filepath.Join(dir, ".env")}
}

// args are the flags that point keygate at the instance.
func (in instance) args(extra ...string) []string {
	return append([]string{"--store", in.store, "--env-file", in.envFile}, extra...)
}

func (in instance) token(t *testing.T) string {
	t.Helper()
	vars, err := auth.ReadEnvFile(in.envFile)
	if err != nil {
		t.Fatal(err)
	}
	return vars["KEYGATE_TOKEN"]
}

// environ is the process environment keygate sees: only kv (NAME=value),
// so a developer's own KEYGATE_* or provider settings cannot leak into a
// test.
func environ(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for _, e := range kv {
		k, v, _ := strings.Cut(e, "=")
		m[k] = v
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// serveConfig is what "keygate serve" with the instance's flags and extra
// would run with, in environment env.
func serveConfig(t *testing.T, in instance, env []string, extra ...string) config.Config {
	t.Helper()
	cfg, err := cli.ServeConfig(in.args(extra...), cli.Options{Lookup: environ(env...)})
	if err != nil {
		t.Fatalf("configuration: %v", err)
	}
	return cfg
}

// build builds keygate for in; it is closed at cleanup.
func build(t *testing.T, cfg config.Config, opts app.Options) *app.App {
	t.Helper()
	a, err := app.Build(context.Background(), cfg, opts)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// prepared is an instance whose store and env file exist: the first run's
// set-up (seeding, the admin token in the env file) is done.
func prepared(t *testing.T) instance {
	t.Helper()
	in := newInstance(t)
	a, err := app.Build(context.Background(), serveConfig(t, in, nil), app.Options{})
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	return in
}

// runCLI runs "keygate COMMAND --store ... --env-file ... ARGS..." in
// process (COMMAND may be two words, e.g. "token revoke") and returns
// stdout, stderr and the exit code.
func runCLI(t *testing.T, in instance, command string, args ...string) (string, string, int) {
	t.Helper()
	argv := append(strings.Fields(command), in.args(args...)...)
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), argv, cli.Streams{In: strings.NewReader(""), Out: &stdout, Err: &stderr}, cli.Options{Lookup: environ()})
	return stdout.String(), stderr.String(), code
}

// mintCLI makes a key with the token CLI and returns its token.
func mintCLI(t *testing.T, in instance, name, scopes string, extra ...string) string {
	t.Helper()
	stdout, stderr, code := runCLI(t, in, "token create", append([]string{"--name", name, "--scopes", scopes}, extra...)...)
	if code != 0 {
		t.Fatalf("token create: exit %d: %s", code, stderr)
	}
	return strings.TrimSpace(stdout)
}

// stdioServer is keygate serving stdio on pipes, as app.Run does for a
// client that launched it.
type stdioServer struct {
	app    *app.App
	stdin  *io.PipeWriter // keygate's stdin
	stdout *io.PipeReader // keygate's stdout
	stderr *lockedBuffer
	exited chan error // Run's result, once
	cancel context.CancelFunc
}

// serveStdio builds keygate for in, in environment env, and runs it over
// stdio until the test closes its stdin or ends.
func serveStdio(t *testing.T, in instance, env []string, extra ...string) *stdioServer {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &stdioServer{stdin: inW, stdout: outR, stderr: &lockedBuffer{}, exited: make(chan error, 1)}
	s.app = build(t, serveConfig(t, in, env, extra...), app.Options{Stdin: inR, Stdout: outW, Stderr: s.stderr, Version: "test"})
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		err := s.app.Run(ctx)
		outW.Close()
		inR.Close()
		s.exited <- err
	}()
	t.Cleanup(func() {
		inW.Close()
		cancel()
		<-s.exited
		s.exited <- nil
	})
	return s
}

// wait is Run's result once keygate has stopped.
func (s *stdioServer) wait() error {
	err := <-s.exited
	s.exited <- err
	return err
}

// connect starts keygate over stdio and returns an initialized mcp-go
// client.
func connect(t *testing.T, in instance, env []string, opts ...client.ClientOption) (*client.Client, *stdioServer) {
	t.Helper()
	s := serveStdio(t, in, env)
	c := client.NewClient(transport.NewIO(s.stdout, s.stdin, nil), opts...)
	t.Cleanup(func() { c.Close() })
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Initialize(context.Background(), mcp.InitializeRequest{}); err != nil {
		t.Fatalf("initialize: %v\n%s", err, s.stderr.String())
	}
	return c, s
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

// stdioProc is keygate over stdio driven line by line.
type stdioProc struct {
	*stdioServer
	lines chan string
	all   *lockedBuffer // every stdout byte
}

func startStdio(t *testing.T, in instance, env []string, extra ...string) *stdioProc {
	t.Helper()
	p := &stdioProc{stdioServer: serveStdio(t, in, env, extra...), lines: make(chan string, 64), all: &lockedBuffer{}}
	go func() {
		sc := bufio.NewScanner(io.TeeReader(p.stdout, p.all))
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	return p
}

func (p *stdioProc) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("writing to keygate: %v", err)
	}
}

// until reads frames until one has the given id, checking every line is a
// JSON-RPC frame.
func (p *stdioProc) until(t *testing.T, id string) (map[string]any, []map[string]any) {
	t.Helper()
	var seen []map[string]any
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("stdout closed before id %s:\n%s", id, p.stderr.String())
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil || m["jsonrpc"] != "2.0" {
				t.Fatalf("stdout line is not a JSON-RPC frame: %.200q", l)
			}
			seen = append(seen, m)
			if b, _ := json.Marshal(m["id"]); string(b) == id {
				return m, seen
			}
		case <-timeout:
			t.Fatalf("no answer with id %s", id)
		}
	}
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

// initialize performs the handshake.
func (p *stdioProc) initialize(t *testing.T) {
	t.Helper()
	p.send(t, strings.Replace(initBody, `"id":1`, `"id":"init"`, 1))
	p.until(t, `"init"`)
	p.send(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
}

func (p *stdioProc) call(t *testing.T, id int, name string, args map[string]any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": map[string]any{"name": name, "arguments": args}})
	p.send(t, string(b))
	m, _ := p.until(t, fmt.Sprint(id))
	return m
}

// finish closes stdin and waits for keygate to stop.
func (p *stdioProc) finish(t *testing.T) error {
	t.Helper()
	p.stdin.Close()
	for range p.lines {
	}
	return p.wait()
}

// hServer is keygate serving HTTP for one test.
type hServer struct {
	in      instance
	app     *app.App
	url     string // http://127.0.0.1:PORT/mcp
	port    string
	stderr  *lockedBuffer
	token   string
	secrets []string // never to appear in any output
}

// hStartHTTP builds keygate for in over HTTP and serves its handler on a
// loopback httptest server. At cleanup it checks the logs for secrets.
func hStartHTTP(t *testing.T, in instance, env []string, extra ...string) *hServer {
	t.Helper()
	s := &hServer{in: in, stderr: &lockedBuffer{}}
	s.app = build(t, serveConfig(t, in, env, append([]string{"--transport", "http", "--addr", "127.0.0.1:0"}, extra...)...),
		app.Options{Stderr: s.stderr, Version: "test"})
	srv := httptest.NewUnstartedServer(nil)
	h, err := s.app.HTTPHandler(context.Background(), srv.Listener.Addr())
	if err != nil {
		t.Fatalf("HTTP handler: %v", err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	s.listening(t, srv.Listener.Addr())
	return s
}

// hServeHTTP runs keygate over HTTP with app.Run, which listens on addr
// itself (timeouts, session sweeping, graceful shutdown): stop cancels it
// and waits for Run to return.
func hServeHTTP(t *testing.T, in instance, addr string, env []string, extra ...string) (s *hServer, stop func() error) {
	t.Helper()
	s = &hServer{in: in, stderr: &lockedBuffer{}}
	listening := make(chan net.Addr, 1)
	s.app = build(t, serveConfig(t, in, env, append([]string{"--transport", "http", "--addr", addr}, extra...)...),
		app.Options{Stderr: s.stderr, Version: "test", Listening: func(a net.Addr) { listening <- a }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.app.Run(ctx) }()
	stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() { _ = stop() })
	select {
	case a := <-listening:
		s.listening(t, a)
	case err := <-done:
		t.Fatalf("keygate did not start listening: %v\n%s", err, s.stderr.String())
	}
	return s, stop
}

func (s *hServer) listening(t *testing.T, addr net.Addr) {
	t.Helper()
	_, s.port, _ = net.SplitHostPort(addr.String())
	s.url = "http://127.0.0.1:" + s.port + "/mcp"
	s.token = s.in.token(t)
	s.secrets = append(s.secrets, s.token)
	t.Cleanup(func() {
		out := s.stderr.String()
		for _, secret := range s.secrets {
			if strings.Contains(out, secret) {
				t.Errorf("a secret (%s) reached the log", auth.Mask(secret))
			}
		}
	})
}

// hResponse is one HTTP answer with its JSON-RPC messages decoded.
type hResponse struct {
	status int
	header http.Header
	body   string
	msgs   []map[string]any
}

func (r hResponse) last() map[string]any {
	if len(r.msgs) == 0 {
		return nil
	}
	return r.msgs[len(r.msgs)-1]
}

// errCode is the JSON-RPC error code of the last message, 0 if none.
func (r hResponse) errCode() int {
	c, _ := hGet(r.last(), "error", "code").(float64)
	return int(c)
}

// result is a tool call's result object, or nil after a protocol error.
func (r hResponse) result() map[string]any {
	m, _ := hGet(r.last(), "result").(map[string]any)
	return m
}

func hGet(v any, path ...string) any {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}

// hDo sends one request. headers may set Host; a header set to "" is
// removed. body may be a string or an io.Reader.
func (s *hServer) hDo(t *testing.T, method string, headers map[string]string, body any) hResponse {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case string:
		r = strings.NewReader(b)
	case io.Reader:
		r = b
	}
	req, err := http.NewRequest(method, s.url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+s.token)
	for k, v := range headers {
		switch {
		case k == "Host":
			req.Host = v
		case v == "":
			req.Header.Del(k)
		default:
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := hResponse{status: resp.StatusCode, header: resp.Header, body: string(b)}
	out.msgs = hDecode(t, resp.Header.Get("Content-Type"), b)
	for _, secret := range s.secrets {
		if strings.Contains(out.body, secret) {
			t.Errorf("a secret (%s) is in an HTTP response", auth.Mask(secret))
		}
	}
	return out
}

// hDecode reads JSON-RPC messages from a JSON or SSE body; plain text
// (mcp-go's own 4xx answers) gives none.
func hDecode(t *testing.T, contentType string, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	switch {
	case strings.HasPrefix(contentType, "application/json"):
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("JSON body does not parse: %.200q", b)
		}
		out = append(out, m)
	case strings.HasPrefix(contentType, "text/event-stream"):
		for _, line := range strings.Split(string(b), "\n") {
			if data, ok := strings.CutPrefix(line, "data:"); ok {
				var m map[string]any
				if err := json.Unmarshal([]byte(strings.TrimSpace(data)), &m); err != nil {
					t.Errorf("SSE data does not parse: %.200q", data)
				}
				out = append(out, m)
			}
		}
	}
	return out
}

// post sends a JSON-RPC body with the server's admin token.
func (s *hServer) post(t *testing.T, headers map[string]string, body string) hResponse {
	t.Helper()
	return s.hDo(t, http.MethodPost, headers, body)
}

// session opens a legacy session for tok ("" = the admin token).
func (s *hServer) session(t *testing.T, tok string) string {
	t.Helper()
	h := map[string]string{}
	if tok != "" {
		h["Authorization"] = "Bearer " + tok
	}
	r := s.post(t, h, initBody)
	sid := r.header.Get("Mcp-Session-Id")
	if r.status != 200 || sid == "" {
		t.Fatalf("initialize: %d %s", r.status, r.body)
	}
	h["Mcp-Session-Id"] = sid
	s.post(t, h, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return sid
}

// call calls a tool in session sid as tok ("" = admin).
func (s *hServer) call(t *testing.T, tok, sid, name string, args map[string]any) hResponse {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": map[string]any{"name": name, "arguments": args}})
	h := map[string]string{"Mcp-Session-Id": sid}
	if tok != "" {
		h["Authorization"] = "Bearer " + tok
	}
	return s.post(t, h, string(b))
}

// ok calls a tool and fails unless it succeeded; it returns the structured
// result.
func (s *hServer) ok(t *testing.T, tok, sid, name string, args map[string]any) map[string]any {
	t.Helper()
	r := s.call(t, tok, sid, name, args)
	res, _ := hGet(r.last(), "result").(map[string]any)
	if r.status != 200 || res == nil || res["isError"] == true {
		t.Fatalf("%s: %d %.500s", name, r.status, r.body)
	}
	m, _ := res["structuredContent"].(map[string]any)
	return m
}

// alive checks that the server still answers a tool call.
func (s *hServer) alive(t *testing.T) {
	t.Helper()
	sid := s.session(t, "")
	if w := s.ok(t, "", sid, "auth_whoami", nil); w["authenticated"] != true {
		t.Fatalf("whoami after the hostile input: %v", w)
	}
}

func objectCount(t *testing.T, s *hServer, sid string) float64 {
	t.Helper()
	n, _ := s.ok(t, "", sid, "content_list", map[string]any{"type": "posts", "limit": 1})["total"].(float64)
	return n
}

// eventually polls ok, for effects that follow a file change.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// writeEnv sets variables in the instance's env file.
func writeEnv(t *testing.T, in instance, kv ...[2]string) {
	t.Helper()
	for _, p := range kv {
		if err := auth.SetEnvVar(in.envFile, p[0], p[1], auth.EnvWriteOptions{Overwrite: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// mintAndSpoil makes one token that has expired and one that was revoked:
// the CLI mints and revokes one, and the store, opened with a clock two
// hours behind, mints the other (the CLI refuses lifetimes under a day).
func mintAndSpoil(t *testing.T, in instance) (expired, revoked string) {
	t.Helper()
	revoked = mintCLI(t, in, "soon revoked", "content:read")
	pid, _, _ := auth.ParseToken(revoked)
	if _, stderr, code := runCLI(t, in, "token revoke", pid.PublicID); code != 0 {
		t.Fatalf("token revoke: exit %d: %s", code, stderr)
	}
	past := time.Now().Add(-2 * time.Hour)
	s, err := local.Open(context.Background(), in.store, local.Options{Now: func() time.Time { return past }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	issued, err := s.CreateKey(context.Background(), provider.NewKey{Name: "expired", Scopes: auth.Scopes{{Action: auth.ContentRead}},
		ExpiresAt: past.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return issued.Secret.Reveal(), revoked
}
