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
	"github.com/keygate/keygate/provider"
)

// Action is what recovery did with an unfinished rotation.
type Action string

const (
	ActionNone       Action = "none"        // there was no unfinished rotation
	ActionCleared    Action = "cleared"     // no key had been made; the journal was removed
	ActionRolledBack Action = "rolled_back" // the new key(s) were revoked; the env file's key is kept
	ActionCompleted  Action = "completed"   // the env file holds the new key; the old key is retired
	ActionPending    Action = "pending"     // the env file could not be written: the new key waits in the pending file
	ActionLost       Action = "lost"        // no working credential could be put in the env file
)

// Fates of a key the rotation made.
const (
	FateAdopted = "adopted" // it is the env file's credential now
	FateRevoked = "revoked" // it was revoked (a rollback or an orphan)
	FateKept    = "kept"    // it works and waits in the pending file
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
	Var        string
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
	// Current is the env file's credential after recovery when it works:
	// keygate should act with it.
	Current          auth.Secret
	TempFilesRemoved int
}

// Summary says in one sentence what happened, without secrets.
func (r Report) Summary() string {
	var s string
	switch r.Action {
	case ActionNone, "":
		s = "no unfinished rotation"
	case ActionCleared:
		s = fmt.Sprintf("rotation %s had created no key, so nothing was changed; the old key still works", r.RotationID)
	case ActionRolledBack:
		s = fmt.Sprintf("rotation %s was rolled back: new key %s revoked; %s still holds the key it had", r.RotationID, r.revoked(), r.Var)
	case ActionCompleted:
		s = fmt.Sprintf("rotation %s was completed: %s holds key %s", r.RotationID, r.Var, r.NewKeyID)
		if r.OldKeyID != "" {
			s += fmt.Sprintf("; old key %s stops working %s", r.OldKeyID, r.OldStopsAt.UTC().Format(time.RFC3339))
		}
	case ActionPending:
		s = fmt.Sprintf("rotation %s is unfinished: new key %s waits in the pending file because the env file could not be written; fix the env file and restart keygate",
			r.RotationID, r.NewKeyID)
	case ActionLost:
		s = fmt.Sprintf("rotation %s could not restore a working credential for %s", r.RotationID, r.Var)
	}
	if r.Problem != "" {
		s += " (" + r.Problem + ")"
	}
	return s
}

