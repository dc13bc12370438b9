package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/provider"
)

// Action is what recovery did with an unfinished rotation.
type Action string

const (
	ActionNone       Action = "none"        // there was no unfinished rotation
	ActionCleared    Action = "cleared"     // no key had been made; the journal was removed
	ActionRolledBack Action = "rolled_back" // the new key(s) were discarded; the old key is kept
	ActionCompleted  Action = "completed"   // the destination holds the new key; the old key is retired
	ActionPending    Action = "pending"     // the destination could not be written: the new key waits in the pending file
	ActionLost       Action = "lost"        // no working credential could be put in place
	// ActionDropped: another replica settled the rotation, which could not
	// reach this replica's pending file; the file was dropped here, and any
	// key in it that the settlement did not keep was discarded.
	ActionDropped Action = "dropped"
)

// Fates of a key the rotation made.
const (
	FateAdopted   = "adopted"   // it is the destination's credential now
	FateDiscarded = "discarded" // it was revoked (a rollback or an orphan)
	FateKept      = "kept"      // it works and waits in the pending file
)

// KeyFate says what recovery did with one key made by the rotation.
type KeyFate struct {
	KeyID string `json:"key_id"`
	Fate  string `json:"fate"`
}

// Report is what Recover found and did, for keygate to log. It holds no
// secret except Current, which prints as [REDACTED].
type Report struct {
	RotationID string
	Slot       string
	Dest       delivery.Spec
	// Delivered is where the new secret went, when it went somewhere.
	Delivered  delivery.Spec
	Step       Step // the last step the journal recorded
	Action     Action
	OldKeyID   string
	NewKeyID   string
	NewKey     provider.Key // the adopted key, when Action is ActionCompleted
	OldStopsAt time.Time
	// Keys lists every key the rotation made, found by its tag or in the
	// pending file, with its fate: none is left unreported.
	Keys []KeyFate
	// Problem says what needs a human, if anything.
	Problem string
	// Replica is the replica the rotation ran on, when it was not this
	// one (shared journals only).
	Replica string
	// Current is, for keygate's own credential (a destination that held
	// the old key), the destination's credential after recovery when it
	// works: keygate should act with it.
	Current          auth.Secret
	TempFilesRemoved int
}

// Summary says in one sentence what happened, without secrets.
func (r Report) Summary() string {
	var s string
	where := r.Dest.String()
	switch r.Action {
	case ActionNone, "":
		s = "no unfinished rotation"
		if r.RotationID != "" {
			s = fmt.Sprintf("rotation %s is unfinished and was left as it was", r.RotationID)
		}
	case ActionCleared:
		s = fmt.Sprintf("rotation %s had created no key, so nothing was changed; the old key still works", r.RotationID)
	case ActionRolledBack:
		s = fmt.Sprintf("rotation %s was rolled back: new key %s discarded; old key %s still works", r.RotationID, r.discarded(), r.OldKeyID)
	case ActionCompleted:
		s = fmt.Sprintf("rotation %s was completed: new key %s is in %s", r.RotationID, r.NewKeyID, where)
		if r.OldKeyID != "" {
			s += fmt.Sprintf("; old key %s stops working %s", r.OldKeyID, r.OldStopsAt.UTC().Format(time.RFC3339))
		}
	case ActionPending:
		s = fmt.Sprintf("rotation %s is unfinished: new key %s waits in the pending file because %s could not be written; fix it and restart keygate",
			r.RotationID, r.NewKeyID, where)
	case ActionLost:
		s = fmt.Sprintf("rotation %s could not put a working key in %s", r.RotationID, where)
	case ActionDropped:
		s = fmt.Sprintf("rotation %s had been settled by another replica; its pending file here was dropped", r.RotationID)
	}
	if r.Replica != "" && r.Action != ActionDropped {
		s += fmt.Sprintf(" [rotation of replica %s]", r.Replica)
	}
	if r.Problem != "" {
		s += " (" + r.Problem + ")"
	}
	return s
}

func (r Report) discarded() string {
	var ids []string
	for _, k := range r.Keys {
		if k.Fate == FateDiscarded {
			ids = append(ids, k.KeyID)
		}
	}
	if len(ids) == 0 {
		return "(none)"
	}
	return strings.Join(ids, ", ")
}

