package agrenting

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
	"github.com/keygate/keygate/provider/internal/providertest"
)

func TestLoadConfig(t *testing.T) {
	agentKey := "agr_0123456789abcdef0123"
	token := "ap_abcdefghijklmnop1234"
	cases := []struct {
		name    string
		env     env
		ok      bool
		errVar  string
		errAlso string
		hide    string
	}{
		{name: "nothing", env: env{}},
		{name: "empty", env: env{EnvAPIKey: "", EnvToken: ""}},
		{name: "agent key", env: env{EnvAPIKey: agentKey}, ok: true},
		{name: "agent key and agent id", env: env{EnvAPIKey: agentKey, EnvAgentID: agrentingtest.DemoAgentID}, ok: true},
		{name: "token and agent", env: env{EnvToken: token, EnvAgentID: "a-1"}, ok: true},
		{name: "token without agent", env: env{EnvToken: token}, errVar: EnvAgentID, hide: token},
		{name: "both", env: env{EnvAPIKey: agentKey, EnvToken: token, EnvAgentID: "a"}, errVar: EnvToken, errAlso: "not both", hide: agentKey},
		{name: "user token as key", env: env{EnvAPIKey: token}, errVar: EnvAPIKey, errAlso: EnvToken, hide: token},
		{name: "cosmic PAT as key", env: env{EnvAPIKey: "cos_abcdefgh12345678"}, errVar: EnvAPIKey, errAlso: "Cosmic", hide: "abcdefgh12345678"},
		{name: "short key", env: env{EnvAPIKey: "abc123"}, errVar: EnvAPIKey, errAlso: "too short", hide: "abc123"},
		{name: "key with newline", env: env{EnvAPIKey: agentKey + "\n"}, errVar: EnvAPIKey, hide: agentKey},
		{name: "token with space", env: env{EnvToken: "ap_abcdefgh ijklmnop1234", EnvAgentID: "a"}, errVar: EnvToken, hide: "ijklmnop1234"},
		{name: "token not ap_", env: env{EnvToken: agentKey, EnvAgentID: "a"}, errVar: EnvToken, errAlso: "ap_", hide: agentKey},
		{name: "token is a cencori key", env: env{EnvToken: "csk_" + strings.Repeat("ab", 24), EnvAgentID: "a"}, errVar: EnvToken, errAlso: "Cencori", hide: strings.Repeat("ab", 24)},
		{name: "bad agent id", env: env{EnvAPIKey: agentKey, EnvAgentID: "a/b"}, errVar: EnvAgentID},
		{name: "bad url", env: env{EnvAPIKey: agentKey, EnvAPIURL: "agrenting.com"}, errVar: EnvAPIURL},
		{name: "url with password", env: env{EnvAPIKey: agentKey, EnvAPIURL: "https://u:pw12345678@x/api/v1"}, errVar: EnvAPIURL, hide: "pw12345678"},
		// Rotation uses the documented POST /auth/rotate-key: the old
		// override is refused rather than silently ignored.
		{name: "stale rotate path", env: env{EnvAPIKey: agentKey, envRotatePath: "/agents/:agent_id/credentials/rotate"}, errVar: envRotatePath, errAlso: "rotate-key"},
		{name: "revoke path", env: env{EnvAPIKey: agentKey, EnvRevokePath: "/agents/:agent_id/keys/:id"}, ok: true},
		{name: "revoke path with query", env: env{EnvAPIKey: agentKey, EnvRevokePath: "/agents/:id?x=1"}, errVar: EnvRevokePath},
		{name: "revoke path climbing", env: env{EnvAPIKey: agentKey, EnvRevokePath: "/agents/../admin/:id"}, errVar: EnvRevokePath},
		{name: "unknown placeholder", env: env{EnvAPIKey: agentKey, EnvRevokePath: "/agents/:agent/credentials/:id"}, errVar: EnvRevokePath, errAlso: ":agent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, ok, err := LoadConfig(tc.env.Get)
			if tc.errVar != "" {
				if err == nil {
					t.Fatalf("no error, want one naming %s", tc.errVar)
				}
				if !strings.Contains(err.Error(), tc.errVar) || !strings.Contains(err.Error(), tc.errAlso) {
					t.Errorf("error %q does not name %s / %q", err, tc.errVar, tc.errAlso)
				}
				providertest.NoSecret(t, err.Error(), tc.hide)
				return
			}
			if err != nil || ok != tc.ok {
				t.Fatalf("%v %v", ok, err)
			}
			if !ok {
				return
			}
			if cfg.APIURL != DefaultAPIURL || (cfg.RevokePath != DefaultRevokePath && tc.env[EnvRevokePath] == "") {
				t.Errorf("defaults %+v", cfg)
			}
			if _, err := New(cfg, Options{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConfigKinds(t *testing.T) {
	cfg, _, _ := LoadConfig(keyEnv().Get)
	if cfg.Kind().ID != "agrenting_agent_key" || cfg.APIKeySource != "env" || cfg.APIKey.Reveal() != agrentingtest.DemoAgentKey {
		t.Errorf("%+v", cfg.Kind())
	}
	cfg, _, _ = LoadConfig(tokenEnv().Get)
	if cfg.Kind().ID != "agrenting_user_token" || cfg.AgentID != agrentingtest.DemoAgentID {
		t.Errorf("%+v", cfg.Kind())
	}
	if got := expandPath(DefaultRevokePath, "agent-1", "cred_2"); got != "/agents/agent-1/credentials/cred_2" {
		t.Errorf("expand %s", got)
	}
	c, _ := New(cfg, Options{})
	if c.Name() != "agrenting" || len(c.Secrets()) != 1 || c.Secrets()[0] != agrentingtest.DemoUserToken {
		t.Errorf("%s %d", c.Name(), len(c.Secrets()))
	}
	if err := c.Authenticate(t.Context()); err == nil || !strings.Contains(err.Error(), EnvAPIKey) {
		t.Errorf("Authenticate with a token: %v", err)
	}
	if _, err := New(Config{}, Options{}); err == nil {
		t.Error("New without a credential")
	}
}
