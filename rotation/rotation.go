// Package rotation replaces the credential keygate keeps in its env file
// without ever leaving keygate without a working one, even if keygate is
// killed at any moment (security.md section 3).
//
// A rotation is a journaled state machine: lock, preflight, journal the
// intent, create the new key (tagged with the rotation id), persist its
// secret in a 0600 pending file, verify it, swap it into the env file
// atomically and then into memory, retire the old key, clear the journal.
// Every step is durable before the next begins, so Recover, run at startup,
// can look at the journal, the env file, the pending file and the keys the
// backend has under the rotation's tag, and either finish the rotation or
// undo it. The journal never holds a secret; the old secret is never written
// by the engine at all.
package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// Step is a point in a rotation. Some are recorded in the journal; all are
// reported to Engine.OnStep, which is where the crash tests kill keygate.
type Step string

const (
	StepLocked         Step = "locked"          // the lock is held
	StepPreflighted    Step = "preflighted"     // every check passed, nothing changed yet
	StepReplayKept     Step = "replay_kept"     // a Replayer's replay credential is in the pending file
	StepCreating       Step = "creating"        // journal: intent recorded; a key may exist from here on
	StepCreated        Step = "created"         // the backend returned the key; its secret is only in memory
	StepPendingWritten Step = "pending_written" // the secret is in the pending file
	StepPersisted      Step = "persisted"       // journal: the new key's id is recorded
	StepVerified       Step = "verified"        // journal: the new key works with the old key's scopes
	StepEnvWritten     Step = "env_written"     // the env file holds the new key
	StepSwapped        Step = "swapped"         // journal: keygate uses the new key
	StepOldRetired     Step = "old_retired"     // the old key is revoked, or ends after the grace period
	StepPendingRemoved Step = "pending_removed" // the pending file is gone
	StepDone           Step = "done"            // the journal is gone
)

// Steps lists every step of a full rotation with backend b, in order: only
// a Replayer passes StepReplayKept.
func Steps(b Backend) []Step {
	steps := []Step{StepLocked, StepPreflighted, StepReplayKept, StepCreating, StepCreated, StepPendingWritten, StepPersisted,
		StepVerified, StepEnvWritten, StepSwapped, StepOldRetired, StepPendingRemoved, StepDone}
	if _, ok := b.(Replayer); !ok {
		steps = slices.DeleteFunc(steps, func(s Step) bool { return s == StepReplayKept })
	}
	return steps
}

// Errors after the point of no return. Each says what state was kept.
var (
	// ErrUnfinished: an earlier rotation of the credential left a journal;
	// Recover must settle it first.
	ErrUnfinished = errors.New("an earlier rotation is unfinished")
	// ErrSwapFailed: the new key works but the env file could not be
	// rewritten. Both keys were kept; the new one waits in the pending file
	// and Recover retries the swap.
	ErrSwapFailed = errors.New("the new key could not be written to the env file")
	// ErrCredentialLost: no credential that works could be put in the env
	// file. Only a provider that revokes the old key on create, and cannot
	// replay the create, can end here.
	ErrCredentialLost = errors.New("no working credential could be restored")
)

// Engine rotates one credential: variable Var in EnvFile. Its zero value is
// not usable; set Dir, EnvFile, Var and Backend. It is safe for concurrent
// use, and two engines (or processes) on the same Dir and Var exclude each
// other.
type Engine struct {
	// Dir holds the journal, pending and lock files (mode 0700, created
	// if missing). Put it beside the store, not beside the env file.
	Dir string
	// EnvFile is the absolute path of keygate's env file.
	EnvFile string
	// Var is the variable holding the credential, e.g. KEYGATE_TOKEN.
	Var string
	// AllowSymlink lets EnvFile be a symlink, whose target is rewritten.
	AllowSymlink bool
	Backend      Backend
	// Swap installs next as keygate's in-memory credential. It is called
	// once the env file durably holds next (or, with a backend that
	// revoked the old key on create, when next is all there is). old is
	// zero when Recover does the swap: the engine never stores it.
	Swap func(old, next auth.Secret)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger gets the start and end of each rotation and every recovery
	// decision, never a secret; nil discards them.
	Logger *slog.Logger
	// OnStep, if set, is called as each step completes. Tests use it to
	// kill the process there; keygate leaves it nil.
	OnStep func(Step)

	// Test seams: nil means the real thing.
	writeEnvFunc  func(path, name, value string, opts auth.EnvWriteOptions) error
	writeFileFunc func(path string, v any) error
	probeFunc     func(dir string, size int) error
}

// Request asks for one rotation.
type Request struct {
	// Old is the credential in the env file, as keygate holds it.
	Old auth.Secret
	// Grace is how long the old key keeps working after the swap; zero
	// revokes it at once and checks that it is refused.
	Grace time.Duration
	// Actor authorises the rotation where the backend checks grants; nil
	// means the old key itself, which must then be allowed to create keys.
	Actor *auth.Principal
}

