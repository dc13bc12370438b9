package cli_test

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/keygate/keygate/cli"
	"github.com/keygate/keygate/config"
)

// setting is one flag of config.Serve, with its variable and default, as
// the struct tags declare it.
type setting struct{ flag, env, def string }

func serveSettings(t *testing.T) []setting {
	t.Helper()
	var out []setting
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for f := range typ.Fields() {
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			out = append(out, setting{flag: f.Tag.Get("name"), env: f.Tag.Get("envvar"), def: f.Tag.Get("default")})
		}
	}
	walk(reflect.TypeFor[config.Serve]())
	return out
}

// TestEveryFlagHasItsVariable: every setting is a named flag whose
// KEYGATE_* twin is the flag's name, and errors can name it.
func TestEveryFlagHasItsVariable(t *testing.T) {
	t.Parallel()
	for _, s := range serveSettings(t) {
		if s.flag == "" || s.env != config.EnvName(s.flag) {
			t.Errorf("setting %+v: want a name tag and envvar %s", s, config.EnvName(s.flag))
		}
	}
}

// TestHelpListsEveryCommandFlagAndVariable: keygate --help names every
// command, every flag of serve (the default command) with its variable,
// keygate's own token and every provider's variables.
func TestHelpListsEveryCommandFlagAndVariable(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		stdout, stderr, code := keygate(t, nil, "", args...)
		if code != 0 || stderr != "" {
			t.Fatalf("keygate %v: exit %d, stderr %q", args, code, stderr)
		}
		want := []string{"serve", "token create", "token list", "token revoke", "audit", "init", "doctor", "version", config.TokenVariable.Name}
		for _, s := range serveSettings(t) {
			want = append(want, "--"+s.flag, "$"+s.env)
		}
		for _, p := range config.Providers {
			for _, v := range p.Variables {
				want = append(want, v.Name)
			}
		}
		for _, w := range want {
			if !strings.Contains(stdout, w) {
				t.Errorf("keygate %v does not mention %s", args, w)
			}
		}
	}
}

// TestEveryCommandHasHelp: help works for every command, and "keygate help
// X" is "keygate X --help".
func TestEveryCommandHasHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		usage string
	}{
		{[]string{"serve", "--help"}, "Usage: keygate serve"},
		{[]string{"token", "--help"}, "Usage: keygate token <command>"},
		{[]string{"help", "token"}, "Usage: keygate token <command>"},
		{[]string{"token", "create", "--help"}, "Usage: keygate token create"},
		{[]string{"token", "list", "--help"}, "Usage: keygate token list"},
		{[]string{"token", "revoke", "--help"}, "Usage: keygate token revoke"},
		{[]string{"audit", "--help"}, "Usage: keygate audit"},
		{[]string{"init", "--help"}, "Usage: keygate init --client=CLIENT"},
		{[]string{"doctor", "--help"}, "Usage: keygate doctor"},
		{[]string{"version", "--help"}, "Usage: keygate version"},
	} {
		stdout, stderr, code := keygate(t, nil, "", tc.args...)
		if code != 0 || !strings.Contains(stdout, tc.usage) {
			t.Errorf("keygate %v: exit %d, stdout %q, stderr %q", tc.args, code, stdout, stderr)
		}
	}
	if stdout, _, _ := keygate(t, nil, "", "serve", "--help"); !strings.Contains(stdout, "COSMIC_READ_KEY") {
		t.Error("serve --help does not list the provider variables")
	}
}

