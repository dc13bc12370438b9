package upstream

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// DefaultLowShareDivisor sets how much of a Budget callers without a scope
// for the provider may use: a sixth of each window.
const DefaultLowShareDivisor = 6

// BudgetConfig describes one provider's rate limit.
type BudgetConfig struct {
	// Name is keygate's name for the provider ("cencori"), and Provider
	// the name people know it by ("Cencori"), for errors.
	Name, Provider string
	// Limit requests may be sent in any Window: a sliding window, as the
	// providers count it.
	Limit  int
	Window time.Duration
	// Terms is the limit as the provider states it ("60 requests per
	// minute per project"), for errors.
	Terms string
	// LowShare is how many of a window's requests callers without a scope
	// for the provider may use between them; 0 means
	// Limit/DefaultLowShareDivisor, at least 1.
	LowShare int
	// MaxWait is the longest a caller with a scope waits for a slot; 0
	// means Window, within which a slot always frees.
	MaxWait time.Duration
	// HasType reports whether typ is one of the provider's content types,
	// for the priority rule (auth.Scopes.HasScopeFor). nil: the types are
	// not known, and only admin and unnarrowed content scopes count.
	HasType func(typ string) bool
	// Scope is a scope that gives a caller priority, named in refusals
	// ("content:read:memories").
	Scope string
	// RetryAt, when set, reads an answer's headers for a time before
	// which the provider asked for no request (Retry-After, a reset time);
	// zero means none. Every caller is held back until then.
	RetryAt func(h http.Header, status int, now time.Time) time.Time
	// Now and Sleep are the clock; nil: time.Now and Sleep.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Budget spends one provider's rate limit for everyone keygate serves.
// Callers with a scope for the provider (auth.Scopes.HasScopeFor, and
// keygate's own work, which no tool call made) come first: they may use
// the whole limit and wait for a free slot. Every other caller may use only
// LowShare requests of a window and never waits: when its share, or the
// window, is used up, or callers with a scope are already waiting, it is
// refused at once with a *provider.RationedError. So keys that cannot use
// the provider cannot queue in front of keys that can. It is safe for
// concurrent use.
type Budget struct {
	cfg BudgetConfig

	mu    sync.Mutex
	sent  []time.Time // the send times (some ahead, reserved) of the last Limit requests
	low   []time.Time // the send times of the last LowShare low-priority requests
	until time.Time   // the provider asked for no request before this
}

// NewBudget returns a Budget for cfg, whose Limit and Window must be
// positive.
func NewBudget(cfg BudgetConfig) *Budget {
	if cfg.Limit <= 0 || cfg.Window <= 0 {
		panic("upstream: a Budget needs a positive Limit and Window")
	}
	if cfg.LowShare <= 0 {
		cfg.LowShare = max(1, cfg.Limit/DefaultLowShareDivisor)
	}
	cfg.LowShare = min(cfg.LowShare, cfg.Limit)
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = cfg.Window
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = Sleep
	}
	return &Budget{cfg: cfg}
}

// LowShare is how many requests of a window callers without a scope for
// the provider may use.
func (b *Budget) LowShare() int { return b.cfg.LowShare }

// Priority reports whether the caller ctx belongs to comes first: a tool
// call by a caller with a scope for the provider, or work that no tool
// call made (auth.CallerScopes reports none).
func (b *Budget) Priority(ctx context.Context) bool {
	ss, fromTool := auth.CallerScopes(ctx)
	return !fromTool || ss.HasScopeFor(b.cfg.HasType)
}

// Take reserves a slot for one request. A caller with priority waits for
// its slot, unless that is further than MaxWait or past ctx's deadline:
// then it gets a *provider.UpstreamError (ErrRateLimited, status 429) that
// says nothing was sent. Any other caller gets a slot only when one is free
// now and its share allows, else a *provider.RationedError at once. A nil
// Budget admits everything.
func (b *Budget) Take(ctx context.Context) error {
	if b == nil {
		return nil
	}
	priority := b.Priority(ctx)
	b.mu.Lock()
	now := b.cfg.Now()
	at := now
	if b.until.After(at) {
		at = b.until
	}
	if free, ok := nextFree(b.sent, b.cfg.Limit, b.cfg.Window); ok && free.After(at) {
		at = free
	}
	wait := at.Sub(now)
	if !priority {
		if free, ok := nextFree(b.low, b.cfg.LowShare, b.cfg.Window); ok && free.Sub(now) > wait {
			wait = free.Sub(now)
		}
		if wait > 0 {
			b.mu.Unlock()
			return &provider.RationedError{Provider: b.cfg.Provider, Limit: b.cfg.Terms, Scope: b.cfg.Scope, RetryAfter: wait}
		}
		b.low = keepLast(append(b.low, now), b.cfg.LowShare)
	} else if wait > 0 {
		if dl, ok := ctx.Deadline(); wait > b.cfg.MaxWait || (ok && at.After(dl)) {
			b.mu.Unlock()
			return &provider.UpstreamError{Provider: b.cfg.Name, Status: http.StatusTooManyRequests, RetryAfter: wait, Kind: provider.ErrRateLimited,
				Message: fmt.Sprintf("held back by keygate, nothing was sent: %s allows %s (or asked keygate to wait); next slot in %s",
					b.cfg.Provider, b.cfg.Terms, wait.Round(time.Second))}
		}
	}
	b.sent = keepLast(append(b.sent, at), b.cfg.Limit)
	b.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	return b.cfg.Sleep(ctx, wait)
}

// nextFree is when the oldest of the last limit sends leaves the window;
// ok is false while fewer than limit were sent.
func nextFree(sent []time.Time, limit int, window time.Duration) (time.Time, bool) {
	if len(sent) < limit {
		return time.Time{}, false
	}
	return sent[len(sent)-limit].Add(window), true
}

func keepLast(ts []time.Time, n int) []time.Time {
	if len(ts) <= n {
		return ts
	}
	return append(ts[:0], ts[len(ts)-n:]...)
}

// Observe reads an answer for a time the provider asked keygate to wait
// until (RetryAt), and holds every request back until then.
func (b *Budget) Observe(h http.Header, status int) {
	if b == nil || b.cfg.RetryAt == nil {
		return
	}
	b.HoldUntil(b.cfg.RetryAt(h, status, b.cfg.Now()))
}

// Hold holds every request back for d from now.
func (b *Budget) Hold(d time.Duration) {
	if b == nil || d <= 0 {
		return
	}
	b.HoldUntil(b.cfg.Now().Add(d))
}

// HoldUntil holds every request back until t.
func (b *Budget) HoldUntil(t time.Time) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.After(b.until) {
		b.until = t
	}
}
