package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// initClient is what a test knows about one client: where its file goes
// in a temporary home (HOME and XDG_CONFIG_HOME given to keygate through
// its environment, never the real ones) and its format.
type initClient struct {
	id        string
	key       string
	stdioType bool
	path      func(home, xdg, project string) string
}

var initClients = []initClient{
	{"claude-desktop", "mcpServers", false, func(_, xdg, _ string) string {
		return filepath.Join(xdg, "Claude", "claude_desktop_config.json")
	}},
	{"claude-code", "mcpServers", true, func(home, _, _ string) string { return filepath.Join(home, ".claude.json") }},
	{"cursor", "mcpServers", false, func(home, _, _ string) string { return filepath.Join(home, ".cursor", "mcp.json") }},
	{"vscode", "servers", true, func(_, _, project string) string { return filepath.Join(project, ".vscode", "mcp.json") }},
}

// initSetup is one run's temporary home, project and keygate instance.
type initSetup struct {
	in                 instance
	home, xdg, project string
	client             initClient
	config             string
	wantCommand        string
	wantArgs           []string
	extraEnv           []string
}

func newInitSetup(t *testing.T, c initClient, in instance) *initSetup {
	t.Helper()
	root := t.TempDir()
	s := &initSetup{in: in, home: filepath.Join(root, "home"), xdg: filepath.Join(root, "xdg"), project: filepath.Join(root, "project"), client: c}
	for _, d := range []string{s.home, s.xdg, s.project} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s.config = c.path(s.home, s.xdg, s.project)
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.wantCommand = exe
	s.wantArgs = []string{"serve", "--env-file", in.envFile, "--store", in.store}
	return s
}

// run runs keygate init for the setup's client with extra arguments.
func (s *initSetup) run(t *testing.T, extra ...string) (string, string, int) {
	t.Helper()
	env := append([]string{"HOME=" + s.home, "XDG_CONFIG_HOME=" + s.xdg}, s.extraEnv...)
	args := append([]string{"init", "--client", s.client.id, "--project", s.project}, s.in.args(extra...)...)
	return keygate(t, env, "", args...)
}

func (s *initSetup) write(t *testing.T, text string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(s.config), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.config, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.config, mode); err != nil {
		t.Fatal(err)
	}
}

