// Package policy is the one place that decides whether a caller may list,
// create, rotate or revoke a key, on any provider. Tools and the token CLI
// gather the facts (who is asking, which key, its lineage) and ask Decide;
// nothing else in keygate makes this decision. docs/SECURITY.md has the
// rules as a table.
package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/auth"
)

// Action is an operation on a credential.
type Action string

const (
	List   Action = "list"
	Create Action = "create"
	Rotate Action = "rotate"
	Revoke Action = "revoke"
)

// MaxLiveDescendants bounds the live keys below a non-admin key (the keys
// it created, the keys those created, and so on), so a credentials:write
// key cannot fill the store, the keys directory or the env file, nor
// spread the sessions and streams it may hold over an unbounded tree.
const MaxLiveDescendants = 64

// Actor is who asks: a verified keygate key, or the operator (the token CLI,
// which acts with the authority of whoever can open the store file).
//
// An OAuth grant of keygate's own authorization server acts as the key that
// approved it, narrowed: Principal is that key (or the key it was rotated
// into, which the grant follows), with the grant's scopes and a lifetime no
// longer than the grant's, and Grant names the grant. The subject of an
// external issuer's access token holds no key: External is set, and it may
// make or change no key, unless its scopes map to admin, when it acts as
// the operator (Operator is set too).
type Actor struct {
	Operator  bool
	Principal auth.Principal
	// Grant is the OAuth grant (gr_...) the actor acts through, if any.
	Grant string
	// External marks the subject of an external issuer's access token.
	External bool
	// SupersededBy is the key the actor's key was rotated into, when it was
	// rotated: the actor's key is an earlier version, working only until
	// its grace period ends. Such a key may not make or change keys, not
	// even revoke itself (which would take its successor down): a leaked
	// old key must not outlive its rotation, nor end the owner's new key.
	SupersededBy string
	// LiveDescendants counts the live keys below the actor's key.
	LiveDescendants int
}

// Operator is the token CLI's actor.
var Operator = Actor{Operator: true}

// Target is the key an action is about.
type Target struct {
	Provider string
	// Remote marks a key of a provider's own key API (Agrenting): its
	// permissions are the provider's, not keygate scopes.
	Remote bool
	ID     string
	Scopes auth.Scopes
	// ExpiresAt is zero when unknown (remote keys) or never.
	ExpiresAt time.Time
	// Ancestors are the keys that created this one, nearest first
	// (created_by, then its created_by, ...).
	Ancestors []string
	// Successors are the keys this one was rotated into, nearest first
	// (rotated_to, then its rotated_to, ...).
	Successors []string
	// Grant marks an OAuth grant (ID is its gr_ id), which is treated as a
	// credential its approving key created: Ancestors start with that key,
	// Successors are the keys that key was rotated into, Scopes and
	// ExpiresAt are the grant's.
	Grant bool
}

// Decision is an answer with its reason. A refusal names the argument to
// change and how.
type Decision struct {
	Allowed bool
	Field   string
	Reason  string
	Fix     string
}

// Err returns nil for an allowed decision and a *Denied otherwise.
func (d Decision) Err() error {
	if d.Allowed {
		return nil
	}
	return &Denied{Field: d.Field, Reason: d.Reason, Fix: d.Fix}
}

// Denied is a refusal by the policy.
type Denied struct {
	Field  string
	Reason string
	Fix    string
}

func (e *Denied) Error() string { return e.Field + ": " + e.Reason }

func allow() Decision { return Decision{Allowed: true} }

func deny(field, reason, fix string) Decision {
	return Decision{Field: field, Reason: reason, Fix: fix}
}

// Owns reports whether the actor's key owns t: it is t itself, one of t's
// later versions (t was rotated into it), or a key that created t, directly
// or through keys it created.
func (a Actor) Owns(t Target) bool {
	id := a.Principal.KeyID
	if a.Operator || id == "" || t.Remote {
		return a.Operator
	}
	return t.ID == id || slices.Contains(t.Ancestors, id) || slices.Contains(t.Successors, id)
}

// SeesAll reports whether the actor may know of every key (admin or the
// operator); to anyone else a key it may not touch and a key that does not
// exist must look the same.
func (a Actor) SeesAll() bool { return a.admin() }

// admin reports whether the actor holds admin (the operator does).
func (a Actor) admin() bool {
	return a.Operator || a.Principal.Scopes.Covers(auth.Scope{Action: auth.Admin})
}

func (a Actor) holds(act auth.Action) bool {
	return a.Operator || a.Principal.Scopes.AllowsSome(act)
}

// Decide says whether a may take action act on key t. For List, t names
// the key to be shown; a caller lists only what Decide allows.
func Decide(a Actor, act Action, t Target) Decision {
	switch act {
	case List:
		return decideList(a, t)
	case Create:
		return decideCreate(a, t)
	case Rotate, Revoke:
		return decideChange(a, act, t)
	}
	return deny("", fmt.Sprintf("unknown action %q", act), "")
}

func decideList(a Actor, t Target) Decision {
	if a.External && !a.admin() {
		return deny("", externalHoldsNoKey("owns no keys or grants to list"), "use a keygate token to list its keys, or map an issuer scope to admin (--oauth-scope-map) to see every key")
	}
	if !a.holds(auth.CredentialsRead) {
		return deny("", "listing keys needs credentials:read", "use a key with credentials:read")
	}
	if a.admin() || a.Owns(t) || (t.Remote && a.holds(auth.CredentialsRead)) {
		return allow()
	}
	if t.Grant {
		return deny("credential", fmt.Sprintf("grant %s was approved neither by your key nor by a key it created", t.ID),
			"only admin keys see every grant")
	}
	return deny("credential", fmt.Sprintf("key %s is neither yours nor one your key created", t.ID),
		"only admin keys see every key")
}

