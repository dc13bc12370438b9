package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/auth"
)

// defaults are the settings with every tag's default, as the command line
// gives them when nothing is set.
func defaults() Serve {
	return Serve{Common: Common{Store: "/tmp/k/keygate.db", EnvFile: ".env", LogLevel: "info", LogFormat: "text"},
		Transport: "stdio", Addr: "127.0.0.1:8080", Toolsets: "auth,credentials,content", MaxBodyBytes: "1048576", ExpiryWarning: "168h"}
}

func env(kv ...string) Env {
	m := map[string]string{}
	for _, e := range kv {
		k, v, _ := strings.Cut(e, "=")
		m[k] = v
	}
	return Env{Lookup: func(n string) (string, bool) { v, ok := m[n]; return v, ok }}
}

func TestDefaultsAreValid(t *testing.T) {
	c, err := defaults().Config(env())
	if err != nil {
		t.Fatal(err)
	}
	if c.Transport != "stdio" || c.MaxBodyBytes != DefaultMaxBodyBytes || c.ExpiryWarning != DefaultExpiryWarning ||
		len(c.Toolsets) != len(Toolsets) || c.AuditFile != "/tmp/k/audit.jsonl" || !filepath.IsAbs(c.EnvFile) {
		t.Errorf("%+v", c)
	}
	if c.RotationDir() != "/tmp/k/rotation" || c.KeysDir() != "/tmp/k/keys" {
		t.Errorf("rotation %s, keys %s", c.RotationDir(), c.KeysDir())
	}
}

// TestErrorsNameTheSettingNotTheValue: each bad setting gives an error
// naming its variable and flag; none quotes the value; every problem is
// reported at once.
func TestErrorsNameTheSettingNotTheValue(t *testing.T) {
	const secret = "kg_pat_SECRETSECRET"
	tests := []struct {
		name string
		set  func(*Serve)
		want string
	}{
		{"empty store", func(s *Serve) { s.Store = " " }, "invalid KEYGATE_STORE (--store)"},
		{"log level", func(s *Serve) { s.LogLevel = secret }, "invalid KEYGATE_LOG_LEVEL (--log-level)"},
		{"log format", func(s *Serve) { s.LogFormat = secret }, "invalid KEYGATE_LOG_FORMAT (--log-format)"},
		{"transport", func(s *Serve) { s.Transport = secret }, "invalid KEYGATE_TRANSPORT (--transport)"},
		{"toolset", func(s *Serve) { s.Toolsets = "auth," + secret }, "invalid KEYGATE_TOOLSETS (--toolsets)"},
		{"no toolset", func(s *Serve) { s.Toolsets = " , " }, "must name at least one toolset"},
		{"origin", func(s *Serve) { s.AllowedOrigins = "null" }, "invalid KEYGATE_ALLOWED_ORIGINS (--allowed-origins)"},
		{"origin without scheme", func(s *Serve) { s.AllowedOrigins = secret + ".example" }, "scheme://host"},
		{"body limit", func(s *Serve) { s.MaxBodyBytes = "1023" }, "invalid KEYGATE_MAX_BODY_BYTES (--max-body-bytes)"},
		{"expiry warning", func(s *Serve) { s.ExpiryWarning = "-1h" }, "invalid KEYGATE_EXPIRY_WARNING (--expiry-warning)"},
		{"addr without port", func(s *Serve) { s.Transport, s.Addr = "http", "127.0.0.1" }, "has no port; give host:port, e.g. 127.0.0.1:8080"},
		{"addr with a bad port", func(s *Serve) { s.Transport, s.Addr = "http", "127.0.0.1:"+secret }, "needs a port number"},
		{"addr of another shape", func(s *Serve) { s.Transport, s.Addr = "http", "[::1" }, "must be host:port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := defaults()
			tc.set(&s)
			_, err := s.Config(env())
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), secret) {
				t.Errorf("error %v, want one containing %q and not the value", err, tc.want)
			}
		})
	}
	s := defaults()
	s.LogFormat, s.Transport = "xml", "pigeon"
	if _, err := s.Config(env()); err == nil || !strings.Contains(err.Error(), "KEYGATE_LOG_FORMAT") || !strings.Contains(err.Error(), "KEYGATE_TRANSPORT") {
		t.Errorf("want both problems at once: %v", err)
	}
}

