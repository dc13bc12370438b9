// Package config is keygate's configuration: the settings as the command
// line declares them (struct tags the cli package turns into flags, help and
// KEYGATE_* variables), the env file, and the validated Config every command
// runs with.
//
// Precedence: flag, then the process environment, then the env file, then
// the default. An empty variable counts as unset. Errors name the variable
// and its flag and say what is wrong, never the value: a misplaced secret
// must not end up in a terminal or a log.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/oauth"
)

// Defaults that are not plain strings in the tags below. The tools and
// transport packages hold the same values; app's tests check they agree.
var (
	// Toolsets are the toolsets keygate serves, in their documented order.
	Toolsets = []string{"auth", "credentials", "content"}
	// DefaultExpiryWarning is how long before expiry credentials are flagged.
	DefaultExpiryWarning = 7 * 24 * time.Hour
	// DefaultMaxBodyBytes is the largest HTTP request body accepted.
	DefaultMaxBodyBytes int64 = 1 << 20
)

// Bounds of --max-body-bytes.
const (
	minBodyBytes = 1 << 10
	maxBodyBytes = 64 << 20
)

// Common are the settings of every command that opens the store. Every
// field is a flag whose envvar tag names its KEYGATE_* twin; the cli
// package resolves them in order of precedence and Config validates them.
type Common struct {
	Store     string `name:"store" envvar:"KEYGATE_STORE" default:"${default_store}" placeholder:"PATH|URL" help:"Embedded SQLite store (a file path), or a postgres://user@host/db URL: one store several keygate replicas share."`
	DataDir   string `name:"data-dir" envvar:"KEYGATE_DATA_DIR" placeholder:"DIR" help:"Where this process keeps its local files (rotation journals and pending secrets, delivered key files, the audit file): by default the SQLite store's directory; with a postgres:// store, the directory of the default SQLite path."`
	EnvFile   string `name:"env-file" envvar:"KEYGATE_ENV_FILE" default:".env" placeholder:"PATH" help:"Env file read at start-up and written for token delivery; it need not exist."`
	LogLevel  string `name:"log-level" envvar:"KEYGATE_LOG_LEVEL" default:"info" placeholder:"LEVEL" help:"debug, info, warn or error (logs go to stderr)."`
	LogFormat string `name:"log-format" envvar:"KEYGATE_LOG_FORMAT" default:"text" placeholder:"FORMAT" help:"text or json."`
	AuditFile string `name:"audit-file" envvar:"KEYGATE_AUDIT_FILE" placeholder:"PATH" help:"Audit journal, JSON lines, mode 0600; by default audit.jsonl beside the store, or, with a postgres:// store, the store's audit table."`
}

