package credentials

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/policy"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
)

// An OAuth grant of keygate's embedded authorization server is a
// credential (docs/oauth.md, "Grants are credentials"), and it acts with
// the authority of the key that approved it, narrowed: its principal
// (auth.Principal.IsGrant) is turned here, and nowhere else, into that key
// with the grant's scopes and lifetime. The subject of an external
// issuer's access token (auth.Principal.IsExternal) holds no key. The rules
// that follow from both are package policy's; docs/SECURITY.md ("Key
// operations: the one policy") has them as a table.

// Grants are the embedded authorization server's grants (provider/local).
type Grants interface {
	ListGrants(ctx context.Context, f local.GrantFilter) ([]local.Grant, error)
	GetGrant(ctx context.Context, id string) (local.Grant, error)
	RevokeGrant(ctx context.Context, id, reason string) (g local.Grant, already bool, err error)
}

// grantActor is the actor an OAuth grant stands for: the key that approved
// it or, when that key was rotated, the key it was rotated into (a grant
// stays live while a key of that chain works, local.Store.LiveGrant, so it
// follows the rotation), with the grant's scopes, no more than that key
// holds, and a lifetime no longer than the grant's or the key's.
func (s *Service) grantActor(ctx context.Context, p auth.Principal) (policy.Actor, error) {
	l, err := s.Store.Lineage(ctx, p.CreatedBy)
	if err != nil {
		return policy.Actor{}, fmt.Errorf("reading the key that approved grant %s: %w", p.KeyID, err)
	}
	key := l.Key
	if n := len(l.Successors); n > 0 {
		if key, err = s.Store.GetKey(ctx, l.Successors[n-1]); err != nil {
			return policy.Actor{}, fmt.Errorf("reading the key grant %s follows: %w", p.KeyID, err)
		}
	}
	held, err := auth.ParseScopes(key.Scopes)
	if err != nil {
		return policy.Actor{}, fmt.Errorf("reading scopes of key %s: %w", key.ID, err)
	}
	var scopes auth.Scopes
	for _, sc := range p.Scopes {
		if held.Covers(sc) {
			scopes = append(scopes, sc)
		}
	}
	expires := p.ExpiresAt
	if expires.IsZero() || (!key.ExpiresAt.IsZero() && key.ExpiresAt.Before(expires)) {
		expires = key.ExpiresAt
	}
	a := policy.Actor{Grant: p.KeyID, Principal: auth.Principal{KeyID: key.ID, Name: key.Name, Masked: key.Masked, Scopes: scopes,
		CreatedAt: key.CreatedAt, ExpiresAt: expires, LastUsedAt: p.LastUsedAt, CreatedBy: key.CreatedBy, Source: p.Source}}
	if a.SupersededBy, err = s.Store.Successor(ctx, key.ID); err != nil {
		return policy.Actor{}, fmt.Errorf("reading the successor of key %s: %w", key.ID, err)
	}
	if a.LiveDescendants, err = s.Store.LiveDescendants(ctx, key.ID); err != nil {
		return policy.Actor{}, err
	}
	return a, nil
}

// externalActor is the actor an external issuer's subject stands for: the
// operator when its scopes map to admin, otherwise an actor that owns no
// key.
func externalActor(p auth.Principal) policy.Actor {
	if p.Scopes.Covers(auth.Scope{Action: auth.Admin}) {
		return policy.Actor{Operator: true, External: true}
	}
	return policy.Actor{External: true, Principal: p}
}

// isGrantID reports whether a credential argument names a grant of ring r.
func (s *Service) isGrantID(r Ring, id string) bool {
	return r.Local && s.Grants != nil && auth.Principal{KeyID: id}.IsGrant()
}

// grantTarget describes grant id for the policy: a credential its
// approving key created. To a caller that may not see every grant, one
// that does not exist looks like one it may not touch.
func (s *Service) grantTarget(ctx context.Context, a policy.Actor, act policy.Action, r Ring, id string) (policy.Target, local.Grant, error) {
	g, err := s.Grants.GetGrant(ctx, id)
	if errors.Is(err, provider.ErrNotFound) && !a.SeesAll() {
		return policy.Target{}, local.Grant{}, policy.Decide(a, act, policy.Target{Provider: r.Provider, ID: id, Grant: true}).Err()
	}
	if err != nil {
		return policy.Target{}, local.Grant{}, err
	}
	t, err := s.grantLineage(ctx, r, g)
	return t, g, err
}

