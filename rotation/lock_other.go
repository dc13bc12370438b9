//go:build !unix

package rotation

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("would block")

// tryLock refuses: without flock the engine cannot keep two rotations apart.
func tryLock(*os.File) error {
	return errors.New("rotation needs flock, which this platform lacks")
}
