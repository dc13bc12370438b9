package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestAuditCommand drives keygate over HTTP with a refused token and a
// write, then reads the journal back with keygate audit.
func TestAuditCommand(t *testing.T) {
	in, url, cmd := httpInstance(t)
	tok := in.token(t)
	if resp, _ := post(t, url, map[string]string{"Authorization": "Bearer kg_pat_forged"}, initBody); resp.StatusCode != 401 {
		t.Fatalf("forged token: %d", resp.StatusCode)
	}
	if _, err := exec.Command(binary, "token", "create", "--store", in.store, "--env-file", in.envFile,
		"--name", "ci", "--scopes", "content:read").Output(); err != nil {
		t.Fatal(err)
	}
	// Refusals are coalesced in memory and written when their window
	// closes or keygate stops.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	audit := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(binary, append([]string{"audit", "--store", in.store, "--env-file", in.envFile}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("keygate audit: %v\n%s", err, out)
		}
		return string(out)
	}
	all := audit()
	if !strings.Contains(all, "denied") || !strings.Contains(all, "invalid_token") {
		t.Errorf("the refused token is not in the journal:\n%s", all)
	}
	if strings.Contains(all, tok) || strings.Contains(all, "kg_pat_forged") {
		t.Error("a token reached the journal")
	}
	if got := audit("--tool", "token create"); strings.Count(got, "\n") != 3 || !strings.Contains(got, "attempt") || !strings.Contains(got, "cli") {
		t.Errorf("--tool filter, or the CLI's own journaling:\n%s", got)
	}
	if got := audit("--since", "1h", "--json"); !strings.Contains(got, `"outcome":"denied"`) {
		t.Errorf("--json output:\n%s", got)
	}
	if out, err := exec.Command(binary, "audit", "--store", in.store, "--since", "yesterday").CombinedOutput(); err == nil || !strings.Contains(string(out), "--since") {
		t.Errorf("bad --since accepted: %s", out)
	}
}

// TestAuditCommandReadsAnyJournal: a 2 MB line, a line of garbage and a
// record full of terminal controls hide nothing that follows them; the
// rotated file is read first; every field prints on its own row with its
// controls spelled out.
func TestAuditCommandReadsAnyJournal(t *testing.T) {
	in := newInstance(t)
	dir := filepath.Dir(in.store)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	line := func(tool, target, detail string) string {
		b, err := json.Marshal(map[string]any{"time": at, "principal": "abc", "tool": tool, "target": target, "outcome": "ok", "detail": detail})
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	older := line("rotated_older", "", "")
	current := line("first", "", "") +
		line("big", strings.Repeat("x", 2<<20), "") +
		"this line is not JSON\n" +
		line("hostile", hostileName, hostileName) +
		line("last", "", "")
	for name, content := range map[string]string{"audit.jsonl.1": older, "audit.jsonl": current} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	stdout, stderr, err := runCLI(t, in, "audit")
	if err != nil {
		t.Fatalf("keygate audit: %v\n%s", err, stderr)
	}
	checkNoControls(t, stdout)
	rows := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	var tools []string
	for _, r := range rows[1:] {
		if f := strings.Fields(r); len(f) > 3 {
			tools = append(tools, f[3])
		}
	}
	if got, want := strings.Join(tools, " "), "rotated_older first big hostile last"; got != want {
		t.Errorf("records printed: %s, want %s", got, want)
	}
	if len(rows) == 6 && (!strings.Contains(rows[4], hostileNameShown) || strings.Count(rows[4], hostileNameShown) != 2) {
		t.Errorf("hostile row does not show target and detail visibly: %.300s", rows[4])
	}
	if !strings.Contains(stderr, "line 3") {
		t.Errorf("the garbage line is not reported on stderr: %q", stderr)
	}
}

// refusalBound is the most the journal may hold after the 10,000
// refusals below: three kinds of refusal from one host, each coalesced into
// one record per window (a minute), each record under 4 KiB. 16 KiB is
// four records or more per kind, so a slow run that spans more windows
// still fits.
const refusalBound = 16 << 10

// TestHTTPRefusalsAreCoalesced sends 10,000 unauthenticated requests, some
// on new connections (new client ports), and checks that the journal stays
// under refusalBound while still accounting for every refusal.
func TestHTTPRefusalsAreCoalesced(t *testing.T) {
	in, url, cmd := httpInstance(t)
	const total, workers = 10000, 4
	kinds := []map[string]string{
		nil, // missing_token
		{"Authorization": "Bearer kg_pat_AAAAAAAAAAAA_" + strings.Repeat("A", 38)}, // invalid_token
		{"Authorization": "Basic Zm9vOmJhcg=="},                                    // malformed_authorization
	}
	keepAlive := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < total; i += workers {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(initBody))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				for k, v := range kinds[i%len(kinds)] {
					req.Header.Set(k, v)
				}
				c := keepAlive
				if i%50 == 0 {
					c = fresh
				}
				resp, err := c.Do(req)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 401 {
					errs <- fmt.Errorf("request %d: status %d", i, resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(in.store), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("journal after %d refusals: %d bytes, %d lines", total, len(b), strings.Count(string(b), "\n"))
	if len(b) > refusalBound {
		t.Errorf("journal is %d bytes after %d refusals, want at most %d", len(b), total, refusalBound)
	}
	counted, byPort := 0, 0
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r struct {
			Tool   string `json:"tool"`
			Remote string `json:"remote"`
			Count  int    `json:"count"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("journal line %q: %v", l, err)
		}
		if r.Tool != "http" {
			continue
		}
		if r.Remote != "127.0.0.1" {
			byPort++
		}
		counted += max(r.Count, 1)
	}
	if byPort > 0 {
		t.Errorf("%d records name a remote other than 127.0.0.1: refusals are keyed by host, not host and port", byPort)
	}
	if counted != total {
		t.Errorf("the journal accounts for %d refusals, want %d", counted, total)
	}
}