// externalHoldsNoKey says why an external issuer's subject cannot do
// something with keys.
func externalHoldsNoKey(what string) string {
	return "an access token from an external issuer stands for no keygate key, so it " + what
}

// externalFix is how an external issuer's subject gets to manage keys.
const externalFix = "use a keygate token (kg_pat_...) or an access token of keygate's own authorization server (--oauth embedded); or map an issuer scope to admin (--oauth-scope-map), which then acts as the operator"

// decideCreate decides whether a may create a key with t's scopes and
// expiry on t's provider; t.ID is empty.
func decideCreate(a Actor, t Target) Decision {
	if a.Operator {
		return allow()
	}
	if a.External {
		return deny("", externalHoldsNoKey("cannot create keys: a new key must belong to a key that outlives the token"), externalFix)
	}
	if t.Remote {
		if !a.admin() {
			return deny("scopes", fmt.Sprintf("%s keys act with the agent's full permissions on %s, so only admin keys may create them", t.Provider, t.Provider),
				"use a keygate key with admin")
		}
		return allow()
	}
	if !a.holds(auth.CredentialsWrite) {
		return deny("", "creating keys needs credentials:write", "use a key with credentials:write")
	}
	if d := notSuperseded(a); !d.Allowed {
		return d
	}
	if !a.admin() && a.LiveDescendants >= MaxLiveDescendants {
		return deny("", fmt.Sprintf("your key already has %d live keys below it, the most one key may have", a.LiveDescendants),
			"revoke keys it created that are no longer needed (credentials_list shows them)")
	}
	if missing := a.Principal.Scopes.Missing(t.Scopes); len(missing) > 0 {
		return deny("scopes", fmt.Sprintf("your credential cannot grant %s (it holds %s)",
			strings.Join(missing.Strings(), ", "), scopeList(a.Principal.Scopes)),
			"ask for a subset of your own scopes")
	}
	if !a.Principal.ExpiresAt.IsZero() && (t.ExpiresAt.IsZero() || t.ExpiresAt.After(a.Principal.ExpiresAt)) {
		return deny("expires_in_days", fmt.Sprintf("the new key would outlive your credential, which expires %s",
			a.Principal.ExpiresAt.UTC().Format(time.RFC3339)), "choose a shorter expiry")
	}
	return allow()
}

func decideChange(a Actor, act Action, t Target) Decision {
	if t.Grant && act == Rotate {
		return deny("credential", fmt.Sprintf("grant %s cannot be rotated: its client gets new access tokens by refreshing them", t.ID),
			"revoke it with credentials_revoke if it should stop working; the person then approves the client again")
	}
	if a.Operator {
		return allow()
	}
	if a.External {
		return deny("", externalHoldsNoKey(fmt.Sprintf("owns no credential and cannot %s one", act)), externalFix)
	}
	if t.Remote {
		if !a.admin() {
			return deny("credential", fmt.Sprintf("%s keys act with the agent's full permissions on %s, so only admin keys may %s them", t.Provider, t.Provider, act),
				"use a keygate key with admin")
		}
		return allow()
	}
	if !a.holds(auth.CredentialsWrite) {
		return deny("", fmt.Sprintf("to %s keys needs credentials:write", act), "use a key with credentials:write")
	}
	if a.SupersededBy != "" {
		return notSuperseded(a)
	}
	if !a.admin() && !a.Owns(t) {
		if t.Grant {
			return deny("credential", fmt.Sprintf("grant %s was approved neither by your key nor by a key it created, so your key may not %s it", t.ID, act),
				"ask the owner of the key that approved it, or an admin, to do it")
		}
		return deny("credential", fmt.Sprintf("key %s is neither yours nor one your key created, so your key may not %s it", t.ID, act),
			"ask its owner, or an admin, to do it")
	}
	if missing := a.Principal.Scopes.Missing(t.Scopes); len(missing) > 0 {
		what := "key"
		if t.Grant {
			what = "grant"
		}
		return deny("credential", fmt.Sprintf("your credential cannot %s a %s with broader scopes: %s %s holds %s, which yours (%s) does not cover",
			act, what, what, t.ID, strings.Join(missing.Strings(), ", "), scopeList(a.Principal.Scopes)),
			"use a credential whose scopes cover the "+what+"'s, such as an admin key")
	}
	if act == Rotate && !a.Principal.ExpiresAt.IsZero() && t.ExpiresAt.After(a.Principal.ExpiresAt) {
		// The successor keeps t's expiry: it must not outlive the key that
		// made it.
		return deny("credential", fmt.Sprintf("key %s expires %s, after your credential (%s), so your credential cannot rotate it",
			t.ID, t.ExpiresAt.UTC().Format(time.RFC3339), a.Principal.ExpiresAt.UTC().Format(time.RFC3339)),
			"use a credential that lives at least as long as the key")
	}
	return allow()
}

func notSuperseded(a Actor) Decision {
	if a.SupersededBy == "" {
		return allow()
	}
	return deny("", fmt.Sprintf("your key %s was rotated into key %s and only works until its grace period ends; it may not make or change keys",
		a.Principal.KeyID, a.SupersededBy), "use the current version of the key")
}

func scopeList(s auth.Scopes) string {
	if len(s) == 0 {
		return "no scopes"
	}
	return strings.Join(s.Strings(), ", ")
}
