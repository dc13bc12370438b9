package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/tools"
	"github.com/keygate/keygate/transport"
)

// config is everything keygate needs to start, resolved from flags, the
// environment and the env file, in that order of precedence.
type config struct {
	Transport      string
	Addr           string
	Store          string
	EnvFile        string
	AuditFile      string
	ReadOnly       bool
	Toolsets       []string
	LogLevel       slog.Level
	LogFormat      string
	AllowedOrigins []string
	MaxBodyBytes   int64
	ExpiryWarning  time.Duration

	// Token is keygate's own credential (KEYGATE_TOKEN), if set.
	Token auth.Credential
}

// setting is one configuration value with its flag and KEYGATE_* twin.
type setting struct {
	flag, env, def, usage string
	value                 *string
}

// envLookup finds a variable in the real environment first, then in the env
// file, and says which.
type envLookup struct {
	file map[string]string
}

// An empty or blank variable counts as unset, so a client config can blank
// a setting.
func (e envLookup) get(name string) (string, auth.Source, bool) {
	if v, ok := os.LookupEnv(name); ok && strings.TrimSpace(v) != "" {
		return v, auth.SourceEnv, true
	}
	if v, ok := e.file[name]; ok {
		return v, auth.SourceEnvFile, true
	}
	return "", "", false
}

func defaultStorePath() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "keygate", "keygate.db")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "keygate", "keygate.db")
	}
	return "keygate.db"
}

// commonSettings are accepted by every subcommand that opens the store.
func commonSettings() []*setting {
	return []*setting{
		{flag: "store", env: "KEYGATE_STORE", def: defaultStorePath(), usage: "path of the embedded SQLite store"},
		{flag: "env-file", env: "KEYGATE_ENV_FILE", def: ".env", usage: "env file to read settings from and write tokens to (optional)"},
		{flag: "log-level", env: "KEYGATE_LOG_LEVEL", def: "info", usage: "debug, info, warn or error"},
		{flag: "log-format", env: "KEYGATE_LOG_FORMAT", def: "text", usage: "text or json (logs go to stderr)"},
		{flag: "audit-file", env: "KEYGATE_AUDIT_FILE", def: "", usage: "audit journal, JSON lines, mode 0600 (default: audit.jsonl beside the store)"},
	}
}

func serveSettings() []*setting {
	return append(commonSettings(),
		&setting{flag: "transport", env: "KEYGATE_TRANSPORT", def: "stdio", usage: "stdio or http"},
		&setting{flag: "addr", env: "KEYGATE_ADDR", def: "127.0.0.1:8080", usage: "listen address for --transport http"},
		&setting{flag: "read-only", env: "KEYGATE_READ_ONLY", def: "false", usage: "serve only tools that change nothing"},
		&setting{flag: "toolsets", env: "KEYGATE_TOOLSETS", def: strings.Join(tools.AllToolsets, ","), usage: "comma-separated toolsets to serve: auth, credentials, content"},
		&setting{flag: "allowed-origins", env: "KEYGATE_ALLOWED_ORIGINS", def: "", usage: "comma-separated browser origins allowed to call /mcp, besides keygate's own loopback origin"},
		&setting{flag: "max-body-bytes", env: "KEYGATE_MAX_BODY_BYTES", def: strconv.Itoa(transport.DefaultMaxBodyBytes), usage: "largest accepted HTTP request body"},
		&setting{flag: "expiry-warning", env: "KEYGATE_EXPIRY_WARNING", def: tools.DefaultExpiryWarning.String(), usage: "warn about credentials expiring within this long (e.g. 168h)"},
	)
}

