// Package atomicfile replaces a file so that a crash leaves either the old
// content or the new, never part of either: the data goes to a temp file
// beside the target, is synced, and is renamed over it; then the directory
// is synced, so the rename itself survives a power loss. It builds and
// works on every system keygate is released for. On Windows, os.Rename
// replaces an existing file too, but fails while another process holds the
// target open without sharing deletion; and mode 0600 means nothing there:
// the file takes its directory's access list, so keep keygate's files in a
// directory only its user can read.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Write replaces path with data, at mode 0600. The temp file is named
// "." + the target's name + digits (IsTemp), in the target's directory.
func Write(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+"*")
	if err != nil {
		return fmt.Errorf("creating a temp file beside %s: %w", base, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()           // already failed; the write error says why
			_ = os.Remove(f.Name()) // nothing of it may stay behind
		}
	}()
	// CreateTemp makes it 0600 on Unix; say so for any umask or system.
	if err := f.Chmod(0o600); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("setting the mode of %s: %w", f.Name(), err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("replacing %s: %w", base, err)
	}
	return SyncDir(dir)
}

// IsTemp reports whether name is one of Write's temp files for a target
// named base: a crash between creating and renaming one leaves it behind.
func IsTemp(name, base string) bool {
	rest, ok := strings.CutPrefix(name, "."+base)
	if !ok || rest == "" {
		return false
	}
	return strings.Trim(rest, "0123456789") == ""
}
