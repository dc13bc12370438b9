package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
)

// defaults are the settings with every tag's default, as the command line
// gives them when nothing is set.
func defaults() Serve {
	return Serve{Common: Common{Store: "/tmp/k/keygate.db", EnvFile: ".env", LogLevel: "info", LogFormat: "text"},
		Transport: "stdio", Addr: "127.0.0.1:8080", Toolsets: "auth,credentials,content", MaxBodyBytes: "1048576", ExpiryWarning: "168h",
		OAuth: "embedded"}
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
		{"store URL that does not parse", func(s *Serve) { s.Store = "postgres://u:" + secret + "@h:x/db" }, "invalid KEYGATE_STORE (--store): is not a valid URL"},
		{"store URL without a database", func(s *Serve) { s.Store = "postgres://u:" + secret + "@h:5432/" }, "names no database"},
		{"store URL of another database", func(s *Serve) { s.Store = "mysql://u:" + secret + "@h/db" }, "a postgres://user@host:5432/db URL"},
		{"http sessions", func(s *Serve) { s.HTTPSessions = secret }, "invalid KEYGATE_HTTP_SESSIONS (--http-sessions)"},
		{"store as key=value settings", func(s *Serve) { s.Store = "host=db user=kg password=" + secret + " dbname=kg" }, "looks like Postgres key=value settings"},
		{"store URL with an unencoded password", func(s *Serve) { s.Store = "postgres://u:1234/" + secret + "@h/db" }, "percent-encode special characters"},
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

// TestPostgresStore: a postgres:// store keeps its local files in the data
// directory, audits to its own table, serves HTTP without sessions unless
// told otherwise, and is shown with its password masked.
func TestPostgresStore(t *testing.T) {
	const password = "canary-pg-password"
	tests := []struct {
		name, store, dataDir, sessions string
		wantDataDir, wantAudit         string
		wantStateless                  bool
	}{
		{"SQLite", "/tmp/k/keygate.db", "", "auto", "/tmp/k", "/tmp/k/audit.jsonl", false},
		{"SQLite, stateless on request", "/tmp/k/keygate.db", "", "stateless", "/tmp/k", "/tmp/k/audit.jsonl", true},
		{"Postgres", "postgres://kg:" + password + "@127.0.0.1:5432/keygate", "/srv/kg", "auto", "/srv/kg", "", true},
		{"Postgres, password as a parameter", "postgresql://kg@127.0.0.1/keygate?password=" + password, "/srv/kg", "", "/srv/kg", "", true},
		{"Postgres, key password as a parameter", "postgresql://kg@127.0.0.1/keygate?sslmode=verify-full&sslpassword=" + password, "/srv/kg", "", "/srv/kg", "", true},
		{"Postgres, stateful on request", "postgres://kg@127.0.0.1/keygate", "", "stateful", filepath.Dir(DefaultStorePath()), "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := defaults()
			s.Transport, s.OAuth = "http", "off"
			s.Store, s.DataDir, s.HTTPSessions = tc.store, tc.dataDir, tc.sessions
			c, err := s.Config(env())
			if err != nil {
				t.Fatal(err)
			}
			if c.DataDir != tc.wantDataDir || c.AuditFile != tc.wantAudit || c.Stateless != tc.wantStateless {
				t.Errorf("data dir %q, audit %q, stateless %v; want %q, %q, %v", c.DataDir, c.AuditFile, c.Stateless, tc.wantDataDir, tc.wantAudit, tc.wantStateless)
			}
			if c.RotationDir() != filepath.Join(tc.wantDataDir, "rotation") || c.KeysDir() != filepath.Join(tc.wantDataDir, "keys") {
				t.Errorf("rotation %s, keys %s", c.RotationDir(), c.KeysDir())
			}
			if name := c.StoreName(); strings.Contains(name, password) || !strings.Contains(name, "127.0.0.1") && c.Postgres() {
				t.Errorf("store shown as %q", name)
			}
			if c.Postgres() && strings.Contains(tc.store, password) && !slices.Contains(c.StorePasswords(), password) {
				t.Errorf("the redactor would not learn the password: %q", c.StorePasswords())
			}
		})
	}
}

