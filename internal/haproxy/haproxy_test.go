package haproxy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/haproxy"
)

// TestRoundRobinWithoutStickiness: one client on one keep-alive connection
// reaches every replica in turn, the way the replica tests need it.
func TestRoundRobinWithoutStickiness(t *testing.T) {
	var backends []string
	for i := range 3 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "r%d", i+1)
		}))
		t.Cleanup(srv.Close)
		backends = append(backends, strings.TrimPrefix(srv.URL, "http://"))
	}
	lb := haproxy.ForTest(t, backends)
	var got []string
	for range 6 {
		resp, err := http.Get(lb.URL + "/mcp")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got = append(got, string(b))
	}
	if strings.Join(got, " ") != "r1 r2 r3 r1 r2 r3" {
		t.Errorf("replicas in order %v, want round robin", got)
	}
	if n, err := lb.Requests(); err != nil || fmt.Sprint(n) != "[2 2 2]" {
		t.Errorf("stats %v (%v), want [2 2 2]", n, err)
	}
}
