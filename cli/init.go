package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/alecthomas/kong"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/textsafe"
)

// InitCmd adds keygate to an MCP client's configuration.
type InitCmd struct {
	config.Common
	Client     string `required:"" placeholder:"CLIENT" help:"The client to configure: claude-desktop, claude-code, cursor or vscode."`
	Scope      string `placeholder:"user|project" help:"Which of the client's configurations: user (all your projects) or project (--project's only). Default: user; project for vscode."`
	ConfigFile string `name:"config" placeholder:"PATH" help:"Write this file instead of the client's own (in the client's format)."`
	Project    string `default:"." placeholder:"DIR" help:"The project a project-scope configuration belongs to."`
	Name       string `default:"keygate" placeholder:"NAME" help:"The server's name in the client's configuration."`
	EmbedToken bool   `name:"embed-token" help:"Also put KEYGATE_TOKEN in the client's configuration, which then holds a secret (mode 0600). By default the token stays in the env file, which keygate reads."`
	DryRun     bool   `name:"dry-run" help:"Print the entry and the file it would go to, and write nothing."`
}

// newConfigMode is the mode of a config file keygate creates: it holds
// paths, no secret, unless --embed-token.
const newConfigMode fs.FileMode = 0o644

func (c *InitCmd) Run(rt *invocation, kctx *kong.Context) error {
	plan, err := c.plan(rt, kctx)
	if err != nil {
		return err
	}
	file, err := readConfig(plan.path)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	next, changed, err := mergeEntry(file.src, plan.client, c.Name, plan.entry)
	if err != nil {
		return fmt.Errorf("init: %s: %w; keygate init changed nothing: fix the file, or move it aside and run keygate init again", plan.path, err)
	}
	switch {
	case c.DryRun:
		return c.printDryRun(rt, plan.path, plan.where, plan.entry, file, changed)
	case !changed:
		return c.keep(rt, plan, file)
	}
	return c.write(rt, plan, file, next)
}

// initPlan is what keygate init is to write, and where.
type initPlan struct {
	client mcpClient
	scope  string
	cfg    config.Config
	entry  mcpEntry
	path   string
	where  string // the configuration path belongs to, as told to the user
}

// plan checks the arguments and works out the entry and the file it goes
// in.
func (c *InitCmd) plan(rt *invocation, kctx *kong.Context) (initPlan, error) {
	client, err := findClient(c.Client)
	if err != nil {
		return initPlan{}, fmt.Errorf("init: %w", err)
	}
	scope, err := client.scope(strings.TrimSpace(c.Scope))
	if err != nil {
		return initPlan{}, fmt.Errorf("init: %w", err)
	}
	if err := checkServerName(c.Name); err != nil {
		return initPlan{}, fmt.Errorf("init: %w", err)
	}
	env, err := rt.env(c.EnvFile)
	if err != nil {
		return initPlan{}, err
	}
	cfg, err := c.Common.Config(env)
	if err != nil {
		return initPlan{}, err
	}
	entry, err := c.entry(client, cfg, settingsOf(kctx, env))
	if err != nil {
		return initPlan{}, fmt.Errorf("init: %w", err)
	}
	path, err := c.configPath(client, scope, rt.resolver.lookup)
	if err != nil {
		return initPlan{}, fmt.Errorf("init: %w", err)
	}
	where := fmt.Sprintf("%s, %s configuration", client.title, scope)
	if c.ConfigFile != "" {
		where = client.title + " format"
	}
	return initPlan{client: client, scope: scope, cfg: cfg, entry: entry, path: path, where: where}, nil
}

// keep reports a file that already holds the entry, and makes it private
// if it is to hold the token but others may read it.
func (c *InitCmd) keep(rt *invocation, plan initPlan, file configFile) error {
	fmt.Fprintf(rt.Out, "%s already has this %q entry (%s); nothing changed\n", textsafe.Escape(plan.path), c.Name, plan.where)
	if c.EmbedToken && file.exists && file.mode.Perm()&0o077 != 0 {
		if err := os.Chmod(plan.path, 0o600); err != nil {
			return fmt.Errorf("init: %s holds keygate's token but is readable by others, and cannot be made private: %w", plan.path, err)
		}
		fmt.Fprintf(rt.Out, "%s holds keygate's token: made it mode 0600\n", textsafe.Escape(plan.path))
	}
	return nil
}

