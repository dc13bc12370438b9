// Package rotation replaces a key without ever leaving its holder without a
// working one, even if keygate is killed at any moment (docs/SECURITY.md,
// Rotation failure table). Every rotation keygate makes goes through it: its own credential in
// its env file, its own Agrenting key, and anyone else's key, whose new
// secret goes to the destination the caller chose (package delivery).
//
// A rotation is a journaled state machine: lock, preflight, journal the
// intent, create the new key (tagged with the rotation id), persist its
// secret in a 0600 pending file, verify it, deliver it (write it to its
// destination, durably, then let keygate's own credential follow it in
// memory), retire the old key, clear the journal. Every step is durable
// before the next begins, so Recover, run at startup, can look at the
// journal, the destination, the pending file and the keys the backend has
// under the rotation's tag, and either finish the rotation or undo it. The
// journal never holds a secret; the old secret is never written by the
// engine at all.
package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/delivery"
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
	StepAnswerKept     Step = "answer_kept"     // a Reparser's raw answer is in the pending file
	StepCreated        Step = "created"         // the backend returned the key; its secret is only in memory
	StepPendingWritten Step = "pending_written" // the secret is in the pending file
	StepPersisted      Step = "persisted"       // journal: the new key's id is recorded
	StepVerified       Step = "verified"        // journal: the new key works with the old key's scopes
	StepEnvWritten     Step = "env_written"     // the destination holds the new key (for a durable one, on disk)
	StepSwapped        Step = "swapped"         // journal: the new key is delivered; keygate's own credential follows it
	StepOldRetired     Step = "old_retired"     // the old key is revoked, or ends after the grace period
	StepPendingRemoved Step = "pending_removed" // the pending file is gone
	StepDone           Step = "done"            // the journal is gone
)

// Steps lists every step of a full rotation with backend b, in order: only
// a Replayer passes StepReplayKept, and only a Reparser StepAnswerKept.
func Steps(b Backend) []Step {
	steps := []Step{StepLocked, StepPreflighted, StepReplayKept, StepCreating, StepAnswerKept, StepCreated, StepPendingWritten, StepPersisted,
		StepVerified, StepEnvWritten, StepSwapped, StepOldRetired, StepPendingRemoved, StepDone}
	if _, ok := b.(Replayer); !ok {
		steps = slices.DeleteFunc(steps, func(s Step) bool { return s == StepReplayKept })
	}
	if _, ok := b.(Reparser); !ok {
		steps = slices.DeleteFunc(steps, func(s Step) bool { return s == StepAnswerKept })
	}
	return steps
}

// Errors after the point of no return. Each says what state was kept.
var (
	// ErrUnfinished: an earlier rotation of the key left a journal;
	// Recover must settle it first.
	ErrUnfinished = errors.New("an earlier rotation is unfinished")
	// ErrSwapFailed: the new key works but could not be written to its
	// destination. Both keys were kept; the new one waits in the pending
	// file and Recover retries the write.
	ErrSwapFailed = errors.New("the new key could not be written to its destination")
	// ErrCredentialLost: no credential that works could be put in place.
	// Only a provider that revokes the old key on create, and cannot
	// replay the create, can end here.
	ErrCredentialLost = errors.New("no working credential could be restored")
)

