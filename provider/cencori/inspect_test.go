package cencori

import (
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/cencori/cencoritest"
	"github.com/keygate/keygate/provider/internal/providertest"
)

func TestDescribe(t *testing.T) {
	revoked := "csk_" + strings.Repeat("e", 48)
	disabled := "cake_" + strings.Repeat("f", 32)
	cases := []struct {
		name      string
		key       string
		verified  string
		kind      string
		env       string
		grants    int
		problem   string
		detail    string
		metrics   int // requests to /v1/metrics
		reachable bool
	}{
		{"secret", cencoritest.DemoSecretKey, provider.VerifiedOK, "cencori_secret", "live", 3, "", "", 1, true},
		{"secret test", cencoritest.DemoTestSecretKey, provider.VerifiedOK, "cencori_secret_test", "test", 3, "", "", 1, true},
		{"publishable", cencoritest.DemoPublishableKey, provider.VerifiedNotChecked, "cencori_publishable", "live", 0, "publishable key", "browser", 0, false},
		{"publishable test", cencoritest.DemoTestPublishableKey, provider.VerifiedNotChecked, "cencori_publishable_test", "test", 0, "server-side", "", 0, false},
		{"agent", cencoritest.DemoAgentKey, provider.VerifiedOK, "cencori_agent_key", "live", 3, "", "agent", 1, true},
		// Cencori checks an agent key's agent on AI chat only: metrics and
		// memory take the key as it is.
		{"unbound agent", cencoritest.DemoUnboundAgentKey, provider.VerifiedOK, "cencori_agent_key", "live", 3, "", "AI chat refuses it", 1, true},
		{"revoked", revoked, provider.VerifiedRejected, "cencori_secret", "live", 0, "Invalid API key", "", 1, true},
		{"disabled agent", disabled, provider.VerifiedOK, "cencori_agent_key", "live", 3, "", "do not check the agent", 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.key)
			f.fake.AddKey(cencoritest.Key{Value: revoked, Type: cencoritest.KeySecret, Environment: cencoritest.EnvProduction, Revoked: true})
			f.fake.AddAgent(cencoritest.Agent{ID: "agent_off"})
			f.fake.AddKey(cencoritest.Key{Value: disabled, Type: cencoritest.KeySecret, Environment: cencoritest.EnvProduction, AgentID: "agent_off"})
			d, err := f.c.Describe(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if d.Provider != "cencori" || d.RotateHint == "" || len(d.Credentials) != 1 || d.Reachable != tc.reachable {
				t.Fatalf("%+v", d)
			}
			c := d.Credentials[0]
			if c.Name != "CENCORI_API_KEY" || c.Kind != tc.kind || c.Verified != tc.verified || len(c.Grants) != tc.grants || c.Source != "env" {
				t.Errorf("credential %+v", c)
			}
			if !strings.HasSuffix(c.Masked, tc.key[len(tc.key)-4:]) || strings.Contains(c.Masked, tc.key[5:20]) {
				t.Errorf("masked %q", c.Masked)
			}
			if d.Details["environment"] != tc.env {
				t.Errorf("environment %v", d.Details["environment"])
			}
			probs := strings.Join(d.Problems, "; ")
			if (tc.problem == "") != (probs == "") || !strings.Contains(probs, tc.problem) {
				t.Errorf("problems %q, want %q", probs, tc.problem)
			}
			if !strings.Contains(c.Detail, tc.detail) {
				t.Errorf("detail %q, want %q", c.Detail, tc.detail)
			}
			if got := f.fake.Requests("/v1/metrics"); got != tc.metrics {
				t.Errorf("%d metrics requests", got)
			}
			if tc.verified == provider.VerifiedOK {
				req, _ := d.Details["requests_24h"].(map[string]any)
				if req["total"] != 3.0 || d.Details["cost_usd_24h"] != 0.0034 {
					t.Errorf("figures %v %v", d.Details["requests_24h"], d.Details["cost_usd_24h"])
				}
				if d.Details["memory"] != "available" {
					t.Errorf("memory %v", d.Details["memory"])
				}
			}
			providertest.NoSecret(t, strings.Join(d.Problems, " ")+c.Detail+c.Masked, tc.key)
		})
	}
}

