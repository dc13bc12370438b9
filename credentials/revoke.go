package credentials

import (
	"context"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/policy"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
)

// RevokePlan is a revocation the policy allowed, before anything changed.
type RevokePlan struct {
	ring Ring
	// Key is the key to revoke (on a remote provider only its id is known).
	Key provider.Key
	// Grant, when set, is the OAuth grant to revoke instead of a key: it
	// ends with its access and refresh tokens; nothing else falls with it.
	Grant *local.Grant
	// InUse: keygate itself runs on this key, or on a key that falls with
	// it; for a grant, the caller acts through it.
	InUse bool
	// Falls lists the other keys of its lineage that still work and would
	// be revoked with it.
	Falls []string
	// Noop: the key is revoked and nothing of its lineage still works, so
	// revoking it again changes nothing.
	Noop bool
}

// PlanRevoke decides whether the caller may revoke key arg ("current" or
// an id; on keygate's store, also an OAuth grant's id) and changes nothing.
func (s *Service) PlanRevoke(ctx context.Context, c Caller, r Ring, arg string) (RevokePlan, error) {
	if !r.Local && r.Remote == nil {
		return RevokePlan{}, errUnsupported(r, "revoke")
	}
	a, err := s.Actor(ctx, c)
	if err != nil {
		return RevokePlan{}, err
	}
	id, _, err := s.ResolveKey(ctx, c, r, arg)
	if err != nil {
		return RevokePlan{}, err
	}
	if s.isGrantID(r, id) {
		return s.planGrantRevoke(ctx, a, c, r, id)
	}
	t, key, err := s.target(ctx, a, policy.Revoke, r, id)
	if err != nil {
		return RevokePlan{}, err
	}
	if err := policy.Decide(a, policy.Revoke, t).Err(); err != nil {
		return RevokePlan{}, err
	}
	p := RevokePlan{ring: r, Key: key}
	if r.Local {
		live, err := s.Store.LiveLineage(ctx, id)
		if err != nil {
			return RevokePlan{}, err
		}
		p.Noop = len(live) == 0
		for _, l := range live {
			if l != id {
				p.Falls = append(p.Falls, l)
			}
		}
	}
	if r.Own != nil {
		own, ok, err := r.Own(ctx)
		if err != nil {
			return RevokePlan{}, err
		}
		p.InUse = ok && own.KeyID != "" && (own.KeyID == id || (r.Local && s.fallsWith(ctx, own.KeyID, id)))
	}
	return p, nil
}

// fallsWith reports whether revoking key id takes key held down with it.
func (s *Service) fallsWith(ctx context.Context, held, id string) bool {
	l, err := s.Store.Lineage(ctx, held)
	if err != nil {
		return false
	}
	t := policy.Target{ID: held, Ancestors: l.Ancestors, Successors: l.Successors}
	return policy.Actor{Principal: auth.Principal{KeyID: id}}.Owns(t)
}

// Revoked is a finished revocation.
type Revoked struct {
	Key provider.Key
	// Grant is the revoked OAuth grant, when the plan was for one.
	Grant *local.Grant
	// Already: the key was revoked before (its lineage is revoked anyway).
	Already bool
	// AlsoRevoked are the other keys that fell with it: its successors,
	// predecessors in their grace period, and every key any of them
	// created.
	AlsoRevoked []string
	// Removed are the places keygate had delivered the revoked secrets to
	// and removed them from ("env:NAME", "file:PATH").
	Removed []string
	// RemoveErr says why a place could not be cleaned; the keys are
	// revoked all the same.
	RemoveErr error
}

// Revoke carries out a plan. On keygate's store it takes the key's whole
// lineage with it, even when the key itself was revoked before.
func (s *Service) Revoke(ctx context.Context, p RevokePlan) (Revoked, error) {
	if p.Grant != nil {
		return s.revokeGrant(ctx, p)
	}
	if !p.ring.Local {
		k, already, err := p.ring.Remote.RevokeKey(ctx, p.Key.ID)
		if err != nil {
			return Revoked{}, err
		}
		return Revoked{Key: k, Already: already}, nil
	}
	k, revoked, already, err := s.Store.RevokeKey(ctx, p.Key.ID)
	if err != nil {
		return Revoked{}, err
	}
	s.changed()
	out := Revoked{Key: k, Already: already}
	for _, id := range revoked {
		if id != k.ID {
			out.AlsoRevoked = append(out.AlsoRevoked, id)
		}
	}
	out.Removed, out.RemoveErr = s.sweepRevoked(ctx)
	return out, nil
}

// sweepRevoked removes the delivered copies of every revoked key of
// keygate's store (package delivery, Sweep): a token whose key the store
// does not know, or cannot be read, stays.
func (s *Service) sweepRevoked(ctx context.Context) ([]string, error) {
	return s.Places.Sweep(func(id string) bool {
		k, err := s.Store.GetKey(ctx, id)
		return err == nil && !k.RevokedAt.IsZero()
	})
}
