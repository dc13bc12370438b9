package rotation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/internal/atomicfile"
)

// journalVersion is bumped if the journal's meaning changes, so an older
// keygate refuses a journal it would misread. Version 1 journals (keygate's
// own credential only, named by Var) are still read.
const journalVersion = 2

// journal is the durable record of one rotation. It names keys by id and
// never holds a secret: the new secret goes to the pending file, and the old
// one is never written anywhere by the engine.
type journal struct {
	Version    int    `json:"version"`
	RotationID string `json:"rotation_id"`
	// Slot names the rotation's lock, journal and pending files: one
	// rotation per slot at a time.
	Slot string `json:"slot"`
	// Backend is the name of the engine (provider) that runs it.
	Backend string `json:"backend"`
	// Dest is where the new secret goes.
	Dest delivery.Spec `json:"dest"`
	// EnvFile is the env file an Env destination was in.
	EnvFile string `json:"env_file,omitempty"`
	// HeldOld: Dest held the old secret, which keygate ran on (its own
	// credential), so the destination's value tells whether the old key
	// still works. Otherwise the backend is asked by key id.
	HeldOld   bool          `json:"held_old"`
	OldKeyID  string        `json:"old_key_id"`
	OldScopes []string      `json:"old_scopes"`
	NewKeyID  string        `json:"new_key_id,omitempty"`
	Step      Step          `json:"step"`
	Grace     time.Duration `json:"grace_ns"`
	StartedAt time.Time     `json:"started_at"`
	// Var is version 1's name for Slot and Dest's variable.
	Var string `json:"var,omitempty"`
	// Replica is the replica whose Dir holds the pending file, when the
	// journal is shared by replicas (Engine.Journals set); "" in a file
	// journal, which lives beside its pending file.
	Replica string `json:"replica,omitempty"`

	// lock is the slot's lock, held while the journal is in use: every
	// write goes through it. saved is the step last written.
	lock  JournalLock
	saved Step
}

// pending holds the new secret from the moment the backend returns it until
// the destination has it: the one place a crash cannot lose it from. With a
// Replayer it holds the replay credential from before the create, so a
// create whose answer a crash lost can be replayed; with a Reparser, the
// raw answer, kept before it is parsed.
type pending struct {
	RotationID string `json:"rotation_id"`
	KeyID      string `json:"key_id,omitempty"`
	Secret     string `json:"secret,omitempty"`
	Replay     string `json:"replay,omitempty"`
	Raw        []byte `json:"raw,omitempty"`
}

// hasKey reports whether the new key reached the pending file.
func (p *pending) hasKey() bool { return p != nil && p.Secret != "" }

var (
	rotationIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^rot-[0-9a-f]{24}$`) })
	slotPattern       = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`) })
)

func newRotationID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making rotation id: %w", err)
	}
	return "rot-" + hex.EncodeToString(b), nil
}

func (e *Engine) journalPath(slot string) string { return filepath.Join(e.Dir, slot+".journal") }
func (e *Engine) pendingPath(slot string) string { return filepath.Join(e.Dir, slot+".pending") }

// loadJournal returns the unfinished rotation of the slot lk locks, or nil
// when there is none.
func (e *Engine) loadJournal(ctx context.Context, lk JournalLock, slot string) (*journal, error) {
	rec, err := lk.Load(ctx)
	if err != nil || rec == nil {
		return nil, err
	}
	var j journal
	if err := json.Unmarshal(rec.Data, &j); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON; move it away and restart", rec.Where)
	}
	if j.Version == 1 {
		j.upgrade(e)
	}
	switch {
	case j.Version != journalVersion:
		return nil, fmt.Errorf("rotation journal %s has version %d; this keygate reads only %d", rec.Where, j.Version, journalVersion)
	case !rotationIDPattern().MatchString(j.RotationID) || j.Slot != slot:
		return nil, fmt.Errorf("rotation journal %s is not a journal of %s; move it away and restart", rec.Where, slot)
	}
	j.lock, j.saved = lk, j.Step
	return &j, nil
}

// upgrade reads a version 1 journal: keygate's own credential in variable
// Var of the env file, kept in slot Var.
func (j *journal) upgrade(e *Engine) {
	j.Version, j.Slot, j.Backend, j.HeldOld = journalVersion, j.Var, e.Name, true
	j.Dest = delivery.EnvVar(j.Var)
}

func (e *Engine) saveJournal(ctx context.Context, j *journal) error {
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("writing rotation journal: %w", err)
	}
	if err := j.lock.Save(ctx, JournalRecord{RotationID: j.RotationID, Step: j.Step, Replica: j.Replica, Data: b}); err != nil {
		return fmt.Errorf("writing rotation journal: %w", err)
	}
	j.saved = j.Step
	return nil
}

