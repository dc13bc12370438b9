// Package lbtest puts a real load balancer, HAProxy from Debian's packages,
// in front of a test's keygate replicas: round robin on every request, no
// stickiness, on loopback. Without haproxy on the machine the tests skip;
// .ci/run installs it and sets KEYGATE_REQUIRE_HAPROXY=1, which turns the
// skip into a failure.
package lbtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Require is the variable that makes a missing haproxy a failure.
const Require = "KEYGATE_REQUIRE_HAPROXY"

// Balancer is a running HAProxy.
type Balancer struct {
	// URL is the balancer's base URL (http://127.0.0.1:port).
	URL string
	// StatsURL serves HAProxy's statistics as CSV (per-backend request
	// counts), so a test can prove requests were spread.
	StatsURL string
}

// Start runs HAProxy in front of backends (host:port on loopback) until the
// test ends.
func Start(t testing.TB, backends []string) *Balancer {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv(Require) != "" {
			t.Fatalf("%s is set but haproxy is not installed (apt-get install haproxy)", Require)
		}
		t.Skip("haproxy is not installed: no load balancer to test behind (.ci/run installs it)")
	}
	port, stats := freePort(t), freePort(t)
	var servers strings.Builder
	for i, b := range backends {
		if h, _, err := net.SplitHostPort(b); err != nil || h != "127.0.0.1" {
			t.Fatalf("backend %q: tests talk only to loopback", b)
		}
		fmt.Fprintf(&servers, "    server r%d %s\n", i+1, b)
	}
	// http mode balances each request on its own; no cookie, no
	// stick-table, no prefer-last-server: nothing pins a client to a
	// replica. Long server and tunnel timeouts keep SSE streams open.
	cfg := fmt.Sprintf(`global
    maxconn 2000
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
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	logf, err := os.Create(filepath.Join(dir, "haproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting haproxy: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logf.Close()
	})
	b := &Balancer{URL: fmt.Sprintf("http://127.0.0.1:%d", port), StatsURL: fmt.Sprintf("http://127.0.0.1:%d/stats;csv", stats)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		resp, err := http.Get(b.StatsURL)
		if err == nil {
			resp.Body.Close()
			return b
		}
		select {
		case <-ctx.Done():
			out, _ := os.ReadFile(filepath.Join(dir, "haproxy.log"))
			t.Fatalf("haproxy did not start: %v\n%s", err, out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Requests returns how many requests each replica has served, by
// position in the backends given to Start.
func (b *Balancer) Requests(t testing.TB) []int {
	t.Helper()
	resp, err := http.Get(b.StatsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	var header []string
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Split(line, ",")
		if strings.HasPrefix(line, "# ") {
			header = strings.Split(strings.TrimPrefix(line, "# "), ",")
			continue
		}
		if len(f) < 2 || f[0] != "replicas" || !strings.HasPrefix(f[1], "r") {
			continue
		}
		for i, h := range header {
			if h == "stot" && i < len(f) {
				n, err := strconv.Atoi(f[i])
				if err != nil {
					t.Fatalf("haproxy stats: stot of %s is %q, not a count", f[1], f[i])
				}
				out = append(out, n)
			}
		}
	}
	return out
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