// write replaces the file with next, keeping a copy of what it held, and
// says what was done and what to do next.
func (c *InitCmd) write(rt *invocation, plan initPlan, file configFile, next []byte) error {
	mode := newConfigMode
	if file.exists {
		mode = file.mode.Perm()
	}
	if c.EmbedToken {
		mode = 0o600
	}
	backup := ""
	if file.exists && len(file.src) > 0 {
		var err error
		if backup, err = writeBackup(plan.path, file.src, time.Now()); err != nil {
			return fmt.Errorf("init: keeping a copy of %s before changing it: %w; nothing changed", plan.path, err)
		}
	}
	if err := replaceFile(plan.path, next, mode, file); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	verb := "added"
	if file.hadEntry(plan.client, c.Name) {
		verb = "replaced"
	}
	fmt.Fprintf(rt.Out, "%s the %q entry in %s (%s)\n", verb, c.Name, textsafe.Escape(plan.path), plan.where)
	if backup != "" {
		fmt.Fprintf(rt.Out, "the previous file is kept as %s\n", textsafe.Escape(backup))
	}
	c.warnings(rt, plan.cfg, plan.path)
	fmt.Fprintf(rt.Out, "next: %s\n", plan.client.next(plan.scope))
	return nil
}

// checkServerName wants a name a client can show and a person can type.
func checkServerName(name string) error {
	if strings.TrimSpace(name) == "" || len(name) > 64 {
		return errors.New("--name must be 1 to 64 characters, e.g. keygate")
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return errors.New("--name must be printable characters only, e.g. keygate")
		}
	}
	return nil
}

// entry is the server entry: this binary, serving over stdio with the env
// file, and the settings given on the command line or in the process
// environment, which the client does not pass on. Settings from the env
// file are not repeated: keygate reads the env file itself.
func (c *InitCmd) entry(client mcpClient, cfg config.Config, settings []setting) (mcpEntry, error) {
	if cfg.EnvFile == "" {
		return mcpEntry{}, errors.New("--env-file must not be empty: the client starts keygate in a directory of its own choosing, so keygate needs its env file's path")
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return mcpEntry{}, fmt.Errorf("cannot tell where this keygate binary is (%w); run keygate init from the installed binary", err)
	}
	e := mcpEntry{Command: exe, Args: []string{"serve", "--env-file", cfg.EnvFile}}
	if client.stdioType {
		e.Type = "stdio"
	}
	for _, s := range settings {
		if s.flag.Name == "env-file" || (s.origin != fromFlag && s.origin != fromEnv) || s.value == s.flag.Default {
			continue
		}
		v := s.value
		if s.flag.Name == "store" || s.flag.Name == "audit-file" {
			if abs, err := filepath.Abs(strings.TrimSpace(v)); err == nil {
				v = abs
			}
		}
		e.Args = append(e.Args, "--"+s.flag.Name, v)
	}
	if c.EmbedToken {
		tok := cfg.Token.Secret.Reveal()
		switch {
		case tok == "":
			return mcpEntry{}, fmt.Errorf("--embed-token: %s is not set in the environment or in %s; create a token first (keygate token create --name NAME --scopes LIST --env-var %s) or leave --embed-token out", auth.TokenVar, cfg.EnvFile, auth.TokenVar)
		case !auth.LooksLikeToken(tok):
			return mcpEntry{}, fmt.Errorf("--embed-token: %s (from %s) is not shaped like a keygate token (kg_pat_...); fix it before embedding it", auth.TokenVar, cfg.Token.Source)
		}
		e.Env = map[string]string{auth.TokenVar: tok}
	}
	return e, nil
}

// configPath is --config, else the client's file for the scope.
func (c *InitCmd) configPath(client mcpClient, scope string, lookup func(string) (string, bool)) (string, error) {
	if c.ConfigFile != "" {
		p, err := filepath.Abs(c.ConfigFile)
		if err != nil {
			return "", fmt.Errorf("--config: %w", err)
		}
		return p, nil
	}
	project, err := filepath.Abs(c.Project)
	if err != nil {
		return "", fmt.Errorf("--project: %w", err)
	}
	if lookup == nil {
		lookup = os.LookupEnv
	}
	return client.path(scope, pathEnv{goos: defaultGOOS(), lookup: lookup, project: project})
}

