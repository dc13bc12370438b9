package cencori

import (
	"context"
	"net/http"
	"time"

	"github.com/keygate/keygate/provider/upstream"
)

// Cencori's limit: 60 requests in any 60 s (a sliding window in Redis, per
// project, across AI endpoints; docs/providers/cencori.md, "Rate limits").
// keygate keeps under it on its side, so a burst of tool calls by callers
// with a scope for Cencori waits for a slot instead of collecting 429s,
// while callers without one get a sixth of it and never wait.
const (
	rateLimit  = 60
	rateWindow = time.Minute
	rateTerms  = "60 requests per minute per project"
)

// newBudget is Cencori's share of keygate's attention: its only content
// type is memories, so callers with admin or a content scope that is not
// narrowed to another type come first.
func newBudget(now func() time.Time, sleep func(context.Context, time.Duration) error) *upstream.Budget {
	return upstream.NewBudget(upstream.BudgetConfig{
		Name: Name, Provider: "Cencori", Limit: rateLimit, Window: rateWindow, Terms: rateTerms,
		HasType: func(typ string) bool { return typ == TypeMemories },
		Scope:   "content:read:" + TypeMemories,
		RetryAt: retryAt, Now: now, Sleep: sleep,
	})
}

// retryAt reads the rate-limit headers of an answer for a time before
// which Cencori wants no request: a 429's Retry-After, and an
// X-RateLimit-Reset (milliseconds since the epoch) when nothing remains in
// the window, which also catches other clients of the same project using
// it up. It returns the later of the two; zero means none.
func retryAt(h http.Header, status int, now time.Time) time.Time {
	var at time.Time
	if status == http.StatusTooManyRequests {
		if d, ok := upstream.RetryAfter(h, now); ok {
			at = now.Add(d)
		}
	}
	if h.Get("X-RateLimit-Remaining") == "0" || status == http.StatusTooManyRequests {
		if reset, ok := resetTime(h, now); ok && reset.After(at) {
			at = reset
		}
	}
	return at
}

// resetTime reads X-RateLimit-Reset, a Unix time in milliseconds
// (docs/providers/cencori.md, "Rate limits"). A reset is never more than
// one window away; a value further out is capped at that.
func resetTime(h http.Header, now time.Time) (time.Time, bool) {
	return upstream.ResetTime(h, "X-RateLimit-Reset", time.Millisecond, now, rateWindow)
}
