package app

import (
	"net/http/httptest"
	"testing"

	"github.com/keygate/keygate/config"
)

// TestClientAddress: X-Forwarded-For counts only with --trust-proxy, and
// then only its last entry, the one the proxy in front appended: entries
// before it are whatever the client sent.
func TestClientAddress(t *testing.T) {
	for _, tc := range []struct {
		name  string
		trust bool
		xff   []string
		want  string
	}{
		{"no proxy", false, nil, "10.0.0.1"},
		{"untrusted header", false, []string{"203.0.113.7"}, "10.0.0.1"},
		{"trusted proxy", true, []string{"203.0.113.7"}, "203.0.113.7"},
		{"client's own claim before the proxy's", true, []string{"6.6.6.6, 203.0.113.7"}, "203.0.113.7"},
		{"two headers", true, []string{"6.6.6.6", "2001:db8::1"}, "2001:db8::1"},
		{"not an address", true, []string{"6.6.6.6, nonsense"}, "10.0.0.1"},
		{"trusted proxy, no header", true, nil, "10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &App{cfg: config.Config{TrustProxy: tc.trust}}
			r := httptest.NewRequest("POST", "/oauth/register", nil)
			r.RemoteAddr = "10.0.0.1:1234"
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := a.clientAddress(r); got != tc.want {
				t.Errorf("client address %q, want %q", got, tc.want)
			}
		})
	}
}