// slots lists the slots of this engine that have a journal or a pending
// file: the rotations Recover must settle. A version 1 journal belongs to
// the engine whose Legacy names its variable; a shared journal may be
// another replica's.
func (e *Engine) slots(ctx context.Context) ([]string, error) {
	out, err := e.journals().Slots(ctx, e.Name)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(e.Dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading rotation directory: %w", err)
	}
	for _, ent := range entries {
		slot, ok := strings.CutSuffix(ent.Name(), ".pending")
		if ok && ent.Type().IsRegular() && slotPattern().MatchString(slot) && !slices.Contains(out, slot) {
			out = append(out, slot)
		}
	}
	out = slices.DeleteFunc(out, func(slot string) bool { return !slotPattern().MatchString(slot) || !e.owns(slot) })
	slices.Sort(out)
	return out, nil
}

// owns reports whether slot is this engine's: its own prefix, or the
// variable of its version 1 journals.
func (e *Engine) owns(slot string) bool {
	return strings.HasPrefix(slot, e.Name+"-") || (e.Legacy != "" && slot == e.Legacy)
}

// loadPending returns the pending secret of rotation rid, if one was stored.
// A pending file of another rotation is ignored: it cannot be this one's.
func (e *Engine) loadPending(slot, rid string) (*pending, error) {
	var p pending
	found, err := readJSON(e.pendingPath(slot), &p)
	if err != nil || !found {
		return nil, err
	}
	if rid != "" && p.RotationID != rid {
		return nil, nil
	}
	if (p.Secret == "") != (p.KeyID == "") || (p.Secret == "" && p.Replay == "" && len(p.Raw) == 0) {
		return nil, fmt.Errorf("pending file %s is incomplete", e.pendingPath(slot))
	}
	return &p, nil
}

// savePending stores the new key, keeping the replay credential and the raw
// answer beside it.
func (e *Engine) savePending(slot string, p pending) error {
	if err := e.writeFile(e.pendingPath(slot), p); err != nil {
		if p.KeyID != "" {
			return fmt.Errorf("storing new key %s in the pending file: %w", p.KeyID, err)
		}
		return fmt.Errorf("storing the rotation's state in the pending file: %w", err)
	}
	return nil
}

// clear ends a rotation: the pending file goes first, so a pending secret
// never outlives the journal that explains it. A rotation of another
// replica has its pending file there, out of reach: settled records what
// became of it, for that replica to drop the file.
func (e *Engine) clear(ctx context.Context, j *journal, settled *Settlement, replay auth.Secret) error {
	if settled == nil {
		// Every caller has settled the rotation, so nothing can need a
		// replay any more; ending it while the pending file still names
		// it means a crash cannot leave it open.
		e.closeReplay(ctx, replay)
		if err := removeDurably(e.pendingPath(j.Slot)); err != nil {
			return fmt.Errorf("removing pending file: %w", err)
		}
	}
	e.step(StepPendingRemoved)
	if err := j.lock.Remove(ctx, settled); err != nil {
		return fmt.Errorf("removing rotation journal: %w", err)
	}
	e.step(StepDone)
	return nil
}

func readJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		// The decoder's message may quote the file, and the pending file
		// holds a secret, so it is not repeated.
		return false, fmt.Errorf("%s is not valid JSON; move it away and restart", path)
	}
	return true, nil
}

// writeJSONFile replaces path atomically at mode 0600: temp file in the same
// directory, fsync, rename, fsync of the directory.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'))
}

func removeDurably(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

// staleTemp is how old a temp file beside the env file must be before
// recovery removes it: another process may be writing the env file right
// now, without the rotation lock.
const staleTemp = time.Minute

// removeStaleTemps deletes temp files a crash left behind, which may hold
// secrets: the journal's and pending file's in Dir, which only the lock
// holder writes, at once; the env file's temp files (internal/atomicfile), and probes
// (which other engines sharing a directory may be making), once stale.
func (e *Engine) removeStaleTemps(slot, envFile string) int {
	now := e.now()
	n := removeMatching(e.Dir, func(name string, age time.Duration) bool {
		return atomicfile.IsTemp(name, slot+".journal") || atomicfile.IsTemp(name, slot+".pending") ||
			strings.HasPrefix(name, probePrefix) && age >= staleTemp
	}, now)
	if envFile != "" {
		base := filepath.Base(envFile)
		n += removeMatching(filepath.Dir(envFile), func(name string, age time.Duration) bool {
			return (strings.HasPrefix(name, probePrefix) || atomicfile.IsTemp(name, base)) && age >= staleTemp
		}, now)
	}
	return n
}

func removeMatching(dir string, match func(name string, age time.Duration) bool, now time.Time) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, ent := range entries {
		if !ent.Type().IsRegular() {
			continue
		}
		info, err := ent.Info()
		if err != nil || !match(ent.Name(), now.Sub(info.ModTime())) {
			continue
		}
		if os.Remove(filepath.Join(dir, ent.Name())) == nil {
			n++
		}
	}
	return n
}