func (r Report) revoked() string {
	var ids []string
	for _, k := range r.Keys {
		if k.Fate == FateRevoked {
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
	return slog.GroupValue(slog.String("rotation_id", r.RotationID), slog.String("var", r.Var), slog.String("step", string(r.Step)),
		slog.String("action", string(r.Action)), slog.String("old_key_id", r.OldKeyID), slog.String("new_key_id", r.NewKeyID),
		slog.Time("old_stops_at", r.OldStopsAt), slog.String("keys", strings.Join(keys, ",")), slog.String("problem", r.Problem))
}

// Recover settles an unfinished rotation of Var, as the failure table of
// security.md section 3 says, so keygate starts with a working credential.
// Run it at startup before the credential is loaded, and use Report.Current
// when set. It finishes a rotation whose new key is safe (in the env file or
// the pending file, and verified), undoes one whose new key cannot be used,
// and revokes every other key the rotation made. It returns ErrInProgress
// if another process is rotating right now. On an error, whatever could not
// be settled is kept, journal included, for the next run.
func (e *Engine) Recover(ctx context.Context) (Report, error) {
	r := Report{Var: e.Var, Action: ActionNone}
	if err := e.prepare(); err != nil {
		return r, err
	}
	lk, err := e.lock()
	if err != nil {
		return r, err
	}
	defer lk.release()
	removed := e.removeStaleTemps(e.EnvFile)
	j, err := e.loadJournal()
	if err == nil && j == nil {
		j, err = e.strayPending()
	}
	if err != nil || j == nil {
		r.TempFilesRemoved = removed
		return r, err
	}
	r, err = e.resolve(ctx, j, auth.Secret{}, nil)
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
// key, so the key is adopted if the env file holds it and revoked if not.
func (e *Engine) strayPending() (*journal, error) {
	p, err := e.loadPending("")
	if err != nil || p == nil {
		return nil, err
	}
	if !rotationIDPattern().MatchString(p.RotationID) {
		return nil, fmt.Errorf("pending file %s has no valid rotation id; move it away and restart", e.pendingPath())
	}
	return &journal{Version: journalVersion, RotationID: p.RotationID, Var: e.Var, EnvFile: e.EnvFile, NewKeyID: p.KeyID}, nil
}

// state is what recovery observes, rather than what the journal claims: a
// crash can fall between any action and its journal entry.
type state struct {
	envValue string
	env      Holder
	envWorks bool
	pending  *pending // set only when the new key reached the pending file
	replay   auth.Secret
	tagged   []provider.Key
	// taggedErr: the backend refused every credential recovery had when
	// asked for the rotation's keys (the old key is dead, and so is the
	// replay credential). tagged is then unknown, and is asked for again
	// once a working key is in place.
	taggedErr error
}

func (e *Engine) observe(ctx context.Context, j *journal) (state, error) {
	var st state
	vars, err := auth.ReadEnvFile(j.EnvFile)
	if err != nil {
		return st, fmt.Errorf("env file %s: %w", j.EnvFile, err)
	}
	st.envValue = vars[e.Var]
	if st.envValue != "" {
		st.env, err = e.Backend.Verify(ctx, auth.NewSecret(st.envValue))
		switch {
		case err == nil:
			st.envWorks = true
		case !errors.Is(err, auth.ErrInvalidToken):
			return st, fmt.Errorf("checking %s: %w", e.Var, err)
		}
	}
	p, err := e.loadPending(j.RotationID)
	if err != nil {
		return st, err
	}
	if p != nil {
		st.replay = auth.NewSecret(p.Replay)
	}
	if p.hasKey() {
		st.pending = p
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
// lost, and recovery does not end while one may be left unrevoked.
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

// holdsNew reports whether the env file's working key is one this rotation
// made: the swap happened.
func (st state) holdsNew(j *journal) bool {
	switch {
	case !st.envWorks:
		return false
	case j.NewKeyID != "" && st.env.KeyID == j.NewKeyID:
		return true
	case st.pending != nil && st.envValue == st.pending.Secret:
		return true
	}
	return slices.ContainsFunc(st.tagged, func(k provider.Key) bool { return k.ID == st.env.KeyID })
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
// old is the old secret and mem the new key as the backend returned it; at
// startup both are unknown. mem is used only when the old key is dead: with
// the old key alive, a key that never reached the pending file is an
// orphan, as after a crash, and is revoked.
func (e *Engine) resolve(ctx context.Context, j *journal, old auth.Secret, mem *pending) (Report, error) {
	r := Report{RotationID: j.RotationID, Var: e.Var, Step: j.Step, OldKeyID: j.OldKeyID, NewKeyID: j.NewKeyID}
	if j.EnvFile != e.EnvFile {
		return r, fmt.Errorf("rotation %s was of env file %s, but keygate now uses %s; start keygate with the old env file once to settle it",
			j.RotationID, j.EnvFile, e.EnvFile)
	}
	st, err := e.observe(ctx, j)
	if err != nil {
		return r, fmt.Errorf("settling rotation %s: %w; nothing was changed", j.RotationID, err)
	}
	switch {
	case st.holdsNew(j):
		// The swap happened: finish it.
		r.NewKeyID = st.env.KeyID
		return r, e.finish(ctx, j, st, &r, auth.NewSecret(st.envValue))
	case st.envWorks && st.pending != nil && j.OldKeyID != "" && st.env.KeyID == j.OldKeyID:
		// The new key is safe but not yet in place: verify it again and
		// resume, or undo it if it is not what it should be.
		return r, e.resume(ctx, j, st, &r, old)
	case st.envWorks:
		// The new key's secret is lost, or there is no new key: the env
		// file's key works, so every key the rotation made is an orphan.
		if j.OldKeyID != "" && st.env.KeyID != j.OldKeyID {
			r.Problem = fmt.Sprintf("%s now holds key %s, which is neither the rotation's old key nor its new one; old key %s was left alone",
				e.Var, st.env.KeyID, j.OldKeyID)
		}
		return r, e.rollback(ctx, j, st, &r)
	default:
		if st.pending == nil && mem != nil {
			st.pending = mem
			if st.replay.IsZero() {
				st.replay = auth.NewSecret(mem.Replay)
			}
		}
		return r, e.adopt(ctx, j, st, &r, old)
	}
}

// resume verifies the pending key and swaps it in; a key that fails the
// check is revoked and the old one kept.
func (e *Engine) resume(ctx context.Context, j *journal, st state, r *Report, old auth.Secret) error {
	next := auth.NewSecret(st.pending.Secret)
	j.NewKeyID, r.NewKeyID = st.pending.KeyID, st.pending.KeyID
	if _, err := e.verifyNew(ctx, j, next); err != nil {
		if !definitive(err) {
			return fmt.Errorf("settling rotation %s: %w; nothing was changed", j.RotationID, err)
		}
		r.Problem = err.Error()
		return e.rollback(ctx, j, st, r)
	}
	if err := e.swapTo(j, next, old); err != nil {
		r.Action, r.Problem = ActionPending, err.Error()+"; old key "+j.OldKeyID+" still works"
		for _, id := range st.made(j) {
			r.Keys = append(r.Keys, KeyFate{KeyID: id, Fate: FateKept})
		}
		r.Current = auth.NewSecret(st.envValue)
		return fmt.Errorf("rotation %s: %w; new key %s waits in the pending file and old key %s still works: fix the env file and restart keygate to finish",
			j.RotationID, err, r.NewKeyID, j.OldKeyID)
	}
	st.envValue, st.env.KeyID = st.pending.Secret, st.pending.KeyID
	return e.finish(ctx, j, st, r, next)
}

// adopt handles an env file whose credential no longer works, which happens
// when the provider revoked the old key as it created the new one. The new
// key must then be put in place: from the pending file, or by replaying the
// create when the provider can.
func (e *Engine) adopt(ctx context.Context, j *journal, st state, r *Report, old auth.Secret) error {
	var next auth.Secret
	_, needsReplay := e.Backend.(Replayer)
	switch traits := e.Backend.Traits(); {
	case st.pending != nil:
		next, j.NewKeyID = auth.NewSecret(st.pending.Secret), st.pending.KeyID
		if onDisk, _ := e.loadPending(j.RotationID); !onDisk.hasKey() {
			// Only in memory (Rotate settling its own failure): try once
			// more to make it survive a crash.
			_ = e.savePending(j.RotationID, j.NewKeyID, next, st.replay)
		}
	case traits.CreateReplays && (len(st.tagged) > 0 || traits.RevokesOldOnCreate) && (!needsReplay || !st.replay.IsZero()):
		issued, err := e.Backend.Create(ctx, CreateRequest{OldKeyID: j.OldKeyID, RotationID: j.RotationID, Replay: st.replay})
		if errors.Is(err, auth.ErrInvalidToken) {
			// The provider will never answer the replay: the key it made
			// is out of reach.
			return e.lost(ctx, j, st, r, fmt.Sprintf("%s does not work and replaying the rotation was refused (%v)", e.Var, err))
		}
		if err != nil {
			return fmt.Errorf("settling rotation %s: replaying the create: %w; nothing was changed", j.RotationID, err)
		}
		next = issued.Secret
		if err := e.persist(j, issued, st.replay); err != nil {
			e.log().Warn("could not persist the replayed key; writing it to the env file directly", "rotation_id", j.RotationID, "error", err.Error())
			j.NewKeyID = issued.Key.ID
		}
		st.tagged = appendKey(st.tagged, issued.Key)
	}
	r.NewKeyID = j.NewKeyID
	if next.IsZero() {
		return e.lost(ctx, j, st, r, fmt.Sprintf("%s does not work and the rotation's new key cannot be recovered", e.Var))
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
	if err := e.swapTo(j, next, old); err != nil {
		r.Action, r.Problem, r.Current = ActionPending, err.Error(), next
		for _, id := range st.made(j) {
			r.Keys = append(r.Keys, KeyFate{KeyID: id, Fate: FateKept})
		}
		return fmt.Errorf("settling rotation %s: %w: the old key no longer works, so keygate can only use the new one from the pending file %s",
			j.RotationID, err, e.pendingPath())
	}
	st.envValue, st.env.KeyID, st.envWorks = next.Reveal(), j.NewKeyID, true
	return e.finish(ctx, j, st, r, next)
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

// finish completes a rotation whose new key is in the env file: retire the
// old key, revoke any other key the rotation made, clear the journal.
func (e *Engine) finish(ctx context.Context, j *journal, st state, r *Report, current auth.Secret) error {
	r.Action, r.Current = ActionCompleted, current
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
	for _, k := range st.tagged {
		if k.ID == st.env.KeyID {
			r.NewKey = k
		}
	}
	if err := e.revokeAll(ctx, st.made(j), st.env.KeyID, r); err != nil {
		return err
	}
	r.Keys = append(r.Keys, KeyFate{KeyID: st.env.KeyID, Fate: FateAdopted})
	return e.clear(ctx, st.replay)
}

// rollback revokes every key the rotation made except the env file's, and
// clears the journal. The env file's key works, so this never leaves
// keygate without a credential.
func (e *Engine) rollback(ctx context.Context, j *journal, st state, r *Report) error {
	r.Current = auth.NewSecret(st.envValue)
	if err := e.lookUpTagged(ctx, j, &st); err != nil {
		r.Problem = err.Error()
		return err
	}
	ids := st.made(j)
	r.Action = ActionRolledBack
	if len(ids) == 0 {
		r.Action = ActionCleared
	}
	if err := e.revokeAll(ctx, ids, st.env.KeyID, r); err != nil {
		return err
	}
	return e.clear(ctx, st.replay)
}

// lost revokes the keys no one can use any more, clears the journal and
// says loudly that a person must issue a new credential. When the backend
// could not even list the rotation's keys, a key it made may still be live
// and unseen: the journal is kept, so that the next start, with the new
// credential a person puts in the env file, finds and revokes it.
func (e *Engine) lost(ctx context.Context, j *journal, st state, r *Report, why string) error {
	r.Action, r.Problem = ActionLost, why
	if err := e.revokeAll(ctx, st.made(j), "", r); err != nil {
		return err
	}
	fix := fmt.Sprintf("create a new key with the provider and put it in %s as %s", e.EnvFile, e.Var)
	if st.taggedErr != nil {
		r.Problem += "; the keys the rotation made could not be listed with any credential keygate has"
		return fmt.Errorf("settling rotation %s: %w: %s; %s, and restart keygate: it then revokes the key the rotation made, which no one can use",
			j.RotationID, ErrCredentialLost, why, fix)
	}
	if err := e.clear(ctx, st.replay); err != nil {
		return err
	}
	return fmt.Errorf("settling rotation %s: %w: %s; %s", j.RotationID, ErrCredentialLost, why, fix)
}

// revokeAll revokes ids except keep and records each. It stops at the first
// failure, leaving the journal for the next attempt: an orphan is never
// forgotten.
func (e *Engine) revokeAll(ctx context.Context, ids []string, keep string, r *Report) error {
	for _, id := range ids {
		if id == keep {
			continue
		}
		if err := e.Backend.Revoke(ctx, id); err != nil {
			r.Problem = fmt.Sprintf("revoking key %s failed: %v", id, err)
			return fmt.Errorf("settling rotation %s: revoking key %s: %w; recovery retries at the next start", r.RotationID, id, err)
		}
		e.log().Info("revoked a key made by an unfinished rotation", "rotation_id", r.RotationID, "key_id", id)
		r.Keys = append(r.Keys, KeyFate{KeyID: id, Fate: FateRevoked})
	}
	return nil
}
