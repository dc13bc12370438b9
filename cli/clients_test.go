package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestClientPaths: each client's file per OS and scope, from the
// environment keygate was given (docs/clients.md lists the sources).
func TestClientPaths(t *testing.T) {
	env := func(goos string, kv ...string) pathEnv {
		m := map[string]string{}
		for _, e := range kv {
			k, v, _ := strings.Cut(e, "=")
			m[k] = v
		}
		return pathEnv{goos: goos, project: "/proj", lookup: func(n string) (string, bool) { v, ok := m[n]; return v, ok }}
	}
	mac := env("darwin", "HOME=/Users/a")
	linux := env("linux", "HOME=/home/a")
	xdg := env("linux", "HOME=/home/a", "XDG_CONFIG_HOME=/cfg")
	appData := t.TempDir() // absolute on every OS, as APPDATA is on Windows
	win := env("windows", "USERPROFILE="+t.TempDir(), "APPDATA="+appData)
	tests := []struct {
		client, scope string
		env           pathEnv
		want          string
	}{
		{"claude-desktop", scopeUser, mac, "/Users/a/Library/Application Support/Claude/claude_desktop_config.json"},
		{"claude-desktop", scopeUser, win, filepath.Join(appData, "Claude", "claude_desktop_config.json")},
		{"claude-desktop", scopeUser, linux, "/home/a/.config/Claude/claude_desktop_config.json"},
		{"claude-desktop", scopeUser, xdg, "/cfg/Claude/claude_desktop_config.json"},
		{"claude-code", scopeUser, mac, "/Users/a/.claude.json"},
		{"claude-code", scopeProject, mac, "/proj/.mcp.json"},
		{"cursor", scopeUser, linux, "/home/a/.cursor/mcp.json"},
		{"cursor", scopeProject, linux, "/proj/.cursor/mcp.json"},
		{"vscode", scopeProject, win, filepath.Join("/proj", ".vscode", "mcp.json")},
		{"vscode", scopeUser, mac, "/Users/a/Library/Application Support/Code/User/mcp.json"},
		{"vscode", scopeUser, linux, "/home/a/.config/Code/User/mcp.json"},
	}
	for _, tc := range tests {
		c, err := findClient(tc.client)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.path(tc.scope, tc.env)
		if err != nil || got != tc.want {
			t.Errorf("%s %s on %s: %q, %v; want %q", tc.client, tc.scope, tc.env.goos, got, err, tc.want)
		}
	}
	if _, err := mustClient(t, "cursor").path(scopeUser, env("linux")); err == nil || !strings.Contains(err.Error(), "HOME is not set") || !strings.Contains(err.Error(), "--config PATH") {
		t.Errorf("without HOME: %v", err)
	}
}

func mustClient(t *testing.T, id string) mcpClient {
	t.Helper()
	c, err := findClient(id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClientDefaultScope: the first scope listed is the default, and
// VS Code's is the project's .vscode/mcp.json.
func TestClientDefaultScope(t *testing.T) {
	for id, want := range map[string]string{"claude-desktop": scopeUser, "claude-code": scopeUser, "cursor": scopeUser, "vscode": scopeProject} {
		if got, err := mustClient(t, id).scope(""); err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", id, got, err, want)
		}
	}
}
