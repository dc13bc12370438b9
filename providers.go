package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/delivery"
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

// ringed is a remote provider with a key API keygate manages through the
// credentials service.
type ringed interface {
	Ring() credentials.Ring
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
	places      delivery.Places
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
		return agrentingRemote{Client: c, ring: agrentingRing(c, cfg, env)}, true, nil
	},
}

// agrentingRemote is the Agrenting client with its keys' ring.
type agrentingRemote struct {
	*agrenting.Client
	ring credentials.Ring
}

func (a agrentingRemote) Ring() credentials.Ring { return a.ring }

// agrentingRing lets keygate manage the agent's keys, and rotate its own
// Agrenting key through the rotation engine, which first settles a rotation
// a crash left unfinished. Agrenting revokes the old key as it issues the
// new one, so only a key kept in the env file, which the engine rewrites,
// can be rotated: without one there is no engine, and the service refuses
// and says how to fix it.
func agrentingRing(c *agrenting.Client, cfg agrenting.Config, env loadEnv) credentials.Ring {
	follow := func(next auth.Secret) {
		env.redactor.Add(next.Reveal())
		c.UseKey(next)
	}
	ring := credentials.Ring{Provider: agrenting.Name, Remote: c,
		RotateHint: "rotate the agent's key in the Agrenting dashboard, then update " + agrenting.EnvAPIKey + " in keygate's env file"}
	if cfg.APIKey.IsZero() {
		return ring
	}
	inEnvFile := cfg.APIKeySource == string(auth.SourceEnvFile) && env.envFile != ""
	ring.Own = func(ctx context.Context) (credentials.Own, bool, error) {
		id, err := c.OwnKeyID(ctx)
		if err != nil {
			return credentials.Own{}, false, err
		}
		return credentials.Own{KeyID: id, Var: agrenting.EnvAPIKey, Secret: c.CurrentKey(), InEnvFile: inEnvFile, Follow: follow}, true, nil
	}
	if !inEnvFile || env.rotationDir == "" {
		return ring
	}
	eng := &rotation.Engine{Name: agrenting.Name, Dir: env.rotationDir, EnvFile: env.envFile, Legacy: agrenting.EnvAPIKey,
		Backend: c.RotationBackend(), Places: env.places, Logger: env.logger, Follow: follow}
	if crashHook != nil {
		crashHook(eng)
	}
	ctx, cancel := context.WithTimeout(context.Background(), recoverTimeout)
	defer cancel()
	reports, err := eng.Recover(ctx)
	for _, rep := range reports {
		if rep.Action != rotation.ActionNone {
			env.logger.Warn("settled an unfinished rotation: "+rep.Summary(), "outcome", rep)
		}
		if !rep.Current.IsZero() {
			c.UseKey(rep.Current)
		}
	}
	if err != nil && !errors.Is(err, rotation.ErrInProgress) {
		env.logger.Error("rotation recovery incomplete", "err", err)
	}
	ring.Engine = eng
	return ring
}

// recoverTimeout bounds the settling of an unfinished rotation at start.
const recoverTimeout = 30 * time.Second

// loadRemotes builds every configured remote provider from the real
// environment and the env file's variables (the real environment wins). An
// error names the variable, never the value.
func loadRemotes(file map[string]string, envFile, rotationDir string, places delivery.Places, redactor *auth.Redactor, logger *slog.Logger) ([]remote, error) {
	lookup := envLookup{file: file}
	env := loadEnv{logger: logger, envFile: envFile, rotationDir: rotationDir, places: places, redactor: redactor, get: func(name string) (string, string, bool) {
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
		p := tools.Provider{Name: r.Name(), Content: r, Inspect: r, Ring: credentials.Ring{Provider: r.Name()}}
		if rr, ok := r.(ringed); ok {
			p.Ring = rr.Ring()
		}
		if h, ok := r.(interface{ RotateHint() string }); ok {
			p.Ring.RotateHint = h.RotateHint()
		}
		out = append(out, p)
	}
	return out
}

// remotesReload rebuilds the remote providers from a changed env file and
// swaps them in when every one of them loads; otherwise the running ones
// stay. It reports errNothingChanged when no provider's secrets changed.
func remotesReload(deps *tools.Deps, local tools.Provider, envFile, rotationDir string, places delivery.Places, redactor *auth.Redactor, logger *slog.Logger, current *[]remote) func(context.Context, map[string]string) error {
	return func(_ context.Context, vars map[string]string) error {
		next, err := loadRemotes(vars, envFile, rotationDir, places, redactor, logger)
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