func TestAddrIsCheckedOnlyForHTTP(t *testing.T) {
	s := defaults()
	s.Addr = "127.0.0.1"
	if _, err := s.Config(env()); err != nil {
		t.Errorf("stdio refused an address it does not use: %v", err)
	}
	for _, ok := range []string{"127.0.0.1:0", "[::1]:8080", ":8080", "localhost:65535"} {
		s.Transport, s.Addr = "http", ok
		if _, err := s.Config(env()); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// TestEnvPrecedence: the process environment over the env file; a blank
// value in either counts as unset.
func TestEnvPrecedence(t *testing.T) {
	e := env("A=process", "B=", "C=  ").WithFile(map[string]string{"A": "file", "B": "file", "C": "file", "D": "file", "E": " "})
	for name, want := range map[string]struct {
		v   string
		src auth.Source
	}{
		"A": {"process", auth.SourceEnv}, "B": {"file", auth.SourceEnvFile}, "C": {"file", auth.SourceEnvFile},
		"D": {"file", auth.SourceEnvFile}, "E": {"", ""}, "F": {"", ""},
	} {
		v, src, ok := e.Get(name)
		if v != want.v || src != want.src || ok != (want.v != "") {
			t.Errorf("%s = %q from %q (%v), want %q from %q", name, v, src, ok, want.v, want.src)
		}
	}
}

func TestToken(t *testing.T) {
	tok := "kg_pat_AAAAAAAAAAAA_" + strings.Repeat("a", 38)
	c, err := defaults().Config(env().WithFile(map[string]string{auth.TokenVar: " " + tok + " "}))
	if err != nil || c.Token.Secret.Reveal() != tok || c.Token.Source != auth.SourceEnvFile {
		t.Errorf("token from the env file: %v %v", c.Token, err)
	}
	c, err = defaults().Config(env(auth.TokenVar + "=" + tok).WithFile(map[string]string{auth.TokenVar: "other"}))
	if err != nil || c.Token.Secret.Reveal() != tok || c.Token.Source != auth.SourceEnv {
		t.Errorf("token from the environment: %v %v", c.Token, err)
	}
	for _, bad := range []string{tok + "\r\n", tok[:10] + "\x00" + tok[11:], tok + "\nX: 1"} {
		_, err := defaults().Config(env(auth.TokenVar + "=" + bad))
		if err == nil || !strings.Contains(err.Error(), "KEYGATE_TOKEN (from env)") || strings.Contains(err.Error(), tok[20:]) {
			t.Errorf("error %v", err)
		}
	}
}

func TestReadEnvFile(t *testing.T) {
	dir := t.TempDir()
	if f, err := ReadEnvFile(filepath.Join(dir, "absent")); err != nil || len(f.Vars) != 0 || f.Warning != "" {
		t.Errorf("a missing env file: %+v %v", f, err)
	}
	path := filepath.Join(dir, ".env")
	if err := os.WriteFile(path, []byte("A=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := ReadEnvFile(path)
	if err != nil || f.Vars["A"] != "1" || !strings.Contains(f.Warning, "chmod 600") {
		t.Errorf("a loose env file: %+v %v", f, err)
	}
	if err := os.WriteFile(path, []byte("A=1\nnot a line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadEnvFile(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a bad env file: %v", err)
	}
}

func TestDefaultStorePath(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/data")
	if got := DefaultStorePath(); got != "/data/keygate/keygate.db" {
		t.Errorf("with XDG_DATA_HOME: %s", got)
	}
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/home/k")
	if got := DefaultStorePath(); got != "/home/k/.local/share/keygate/keygate.db" {
		t.Errorf("without XDG_DATA_HOME: %s", got)
	}
}

// TestProvidersNameTheirVariables: every provider lists its variables
// once, each with a meaning, and no two providers share one.
func TestProvidersNameTheirVariables(t *testing.T) {
	seen := map[string]string{}
	for _, p := range Providers {
		if p.Name == "" || p.Title == "" || len(p.Variables) == 0 {
			t.Errorf("provider %+v", p)
		}
		for _, v := range p.Variables {
			if v.Meaning == "" || !strings.HasPrefix(v.Name, strings.ToUpper(p.Name)+"_") {
				t.Errorf("%s: variable %+v", p.Name, v)
			}
			if other, ok := seen[v.Name]; ok {
				t.Errorf("%s is listed by %s and %s", v.Name, other, p.Name)
			}
			seen[v.Name] = p.Name
		}
	}

}
