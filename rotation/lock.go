package rotation

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"time"

	"github.com/keygate/keygate/internal/filelock"
)

// ErrInProgress is returned when another rotation of the same key, in this
// process or another, holds the lock.
var ErrInProgress = errors.New("rotation in progress")

// lockStripes is how many lock files the slots of anyone else's keys share.
// A lock file per key would leave one file behind per rotation, so a key
// that may rotate could fill the directory; 64 files are plenty for
// rotations that take milliseconds.
const lockStripes = 64

// stripeWait is how long a rotation waits for a stripe another key's
// rotation holds; the same key's second rotation then finds the key
// already rotated and is refused with that reason.
const stripeWait = 5 * time.Second

// lock takes the slot's exclusive lock: an flock on a file in Dir, which the
// kernel drops when the holder dies, so a crash never leaves a stale lock
// behind. keygate's own credential (the legacy slot) has a lock file of its
// own, taken without waiting; other keys share the lock stripes.
func (e *Engine) lock(slot string) (*filelock.Lock, error) {
	if slot != e.Legacy {
		h := fnv.New32a()
		h.Write([]byte(slot))
		path := filepath.Join(e.Dir, fmt.Sprintf("%s-stripe-%02d.lock", e.Name, h.Sum32()%lockStripes))
		ctx, cancel := context.WithTimeout(context.Background(), stripeWait)
		defer cancel()
		lk, err := filelock.Wait(ctx, path)
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("rotating %s: %w (other rotations held its lock for %s); try again", slot, ErrInProgress, stripeWait)
		}
		if err != nil {
			return nil, fmt.Errorf("taking rotation lock: %w", err)
		}
		return lk, nil
	}
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
