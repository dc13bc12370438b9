package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
	"github.com/keygate/keygate/rotation"
)

// bootstrapLifetime is how long the admin token minted on first run lives.
const bootstrapLifetime = 365 * 24 * time.Hour

// engineHook, when set, sees every rotation engine keygate makes. Only
// binaries built with -tags crashtest set it (crashhook_crashtest.go).
var engineHook func(*rotation.Engine)

// openStore opens the embedded store; a new one is seeded and given an
// admin token. Then every rotation an earlier process left unfinished is
// settled, before anything uses keygate's own token.
func (a *App) openStore(ctx context.Context) error {
	store, err := local.Open(ctx, a.cfg.Store, local.Options{})
	if err != nil {
		// local's errors say "opening store" already; this adds which.
		return fmt.Errorf("%s: %w", a.cfg.StoreName(), err)
	}
	a.store = store
	if store.Created() {
		if err := a.firstRun(ctx); err != nil {
			return err
		}
	}
	a.recoverRotation(ctx)
	return nil
}

// recoverRotation settles every rotation of the store's keys that an
// earlier process left unfinished (it was killed, or a destination could
// not be written), so keygate always starts with a working credential. It
// keeps the store's rotation engine, which every later rotation of a store
// key goes through.
func (a *App) recoverRotation(ctx context.Context) {
	a.engine = &rotation.Engine{Name: "local", Dir: a.cfg.RotationDir(), Journals: a.sharedJournals(), EnvFile: a.cfg.EnvFile, Legacy: auth.TokenVar,
		Backend: a.store.RotationBackend(), Places: a.places, Logger: a.logger}
	if engineHook != nil {
		engineHook(a.engine)
	}
	reports, err := a.engine.Recover(ctx)
	for _, rep := range reports {
		switch {
		case errors.Is(err, rotation.ErrInProgress) && rep.Action == rotation.ActionNone:
			a.logger.Warn("another keygate process is rotating a key; its recovery was skipped", "slot", rep.Slot)
		case rep.Action != rotation.ActionNone:
			a.logger.Warn("settled an unfinished rotation: "+rep.Summary(), "outcome", rep)
		}
		if rep.Slot == auth.TokenVar && !rep.Current.IsZero() && a.tokenFollowsEnvFile() {
			a.cfg.Token = auth.Credential{Secret: rep.Current, Source: auth.SourceEnvFile, Var: auth.TokenVar}
		}
	}
	if err != nil && !errors.Is(err, rotation.ErrInProgress) {
		a.logger.Error("rotation recovery incomplete", "err", err)
	}
}

// tokenFollowsEnvFile reports whether keygate's own token is the env
// file's (or unset): a token from the real environment wins over it.
func (a *App) tokenFollowsEnvFile() bool {
	return a.cfg.Token.Secret.IsZero() || a.cfg.Token.Source == auth.SourceEnvFile
}

// firstRun seeds a new store and mints its admin token. The token goes to
// the env file (never overwriting a value already there) or, failing that,
// to a 0600 file beside the store; it is never printed.
func (a *App) firstRun(ctx context.Context) error {
	if err := a.store.Seed(ctx); err != nil {
		return fmt.Errorf("seeding new store: %w", err)
	}
	issued, err := a.store.CreateKey(ctx, provider.NewKey{Name: "admin (first run)", Scopes: auth.Scopes{{Action: auth.Admin}},
		ExpiresAt: time.Now().Add(bootstrapLifetime)})
	if err != nil {
		return fmt.Errorf("minting admin token: %w", err)
	}
	tok := issued.Secret.Reveal()
	werr := errors.New("no env file configured")
	if a.cfg.EnvFile != "" {
		werr = auth.SetEnvVar(a.cfg.EnvFile, auth.TokenVar, tok, auth.EnvWriteOptions{})
	}
	if werr == nil {
		a.logger.Info("created the store, seeded example content and wrote an admin token", "store", a.cfg.StoreName(),
			"env_file", a.cfg.EnvFile, "variable", auth.TokenVar, "key_id", issued.Key.ID)
		if a.tokenFollowsEnvFile() {
			a.cfg.Token = auth.Credential{Secret: issued.Secret, Source: auth.SourceEnvFile, Var: auth.TokenVar}
		} else {
			a.logger.Warn("KEYGATE_TOKEN in the environment overrides the new admin token in the env file", "env_file", a.cfg.EnvFile)
		}
		return nil
	}
	fallback := filepath.Join(a.cfg.DataDir, "admin.token")
	if err := auth.WriteSecretFile(fallback, tok); err != nil {
		return fmt.Errorf("cannot store the first-run admin token (env file: %w; %s: %w)", werr, fallback, err)
	}
	a.logger.Warn("created the store; the admin token could not go into the env file, so it was written beside the store",
		"reason", werr.Error(), "token_file", fallback, "key_id", issued.Key.ID)
	return nil
}