// parseSettings registers settings on fs, parses args, then fills every
// value the command line did not set from the environment or the env file.
func parseSettings(fs *flag.FlagSet, settings []*setting, args []string) (envLookup, error) {
	for _, s := range settings {
		s.value = new(string)
		fs.StringVar(s.value, s.flag, s.def, fmt.Sprintf("%s (env %s)", s.usage, s.env))
	}
	if err := fs.Parse(args); err != nil {
		return envLookup{}, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	// The env file's own location can only come from a flag or the real
	// environment.
	envFile := lookupSetting(settings, "env-file")
	if !set["env-file"] {
		if v, ok := os.LookupEnv("KEYGATE_ENV_FILE"); ok && v != "" {
			*envFile.value = v
		}
	}
	file, err := auth.ReadEnvFile(*envFile.value)
	if err != nil {
		return envLookup{}, fmt.Errorf("env file %s: %w", *envFile.value, err)
	}
	if fi, err := os.Stat(*envFile.value); err == nil && fi.Mode().Perm()&0o077 != 0 {
		// The file holds tokens; keygate tightens it when it next writes
		// it, but says so now.
		fmt.Fprintf(fs.Output(), "keygate: warning: env file %s has mode %v, readable by others; it holds credentials: run chmod 600 on it\n",
			*envFile.value, fi.Mode().Perm())
	}
	env := envLookup{file: file}
	for _, s := range settings {
		if set[s.flag] || s.flag == "env-file" {
			continue
		}
		if v, _, ok := env.get(s.env); ok {
			*s.value = v
		}
	}
	return env, nil
}

func lookupSetting(settings []*setting, name string) *setting {
	for _, s := range settings {
		if s.flag == name {
			return s
		}
	}
	panic("no setting " + name)
}

// configError names the setting and the problem, never the value.
func configError(s *setting, problem string) error {
	return fmt.Errorf("invalid %s (--%s): %s", s.env, s.flag, problem)
}

// buildConfig validates the parsed settings.
func buildConfig(settings []*setting, env envLookup) (config, error) {
	get := func(name string) (*setting, string) {
		s := lookupSetting(settings, name)
		return s, strings.TrimSpace(*s.value)
	}
	var c config
	var errs []error
	s, v := get("store")
	if v == "" {
		errs = append(errs, configError(s, "must not be empty"))
	}
	c.Store = v
	_, c.AuditFile = get("audit-file")
	if c.AuditFile == "" && c.Store != "" {
		c.AuditFile = filepath.Join(filepath.Dir(c.Store), "audit.jsonl")
	}
	_, c.EnvFile = get("env-file")
	if c.EnvFile != "" {
		if abs, err := filepath.Abs(c.EnvFile); err == nil {
			c.EnvFile = abs
		}
	}
	s, v = get("log-level")
	if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
		errs = append(errs, configError(s, "must be debug, info, warn or error"))
	}
	s, c.LogFormat = get("log-format")
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, configError(s, "must be text or json"))
	}
	if slices.ContainsFunc(settings, func(s *setting) bool { return s.flag == "transport" }) {
		s, c.Transport = get("transport")
		if c.Transport != "stdio" && c.Transport != "http" {
			errs = append(errs, configError(s, "must be stdio or http"))
		}
		_, c.Addr = get("addr")
		s, v = get("read-only")
		ro, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, configError(s, "must be true or false"))
		}
		c.ReadOnly = ro
		s, v = get("toolsets")
		for t := range strings.SplitSeq(v, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if !slices.Contains(tools.AllToolsets, t) {
				errs = append(errs, configError(s, fmt.Sprintf("unknown toolset; use a comma-separated subset of %s", strings.Join(tools.AllToolsets, ", "))))
				break
			}
			c.Toolsets = append(c.Toolsets, t)
		}
		if len(c.Toolsets) == 0 {
			errs = append(errs, configError(s, "must name at least one toolset"))
		}
		s, v = get("allowed-origins")
		for o := range strings.SplitSeq(v, ",") {
			if o = strings.TrimSpace(o); o == "" {
				continue
			}
			if o == "*" || o == "null" || !(strings.HasPrefix(o, "http://") || strings.HasPrefix(o, "https://")) {
				errs = append(errs, configError(s, "each origin must be scheme://host[:port]; * and null are not allowed"))
				break
			}
			c.AllowedOrigins = append(c.AllowedOrigins, o)
		}
		s, v = get("max-body-bytes")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 || n > 64<<20 {
			errs = append(errs, configError(s, "must be a number of bytes from 1024 to 67108864"))
		}
		c.MaxBodyBytes = n
		s, v = get("expiry-warning")
		if c.ExpiryWarning, err = time.ParseDuration(v); err != nil || c.ExpiryWarning <= 0 {
			errs = append(errs, configError(s, "must be a positive duration such as 168h"))
		}
	}
	if tok, src, ok := env.get(tools.EnvTokenVar); ok {
		if strings.ContainsAny(tok, "\r\n\x00") {
			errs = append(errs, fmt.Errorf("invalid %s (from %s): contains a line break or NUL", tools.EnvTokenVar, src))
		} else if tok = strings.TrimSpace(tok); tok != "" {
			c.Token = auth.Credential{Secret: auth.NewSecret(tok), Source: src, Var: tools.EnvTokenVar}
		}
	}
	return c, errors.Join(errs...)
}
