package main

// The rows of the hostile-input catalogue (docs/SECURITY.md, The 47 rows) that need
// the real binary: the peak RSS of a process fed a 100 MB line, writes that
// fail part-way under ulimit -f, and SIGTERM during writes. The other rows
// run in process: app/hostile_test.go. All three are slow tier.

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/testtier"
)

func hGet(v any, path ...string) any {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}

// hPrepared is an instance whose store and env file exist: one stdio run
// with empty input does the first-run setup.
func hPrepared(t *testing.T) instance {
	t.Helper()
	in := newInstance(t)
	cmd := exec.Command(binary, in.args()...)
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	return in
}

// stdioProc is keygate over stdio driven line by line.
type stdioProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *lockedBuffer
	all    *lockedBuffer // every stdout byte
}

func startStdio(t *testing.T, in instance, env []string, extra ...string) *stdioProc {
	t.Helper()
	cmd := exec.Command(binary, in.args(extra...)...)
	cmd.Env = cleanEnv(env...)
	p := &stdioProc{cmd: cmd, lines: make(chan string, 64), stderr: &lockedBuffer{}, all: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(io.TeeReader(stdout, p.all))
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

// finish closes stdin and waits for a clean exit.
func (p *stdioProc) finish(t *testing.T) error {
	t.Helper()
	p.stdin.Close()
	for range p.lines {
	}
	return p.cmd.Wait()
}

func TestHostile_Row07_StdioHugeLine(t *testing.T) {
	testtier.SkipUnlessSlow(t)
	t.Parallel()
	in := hPrepared(t)
	cmd := exec.Command(binary, in.args()...)
	cmd.Env = cleanEnv()
	stdin, _ := cmd.StdinPipe()
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	go func() {
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for range 100 { // 100 MB, no newline
			n, err := stdin.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
		stdin.Close()
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("keygate kept reading a 100 MB line")
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || !strings.Contains(stderr.String(), "longer than 4 MiB") {
		t.Errorf("exit %v; stderr:\n%s", err, stderr.String())
	}
	if stdout.String() != "" {
		t.Errorf("stdout: %.200q", stdout.String())
	}
	rss := int64(0)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss // KiB on Linux
	}
	t.Logf("sent %d MiB before keygate stopped reading; keygate's peak RSS %d MiB (race-enabled build)", sent.Load()>>20, rss>>10)
	if runtime.GOOS == "linux" && rss > 400<<10 {
		t.Errorf("peak RSS %d MiB", rss>>10)
	}
}

func TestHostile_Row39_WriteFailsHalfway(t *testing.T) {
	testtier.SkipUnlessSlow(t)
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("uses ulimit -f to make writes fail part-way")
	}
	in := hPrepared(t)
	// A large env file: rewriting it needs more than the file-size limit,
	// as a full disk would.
	pad := strings.Repeat("# padding line to make the env file large ..................................\n", 40000) // ~3 MiB
	orig, _ := os.ReadFile(in.envFile)
	if err := os.WriteFile(in.envFile, append(orig, pad...), 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(in.envFile)
	// Writes past 2 MiB in any file fail with EFBIG (SIGXFSZ is ignored by
	// the Go runtime), the way ENOSPC would part-way through.
	cmd := exec.Command("sh", append([]string{"-c", `ulimit -f 4096 && exec "$0" "$@"`, binary}, in.args()...)...)
	cmd.Env = cleanEnv()
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &stdioProc{cmd: cmd, stdin: stdin, lines: make(chan string, 64), stderr: &stderr, all: &lockedBuffer{}}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	p.initialize(t)
	count := func(id int) float64 {
		m := p.call(t, id, "content_list", map[string]any{"type": "posts", "limit": 1})
		n, _ := hGet(m, "result", "structuredContent", "total").(float64)
		return n
	}
	keys := func(id int) int {
		m := p.call(t, id, "credentials_list", nil)
		k, _ := hGet(m, "result", "structuredContent", "keys").([]any)
		return len(k)
	}
	objects, nkeys := count(10), keys(11)

	// A 3 MiB content write: the store's write fails, nothing is stored.
	m := p.call(t, 12, "content_create", map[string]any{"type": "posts", "title": "too big for the disk", "slug": "too-big",
		"fields": map[string]any{"body": strings.Repeat("z", 3<<20)}})
	if hGet(m, "result") != nil && hGet(m, "result", "isError") != true {
		t.Errorf("content write past the limit claimed success: %.300v", m)
	}
	t.Logf("content write past the limit: %.300v", firstNonNil(hGet(m, "error"), hGet(m, "result", "content")))
	if got := count(13); got != objects {
		t.Errorf("objects %v -> %v after a failed write", objects, got)
	}
	// A key delivered to the env file: the rewrite fails; the env file is
	// untouched, no temp file is left, and the new key does not survive.
	m = p.call(t, 14, "credentials_create", map[string]any{"name": "disk full", "scopes": []any{"content:read"}, "expires_in_days": 1, "deliver": "env:DISK_FULL_TOKEN"})
	t.Logf("env delivery past the limit: %.400v", hGet(m, "result", "content"))
	if hGet(m, "result", "isError") != true && hGet(m, "error") == nil {
		t.Errorf("env delivery past the limit claimed success")
	}
	after, _ := os.ReadFile(in.envFile)
	if !bytes.Equal(before, after) {
		t.Error("the env file changed")
	}
	entries, _ := os.ReadDir(filepath.Dir(in.envFile))
	for _, e := range entries {
		// ..env.lock serialises the env file's writers; it holds nothing.
		if e.Name() != ".env" && e.Name() != "data" && e.Name() != "..env.lock" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	list := p.call(t, 15, "credentials_list", nil)
	live := 0
	ks, _ := hGet(list, "result", "structuredContent", "keys").([]any)
	for _, k := range ks {
		if hGet(k, "name") == "disk full" && hGet(k, "revoked_at") == nil {
			live++
		}
	}
	if live != 0 || len(ks) > nkeys+1 {
		t.Errorf("the undeliverable key is live (%d) or keys grew %d -> %d", live, nkeys, len(ks))
	}
	// Still up, and small writes work.
	m = p.call(t, 16, "content_create", map[string]any{"type": "posts", "title": "small", "fields": map[string]any{"body": "fits"}})
	if hGet(m, "result", "isError") == true || hGet(m, "result") == nil {
		t.Errorf("small write after the failures: %.300v", m)
	}
	if err := p.finish(t); err != nil {
		t.Errorf("exit: %v\n%s", err, stderr.String())
	}
}

func firstNonNil(vs ...any) any {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

// TestHostile_Row43_SIGTERMDuringContentWrites: SIGTERM while a burst of
// large writes is in flight over stdio. keygate stops taking work, lets
// the calls it started finish (or roll back), and exits 0. Afterwards the
// store passes SQLite's integrity check, every write that was answered as
// done is there in full, no object is there in part, and every line of the
// audit journal parses. TestSIGTERMDuringRotation covers the env file swap.
func TestHostile_Row43_SIGTERMDuringContentWrites(t *testing.T) {
	testtier.SkipUnlessSlow(t)
	in := hPrepared(t)
	p := startStdio(t, in, nil)
	p.initialize(t)
	const n, size = 24, 256 << 10
	body := strings.Repeat("b", size)
	for i := range n {
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 100 + i, "method": "tools/call", "params": map[string]any{"name": "content_create",
			"arguments": map[string]any{"type": "posts", "title": fmt.Sprintf("burst %d", i), "slug": fmt.Sprintf("burst-%d", i), "fields": map[string]any{"body": body}}}})
		p.send(t, string(b))
	}
	// Signal once the first answer is out, with the rest still running.
	first, _ := p.until(t, "100")
	if first["error"] != nil {
		t.Fatalf("first write: %v", first["error"])
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := map[string]bool{"burst-0": true}
	for l := range p.lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["jsonrpc"] != "2.0" {
			t.Fatalf("stdout line is not a JSON-RPC frame: %.200q", l)
		}
		id, _ := m["id"].(float64)
		if isErr, _ := hGet(m, "result", "isError").(bool); id >= 100 && m["result"] != nil && !isErr {
			done[fmt.Sprintf("burst-%d", int(id)-100)] = true
		}
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("keygate did not exit 0 after SIGTERM: %v\n%s", err, p.stderr.String())
	}

	db, err := sql.Open("sqlite", "file:"+in.store+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	rows, err := db.Query(`SELECT slug, length(json_extract(fields, '$.body')) FROM objects WHERE slug LIKE 'burst-%'`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for rows.Next() {
		var slug string
		var length int
		if err := rows.Scan(&slug, &length); err != nil {
			t.Fatal(err)
		}
		if length != size {
			t.Errorf("%s holds %d bytes of %d: a partial write", slug, length, size)
		}
		stored[slug] = true
	}
	for slug := range done {
		if !stored[slug] {
			t.Errorf("%s was answered as created but is not stored", slug)
		}
	}
	t.Logf("%d of %d writes answered before the exit, %d stored", len(done), n, len(stored))

	b, err := os.ReadFile(filepath.Join(filepath.Dir(in.store), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("audit journal line %d is not JSON: %.200q", i+1, line)
		}
	}
}
