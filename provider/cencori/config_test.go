package cencori

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/provider/cencori/cencoritest"
	"github.com/keygate/keygate/provider/internal/providertest"
)

func TestLoadConfig(t *testing.T) {
	hex48 := strings.Repeat("0a1b2c3d", 6)
	cases := []struct {
		name     string
		env      env
		ok       bool
		kind     string
		keyType  string
		envName  string
		errVar   string // the variable the error names; "" for no error
		errAlso  string
		mustHide string // a value the error must not contain
	}{
		{name: "nothing set", env: env{}},
		{name: "empty key", env: env{EnvAPIKey: ""}},
		{name: "urls without a key", env: env{EnvAPIURL: "http://127.0.0.1:1"}},
		{name: "secret", env: env{EnvAPIKey: "csk_" + hex48}, ok: true, kind: "cencori_secret", keyType: KeyTypeSecret, envName: EnvironmentLive},
		{name: "secret test", env: env{EnvAPIKey: "csk_test_" + hex48}, ok: true, kind: "cencori_secret_test", keyType: KeyTypeSecret, envName: EnvironmentTest},
		{name: "publishable", env: env{EnvAPIKey: "cpk_" + hex48}, ok: true, kind: "cencori_publishable", keyType: KeyTypePublishable, envName: EnvironmentLive},
		{name: "publishable test", env: env{EnvAPIKey: "cpk_test_" + hex48}, ok: true, kind: "cencori_publishable_test", keyType: KeyTypePublishable, envName: EnvironmentTest},
		{name: "agent", env: env{EnvAPIKey: "cake_" + hex48}, ok: true, kind: "cencori_agent_key", keyType: KeyTypeAgent, envName: EnvironmentLive},
		// What the dashboard's agent setup issues: cake_ + a UUID's 32 hex.
		{name: "agent from agent setup", env: env{EnvAPIKey: "cake_" + hex48[:32]}, ok: true, kind: "cencori_agent_key", keyType: KeyTypeAgent, envName: EnvironmentLive},
		{name: "agent of 40 hex", env: env{EnvAPIKey: "cake_" + hex48[:40]}, errVar: EnvAPIKey, errAlso: "32 or 48", mustHide: hex48[:40]},
		{name: "legacy base58", env: env{EnvAPIKey: "cen_" + strings.Repeat("aB3x", 8)}, ok: true, kind: "cencori_legacy_key", keyType: KeyTypeLegacy, envName: EnvironmentUnknown},
		{name: "generic", env: env{EnvAPIKey: "cencori_abcDEF123.456_-x"}, ok: true, kind: "cencori_key", keyType: KeyTypeLegacy, envName: EnvironmentUnknown},
		{name: "space inside", env: env{EnvAPIKey: "csk_" + hex48[:20] + " " + hex48[21:]}, errVar: EnvAPIKey, mustHide: hex48[:20]},
		{name: "trailing newline", env: env{EnvAPIKey: "csk_" + hex48 + "\n"}, errVar: EnvAPIKey, mustHide: hex48},
		{name: "NUL", env: env{EnvAPIKey: "csk_" + hex48 + "\x00"}, errVar: EnvAPIKey, mustHide: hex48},
		{name: "upper-case hex", env: env{EnvAPIKey: "csk_" + strings.ToUpper(hex48)}, errVar: EnvAPIKey, errAlso: "malformed", mustHide: strings.ToUpper(hex48)},
		{name: "too short", env: env{EnvAPIKey: "csk_" + hex48[:40]}, errVar: EnvAPIKey, errAlso: "48", mustHide: hex48[:40]},
		{name: "cosmic PAT", env: env{EnvAPIKey: "cos_abcdefgh12345678"}, errVar: EnvAPIKey, errAlso: "Cosmic personal access token", mustHide: "abcdefgh12345678"},
		{name: "agrenting token", env: env{EnvAPIKey: "ap_abcdefghijklmnop1234"}, errVar: EnvAPIKey, errAlso: "Agrenting", mustHide: "abcdefghijklmnop1234"},
		{name: "junk", env: env{EnvAPIKey: "sk-proj-notcencori1234"}, errVar: EnvAPIKey, errAlso: "not a Cencori key", mustHide: "notcencori1234"},
		{name: "ftp url", env: env{EnvAPIKey: "csk_" + hex48, EnvAPIURL: "ftp://x"}, errVar: EnvAPIURL},
		{name: "url with password", env: env{EnvAPIKey: "csk_" + hex48, EnvGatewayURL: "https://u:hunter2secret@x"}, errVar: EnvGatewayURL, mustHide: "hunter2secret"},
		{name: "url with query", env: env{EnvAPIKey: "csk_" + hex48, EnvAPIURL: "https://x/?k=1"}, errVar: EnvAPIURL},
		{name: "url without host", env: env{EnvAPIKey: "csk_" + hex48, EnvAPIURL: "https:///v1"}, errVar: EnvAPIURL},
		{name: "bad memory user", env: env{EnvAPIKey: "csk_" + hex48, EnvMemoryUserID: "a b"}, errVar: EnvMemoryUserID},
		{name: "bad namespace", env: env{EnvAPIKey: "csk_" + hex48, EnvMemoryNamespace: "x/y"}, errVar: EnvMemoryNamespace},
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
				providertest.NoSecret(t, err.Error(), tc.mustHide, tc.env[EnvAPIKey])
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.ok {
				t.Fatalf("configured = %v", ok)
			}
			if !ok {
				return
			}
			if cfg.Kind.ID != tc.kind || cfg.KeyType() != tc.keyType || cfg.Environment() != tc.envName {
				t.Errorf("kind %s type %s env %s", cfg.Kind.ID, cfg.KeyType(), cfg.Environment())
			}
			if cfg.APIURL != DefaultAPIURL || cfg.GatewayURL != DefaultGatewayURL || cfg.MemoryUserID != DefaultMemoryUserID || cfg.APIKeySource != "env" {
				t.Errorf("defaults: %+v", cfg)
			}
		})
	}
}

func TestLoadConfigOverrides(t *testing.T) {
	cfg, ok, err := LoadConfig(env{
		EnvAPIKey: cencoritest.DemoSecretKey, EnvAPIURL: "http://127.0.0.1:8080/api/", EnvGatewayURL: "https://gw.example.com",
		EnvMemoryUserID: "agent-7", EnvMemoryNamespace: "notes",
	}.FromFile)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if cfg.APIURL != "http://127.0.0.1:8080/api" || cfg.GatewayURL != "https://gw.example.com" || cfg.MemoryUserID != "agent-7" ||
		cfg.MemoryNamespace != "notes" || cfg.APIKeySource != "env_file" || cfg.APIKey.Reveal() != cencoritest.DemoSecretKey {
		t.Errorf("%+v", cfg)
	}
	c, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "cencori" || len(c.Secrets()) != 1 || c.Secrets()[0] != cencoritest.DemoSecretKey {
		t.Errorf("name %s secrets %d", c.Name(), len(c.Secrets()))
	}
	if _, err := New(Config{}, Options{}); err == nil || !strings.Contains(err.Error(), EnvAPIKey) {
		t.Errorf("New without a key: %v", err)
	}
}
