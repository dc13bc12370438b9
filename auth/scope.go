package auth

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Action is what a scope permits, without the optional type narrowing.
type Action string

// The scopes keygate knows. Content actions may be narrowed to one content
// type ("content:read:posts"); the others may not.
const (
	ContentRead      Action = "content:read"
	ContentWrite     Action = "content:write"
	ContentDelete    Action = "content:delete"
	CredentialsRead  Action = "credentials:read"
	CredentialsWrite Action = "credentials:write"
	Admin            Action = "admin"
)

// AllActions lists every action, in the order they are documented.
var AllActions = []Action{ContentRead, ContentWrite, ContentDelete, CredentialsRead, CredentialsWrite, Admin}

// TypeNamePattern is the shape of a content type name, shared by scopes and
// the store so a narrowed scope can always name a real type.
var TypeNamePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`) })

// Scope is one granted permission. An empty Type means every type.
type Scope struct {
	Action Action
	Type   string
}

func (s Scope) String() string {
	if s.Type == "" {
		return string(s.Action)
	}
	return string(s.Action) + ":" + s.Type
}

func (a Action) narrowable() bool {
	return a == ContentRead || a == ContentWrite || a == ContentDelete
}

// ParseScope parses "content:read", "content:read:posts", "admin", ...
func ParseScope(s string) (Scope, error) {
	for _, a := range AllActions {
		if s == string(a) {
			return Scope{Action: a}, nil
		}
		rest, ok := strings.CutPrefix(s, string(a)+":")
		if !ok {
			continue
		}
		if !a.narrowable() {
			return Scope{}, fmt.Errorf("scope %q cannot be narrowed to a type; use %q", s, a)
		}
		if !TypeNamePattern().MatchString(rest) {
			return Scope{}, fmt.Errorf("scope %q: type %q must match %s", s, rest, TypeNamePattern())
		}
		return Scope{Action: a, Type: rest}, nil
	}
	return Scope{}, fmt.Errorf("unknown scope %q; known scopes: %s (content scopes may end in :TYPE)", s, joinActions(AllActions))
}

// Scopes is a set of granted scopes.
type Scopes []Scope

// ParseScopes parses a list, rejecting empties and unknown scopes, and drops
// duplicates.
func ParseScopes(in []string) (Scopes, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("at least one scope is required")
	}
	out := make(Scopes, 0, len(in))
	for _, s := range in {
		sc, err := ParseScope(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

// Strings renders the scopes for storage and display.
func (ss Scopes) Strings() []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.String()
	}
	return out
}

// Allows reports whether the scopes permit action on content type typ. For
// actions that are not about content, typ is ignored.
func (ss Scopes) Allows(a Action, typ string) bool {
	for _, s := range ss {
		if s.Action == Admin {
			return true
		}
		if s.Action == a && (s.Type == "" || s.Type == typ) {
			return true
		}
	}
	return false
}

// AllowsSome reports whether the scopes permit action on at least one type.
// It decides whether a tool is shown at all; Allows decides each call.
func (ss Scopes) AllowsSome(a Action) bool {
	for _, s := range ss {
		if s.Action == Admin || s.Action == a {
			return true
		}
	}
	return false
}

// Covers reports whether holding ss is enough to grant want: admin covers
// everything, a whole-action scope covers its narrowed forms, and a narrowed
// scope covers only itself.
func (ss Scopes) Covers(want Scope) bool {
	for _, s := range ss {
		switch {
		case s.Action == Admin:
			return true
		case s.Action == want.Action && (s.Type == "" || s.Type == want.Type):
			return true
		}
	}
	return false
}

// Missing returns the scopes in want that ss does not cover: empty means ss
// may grant want.
func (ss Scopes) Missing(want Scopes) Scopes {
	var out Scopes
	for _, w := range want {
		if !ss.Covers(w) {
			out = append(out, w)
		}
	}
	return out
}

func joinActions(as []Action) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// GrantError explains why a credential may not create or rotate a key.
type GrantError struct {
	Field   string // the tool argument to change
	Problem string
	Fix     string
}

func (e *GrantError) Error() string { return e.Field + ": " + e.Problem }

// CheckGrant applies the rule for keys that make keys: the new key's scopes
// must be covered by the actor's, and it must not outlive the actor.
func CheckGrant(actor Principal, scopes Scopes, expiresAt time.Time) error {
	if missing := actor.Scopes.Missing(scopes); len(missing) > 0 {
		return &GrantError{Field: "scopes", Problem: fmt.Sprintf(
			"your credential cannot grant %s (it holds %s)",
			strings.Join(missing.Strings(), ", "), strings.Join(actor.Scopes.Strings(), ", ")),
			Fix: "ask for a subset of your own scopes"}
	}
	if !actor.ExpiresAt.IsZero() && expiresAt.After(actor.ExpiresAt) {
		return &GrantError{Field: "expires_in_days", Problem: fmt.Sprintf(
			"the new key would outlive your credential, which expires %s",
			actor.ExpiresAt.UTC().Format(time.RFC3339)),
			Fix: "choose a shorter expiry"}
	}
	return nil
}

// HasScopeFor reports whether ss gives its holder a use for a provider
// whose content types are those hasType accepts: admin, or a content scope
// (read, write or delete) that is not narrowed or is narrowed to one of the
// provider's types. Credentials scopes do not count: no remote provider
// manages keygate's keys. Providers spend their shared rate limit on such
// callers first.
func (ss Scopes) HasScopeFor(hasType func(typ string) bool) bool {
	for _, s := range ss {
		switch {
		case s.Action == Admin:
			return true
		case s.Action.narrowable() && (s.Type == "" || (hasType != nil && hasType(s.Type))):
			return true
		}
	}
	return false
}
