package rotation

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/keygate/keygate/internal/filelock"
)

// ErrInProgress is returned when another rotation of the same key, in this
// process or another, holds the lock.
var ErrInProgress = errors.New("rotation in progress")

// lock takes the slot's exclusive, non-blocking lock: an flock on a file in
// Dir, which the kernel drops when the holder dies, so a crash never leaves
// a stale lock behind.
func (e *Engine) lock(slot string) (*filelock.Lock, error) {
	path := filepath.Join(e.Dir, slot+".lock")
	lk, err := filelock.TryLock(path)
	if errors.Is(err, filelock.ErrHeld) {
		return nil, fmt.Errorf("rotating %s: %w (another call or keygate process is rotating it right now); try again when it has finished", slot, ErrInProgress)
	}
	if err != nil {
		return nil, fmt.Errorf("taking rotation lock: %w", err)
	}
	return lk, nil
}
