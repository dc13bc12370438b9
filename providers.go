package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/agrenting"
	"github.com/keygate/keygate/provider/cencori"
	"github.com/keygate/keygate/provider/cockpit"
	"github.com/keygate/keygate/provider/cosmic"
	"github.com/keygate/keygate/rotation"
	"github.com/keygate/keygate/tools"
)

// remote is a remote provider as main wires it in: content, a live view of
// its credentials, and the secrets it holds (for the redactor).
type remote interface {
	tools.ContentStore
	tools.Inspector
	Name() string
	Secrets() []string
}

// loadEnv is what a provider loader needs: the variables, where keygate
// writes credentials back (the env file), and where logs and secrets go.
type loadEnv struct {
	get      func(string) (string, string, bool)
	logger   *slog.Logger
	envFile  string
	redactor *auth.Redactor
	// rotationDir holds the rotation engine's journal, pending and lock
	// files, beside the store.
	rotationDir string
}

// remoteLoader builds one provider from the environment. configured is
// false when none of its credential variables is set.
type remoteLoader func(env loadEnv) (r remote, configured bool, err error)

// remoteLoaders are the providers keygate knows, in the order they are
// listed after local.
var remoteLoaders = []remoteLoader{
	func(env loadEnv) (remote, bool, error) {
		cfg, ok, err := cosmic.LoadConfig(env.get)
		if err != nil || !ok {
			return nil, ok, err
		}
		c, err := cosmic.New(cfg, cosmic.Options{Logger: env.logger.With("provider", cosmic.Name)})
		return c, true, err
	},
	func(env loadEnv) (remote, bool, error) {
		cfg, ok, err := cockpit.LoadConfig(env.get)
		if err != nil || !ok {
			return nil, ok, err
		}
		c, err := cockpit.New(cfg, cockpit.Options{Logger: env.logger.With("provider", cockpit.Name)})
		return c, true, err
	},
	func(env loadEnv) (remote, bool, error) {
		cfg, ok, err := cencori.LoadConfig(env.get)
		if err != nil || !ok {
			return nil, ok, err
		}
		c, err := cencori.New(cfg, cencori.Options{Logger: env.logger.With("provider", cencori.Name)})
		return c, true, err
	},
	func(env loadEnv) (remote, bool, error) {
		cfg, ok, err := agrenting.LoadConfig(env.get)
		if err != nil || !ok {
			return nil, ok, err
		}
		c, err := agrenting.New(cfg, agrenting.Options{Logger: env.logger.With("provider", agrenting.Name)})
		if err != nil {
			return nil, true, err
		}
		rotateAgrentingKey(c, cfg, env)
		return c, true, nil
	},
}

// rotateAgrentingKey lets keygate rotate its own Agrenting key through the
// rotation engine, which first settles a rotation a crash left unfinished.
// Agrenting revokes the old key as it issues the new one, so only a key
// kept in the env file, which the engine rewrites, can be rotated: without
// one, the client refuses and says how to fix it.
func rotateAgrentingKey(c *agrenting.Client, cfg agrenting.Config, env loadEnv) {
	if cfg.APIKey.IsZero() || cfg.APIKeySource != string(auth.SourceEnvFile) || env.envFile == "" || env.rotationDir == "" {
		return
	}
	eng := &rotation.Engine{Dir: env.rotationDir, EnvFile: env.envFile, Var: agrenting.EnvAPIKey, Backend: c.RotationBackend(),
		Logger: env.logger, Swap: func(_, next auth.Secret) {
			env.redactor.Add(next.Reveal())
			c.UseKey(next)
		}}
	if crashHook != nil {
		crashHook(eng)
	}
	ctx, cancel := context.WithTimeout(context.Background(), recoverTimeout)
	defer cancel()
	switch rep, err := eng.Recover(ctx); {
	case errors.Is(err, rotation.ErrInProgress):
		// This process (or another) is rotating the key right now.
	case err != nil:
		env.logger.Error("rotation recovery incomplete", "outcome", rep, "err", err)
		if !rep.Current.IsZero() {
			c.UseKey(rep.Current)
		}
	case rep.Action != rotation.ActionNone:
		env.logger.Warn("settled an unfinished rotation: "+rep.Summary(), "outcome", rep)
		if !rep.Current.IsZero() {
			c.UseKey(rep.Current)
		}
	}
	c.RotateOwnWith(func(ctx context.Context, current auth.Secret) (provider.IssuedKey, error) {
		res, err := eng.Rotate(ctx, rotation.Request{Old: current})
		switch {
		case err == nil:
			return provider.IssuedKey{Key: res.New, Secret: res.NewSecret}, nil
		case !res.NewSecret.IsZero():
			// The env file holds the new key and keygate uses it; what
			// failed came later, and recovery finishes it at the next start.
			env.logger.Warn("rotated the Agrenting key, but a later step failed", "rotation_id", res.RotationID, "err", err)
			return provider.IssuedKey{Key: res.New, Secret: res.NewSecret}, nil
		}
		return provider.IssuedKey{}, fmt.Errorf("rotating %s: %w", agrenting.EnvAPIKey, err)
	})
}

