package agrenting

import (
	"context"
	"net/http"
	"time"

	"github.com/keygate/keygate/provider/upstream"
)

// Agrenting's general limit: 100 requests in 60 s per agent by default,
// scaled by the agent's reputation (docs/providers/agrenting.md, "Rate
// limits"). keygate keeps to the default on its side; a lower limit shows
// as 429s, whose retry-after holds every request back.
const (
	rateLimit  = 100
	rateWindow = time.Minute
	rateTerms  = "100 requests per minute per agent"
)

// newBudget spends Agrenting's limit on callers with a scope for its
// types (tasks, artifacts) first.
func newBudget(now func() time.Time, sleep func(context.Context, time.Duration) error) *upstream.Budget {
	return upstream.NewBudget(upstream.BudgetConfig{
		Name: Name, Provider: "Agrenting", Limit: rateLimit, Window: rateWindow, Terms: rateTerms,
		HasType: func(typ string) bool { return typ == TypeTasks || typ == TypeArtifacts },
		Scope:   "content:read:" + TypeTasks,
		RetryAt: retryAt, Now: now, Sleep: sleep,
	})
}

// retryAt is a 429's retry-after (seconds or an HTTP date): the agent's
// window is spent, for every request keygate makes as that agent.
func retryAt(h http.Header, status int, now time.Time) time.Time {
	if status != http.StatusTooManyRequests {
		return time.Time{}
	}
	if d, ok := upstream.RetryAfter(h, now); ok {
		return now.Add(d)
	}
	return time.Time{}
}
