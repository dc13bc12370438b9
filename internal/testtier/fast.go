//go:build !slow

package testtier

// Slow is true in the slow tier (-tags slow).
const Slow = false
