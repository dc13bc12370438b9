//go:build unix

package transport

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

func isNonblock(t *testing.T, f *os.File) bool {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		flags, ferr = fcntlFlags(fd)
	}); err != nil || ferr != nil {
		t.Fatal(err, ferr)
	}
	return flags&syscall.O_NONBLOCK != 0
}

func fcntlFlags(fd uintptr) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

func TestPollableStdin(t *testing.T) {
	t.Run("inherited pipe", func(t *testing.T) {
		// A pipe as a child inherits it: plain blocking descriptors, not
		// yet known to Go's poller (os.Pipe's would be).
		var fds [2]int
		if err := syscall.Pipe(fds[:]); err != nil {
			t.Fatal(err)
		}
		r, w := os.NewFile(uintptr(fds[0]), "r"), os.NewFile(uintptr(fds[1]), "w")
		defer w.Close()
		in, restore := PollableStdin(r)
		if in == r || !isNonblock(t, in) {
			t.Fatal("a pipe was not switched to non-blocking mode")
		}
		go func() { _, _ = w.Write([]byte("{}\n")); w.Close() }()
		b, err := io.ReadAll(in)
		if err != nil || string(b) != "{}\n" {
			t.Fatalf("read %q, %v", b, err)
		}
		restore()
		if isNonblock(t, in) {
			t.Error("restore left the pipe in non-blocking mode")
		}
		runtime.KeepAlive(r) // in shares its descriptor
	})
	t.Run("pipe already on the poller", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		in, restore := PollableStdin(r)
		defer restore()
		go func() { _, _ = w.Write([]byte("x")); w.Close() }()
		if b, err := io.ReadAll(in); err != nil || string(b) != "x" {
			t.Fatalf("read %q, %v", b, err)
		}
	})
	t.Run("regular file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "in")
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		in, restore := PollableStdin(f)
		defer restore()
		if in != f {
			t.Error("a regular file was replaced")
		}
	})
}
