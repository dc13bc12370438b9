//go:build crashtest

package app

import (
	"os"
	"syscall"

	"github.com/keygate/keygate/rotation"
)

// In a binary built with -tags crashtest, KEYGATE_CRASH_AT=STEP makes
// keygate signal itself when a rotation reaches STEP: SIGKILL, or SIGTERM
// with KEYGATE_CRASH_SIGNAL=TERM. The crash tests (crash_test.go at the
// module root) stop the real binary at every step. Release builds have no
// such hook.
func init() {
	step := os.Getenv("KEYGATE_CRASH_AT")
	if step == "" {
		return
	}
	sig := syscall.SIGKILL
	if os.Getenv("KEYGATE_CRASH_SIGNAL") == "TERM" {
		sig = syscall.SIGTERM
	}
	engineHook = func(e *rotation.Engine) {
		e.OnStep = func(s rotation.Step) {
			if string(s) == step {
				_ = syscall.Kill(os.Getpid(), sig)
			}
		}
	}
}