// LogValue logs a report as a group, without Current.
func (r Report) LogValue() slog.Value {
	keys := make([]string, len(r.Keys))
	for i, k := range r.Keys {
		keys[i] = k.KeyID + ":" + k.Fate
	}
	return slog.GroupValue(slog.String("rotation_id", r.RotationID), slog.String("slot", r.Slot), slog.String("dest", r.Dest.String()),
		slog.String("step", string(r.Step)), slog.String("action", string(r.Action)), slog.String("old_key_id", r.OldKeyID),
		slog.String("new_key_id", r.NewKeyID), slog.Time("old_stops_at", r.OldStopsAt), slog.String("keys", strings.Join(keys, ",")),
		slog.String("problem", r.Problem))
}

// Recover settles every unfinished rotation of this engine's keys, as the
// failure table in docs/SECURITY.md says, so keygate starts with
// working credentials. Run it at startup before keygate's own credential is
// loaded, and use the Current of a report whose destination is that
// credential's variable. It finishes a rotation whose new key is safe (at
// its destination or in the pending file, and verified), undoes one whose
// new key cannot be used, and discards every other key the rotation made.
// A slot another process is rotating right now is skipped with
// ErrInProgress. On an error, whatever could not be settled is kept,
// journal included, for the next run.
func (e *Engine) Recover(ctx context.Context) ([]Report, error) {
	if err := e.prepare(); err != nil {
		return nil, err
	}
	if err := e.forgetSettled(ctx); err != nil {
		return nil, err
	}
	slots, err := e.slots(ctx)
	if err != nil {
		return nil, err
	}
	var reports []Report
	var errs []error
	for _, slot := range slots {
		r, err := e.RecoverSlot(ctx, slot)
		if r.Action != ActionNone || err != nil {
			reports = append(reports, r)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return reports, errors.Join(errs...)
}

// RecoverSlot settles the unfinished rotation of one slot, if there is one.
func (e *Engine) RecoverSlot(ctx context.Context, slot string) (Report, error) {
	r := Report{Slot: slot, Action: ActionNone}
	if err := e.prepare(); err != nil {
		return r, err
	}
	lk, err := e.journals().Lock(ctx, e.Name, slot)
	if err != nil {
		return r, err
	}
	defer lk.Release()
	removed := e.removeStaleTemps(slot, e.EnvFile)
	j, err := e.loadJournal(ctx, lk, slot)
	if err == nil && j == nil {
		var dropped bool
		if dropped, err = e.dropSettled(ctx, slot, &r); dropped || err != nil {
			r.TempFilesRemoved = removed
			return r, err
		}
		j, err = e.strayPending(lk, slot)
	}
	if err != nil || j == nil {
		r.TempFilesRemoved = removed
		return r, err
	}
	if e.foreign(j) && !e.holdsPending(j) {
		r, err = e.resolveForeign(ctx, j)
	} else {
		r, err = e.resolve(ctx, j, run{slot: slot}, nil)
	}
	r.TempFilesRemoved = removed
	if err != nil {
		e.log().Error("rotation recovery incomplete", "outcome", r, "error", err.Error())
	} else {
		e.log().Info("rotation recovered", "outcome", r)
	}
	return r, err
}

// strayPending turns a pending file without a journal (which the engine
// never leaves, but a person might) into a journal that knows only the new
// key: for keygate's own credential (a legacy slot), the key is adopted if
// the env file holds it and discarded if not; for any other key, discarded.
func (e *Engine) strayPending(lk JournalLock, slot string) (*journal, error) {
	p, err := e.loadPending(slot, "")
	if err != nil || p == nil {
		return nil, err
	}
	if !rotationIDPattern().MatchString(p.RotationID) {
		return nil, fmt.Errorf("pending file %s has no valid rotation id; move it away and restart", e.pendingPath(slot))
	}
	j := &journal{Version: journalVersion, RotationID: p.RotationID, Slot: slot, Backend: e.Name, NewKeyID: p.KeyID, Dest: delivery.Spec{Kind: delivery.Reveal},
		lock: lk}
	if slot == e.Legacy {
		j.Dest, j.HeldOld, j.EnvFile = delivery.EnvVar(slot), true, e.EnvFile
	}
	return j, nil
}

// dropSettled handles a pending file whose rotation another replica
// settled (it could not reach the file): the file is removed rather than
// acted on, since the settlement decided the fate of the rotation's keys.
// A key in the file that the settlement did not keep is discarded, in case
// it was made after the settling replica listed the rotation's keys.
func (e *Engine) dropSettled(ctx context.Context, slot string, r *Report) (bool, error) {
	p, err := e.loadPending(slot, "")
	if err != nil || p == nil || e.Journals == nil {
		return false, err
	}
	settled, err := e.Journals.Settlements(ctx, e.Name, e.replica())
	if err != nil {
		return false, err
	}
	i := slices.IndexFunc(settled, func(s Settlement) bool { return s.RotationID == p.RotationID && s.Slot == slot })
	if i < 0 {
		return false, nil
	}
	s := settled[i]
	r.RotationID, r.Action, r.NewKeyID = p.RotationID, ActionDropped, s.KeptKeyID
	if p.KeyID != "" && p.KeyID != s.KeptKeyID {
		if err := e.Backend.Discard(ctx, p.KeyID); err != nil {
			return true, fmt.Errorf("dropping the pending file of rotation %s, settled by replica %s: discarding key %s: %w; recovery retries at the next start",
				p.RotationID, s.By, p.KeyID, err)
		}
		r.Keys = append(r.Keys, KeyFate{KeyID: p.KeyID, Fate: FateDiscarded})
	}
	e.closeReplay(ctx, auth.NewSecret(p.Replay))
	if err := removeDurably(e.pendingPath(slot)); err != nil {
		return true, fmt.Errorf("removing pending file: %w", err)
	}
	e.forget(ctx, s)
	e.log().Info("dropped the pending file of a rotation another replica settled", "rotation_id", p.RotationID, "settled_by", s.By,
		"action", string(s.Action))
	return true, nil
}

// forgetSettled deletes the settlements of this replica's rotations that
// left no pending file here (the replica died before writing it, or after
// removing it), so they do not pile up; the others are used and deleted by
// dropSettled as their slots are recovered.
func (e *Engine) forgetSettled(ctx context.Context) error {
	if e.Journals == nil {
		return nil
	}
	settled, err := e.Journals.Settlements(ctx, e.Name, e.replica())
	if err != nil {
		return err
	}
	for _, s := range settled {
		if p, err := e.loadPending(s.Slot, s.RotationID); err == nil && p == nil {
			e.forget(ctx, s)
		}
	}
	return nil
}

// forget deletes a used settlement; one left behind only takes a row.
func (e *Engine) forget(ctx context.Context, s Settlement) {
	if err := e.Journals.Forget(ctx, s.RotationID); err != nil {
		e.log().Warn("could not delete a used settlement record", "rotation_id", s.RotationID, "error", err.Error())
	}
}

// ErrOtherReplica: the unfinished rotation ran on another replica, which
// alone can settle it. It wraps ErrInProgress: to this replica it is a
// rotation still in progress elsewhere.
var ErrOtherReplica = fmt.Errorf("%w on another replica", ErrInProgress)

// holdsPending reports whether this replica's Dir has the pending file of
// rotation j (its replica name may have changed, or Dir be shared): the
// rotation can then be settled here like this replica's own.
func (e *Engine) holdsPending(j *journal) bool {
	p, err := e.loadPending(j.Slot, j.RotationID)
	return err == nil && p != nil
}

// resolveForeign settles a rotation another replica abandoned (its lock is
// free). That replica's pending file is out of reach, and so are its
// durable destinations (its env file, its keys directory), so only the
// journal says whether the new key was delivered: from StepSwapped on it
// was, and the rotation is finished; below StepVerified it never was (the
// journal records StepVerified before any destination is touched), and
// every key the rotation made is discarded, as when a crash loses the
// pending secret. In between, or for that replica's own credential, the
// delivery may have happened where only it can see: the rotation is left
// to it, both keys working.
func (e *Engine) resolveForeign(ctx context.Context, j *journal) (Report, error) {
	r := Report{RotationID: j.RotationID, Slot: j.Slot, Dest: j.Dest, Step: j.Step, OldKeyID: j.OldKeyID, NewKeyID: j.NewKeyID,
		Action: ActionNone, Replica: j.Replica}
	delivered := stepReached(j.Step, StepSwapped)
	leave := func(why string) (Report, error) {
		r.Problem = why + "; only that replica can settle it: start keygate there"
		return r, fmt.Errorf("rotation %s of %s stopped at step %q on replica %s: %w: %s", j.RotationID, j.Slot, j.Step, j.Replica, ErrOtherReplica, r.Problem)
	}
	switch {
	case delivered:
	case j.HeldOld:
		return leave(fmt.Sprintf("it rotates that replica's own credential, in its env file %s", j.EnvFile))
	case j.Dest.Durable() && stepReached(j.Step, StepVerified):
		return leave(fmt.Sprintf("its new key %s may already be in %s there, which this replica cannot see", j.NewKeyID, j.Dest))
	}
	var st state
	switch tagged, err := e.Backend.Tagged(ctx, TagQuery{RotationID: j.RotationID, OldKeyID: j.OldKeyID}); {
	case errors.Is(err, auth.ErrInvalidToken):
		st.taggedErr = err
	case err != nil:
		return r, fmt.Errorf("settling rotation %s of replica %s: listing its keys: %w; nothing was changed", j.RotationID, j.Replica, err)
	default:
		st.tagged = tagged
	}
	if delivered {
		// That replica handed the new key over; nothing is delivered here.
		return r, e.finish(ctx, j, st, &r, run{slot: j.Slot}, auth.Secret{}, j.Dest)
	}
	r.Problem = fmt.Sprintf("the new key's secret was on replica %s, out of reach, and had not been delivered", j.Replica)
	return r, e.rollback(ctx, j, st, &r)
}

// settlement is what clear records for a rotation of another replica:
// which of its keys stays in use, so that replica drops its pending file.
func (e *Engine) settlement(j *journal, r *Report, kept string) *Settlement {
	if !e.foreign(j) || e.holdsPending(j) {
		return nil
	}
	return &Settlement{RotationID: j.RotationID, Engine: e.Name, Slot: j.Slot, Replica: j.Replica, By: e.replica(), Action: r.Action, KeptKeyID: kept}
}

// state is what recovery observes, rather than what the journal claims: a
// crash can fall between any action and its journal entry.
type state struct {
	// destValue is what the destination holds now; dest is whose key it
	// is, when it works.
	destValue string
	dest      Holder
	destWorks bool
	// oldAlive: the rotation's old key still works.
	oldAlive bool
	pending  *pending // set only when the new key reached the pending file
	replay   auth.Secret
	raw      []byte // a Reparser's kept answer, when the key is not parsed yet
	tagged   []provider.Key
	// taggedErr: the backend refused every credential recovery had when
	// asked for the rotation's keys (the old key is dead, and so is the
	// replay credential). tagged is then unknown, and is asked for again
	// once a working key is in place.
	taggedErr error
}

func (e *Engine) observe(ctx context.Context, j *journal) (state, error) {
	var st state
	p, err := e.loadPending(j.Slot, j.RotationID)
	if err != nil {
		return st, err
	}
	if p != nil {
		st.replay, st.raw = auth.NewSecret(p.Replay), p.Raw
	}
	if p.hasKey() {
		st.pending = p
	}
	newID := j.NewKeyID
	if newID == "" && st.pending != nil {
		newID = st.pending.KeyID
	}
	if j.Dest.Durable() {
		if st.destValue, err = e.Places.Holds(j.Dest, newID); err != nil {
			return st, err
		}
	}
	if st.destValue != "" {
		st.dest, err = e.Backend.Verify(ctx, auth.NewSecret(st.destValue))
		switch {
		case err == nil:
			st.destWorks = true
		case !errors.Is(err, auth.ErrInvalidToken):
			return st, fmt.Errorf("checking %s: %w", j.Dest, err)
		}
	}
	switch {
	case j.HeldOld:
		st.oldAlive = st.destWorks && j.OldKeyID != "" && st.dest.KeyID == j.OldKeyID
	case j.OldKeyID != "":
		sr, ok := e.Backend.(StateReader)
		if !ok {
			return st, fmt.Errorf("%s cannot tell whether key %s works", e.Name, j.OldKeyID)
		}
		if _, st.oldAlive, err = sr.KeyState(ctx, j.OldKeyID); err != nil {
			var nf *provider.NotFoundError
			if !errors.As(err, &nf) {
				return st, fmt.Errorf("checking old key %s: %w", j.OldKeyID, err)
			}
		}
	}
	switch st.tagged, err = e.Backend.Tagged(ctx, TagQuery{RotationID: j.RotationID, OldKeyID: j.OldKeyID, Replay: st.replay}); {
	case errors.Is(err, auth.ErrInvalidToken):
		st.taggedErr = err
	case err != nil:
		return st, fmt.Errorf("listing keys of rotation %s: %w", j.RotationID, err)
	}
	return st, nil
}

// lookUpTagged asks for the rotation's keys again when the first attempt had
// no working credential: it is the only way to find a key whose secret was
// lost, and recovery does not end while one may be left undiscarded.
func (e *Engine) lookUpTagged(ctx context.Context, j *journal, st *state) error {
	if st.taggedErr == nil {
		return nil
	}
	tagged, err := e.Backend.Tagged(ctx, TagQuery{RotationID: j.RotationID, OldKeyID: j.OldKeyID, Replay: st.replay})
	if err != nil {
		return fmt.Errorf("settling rotation %s: listing its keys: %w; recovery retries at the next start", j.RotationID, err)
	}
	for _, k := range tagged {
		st.tagged = appendKey(st.tagged, k)
	}
	st.taggedErr = nil
	return nil
}

// holdsNew reports whether the destination's working key is one this
// rotation made: the delivery happened.
func (st state) holdsNew(j *journal) bool {
	switch {
	case !st.destWorks:
		return false
	case j.NewKeyID != "" && st.dest.KeyID == j.NewKeyID:
		return true
	case st.pending != nil && st.destValue == st.pending.Secret:
		return true
	}
	return slices.ContainsFunc(st.tagged, func(k provider.Key) bool { return k.ID == st.dest.KeyID })
}

// made lists the ids of every key this rotation made that recovery knows.
func (st state) made(j *journal) []string {
	var ids []string
	add := func(id string) {
		if id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, k := range st.tagged {
		add(k.ID)
	}
	if st.pending != nil {
		add(st.pending.KeyID)
	}
	add(j.NewKeyID)
	return ids
}

// resolve settles rotation j. When a running Rotate settles its own failure,
// rn carries the request (its old secret and follow) and mem the new key as
// the backend returned it; at startup both are unknown. mem is used only
// when the old key is dead: with the old key alive, a key that never
// reached the pending file is an orphan, as after a crash, and is
// discarded.
func (e *Engine) resolve(ctx context.Context, j *journal, rn run, mem *pending) (Report, error) {
	r := Report{RotationID: j.RotationID, Slot: j.Slot, Dest: j.Dest, Step: j.Step, OldKeyID: j.OldKeyID, NewKeyID: j.NewKeyID}
	if j.Dest.Kind == delivery.Env && j.EnvFile != e.EnvFile {
		return r, fmt.Errorf("rotation %s was of env file %s, but keygate now uses %s; start keygate with the old env file once to settle it",
			j.RotationID, j.EnvFile, e.EnvFile)
	}
	if rn.req.Follow == nil && j.HeldOld {
		rn.req.Follow = e.Follow
	}
	st, err := e.observe(ctx, j)
	if err != nil {
		return r, fmt.Errorf("settling rotation %s: %w; nothing was changed", j.RotationID, err)
	}
	if st.pending == nil && len(st.raw) > 0 {
		// The answer was kept but not parsed (a shape the backend did not
		// expect, or a crash in between): look for the key in it again.
		st.pending = e.reparse(j, st)
	}
	err = e.settle(ctx, j, st, &r, rn, mem)
	return r, err
}

// settle finishes, resumes, rolls back or adopts rotation j by what was
// observed of it (st), filling in r.
func (e *Engine) settle(ctx context.Context, j *journal, st state, r *Report, rn run, mem *pending) error {
	switch {
	case st.holdsNew(j):
		// The delivery happened: finish it.
		r.NewKeyID = st.dest.KeyID
		return e.finish(ctx, j, st, r, rn, auth.NewSecret(st.destValue), j.Dest)
	case !j.Dest.Durable() && stepReached(j.Step, StepSwapped):
		// A secret shown in a result, or kept in a session, was handed
		// over before the crash: there is nothing to put anywhere again.
		r.NewKeyID = j.NewKeyID
		return e.finish(ctx, j, st, r, rn, auth.Secret{}, j.Dest)
	case st.oldAlive && st.pending != nil && j.Dest.Durable():
		// The new key is safe but not yet in place: verify it again and
		// resume, or undo it if it is not what it should be.
		return e.resume(ctx, j, st, r, rn)
	case st.oldAlive:
		// The new key's secret is lost, was never handed over, or there is
		// no new key: the old key works, so every key the rotation made is
		// an orphan.
		return e.rollback(ctx, j, st, r)
	case j.HeldOld && st.destWorks:
		// keygate's own credential works, but it is not the old key: a
		// person replaced it meanwhile. Every key the rotation made is an
		// orphan.
		if j.OldKeyID != "" {
			r.Problem = fmt.Sprintf("%s now holds key %s, which is neither the rotation's old key nor its new one; old key %s was left alone",
				j.Dest.Target, st.dest.KeyID, j.OldKeyID)
		}
		return e.rollback(ctx, j, st, r)
	case !j.HeldOld:
		// Someone else's key that stopped working meanwhile (revoked with
		// its lineage, or expired): its successor must not outlive it.
		r.Problem = fmt.Sprintf("old key %s no longer works (revoked or expired during the rotation)", j.OldKeyID)
		return e.rollback(ctx, j, st, r)
	default:
		if st.pending == nil && mem != nil {
			st.pending = mem
			if st.replay.IsZero() {
				st.replay = auth.NewSecret(mem.Replay)
			}
		}
		return e.adopt(ctx, j, st, r, rn)
	}
}

// stepReached reports whether the journal got to step s.
func stepReached(at, s Step) bool {
	order := Steps(nil)
	return slices.Index(order, at) >= slices.Index(order, s)
}

// reparse asks a Reparser for the new key in a kept raw answer, and makes
// it the pending key; nil when there is none to find.
func (e *Engine) reparse(j *journal, st state) *pending {
	rp, ok := e.Backend.(Reparser)
	if !ok {
		return nil
	}
	issued, err := rp.Reparse(st.raw)
	if err != nil {
		e.log().Warn("the kept create answer holds no key keygate can find", "rotation_id", j.RotationID, "error", err.Error())
		return nil
	}
	return &pending{RotationID: j.RotationID, KeyID: issued.Key.ID, Secret: issued.Secret.Reveal(), Replay: st.replay.Reveal()}
}

// resume verifies the pending key and delivers it; a key that fails the
// check is discarded and the old one kept.
func (e *Engine) resume(ctx context.Context, j *journal, st state, r *Report, rn run) error {
	next := auth.NewSecret(st.pending.Secret)
	j.NewKeyID, r.NewKeyID = st.pending.KeyID, st.pending.KeyID
	if _, err := e.verifyNew(ctx, j, next); err != nil {
		if !definitive(err) {
			return fmt.Errorf("settling rotation %s: %w; nothing was changed", j.RotationID, err)
		}
		r.Problem = err.Error()
		return e.rollback(ctx, j, st, r)
	}
	if !stepReached(j.Step, StepVerified) {
		// Journaled before the destination is touched, as Rotate does: a
		// replica that finds this journal abandoned then knows that below
		// this step the new key never reached its destination.
		if err := e.record(ctx, j, StepVerified); err != nil {
			return fmt.Errorf("settling rotation %s: %w; nothing was changed", j.RotationID, err)
		}
	}
	to, err := e.deliver(ctx, j, rn.req.Follow, j.NewKeyID, next)
	if err != nil {
		r.Action, r.Problem = ActionPending, err.Error()+"; old key "+j.OldKeyID+" still works"
		for _, id := range st.made(j) {
			r.Keys = append(r.Keys, KeyFate{KeyID: id, Fate: FateKept})
		}
		if j.HeldOld {
			r.Current = auth.NewSecret(st.destValue)
		}
		return fmt.Errorf("rotation %s: %w; new key %s waits in the pending file and old key %s still works: fix %s and restart keygate to finish",
			j.RotationID, err, r.NewKeyID, j.OldKeyID, j.Dest)
	}
	st.destValue, st.dest.KeyID = st.pending.Secret, st.pending.KeyID
	return e.finish(ctx, j, st, r, rn, next, to)
}

// adopt handles keygate's own credential when it no longer works, which
// happens when the provider revoked the old key as it created the new one.
// The new key must then be put in place: from the pending file, or by
// replaying the create when the provider can.
func (e *Engine) adopt(ctx context.Context, j *journal, st state, r *Report, rn run) error {
	var next auth.Secret
	_, needsReplay := e.Backend.(Replayer)
	switch traits := e.Backend.Traits(); {
	case st.pending != nil:
		next, j.NewKeyID = auth.NewSecret(st.pending.Secret), st.pending.KeyID
		if onDisk, _ := e.loadPending(j.Slot, j.RotationID); !onDisk.hasKey() {
			// Only in memory (Rotate settling its own failure) or only in a
			// kept answer: try once more to make it survive a crash.
			_ = e.savePending(j.Slot, *st.pending)
		}
	case traits.CreateReplays && (len(st.tagged) > 0 || traits.RevokesOldOnCreate) && (!needsReplay || !st.replay.IsZero()):
		issued, err := e.Backend.Create(ctx, CreateRequest{OldKeyID: j.OldKeyID, RotationID: j.RotationID, Replay: st.replay,
			Keep: func(raw []byte) error {
				return e.savePending(j.Slot, pending{RotationID: j.RotationID, Replay: st.replay.Reveal(), Raw: raw})
			}})
		if errors.Is(err, auth.ErrInvalidToken) {
			// The provider will never answer the replay: the key it made
			// is out of reach.
			return e.lost(ctx, j, st, r, fmt.Sprintf("%s does not work and replaying the rotation was refused (%v)", j.Dest, err))
		}
		if err != nil {
			return fmt.Errorf("settling rotation %s: replaying the create: %w; nothing was changed", j.RotationID, err)
		}
		next = issued.Secret
		if err := e.persist(ctx, j, issued, st.replay); err != nil {
			e.log().Warn("could not persist the replayed key; delivering it directly", "rotation_id", j.RotationID, "error", err.Error())
			j.NewKeyID = issued.Key.ID
		}
		st.tagged = appendKey(st.tagged, issued.Key)
	}
	r.NewKeyID = j.NewKeyID
	if next.IsZero() {
		return e.lost(ctx, j, st, r, fmt.Sprintf("%s does not work and the rotation's new key cannot be recovered", j.Dest))
	}
	if _, err := e.verifyNew(ctx, j, next); err != nil {
		var se *ScopeError
		if !errors.As(err, &se) {
			if !definitive(err) {
				return fmt.Errorf("settling rotation %s: %w; nothing was changed", j.RotationID, err)
			}
			return e.lost(ctx, j, st, r, err.Error())
		}
		// A key with the wrong scopes still beats no key at all.
		r.Problem = err.Error() + "; adopted anyway because the old key no longer works"
	}
	to, err := e.deliver(ctx, j, rn.req.Follow, j.NewKeyID, next)
	if err != nil {
		r.Action, r.Problem, r.Current = ActionPending, err.Error(), next
		for _, id := range st.made(j) {
			r.Keys = append(r.Keys, KeyFate{KeyID: id, Fate: FateKept})
		}
		return fmt.Errorf("settling rotation %s: %w: the old key no longer works, so keygate can only use the new one from the pending file %s",
			j.RotationID, err, e.pendingPath(j.Slot))
	}
	st.destValue, st.dest.KeyID, st.destWorks = next.Reveal(), j.NewKeyID, true
	return e.finish(ctx, j, st, r, rn, next, to)
}

func appendKey(keys []provider.Key, k provider.Key) []provider.Key {
	if slices.ContainsFunc(keys, func(x provider.Key) bool { return x.ID == k.ID }) {
		return keys
	}
	return append(keys, k)
}

// definitive reports whether a verification failure is an answer (the key
// is refused, or is not the right key) rather than a failure to ask.
func definitive(err error) bool {
	var se *ScopeError
	return errors.Is(err, auth.ErrInvalidToken) || errors.As(err, &se) || errors.Is(err, errWrongKey)
}

// finish completes a rotation whose new key is delivered: retire the old
// key, discard any other key the rotation made, clear the journal. current
// is the delivered secret (zero for a result or session that held it).
func (e *Engine) finish(ctx context.Context, j *journal, st state, r *Report, rn run, current auth.Secret, to delivery.Spec) error {
	r.Action, r.Delivered = ActionCompleted, to
	if j.HeldOld {
		r.Current = current
		if rn.req.Follow != nil && !current.IsZero() {
			// Retiring the old key may need the new one (a provider whose
			// old key is already dead).
			rn.req.Follow(current)
		}
	}
	stops, err := e.retireOld(ctx, j)
	if err != nil {
		r.Problem = err.Error()
		return fmt.Errorf("settling rotation %s: %w; recovery retries at the next start", j.RotationID, err)
	}
	r.OldStopsAt = stops
	if err := e.lookUpTagged(ctx, j, &st); err != nil {
		r.Problem = err.Error()
		return err
	}
	keep := r.NewKeyID
	if st.destWorks {
		keep = st.dest.KeyID
	}
	for _, k := range st.tagged {
		if k.ID == keep {
			r.NewKey = k
		}
	}
	if err := e.discardAll(ctx, st.made(j), keep, r); err != nil {
		return err
	}
	r.Keys = append(r.Keys, KeyFate{KeyID: keep, Fate: FateAdopted})
	return e.clear(ctx, j, e.settlement(j, r, keep), st.replay)
}

// rollback discards every key the rotation made and clears the journal.
// The old key works, so this never leaves anyone without a credential.
func (e *Engine) rollback(ctx context.Context, j *journal, st state, r *Report) error {
	if j.HeldOld {
		r.Current = auth.NewSecret(st.destValue)
	}
	if err := e.lookUpTagged(ctx, j, &st); err != nil {
		r.Problem = err.Error()
		return err
	}
	ids := st.made(j)
	r.Action = ActionRolledBack
	if len(ids) == 0 {
		r.Action = ActionCleared
	}
	keep := ""
	if j.HeldOld && st.destWorks {
		keep = st.dest.KeyID
	}
	if err := e.discardAll(ctx, ids, keep, r); err != nil {
		return err
	}
	return e.clear(ctx, j, e.settlement(j, r, keep), st.replay)
}

// lost discards the keys no one can use any more, clears the journal and
// says loudly that a person must issue a new credential. When the backend
// could not even list the rotation's keys, a key it made may still be live
// and unseen: the journal is kept, so that the next start, with the new
// credential a person puts in place, finds and discards it.
func (e *Engine) lost(ctx context.Context, j *journal, st state, r *Report, why string) error {
	r.Action, r.Problem = ActionLost, why
	if err := e.discardAll(ctx, st.made(j), "", r); err != nil {
		return err
	}
	fix := fmt.Sprintf("create a new key with the provider and put it in %s", j.Dest)
	if j.Dest.Kind == delivery.Env {
		fix = fmt.Sprintf("create a new key with the provider and put it in %s as %s", e.EnvFile, j.Dest.Target)
	}
	if st.taggedErr != nil {
		r.Problem += "; the keys the rotation made could not be listed with any credential keygate has"
		return fmt.Errorf("settling rotation %s: %w: %s; %s, and restart keygate: it then revokes the key the rotation made, which no one can use",
			j.RotationID, ErrCredentialLost, why, fix)
	}
	if err := e.clear(ctx, j, e.settlement(j, r, ""), st.replay); err != nil {
		return err
	}
	return fmt.Errorf("settling rotation %s: %w: %s; %s", j.RotationID, ErrCredentialLost, why, fix)
}

// discardAll discards ids except keep and records each. It stops at the
// first failure, leaving the journal for the next attempt: an orphan is
// never forgotten.
func (e *Engine) discardAll(ctx context.Context, ids []string, keep string, r *Report) error {
	for _, id := range ids {
		if id == keep {
			continue
		}
		if err := e.Backend.Discard(ctx, id); err != nil {
			r.Problem = fmt.Sprintf("discarding key %s failed: %v", id, err)
			return fmt.Errorf("settling rotation %s: discarding key %s: %w; recovery retries at the next start", r.RotationID, id, err)
		}
		e.log().Info("discarded a key made by an unfinished rotation", "rotation_id", r.RotationID, "key_id", id)
		r.Keys = append(r.Keys, KeyFate{KeyID: id, Fate: FateDiscarded})
	}
	return nil
}