// Result describes a rotation. Once the swap has happened, New and
// NewSecret are set even if Rotate also returns an error about a later step.
type Result struct {
	RotationID string
	OldKeyID   string
	New        provider.Key
	NewSecret  auth.Secret
	// OldStopsAt is when the old key stops working; zero if not retired.
	OldStopsAt time.Time
}

// prepare checks the configuration and creates Dir.
func (e *Engine) prepare() error {
	switch {
	case e.Backend == nil:
		return errors.New("rotation engine: no backend")
	case e.Dir == "":
		return errors.New("rotation engine: no directory for the journal")
	case !filepath.IsAbs(e.EnvFile):
		return errors.New("rotation engine: the env file path must be absolute")
	case !auth.IsEnvName(e.Var):
		return errors.New("rotation engine: invalid variable name")
	}
	return e.checkDir()
}

// Rotate replaces the credential req.Old, which must be what EnvFile holds
// in Var, with a new key. Any failure after the backend was asked for a key
// is settled at once by the same rules Recover follows, and the error says
// what was kept. The engine never retires the old key before the env file
// durably holds a verified new one (a provider that revokes it on create
// does so itself). An unfinished earlier rotation gives ErrUnfinished: run
// Recover, then rotate again.
func (e *Engine) Rotate(ctx context.Context, req Request) (Result, error) {
	if err := e.prepare(); err != nil {
		return Result{}, err
	}
	if req.Old.IsZero() || req.Grace < 0 {
		return Result{}, errors.New("rotation: the old credential is empty or the grace period negative")
	}
	lk, err := e.lock()
	if err != nil {
		return Result{}, err
	}
	defer lk.release()
	e.step(StepLocked)
	if j, err := e.loadJournal(); err != nil || j != nil {
		if err != nil {
			return Result{}, err
		}
		return Result{}, fmt.Errorf("rotating %s: %w (rotation %s stopped at step %q); restart keygate or run recovery to settle it",
			e.Var, ErrUnfinished, j.RotationID, j.Step)
	}

	old, err := e.preflight(ctx, req)
	if err != nil {
		return Result{}, err
	}
	e.step(StepPreflighted)
	rid, err := newRotationID()
	if err != nil {
		return Result{}, err
	}
	// The replay credential is stored before the intent, so that from the
	// moment it exists a crash leaves it where recovery finds and ends it.
	replay, err := e.openReplay(ctx, req.Old)
	if err != nil {
		return Result{}, err
	}
	if !replay.IsZero() {
		if err := e.saveReplay(rid, replay); err != nil {
			return Result{}, errors.Join(fmt.Errorf("rotation refused before any change: %w", err), e.clear(ctx, replay))
		}
		e.step(StepReplayKept)
	}
	j := &journal{Version: journalVersion, RotationID: rid, Var: e.Var, EnvFile: e.EnvFile, OldKeyID: old.KeyID,
		OldScopes: old.Scopes, Step: StepCreating, Grace: req.Grace, StartedAt: e.now().UTC()}
	if err := e.saveJournal(j); err != nil {
		// No key exists yet: nothing to settle but the replay credential.
		return Result{}, errors.Join(fmt.Errorf("rotation refused before any change: %w", err), e.clear(ctx, replay))
	}
	e.step(StepCreating)
	e.log().Info("rotation started", "rotation_id", rid, "var", e.Var, "old_key_id", old.KeyID)

	res, mem, err := e.forward(ctx, j, req, replay)
	if err == nil {
		return res, nil
	}
	// Settle by the failure table, as a restart would, and say what stands.
	// A cancelled call must not leave a rotation half done.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	swapped := !res.NewSecret.IsZero()
	rep, serr := e.resolve(sctx, j, req.Old, mem)
	e.log().Warn("rotation failed; settled", "rotation_id", rid, "error", err.Error(), "outcome", rep)
	if rep.Action == ActionCompleted {
		res.New, res.NewSecret, res.OldStopsAt = rep.NewKey, rep.Current, rep.OldStopsAt
		if serr == nil && rep.Problem == "" && !swapped {
			// Settling finished the rotation as asked (say, a create whose
			// response was lost was replayed): the caller got what it wanted.
			return res, nil
		}
	}
	return res, settledError(err, rep, serr)
}

// settledError words a failed rotation with what settling it did, saying
// the cause once.
func settledError(cause error, rep Report, serr error) error {
	switch sum := rep.Summary(); {
	case serr != nil && errors.Is(cause, ErrSwapFailed) && errors.Is(serr, ErrSwapFailed):
		return serr // it names the failure and what was kept
	case serr != nil:
		return fmt.Errorf("%w; settling it: %w", cause, serr)
	case strings.Contains(sum, cause.Error()):
		return &settled{cause: cause, msg: sum}
	default:
		return fmt.Errorf("%w; %s", cause, sum)
	}
}

