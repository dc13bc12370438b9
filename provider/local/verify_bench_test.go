package local

import (
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// BenchmarkVerify verifies a valid token: shape and checksum, a lookup by
// public id on the read pool, the digest compare and the scope parse. The
// clock stands still, so after the first call last_used_at is fresh and no
// call writes (as for a key used more than once a minute). Over HTTP keygate
// verifies the caller's token on every request (bench/README.md).
func BenchmarkVerify(b *testing.B) {
	clock := newClock()
	s := openTestStore(b, testTarget(b), Options{Now: clock.Now})
	issued, err := s.CreateKey(b.Context(), provider.NewKey{Name: "bench", Scopes: auth.Scopes{{Action: auth.Admin}},
		ExpiresAt: clock.Now().Add(30 * 24 * time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	tok := issued.Secret.Reveal()
	ctx := b.Context()
	if _, err := s.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Verify(ctx, tok); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkGet reads one object by id, what content_get asks the store for.
func BenchmarkGet(b *testing.B) {
	s := openTestStore(b, testTarget(b), Options{})
	ctx := b.Context()
	if err := s.Seed(ctx); err != nil {
		b.Fatal(err)
	}
	page, err := s.List(ctx, provider.ListQuery{Type: "posts", Limit: 1})
	if err != nil || len(page.Objects) == 0 {
		b.Fatal(err)
	}
	ref := provider.Ref{ID: page.Objects[0].ID}
	for b.Loop() {
		if _, err := s.Get(ctx, "posts", ref); err != nil {
			b.Fatal(err)
		}
	}
}
