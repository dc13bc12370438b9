package identity

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/keygate/keygate/auth"
)

// DefaultVerifyCacheTTL bounds how long a verified token is trusted without
// asking the store again. Changes keygate makes itself (revoke, rotate,
// create) clear the cache at once; a revocation by another process (the
// token CLI) takes effect within this long.
const DefaultVerifyCacheTTL = time.Second

// CachingVerifier remembers successful verifications for a short time, so
// a client's calls in quick succession do not each verify the same token
// against the store, and over stdio the tool filter and the call
// middleware of one call share one verification. Failures are never
// cached. It is safe for concurrent use.
type CachingVerifier struct {
	next Verifier
	ttl  time.Duration
	now  func() time.Time

	mu      sync.Mutex
	entries map[[32]byte]cachedPrincipal
	// generation counts Invalidate calls: a verification that was asked
	// of the store before an invalidation is not cached after it, or a
	// key revoked meanwhile (on another replica) would be trusted again.
	generation uint64
}

type cachedPrincipal struct {
	p  auth.Principal
	at time.Time
}

// NewCachingVerifier wraps next; ttl <= 0 means DefaultVerifyCacheTTL.
func NewCachingVerifier(next Verifier, ttl time.Duration, now func() time.Time) *CachingVerifier {
	if ttl <= 0 {
		ttl = DefaultVerifyCacheTTL
	}
	if now == nil {
		now = time.Now
	}
	return &CachingVerifier{next: next, ttl: ttl, now: now, entries: map[[32]byte]cachedPrincipal{}}
}

// maxCached bounds memory however many distinct tokens are presented.
const maxCached = 4096

// Verify answers from the cache while an entry is fresh and its key has not
// expired, and asks the store otherwise.
func (c *CachingVerifier) Verify(ctx context.Context, tok string) (auth.Principal, error) {
	var buf [256]byte // tokens are short: hash them without a heap copy
	k := sha256.Sum256(append(buf[:0], tok...))
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[k]
	gen := c.generation
	c.mu.Unlock()
	if ok && now.Sub(e.at) < c.ttl && (e.p.ExpiresAt.IsZero() || now.Before(e.p.ExpiresAt)) {
		return e.p, nil
	}
	p, err := c.next.Verify(ctx, tok)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		delete(c.entries, k)
		return p, err
	}
	if gen != c.generation {
		return p, nil // the answer may predate the change that invalidated
	}
	if len(c.entries) >= maxCached {
		clear(c.entries)
	}
	c.entries[k] = cachedPrincipal{p: p, at: now}
	return p, nil
}

// Invalidate forgets every cached verification; keygate calls it after
// any change to keys.
func (c *CachingVerifier) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
	c.generation++
}
