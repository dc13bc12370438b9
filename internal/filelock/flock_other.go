//go:build !unix && !windows

package filelock

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("would block")

// tryLock refuses: without flock keygate cannot keep two processes apart.
func tryLock(*os.File) error {
	return errors.New("file locks need flock, which this platform lacks")
}
