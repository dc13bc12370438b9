package app

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

	"github.com/keygate/keygate/auth"
)

// reloadDebounce lets an editor finish writing (truncate, write, rename)
// before keygate reads the file.
const reloadDebounce = 250 * time.Millisecond

// ErrNothingChanged is what Reload returns when nothing keygate uses changed.
var ErrNothingChanged = errors.New("nothing changed")

// reloader re-reads the env file when it changes or on SIGHUP, and applies
// what changed. A reload that fails (a file that does not parse, a token
// that does not verify) keeps the running configuration and logs why.
type reloader struct {
	envFile string
	logger  *slog.Logger
	apply   func(ctx context.Context) error
	// ready is closed once the watcher and the SIGHUP handler are in
	// place: a change made after it is seen.
	ready chan struct{}
}

func newReloader(envFile string, logger *slog.Logger, apply func(context.Context) error) *reloader {
	return &reloader{envFile: envFile, logger: logger, apply: apply, ready: make(chan struct{})}
}

// watch watches the env file's directory: editors and keygate itself
// replace the file by renaming a new one over it. Without a watcher, SIGHUP
// still reloads.
func (r *reloader) watch() (events <-chan fsnotify.Event, errs <-chan error, stop func()) {
	stop = func() {}
	if r.envFile == "" {
		return nil, nil, stop
	}
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(filepath.Dir(r.envFile)); err != nil {
			_ = w.Close()
		}
	}
	if err != nil {
		r.logger.Warn("cannot watch the env file; reload with SIGHUP", "env_file", r.envFile, "err", err)
		return nil, nil, stop
	}
	return w.Events, w.Errors, func() { _ = w.Close() }
}

func (r *reloader) run(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	events, errs, stop := r.watch()
	defer stop()
	close(r.ready)

	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload(ctx, "SIGHUP")
		case ev := <-events:
			if r.changesEnvFile(ev) {
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

// changesEnvFile reports whether a watched event may have changed the env
// file's content: a write, or a file created or renamed over it. Other
// files in its directory are no concern.
func (r *reloader) changesEnvFile(ev fsnotify.Event) bool {
	return filepath.Clean(ev.Name) == filepath.Clean(r.envFile) && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0
}

func (r *reloader) reload(ctx context.Context, why string) {
	switch err := r.apply(ctx); {
	case errors.Is(err, ErrNothingChanged):
		r.logger.Debug("env file reread; nothing keygate uses changed", "trigger", why)
	case err != nil:
		r.logger.Error("reload failed; keeping the current configuration", "trigger", why, "env_file", r.envFile, "err", err)
	default:
		r.logger.Info("reloaded the env file", "trigger", why, "env_file", r.envFile)
	}
}

// Reload rereads the env file and applies what changed: the remote
// providers whose variables changed are rebuilt (the others keep their
// clients and sessions), and over stdio a new KEYGATE_TOKEN is switched to.
// It returns an error wrapping ErrNothingChanged when nothing keygate uses
// changed; on any other error the running configuration stays.
func (a *App) Reload(ctx context.Context) error {
	vars, err := auth.ReadEnvFile(a.cfg.EnvFile)
	if err != nil {
		return fmt.Errorf("env file %s: %w", a.cfg.EnvFile, err)
	}
	results := []error{a.reloadRemotes(a.cfg.Env.WithFile(vars))}
	if a.cfg.Transport == "stdio" {
		results = append(results, a.reloadToken(ctx, vars))
	}
	changed := false
	var errs []error
	for _, err := range results {
		switch {
		case errors.Is(err, ErrNothingChanged):
		case err != nil:
			errs = append(errs, err)
		default:
			changed = true
		}
	}
	if len(errs) == 0 && !changed {
		return ErrNothingChanged
	}
	return errors.Join(errs...)
}

// reloadToken applies a new KEYGATE_TOKEN from the env file to a stdio
// server: verified first, then swapped in, and the client told when the set
// of tools it may see changed. A token set in the real environment wins over
// the file, as at start-up, so the file's value is then ignored.
func (a *App) reloadToken(ctx context.Context, vars map[string]string) error {
	if _, ok := a.cfg.Env.Process(auth.TokenVar); ok {
		a.logger.Debug("KEYGATE_TOKEN is set in the environment, which wins over the env file")
		return ErrNothingChanged
	}
	cur := a.ident.Process()
	tok := vars[auth.TokenVar]
	if tok == cur.Secret.Reveal() {
		return ErrNothingChanged
	}
	if tok == "" {
		return fmt.Errorf("%s was removed from the env file; keygate keeps the token it has (restart to run without one)", auth.TokenVar)
	}
	a.redactor.Add(tok)
	next, err := a.ident.Verify(ctx, tok)
	if err != nil {
		return fmt.Errorf("the new %s does not verify (revoked, expired or mistyped)", auth.TokenVar)
	}
	var before []string
	if prev, err := a.ident.Verify(ctx, cur.Secret.Reveal()); err == nil {
		before = a.mcp.visibleTools(&prev)
	} else {
		before = a.mcp.visibleTools(nil)
	}
	a.ident.SetProcess(auth.Credential{Secret: auth.NewSecret(tok), Source: auth.SourceEnvFile, Var: auth.TokenVar})
	after := a.mcp.visibleTools(&next)
	a.logger.Info("switched to a new KEYGATE_TOKEN", "key_id", next.KeyID, "scopes", next.Scopes.Strings())
	if !slices.Equal(before, after) {
		a.mcp.toolsChanged()
	}
	return nil
}