// recoverTimeout bounds the settling of an unfinished rotation at start.
const recoverTimeout = 30 * time.Second

// loadRemotes builds every configured remote provider from the real
// environment and the env file's variables (the real environment wins). An
// error names the variable, never the value.
func loadRemotes(file map[string]string, envFile, rotationDir string, redactor *auth.Redactor, logger *slog.Logger) ([]remote, error) {
	lookup := envLookup{file: file}
	env := loadEnv{logger: logger, envFile: envFile, rotationDir: rotationDir, redactor: redactor, get: func(name string) (string, string, bool) {
		v, src, ok := lookup.get(name)
		return v, string(src), ok
	}}
	var out []remote
	var errs []error
	for _, load := range remoteLoaders {
		r, ok, err := load(env)
		switch {
		case err != nil:
			errs = append(errs, err)
		case ok:
			out = append(out, r)
		}
	}
	return out, errors.Join(errs...)
}

// providerList puts local first (the default) and the remotes after it.
func providerList(local tools.Provider, remotes []remote) []tools.Provider {
	out := []tools.Provider{local}
	for _, r := range remotes {
		p := tools.Provider{Name: r.Name(), Content: r, Inspect: r}
		if km, ok := r.(tools.RemoteKeyManager); ok {
			p.RemoteKeys = km
		}
		if h, ok := r.(interface{ RotateHint() string }); ok {
			p.RotateHint = h.RotateHint()
		}
		out = append(out, p)
	}
	return out
}

// remotesReload rebuilds the remote providers from a changed env file and
// swaps them in when every one of them loads; otherwise the running ones
// stay. It reports errNothingChanged when no provider's secrets changed.
func remotesReload(deps *tools.Deps, local tools.Provider, envFile, rotationDir string, redactor *auth.Redactor, logger *slog.Logger, current *[]remote) func(context.Context, map[string]string) error {
	return func(_ context.Context, vars map[string]string) error {
		next, err := loadRemotes(vars, envFile, rotationDir, redactor, logger)
		if err != nil {
			return fmt.Errorf("provider configuration: %w", err)
		}
		if sameSecrets(*current, next) {
			return errNothingChanged
		}
		for _, r := range next {
			for _, s := range r.Secrets() {
				redactor.Add(s)
			}
		}
		deps.Providers.Set(providerList(local, next)...)
		*current = next
		names := make([]string, len(next))
		for i, r := range next {
			names[i] = r.Name()
		}
		logger.Info("reloaded provider credentials", "providers", names)
		return nil
	}
}

func sameSecrets(a, b []remote) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name() != b[i].Name() || !slices.Equal(a[i].Secrets(), b[i].Secrets()) {
			return false
		}
	}
	return true
}

// combineReloads applies each reload in turn; the result is
// errNothingChanged only when none of them changed anything.
func combineReloads(fns ...func(context.Context, map[string]string) error) func(context.Context, map[string]string) error {
	return func(ctx context.Context, vars map[string]string) error {
		changed := false
		var errs []error
		for _, fn := range fns {
			switch err := fn(ctx, vars); {
			case errors.Is(err, errNothingChanged):
			case err != nil:
				errs = append(errs, err)
			default:
				changed = true
			}
		}
		if len(errs) == 0 && !changed {
			return errNothingChanged
		}
		return errors.Join(errs...)
	}
}
