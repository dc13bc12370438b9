//go:build crashtest

package main

import (
	"os"
	"syscall"

	"github.com/keygate/keygate/rotation"
)

// In a binary built with -tags crashtest, KEYGATE_CRASH_AT=STEP makes
// keygate SIGKILL itself when a rotation of its own token reaches STEP: the
// crash tests kill the real binary at every step. Release builds have no
// such hook.
func init() {
	step := os.Getenv("KEYGATE_CRASH_AT")
	if step == "" {
		return
	}
	crashHook = func(e *rotation.Engine) {
		e.OnStep = func(s rotation.Step) {
			if string(s) == step {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}
}