func TestAddrIsCheckedOnlyForHTTP(t *testing.T) {
	s := defaults()
	s.Addr = "127.0.0.1"
	if _, err := s.Config(env()); err != nil {
		t.Errorf("stdio refused an address it does not use: %v", err)
	}
	for _, ok := range []string{"127.0.0.1:0", "[::1]:8080", "localhost:65535"} {
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

// writeCert writes a self-signed certificate and its key, PEM, into dir.
func writeCert(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestHTTPSettings: OAuth, the public URL and TLS, validated over HTTP
// only, each error naming the flag and the fix and never the value.
func TestHTTPSettings(t *testing.T) {
	const secret = "SECRETSECRET"
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	other, _ := writeCert(t, t.TempDir())
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	http := func(set func(*Serve)) (Config, error) {
		s := defaults()
		s.Transport = "http"
		if set != nil {
			set(&s)
		}
		return s.Config(env())
	}

	c, err := http(nil)
	if err != nil || c.OAuth != OAuthEmbedded || c.PublicURL != "" || c.ResolvePublicURL(addr) != "http://127.0.0.1:8080" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	s := defaults()
	s.OAuth, s.PublicURL, s.TLSCert = "pigeon", "nope", "/nonexistent"
	if _, err := s.Config(env()); err != nil {
		t.Errorf("stdio refused settings it ignores: %v", err)
	}

	for _, tc := range []struct {
		name string
		set  func(*Serve)
		want string // "" for valid
		then func(t *testing.T, c Config)
	}{
		{"unknown mode", func(s *Serve) { s.OAuth = secret }, "invalid KEYGATE_OAUTH (--oauth): must be embedded, external or off", nil},
		{"beyond loopback without a public URL", func(s *Serve) { s.Addr = "0.0.0.0:8080" }, "invalid KEYGATE_PUBLIC_URL (--public-url): is required when --addr listens beyond loopback", nil},
		{"all interfaces without a public URL", func(s *Serve) { s.Addr = ":8080" }, "is required when --addr listens beyond loopback", nil},
		{"beyond loopback with OAuth off", func(s *Serve) { s.Addr, s.OAuth = "0.0.0.0:8080", "off" }, "", nil},
		{"beyond loopback with a public URL", func(s *Serve) { s.Addr, s.PublicURL = "0.0.0.0:8080", "https://Keygate.Example.com/" }, "",
			func(t *testing.T, c Config) {
				if c.ResolvePublicURL(addr) != "https://keygate.example.com" {
					t.Errorf("public URL %q", c.ResolvePublicURL(addr))
				}
			}},
		{"public URL with a path", func(s *Serve) { s.PublicURL = "https://keygate.example.com/" + secret }, "invalid KEYGATE_PUBLIC_URL (--public-url): must be scheme://host[:port] with no path", nil},
		{"public URL in clear text", func(s *Serve) { s.PublicURL = "http://user:" + secret + "@keygate.example.com" }, "must use https", nil},
		{"public URL that is not one", func(s *Serve) { s.PublicURL = "::" + secret }, "invalid KEYGATE_PUBLIC_URL (--public-url)", nil},
		{"issuer without external", func(s *Serve) { s.OAuthIssuer = "https://idp.example" }, "invalid KEYGATE_OAUTH_ISSUER (--oauth-issuer): applies to --oauth external only", nil},
		{"scope map without external", func(s *Serve) { s.OAuthScopeMap = "a=admin" }, "invalid KEYGATE_OAUTH_SCOPE_MAP (--oauth-scope-map): applies to --oauth external only", nil},
		{"resources with external", func(s *Serve) {
			s.OAuth, s.OAuthIssuer, s.OAuthScopeMap, s.OAuthResources = "external", "https://idp.example", "a=admin", "https://other.example/mcp"
		}, "invalid KEYGATE_OAUTH_RESOURCES (--oauth-resources): applies to --oauth embedded only", nil},
		{"bad resource", func(s *Serve) { s.OAuthResources = "http://" + secret + ".example/mcp" }, "invalid KEYGATE_OAUTH_RESOURCES (--oauth-resources)", nil},
		{"resources", func(s *Serve) { s.OAuthResources = "https://A.example/mcp, https://b.example/mcp/" }, "",
			func(t *testing.T, c Config) {
				if !slices.Equal(c.OAuthResources, []string{"https://a.example/mcp", "https://b.example/mcp"}) {
					t.Errorf("resources %v", c.OAuthResources)
				}
			}},
		{"external without issuer", func(s *Serve) { s.OAuth, s.OAuthScopeMap = "external", "a=admin" }, "invalid KEYGATE_OAUTH_ISSUER (--oauth-issuer): is required with --oauth external", nil},
		{"external issuer in clear text", func(s *Serve) {
			s.OAuth, s.OAuthIssuer, s.OAuthScopeMap = "external", "http://"+secret+".example", "a=admin"
		}, "invalid KEYGATE_OAUTH_ISSUER (--oauth-issuer): the URL must use https", nil},
		{"external without scope map", func(s *Serve) { s.OAuth, s.OAuthIssuer = "external", "https://idp.example" }, "invalid KEYGATE_OAUTH_SCOPE_MAP (--oauth-scope-map): is required with --oauth external", nil},
		{"scope map entry without =", func(s *Serve) { s.OAuth, s.OAuthIssuer, s.OAuthScopeMap = "external", "https://idp.example", secret }, "each entry must be issuer-scope=keygate-scope", nil},
		{"scope map to no keygate scope", func(s *Serve) {
			s.OAuth, s.OAuthIssuer, s.OAuthScopeMap = "external", "https://idp.example", "a="+secret
		}, "maps an issuer scope to something that is not a keygate scope", nil},
		{"external", func(s *Serve) {
			s.OAuth, s.OAuthIssuer, s.OAuthAudience = "external", "https://idp.example/realms/x", "https://keygate.example.com/mcp/"
			s.OAuthScopeMap = "read:content=content:read, write=content:write,write=content:delete:posts,write=content:write"
		}, "", func(t *testing.T, c Config) {
			if c.OAuthIssuer != "https://idp.example/realms/x" || c.OAuthAudience != "https://keygate.example.com/mcp" ||
				!slices.Equal(c.OAuthScopes["read:content"], []string{"content:read"}) ||
				!slices.Equal(c.OAuthScopes["write"], []string{"content:write", "content:delete:posts"}) {
				t.Errorf("%+v", c)
			}
		}},
		{"certificate without key", func(s *Serve) { s.TLSCert = cert }, "invalid KEYGATE_TLS_KEY (--tls-key): is missing", nil},
		{"key without certificate", func(s *Serve) { s.TLSKey = key }, "invalid KEYGATE_TLS_CERT (--tls-cert): is missing", nil},
		{"unreadable certificate", func(s *Serve) { s.TLSCert, s.TLSKey = filepath.Join(dir, secret), key }, "invalid KEYGATE_TLS_CERT (--tls-cert): cannot be read (no such file or directory)", nil},
		{"certificate of another key", func(s *Serve) { s.TLSCert, s.TLSKey = other, key }, "do not hold a PEM certificate and its private key", nil},
		{"TLS", func(s *Serve) { s.TLSCert, s.TLSKey = cert, key }, "", func(t *testing.T, c Config) {
			if c.ResolvePublicURL(addr) != "https://127.0.0.1:8080" {
				t.Errorf("public URL with TLS %q", c.ResolvePublicURL(addr))
			}
		}},
		{"TLS with a clear-text public URL", func(s *Serve) { s.TLSCert, s.TLSKey, s.PublicURL = cert, key, "http://127.0.0.1:8080" }, "must be https when keygate serves HTTPS itself", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := http(tc.set)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), secret):
				t.Fatalf("the error repeats the value: %v", err)
			}
			if tc.then != nil {
				tc.then(t, c)
			}
		})
	}
}
