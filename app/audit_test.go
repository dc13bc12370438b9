package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/internal/testtier"
)

// TestAuditCommand drives keygate over HTTP with a refused token and a
// write, then reads the journal back with keygate audit.
func TestAuditCommand(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	s, stop := hServeHTTP(t, in, "127.0.0.1:0", nil)
	tok := s.token
	if resp, _ := post(t, s.url, map[string]string{"Authorization": "Bearer kg_pat_forged"}, initBody); resp.StatusCode != 401 {
		t.Fatalf("forged token: %d", resp.StatusCode)
	}
	mintCLI(t, in, "ci", "content:read")
	// Refusals are coalesced in memory and written when their window
	// closes or keygate stops.
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := s.app.Close(); err != nil {
		t.Fatal(err)
	}
	audit := func(args ...string) string {
		t.Helper()
		stdout, stderr, code := runCLI(t, in, "audit", args...)
		if code != 0 {
			t.Fatalf("keygate audit: exit %d\n%s", code, stderr)
		}
		return stdout + stderr
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
	if _, stderr, code := runCLI(t, in, "audit", "--since", "yesterday"); code == 0 || !strings.Contains(stderr, "--since") {
		t.Errorf("bad --since accepted: %s", stderr)
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
// under refusalBound while still accounting for every refusal. A flood:
// slow tier (the coalescing itself is audit.TestRefusalsCoalesce).
func TestHTTPRefusalsAreCoalesced(t *testing.T) {
	testtier.SkipUnlessSlow(t)
	t.Parallel()
	in := newInstance(t)
	s, stop := hServeHTTP(t, in, "127.0.0.1:0", nil)
	url := s.url
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
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := s.app.Close(); err != nil {
		t.Fatal(err)
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