// Engine rotates the keys of one backend. Its zero value is not usable; set
// Name, Dir, Backend and Places. It is safe for concurrent use, and two
// engines (or processes) on the same Dir, or replicas sharing Journals,
// exclude each other per key.
type Engine struct {
	// Name is the backend's provider name ("local", "agrenting"). It
	// prefixes the engine's slots and is recorded in its journals.
	Name string
	// Dir holds the journal, pending and lock files (mode 0700, created
	// if missing). Put it beside the store, not beside the env file.
	// With Journals set it holds only the pending files.
	Dir string
	// Journals keeps the journals and takes the locks; nil keeps them as
	// files in Dir. Replicas that share one database set it to the same
	// shared store (rotation/pgjournal), so each sees the others'
	// unfinished rotations (docs/rotation-replicas.md).
	Journals Journals
	// Replica names this process among the replicas sharing Journals. It
	// is recorded in every journal, because only this replica can read
	// the pending file in its Dir; default: the host name and Dir.
	Replica string
	// EnvFile is the absolute path of keygate's env file, the one Places
	// writes env destinations into; "" when there is none.
	EnvFile string
	// AllowSymlink lets EnvFile be a symlink, whose target is rewritten.
	AllowSymlink bool
	Backend      Backend
	// Places delivers new secrets; delivery.Places in keygate.
	Places Destinations
	// Legacy is the variable whose version 1 journals (kept under that
	// name) this engine settles: KEYGATE_TOKEN, AGRENTING_API_KEY.
	Legacy string
	// Follow switches keygate to a successor of its own credential that
	// recovery put in place, when no running rotation's request is there
	// to say how (at startup, or settling an earlier rotation's journal).
	Follow func(next auth.Secret)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger gets the start and end of each rotation and every recovery
	// decision, never a secret; nil discards them.
	Logger *slog.Logger
	// OnStep, if set, is called as each step completes. Tests use it to
	// kill the process there; keygate leaves it nil.
	OnStep func(Step)

	// Test seams: nil means the real thing.
	writeFileFunc func(path string, v any) error
	probeFunc     func(dir string, size int) error
}

// Request asks for one rotation.
type Request struct {
	// KeyID is the key to rotate. With Old set it may be empty: it is then
	// the key Old verifies as.
	KeyID string
	// Old is the old secret when keygate holds it: its own credential,
	// which Dest (an env variable with Overwrite) holds now and which the
	// new secret replaces there. Zero for anyone else's key.
	Old auth.Secret
	// Dest is where the new secret goes.
	Dest delivery.Spec
	// Slot names the rotation's lock and journal; default "<Name>-<KeyID>".
	// Two rotations of one key must use the same slot.
	Slot string
	// Grace is how long the old key keeps working after the new one is
	// delivered; zero revokes it at once and checks that it is refused.
	Grace time.Duration
	// Follow, if set, is called once the destination durably holds the new
	// secret (or, with a backend that revoked the old key on create, when
	// the new key is all there is): keygate's own credential switches to
	// it in memory. It is never called for anyone else's key.
	Follow func(next auth.Secret)
}

// Own is the request to rotate keygate's own credential old, which the env
// file's variable holds and keygate runs on: the new key replaces it there,
// its lock and journal are named after the variable, and follow switches
// keygate to it.
func Own(variable string, old auth.Secret, grace time.Duration, follow func(auth.Secret)) Request {
	return Request{Old: old, Dest: delivery.EnvVar(variable), Slot: variable, Grace: grace, Follow: follow}
}

// Result describes a rotation. Once the new key is delivered, New, NewSecret
// and Delivered are set even if Rotate also returns an error about a later
// step.
type Result struct {
	RotationID string
	OldKeyID   string
	New        provider.Key
	NewSecret  auth.Secret
	// Delivered is where the new secret went (a keys-directory
	// destination becomes the file written).
	Delivered delivery.Spec
	// OldStopsAt is when the old key stops working; zero if not retired.
	OldStopsAt time.Time
}

// run is one rotation in progress: the request as the engine resolved it.
type run struct {
	req  Request
	slot string
}