// Serve are the settings of keygate serve.
type Serve struct {
	Common
	Transport      string `name:"transport" envvar:"KEYGATE_TRANSPORT" default:"stdio" placeholder:"stdio|http" help:"stdio or http."`
	Addr           string `name:"addr" envvar:"KEYGATE_ADDR" default:"127.0.0.1:8080" placeholder:"HOST:PORT" help:"HTTP listen address, for --transport http."`
	ReadOnly       bool   `name:"read-only" envvar:"KEYGATE_READ_ONLY" help:"Serve only tools that change nothing."`
	Toolsets       string `name:"toolsets" envvar:"KEYGATE_TOOLSETS" default:"auth,credentials,content" placeholder:"LIST" help:"Comma-separated toolsets to serve: auth, credentials, content."`
	AllowedOrigins string `name:"allowed-origins" envvar:"KEYGATE_ALLOWED_ORIGINS" placeholder:"LIST" help:"Comma-separated browser origins allowed on /mcp, besides keygate's own loopback origin."`
	MaxBodyBytes   string `name:"max-body-bytes" envvar:"KEYGATE_MAX_BODY_BYTES" default:"1048576" placeholder:"BYTES" help:"Largest HTTP request body (413 beyond), 1024 to 67108864."`
	ExpiryWarning  string `name:"expiry-warning" envvar:"KEYGATE_EXPIRY_WARNING" default:"168h" placeholder:"DURATION" help:"Flag credentials expiring within this long."`
	OAuth          string `name:"oauth" envvar:"KEYGATE_OAUTH" default:"embedded" placeholder:"embedded|external|off" help:"Over HTTP: embedded (keygate is its own OAuth authorization server), external (trust --oauth-issuer's tokens) or off (keygate tokens only, which work in every mode). stdio ignores it."`
	PublicURL      string `name:"public-url" envvar:"KEYGATE_PUBLIC_URL" placeholder:"URL" help:"The URL clients reach keygate at, scheme://host[:port] (behind a reverse proxy, the proxy's): the OAuth resource is <URL>/mcp and the issuer <URL>. Default http://--addr on loopback (https with --tls-cert); required beyond loopback with OAuth on."`
	OAuthIssuer    string `name:"oauth-issuer" envvar:"KEYGATE_OAUTH_ISSUER" placeholder:"URL" help:"With --oauth external: the issuer whose access tokens keygate accepts, exactly as its metadata names it."`
	OAuthAudience  string `name:"oauth-audience" envvar:"KEYGATE_OAUTH_AUDIENCE" placeholder:"URL" help:"With --oauth external: the audience tokens must name (default: the resource, <public URL>/mcp)."`
	OAuthScopeMap  string `name:"oauth-scope-map" envvar:"KEYGATE_OAUTH_SCOPE_MAP" placeholder:"LIST" help:"With --oauth external: issuer scope=keygate scope pairs, comma-separated (repeat an issuer scope to map it to several); unmapped scopes grant nothing."`
	OAuthResources string `name:"oauth-resources" envvar:"KEYGATE_OAUTH_RESOURCES" placeholder:"LIST" help:"With --oauth embedded: other keygates' /mcp URLs (comma-separated) that trust this one as their --oauth-issuer; clients name one with the resource parameter."`
	TrustProxy     bool   `name:"trust-proxy" envvar:"KEYGATE_TRUST_PROXY" help:"Take the client's address from the last X-Forwarded-For entry (for rate limits and the audit journal): only behind a reverse proxy that sets it."`
	TLSCert        string `name:"tls-cert" envvar:"KEYGATE_TLS_CERT" placeholder:"PATH" help:"Serve HTTPS with this PEM certificate (chain), with --tls-key."`
	TLSKey         string `name:"tls-key" envvar:"KEYGATE_TLS_KEY" placeholder:"PATH" help:"The PEM private key of --tls-cert."`
	HTTPSessions   string `name:"http-sessions" envvar:"KEYGATE_HTTP_SESSIONS" default:"auto" placeholder:"auto|stateful|stateless" help:"Over HTTP: stateful (MCP sessions held in this process), stateless (none, so replicas behind a load balancer can each serve any request) or auto (stateless with a postgres:// store, else stateful)."`
}

// Session modes of --http-sessions.
const (
	SessionsAuto      = "auto"
	SessionsStateful  = "stateful"
	SessionsStateless = "stateless"
)

// OAuth modes of --oauth.
const (
	OAuthEmbedded = "embedded"
	OAuthExternal = "external"
	OAuthOff      = "off"
)

// Config is everything a keygate command runs with, validated.
type Config struct {
	Transport string
	Addr      string
	// Store is the SQLite store's path or the Postgres URL, as given: it
	// may hold a password, so show StoreName instead.
	Store string
	// DataDir holds this process's local files (RotationDir, KeysDir).
	DataDir string
	EnvFile string // absolute, or "" for none
	// AuditFile is the audit journal's file, or "" for the Postgres
	// store's audit table.
	AuditFile      string
	ReadOnly       bool
	Toolsets       []string
	LogLevel       slog.Level
	LogFormat      string
	AllowedOrigins []string
	MaxBodyBytes   int64
	ExpiryWarning  time.Duration

	// OAuth is the OAuth mode over HTTP: OAuthEmbedded, OAuthExternal or
	// OAuthOff.
	OAuth string
	// PublicURL is the canonical URL clients reach keygate at, or "" to
	// take it from the listening address (ResolvePublicURL).
	PublicURL string
	// OAuthIssuer, OAuthAudience ("" for the resource) and OAuthScopes
	// (issuer scope -> keygate scopes) configure the external mode.
	OAuthIssuer   string
	OAuthAudience string
	OAuthScopes   map[string][]string
	// OAuthResources are other keygates' resources the embedded
	// authorization server issues tokens for.
	OAuthResources []string
	TrustProxy     bool
	TLSCert        string
	TLSKey         string
	// Stateless serves HTTP without MCP sessions (--http-sessions).
	Stateless bool

	// Token is keygate's own credential (KEYGATE_TOKEN), if set.
	Token auth.Credential
	// Env is the process environment and the env file, where the
	// providers find their variables.
	Env Env
}

