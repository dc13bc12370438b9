package agrenting

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
	"github.com/keygate/keygate/provider/internal/providertest"
	"github.com/keygate/keygate/rotation"
)

// The new key is found in an answer of any shape, and where it cannot be
// told for sure, nothing is guessed.
func TestFindIssued(t *testing.T) {
	const k = "agr_0f3a9c5e7b1d2468ace013579bdf02468ace1357"
	const old = "agr_1111111111111111111111111111111111111111"
	cases := []struct {
		name, body string
		want, id   string
		problem    string
	}{
		{"register-like (documented names)", `{"data":{"api_key":"` + k + `","message":"Keep your API key secure. It will not be shown again."},"meta":{"version":"1.0"}}`, k, "", ""},
		{"data.key", `{"data":{"key":"` + k + `"}}`, k, "", ""},
		{"credential beside the key", `{"data":{"credential":{"id":"cred_9","name":"ci","key_prefix":"agr_0f3a","last_four":"1357"},"api_key":"` + k + `","revoked_credential_id":"cred_demo"}}`, k, "cred_9", ""},
		{"an agent's id is not the key's", `{"data":{"agent":{"id":"3f6c1a52-8d0e-4c1b-9a57-0d2f4e6b7a11","name":"a"},"api_key":"` + k + `"}}`, k, "", ""},
		{"nested value", `{"data":{"rotation":{"id":"rot_1","rotated_at":"2026-05-01T10:00:00Z","new_key":{"value":"` + k + `"}}}}`, k, "", ""},
		{"no envelope", `{"api_key":"` + k + `"}`, k, "", ""},
		{"data is the key", `{"data":"` + k + `"}`, k, "", ""},
		{"bare key", k + "\n", k, "", ""},
		{"camelCase", `{"data":{"apiKey":"` + k + `"}}`, k, "", ""},
		{"unnamed, but the only key-shaped value", `{"data":{"agent_id":"3f6c1a52-8d0e-4c1b-9a57-0d2f4e6b7a11","created_at":"2026-05-01T10:00:00Z","x":"` + k + `"}}`, k, "", ""},
		{"api_key wins over other names", `{"data":{"api_key":"` + k + `","secret":"whsec_0123456789abcdef0123"}}`, k, "", ""},
		{"a session token is never the key", `{"data":{"token":"sess_0123456789abcdef0123456789abcdef"}}`, "", "", "no member"},
		{"the old key is never the new one", `{"data":{"old_key":"` + old + `","new_key":"` + k + `"}}`, k, "", ""},
		{"masked values are not keys", `{"data":{"key":"agr_0f3a…1357","id":"cred_9"}}`, "", "", "no member"},
		{"two candidates", `{"data":{"a":"` + k + `","b":"agr_decoy_000000000000000000000000"}}`, "", "", "more than one"},
		{"two named candidates", `{"data":{"api_key":"` + k + `","new_api_key":"agr_decoy_000000000000000000000000"}}`, "", "", "more than one"},
		{"nothing", `{"data":{"id":"cred_9","status":"active"}}`, "", "", "no member"},
		{"not JSON", `<html>ok</html>`, "", "", "neither JSON"},
		{"empty", ``, "", "", "empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := findIssued([]byte(tc.body), old)
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("found %q, %v; want an error saying %q", f.secret, err, tc.problem)
				}
				providertest.NoSecret(t, err.Error(), k, "agr_decoy_000000000000000000000000", "sess_0123456789abcdef0123456789abcdef")
				return
			}
			if err != nil || f.secret != tc.want || f.id != tc.id {
				t.Fatalf("found %q id %q, %v", f.secret, f.id, err)
			}
		})
	}
}

// A list entry is told to be a secret's by the values it shows, whatever
// the fields are called.
func TestShowsSecret(t *testing.T) {
	const k = "agr_0f3a9c5e7b1d2468ace013579bdf02468ace1357"
	cases := []struct {
		entry map[string]any
		want  bool
	}{
		{map[string]any{"key_prefix": "agr_0f3a", "last_four": "1357"}, true},
		{map[string]any{"hint": "…1357"}, true},
		{map[string]any{"display": "agr_0f3a****1357"}, true},
		{map[string]any{"start": "agr_0f3a9c5e"}, true},
		{map[string]any{"prefix": "agr_"}, false}, // every key starts so
		{map[string]any{"masked": "agr_…2222"}, false},
		{map[string]any{"id": "cred_demo", "name": "default", "created_at": "2026-05-01T10:00:00Z"}, false},
		{map[string]any{"last_four": 1357}, false},
	}
	for i, tc := range cases {
		if got := showsSecret(tc.entry, k); got != tc.want {
			t.Errorf("%d %v: %v", i, tc.entry, got)
		}
	}
}

// Logging the rotation's session out sends X-API-Key, which the docs say
// DELETE /auth/logout requires, and the session as Bearer to name it; the
// session ends (before, keygate sent only the Bearer, was refused, and took
// the 401 for "already over").
func TestCloseReplayLogsOutWithAPIKey(t *testing.T) {
	f := newFixture(t, keyEnv())
	var mu sync.Mutex
	var headers []http.Header
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/auth/logout" {
			mu.Lock()
			headers = append(headers, r.Header.Clone())
			mu.Unlock()
		}
		f.fake.ServeHTTP(w, r)
	}))
	defer hs.Close()
	g := newFixtureAt(t, keyEnv(), hs.URL+"/api/v1", f.fake, f.clk)
	b := g.c.RotationBackend()
	replay, err := b.OpenReplay(t.Context(), g.c.CurrentKey())
	if err != nil || f.fake.SessionCount() != 1 {
		t.Fatalf("%v, %d sessions", err, f.fake.SessionCount())
	}
	if err := b.CloseReplay(t.Context(), replay); err != nil {
		t.Fatal(err)
	}
	if n := f.fake.SessionCount(); n != 0 {
		t.Errorf("%d sessions after logout", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(headers) != 1 || headers[0].Get("X-API-Key") != agrentingtest.DemoAgentKey || !strings.HasPrefix(headers[0].Get("Authorization"), "Bearer sess_") {
		t.Errorf("logout headers: %d requests", len(headers))
	}
}

// Reparse finds the key in a kept answer of any shape, and names it as
// Verify does, so the engine can check it.
func TestReparseNamesTheKeyAsVerifyDoes(t *testing.T) {
	f := newFixture(t, keyEnv())
	b := f.c.RotationBackend()
	var _ rotation.Reparser = b
	issued, err := b.Reparse([]byte(`{"data":{"key":"` + agrentingtest.DemoAgentKey + `"}}`))
	if err == nil {
		t.Fatalf("the key in use was taken for a new one: %+v", issued.Key)
	}
	fresh := "agr_fresh_key_00000000000000000000"
	f.fake.AddCredential(agrentingtest.DemoAgentID, "by hand", fresh)
	issued, err = b.Reparse([]byte(`{"data":{"rotation":{"new_key":{"value":"` + fresh + `"}}}}`))
	if err != nil || issued.Secret.Reveal() != fresh {
		t.Fatalf("%v", err)
	}
	h, err := b.Verify(t.Context(), auth.NewSecret(fresh))
	if err != nil || h.KeyID != issued.Key.ID || !h.CanCreate {
		t.Errorf("Verify %+v %v, Reparse named it %s", h, err, issued.Key.ID)
	}
	if masked := f.c.redact.Redact("x " + fresh); strings.Contains(masked, fresh) {
		t.Error("the reparsed key is not redacted")
	}
}
