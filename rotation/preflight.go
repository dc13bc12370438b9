package rotation

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/keygate/keygate/auth"
)

// Preflight refusals. Each comes wrapped in a *PreflightError that says what
// to do; nothing was changed when one is returned.
var (
	ErrLooseMode    = errors.New("file is readable or writable by others")
	ErrNotHeld      = errors.New("the env file does not hold the credential being rotated")
	ErrNotWritable  = errors.New("directory is not writable")
	ErrRejected     = errors.New("the provider does not accept the credential")
	ErrCannotRotate = errors.New("the credential may not create keys")
)

// PreflightError is a refusal before anything was touched.
type PreflightError struct {
	Problem string
	Fix     string
	Err     error
}

func (e *PreflightError) Error() string {
	msg := "rotation refused before any change: " + e.Problem
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Fix != "" {
		msg += "; " + e.Fix
	}
	return msg
}

func (e *PreflightError) Unwrap() error { return e.Err }

// probePrefix names the engine's write probes, so recovery can tell them
// from anything else in the env file's directory.
const probePrefix = ".keygate-rotation-probe-"

// probeSlack is written on top of the env file's size: the rewritten file
// may be a little longer, and the journal and pending file need room too.
const probeSlack = 4096

// preflight checks everything the rotation will need, local state first,
// before the backend is asked to create anything, and returns what it
// learned of the old key.
func (e *Engine) preflight(ctx context.Context, rn run) (Holder, error) {
	if err := e.probe(e.Dir, probeSlack); err != nil {
		return Holder{}, &PreflightError{Problem: fmt.Sprintf("cannot write the rotation journal in %s", e.Dir),
			Fix: "make the directory writable and free some space, then rotate again", Err: fmt.Errorf("%w: %w", ErrNotWritable, err)}
	}
	if rn.req.Old.IsZero() {
		return e.preflightByID(ctx, rn)
	}
	size, err := e.checkEnvFile(rn.req.Dest.Target, rn.req.Old)
	if err != nil {
		return Holder{}, err
	}
	envDir := filepath.Dir(e.envTarget())
	if err := e.probe(envDir, size+probeSlack); err != nil {
		return Holder{}, &PreflightError{Problem: fmt.Sprintf("cannot write a new env file in %s", envDir),
			Fix: "make the directory writable and free some space, then rotate again", Err: fmt.Errorf("%w: %w", ErrNotWritable, err)}
	}
	old, err := e.Backend.Verify(ctx, rn.req.Old)
	switch {
	case errors.Is(err, auth.ErrInvalidToken):
		return Holder{}, &PreflightError{Problem: fmt.Sprintf("%s is not accepted by the provider (revoked or expired)", rn.req.Dest.Target),
			Fix: "a dead key cannot be rotated; create a new one", Err: ErrRejected}
	case err != nil:
		return Holder{}, fmt.Errorf("rotation refused before any change: checking the current credential: %w", err)
	case rn.req.KeyID != "" && old.KeyID != rn.req.KeyID:
		return Holder{}, &PreflightError{Problem: fmt.Sprintf("%s holds key %s, not key %s", rn.req.Dest.Target, old.KeyID, rn.req.KeyID),
			Fix: "restart keygate to load the env file's credential", Err: ErrNotHeld}
	case !old.CanCreate:
		return Holder{}, &PreflightError{Problem: fmt.Sprintf("key %s in %s may not create keys", old.KeyID, rn.req.Dest.Target),
			Fix: "give it credentials:write, or rotate it with a credential that has", Err: ErrCannotRotate}
	}
	return old, nil
}

