package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider/agrenting"
	"github.com/keygate/keygate/provider/cencori"
	"github.com/keygate/keygate/provider/cockpit"
	"github.com/keygate/keygate/provider/cosmic"
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
		// Agrenting revokes the old key the moment it issues the new one:
		// the new key is written to the env file before RotateKey returns.
		c.OnRotate(func(next auth.Secret) error {
			env.redactor.Add(next.Reveal())
			if env.envFile == "" {
				return fmt.Errorf("no env file is configured to store the new %s", agrenting.EnvAPIKey)
			}
			if err := auth.SetEnvVar(env.envFile, agrenting.EnvAPIKey, next.Reveal(), auth.EnvWriteOptions{Overwrite: true}); err != nil {
				return err
			}
			if v, set := os.LookupEnv(agrenting.EnvAPIKey); set && v != "" {
				env.logger.Warn("the rotated Agrenting key is in the env file, but AGRENTING_API_KEY is also set in keygate's environment, which wins at the next start: update it there", "env_file", env.envFile)
			}
			return nil
		})
		return c, true, nil
	},
}

// loadRemotes builds every configured remote provider from the real
// environment and the env file's variables (the real environment wins). An
// error names the variable, never the value.
func loadRemotes(file map[string]string, envFile string, redactor *auth.Redactor, logger *slog.Logger) ([]remote, error) {
	lookup := envLookup{file: file}
	env := loadEnv{logger: logger, envFile: envFile, redactor: redactor, get: func(name string) (string, string, bool) {
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
func remotesReload(deps *tools.Deps, local tools.Provider, envFile string, redactor *auth.Redactor, logger *slog.Logger, current *[]remote) func(context.Context, map[string]string) error {
	return func(_ context.Context, vars map[string]string) error {
		next, err := loadRemotes(vars, envFile, redactor, logger)
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
