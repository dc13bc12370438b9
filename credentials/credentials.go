// Package credentials carries out every key operation keygate offers
// (list, create, rotate, revoke) for the tools and for the token CLI alike:
// it gathers the facts about the caller and the key, asks the one policy
// (package policy), sends every rotation through the journaled engine
// (package rotation) and every new secret through package delivery. Tools
// and the CLI only read arguments and render answers.
package credentials

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/policy"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/rotation"
)

// Store is keygate's own key store (provider/local), as the service needs
// it.
type Store interface {
	CreateKey(ctx context.Context, nk provider.NewKey) (provider.IssuedKey, error)
	ListKeys(ctx context.Context) ([]provider.Key, error)
	GetKey(ctx context.Context, id string) (provider.Key, error)
	Lineage(ctx context.Context, id string) (provider.Lineage, error)
	LiveDescendants(ctx context.Context, id string) (int, error)
	Successor(ctx context.Context, id string) (string, error)
	RevokeKey(ctx context.Context, id string) (k provider.Key, revoked []string, already bool, err error)
	LiveLineage(ctx context.Context, id string) ([]string, error)
	Verify(ctx context.Context, token string) (auth.Principal, error)
}

// RemoteKeys is a provider's own key API (Agrenting).
type RemoteKeys interface {
	ListKeys(ctx context.Context) ([]provider.Key, error)
	CreateKey(ctx context.Context, name string) (provider.IssuedKey, error)
	RevokeKey(ctx context.Context, id string) (k provider.Key, already bool, err error)
}

// Own is keygate's own credential for a provider: the one it runs on.
type Own struct {
	// KeyID is the key's id, or "" when the provider cannot say.
	KeyID string
	// Var is the variable that holds it (KEYGATE_TOKEN, AGRENTING_API_KEY).
	Var    string
	Secret auth.Secret
	// InEnvFile reports that keygate's env file holds it, so a rotation
	// can put the successor there. When false it comes from keygate's
	// environment (say, a client's config), which keygate cannot rewrite.
	InEnvFile bool
	// Follow switches keygate to a successor in memory.
	Follow func(auth.Secret)
}

// Ring is one provider's keys.
type Ring struct {
	Provider string
	// Local is set for keygate's own store, whose keys carry keygate
	// scopes and a lineage.
	Local bool
	// Remote is set for a provider with its own key API.
	Remote RemoteKeys
	// Engine rotates this provider's keys; nil when keygate cannot.
	Engine *rotation.Engine
	// Own finds keygate's own credential for the provider, if it runs on
	// one; nil when it never does.
	Own func(ctx context.Context) (Own, bool, error)
	// RotateHint tells a person how to rotate this provider's keys by
	// hand, when keygate cannot.
	RotateHint string
}

// Service applies the policy to every key operation. Its fields are its
// dependencies, set once.
type Service struct {
	// Store is keygate's own key store: the local ring's keys, and where
	// a caller's own key is looked up for every ring.
	Store  Store
	Places delivery.Places
	// Learn registers a new secret with keygate's redactor.
	Learn func(secret string)
	// Grants are the embedded authorization server's grants, listed and
	// revoked like keys on keygate's own ring; nil when there are none.
	Grants Grants
	// Changed is called after any key changed, so no one acts on a
	// cached verification.
	Changed func()
	Now     func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) learn(sec auth.Secret) {
	if s.Learn != nil && !sec.IsZero() {
		s.Learn(sec.Reveal())
	}
}

func (s *Service) changed() {
	if s.Changed != nil {
		s.Changed()
	}
}

// Caller is who asks: a verified key with the credential it presented, or
// the operator.
type Caller struct {
	Principal *auth.Principal // nil for the operator
	Cred      auth.Credential
	// SetSession, when the caller acts through a session (auth_authenticate),
	// switches that session to another credential; it reports false when
	// the call has no lasting session.
	SetSession func(auth.Credential) bool
}

// OperatorCaller is the token CLI.
var OperatorCaller = Caller{}

