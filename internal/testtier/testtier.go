// Package testtier tells tests which tier runs them. The README's test
// command (go test -race ./...) is the fast tier, meant to finish in a few
// minutes on two cores; `go test -race -tags slow ./...`, which .ci/run
// runs as well, adds the slow tier: crash and signal tests against the real
// binary, long canary and model runs, subprocess floods.
package testtier

import "testing"

// SkipUnlessSlow skips a test that belongs to the slow tier only.
func SkipUnlessSlow(t testing.TB) {
	t.Helper()
	if !Slow {
		t.Skip("slow tier: run with go test -tags slow")
	}
}

// Pick returns fast in the fast tier and slow in the slow tier: for tests
// that run in both, at different sizes.
func Pick[T any](fast, slow T) T {
	if Slow {
		return slow
	}
	return fast
}
