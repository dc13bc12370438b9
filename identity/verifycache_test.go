package identity

import (
	"context"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
)

// countingVerifier counts store lookups and answers from a table.
type countingVerifier struct {
	calls int
	known map[string]auth.Principal
}

func (v *countingVerifier) Verify(_ context.Context, tok string) (auth.Principal, error) {
	v.calls++
	if p, ok := v.known[tok]; ok {
		return p, nil
	}
	return auth.Principal{}, auth.ErrInvalidToken
}

func TestCachingVerifier(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store := &countingVerifier{known: map[string]auth.Principal{
		"good":  {KeyID: "a"},
		"brief": {KeyID: "b", ExpiresAt: now.Add(500 * time.Millisecond)},
	}}
	c := NewCachingVerifier(store, time.Second, clock)
	ctx := context.Background()

	for range 3 {
		if _, err := c.Verify(ctx, "good"); err != nil {
			t.Fatal(err)
		}
	}
	if store.calls != 1 {
		t.Errorf("three verifications within the TTL asked the store %d times", store.calls)
	}
	now = now.Add(1100 * time.Millisecond)
	c.Verify(ctx, "good")
	if store.calls != 2 {
		t.Errorf("a stale entry was trusted (%d store calls)", store.calls)
	}
	c.Invalidate()
	c.Verify(ctx, "good")
	if store.calls != 3 {
		t.Errorf("Invalidate kept the entry (%d store calls)", store.calls)
	}

	// Failures are never cached, and a key that expires is asked again.
	for range 2 {
		if _, err := c.Verify(ctx, "bad"); err == nil {
			t.Fatal("a bad token verified")
		}
	}
	if store.calls != 5 {
		t.Errorf("a failure was cached (%d store calls)", store.calls)
	}
	c.Verify(ctx, "brief")
	delete(store.known, "brief") // the store now refuses it
	now = now.Add(600 * time.Millisecond)
	if _, err := c.Verify(ctx, "brief"); err == nil {
		t.Error("a key past its expiry was served from the cache")
	}
}

// invalidatingVerifier is a store whose answer arrives after the key it
// vouches for was revoked: the revocation's invalidation runs while the
// lookup is in flight.
type invalidatingVerifier struct {
	c     *CachingVerifier
	calls int
}

func (v *invalidatingVerifier) Verify(context.Context, string) (auth.Principal, error) {
	v.calls++
	if v.calls == 1 {
		v.c.Invalidate() // another replica revoked the key meanwhile
	}
	return auth.Principal{KeyID: "a"}, nil
}

// TestVerificationOlderThanAnInvalidationIsNotCached: a lookup that began
// before an invalidation may carry the key's state from before the change,
// so it is not cached: the next request asks the store again.
func TestVerificationOlderThanAnInvalidationIsNotCached(t *testing.T) {
	store := &invalidatingVerifier{}
	c := NewCachingVerifier(store, time.Minute, nil)
	store.c = c
	ctx := context.Background()
	for range 2 {
		if _, err := c.Verify(ctx, "tok"); err != nil {
			t.Fatal(err)
		}
	}
	if store.calls != 2 {
		t.Errorf("the store was asked %d times, want 2: a lookup overtaken by an invalidation was cached", store.calls)
	}
	if _, err := c.Verify(ctx, "tok"); err != nil || store.calls != 2 {
		t.Errorf("a lookup after the invalidation was not cached (%d calls, %v)", store.calls, err)
	}
}
