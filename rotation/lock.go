package rotation

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrInProgress is returned when another rotation of the same credential,
// in this process or another, holds the lock.
var ErrInProgress = errors.New("rotation in progress")

// lock is an exclusive, non-blocking lock on one credential. It is an flock
// on a file in Dir, so the kernel drops it when the holder dies, even by
// SIGKILL: a crash never leaves a stale lock behind. The file itself is
// never removed, which would let two holders lock two different files.
type lock struct{ f *os.File }

func (e *Engine) lock() (*lock, error) {
	path := filepath.Join(e.Dir, e.Var+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening rotation lock: %w", err)
	}
	if err := tryLock(f); err != nil {
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("rotating %s: %w (lock %s is held by another call or keygate process); try again when it has finished", e.Var, ErrInProgress, path)
		}
		return nil, fmt.Errorf("taking rotation lock %s: %w", path, err)
	}
	return &lock{f: f}, nil
}

// release unlocks by closing: the flock belongs to this open file.
func (l *lock) release() { _ = l.f.Close() }
