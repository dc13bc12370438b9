package tools

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/provider"
)

// DefaultInspectTTL is how long a remote provider's live credential check
// (auth_whoami's description, auth_check_scopes' answers) is reused, for
// every caller. Each check costs requests against the provider's rate
// limit, which keygate's callers share; repeating it within this time
// costs none.
const DefaultInspectTTL = 30 * time.Second

// maxInspections bounds the cache: auth_check_scopes questions are keyed
// by the operations asked, which the caller chooses.
const maxInspections = 256

// inspections shares remote providers' live credential checks between
// callers for a short time. Only answers that settled the question are
// kept (settledDescription, settledAccess): a failure, a rate limit or
// keygate's own refusal is asked again by the next caller. Callers asking
// the same question at once wait for one answer. An answer is about the
// provider's own credentials, whoever asked; what each caller is shown of
// it is decided by the handlers, exactly as for a live answer. The zero
// value is ready for use.
type inspections struct {
	mu      sync.Mutex
	entries map[inspectionKey]*inspection
}

type inspectionKey struct {
	inspector Inspector // the provider instance: a reload brings new ones
	question  string    // "describe", or the scopes of a CheckAccess in order
}

// inspection is one question's answer, or its promise while in flight.
type inspection struct {
	done    chan struct{} // closed when the fields below are set
	at      time.Time     // when the question was asked
	settled bool
	desc    provider.Description
	access  []provider.Access
	err     error
}

// settledDescription reports whether a description came to a verdict on
// every credential: the provider answered, and each credential was found
// to work or to be refused.
func settledDescription(d provider.Description, err error) bool {
	if err != nil || !d.Reachable {
		return false
	}
	for _, c := range d.Credentials {
		if c.Verified != provider.VerifiedOK && c.Verified != provider.VerifiedRejected {
			return false
		}
	}
	return true
}

// settledAccess reports whether every answer of a CheckAccess is known.
func settledAccess(as []provider.Access, err error) bool {
	if err != nil {
		return false
	}
	for _, a := range as {
		if !a.Known {
			return false
		}
	}
	return true
}

// inspector shares remote providers' live credential checks between
// callers for the Deps' InspectTTL (inspections).
type inspector struct {
	d *Deps
	inspections
}

func newInspector(d *Deps) *inspector { return &inspector{d: d} }

// ttl is the Deps' InspectTTL with its default; <= 0 turns sharing off.
func (in *inspector) ttl() time.Duration {
	if in.d.InspectTTL == 0 {
		return DefaultInspectTTL
	}
	return in.d.InspectTTL
}

// describe is pr's Describe, shared for the inspector's ttl.
func (in *inspector) describe(ctx context.Context, pr Provider) (provider.Description, error) {
	got := in.answer(ctx, inspectionKey{inspector: pr.Inspect, question: "describe"}, in.ttl(), in.d.now, func() inspection {
		desc, err := pr.Inspect.Describe(ctx)
		return inspection{desc: desc, err: err, settled: settledDescription(desc, err)}
	})
	return got.desc, got.err
}

// checkAccess is pr's CheckAccess, shared for the inspector's ttl.
func (in *inspector) checkAccess(ctx context.Context, pr Provider, ops []provider.Operation) ([]provider.Access, error) {
	q := make([]string, len(ops))
	for i, op := range ops {
		q[i] = op.String()
	}
	got := in.answer(ctx, inspectionKey{inspector: pr.Inspect, question: "access " + strings.Join(q, ",")}, in.ttl(), in.d.now, func() inspection {
		access, err := pr.Inspect.CheckAccess(ctx, ops)
		return inspection{access: access, err: err, settled: settledAccess(access, err)}
	})
	return slices.Clone(got.access), got.err
}

// answer returns a fresh settled answer to key, waits for one being
// asked, or asks (ask runs with the caller's own context, so the provider
// sees who is asking). ttl <= 0 turns sharing off.
func (c *inspections) answer(ctx context.Context, key inspectionKey, ttl time.Duration, now func() time.Time, ask func() inspection) inspection {
	if ttl <= 0 || !reflect.ValueOf(key.inspector).Comparable() {
		return ask()
	}
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		select {
		case <-e.done:
			if e.settled && now().Sub(e.at) < ttl {
				c.mu.Unlock()
				return *e
			}
		default:
			c.mu.Unlock()
			select {
			case <-e.done:
				if e.settled {
					return *e
				}
				// The answer did not settle (it may have been refused for
				// the caller who asked): ask for this caller.
				return ask()
			case <-ctx.Done():
				return inspection{err: ctx.Err()}
			}
		}
	}
	if !c.makeRoom() {
		c.mu.Unlock()
		return ask()
	}
	e := &inspection{done: make(chan struct{}), at: now()}
	c.entries[key] = e
	c.mu.Unlock()

	var got inspection
	defer func() {
		// Also when ask panics: nobody may wait on e for ever.
		c.mu.Lock()
		e.settled, e.desc, e.access, e.err = got.settled, got.desc, got.access, got.err
		if !e.settled && c.entries[key] == e {
			delete(c.entries, key)
		}
		close(e.done)
		c.mu.Unlock()
	}()
	got = ask()
	return got
}

// makeRoom makes sure one more entry fits, dropping answered ones when
// full; it reports false when every entry is still being asked. c.mu is
// held.
func (c *inspections) makeRoom() bool {
	if c.entries == nil {
		c.entries = map[inspectionKey]*inspection{}
	}
	if len(c.entries) < maxInspections {
		return true
	}
	for k, e := range c.entries {
		select {
		case <-e.done:
			delete(c.entries, k)
		default:
		}
	}
	return len(c.entries) < maxInspections
}

// forget drops every answer, and lets nobody new wait for one being
// asked, which may predate the change: keygate calls it after a
// credential changes.
func (c *inspections) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}
