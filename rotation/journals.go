package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/keygate/keygate/internal/filelock"
)

// Journals keeps the journals of an engine's rotations and the locks that
// let one rotation at a time touch a slot. Engine.Journals nil keeps them
// as files in Engine.Dir, for one keygate process or several on one
// machine; rotation/pgjournal keeps them in Postgres, shared by replicas.
// Either way the pending secret stays a 0600 file in Dir: a Journals never
// sees a secret.
type Journals interface {
	// Lock takes slot's exclusive lock for engine, waiting a bounded
	// time; when another holder keeps it, the error wraps ErrInProgress.
	Lock(ctx context.Context, engine, slot string) (JournalLock, error)
	// Slots lists engine's slots that have a journal.
	Slots(ctx context.Context, engine string) ([]string, error)
	// Settlements lists the rotations of engine that ran on replica and
	// were settled by another replica (see JournalLock.Remove).
	Settlements(ctx context.Context, engine, replica string) ([]Settlement, error)
	// Forget deletes the settlement of rotation rid, once its replica has
	// no pending file of it any more.
	Forget(ctx context.Context, rid string) error
}

// JournalLock is a slot's lock while it is held, and the only way to the
// slot's journal: a writer that lost its lock can no longer write. An error
// wrapping ErrLockLost means the lock may have been lost: the rotation must
// stop as if keygate had crashed there, and recovery settles it.
type JournalLock interface {
	// Load returns the slot's journal, nil when there is none.
	Load(ctx context.Context) (*JournalRecord, error)
	// Save creates or replaces the slot's journal, durably.
	Save(ctx context.Context, r JournalRecord) error
	// Remove deletes the slot's journal. A non-nil s records that a
	// rotation that ran on another replica was settled here, in the same
	// step, so that replica drops its pending file instead of acting on it.
	Remove(ctx context.Context, s *Settlement) error
	// Release gives the lock up.
	Release()
}

// JournalRecord is one rotation's journal as a Journals keeps it. It never
// holds a secret.
type JournalRecord struct {
	RotationID string
	Step       Step
	// Replica is the replica whose Dir holds the rotation's pending file
	// ("" for file journals, which live beside it).
	Replica string
	// Data is the journal itself, JSON that only package rotation reads.
	Data []byte
	// Where names the journal in error messages (a path, a table row).
	Where string
}

// Settlement records that a rotation which ran on replica Replica was
// settled by replica By, which could not reach Replica's pending file.
type Settlement struct {
	RotationID string
	Engine     string
	Slot       string
	Replica    string
	By         string
	Action     Action
	// KeptKeyID is the rotation's key that stays in use ("" when every key
	// it made was discarded): any other key in the pending file is an
	// orphan.
	KeptKeyID string
}

// ErrLockLost means a rotation can no longer be sure it holds its lock
// (the database session that held it ended): it stops where it is, as if
// keygate had crashed, rather than race a replica that may be settling it.
var ErrLockLost = errors.New("the rotation's lock was lost")

// journals returns where the engine keeps its journals.
func (e *Engine) journals() Journals {
	if e.Journals != nil {
		return e.Journals
	}
	return fileJournals{e: e}
}

// fileJournals is the default: <slot>.journal files and flocks in Dir.
type fileJournals struct{ e *Engine }

func (f fileJournals) Lock(_ context.Context, _, slot string) (JournalLock, error) {
	lk, err := f.e.lock(slot)
	if err != nil {
		return nil, err
	}
	return &fileLock{e: f.e, slot: slot, lk: lk}, nil
}

func (f fileJournals) Slots(context.Context, string) ([]string, error) {
	entries, err := os.ReadDir(f.e.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading rotation directory: %w", err)
	}
	var out []string
	for _, ent := range entries {
		slot, ok := strings.CutSuffix(ent.Name(), ".journal")
		if ok && ent.Type().IsRegular() && slotPattern().MatchString(slot) && !slices.Contains(out, slot) {
			out = append(out, slot)
		}
	}
	return out, nil
}

// File journals are never another replica's, so none is ever settled
// elsewhere.
func (fileJournals) Settlements(context.Context, string, string) ([]Settlement, error) {
	return nil, nil
}
func (fileJournals) Forget(context.Context, string) error { return nil }

// fileLock is a held flock and the journal file of its slot.
type fileLock struct {
	e    *Engine
	slot string
	lk   *filelock.Lock
}

func (l *fileLock) Load(context.Context) (*JournalRecord, error) {
	path := l.e.journalPath(l.slot)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return &JournalRecord{Data: b, Where: path}, nil
}

func (l *fileLock) Save(_ context.Context, r JournalRecord) error {
	// The engine's writer indents it as it always has.
	return l.e.writeFile(l.e.journalPath(l.slot), json.RawMessage(r.Data))
}

func (l *fileLock) Remove(context.Context, *Settlement) error {
	return removeDurably(l.e.journalPath(l.slot))
}

// File journals are never another replica's, so nothing is ever settled
// for one elsewhere.
func (l *fileLock) Settled(context.Context, string) (*Settlement, error) { return nil, nil }
func (l *fileLock) Forget(context.Context, string) error                 { return nil }
func (l *fileLock) Release()                                             { l.lk.Release() }
