// Package haproxy puts a real load balancer, HAProxy from Debian's
// packages, in front of keygate replicas on loopback: round robin on every
// request, no stickiness. The replica tests and bench/replicas use it.
// Without haproxy on the machine the tests skip; .ci/run installs it and
// sets KEYGATE_REQUIRE_HAPROXY=1, which turns the skip into a failure.
package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Require is the variable that makes a missing haproxy a test failure.
const Require = "KEYGATE_REQUIRE_HAPROXY"

// ErrMissing: haproxy is not installed.
var ErrMissing = errors.New("haproxy is not installed (apt-get install haproxy)")

// Balancer is a running HAProxy.
type Balancer struct {
	// URL is the balancer's base URL (http://127.0.0.1:port).
	URL string
	// StatsURL serves HAProxy's statistics as CSV (per-backend request
	// counts), so a caller can prove requests were spread.
	StatsURL string
	cmd      *exec.Cmd
	dir      string
	log      *os.File
}

// Start runs HAProxy in front of backends (127.0.0.1:port each), writing
// its configuration and log under a new directory in dir.
func Start(dir string, backends []string) (*Balancer, error) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return nil, ErrMissing
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	stats, err := freePort()
	if err != nil {
		return nil, err
	}
	var servers strings.Builder
	for i, b := range backends {
		if h, _, err := net.SplitHostPort(b); err != nil || h != "127.0.0.1" {
			return nil, fmt.Errorf("backend %q: only loopback backends", b)
		}
		fmt.Fprintf(&servers, "    server r%d %s\n", i+1, b)
	}
	// http mode balances each request on its own; no cookie, no
	// stick-table, no prefer-last-server: nothing pins a client to a
	// replica. Long server and tunnel timeouts keep SSE streams open.
	cfg := fmt.Sprintf(`global
    maxconn 4000
defaults
    mode http
    timeout connect 2s
    timeout client 5m
    timeout server 5m
    timeout tunnel 5m
    option http-server-close
frontend mcp
    bind 127.0.0.1:%d
    default_backend replicas
backend replicas
    balance roundrobin
%sfrontend stats
    bind 127.0.0.1:%d
    stats enable
    stats uri /stats
`, port, servers.String(), stats)
	work, err := os.MkdirTemp(dir, "haproxy-")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(work, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(work, "haproxy.log"))
	if err != nil {
		return nil, err
	}
	b := &Balancer{URL: fmt.Sprintf("http://127.0.0.1:%d", port), StatsURL: fmt.Sprintf("http://127.0.0.1:%d/stats;csv", stats),
		cmd: exec.Command(bin, "-db", "-f", path), dir: work, log: logf}
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	if err := b.cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting haproxy: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		resp, err := http.Get(b.StatsURL)
		if err == nil {
			_ = resp.Body.Close()
			return b, nil
		}
		select {
		case <-ctx.Done():
			b.Close()
			out, _ := os.ReadFile(filepath.Join(work, "haproxy.log"))
			return nil, fmt.Errorf("haproxy did not start: %w\n%s", err, out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close stops HAProxy.
func (b *Balancer) Close() {
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
	_ = b.log.Close()
}

// ForTest starts a balancer for the test's lifetime, skipping the test
// when haproxy is missing (failing it when Require is set).
func ForTest(t testing.TB, backends []string) *Balancer {
	t.Helper()
	b, err := Start(t.TempDir(), backends)
	if errors.Is(err, ErrMissing) {
		if os.Getenv(Require) != "" {
			t.Fatalf("%s is set but %v", Require, err)
		}
		t.Skip(err.Error() + ": .ci/run installs it")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// Requests returns how many requests each replica has served, in the
// order the backends were given.
func (b *Balancer) Requests() ([]int, error) {
	resp, err := http.Get(b.StatsURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	var out []int
	var header []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "# ") {
			header = strings.Split(strings.TrimPrefix(line, "# "), ",")
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 2 || f[0] != "replicas" || !strings.HasPrefix(f[1], "r") {
			continue
		}
		for i, h := range header {
			if h == "stot" && i < len(f) {
				var n int
				if _, err := fmt.Sscan(f[i], &n); err != nil {
					return nil, fmt.Errorf("haproxy stats: %q is not a count: %w", f[i], err)
				}
				out = append(out, n)
			}
		}
	}
	return out, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PID is HAProxy's process id.
func (b *Balancer) PID() int { return b.cmd.Process.Pid }
