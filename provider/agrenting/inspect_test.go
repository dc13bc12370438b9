package agrenting

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
	"github.com/keygate/keygate/provider/internal/providertest"
)

func TestDescribe(t *testing.T) {
	cases := []struct {
		name      string
		env       env
		varName   string
		kind      string
		verified  string
		agentName string
		problem   string
	}{
		{"agent key", keyEnv(), EnvAPIKey, "agrenting_agent_key", provider.VerifiedOK, agrentingtest.DemoAgentName, ""},
		{"user token", tokenEnv(), EnvToken, "agrenting_user_token", provider.VerifiedOK, agrentingtest.DemoAgentName, ""},
		{"wrong key", env{EnvAPIKey: "agr_not_a_real_key_000"}, EnvAPIKey, "agrenting_agent_key", provider.VerifiedRejected, "", "was refused"},
		{"token for another user's agent", env{EnvToken: agrentingtest.DemoUserToken, EnvAgentID: "agent-of-someone"}, EnvToken, "agrenting_user_token", provider.VerifiedRejected, "", "FORBIDDEN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.env)
			d, err := f.c.Describe(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			c := d.Credentials[0]
			if d.Provider != "agrenting" || !d.Reachable || c.Name != tc.varName || c.Kind != tc.kind || c.Verified != tc.verified || c.Source != "env" {
				t.Fatalf("%+v", d)
			}
			if !strings.Contains(strings.Join(d.Problems, " "), tc.problem) || (tc.problem == "") != (len(d.Problems) == 0) {
				t.Errorf("problems %v", d.Problems)
			}
			if tc.verified != provider.VerifiedOK {
				return
			}
			if d.Details["agent_id"] != agrentingtest.DemoAgentID || d.Details["agent_name"] != tc.agentName || !strings.Contains(d.Owner, tc.agentName) {
				t.Errorf("details %v owner %q", d.Details, d.Owner)
			}
			if b, ok := d.Details["balance"].(balance); !ok || b.Available != "250.00" || b.Currency != "USD" {
				t.Errorf("balance %v", d.Details["balance"])
			}
			if len(c.Grants) == 0 || c.Masked == "" {
				t.Errorf("credential %+v", c)
			}
			providertest.NoSecret(t, c.Masked+c.Detail, f.c.Secrets()...)
			// Twice: authenticates once (it is rate limited).
			if _, err := f.c.Describe(t.Context()); err != nil {
				t.Fatal(err)
			}
			if n := f.fake.Requests("/api/v1/auth/authenticate"); n > 1 {
				t.Errorf("%d authentications", n)
			}
		})
	}
}

func TestDescribeUnreachable(t *testing.T) {
	f := newFixture(t, keyEnv())
	g := newFixtureAt(t, keyEnv(), "http://127.0.0.1:1/api/v1", f.fake, f.clk)
	d, err := g.c.Describe(t.Context())
	if err != nil || d.Reachable || d.Credentials[0].Verified != provider.VerifiedUnreachable || len(d.Problems) == 0 {
		t.Fatalf("%+v %v", d, err)
	}
}

func TestCheckAccess(t *testing.T) {
	ops := []string{"content:read", "content:write:tasks", "content:delete", "content:read:posts", "credentials:read", "credentials:write", "admin"}
	scopes := make([]auth.Scope, len(ops))
	for i, o := range ops {
		scopes[i], _ = auth.ParseScope(o)
	}
	for _, e := range []env{keyEnv(), tokenEnv()} {
		f := newFixture(t, e)
		acc, err := f.c.CheckAccess(t.Context(), provider.ScopeOps(scopes))
		if err != nil {
			t.Fatal(err)
		}
		want := []struct{ allowed, known bool }{{true, true}, {true, true}, {false, true}, {false, true}, {true, true}, {false, false}, {false, true}}
		for i, a := range acc {
			if a.Operation != ops[i] || a.Allowed != want[i].allowed || a.Known != want[i].known || a.Reason == "" {
				t.Errorf("%s: %+v", ops[i], a)
			}
		}
		if !strings.Contains(acc[1].Reason, "250.00 USD") || !strings.Contains(acc[5].Reason, RotateKeyPath) {
			t.Errorf("reasons %q / %q", acc[1].Reason, acc[5].Reason)
		}
	}
	// Without the (undocumented) list endpoint, credentials:read is a
	// known "no" that says why and where to look instead.
	nl := newFixture(t, keyEnv(), agrentingtest.WithoutCredentialList())
	acc, err := nl.c.CheckAccess(t.Context(), provider.ScopeOps(scopes[4:5]))
	if err != nil || acc[0].Allowed || !acc[0].Known || !strings.Contains(acc[0].Reason, "documents no endpoint") || !strings.Contains(acc[0].Fix, "dashboard") {
		t.Errorf("credentials:read without a list: %+v %v", acc, err)
	}
	// A refused credential is an error: nothing can be answered.
	g := newFixture(t, env{EnvAPIKey: "agr_not_a_real_key_000", EnvAgentID: agrentingtest.DemoAgentID})
	_, err = g.c.CheckAccess(t.Context(), provider.ScopeOps(scopes[:1]))
	providertest.WantKind(t, err, provider.ErrUnauthorized)
	// A token for an agent the user does not own: a known "no".
	h := newFixture(t, env{EnvToken: agrentingtest.DemoUserToken, EnvAgentID: "agent-of-someone"})
	acc, err = h.c.CheckAccess(t.Context(), provider.ScopeOps(scopes[:2]))
	if err != nil || acc[0].Allowed || !acc[0].Known || !strings.Contains(acc[0].Reason, "FORBIDDEN") || acc[1].Allowed {
		t.Errorf("%+v %v", acc, err)
	}
}