// configFile is a client's config as found: its bytes (so that a change
// made meanwhile by someone else is noticed) and its mode.
type configFile struct {
	src    []byte
	exists bool
	mode   fs.FileMode
}

// readConfig reads the config at path, following a symlink to the file it
// names (a dotfiles setup links it; replacing the link would cut it off).
func readConfig(path string) (configFile, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, lerr := os.Lstat(path); lerr == nil {
			return configFile{}, fmt.Errorf("%s is a symlink to a file that does not exist; fix the link or give --config PATH", path)
		}
		return configFile{}, nil
	case err != nil:
		return configFile{}, fmt.Errorf("cannot read %s (%w); fix its permissions, or give another file with --config PATH", path, err)
	case !fi.Mode().IsRegular():
		return configFile{}, fmt.Errorf("%s is not a regular file; give the client's config file with --config PATH", path)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return configFile{}, fmt.Errorf("cannot read %s (%w); fix its permissions, or give another file with --config PATH", path, err)
	}
	return configFile{src: src, exists: true, mode: fi.Mode()}, nil
}

// hadEntry reports whether the file held an entry called name.
func (f configFile) hadEntry(client mcpClient, name string) bool {
	if len(bytes.TrimSpace(f.src)) == 0 {
		return false
	}
	doc, err := parseJSONDoc(f.src, client.jsonc)
	if err != nil {
		return false
	}
	servers, err := doc.member(doc.root, client.key)
	if err != nil || servers == nil || servers.value.kind != '{' {
		return false
	}
	m, err := doc.member(servers.value, name)
	return err == nil && m != nil
}

// mergeEntry returns src with the server entry name set to e under the
// client's key, and whether that changes anything. Nothing else in the
// file changes.
func mergeEntry(src []byte, client mcpClient, name string, e mcpEntry) ([]byte, bool, error) {
	if len(bytes.TrimSpace(src)) == 0 {
		src = []byte("{}\n")
	}
	doc, err := parseJSONDoc(src, client.jsonc)
	if err != nil {
		what := "not valid JSON"
		if client.jsonc {
			what = "not valid JSON (with comments)"
		}
		return nil, false, fmt.Errorf("%s (%w)", what, err)
	}
	servers, err := doc.member(doc.root, client.key)
	if err != nil {
		return nil, false, err
	}
	var next []byte
	switch {
	case servers == nil:
		next, err = doc.setMember(doc.root, client.key, map[string]mcpEntry{name: e})
	case servers.value.kind != '{':
		return nil, false, fmt.Errorf("%q is not a JSON object", client.key)
	default:
		old, ferr := doc.member(servers.value, name)
		if ferr != nil {
			return nil, false, ferr
		}
		if old != nil && doc.sameJSON(old.value, e) {
			return src, false, nil
		}
		next, err = doc.setMember(servers.value, name, e)
	}
	if err != nil {
		return nil, false, err
	}
	if err := checkMerged(next, client, name, e); err != nil {
		return nil, false, err
	}
	return next, true, nil
}

// checkMerged parses the result once more: a file keygate writes must
// hold exactly the entry it meant to write.
func checkMerged(next []byte, client mcpClient, name string, e mcpEntry) error {
	doc, err := parseJSONDoc(next, client.jsonc)
	var servers, m *jsonMember
	if err == nil {
		servers, err = doc.member(doc.root, client.key)
	}
	if err == nil && servers != nil {
		m, err = doc.member(servers.value, name)
	}
	switch {
	case err != nil:
		return fmt.Errorf("keygate could not merge its entry into this file's layout (%w); please report it", err)
	case m == nil || !doc.sameJSON(m.value, e):
		return errors.New("keygate could not merge its entry into this file's layout (it does not read back as written); please report it")
	}
	return nil
}

