package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// The MCP clients keygate init configures. Where each keeps its config,
// under which key, and what the client's docs say about them, with
// sources and what is not confirmed: docs/clients.md.

// Scopes of a client's config.
const (
	scopeUser    = "user"
	scopeProject = "project"
)

// mcpClient is one client's MCP configuration.
type mcpClient struct {
	id    string // the --client value
	title string
	// key holds the servers at the top level of the file.
	key string
	// jsonc: the client reads comments and trailing commas (VS Code).
	jsonc bool
	// stdioType: entries carry "type": "stdio".
	stdioType bool
	// paths gives the config file of each scope the client has; the first
	// scope listed is the default.
	scopes []string
	path   func(scope string, env pathEnv) (string, error)
	// next is what to do once the file is written.
	next func(scope string) string
}

// pathEnv is what locating a config file needs: the OS, the user's home
// and app-data directories (from the environment keygate was given), and
// the project directory.
type pathEnv struct {
	goos    string
	lookup  func(string) (string, bool)
	project string // absolute
}

func (e pathEnv) get(name string) string {
	v, ok := e.lookup(name)
	if !ok {
		return ""
	}
	return strings.TrimSpace(v)
}

// home is the user's home directory: HOME, or USERPROFILE on Windows.
func (e pathEnv) home() (string, error) {
	name := "HOME"
	if e.goos == "windows" {
		name = "USERPROFILE"
	}
	h := e.get(name)
	if h == "" || !filepath.IsAbs(h) {
		return "", fmt.Errorf("cannot find your home directory: %s is not set to an absolute path; set it, or give the file with --config PATH", name)
	}
	return h, nil
}

// appSupport is where desktop apps keep their settings: Application
// Support on macOS, APPDATA on Windows, XDG_CONFIG_HOME (else ~/.config)
// elsewhere.
func (e pathEnv) appSupport() (string, error) {
	switch e.goos {
	case "windows":
		if d := e.get("APPDATA"); d != "" && filepath.IsAbs(d) {
			return d, nil
		}
		return "", errors.New("cannot find your application data directory: APPDATA is not set; set it, or give the file with --config PATH")
	case "darwin":
		h, err := e.home()
		return filepath.Join(h, "Library", "Application Support"), err
	}
	if d := e.get("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return d, nil
	}
	h, err := e.home()
	return filepath.Join(h, ".config"), err
}

func inHome(e pathEnv, elem ...string) (string, error) {
	h, err := e.home()
	if err != nil {
		return "", err
	}
	return filepath.Join(append([]string{h}, elem...)...), nil
}

func inAppSupport(e pathEnv, elem ...string) (string, error) {
	d, err := e.appSupport()
	if err != nil {
		return "", err
	}
	return filepath.Join(append([]string{d}, elem...)...), nil
}

var mcpClients = []mcpClient{
	{
		id: "claude-desktop", title: "Claude Desktop", key: "mcpServers", scopes: []string{scopeUser},
		path: func(_ string, e pathEnv) (string, error) {
			return inAppSupport(e, "Claude", "claude_desktop_config.json")
		},
		next: func(string) string {
			return "quit Claude Desktop completely (closing its window is not enough) and start it again"
		},
	},
	{
		id: "claude-code", title: "Claude Code", key: "mcpServers", stdioType: true, scopes: []string{scopeUser, scopeProject},
		path: func(scope string, e pathEnv) (string, error) {
			if scope == scopeProject {
				return filepath.Join(e.project, ".mcp.json"), nil
			}
			return inHome(e, ".claude.json")
		},
		next: func(scope string) string {
			if scope == scopeProject {
				return "start a new Claude Code session in the project and approve the keygate server when asked; /mcp shows it"
			}
			return "start a new Claude Code session; /mcp shows keygate"
		},
	},
	{
		id: "cursor", title: "Cursor", key: "mcpServers", scopes: []string{scopeUser, scopeProject},
		path: func(scope string, e pathEnv) (string, error) {
			if scope == scopeProject {
				return filepath.Join(e.project, ".cursor", "mcp.json"), nil
			}
			return inHome(e, ".cursor", "mcp.json")
		},
		next: func(string) string {
			return "restart Cursor, then check that keygate is enabled in Cursor's MCP settings"
		},
	},
	{
		id: "vscode", title: "VS Code", key: "servers", jsonc: true, stdioType: true, scopes: []string{scopeProject, scopeUser},
		path: func(scope string, e pathEnv) (string, error) {
			if scope == scopeUser {
				return inAppSupport(e, "Code", "User", "mcp.json")
			}
			return filepath.Join(e.project, ".vscode", "mcp.json"), nil
		},
		next: func(string) string {
			return `in VS Code, run "MCP: List Servers" and start keygate (VS Code asks you to trust it first)`
		},
	},
}

func clientIDs() []string {
	out := make([]string, len(mcpClients))
	for i, c := range mcpClients {
		out[i] = c.id
	}
	return out
}

func findClient(id string) (mcpClient, error) {
	for _, c := range mcpClients {
		if c.id == id {
			return c, nil
		}
	}
	return mcpClient{}, fmt.Errorf("--client must be one of %s", strings.Join(clientIDs(), ", "))
}

// scope is the scope asked for, or the client's default.
func (c mcpClient) scope(asked string) (string, error) {
	if asked == "" {
		return c.scopes[0], nil
	}
	if !slices.Contains(c.scopes, asked) {
		if len(c.scopes) == 1 {
			return "", fmt.Errorf("--scope: %s has only a %s configuration; leave --scope out, or give the file with --config PATH", c.title, c.scopes[0])
		}
		return "", fmt.Errorf("--scope must be %s for %s", strings.Join(c.scopes, " or "), c.title)
	}
	return asked, nil
}

// mcpEntry is the server entry keygate writes, in the order clients show
// their own examples.
type mcpEntry struct {
	Type    string            `json:"type,omitempty"`
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env,omitempty"`
}

func defaultGOOS() string { return runtime.GOOS }