// RotationDir holds the rotation engines' journals, pending and lock
// files, in the data directory (not beside the env file, which may be
// shared).
func (c Config) RotationDir() string { return filepath.Join(c.DataDir, "rotation") }

// KeysDir is where new keys are delivered as files by default.
func (c Config) KeysDir() string { return filepath.Join(c.DataDir, "keys") }

// Postgres reports whether the store is a Postgres database.
func (c Config) Postgres() bool { return IsPostgresURL(c.Store) }

// IsPostgresURL reports whether a --store value names a Postgres database
// rather than a SQLite file.
func IsPostgresURL(store string) bool {
	return strings.HasPrefix(store, "postgres://") || strings.HasPrefix(store, "postgresql://")
}

// StoreName is the store as keygate shows it: the path, or the URL with its
// password (in the user part or a password parameter) masked.
func (c Config) StoreName() string { return StoreName(c.Store) }

// StoreName masks the password of a Postgres URL; a path is returned as
// is. A URL that does not parse is shown by its scheme alone.
func StoreName(store string) string {
	if !IsPostgresURL(store) {
		return store
	}
	u, err := url.Parse(store)
	if err != nil {
		return strings.SplitN(store, "://", 2)[0] + "://(unparsable URL)"
	}
	q := u.Query()
	for _, k := range passwordParams {
		if q.Has(k) {
			q.Set(k, "xxxxx")
			u.RawQuery = q.Encode()
		}
	}
	return u.Redacted()
}

// DefaultStorePath is $XDG_DATA_HOME/keygate/keygate.db, else
// ~/.local/share/keygate/keygate.db.
func DefaultStorePath() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "keygate", "keygate.db")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "keygate", "keygate.db")
	}
	return "keygate.db"
}

// EnvName is the KEYGATE_* variable of a flag.
func EnvName(flag string) string {
	return "KEYGATE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Invalid is the error for a bad setting: it names the variable and the
// flag, and says what is wrong and how to fix it, never the value.
func Invalid(flag, problem string) error {
	return fmt.Errorf("invalid %s (--%s): %s", EnvName(flag), flag, problem)
}

// Config validates the settings every command shares. env supplies
// KEYGATE_TOKEN and, later, the providers' variables.
func (s Common) Config(env Env) (Config, error) {
	c := Config{Env: env, Store: strings.TrimSpace(s.Store), LogFormat: strings.TrimSpace(s.LogFormat)}
	var errs []error
	switch {
	case c.Store == "":
		errs = append(errs, Invalid("store", "must not be empty; give the path of the SQLite store or a postgres:// URL"))
	case c.Postgres():
		errs = append(errs, checkPostgresURL(c.Store))
	case strings.Contains(c.Store, "://"):
		errs = append(errs, Invalid("store", "is a URL keygate cannot use: give a SQLite file path, or a postgres://user@host:5432/db URL"))
	case looksLikeDSN(c.Store):
		// Taken as a path it would become a file named after the
		// connection settings, password included, shown in every log.
		errs = append(errs, Invalid("store", "looks like Postgres key=value settings: write them as a postgres://user@host:5432/db URL (keygate takes only that form)"))
	}
	switch c.DataDir = strings.TrimSpace(s.DataDir); {
	case c.DataDir != "":
	case c.Postgres():
		c.DataDir = filepath.Dir(DefaultStorePath())
	default:
		c.DataDir = filepath.Dir(c.Store)
	}
	c.AuditFile = strings.TrimSpace(s.AuditFile)
	if c.AuditFile == "" && c.Store != "" && !c.Postgres() {
		c.AuditFile = filepath.Join(c.DataDir, "audit.jsonl")
	}
	if c.EnvFile = strings.TrimSpace(s.EnvFile); c.EnvFile != "" {
		if abs, err := filepath.Abs(c.EnvFile); err == nil {
			c.EnvFile = abs
		}
	}
	if err := c.LogLevel.UnmarshalText([]byte(strings.TrimSpace(s.LogLevel))); err != nil {
		errs = append(errs, Invalid("log-level", "must be debug, info, warn or error"))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, Invalid("log-format", "must be text or json"))
	}
	tok, err := token(env)
	c.Token = tok
	errs = append(errs, err)
	return c, errors.Join(errs...)
}

