package audit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/keygate/keygate/internal/atomicfile"
)

// RotatedName is the name of the n-th rotated file of the journal at path;
// 1 is the newest.
func RotatedName(path string, n int) string { return path + "." + strconv.Itoa(n) }

// rotateLocked moves the full journal to path.1, shifting path.1 to .2 and
// so on, dropping what would pass Keep, and starts a new empty journal.
// The journal's name never stops naming a file: the full file first gets
// the name path.1 as a second name, then a new file takes the name path
// in one rename. A process that opened the old file meanwhile (the token
// CLI, say) appends to what is now path.1, so no record is lost.
func (l *journalFile) rotateLocked() error {
	cur, err := l.f.Stat()
	if err != nil {
		return err
	}
	onDisk, err := os.Lstat(l.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return l.reopenLocked()
	case err != nil:
		return err
	case !os.SameFile(cur, onDisk):
		// Another process rotated it: go on in the new file.
		if err := l.reopenLocked(); err != nil || l.size < l.maxBytes {
			return err
		}
	}
	if l.dirty {
		if err := l.syncLocked(); err != nil {
			return err
		}
	}
	for n := l.keep - 1; n >= 1; n-- {
		if err := os.Rename(RotatedName(l.path, n), RotatedName(l.path, n+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	first := RotatedName(l.path, 1)
	if err := os.Remove(first); err != nil && !errors.Is(err, fs.ErrNotExist) { // Keep 1: .1 was not shifted
		return err
	}
	if err := os.Link(l.path, first); err != nil {
		return err
	}
	// CreateTemp makes the file with mode 0600.
	next, err := os.CreateTemp(filepath.Dir(l.path), "."+filepath.Base(l.path)+".new-*")
	if err == nil {
		err = next.Close()
		if err == nil {
			err = os.Rename(next.Name(), l.path)
		}
		if err != nil {
			os.Remove(next.Name())
		}
	}
	if err != nil {
		os.Remove(first) // the full file still has its first name
		return err
	}
	if err := atomicfile.SyncDir(filepath.Dir(l.path)); err != nil {
		return err
	}
	return l.reopenLocked()
}

// followLocked reopens the journal if the file held is no longer the one
// named path: another process rotated it, or it was removed.
func (l *journalFile) followLocked() error {
	cur, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	if onDisk, err := os.Lstat(l.path); err == nil && os.SameFile(cur, onDisk) {
		return nil
	}
	if err := l.reopenLocked(); err != nil {
		return fmt.Errorf("audit journal: reopening after a rotation: %w", err)
	}
	return nil
}

// reopenLocked opens the file that now has the journal's name, after
// syncing and closing the one held.
func (l *journalFile) reopenLocked() error {
	f, size, err := openJournal(l.path)
	if err != nil {
		return err
	}
	var serr error
	if l.dirty {
		serr = l.f.Sync()
	}
	old := l.f
	l.f, l.size, l.dirty = f, size, false
	return errors.Join(serr, old.Close())
}
