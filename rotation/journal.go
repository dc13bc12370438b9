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
	"strings"
	"sync"
	"time"

	"github.com/google/renameio/v2"

	"github.com/keygate/keygate/auth"
)

// journalVersion is bumped if the journal's meaning changes, so an older
// keygate refuses a journal it would misread.
const journalVersion = 1

// journal is the durable record of one rotation. It names keys by id and
// never holds a secret: the new secret goes to the pending file, and the old
// one is never written anywhere by the engine.
type journal struct {
	Version    int           `json:"version"`
	RotationID string        `json:"rotation_id"`
	Var        string        `json:"var"`
	EnvFile    string        `json:"env_file"`
	OldKeyID   string        `json:"old_key_id"`
	OldScopes  []string      `json:"old_scopes"`
	NewKeyID   string        `json:"new_key_id,omitempty"`
	Step       Step          `json:"step"`
	Grace      time.Duration `json:"grace_ns"`
	StartedAt  time.Time     `json:"started_at"`
}

// pending holds the new secret from the moment the backend returns it until
// the env file has it: the one place a crash cannot lose it from. With a
// Replayer it holds the replay credential from before the create, so a
// create whose answer a crash lost can be replayed.
type pending struct {
	RotationID string `json:"rotation_id"`
	KeyID      string `json:"key_id,omitempty"`
	Secret     string `json:"secret,omitempty"`
	Replay     string `json:"replay,omitempty"`
}

// hasKey reports whether the new key reached the pending file.
func (p *pending) hasKey() bool { return p != nil && p.Secret != "" }

var rotationIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^rot-[0-9a-f]{24}$`) })

func newRotationID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making rotation id: %w", err)
	}
	return "rot-" + hex.EncodeToString(b), nil
}

func (e *Engine) journalPath() string { return filepath.Join(e.Dir, e.Var+".journal") }
func (e *Engine) pendingPath() string { return filepath.Join(e.Dir, e.Var+".pending") }

// loadJournal returns the unfinished rotation, or nil when there is none.
func (e *Engine) loadJournal() (*journal, error) {
	var j journal
	found, err := readJSON(e.journalPath(), &j)
	if err != nil || !found {
		return nil, err
	}
	switch {
	case j.Version != journalVersion:
		return nil, fmt.Errorf("rotation journal %s has version %d; this keygate reads only %d", e.journalPath(), j.Version, journalVersion)
	case !rotationIDPattern().MatchString(j.RotationID) || j.Var != e.Var:
		return nil, fmt.Errorf("rotation journal %s is not a journal for %s; move it away and restart", e.journalPath(), e.Var)
	}
	return &j, nil
}

func (e *Engine) saveJournal(j *journal) error {
	if err := e.writeFile(e.journalPath(), j); err != nil {
		return fmt.Errorf("writing rotation journal: %w", err)
	}
	return nil
}

// loadPending returns the pending secret of rotation rid, if one was stored.
// A pending file of another rotation is ignored: it cannot be this one's.
func (e *Engine) loadPending(rid string) (*pending, error) {
	var p pending
	found, err := readJSON(e.pendingPath(), &p)
	if err != nil || !found {
		return nil, err
	}
	if rid != "" && p.RotationID != rid {
		return nil, nil
	}
	if (p.Secret == "") != (p.KeyID == "") || (p.Secret == "" && p.Replay == "") {
		return nil, fmt.Errorf("pending file %s is incomplete", e.pendingPath())
	}
	return &p, nil
}

// savePending stores the new key, keeping the replay credential beside it.
func (e *Engine) savePending(rid string, keyID string, secret, replay auth.Secret) error {
	if err := e.writeFile(e.pendingPath(), pending{RotationID: rid, KeyID: keyID, Secret: secret.Reveal(), Replay: replay.Reveal()}); err != nil {
		return fmt.Errorf("storing new key %s in the pending file: %w", keyID, err)
	}
	return nil
}

// saveReplay stores the replay credential before the create.
func (e *Engine) saveReplay(rid string, replay auth.Secret) error {
	if err := e.writeFile(e.pendingPath(), pending{RotationID: rid, Replay: replay.Reveal()}); err != nil {
		return fmt.Errorf("storing the replay credential in the pending file: %w", err)
	}
	return nil
}

// clear ends a rotation: the pending file goes first, so a pending secret
// never outlives the journal that explains it.
func (e *Engine) clear(ctx context.Context, replay auth.Secret) error {
	// Every caller has settled the rotation, so nothing can need a replay
	// any more; ending it while the pending file still names it means a
	// crash cannot leave it open.
	e.closeReplay(ctx, replay)
	if err := removeDurably(e.pendingPath()); err != nil {
		return fmt.Errorf("removing pending file: %w", err)
	}
	e.step(StepPendingRemoved)
	if err := removeDurably(e.journalPath()); err != nil {
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
	dir := filepath.Dir(path)
	f, err := renameio.NewPendingFile(path, renameio.WithTempDir(dir), renameio.WithStaticPermissions(0o600))
	if err != nil {
		return err
	}
	defer f.Cleanup()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return err
	}
	if err := f.CloseAtomicallyReplace(); err != nil {
		return err
	}
	return syncDir(dir)
}

func removeDurably(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// staleTemp is how old a temp file beside the env file must be before
// recovery removes it: another process may be writing the env file right
// now, without the rotation lock.
const staleTemp = time.Minute

// removeStaleTemps deletes temp files a crash left behind, which may hold
// secrets: the journal's and pending file's in Dir, which only the lock
// holder writes, at once; the env file's renameio temp files, and probes
// (which other engines sharing a directory may be making), once stale.
func (e *Engine) removeStaleTemps(envFile string) int {
	now := e.now()
	n := removeMatching(e.Dir, func(name string, age time.Duration) bool {
		return renameioTemp(name, e.Var+".journal") || renameioTemp(name, e.Var+".pending") ||
			strings.HasPrefix(name, probePrefix) && age >= staleTemp
	}, now)
	if envFile != "" {
		base := filepath.Base(envFile)
		n += removeMatching(filepath.Dir(envFile), func(name string, age time.Duration) bool {
			return (strings.HasPrefix(name, probePrefix) || renameioTemp(name, base)) && age >= staleTemp
		}, now)
	}
	return n
}

// renameioTemp matches renameio's temp names for base: "." + base + digits.
func renameioTemp(name, base string) bool {
	rest, ok := strings.CutPrefix(name, "."+base)
	if !ok || rest == "" {
		return false
	}
	return strings.Trim(rest, "0123456789") == ""
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