// writeBackup keeps a copy of the file before keygate changes it, mode
// 0600 (the file may hold other servers' secrets), never overwriting one.
func writeBackup(path string, src []byte, now time.Time) (string, error) {
	base := path + ".bak-" + now.UTC().Format("20060102T150405Z")
	for i := 0; i < 100; i++ {
		name := base
		if i > 0 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		_, werr := f.Write(src)
		serr := f.Sync()
		if err := errors.Join(werr, serr, f.Close()); err != nil {
			os.Remove(name)
			return "", err
		}
		return name, nil
	}
	return "", fmt.Errorf("%s.bak-* backups for this second already exist", path)
}

// replaceFile writes data to path atomically: a temporary file in the same
// directory, synced, then renamed over it. A file that changed since it
// was read (the client rewrote it) is left alone.
func replaceFile(path string, data []byte, mode fs.FileMode, read configFile) error {
	target := path
	if read.exists {
		if resolved, err := filepath.EvalSymlinks(path); err == nil {
			target = resolved
		}
	}
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".keygate-*")
	if err != nil {
		return fmt.Errorf("cannot write in %s (%w); make it writable, or give another file with --config PATH", dir, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	_, werr := tmp.Write(data)
	if err := errors.Join(werr, tmp.Chmod(mode), tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("writing %s: %w", target, err)
	}
	if err := unchangedSince(target, read); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("replacing %s: %w", target, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the rename is durable once the directory is; a failure here loses nothing already written
		d.Close()
	}
	return nil
}

// unchangedSince checks that path still holds what was read.
func unchangedSince(path string, read configFile) error {
	src, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !read.exists:
		return nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("reading %s again: %w", path, err)
	case errors.Is(err, fs.ErrNotExist) || !bytes.Equal(src, read.src):
		return fmt.Errorf("%s changed while keygate init was writing it (is the client running and saving it?); nothing was written: run keygate init again", path)
	}
	return nil
}

// printDryRun shows what would be written, with the token masked.
func (c *InitCmd) printDryRun(rt *invocation, path, where string, e mcpEntry, file configFile, changed bool) error {
	if tok, ok := e.Env[auth.TokenVar]; ok {
		e.Env = map[string]string{auth.TokenVar: auth.Mask(tok)}
	}
	text, err := encodeJSON(map[string]mcpEntry{c.Name: e}, "", layout{unit: "  ", newline: "\n"})
	if err != nil {
		return err
	}
	action := "would add this entry to"
	switch {
	case !changed:
		action = "already has this entry (nothing would change):"
	case !file.exists:
		action = "would create"
	}
	if !changed {
		fmt.Fprintf(rt.Out, "%s %s (%s)\n", textsafe.Escape(path), action, where)
	} else {
		fmt.Fprintf(rt.Out, "%s %s (%s):\n", action, textsafe.Escape(path), where)
	}
	_, err = fmt.Fprintf(rt.Out, "%s\ndry run: nothing was written\n", text)
	return err
}

// warnings say what keeps the entry from working as written, or what it
// costs.
func (c *InitCmd) warnings(rt *invocation, cfg config.Config, path string) {
	if c.EmbedToken {
		fmt.Fprintf(rt.Err, "warning: %s now holds keygate's token (%s): anyone who can read it can act as that token. It is mode 0600. A rotation cannot update it there: run keygate init again after rotating, or leave --embed-token out and keep the token in the env file.\n",
			textsafe.Escape(path), cfg.Token.Secret.Masked())
		return
	}
	if strings.TrimSpace(cfg.Env.File[auth.TokenVar]) != "" {
		return
	}
	if noStoreFile(cfg) {
		fmt.Fprintf(rt.Out, "note: there is no store yet; keygate's first run creates it and writes an admin token to %s\n", textsafe.Escape(cfg.EnvFile))
		return
	}
	if cfg.Token.Source == auth.SourceEnv {
		fmt.Fprintf(rt.Err, "warning: %s is set in your environment, which the client's keygate will not see; put it in %s (or use --embed-token)\n",
			auth.TokenVar, textsafe.Escape(cfg.EnvFile))
		return
	}
	fmt.Fprintf(rt.Err, "warning: %s is not set in %s, so the client's keygate will have no token; create one with: keygate token create --name NAME --scopes LIST --env-var %s\n",
		auth.TokenVar, textsafe.Escape(cfg.EnvFile), auth.TokenVar)
}
