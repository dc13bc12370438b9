// Package benchkit is what keygate's benchmark programs (bench/...) share:
// statistics, starting and stopping servers, reading their memory, and
// small raw MCP clients for stdio and streamable HTTP. It is test tooling,
// not part of keygate.
package benchkit

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Summary describes a sample of durations.
type Summary struct {
	N                            int
	Min, P50, P90, P99, Max, Avg time.Duration
}

// Summarize sorts a copy of d and reads its percentiles (nearest rank).
func Summarize(d []time.Duration) Summary {
	if len(d) == 0 {
		return Summary{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, x := range s {
		sum += x
	}
	return Summary{N: len(s), Min: s[0], Max: s[len(s)-1], Avg: sum / time.Duration(len(s)),
		P50: Percentile(s, 50), P90: Percentile(s, 90), P99: Percentile(s, 99)}
}

// Percentile returns the p-th percentile of sorted by the nearest-rank
// method; the median of an even sample is the mean of the middle two.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if p == 50 && n%2 == 0 {
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	return sorted[min(max(rank, 1), n)-1]
}

// Median of floats (the mean of the middle two for an even count).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[n/2]
}

// MedianDuration is the median of ds.
func MedianDuration(ds []time.Duration) time.Duration {
	return Summarize(ds).P50
}

// Ms formats d in milliseconds with two decimals.
func Ms(d time.Duration) string {
	return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond))
}

// Ratio formats a/b with two decimals.
func Ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// Verdict is "MET" or "MISSED".
func Verdict(ok bool) string {
	if ok {
		return "MET"
	}
	return "MISSED"
}