func (s *initSetup) read(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (s *initSetup) backups(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob(s.config + ".bak-*")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// jsoncNoise matches what VS Code's JSON allows besides JSON, in the
// fixtures below (whose strings hold no "//").
var jsoncNoise = regexp.MustCompile(`(?s)//[^\n]*|/\*.*?\*/`)
var trailingComma = regexp.MustCompile(`,(\s*[}\]])`)

// decode parses a config the test wrote or keygate wrote.
func decode(t *testing.T, text string) map[string]any {
	t.Helper()
	plain := trailingComma.ReplaceAllString(jsoncNoise.ReplaceAllString(text, ""), "$1")
	var m map[string]any
	if err := json.Unmarshal([]byte(plain), &m); err != nil {
		t.Fatalf("the config is not JSON: %v\n%s", err, text)
	}
	return m
}

// entry checks the file's keygate entry and returns the file without it.
func (s *initSetup) checkEntry(t *testing.T, text, name string, env map[string]any) map[string]any {
	t.Helper()
	m := decode(t, text)
	servers, _ := m[s.client.key].(map[string]any)
	got, ok := servers[name].(map[string]any)
	if !ok {
		t.Fatalf("no %q entry under %q:\n%s", name, s.client.key, text)
	}
	want := map[string]any{"command": s.wantCommand, "args": toAny(s.wantArgs)}
	if s.client.stdioType {
		want["type"] = "stdio"
	}
	if env != nil {
		want["env"] = env
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entry %v, want %v", got, want)
	}
	delete(servers, name)
	if len(servers) == 0 {
		delete(m, s.client.key)
	}
	return m
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// isSubsequence reports whether every byte of old is in new, in order:
// keygate added to the file and removed nothing.
func isSubsequence(old, new string) bool {
	i := 0
	for j := 0; i < len(old) && j < len(new); j++ {
		if old[i] == new[j] {
			i++
		}
	}
	return i == len(old)
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// existing is a config with another server and keys that are not
// keygate's, in an idiosyncratic layout that must survive byte for byte.
func existing(key string) string {
	return "{\n\t\"numStartups\":41,\n\t\"projects\": {\"/x\": {\"allowedTools\": [ ]}},\n\t\"" + key + "\": {\n\t\t\"other\": {\n\t\t\t\"command\": \"npx\",  \"args\": [\"-y\", \"other\"]\n\t\t}\n\t},\n\t\"tipsHistory\": {\"a\": 1}\n}\n"
}

// TestInit: for every client, a new file, a file with other servers and
// settings, a stale keygate entry, a second run, JSONC, invalid JSON.
func TestInit(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	for _, c := range initClients {
		t.Run(c.id+"/fresh", func(t *testing.T) {
			t.Parallel()
			s := newInitSetup(t, c, in)
			stdout, stderr, code := s.run(t)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !strings.Contains(stdout, "added the \"keygate\" entry in "+s.config) || !strings.Contains(stdout, "next: ") {
				t.Errorf("stdout: %s", stdout)
			}
			text := s.read(t)
			if rest := s.checkEntry(t, text, "keygate", nil); len(rest) != 0 {
				t.Errorf("a new file holds more than keygate's entry: %v", rest)
			}
			if m := mode(t, s.config); m != 0o644 {
				t.Errorf("mode %v, want 0644", m)
			}
			if b := s.backups(t); len(b) != 0 {
				t.Errorf("backups of a file that did not exist: %v", b)
			}
		})
		t.Run(c.id+"/existing", func(t *testing.T) {
			t.Parallel()
			s := newInitSetup(t, c, in)
			old := existing(c.key)
			s.write(t, old, 0o640)
			if _, stderr, code := s.run(t); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			text := s.read(t)
			if !isSubsequence(old, text) {
				t.Errorf("keygate init changed bytes of the file besides adding its entry:\n%s", text)
			}
			if rest := s.checkEntry(t, text, "keygate", nil); !reflect.DeepEqual(rest, decode(t, old)) {
				t.Errorf("the rest of the file changed: %v", rest)
			}
			if m := mode(t, s.config); m != 0o640 {
				t.Errorf("mode %v, want the file's own 0640", m)
			}
			b := s.backups(t)
			if len(b) != 1 {
				t.Fatalf("backups %v, want one", b)
			}
			if saved, _ := os.ReadFile(b[0]); string(saved) != old || mode(t, b[0]) != 0o600 {
				t.Errorf("backup %s holds %q, mode %v", b[0], saved, mode(t, b[0]))
			}

			// A second run with the same arguments changes nothing.
			stdout, stderr, code := s.run(t)
			if code != 0 || !strings.Contains(stdout, "nothing changed") {
				t.Fatalf("second run: exit %d: %s %s", code, stdout, stderr)
			}
			if s.read(t) != text || len(s.backups(t)) != 1 {
				t.Errorf("the second run changed the file or kept another backup")
			}
		})
		t.Run(c.id+"/stale entry", func(t *testing.T) {
			t.Parallel()
			s := newInitSetup(t, c, in)
			old := "{\"" + c.key + "\": {\"keygate\": {\"command\": \"/old/keygate\", \"args\": [\"serve\"], \"env\": {\"X\": \"1\"}}, \"other\": {\"command\": \"x\"}}, \"keep\": true}"
			s.write(t, old, 0o600)
			stdout, stderr, code := s.run(t)
			if code != 0 || !strings.Contains(stdout, "replaced the \"keygate\" entry") || !strings.Contains(stdout, "kept as") {
				t.Fatalf("exit %d: %s %s", code, stdout, stderr)
			}
			rest := s.checkEntry(t, s.read(t), "keygate", nil)
			if want := map[string]any{c.key: map[string]any{"other": map[string]any{"command": "x"}}, "keep": true}; !reflect.DeepEqual(rest, want) {
				t.Errorf("the rest of the file: %v", rest)
			}
		})
		t.Run(c.id+"/invalid JSON", func(t *testing.T) {
			t.Parallel()
			s := newInitSetup(t, c, in)
			bad := "{\"" + c.key + "\": {\"other\": {\"command\": \"x\"}}\n"
			s.write(t, bad, 0o644)
			_, stderr, code := s.run(t)
			if code != 1 || !strings.Contains(stderr, s.config) || !strings.Contains(stderr, "not valid JSON") || !strings.Contains(stderr, "changed nothing") {
				t.Errorf("exit %d: %s", code, stderr)
			}
			if s.read(t) != bad || len(s.backups(t)) != 0 {
				t.Error("an invalid config was changed or backed up")
			}
		})
		t.Run(c.id+"/JSON with comments", func(t *testing.T) {
			t.Parallel()
			s := newInitSetup(t, c, in)
			old := "// servers for this project\n{\n  \"" + c.key + "\": {\n    /* the other one */\n    \"other\": {\"type\": \"stdio\", \"command\": \"x\",}, // trailing comma\n  },\n  \"inputs\": [],\n}\n"
			s.write(t, old, 0o644)
			_, stderr, code := s.run(t)
			if c.id != "vscode" {
				// Only VS Code reads comments; keygate refuses the file
				// rather than write one the client cannot read.
				if code != 1 || !strings.Contains(stderr, "not valid JSON") || s.read(t) != old {
					t.Errorf("exit %d: %s", code, stderr)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			text := s.read(t)
			if !isSubsequence(old, text) {
				t.Errorf("comments or other bytes were lost:\n%s", text)
			}
			if rest := s.checkEntry(t, text, "keygate", nil); !reflect.DeepEqual(rest, decode(t, old)) {
				t.Errorf("the rest of the file changed: %v", rest)
			}
		})
	}
}

// TestInitOptions: --name, --scope, --config, a symlinked config, and
// bad input named with its fix.
func TestInitOptions(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	code := initClients[1] // claude-code: a user and a project scope

	t.Run("name and project scope", func(t *testing.T) {
		t.Parallel()
		s := newInitSetup(t, code, in)
		s.config = filepath.Join(s.project, ".mcp.json")
		if _, stderr, c := s.run(t, "--scope", "project", "--name", "kg-work"); c != 0 {
			t.Fatalf("exit %d: %s", c, stderr)
		}
		s.checkEntry(t, s.read(t), "kg-work", nil)
		if _, err := os.Stat(filepath.Join(s.home, ".claude.json")); !os.IsNotExist(err) {
			t.Errorf("the user configuration was written too: %v", err)
		}
	})
	t.Run("config path", func(t *testing.T) {
		t.Parallel()
		s := newInitSetup(t, code, in)
		s.config = filepath.Join(t.TempDir(), "elsewhere.json")
		if _, stderr, c := s.run(t, "--config", s.config); c != 0 {
			t.Fatalf("exit %d: %s", c, stderr)
		}
		s.checkEntry(t, s.read(t), "keygate", nil)
	})
	t.Run("symlinked config", func(t *testing.T) {
		t.Parallel()
		s := newInitSetup(t, code, in)
		target := filepath.Join(t.TempDir(), "dotfiles-claude.json")
		if err := os.WriteFile(target, []byte(existing("mcpServers")), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, s.config); err != nil {
			t.Fatal(err)
		}
		if _, stderr, c := s.run(t); c != 0 {
			t.Fatalf("exit %d: %s", c, stderr)
		}
		if fi, err := os.Lstat(s.config); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("the symlink was replaced: %v", err)
		}
		s.checkEntry(t, s.read(t), "keygate", nil)
	})
	t.Run("settings from the environment are passed on", func(t *testing.T) {
		t.Parallel()
		s := newInitSetup(t, code, in)
		s.extraEnv = []string{"KEYGATE_LOG_LEVEL=debug"}
		if _, stderr, c := s.run(t); c != 0 {
			t.Fatalf("exit %d: %s", c, stderr)
		}
		s.wantArgs = append(s.wantArgs, "--log-level", "debug")
		s.checkEntry(t, s.read(t), "keygate", nil)
	})

	bad := []struct {
		name string
		args []string
		want string
	}{
		{"unknown client", []string{"--client", "emacs"}, "--client must be one of claude-desktop, claude-code, cursor, vscode"},
		{"scope the client lacks", []string{"--client", "claude-desktop", "--scope", "project"}, "--scope: Claude Desktop has only a user configuration"},
		{"unknown scope", []string{"--client", "cursor", "--scope", "global"}, "--scope must be user or project for Cursor"},
		{"empty name", []string{"--client", "cursor", "--name", " "}, "--name must be 1 to 64 characters"},
		{"a directory for a file", []string{"--client", "cursor", "--config", "."}, "is not a regular file"},
		{"embed without a token", []string{"--client", "cursor", "--embed-token"}, "--embed-token: KEYGATE_TOKEN is not set"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			args := append(append([]string{"init"}, tc.args...), in.args()...)
			_, stderr, c := keygate(t, []string{"HOME=" + home}, "", args...)
			if c != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q, want %q", c, stderr, tc.want)
			}
			if entries, _ := os.ReadDir(home); len(entries) != 0 {
				t.Errorf("a refused init wrote into the home directory: %v", entries)
			}
		})
	}
}

// TestInitEmbedTokenAndDryRun: the token goes into the client's file only
// when asked, then with mode 0600 and a warning; it is never printed; a
// dry run writes nothing.
func TestInitEmbedTokenAndDryRun(t *testing.T) {
	t.Parallel()
	in := prepared(t)
	tok := in.token(t)
	cursor := initClients[2]

	t.Run("dry run", func(t *testing.T) {
		t.Parallel()
		s := newInitSetup(t, cursor, in)
		stdout, stderr, c := s.run(t, "--dry-run", "--embed-token")
		if c != 0 {
			t.Fatalf("exit %d: %s", c, stderr)
		}
		if !strings.Contains(stdout, "would create "+s.config) || !strings.Contains(stdout, "dry run: nothing was written") ||
			!strings.Contains(stdout, `"--env-file"`) || !strings.Contains(stdout, "kg_pat_…"+tok[len(tok)-4:]) {
			t.Errorf("stdout: %s", stdout)
		}
		if strings.Contains(stdout+stderr, tok) {
			t.Error("the dry run printed the token")
		}
		if _, err := os.Stat(s.config); !os.IsNotExist(err) {
			t.Errorf("the dry run wrote %s: %v", s.config, err)
		}
	})
	t.Run("dry run of an existing file", func(t *testing.T) {
		t.Parallel()
		s := newInitSetup(t, cursor, in)
		old := existing("mcpServers")
		s.write(t, old, 0o644)
		stdout, _, c := s.run(t, "--dry-run")
		if c != 0 || !strings.Contains(stdout, "would add this entry to "+s.config) || s.read(t) != old || len(s.backups(t)) != 0 {
			t.Errorf("exit %d: %s", c, stdout)
		}
	})
	t.Run("embed token", func(t *testing.T) {
		t.Parallel()
		s := newInitSetup(t, cursor, in)
		s.write(t, existing("mcpServers"), 0o644)
		stdout, stderr, c := s.run(t, "--embed-token")
		if c != 0 {
			t.Fatalf("exit %d: %s", c, stderr)
		}
		if !strings.Contains(stderr, "now holds keygate's token") || !strings.Contains(stderr, "mode 0600") {
			t.Errorf("no warning: %s", stderr)
		}
		if strings.Contains(stdout+stderr, tok) {
			t.Error("init printed the token")
		}
		s.checkEntry(t, s.read(t), "keygate", map[string]any{"KEYGATE_TOKEN": tok})
		if m := mode(t, s.config); m != 0o600 {
			t.Errorf("mode %v, want 0600", m)
		}
		stdout, _, c = s.run(t, "--embed-token")
		if c != 0 || !strings.Contains(stdout, "nothing changed") || len(s.backups(t)) != 1 {
			t.Errorf("second run: exit %d: %s", c, stdout)
		}
		// Without --embed-token the token leaves the client's file.
		if _, stderr, c := s.run(t); c != 0 {
			t.Fatalf("exit %d: %s", c, stderr)
		}
		if text := s.read(t); strings.Contains(text, tok) {
			t.Errorf("the token stayed in the client's config:\n%s", text)
		}
	})
}