// grantLineage places grant g below the key that approved it.
func (s *Service) grantLineage(ctx context.Context, r Ring, g local.Grant) (policy.Target, error) {
	sc, err := auth.ParseScopes(g.Scopes)
	if err != nil {
		return policy.Target{}, fmt.Errorf("reading scopes of grant %s: %w", g.ID, err)
	}
	t := policy.Target{Provider: r.Provider, ID: g.ID, Grant: true, Scopes: sc, ExpiresAt: g.ExpiresAt, Ancestors: []string{g.ApprovedBy}}
	l, err := s.Store.Lineage(ctx, g.ApprovedBy)
	switch {
	case errors.Is(err, provider.ErrNotFound):
	case err != nil:
		return policy.Target{}, err
	default:
		t.Ancestors, t.Successors = append(t.Ancestors, l.Ancestors...), l.Successors
	}
	return t, nil
}

// Listing is what credentials_list shows of a ring: the keys and, on
// keygate's store, the OAuth grants the caller may see. Note says why it
// is empty when the caller can see nothing by its nature.
type Listing struct {
	Keys   []provider.Key
	Grants []local.Grant
	Note   string
}

// ListCredentials lists the keys of r the caller may see (as List) and, on
// keygate's store, the grants: every grant for an admin (or the operator),
// otherwise those approved by keys the caller owns. An external issuer's
// subject without admin owns nothing, and is told so.
func (s *Service) ListCredentials(ctx context.Context, c Caller, r Ring) (Listing, error) {
	if c.Principal != nil && c.Principal.IsExternal() {
		if a := externalActor(*c.Principal); !a.SeesAll() {
			d := policy.Decide(a, policy.List, policy.Target{Provider: r.Provider})
			return Listing{Keys: []provider.Key{}, Grants: []local.Grant{}, Note: d.Reason + "; " + d.Fix}, nil
		}
	}
	a, err := s.Actor(ctx, c)
	if err != nil {
		return Listing{}, err
	}
	keys, err := s.listKeys(ctx, a, r)
	if err != nil {
		return Listing{}, err
	}
	out := Listing{Keys: keys, Grants: []local.Grant{}}
	if !r.Local || s.Grants == nil {
		return out, nil
	}
	all, err := s.Grants.ListGrants(ctx, local.GrantFilter{})
	if err != nil {
		return Listing{}, err
	}
	if a.SeesAll() {
		out.Grants = all
		return out, nil
	}
	stored, err := s.Store.ListKeys(ctx)
	if err != nil {
		return Listing{}, err
	}
	lines := lineages(stored)
	for _, g := range all {
		t := policy.Target{Provider: r.Provider, ID: g.ID, Grant: true, Ancestors: []string{g.ApprovedBy}}
		if l, ok := lines[g.ApprovedBy]; ok {
			t.Ancestors, t.Successors = append(t.Ancestors, l.Ancestors...), l.Successors
		}
		if policy.Decide(a, policy.List, t).Allowed {
			out.Grants = append(out.Grants, g)
		}
	}
	return out, nil
}

// planGrantRevoke decides a revocation of grant id.
func (s *Service) planGrantRevoke(ctx context.Context, a policy.Actor, c Caller, r Ring, id string) (RevokePlan, error) {
	t, g, err := s.grantTarget(ctx, a, policy.Revoke, r, id)
	if err != nil {
		return RevokePlan{}, err
	}
	if err := policy.Decide(a, policy.Revoke, t).Err(); err != nil {
		return RevokePlan{}, err
	}
	now := s.now()
	return RevokePlan{ring: r, Grant: &g, Noop: grantEnded(g, now),
		InUse: c.Principal != nil && c.Principal.KeyID == g.ID}, nil
}

func grantEnded(g local.Grant, now time.Time) bool {
	return (!g.RevokedAt.IsZero() && !g.RevokedAt.After(now)) || !now.Before(g.ExpiresAt)
}

// revokeGrant ends the grant of plan p, and its access and refresh tokens
// with it.
func (s *Service) revokeGrant(ctx context.Context, p RevokePlan) (Revoked, error) {
	g, already, err := s.Grants.RevokeGrant(ctx, p.Grant.ID, local.GrantRevokedByUser)
	if err != nil {
		return Revoked{}, err
	}
	s.changed()
	return Revoked{Grant: &g, Already: already}, nil
}
