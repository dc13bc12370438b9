//go:build unix

package transport

import (
	"io/fs"
	"os"
	"syscall"
	"time"
)

// PollableStdin returns stdin switched to non-blocking mode when it is a
// pipe or a socket, as it is when a client launches keygate, so that reads
// go through Go's network poller: a goroutine waiting for the next request
// then parks instead of holding an OS thread in read(2), and the request
// is picked up without a hand-off between threads. restore puts the file
// back in blocking mode, since the mode belongs to the open file, which the
// client may share. A terminal or a regular file is returned as it is.
// The new file shares f's descriptor, so f must outlive it, as os.Stdin
// does.
func PollableStdin(f *os.File) (in *os.File, restore func()) {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&(fs.ModeNamedPipe|fs.ModeSocket) == 0 {
		return f, func() {}
	}
	if f.SetReadDeadline(time.Time{}) == nil {
		return f, func() {} // already on the poller
	}
	fd := int(f.Fd())
	if err := syscall.SetNonblock(fd, true); err != nil {
		return f, func() {}
	}
	restore = func() { _ = syscall.SetNonblock(fd, false) }
	in = os.NewFile(uintptr(fd), f.Name())
	if in.SetReadDeadline(time.Time{}) != nil {
		// The poller did not take it: reads would fail with EAGAIN.
		restore()
		return f, func() {}
	}
	return in, restore
}
