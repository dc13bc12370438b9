package cosmic

import (
	"time"

	"github.com/keygate/keygate/provider/upstream"
)

// Cosmic's limit: 100 requests per second per bucket, with bursts to 200,
// for requests its cache does not answer (docs/providers/cosmic.md, "Rate
// limits"). keygate keeps to 100 in any second, counting every request it
// sends (dashboard API included), and spends them on callers with a scope
// for the bucket's types first.
const (
	rateLimit  = 100
	rateWindow = time.Second
	rateTerms  = "100 requests per second per bucket"
)

func (c *Client) newBudget() *upstream.Budget {
	return upstream.NewBudget(upstream.BudgetConfig{
		Name: Name, Provider: "Cosmic", Limit: rateLimit, Window: rateWindow, Terms: rateTerms,
		HasType: c.knownType,
		Scope:   "a content scope for one of the bucket's types (content_types lists them)",
		Now:     c.api.Now, Sleep: c.api.Caller.Sleep,
	})
}

// knownType reports whether typ is one of the bucket's object types as
// Types last listed them. Before Types has answered, no narrowed scope
// counts: only admin and unnarrowed content scopes give priority.
func (c *Client) knownType(typ string) bool {
	known := c.types.Load()
	return known != nil && (*known)[typ]
}

// learnTypes records the bucket's object types.
func (c *Client) learnTypes(types []objectType) {
	known := make(map[string]bool, len(types))
	for _, t := range types {
		known[t.Slug] = true
	}
	c.types.Store(&known)
}