// settled is an error whose text is the settlement's summary, which already
// quotes the cause.
type settled struct {
	cause error
	msg   string
}

func (e *settled) Error() string { return e.msg }
func (e *settled) Unwrap() error { return e.cause }

// settleTimeout bounds the settling of a failed rotation.
const settleTimeout = 30 * time.Second

// forward runs the steps after the journal: create, persist, verify, swap,
// retire, clear. It stops at the first error and leaves settling to the
// caller, with the new secret if it has one: with a provider that killed the
// old key, it may be nowhere else.
func (e *Engine) forward(ctx context.Context, j *journal, req Request, replay auth.Secret) (Result, *pending, error) {
	res := Result{RotationID: j.RotationID, OldKeyID: j.OldKeyID}
	issued, err := e.Backend.Create(ctx, CreateRequest{Old: req.Old, OldKeyID: j.OldKeyID, RotationID: j.RotationID, Replay: replay, Actor: req.Actor})
	if err != nil {
		return res, nil, fmt.Errorf("creating the new key: %w", err)
	}
	e.step(StepCreated)
	mem := &pending{RotationID: j.RotationID, KeyID: issued.Key.ID, Secret: issued.Secret.Reveal(), Replay: replay.Reveal()}
	res, err = e.afterCreate(ctx, j, req, issued, replay, res)
	return res, mem, err
}

// afterCreate persists, verifies and swaps in the new key, then retires the
// old one and clears the journal.
func (e *Engine) afterCreate(ctx context.Context, j *journal, req Request, issued provider.IssuedKey, replay auth.Secret, res Result) (Result, error) {
	if err := e.persist(j, issued, replay); err != nil {
		if !e.Backend.Traits().RevokesOldOnCreate {
			return res, err
		}
		// The old key is already dead and the secret is only in memory:
		// the env file is the one place left to put it.
		e.log().Warn("could not persist the new key; writing it to the env file directly", "rotation_id", j.RotationID, "error", err.Error())
		j.NewKeyID = issued.Key.ID
	}
	if _, err := e.verifyNew(ctx, j, issued.Secret); err != nil {
		return res, err
	}
	if err := e.record(j, StepVerified); err != nil {
		return res, err
	}
	if err := e.swapTo(j, issued.Secret, req.Old); err != nil {
		return res, err
	}
	res.New, res.NewSecret = issued.Key, issued.Secret
	stops, err := e.retireOld(ctx, j)
	if err != nil {
		return res, err
	}
	res.OldStopsAt = stops
	if j.Grace == 0 || e.Backend.Traits().RevokesOldOnCreate {
		if err := e.checkRefused(ctx, req.Old, j.OldKeyID); err != nil {
			return res, err
		}
	}
	if err := e.clear(ctx, replay); err != nil {
		return res, err
	}
	e.log().Info("rotation done", "rotation_id", j.RotationID, "old_key_id", j.OldKeyID, "new_key_id", issued.Key.ID,
		"old_stops_at", res.OldStopsAt)
	return res, nil
}

// persist stores the new secret before anything else happens to it, then
// records the new key's id.
func (e *Engine) persist(j *journal, issued provider.IssuedKey, replay auth.Secret) error {
	if err := e.savePending(j.RotationID, issued.Key.ID, issued.Secret, replay); err != nil {
		return err
	}
	e.step(StepPendingWritten)
	j.NewKeyID = issued.Key.ID
	return e.record(j, StepPersisted)
}

// record moves the journal to step s.
func (e *Engine) record(j *journal, s Step) error {
	j.Step = s
	if err := e.saveJournal(j); err != nil {
		return err
	}
	e.step(s)
	return nil
}

// errWrongKey: the pending secret is some other key's, which only a person
// editing the pending file could cause.
var errWrongKey = errors.New("the secret is not the new key's")

// ScopeError says how the new key's scopes differ from the old key's.
type ScopeError struct {
	KeyID   string
	Missing []string // the old key has them, the new one does not
	Extra   []string // the new key has them, the old one did not
}

func (e *ScopeError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, "lacks "+strings.Join(e.Missing, ", "))
	}
	if len(e.Extra) > 0 {
		parts = append(parts, "also has "+strings.Join(e.Extra, ", "))
	}
	return fmt.Sprintf("new key %s does not have the old key's scopes: it %s", e.KeyID, strings.Join(parts, " and "))
}

