package transport

import (
	"context"
	"sync"
)

// Bounds on request bodies being read. A body is read before its request
// takes a serving slot, so reading is bounded on its own: overall, since
// each read may buffer up to the body cap, and per key, so that one key
// sending bodies slowly (the lowest-scoped included) waits behind itself
// and never holds the reads of others. A read past a bound waits for a
// place rather than fail: a key's burst of quick calls only queues.
const (
	maxReaders       = maxInflight
	maxReadersPerKey = maxInflight / 8
)

// bodyReaders hands out places to read a body.
type bodyReaders struct {
	all    chan struct{}
	perKey int

	mu   sync.Mutex
	keys map[string]chan struct{}
	refs map[string]int
}

func newBodyReaders(total, perKey int) *bodyReaders {
	return &bodyReaders{all: make(chan struct{}, total), perKey: perKey,
		keys: map[string]chan struct{}{}, refs: map[string]int{}}
}

// take waits for a place for keyID within its key's bound and the overall
// one, or until ctx ends. release gives the place back.
func (b *bodyReaders) take(ctx context.Context, keyID string) (release func(), err error) {
	b.mu.Lock()
	sem, ok := b.keys[keyID]
	if !ok {
		sem = make(chan struct{}, b.perKey)
		b.keys[keyID] = sem
	}
	b.refs[keyID]++
	b.mu.Unlock()
	drop := func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.refs[keyID]--; b.refs[keyID] == 0 {
			delete(b.refs, keyID)
			delete(b.keys, keyID)
		}
	}
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		drop()
		return nil, ctx.Err()
	}
	select {
	case b.all <- struct{}{}:
	case <-ctx.Done():
		<-sem
		drop()
		return nil, ctx.Err()
	}
	return func() {
		<-b.all
		<-sem
		drop()
	}, nil
}
