//go:build !unix

package transport

import "os"

// PollableStdin returns f as it is: see stdin_unix.go.
func PollableStdin(f *os.File) (in *os.File, restore func()) { return f, func() {} }