// token reads KEYGATE_TOKEN. A value with a line break or NUL is refused
// rather than trimmed: it was mangled on its way in.
func token(env Env) (auth.Credential, error) {
	tok, src, ok := env.Get(auth.TokenVar)
	if !ok {
		return auth.Credential{}, nil
	}
	if strings.ContainsAny(tok, "\r\n\x00") {
		return auth.Credential{}, fmt.Errorf("invalid %s (from %s): contains a line break or NUL; write the token on one line", auth.TokenVar, src)
	}
	return auth.Credential{Secret: auth.NewSecret(strings.TrimSpace(tok)), Source: src, Var: auth.TokenVar}, nil
}

// Config validates the settings of keygate serve.
func (s Serve) Config(env Env) (Config, error) {
	c, err := s.Common.Config(env)
	errs := []error{err}
	c.ReadOnly = s.ReadOnly
	if c.Transport = strings.TrimSpace(s.Transport); c.Transport != "stdio" && c.Transport != "http" {
		errs = append(errs, Invalid("transport", "must be stdio or http"))
	}
	c.Addr = strings.TrimSpace(s.Addr)
	if c.Transport == "http" {
		errs = append(errs, checkAddr(c.Addr))
	}
	c.Toolsets, err = toolsets(s.Toolsets)
	errs = append(errs, err)
	c.AllowedOrigins, err = origins(s.AllowedOrigins)
	errs = append(errs, err)
	n, err := strconv.ParseInt(strings.TrimSpace(s.MaxBodyBytes), 10, 64)
	if err != nil || n < minBodyBytes || n > maxBodyBytes {
		errs = append(errs, Invalid("max-body-bytes", fmt.Sprintf("must be a number of bytes from %d to %d", minBodyBytes, maxBodyBytes)))
	}
	c.MaxBodyBytes = n
	if c.ExpiryWarning, err = time.ParseDuration(strings.TrimSpace(s.ExpiryWarning)); err != nil || c.ExpiryWarning <= 0 {
		errs = append(errs, Invalid("expiry-warning", "must be a positive duration such as 168h"))
	}
	if c.Transport == "http" {
		errs = append(errs, s.httpSettings(&c)...)
	}
	switch strings.TrimSpace(s.HTTPSessions) {
	case SessionsAuto, "":
		c.Stateless = c.Postgres()
	case SessionsStateful:
	case SessionsStateless:
		c.Stateless = true
	default:
		errs = append(errs, Invalid("http-sessions", "must be auto, stateful or stateless"))
	}
	return c, errors.Join(errs...)
}

// passwordParams are the URL parameters that hold a secret.
var passwordParams = []string{"password", "sslpassword"}

// StorePasswords are the secrets a Postgres store URL holds, in its user
// part or as parameters: keygate adds them to its redactor.
func (c Config) StorePasswords() []string {
	if !c.Postgres() {
		return nil
	}
	u, err := url.Parse(c.Store)
	if err != nil {
		return nil
	}
	var out []string
	if pw, ok := u.User.Password(); ok && pw != "" {
		out = append(out, pw)
	}
	for _, k := range passwordParams {
		if v := u.Query().Get(k); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// looksLikeDSN reports whether a --store value is libpq key=value
// settings ("host=db user=kg dbname=kg") rather than a file path.
func looksLikeDSN(store string) bool {
	for f := range strings.FieldsSeq(store) {
		k, _, ok := strings.Cut(f, "=")
		switch strings.ToLower(k) {
		case "host", "hostaddr", "port", "user", "password", "dbname", "sslmode", "sslpassword", "passfile":
			if ok {
				return true
			}
		}
	}
	return false
}

// checkPostgresURL checks the shape of a postgres:// store URL; the
// driver checks the rest when it connects. The error never repeats the
// URL, which may hold a password.
func checkPostgresURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil, strings.ContainsRune(u.Path+u.RawQuery+u.Fragment, '@'):
		// An '@' past the host is a password's: one holding '/', '?' or
		// '#' unencoded ends the user part early, and the rest of it
		// would be taken for the host and shown as such.
		return Invalid("store", "is not a valid URL: write it as postgres://user:password@host:5432/database (percent-encode special characters in the password), or leave the password out and set PGPASSWORD")
	case strings.TrimPrefix(u.Path, "/") == "" && u.Query().Get("dbname") == "":
		return Invalid("store", "names no database: write it as postgres://user@host:5432/database")
	}
	return nil
}

