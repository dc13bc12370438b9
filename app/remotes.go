package app

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/provider/agrenting"
	"github.com/keygate/keygate/provider/cencori"
	"github.com/keygate/keygate/provider/cockpit"
	"github.com/keygate/keygate/provider/cosmic"
	"github.com/keygate/keygate/rotation"
)

// recoverTimeout bounds the settling of an unfinished rotation at start.
const recoverTimeout = 30 * time.Second

// remoteEnv is what building one remote provider needs.
type remoteEnv struct {
	app *App
	// get reads the provider's variables: the process environment, then
	// the env file.
	get    func(name string) (value, source string, ok bool)
	logger *slog.Logger
	// followed records a new value keygate itself gave one of the
	// provider's variables (its own key, rotated): the provider already
	// uses it, so a reload must not rebuild the provider for it.
	followed func(name, value string)
}

// remoteBuilder builds one provider. configured is false when none of its
// credential variables is set.
type remoteBuilder func(env remoteEnv) (r remote, configured bool, err error)

// builders build the remote providers config.Providers lists, by name.
var builders = map[string]remoteBuilder{
	cosmic.Name:    buildCosmic,
	cockpit.Name:   buildCockpit,
	cencori.Name:   buildCencori,
	agrenting.Name: buildAgrenting,
}

func buildCosmic(env remoteEnv) (remote, bool, error) {
	cfg, ok, err := cosmic.LoadConfig(env.get)
	if err != nil || !ok {
		return nil, ok, err
	}
	c, err := cosmic.New(cfg, cosmic.Options{Logger: env.logger})
	return c, true, err
}

func buildCockpit(env remoteEnv) (remote, bool, error) {
	cfg, ok, err := cockpit.LoadConfig(env.get)
	if err != nil || !ok {
		return nil, ok, err
	}
	c, err := cockpit.New(cfg, cockpit.Options{Logger: env.logger})
	return c, true, err
}

func buildCencori(env remoteEnv) (remote, bool, error) {
	cfg, ok, err := cencori.LoadConfig(env.get)
	if err != nil || !ok {
		return nil, ok, err
	}
	c, err := cencori.New(cfg, cencori.Options{Logger: env.logger})
	return c, true, err
}

func buildAgrenting(env remoteEnv) (remote, bool, error) {
	cfg, ok, err := agrenting.LoadConfig(env.get)
	if err != nil || !ok {
		return nil, ok, err
	}
	c, err := agrenting.New(cfg, agrenting.Options{Logger: env.logger})
	if err != nil {
		return nil, true, err
	}
	return agrentingRemote{Client: c, ring: agrentingRing(c, cfg, env)}, true, nil
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
func agrentingRing(c *agrenting.Client, cfg agrenting.Config, env remoteEnv) credentials.Ring {
	a := env.app
	follow := func(next auth.Secret) {
		a.redactor.Add(next.Reveal())
		c.UseKey(next)
		env.followed(agrenting.EnvAPIKey, next.Reveal())
	}
	ring := credentials.Ring{Provider: agrenting.Name, Remote: c,
		RotateHint: "rotate the agent's key in the Agrenting dashboard, then update " + agrenting.EnvAPIKey + " in keygate's env file"}
	if cfg.APIKey.IsZero() {
		return ring
	}
	inEnvFile := cfg.APIKeySource == string(auth.SourceEnvFile) && a.cfg.EnvFile != ""
	ring.Own = func(ctx context.Context) (credentials.Own, bool, error) {
		id, err := c.OwnKeyID(ctx)
		if err != nil {
			return credentials.Own{}, false, err
		}
		return credentials.Own{KeyID: id, Var: agrenting.EnvAPIKey, Secret: c.CurrentKey(), InEnvFile: inEnvFile, Follow: follow}, true, nil
	}
	if !inEnvFile {
		return ring
	}
	eng := &rotation.Engine{Name: agrenting.Name, Dir: a.cfg.RotationDir(), Journals: a.sharedJournals(), EnvFile: a.cfg.EnvFile, Legacy: agrenting.EnvAPIKey,
		Backend: c.RotationBackend(), Places: a.places, Logger: env.logger, Follow: follow}
	if engineHook != nil {
		engineHook(eng)
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
			env.followed(agrenting.EnvAPIKey, rep.Current.Reveal())
		}
	}
	if err != nil && !errors.Is(err, rotation.ErrInProgress) {
		env.logger.Error("rotation recovery incomplete", "err", err)
	}
	ring.Engine = eng
	return ring
}