// verifyNew makes an authenticated read with the new secret and checks it
// is the key the journal names, with exactly the old key's scopes.
func (e *Engine) verifyNew(ctx context.Context, j *journal, secret auth.Secret) (Holder, error) {
	h, err := e.Backend.Verify(ctx, secret)
	if err != nil {
		return Holder{}, fmt.Errorf("verifying new key %s: %w", j.NewKeyID, err)
	}
	if j.NewKeyID != "" && h.KeyID != j.NewKeyID {
		return Holder{}, fmt.Errorf("verifying new key %s: %w: it is key %s", j.NewKeyID, errWrongKey, h.KeyID)
	}
	if j.OldKeyID == "" {
		return h, nil // the old key, and so its scopes, are unknown
	}
	missing, extra := diff(j.OldScopes, h.Scopes), diff(h.Scopes, j.OldScopes)
	if len(missing) > 0 || len(extra) > 0 {
		return h, &ScopeError{KeyID: h.KeyID, Missing: missing, Extra: extra}
	}
	return h, nil
}

// diff returns the elements of a not in b, sorted.
func diff(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// swapTo writes next into the env file (atomic, durable, other lines kept)
// and then into memory. old is what memory holds, or zero if unknown.
func (e *Engine) swapTo(j *journal, next, old auth.Secret) error {
	err := e.writeEnv(j.EnvFile, e.Var, next.Reveal(), auth.EnvWriteOptions{Overwrite: true, AllowSymlink: e.AllowSymlink})
	if err != nil {
		if e.Backend.Traits().RevokesOldOnCreate && e.Swap != nil {
			// The old key is dead: the new one is the only credential
			// keygate can work with until the env file is fixed.
			e.Swap(old, next)
		}
		return fmt.Errorf("%w: %w", ErrSwapFailed, err)
	}
	e.step(StepEnvWritten)
	if e.Swap != nil {
		e.Swap(old, next)
	}
	return e.record(j, StepSwapped)
}

// retireOld ends the old key: at once with no grace (or when the provider
// already killed it), else at the end of the grace period, which the
// backend enforces by itself.
func (e *Engine) retireOld(ctx context.Context, j *journal) (time.Time, error) {
	if j.OldKeyID == "" {
		return time.Time{}, nil
	}
	grace := j.Grace
	if e.Backend.Traits().RevokesOldOnCreate {
		grace = 0
	}
	stops, err := e.Backend.Retire(ctx, j.OldKeyID, grace)
	if err != nil {
		return time.Time{}, fmt.Errorf("retiring old key %s (the new key %s is in place): %w", j.OldKeyID, j.NewKeyID, err)
	}
	e.step(StepOldRetired)
	return stops, nil
}

// checkRefused confirms that a revoked old key is now refused.
func (e *Engine) checkRefused(ctx context.Context, old auth.Secret, keyID string) error {
	_, err := e.Backend.Verify(ctx, old)
	switch {
	case errors.Is(err, auth.ErrInvalidToken):
		return nil
	case err != nil:
		return fmt.Errorf("checking that old key %s is revoked: %w", keyID, err)
	}
	return fmt.Errorf("old key %s still works after it was revoked", keyID)
}

// openReplay gets a Replayer's replay credential before anything changes;
// other backends need none.
func (e *Engine) openReplay(ctx context.Context, old auth.Secret) (auth.Secret, error) {
	r, ok := e.Backend.(Replayer)
	if !ok {
		return auth.Secret{}, nil
	}
	replay, err := r.OpenReplay(ctx, old)
	if err != nil {
		return auth.Secret{}, fmt.Errorf("rotation refused before any change: getting a credential that outlives the old key, to replay the rotation after a crash: %w", err)
	}
	if replay.IsZero() {
		return auth.Secret{}, errors.New("rotation refused before any change: the provider returned an empty replay credential")
	}
	return replay, nil
}

// closeReplay ends a replay credential; a failure only costs its lifetime,
// so it is logged, not returned.
func (e *Engine) closeReplay(ctx context.Context, replay auth.Secret) {
	r, ok := e.Backend.(Replayer)
	if !ok || replay.IsZero() {
		return
	}
	if err := r.CloseReplay(context.WithoutCancel(ctx), replay); err != nil {
		e.log().Warn("could not end the rotation's replay credential; it expires by itself", "var", e.Var, "error", err.Error())
	}
}

func (e *Engine) step(s Step) {
	if e.OnStep != nil {
		e.OnStep(s)
	}
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) log() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (e *Engine) writeEnv(path, name, value string, opts auth.EnvWriteOptions) error {
	if e.writeEnvFunc != nil {
		return e.writeEnvFunc(path, name, value, opts)
	}
	return auth.SetEnvVar(path, name, value, opts)
}

func (e *Engine) writeFile(path string, v any) error {
	if e.writeFileFunc != nil {
		return e.writeFileFunc(path, v)
	}
	return writeJSONFile(path, v)
}

func (e *Engine) probe(dir string, size int) error {
	if e.probeFunc != nil {
		return e.probeFunc(dir, size)
	}
	return probeWrite(dir, size)
}
