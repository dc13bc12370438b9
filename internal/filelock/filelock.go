// Package filelock is an exclusive lock between processes on one file: an
// flock, which the kernel drops when its holder dies, even by SIGKILL, so a
// crash never leaves a stale lock behind. The lock file itself is never
// removed, which would let two holders lock two different files.
package filelock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// ErrHeld is returned by TryLock when another holder has the lock.
var ErrHeld = errors.New("lock held by another process or call")

// Lock is a held lock; Release gives it up.
type Lock struct{ f *os.File }

// TryLock takes the lock at path (creating the file, mode 0600) without
// waiting. flock locks belong to the open file, so two goroutines that each
// call TryLock exclude each other just as two processes do.
func TryLock(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := tryLock(f); err != nil {
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, ErrHeld
		}
		return nil, fmt.Errorf("taking lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// pollEvery spaces out Wait's attempts.
const pollEvery = 5 * time.Millisecond

// Wait takes the lock at path, waiting for its holder until ctx ends.
func Wait(ctx context.Context, path string) (*Lock, error) {
	for {
		l, err := TryLock(path)
		if !errors.Is(err, ErrHeld) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

// Release unlocks by closing: the flock belongs to this open file.
func (l *Lock) Release() { _ = l.f.Close() }
