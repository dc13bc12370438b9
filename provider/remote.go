package provider

import (
	"errors"
	"fmt"
	"time"

	"github.com/keygate/keygate/auth"
)

// Credential is one credential a remote provider is configured with, as it
// may be shown: never the value.
type Credential struct {
	// Name is the variable that holds it, e.g. COSMIC_WRITE_KEY.
	Name string `json:"name"`
	// Kind identifies it: an auth.Classify id where the shape is known
	// ("cosmic_pat"), else the provider's own name ("cosmic_write_key").
	Kind   string `json:"kind"`
	Label  string `json:"label"`
	Masked string `json:"masked"`
	Source string `json:"source"` // env or env_file
	// Grants are the keygate scopes this credential can exercise upstream,
	// e.g. content:read; empty for an account or agent credential.
	Grants []string `json:"grants"`
	// Verified says what a live check found: "ok", "rejected",
	// "unreachable" or "not_checked".
	Verified  string    `json:"verified"`
	Detail    string    `json:"detail,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Verification outcomes for Credential.Verified.
const (
	VerifiedOK          = "ok"
	VerifiedRejected    = "rejected"
	VerifiedUnreachable = "unreachable"
	VerifiedNotChecked  = "not_checked"
)

// Description is what auth_whoami reports about a remote provider.
type Description struct {
	Provider  string `json:"provider"`
	Reachable bool   `json:"reachable"`
	// Owner is who the credentials belong to: a user, agent or project.
	Owner string `json:"owner,omitempty"`
	// Details are provider-specific facts (plan, limits, usage figures).
	Details     map[string]any `json:"details,omitempty"`
	Credentials []Credential   `json:"credentials"`
	Problems    []string       `json:"problems,omitempty"`
	// RotateHint tells a person how to rotate these credentials where the
	// provider has no key-management API keygate can use.
	RotateHint string `json:"rotate_hint,omitempty"`
}

// Operation is one question to CheckAccess: may the provider's credentials
// do what Scope allows, and, when Tool is set, what that keygate tool does
// upstream (content_update and content_create both need content:write, but
// a provider may allow one and not the other).
type Operation struct {
	Scope auth.Scope
	Tool  string
}

func (o Operation) String() string {
	if o.Tool != "" {
		return o.Tool
	}
	return o.Scope.String()
}

// ScopeOps asks about scopes alone.
func ScopeOps(scopes []auth.Scope) []Operation {
	out := make([]Operation, len(scopes))
	for i, s := range scopes {
		out[i] = Operation{Scope: s}
	}
	return out
}

// Access is one answer about whether a remote provider's credentials allow
// an operation.
type Access struct {
	Operation string `json:"operation"` // a keygate scope, e.g. content:write:posts
	Allowed   bool   `json:"allowed"`
	// Known is false when the answer is "unknown until tried"; Allowed is
	// then false too (fail closed).
	Known  bool   `json:"known"`
	Reason string `json:"reason"`
	Fix    string `json:"fix,omitempty"`
}

// Errors remote providers report, beside ErrNotFound, ErrPermission and
// ErrUnsupported.
var (
	// ErrUnauthorized means the provider rejected the credential itself
	// (revoked, mistyped, expired): the fix is a new credential.
	ErrUnauthorized = errors.New("credential rejected by the provider")
	// ErrRateLimited means the provider asked keygate to slow down.
	ErrRateLimited = errors.New("rate limited by the provider")
	// ErrUnavailable means the provider could not be reached or failed.
	ErrUnavailable = errors.New("provider unavailable")
	// ErrOutcomeUnknown means a write was sent but its result is unknown
	// (timeout, reset) and a read-back could not settle it.
	ErrOutcomeUnknown = errors.New("outcome unknown")
)

// PublicError is an error with two texts: Error, for keygate's own log,
// and PublicText, for whoever called the tool: what happened and what to
// do, without details of the operator's own infrastructure (a database's
// address, user and name) that a caller has no business knowing.
type PublicError interface {
	error
	PublicText() string
}

// UpstreamError is an error answer from a remote API. Message is the API's
// own text, already cut short and free of secrets; Kind is one of the
// sentinel errors above, which errors.Is reaches through Unwrap.
type UpstreamError struct {
	Provider   string
	Status     int
	Code       string // the API's error code, if it has one
	Message    string
	RequestID  string
	RetryAfter time.Duration // for ErrRateLimited, when the API said
	Kind       error
}

func (e *UpstreamError) Error() string {
	s := e.Provider
	if e.Status != 0 { // 0: no answer came
		s += fmt.Sprintf(" answered %d", e.Status)
	}
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func (e *UpstreamError) Unwrap() error { return e.Kind }

// RationedError is keygate declining to spend a provider's shared rate
// limit on a caller with no scope for that provider, because the small
// share such callers may use is spent. Nothing was sent. It matches
// ErrRateLimited.
type RationedError struct {
	Provider   string        // as people know it, e.g. "Cencori"
	Limit      string        // the provider's limit, e.g. "60 requests per minute per project"
	Scope      string        // a scope that gives priority, e.g. "content:read:memories"
	RetryAfter time.Duration // when the caller's share has room again
}

// Problem says what happened, for a tool's isError result.
func (e *RationedError) Problem() string {
	return fmt.Sprintf("keygate keeps %s's rate limit (%s) for callers with a scope for it, and the small share left to other callers is used up; nothing was sent",
		e.Provider, e.Limit)
}

// Fix says what the caller can do.
func (e *RationedError) Fix() string {
	secs := int64((e.RetryAfter + time.Second - 1) / time.Second)
	return fmt.Sprintf("retry in %d s or use a key with %s", max(secs, 1), e.Scope)
}

func (e *RationedError) Error() string { return e.Problem() + "; " + e.Fix() }

func (e *RationedError) Unwrap() error { return ErrRateLimited }