// Actor gathers what the policy needs to know about the caller. An OAuth
// grant acts as the key that approved it, narrowed to the grant; an
// external issuer's subject holds no key (grants.go).
func (s *Service) Actor(ctx context.Context, c Caller) (policy.Actor, error) {
	switch {
	case c.Principal == nil:
		return policy.Operator, nil
	case c.Principal.IsGrant():
		return s.grantActor(ctx, *c.Principal)
	case c.Principal.IsExternal():
		return externalActor(*c.Principal), nil
	}
	a := policy.Actor{Principal: *c.Principal}
	var err error
	if a.SupersededBy, err = s.Store.Successor(ctx, c.Principal.KeyID); err != nil {
		return policy.Actor{}, fmt.Errorf("reading your key's successor: %w", err)
	}
	if a.LiveDescendants, err = s.Store.LiveDescendants(ctx, c.Principal.KeyID); err != nil {
		return policy.Actor{}, err
	}
	return a, nil
}

// errUnsupported refuses an operation a provider has no API for.
func errUnsupported(r Ring, what string) error {
	fix := r.RotateHint
	if fix == "" {
		fix = "manage this provider's keys in its dashboard, then update the variable in keygate's env file: keygate picks the new value up without a restart"
	}
	return &provider.FieldError{Field: "provider", Problem: fmt.Sprintf("%s has no key-management API that keygate can use to %s its keys", r.Provider, what), Fix: fix}
}

// target describes key id of ring r for the policy. To a caller that may
// not see every key, a key that does not exist looks like one it may not
// touch: the answer must not tell it which ids exist.
func (s *Service) target(ctx context.Context, a policy.Actor, act policy.Action, r Ring, id string) (policy.Target, provider.Key, error) {
	if s.isGrantID(r, id) {
		// Only revocation is planned on grants (planGrantRevoke); for any
		// other action the policy refuses a grant.
		t, _, err := s.grantTarget(ctx, a, act, r, id)
		return t, provider.Key{ID: id}, err
	}
	if !r.Local {
		return policy.Target{Provider: r.Provider, Remote: true, ID: id}, provider.Key{ID: id}, nil
	}
	l, err := s.Store.Lineage(ctx, id)
	if errors.Is(err, provider.ErrNotFound) && !a.SeesAll() {
		return policy.Target{}, provider.Key{}, policy.Decide(a, act, policy.Target{Provider: r.Provider, ID: id}).Err()
	}
	if err != nil {
		return policy.Target{}, provider.Key{}, err
	}
	sc, err := auth.ParseScopes(l.Key.Scopes)
	if err != nil {
		return policy.Target{}, provider.Key{}, fmt.Errorf("reading scopes of key %s: %w", id, err)
	}
	return policy.Target{Provider: r.Provider, ID: id, Scopes: sc, ExpiresAt: l.Key.ExpiresAt, Ancestors: l.Ancestors, Successors: l.Successors}, l.Key, nil
}

// List returns the keys of r that the caller may see: every key for an
// admin (or the operator), otherwise the caller's own key, its earlier
// versions and the keys it created.
func (s *Service) List(ctx context.Context, c Caller, r Ring) ([]provider.Key, error) {
	a, err := s.Actor(ctx, c)
	if err != nil {
		return nil, err
	}
	return s.listKeys(ctx, a, r)
}

func (s *Service) listKeys(ctx context.Context, a policy.Actor, r Ring) ([]provider.Key, error) {
	if !r.Local {
		if r.Remote == nil {
			return nil, nil
		}
		if err := policy.Decide(a, policy.List, policy.Target{Provider: r.Provider, Remote: true}).Err(); err != nil {
			return nil, err
		}
		return r.Remote.ListKeys(ctx)
	}
	if err := policy.Decide(a, policy.List, policy.Target{Provider: r.Provider, ID: a.Principal.KeyID}).Err(); err != nil && !a.Operator {
		return nil, err
	}
	all, err := s.Store.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	lines := lineages(all)
	out := all[:0:0]
	for _, k := range all {
		if policy.Decide(a, policy.List, lines[k.ID]).Allowed {
			out = append(out, k)
		}
	}
	return out, nil
}

