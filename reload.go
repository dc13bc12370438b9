package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/tools"
)

// reloadDebounce lets an editor finish writing (truncate, write, rename)
// before keygate reads the file.
const reloadDebounce = 250 * time.Millisecond

// reloader re-reads the env file when it changes or on SIGHUP, and applies
// what changed. A reload that fails (a file that does not parse, a token
// that does not verify) keeps the running configuration and logs why.
type reloader struct {
	envFile string
	logger  *slog.Logger
	apply   func(ctx context.Context, vars map[string]string) error
}

func (r *reloader) run(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var events <-chan fsnotify.Event
	var errs <-chan error
	if r.envFile != "" {
		w, err := fsnotify.NewWatcher()
		if err == nil {
			// Watch the directory: editors and keygate itself replace the
			// file by renaming a new one over it.
			err = w.Add(filepath.Dir(r.envFile))
		}
		if err != nil {
			r.logger.Warn("cannot watch the env file; reload with SIGHUP", "env_file", r.envFile, "err", err)
		} else {
			defer w.Close()
			events, errs = w.Events, w.Errors
		}
	}
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload(ctx, "SIGHUP")
		case ev := <-events:
			if filepath.Clean(ev.Name) == filepath.Clean(r.envFile) && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
				debounce = time.After(reloadDebounce)
			}
		case err := <-errs:
			r.logger.Warn("env file watcher", "err", err)
		case <-debounce:
			debounce = nil
			r.reload(ctx, "env file changed")
		}
	}
}

func (r *reloader) reload(ctx context.Context, why string) {
	vars, err := auth.ReadEnvFile(r.envFile)
	if err == nil {
		err = r.apply(ctx, vars)
	}
	if errors.Is(err, errNothingChanged) {
		r.logger.Debug("env file reread; nothing keygate uses changed", "trigger", why)
		return
	}
	if err != nil {
		r.logger.Error("reload failed; keeping the current configuration", "trigger", why, "env_file", r.envFile, "err", err)
		return
	}
	r.logger.Info("reloaded the env file", "trigger", why, "env_file", r.envFile)
}

var errNothingChanged = errors.New("nothing changed")

// tokenReload applies a new KEYGATE_TOKEN from the env file to a stdio
// server: verified first, then swapped in, and the client told when the set
// of tools it may see changed. A token set in the real environment wins over
// the file, as at start-up, so the file's value is then ignored.
func tokenReload(deps *tools.Deps, served []tools.ServerTool, s *server.MCPServer, redactor *auth.Redactor, logger *slog.Logger) func(context.Context, map[string]string) error {
	return func(ctx context.Context, vars map[string]string) error {
		if v, ok := os.LookupEnv(tools.EnvTokenVar); ok && v != "" {
			logger.Debug("KEYGATE_TOKEN is set in the environment, which wins over the env file")
			return errNothingChanged
		}
		cur := deps.Identity.Process()
		tok := vars[tools.EnvTokenVar]
		if tok == cur.Secret.Reveal() {
			return errNothingChanged
		}
		if tok == "" {
			return fmt.Errorf("%s was removed from the env file; keygate keeps the token it has (restart to run without one)", tools.EnvTokenVar)
		}
		redactor.Add(tok)
		next, err := deps.Identity.Verify(ctx, tok)
		if err != nil {
			return fmt.Errorf("the new %s does not verify (revoked, expired or mistyped)", tools.EnvTokenVar)
		}
		var before []string
		if prev, err := deps.Identity.Verify(ctx, cur.Secret.Reveal()); err == nil {
			before = tools.VisibleTools(served, &prev)
		} else {
			before = tools.VisibleTools(served, nil)
		}
		deps.Identity.SetProcess(auth.Credential{Secret: auth.NewSecret(tok), Source: auth.SourceEnvFile, Var: tools.EnvTokenVar})
		after := tools.VisibleTools(served, &next)
		logger.Info("switched to a new KEYGATE_TOKEN", "key_id", next.KeyID, "scopes", next.Scopes.Strings())
		if !slices.Equal(before, after) {
			s.SendNotificationToAllClients("notifications/tools/list_changed", nil)
		}
		return nil
	}
}