// checkAddr wants host:port. A bare host is the likely slip, and the fix
// is to add the port.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		if !strings.Contains(addr, ":") || net.ParseIP(addr) != nil {
			return Invalid("addr", "has no port; give host:port, e.g. 127.0.0.1:8080 (port 0 picks a free one)")
		}
		return Invalid("addr", "must be host:port, e.g. 127.0.0.1:8080 or [::1]:8080")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return Invalid("addr", "needs a port number from 0 to 65535, e.g. 127.0.0.1:8080")
	}
	return nil
}

func toolsets(list string) ([]string, error) {
	var out []string
	for t := range strings.SplitSeq(list, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if !slices.Contains(Toolsets, t) {
			return nil, Invalid("toolsets", "unknown toolset; use a comma-separated subset of "+strings.Join(Toolsets, ", "))
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, Invalid("toolsets", "must name at least one toolset of "+strings.Join(Toolsets, ", "))
	}
	return out, nil
}

func origins(list string) ([]string, error) {
	var out []string
	for o := range strings.SplitSeq(list, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if o == "*" || o == "null" || !(strings.HasPrefix(o, "http://") || strings.HasPrefix(o, "https://")) {
			return nil, Invalid("allowed-origins", "each origin must be scheme://host[:port]; * and null are not allowed")
		}
		out = append(out, o)
	}
	return out, nil
}

// httpSettings validates what only HTTP uses: OAuth, the public URL and
// TLS. stdio ignores them.
func (s Serve) httpSettings(c *Config) []error {
	var errs []error
	c.TrustProxy = s.TrustProxy
	switch c.OAuth = strings.TrimSpace(s.OAuth); c.OAuth {
	case OAuthEmbedded, OAuthExternal, OAuthOff:
	default:
		errs = append(errs, Invalid("oauth", "must be embedded, external or off"))
	}
	c.TLSCert, c.TLSKey = strings.TrimSpace(s.TLSCert), strings.TrimSpace(s.TLSKey)
	errs = append(errs, checkTLS(c.TLSCert, c.TLSKey))
	if raw := strings.TrimSpace(s.PublicURL); raw != "" {
		u, err := publicURL(raw)
		switch {
		case err != nil:
			errs = append(errs, Invalid("public-url", urlProblem(raw, err)))
		case c.TLSCert != "" && strings.HasPrefix(u, "http://"):
			errs = append(errs, Invalid("public-url", "must be https when keygate serves HTTPS itself (--tls-cert)"))
		}
		c.PublicURL = u
	} else if c.OAuth != OAuthOff && !loopbackAddr(c.Addr) {
		errs = append(errs, Invalid("public-url", "is required when --addr listens beyond loopback with OAuth on: give the URL clients reach keygate at, "+
			"e.g. https://keygate.example.com (behind a reverse proxy, the proxy's URL), or pass --oauth off to accept keygate tokens only"))
	}

	external := map[string]string{"oauth-issuer": s.OAuthIssuer, "oauth-audience": s.OAuthAudience, "oauth-scope-map": s.OAuthScopeMap}
	for _, flag := range []string{"oauth-issuer", "oauth-audience", "oauth-scope-map"} {
		if strings.TrimSpace(external[flag]) != "" && c.OAuth != OAuthExternal {
			errs = append(errs, Invalid(flag, "applies to --oauth external only; set --oauth external, or remove it"))
		}
	}
	if strings.TrimSpace(s.OAuthResources) != "" && c.OAuth != OAuthEmbedded {
		errs = append(errs, Invalid("oauth-resources", "applies to --oauth embedded only; remove it"))
	}
	if c.OAuth == OAuthExternal {
		errs = append(errs, s.externalSettings(c)...)
	}
	if c.OAuth == OAuthEmbedded {
		for r := range strings.SplitSeq(s.OAuthResources, ",") {
			if r = strings.TrimSpace(r); r == "" {
				continue
			}
			canon, err := oauth.CanonicalURL(r)
			if err != nil {
				errs = append(errs, Invalid("oauth-resources", "each must be another keygate's /mcp URL, such as https://other.example.com/mcp: "+urlProblem(r, err)))
				continue
			}
			c.OAuthResources = append(c.OAuthResources, canon)
		}
	}
	return errs
}

// externalSettings validates the external issuer's settings.
func (s Serve) externalSettings(c *Config) []error {
	var errs []error
	c.OAuthIssuer = strings.TrimSpace(s.OAuthIssuer)
	if c.OAuthIssuer == "" {
		errs = append(errs, Invalid("oauth-issuer", "is required with --oauth external: the issuer identifier, e.g. https://login.example.com/realms/mcp"))
	} else if _, err := oauth.CanonicalURL(c.OAuthIssuer); err != nil {
		errs = append(errs, Invalid("oauth-issuer", urlProblem(c.OAuthIssuer, err)))
	}
	if a := strings.TrimSpace(s.OAuthAudience); a != "" {
		canon, err := oauth.CanonicalURL(a)
		if err != nil {
			errs = append(errs, Invalid("oauth-audience", urlProblem(a, err)))
		}
		c.OAuthAudience = canon
	}
	var err error
	if c.OAuthScopes, err = scopeMap(s.OAuthScopeMap); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// scopeMap parses --oauth-scope-map: issuer=keygate pairs, separated by
// commas; an issuer scope named twice maps to both keygate scopes.
func scopeMap(list string) (map[string][]string, error) {
	out := map[string][]string{}
	for pair := range strings.SplitSeq(list, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		ext, kg, ok := strings.Cut(pair, "=")
		ext, kg = strings.TrimSpace(ext), strings.TrimSpace(kg)
		if !ok || ext == "" || kg == "" {
			return nil, Invalid("oauth-scope-map", "each entry must be issuer-scope=keygate-scope, e.g. mcp.read=content:read,mcp.admin=admin")
		}
		sc, err := auth.ParseScope(kg)
		if err != nil {
			return nil, Invalid("oauth-scope-map", "maps an issuer scope to something that is not a keygate scope; use content:read, content:write, content:delete (each optionally :TYPE), credentials:read, credentials:write or admin")
		}
		if !slices.Contains(out[ext], sc.String()) {
			out[ext] = append(out[ext], sc.String())
		}
	}
	if len(out) == 0 {
		return nil, Invalid("oauth-scope-map", "is required with --oauth external: map the issuer's scopes to keygate's, e.g. mcp.read=content:read")
	}
	return out, nil
}

// publicURL checks the public URL: an origin (no path), https or http on
// loopback, in canonical form.
func publicURL(raw string) (string, error) {
	canon, err := oauth.CanonicalURL(raw)
	if err != nil {
		return "", err
	}
	if u, _ := url.Parse(canon); u.Path != "" {
		return "", errors.New("must be scheme://host[:port] with no path, e.g. https://keygate.example.com: keygate serves /mcp and its OAuth endpoints at the root of that URL")
	}
	return canon, nil
}

// urlProblem is oauth.CanonicalURL's complaint about raw without raw,
// which may hold a password: errors never repeat a value.
func urlProblem(raw string, err error) string {
	msg := strings.ReplaceAll(err.Error(), strconv.Quote(strings.TrimSpace(raw)), "the URL")
	if strings.Contains(msg, strings.TrimSpace(raw)) {
		return "is not a URL; give one such as https://keygate.example.com"
	}
	return msg
}

// checkTLS wants both files or neither, readable, holding a certificate
// and its key.
func checkTLS(cert, key string) error {
	switch {
	case cert == "" && key == "":
		return nil
	case key == "":
		return Invalid("tls-key", "is missing: --tls-cert needs the certificate's private key in --tls-key; give both or neither")
	case cert == "":
		return Invalid("tls-cert", "is missing: --tls-key needs its certificate in --tls-cert; give both or neither")
	}
	for flag, path := range map[string]string{"tls-cert": cert, "tls-key": key} {
		f, err := os.Open(path)
		if err != nil {
			return Invalid(flag, "cannot be read ("+pathProblem(err)+"); give a PEM file keygate may read")
		}
		f.Close()
	}
	if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
		return Invalid("tls-cert", "and --tls-key do not hold a PEM certificate and its private key ("+err.Error()+")")
	}
	return nil
}

// pathProblem is an os error without the path it names.
func pathProblem(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// loopbackAddr reports whether a listen address binds loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && host != "" && oauth.IsLoopbackHost(host)
}

// ResolvePublicURL is the URL clients reach keygate at once it listens on
// addr: PublicURL, or the listening address itself (https when keygate
// serves TLS).
func (c Config) ResolvePublicURL(addr net.Addr) string {
	if c.PublicURL != "" {
		return c.PublicURL
	}
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + addr.String()
}