// preflightByID checks the rotation of a key keygate does not hold: the
// destination can take the new secret, and the key works.
func (e *Engine) preflightByID(ctx context.Context, rn run) (Holder, error) {
	if err := e.Places.Preflight(rn.req.Dest); err != nil {
		return Holder{}, err
	}
	h, active, err := e.Backend.(StateReader).KeyState(ctx, rn.req.KeyID)
	switch {
	case err != nil:
		return Holder{}, err
	case !active:
		return Holder{}, &PreflightError{Problem: fmt.Sprintf("key %s is revoked or expired", rn.req.KeyID),
			Fix: "a dead key cannot be rotated; create a new one", Err: ErrRejected}
	}
	return h, nil
}

// checkEnvFile refuses an env file the engine must not or cannot rewrite,
// and one whose variable is not the old credential: the compare half of a
// compare-and-swap, checked under the lock. It returns the file's size.
func (e *Engine) checkEnvFile(name string, old auth.Secret) (int, error) {
	fi, err := os.Lstat(e.EnvFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, &PreflightError{Problem: fmt.Sprintf("env file %s does not exist", e.EnvFile),
			Fix: fmt.Sprintf("keygate rotates only a credential kept in its env file; put %s there first", name)}
	}
	if err != nil {
		return 0, &PreflightError{Problem: fmt.Sprintf("cannot inspect env file %s", e.EnvFile), Err: err}
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if !e.AllowSymlink {
			return 0, &PreflightError{Problem: fmt.Sprintf("env file %s", e.EnvFile), Fix: "point keygate at the real file, or allow symlinks explicitly",
				Err: auth.ErrEnvSymlink}
		}
		if fi, err = os.Stat(e.EnvFile); err != nil {
			return 0, &PreflightError{Problem: fmt.Sprintf("cannot follow env file symlink %s", e.EnvFile), Err: err}
		}
	}
	if !fi.Mode().IsRegular() {
		return 0, &PreflightError{Problem: fmt.Sprintf("env file %s is not a regular file", e.EnvFile)}
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return 0, &PreflightError{Problem: fmt.Sprintf("env file %s has mode %#o", e.EnvFile, perm),
			Fix: fmt.Sprintf("it holds secrets; run chmod 600 %s and rotate again", e.EnvFile), Err: ErrLooseMode}
	}
	vars, err := auth.ReadEnvFile(e.EnvFile)
	if err != nil {
		return 0, &PreflightError{Problem: fmt.Sprintf("env file %s cannot be parsed", e.EnvFile), Fix: "fix it by hand", Err: err}
	}
	if vars[name] != old.Reveal() {
		return 0, &PreflightError{Problem: fmt.Sprintf("%s in %s", name, e.EnvFile),
			Fix: "it was changed since keygate read it, or the credential comes from elsewhere; restart keygate to load it", Err: ErrNotHeld}
	}
	return int(fi.Size()), nil
}

// envTarget is the file SetEnvVar replaces: the symlink's target when
// symlinks are allowed.
func (e *Engine) envTarget() string {
	if e.AllowSymlink {
		if t, err := filepath.EvalSymlinks(e.EnvFile); err == nil {
			return t
		}
	}
	return e.EnvFile
}

// checkDir makes sure Dir exists and only its owner can enter it: it holds
// the pending secret.
func (e *Engine) checkDir() error {
	if err := os.MkdirAll(e.Dir, 0o700); err != nil {
		return fmt.Errorf("creating rotation directory: %w", err)
	}
	fi, err := os.Lstat(e.Dir)
	if err != nil {
		return fmt.Errorf("inspecting rotation directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("rotation directory %s is not a directory", e.Dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("rotation directory %s has mode %#o: %w; it holds new secrets until they reach the env file: run chmod 700 %s",
			e.Dir, perm, ErrLooseMode, e.Dir)
	}
	return nil
}

// probeWrite proves dir takes a file of size bytes, synced, so a read-only
// or full file system is found before the backend creates anything.
func probeWrite(dir string, size int) (err error) {
	f, err := os.CreateTemp(dir, probePrefix+"*")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.Remove(f.Name())) }()
	if _, err := f.Write(make([]byte, size)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