// lineages works out every key's ancestors and successors from one listing,
// so List asks the store once.
func lineages(keys []provider.Key) map[string]policy.Target {
	byID := make(map[string]provider.Key, len(keys))
	for _, k := range keys {
		byID[k.ID] = k
	}
	chain := func(start string, next func(provider.Key) string) []string {
		var out []string
		for id := start; id != ""; {
			k, ok := byID[id]
			if !ok {
				break
			}
			id = next(k)
			if id == "" || id == start || slices.Contains(out, id) {
				break
			}
			out = append(out, id)
		}
		return out
	}
	out := make(map[string]policy.Target, len(keys))
	for _, k := range keys {
		out[k.ID] = policy.Target{ID: k.ID,
			Ancestors:  chain(k.ID, func(k provider.Key) string { return k.CreatedBy }),
			Successors: chain(k.ID, func(k provider.Key) string { return k.RotatedTo })}
	}
	return out
}

// CreateRequest asks for a new key.
type CreateRequest struct {
	Name      string
	Scopes    auth.Scopes
	ExpiresAt time.Time
	// Deliver is the caller's deliver argument ("" for the default).
	Deliver string
}

// Issued is a created key and where its secret went.
type Issued struct {
	Key       provider.Key
	Secret    auth.Secret // shown only when Delivered is a reveal
	Delivered delivery.Spec
}

// Create issues a key on ring r with the caller's authority: within the
// caller's scopes and lifetime on keygate's store, admin only on a remote
// provider. The secret goes to its destination, or the key is revoked again
// at once: nothing is left that nobody holds.
func (s *Service) Create(ctx context.Context, c Caller, r Ring, req CreateRequest) (Issued, error) {
	a, err := s.Actor(ctx, c)
	if err != nil {
		return Issued{}, err
	}
	t := policy.Target{Provider: r.Provider, Remote: !r.Local, Scopes: req.Scopes, ExpiresAt: req.ExpiresAt}
	if !r.Local && r.Remote == nil {
		return Issued{}, errUnsupported(r, "create")
	}
	if !r.Local && !(len(req.Scopes) == 1 && req.Scopes[0].Action == auth.Admin) {
		return Issued{}, &provider.FieldError{Field: "scopes", Problem: fmt.Sprintf("%s keys cannot be narrowed to keygate scopes: they act with the agent's full permissions on %s", r.Provider, r.Provider),
			Fix: `pass scopes ["admin"] to create one anyway (your keygate credential must hold admin)`}
	}
	if err := policy.Decide(a, policy.Create, t).Err(); err != nil {
		return Issued{}, err
	}
	dest, err := s.Places.Parse(req.Deliver)
	if err == nil && dest.Kind == delivery.Session {
		err = &provider.FieldError{Field: "deliver", Problem: "a new key cannot go into this session", Fix: delivery.Fix}
	}
	if err == nil {
		err = s.Places.Preflight(dest)
	}
	if err != nil {
		return Issued{}, err
	}
	var issued provider.IssuedKey
	var undo func(context.Context) error
	if r.Local {
		issued, err = s.Store.CreateKey(ctx, provider.NewKey{Name: req.Name, Scopes: req.Scopes, ExpiresAt: req.ExpiresAt,
			CreatedBy: a.Principal.KeyID, MaxDescendants: policy.MaxLiveDescendants})
		undo = func(ctx context.Context) error { _, _, _, err := s.Store.RevokeKey(ctx, issued.Key.ID); return err }
	} else {
		issued, err = r.Remote.CreateKey(ctx, strings.TrimSpace(req.Name))
		undo = func(ctx context.Context) error { _, _, err := r.Remote.RevokeKey(ctx, issued.Key.ID); return err }
	}
	if err != nil {
		return Issued{}, err
	}
	s.learn(issued.Secret)
	s.changed()
	to, err := s.Places.Put(dest, issued.Key.ID, issued.Secret)
	if err != nil {
		if uerr := undo(context.WithoutCancel(ctx)); uerr != nil {
			// Only the revocation's error is wrapped, so that callers
			// classify this by it (a provider that is unavailable, say):
			// what is wrong now is a live key that nobody holds. The
			// delivery's error (auth.ErrVarExists, fs.ErrPermission) is
			// kept as text only.
			return Issued{}, fmt.Errorf("delivering the new key failed (%s) and revoking it failed too: %w", err.Error(), uerr)
		}
		return Issued{}, &provider.FieldError{Field: "deliver", Problem: "the key could not be delivered, so it was revoked again: " + err.Error(), Fix: "fix the destination or choose another"}
	}
	return Issued{Key: issued.Key, Secret: issued.Secret, Delivered: to}, nil
}