// loadedRemote is one configured remote provider and the values of its
// variables it was built from (or has followed since).
type loadedRemote struct {
	name   string
	remote remote

	mu   sync.Mutex
	vars map[string]string
}

func (l *loadedRemote) follow(name, value string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.vars[name] = value
}

// builtFrom reports whether vars are the values the provider runs with.
func (l *loadedRemote) builtFrom(vars map[string]string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Equal(l.vars, vars)
}

// remoteSet is the configured remote providers, in order.
type remoteSet struct {
	mu      sync.Mutex
	entries []*loadedRemote
}

func (s *remoteSet) list() []remote {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]remote, len(s.entries))
	for i, e := range s.entries {
		out[i] = e.remote
	}
	return out
}

// loadRemotes builds every configured remote provider. An error names the
// variable, never the value.
func (a *App) loadRemotes(env config.Env) (*remoteSet, error) {
	entries, _, err := a.buildRemotes(env, nil)
	if err != nil {
		return nil, err
	}
	return &remoteSet{entries: entries}, nil
}

// buildRemotes builds the providers env configures, reusing each entry of
// prev whose variables have the same values: a provider is rebuilt only
// when its own configuration changed, not for another provider's nor for
// what it holds at run time (Agrenting's session). changed reports whether
// the result differs from prev.
func (a *App) buildRemotes(env config.Env, prev []*loadedRemote) (next []*loadedRemote, changed bool, err error) {
	var errs []error
	for _, p := range config.Providers {
		vars := variableValues(env, p.VariableNames())
		old := findRemote(prev, p.Name)
		if old != nil && old.builtFrom(vars) {
			next = append(next, old)
			continue
		}
		l := &loadedRemote{name: p.Name, vars: vars}
		r, ok, err := builders[p.Name](remoteEnv{app: a, get: lookupWithSource(env), logger: a.logger.With("provider", p.Name), followed: l.follow})
		switch {
		case err != nil:
			errs = append(errs, err)
		case ok:
			l.remote = r
			next = append(next, l)
			changed = true
		case old != nil:
			changed = true // no longer configured
		}
	}
	if len(errs) > 0 {
		return nil, false, errors.Join(errs...)
	}
	for _, l := range next {
		for _, secret := range l.remote.Secrets() {
			a.redactor.Add(secret)
		}
	}
	return next, changed, nil
}

func findRemote(list []*loadedRemote, name string) *loadedRemote {
	for _, l := range list {
		if l.name == name {
			return l
		}
	}
	return nil
}

// variableValues snapshots the values of names ("" for unset).
func variableValues(env config.Env, names []string) map[string]string {
	out := make(map[string]string, len(names))
	for _, n := range names {
		v, _, _ := env.Get(n)
		out[n] = v
	}
	return out
}

// lookupWithSource adapts env to the providers' LoadConfig.
func lookupWithSource(env config.Env) func(string) (string, string, bool) {
	return func(name string) (string, string, bool) {
		v, src, ok := env.Get(name)
		return v, string(src), ok
	}
}

// reloadRemotes rebuilds the providers whose variables changed and swaps
// the set in when every one of them loads; otherwise the running ones
// stay. It reports ErrNothingChanged when no provider's configuration
// changed.
func (a *App) reloadRemotes(env config.Env) error {
	a.remotes.mu.Lock()
	defer a.remotes.mu.Unlock()
	next, changed, err := a.buildRemotes(env, a.remotes.entries)
	if err != nil {
		return err
	}
	if !changed {
		return ErrNothingChanged
	}
	a.remotes.entries = next
	names := make([]string, len(next))
	list := make([]remote, len(next))
	for i, l := range next {
		names[i], list[i] = l.name, l.remote
	}
	a.mcp.setRemotes(list)
	a.logger.Info("reloaded provider credentials", "providers", names)
	return nil
}