func TestUnknownCommandsAndFlagsFail(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"frobnicate"}, {"token"}, {"token", "mint"}, {"serve", "--no-such-flag"}} {
		_, stderr, code := keygate(t, nil, "", args...)
		if code != 1 || !strings.Contains(stderr, "keygate --help") {
			t.Errorf("keygate %v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	code := cli.Run(t.Context(), []string{"version"}, cli.Streams{Out: &out, Err: &out}, cli.Options{Version: "v1.2.3"})
	if code != 0 || out.String() != "keygate v1.2.3\n" {
		t.Errorf("exit %d, output %q", code, out.String())
	}
}

// TestReadOnlyIsASwitch: --read-only takes no value, --read-only=false
// turns it off, and KEYGATE_READ_ONLY still works.
func TestReadOnlyIsASwitch(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	tests := []struct {
		name string
		env  []string
		args []string
		want bool
	}{
		{"default", nil, nil, false},
		{"switch", nil, []string{"--read-only"}, true},
		{"switch before another flag", nil, []string{"--read-only", "--log-level", "warn"}, true},
		{"switch off", nil, []string{"--read-only=false"}, false},
		{"variable", []string{"KEYGATE_READ_ONLY=true"}, nil, true},
		{"variable off", []string{"KEYGATE_READ_ONLY=false"}, nil, false},
		{"flag beats variable", []string{"KEYGATE_READ_ONLY=true"}, []string{"--read-only=false"}, false},
		{"empty variable is unset", []string{"KEYGATE_READ_ONLY="}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := cli.ServeConfig(in.args(tc.args...), cli.Options{Lookup: environ(tc.env...)})
			if err != nil || cfg.ReadOnly != tc.want {
				t.Errorf("read-only %v, %v; want %v", cfg.ReadOnly, err, tc.want)
			}
		})
	}
}

// TestPrecedence: flag, then the process environment, then the env file,
// then the default; an empty or blank variable counts as unset; the env
// file's own location comes only from the flag or the process environment.
func TestPrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	envFile := filepath.Join(dir, "main.env")
	other := filepath.Join(dir, "other.env")
	write := func(path, content string) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(envFile, "KEYGATE_LOG_LEVEL=warn\nKEYGATE_ENV_FILE="+other+"\nKEYGATE_TOOLSETS=\n")
	write(other, "KEYGATE_LOG_LEVEL=error\n")
	store := []string{"--store", filepath.Join(dir, "keygate.db")}
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"default", nil, nil, "INFO"},
		{"env file", []string{"KEYGATE_ENV_FILE=" + envFile}, nil, "WARN"},
		{"environment over env file", []string{"KEYGATE_ENV_FILE=" + envFile, "KEYGATE_LOG_LEVEL=debug"}, nil, "DEBUG"},
		{"empty variable is unset", []string{"KEYGATE_ENV_FILE=" + envFile, "KEYGATE_LOG_LEVEL="}, nil, "WARN"},
		{"blank variable is unset", []string{"KEYGATE_ENV_FILE=" + envFile, "KEYGATE_LOG_LEVEL=  "}, nil, "WARN"},
		{"flag over environment", []string{"KEYGATE_ENV_FILE=" + envFile, "KEYGATE_LOG_LEVEL=debug"}, []string{"--log-level", "error"}, "ERROR"},
		{"env file from the flag", nil, []string{"--env-file", envFile}, "WARN"},
		{"flag over the environment's env file", []string{"KEYGATE_ENV_FILE=" + other}, []string{"--env-file", envFile}, "WARN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := cli.ServeConfig(append(store, tc.args...), cli.Options{Lookup: environ(tc.env...)})
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.LogLevel.String(); got != tc.want {
				t.Errorf("log level %s, want %s", got, tc.want)
			}
			// KEYGATE_ENV_FILE inside the env file is not followed, and
			// its empty KEYGATE_TOOLSETS leaves the default.
			if strings.Contains(tc.name, "env file") && len(cfg.Toolsets) != len(config.Toolsets) {
				t.Errorf("toolsets %v", cfg.Toolsets)
			}
		})
	}
}

func TestConfigErrorsNameTheVariableNotTheValue(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	secret := "kg_pat_SECRETSECRET_" + strings.Repeat("s", 38)
	serve := func(extra ...string) []string { return append([]string{"serve"}, in.args(extra...)...) }
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"bad transport", []string{"KEYGATE_TRANSPORT=carrier-pigeon" + secret}, serve(), "KEYGATE_TRANSPORT"},
		{"bad log level", nil, serve("--log-level", "loud"+secret), "KEYGATE_LOG_LEVEL"},
		{"bad toolset", []string{"KEYGATE_TOOLSETS=content," + secret}, serve(), "KEYGATE_TOOLSETS"},
		{"bad origin", []string{"KEYGATE_ALLOWED_ORIGINS=*"}, serve(), "KEYGATE_ALLOWED_ORIGINS"},
		{"bad switch in the environment", []string{"KEYGATE_READ_ONLY=" + secret}, serve(), "KEYGATE_READ_ONLY"},
		{"bad switch on the command line", nil, serve("--read-only=" + secret), "--read-only"},
		{"bad body limit", []string{"KEYGATE_MAX_BODY_BYTES=" + secret}, serve(), "KEYGATE_MAX_BODY_BYTES"},
		{"bad expiry warning", []string{"KEYGATE_EXPIRY_WARNING=" + secret}, serve(), "KEYGATE_EXPIRY_WARNING"},
		{"bad log format for the token CLI", []string{"KEYGATE_LOG_FORMAT=" + secret}, append([]string{"token", "list"}, in.args()...), "KEYGATE_LOG_FORMAT"},
		{"token with a line break", []string{"KEYGATE_TOKEN=" + secret + "\r\n"}, serve(), "KEYGATE_TOKEN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := keygate(t, tc.env, "", tc.args...)
			out := stdout + stderr
			if code == 0 {
				t.Fatal("started with bad configuration")
			}
			if !strings.Contains(out, tc.want) || strings.Contains(out, secret) || strings.Contains(out, "SECRET") {
				t.Errorf("output %q should name %s and not the value", out, tc.want)
			}
		})
	}
	if _, err := os.Stat(in.store); err == nil {
		t.Error("a configuration error still created the store")
	}
}