// ResolveKey turns the credential argument into a key id: "current" is the
// caller's own credential on keygate's store (its key, or the OAuth grant
// it acts through), and keygate's own credential on a remote provider (""
// when the provider cannot name it).
func (s *Service) ResolveKey(ctx context.Context, c Caller, r Ring, arg string) (string, bool, error) {
	if arg != "current" {
		return arg, false, nil
	}
	if r.Local {
		switch {
		case c.Principal == nil:
			return "", false, &provider.FieldError{Field: "credential", Problem: `"current" names the key a caller acts with, and the operator has none`, Fix: "pass the key's id"}
		case c.Principal.IsExternal():
			return "", false, &provider.FieldError{Field: "credential", Problem: `"current" names the keygate credential a caller acts with, and an access token from an external issuer stands for none`,
				Fix: "pass a key's id (credentials_list shows them)"}
		}
		return c.Principal.KeyID, true, nil
	}
	if r.Own == nil {
		return "", false, &provider.FieldError{Field: "credential", Problem: fmt.Sprintf("keygate runs on no %s key of its own", r.Provider), Fix: "call credentials_list with this provider to see its key ids"}
	}
	own, ok, err := r.Own(ctx)
	if err != nil {
		return "", false, err
	}
	if !ok {
		return "", false, &provider.FieldError{Field: "credential", Problem: fmt.Sprintf("keygate runs on no %s key of its own", r.Provider), Fix: "call credentials_list with this provider to see its key ids"}
	}
	return own.KeyID, true, nil
}

// LocalOwn finds keygate's own credential on its store: the process
// credential it runs on (over stdio), or, when it has none (over HTTP), the
// env file's variable tokenVar, which a rotation must keep current for
// whoever reads the file. follow switches the process to a successor; it
// is used only for a process credential that came from the env file.
func LocalOwn(store Store, envFile, tokenVar string, process func() auth.Credential, follow func(auth.Secret)) func(context.Context) (Own, bool, error) {
	return func(ctx context.Context) (Own, bool, error) {
		cred := process()
		fromFile, follows := cred.Source == auth.SourceEnvFile, follow
		if cred.Secret.IsZero() {
			vars, err := auth.ReadEnvFile(envFile)
			if err != nil {
				return Own{}, false, fmt.Errorf("reading env file %s: %w", envFile, err)
			}
			if vars[tokenVar] == "" {
				return Own{}, false, nil
			}
			// The env file follows; no process credential does.
			cred, fromFile, follows = auth.Credential{Secret: auth.NewSecret(vars[tokenVar])}, true, nil
		}
		p, err := store.Verify(ctx, cred.Secret.Reveal())
		switch {
		case errors.Is(err, auth.ErrInvalidToken):
			return Own{}, false, nil
		case err != nil:
			return Own{}, false, fmt.Errorf("checking keygate's own credential: %w", err)
		}
		own := Own{KeyID: p.KeyID, Var: tokenVar, Secret: cred.Secret, InEnvFile: fromFile && envFile != ""}
		if own.InEnvFile {
			own.Follow = follows
		}
		return own, true, nil
	}
}

// Process holds keygate's own credential in memory (identity.Identity).
type Process interface {
	Process() auth.Credential
	SetProcess(auth.Credential)
}

// LocalRing is keygate's own store as a ring: its keys rotate through eng,
// and keygate's own credential is the one proc runs on, or the env file's
// KEYGATE_TOKEN when it runs on none.
func LocalRing(store Store, eng *rotation.Engine, envFile string, proc Process) Ring {
	follow := func(next auth.Secret) {
		proc.SetProcess(auth.Credential{Secret: next, Source: auth.SourceEnvFile, Var: auth.TokenVar})
	}
	return Ring{Provider: "local", Local: true, Engine: eng,
		Own: LocalOwn(store, envFile, auth.TokenVar, proc.Process, follow)}
}