func TestDescribeUnreachable(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	g := newFixtureAt(t, cencoritest.DemoSecretKey, "http://127.0.0.1:1", f.fake, f.clk)
	d, err := g.c.Describe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if d.Reachable || d.Credentials[0].Verified != provider.VerifiedUnreachable || len(d.Problems) == 0 {
		t.Errorf("%+v", d)
	}
	// Rate limited: not a rejection.
	for range 3 {
		f.fake.FailNextOn("GET", "/v1/metrics", 429, map[string]string{"Retry-After": "30"}, `{"error":"Rate limit exceeded","code":"rate_limit_exceeded"}`)
	}
	d, err = f.c.Describe(t.Context())
	if err != nil || d.Credentials[0].Verified != provider.VerifiedNotChecked || !strings.Contains(d.Credentials[0].Detail, "429") {
		t.Errorf("%+v %v", d, err)
	}
}

func scopes(t *testing.T, ss ...string) []auth.Scope {
	t.Helper()
	out := make([]auth.Scope, len(ss))
	for i, s := range ss {
		sc, err := auth.ParseScope(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = sc
	}
	return out
}

func TestCheckAccess(t *testing.T) {
	ops := []string{"content:read", "content:write:memories", "content:delete:memories", "content:read:posts", "credentials:read", "credentials:write", "admin"}
	disabled := "cake_" + strings.Repeat("f", 32)
	cases := []struct {
		name     string
		key      string
		allowed  []bool
		requests int
		reason   string
	}{
		{"secret", cencoritest.DemoSecretKey, []bool{true, true, true, false, false, false, false}, 1, "no per-action"},
		{"agent", cencoritest.DemoAgentKey, []bool{true, true, true, false, false, false, false}, 1, "agent"},
		{"publishable", cencoritest.DemoPublishableKey, []bool{false, false, false, false, false, false, false}, 0, "publishable"},
		{"disabled agent", disabled, []bool{true, true, true, false, false, false, false}, 1, "do not check the agent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.key)
			f.fake.AddAgent(cencoritest.Agent{ID: "agent_off"})
			f.fake.AddKey(cencoritest.Key{Value: disabled, Type: cencoritest.KeySecret, Environment: cencoritest.EnvProduction, AgentID: "agent_off"})
			acc, err := f.c.CheckAccess(t.Context(), provider.ScopeOps(scopes(t, ops...)))
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range acc {
				if a.Operation != ops[i] || a.Allowed != tc.allowed[i] || !a.Known || a.Reason == "" {
					t.Errorf("%s: %+v", ops[i], a)
				}
				if !a.Allowed && a.Fix == "" && ops[i] != "admin" {
					t.Errorf("%s: no fix", ops[i])
				}
			}
			if !strings.Contains(acc[0].Reason, tc.reason) {
				t.Errorf("reason %q, want %q", acc[0].Reason, tc.reason)
			}
			if got := f.fake.TotalRequests(); got != tc.requests {
				t.Errorf("%d requests", got)
			}
		})
	}
}

func TestCheckAccessErrors(t *testing.T) {
	revoked := "csk_" + strings.Repeat("e", 48)
	f := newFixture(t, revoked)
	f.fake.AddKey(cencoritest.Key{Value: revoked, Type: cencoritest.KeySecret, Environment: cencoritest.EnvProduction, Revoked: true})
	_, err := f.c.CheckAccess(t.Context(), provider.ScopeOps(scopes(t, "content:read")))
	ue := providertest.WantKind(t, err, provider.ErrUnauthorized)
	if ue.Code != "invalid_api_key" {
		t.Errorf("%#v", ue)
	}
	// Only non-content scopes: answered offline.
	acc, err := f.c.CheckAccess(t.Context(), provider.ScopeOps(scopes(t, "admin", "credentials:read")))
	if err != nil || len(acc) != 2 || f.fake.Requests("/v1/memory/list") != 1 {
		t.Fatalf("%v %v", acc, err)
	}

	f = newFixture(t, cencoritest.DemoSecretKey)
	for range 3 {
		f.fake.FailNext(429, map[string]string{"Retry-After": "40"}, `{"error":"Rate limit exceeded","code":"rate_limit_exceeded","retry_after_ms":40000}`)
	}
	_, err = f.c.CheckAccess(t.Context(), provider.ScopeOps(scopes(t, "content:write")))
	providertest.WantKind(t, err, provider.ErrRateLimited)

	f = newGatedFixture(t, cencoritest.DemoSecretKey)
	acc, err = f.c.CheckAccess(t.Context(), provider.ScopeOps(scopes(t, "content:read", "content:delete")))
	if err != nil || acc[0].Allowed || !acc[0].Known || !strings.Contains(acc[0].Reason, "not available on this Cencori deployment") ||
		!slices.ContainsFunc(acc, func(a provider.Access) bool { return strings.Contains(a.Fix, "CENCORI_API_URL") }) {
		t.Errorf("%+v %v", acc, err)
	}
}