// TestAddrWithoutPort: --addr 127.0.0.1 is a configuration error naming
// the variable, the flag and the fix, reported before anything starts (no
// "listening beyond loopback" warning first).
func TestAddrWithoutPort(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	for _, tc := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"--addr", "127.0.0.1"}},
		{[]string{"KEYGATE_ADDR=localhost"}, nil},
		{nil, []string{"--addr", "::1"}},
		{nil, []string{"--addr", "127.0.0.1:http-alt"}},
	} {
		args := append([]string{"serve"}, in.args(append([]string{"--transport", "http"}, tc.args...)...)...)
		_, stderr, code := keygate(t, tc.env, "", args...)
		if code != 1 || !strings.Contains(stderr, "invalid KEYGATE_ADDR (--addr)") || !strings.Contains(stderr, "127.0.0.1:8080") ||
			strings.Contains(stderr, "listening beyond loopback") {
			t.Errorf("%v %v: exit %d, stderr %q", tc.env, tc.args, code, stderr)
		}
	}
	if _, err := os.Stat(in.store); err == nil {
		t.Error("the bad address was found only after the store was opened")
	}
}

// TestEnvFileErrorsNameTheLine: an env file that does not parse stops
// every command with the file and the line, never the line's text.
func TestEnvFileErrorsNameTheLine(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	const secret = "kg_pat_SECRETSECRET_ssssssssssssssssssssssssssssssssssssss"
	if err := os.WriteFile(in.envFile, []byte("A=1\n\n"+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, command := range []string{"serve", "token list", "audit"} {
		_, stderr, err := runCLI(t, in, command)
		if err == nil || !strings.Contains(stderr, in.envFile) || !strings.Contains(stderr, "line 3") || strings.Contains(stderr, secret) {
			t.Errorf("%s: %v, stderr %q", command, err, stderr)
		}
	}
}

// TestREADMEMatchesTheCommandTree: README's Configuration table lists
// exactly serve's flags with their variables and defaults, and its
// subcommand list names every command and flag the tree has.
func TestREADMEMatchesTheCommandTree(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n## Configuration\n")
	section, _, _ = strings.Cut(section, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `--([a-z-]+)` \\| `(KEYGATE_[A-Z_]+)` \\| ([^|]+) \\|")
	rows := map[string][2]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		rows[m[1]] = [2]string{m[2], strings.TrimSpace(m[3])}
	}
	settings := serveSettings(t)
	if len(rows) != len(settings) {
		t.Errorf("README's table has %d flags, serve has %d", len(rows), len(settings))
	}
	for _, s := range settings {
		r, ok := rows[s.flag]
		switch {
		case !ok:
			t.Errorf("README's table lacks --%s", s.flag)
		case r[0] != s.env:
			t.Errorf("README gives --%s the variable %s, the help %s", s.flag, r[0], s.env)
		case s.def != "" && !strings.HasPrefix(s.def, "${") && r[1] != "`"+s.def+"`":
			t.Errorf("README gives --%s the default %s, the help %s", s.flag, r[1], s.def)
		}
	}
	if !strings.Contains(section, "`"+config.TokenVariable.Name+"`") {
		t.Errorf("README's table lacks %s", config.TokenVariable.Name)
	}
	_, commands, _ := strings.Cut(section, "Subcommands:")
	commands, _, _ = strings.Cut(commands, "\n\n")
	for _, w := range []string{"keygate serve", "keygate token create", "--name", "--scopes", "--expires-in-days", "--env-var",
		"keygate token list", "keygate token revoke ID", "keygate audit", "--since", "--tool", "--json", "--rotated=false", "keygate version"} {
		if !strings.Contains(commands, w) {
			t.Errorf("README's subcommand list lacks %s", w)
		}
	}
}

// TestServeIsTheDefaultCommand: flags without a command serve, as an MCP
// client that launches "keygate --env-file ..." expects; at the end of its
// input keygate exits 0, having done its first run.
func TestServeIsTheDefaultCommand(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	_, stderr, code := keygate(t, nil, "", in.args("--log-level", "debug")...)
	if code != 0 || !strings.Contains(stderr, "serving MCP over stdio") || !strings.Contains(stderr, "created the store") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if tok := in.token(t); tok == "" || strings.Contains(stderr, tok) {
		t.Error("the first run wrote no token, or logged it")
	}
}

// TestServeConfigRefusesHelp: asked for help, ServeConfig says so rather
// than return a configuration (or panic).
func TestServeConfigRefusesHelp(t *testing.T) {
	t.Parallel()
	if _, err := cli.ServeConfig([]string{"--help"}, cli.Options{Lookup: environ()}); err == nil {
		t.Error("no error")
	}
}