// replica names this process in shared journals.
func (e *Engine) replica() string {
	if e.Replica != "" {
		return e.Replica
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	dir, err := filepath.Abs(e.Dir)
	if err != nil {
		dir = e.Dir
	}
	return host + ":" + dir
}

// foreign reports whether j is a shared journal of another replica, whose
// pending file (and destination files) this one cannot reach.
func (e *Engine) foreign(j *journal) bool {
	return e.Journals != nil && j.Replica != "" && j.Replica != e.replica()
}

// prepare checks the configuration and creates Dir.
func (e *Engine) prepare() error {
	switch {
	case e.Backend == nil:
		return errors.New("rotation engine: no backend")
	case e.Places == nil:
		return errors.New("rotation engine: nowhere to deliver new secrets")
	case e.Dir == "":
		return errors.New("rotation engine: no directory for the journal")
	case !slotPattern().MatchString(e.Name):
		return errors.New("rotation engine: the name must be letters, digits, _ or -")
	case e.EnvFile != "" && !filepath.IsAbs(e.EnvFile):
		return errors.New("rotation engine: the env file path must be absolute")
	}
	return e.checkDir()
}

// RotatesOthers reports whether the engine can rotate a key whose secret
// keygate does not hold: the backend must describe keys by id.
func (e *Engine) RotatesOthers() bool {
	_, ok := e.Backend.(StateReader)
	return ok
}

// Slot names the lock and journal req uses.
func (e *Engine) Slot(req Request) string {
	if req.Slot != "" {
		return req.Slot
	}
	return e.Name + "-" + req.KeyID
}

// resolveRequest checks a request and fills in its slot.
func (e *Engine) resolveRequest(ctx context.Context, req Request) (run, error) {
	if req.Grace < 0 {
		return run{}, errors.New("rotation: the grace period is negative")
	}
	if req.Dest.Kind == "" {
		return run{}, errors.New("rotation: no destination for the new secret")
	}
	held := !req.Old.IsZero()
	if held && !(req.Dest.Kind == delivery.Env && req.Dest.Overwrite) {
		return run{}, errors.New("rotation: keygate's own credential must go back to the variable that holds it")
	}
	if held && e.EnvFile == "" {
		return run{}, &PreflightError{Problem: "keygate has no env file", Fix: "keygate rotates only a credential kept in its env file; start it with --env-file"}
	}
	if !held && req.KeyID == "" {
		return run{}, errors.New("rotation: no key to rotate")
	}
	if !held {
		if _, ok := e.Backend.(StateReader); !ok {
			return run{}, fmt.Errorf("rotation: %s keys can be rotated only by the key itself", e.Name)
		}
	}
	slot := e.Slot(req)
	if !slotPattern().MatchString(slot) {
		return run{}, errors.New("rotation: the slot must be letters, digits, _ or -")
	}
	return run{req: req, slot: slot}, nil
}

// Rotate replaces key req.KeyID (or keygate's own credential req.Old) with
// a new key delivered to req.Dest. Any failure after the backend was asked
// for a key is settled at once by the same rules Recover follows, and the
// error says what was kept. The engine never retires the old key before the
// new one is verified and delivered (a provider that revokes it on create
// does so itself). An unfinished earlier rotation of the same slot gives
// ErrUnfinished: run Recover, then rotate again.
func (e *Engine) Rotate(ctx context.Context, req Request) (Result, error) {
	if err := e.prepare(); err != nil {
		return Result{}, err
	}
	rn, err := e.resolveRequest(ctx, req)
	if err != nil {
		return Result{}, err
	}
	lk, err := e.journals().Lock(ctx, e.Name, rn.slot)
	if err != nil {
		return Result{}, err
	}
	defer lk.Release()
	e.step(StepLocked)
	if err := e.refuseUnfinished(ctx, lk, rn.slot); err != nil {
		return Result{}, err
	}
	old, err := e.preflight(ctx, rn)
	if err != nil {
		return Result{}, err
	}
	e.step(StepPreflighted)
	j, replay, err := e.begin(ctx, lk, rn, old)
	if err != nil {
		return Result{}, err
	}
	res, mem, err := e.forward(ctx, j, rn, replay)
	if err == nil {
		return res, nil
	}
	return e.settleFailed(ctx, j, rn, mem, res, err)
}

// refuseUnfinished gives ErrUnfinished when an earlier rotation of slot
// left its journal behind.
func (e *Engine) refuseUnfinished(ctx context.Context, lk JournalLock, slot string) error {
	j, err := e.loadJournal(ctx, lk, slot)
	if err != nil || j == nil {
		return err
	}
	where := ""
	if e.foreign(j) {
		where = " on replica " + j.Replica
	}
	return fmt.Errorf("rotating %s: %w (rotation %s stopped at step %q%s); restart keygate or run recovery to settle it",
		slot, ErrUnfinished, j.RotationID, j.Step, where)
}

// begin writes down the intent to rotate (the journal, at StepCreating)
// and returns it with the replay credential, if the backend uses one. A
// failure here has changed nothing but the replay credential, which it
// ends.
func (e *Engine) begin(ctx context.Context, lk JournalLock, rn run, old Holder) (*journal, auth.Secret, error) {
	req := rn.req
	rid, err := newRotationID()
	if err != nil {
		return nil, auth.Secret{}, err
	}
	j := &journal{Version: journalVersion, RotationID: rid, Slot: rn.slot, Backend: e.Name, Dest: req.Dest, HeldOld: !req.Old.IsZero(),
		OldKeyID: old.KeyID, OldScopes: old.Scopes, Step: StepCreating, Grace: req.Grace, StartedAt: e.now().UTC(), lock: lk}
	if req.Dest.Kind == delivery.Env {
		j.EnvFile = e.EnvFile
	}
	if e.Journals != nil {
		j.Replica = e.replica()
	}
	// The replay credential is stored before the intent, so that from the
	// moment it exists a crash leaves it where recovery finds and ends it.
	replay, err := e.openReplay(ctx, req.Old)
	if err != nil {
		return nil, auth.Secret{}, err
	}
	if !replay.IsZero() {
		if err := e.savePending(rn.slot, pending{RotationID: rid, Replay: replay.Reveal()}); err != nil {
			return nil, auth.Secret{}, errors.Join(fmt.Errorf("rotation refused before any change: %w", err), e.clear(ctx, j, nil, replay))
		}
		e.step(StepReplayKept)
	}
	if err := e.saveJournal(ctx, j); err != nil {
		// No key exists yet: nothing to settle but the replay credential.
		return nil, auth.Secret{}, errors.Join(fmt.Errorf("rotation refused before any change: %w", err), e.clear(ctx, j, nil, replay))
	}
	e.step(StepCreating)
	e.log().Info("rotation started", "rotation_id", rid, "slot", rn.slot, "old_key_id", old.KeyID, "dest", req.Dest.String())
	return j, replay, nil
}

// settleFailed settles a rotation that failed after its journal was
// written, by the failure table, as a restart would, and says what
// stands. res is what the failed rotation got as far as; mem is the new
// key, if one was created.
func (e *Engine) settleFailed(ctx context.Context, j *journal, rn run, mem *pending, res Result, err error) (Result, error) {
	rid := j.RotationID
	if errors.Is(err, ErrLockLost) {
		// Another replica may be settling it already: doing anything
		// more would race it. Recovery settles it from the journal.
		e.log().Error("rotation stopped: its lock was lost", "rotation_id", rid, "journal_step", string(j.saved), "error", err.Error())
		return res, fmt.Errorf("rotation %s stopped (its journal is at step %q): %w; nothing more was done here, so that recovery (on any replica) can settle it from the journal",
			rid, j.saved, err)
	}
	// A cancelled call must not leave a rotation half done.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	delivered := !res.NewSecret.IsZero()
	rep, serr := e.resolve(sctx, j, rn, mem)
	e.log().Warn("rotation failed; settled", "rotation_id", rid, "error", err.Error(), "outcome", rep)
	if rep.Action == ActionCompleted {
		res.New, res.NewSecret, res.OldStopsAt, res.Delivered = rep.NewKey, rep.Current, rep.OldStopsAt, rep.Delivered
		if serr == nil && rep.Problem == "" && !delivered {
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

// forward runs the steps after the journal: create, persist, verify,
// deliver, retire, clear. It stops at the first error and leaves settling to
// the caller, with the new secret if it has one: with a provider that killed
// the old key, it may be nowhere else.
func (e *Engine) forward(ctx context.Context, j *journal, rn run, replay auth.Secret) (Result, *pending, error) {
	res := Result{RotationID: j.RotationID, OldKeyID: j.OldKeyID}
	keep := func(raw []byte) error {
		// The answer is kept before anyone parses it: whatever its shape,
		// recovery can look for the new key in it again.
		if err := e.savePending(j.Slot, pending{RotationID: j.RotationID, Replay: replay.Reveal(), Raw: raw}); err != nil {
			return err
		}
		e.step(StepAnswerKept)
		return nil
	}
	issued, err := e.Backend.Create(ctx, CreateRequest{Old: rn.req.Old, OldKeyID: j.OldKeyID, RotationID: j.RotationID, Replay: replay, Keep: keep})
	if err != nil {
		return res, nil, fmt.Errorf("creating the new key: %w", err)
	}
	e.step(StepCreated)
	mem := &pending{RotationID: j.RotationID, KeyID: issued.Key.ID, Secret: issued.Secret.Reveal(), Replay: replay.Reveal()}
	res, err = e.afterCreate(ctx, j, rn, issued, replay, res)
	return res, mem, err
}

// afterCreate persists, verifies and delivers the new key, then retires the
// old one and clears the journal.
func (e *Engine) afterCreate(ctx context.Context, j *journal, rn run, issued provider.IssuedKey, replay auth.Secret, res Result) (Result, error) {
	if err := e.persist(ctx, j, issued, replay); err != nil {
		if !e.Backend.Traits().RevokesOldOnCreate || errors.Is(err, ErrLockLost) {
			return res, err
		}
		// The old key is already dead and the secret is only in memory:
		// the destination is the one place left to put it.
		e.log().Warn("could not persist the new key; delivering it directly", "rotation_id", j.RotationID, "error", err.Error())
		j.NewKeyID = issued.Key.ID
	}
	if _, err := e.verifyNew(ctx, j, issued.Secret); err != nil {
		return res, err
	}
	if err := e.record(ctx, j, StepVerified); err != nil {
		return res, err
	}
	to, err := e.deliver(ctx, j, rn.req.Follow, issued.Key.ID, issued.Secret)
	if err != nil {
		return res, err
	}
	res.New, res.NewSecret, res.Delivered = issued.Key, issued.Secret, to
	stops, err := e.retireOld(ctx, j)
	if err != nil {
		return res, err
	}
	res.OldStopsAt = stops
	if j.HeldOld && (j.Grace == 0 || e.Backend.Traits().RevokesOldOnCreate) {
		if err := e.checkRefused(ctx, rn.req.Old, j.OldKeyID); err != nil {
			return res, err
		}
	}
	if err := e.clear(ctx, j, nil, replay); err != nil {
		return res, err
	}
	e.log().Info("rotation done", "rotation_id", j.RotationID, "old_key_id", j.OldKeyID, "new_key_id", issued.Key.ID,
		"old_stops_at", res.OldStopsAt, "delivered_to", to.String())
	return res, nil
}

// persist stores the new secret before anything else happens to it, then
// records the new key's id.
func (e *Engine) persist(ctx context.Context, j *journal, issued provider.IssuedKey, replay auth.Secret) error {
	if err := e.savePending(j.Slot, pending{RotationID: j.RotationID, KeyID: issued.Key.ID, Secret: issued.Secret.Reveal(), Replay: replay.Reveal()}); err != nil {
		return err
	}
	e.step(StepPendingWritten)
	j.NewKeyID = issued.Key.ID
	return e.record(ctx, j, StepPersisted)
}

// record moves the journal to step s.
func (e *Engine) record(ctx context.Context, j *journal, s Step) error {
	j.Step = s
	if err := e.saveJournal(ctx, j); err != nil {
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

// deliver puts next where the journal says (durably, for an env variable
// or a file), lets keygate's own credential follow it, and records the
// step. It returns where the secret went.
func (e *Engine) deliver(ctx context.Context, j *journal, follow func(auth.Secret), keyID string, next auth.Secret) (delivery.Spec, error) {
	to, err := e.Places.Put(j.Dest, keyID, next)
	if err != nil {
		if e.Backend.Traits().RevokesOldOnCreate && follow != nil {
			// The old key is dead: the new one is the only credential
			// keygate can work with until the destination is fixed.
			follow(next)
		}
		return to, fmt.Errorf("%w: %w", ErrSwapFailed, err)
	}
	e.step(StepEnvWritten)
	if follow != nil {
		follow(next)
	}
	return to, e.record(ctx, j, StepSwapped)
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
	if old.IsZero() {
		return auth.Secret{}, errors.New("rotation refused before any change: this provider's keys can be rotated only by the key itself")
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
		e.log().Warn("could not end the rotation's replay credential; it expires by itself", "backend", e.Name, "error", err.Error())
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
