// Package provider defines the data keygate's tools exchange with back ends,
// and the errors back ends report. Each back end lives in its own package
// (local, cosmic, ...) and implements the small interfaces that the tools
// package declares for what it needs.
package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keygate/keygate/auth"
)

// Status values of a content object.
const (
	StatusDraft     = "draft"
	StatusPublished = "published"
)

// ContentType is a kind of object with an optional list of known fields.
type ContentType struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Fields      []string `json:"fields,omitempty"`
	Count       int      `json:"count"`
}

// Object is one piece of content. Fields holds the type-specific values as
// a JSON object.
type Object struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Slug       string          `json:"slug"`
	Title      string          `json:"title"`
	Status     string          `json:"status"`
	Version    int64           `json:"version"`
	Fields     json.RawMessage `json:"fields"`
	CreatedAt  time.Time       `json:"created_at"`
	ModifiedAt time.Time       `json:"modified_at"`
}

// Op is a comparison in a filter condition.
type Op string

const (
	OpEq  Op = "$eq"
	OpNe  Op = "$ne"
	OpIn  Op = "$in"
	OpGt  Op = "$gt"
	OpGte Op = "$gte"
	OpLt  Op = "$lt"
	OpLte Op = "$lte"
)

// Condition compares the value at Path with Value. Path is either a built-in
// attribute (id, slug, title, status, version, created_at, modified_at) or a
// path inside the object's fields, written "fields.author.name". Value is a
// string, number or bool; for OpIn it is a []any of those.
type Condition struct {
	Path  string
	Op    Op
	Value any
}

// SortKey orders a list by Path (same paths as Condition), descending when Desc.
type SortKey struct {
	Path string
	Desc bool
}

// ListQuery asks for one page of objects of one type.
type ListQuery struct {
	Type   string
	Status string // "" for any status
	Filter []Condition
	Sort   []SortKey // empty: newest modified first
	Limit  int
	// Cursor is the provider's own position token from a previous Page; ""
	// starts at the beginning.
	Cursor string
}

// Page is one page of a list. NextCursor is "" on the last page. Total is
// the number of objects matching the query, or -1 when the back end cannot
// tell. When TotalAtLeast is set, Total is only a lower bound: the back end
// stopped counting there rather than pay for an exact count (the tools say
// "1,000+"). The zero value means exact, so a back end that always counts
// needs no change.
type Page struct {
	Objects      []Object
	Total        int
	TotalAtLeast bool
	NextCursor   string
}

// Ref names one object by id or by slug (exactly one is set).
type Ref struct {
	ID   string
	Slug string
}

// NewObject is what content_create asks for. Slug and Status are already
// defaulted by the caller.
type NewObject struct {
	Type   string
	Title  string
	Slug   string
	Status string
	Fields json.RawMessage
}

// Patch is a partial update: nil fields are left alone. Fields, when set,
// is merged key by key into the stored fields; a JSON null removes a key.
type Patch struct {
	Type            string
	ID              string
	Title           *string
	Slug            *string
	Status          *string
	Fields          json.RawMessage
	ExpectedVersion *int64
}

// Key is a credential managed by a provider, as it may be shown: never the
// secret.
type Key struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Masked     string    `json:"masked"`
	Scopes     []string  `json:"scopes"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	CreatedBy  string    `json:"created_by,omitempty"`
	RotatedTo  string    `json:"rotated_to,omitempty"`
}

// NewKey asks for a key. ExpiresAt is mandatory. CreatedBy is the key
// that asked for it ("" for the operator), which owns it from then on; it
// must still work when the key is made. MaxDescendants, when positive,
// bounds the live keys any non-admin key above the new one may have below
// it, counted at the instant of the insert.
type NewKey struct {
	Name           string
	Scopes         auth.Scopes
	ExpiresAt      time.Time
	CreatedBy      string
	MaxDescendants int
}

// Lineage is a key with the keys it descends from and the keys it was
// rotated into: what the policy needs to decide who owns it.
type Lineage struct {
	Key Key
	// Ancestors are the keys that created it, nearest first.
	Ancestors []string
	// Successors are the keys it was rotated into, nearest first.
	Successors []string
}

// IssuedKey is a key together with its secret, returned once at creation.
type IssuedKey struct {
	Key    Key
	Secret auth.Secret
}

// Errors a provider reports. Tools turn them into isError results the model
// can act on; anything else is treated as a fault.
var (
	ErrNotFound = errors.New("not found")
	// ErrPermission means the back end refused the credential for this action.
	ErrPermission = errors.New("permission denied")
	// ErrUnsupported means the back end has no way to do this at all.
	ErrUnsupported = errors.New("not supported by this provider")
)

// NotFoundError says which thing was not found.
type NotFoundError struct {
	What string // "content type", "object", "key"
	Name string // the id, slug or name asked for
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %q not found", e.What, e.Name) }
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// FieldError is bad input the caller can fix: which field, what is wrong,
// and what to do.
type FieldError struct {
	Field   string
	Problem string
	Fix     string
}

func (e *FieldError) Error() string {
	if e.Fix == "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Problem)
	}
	return fmt.Sprintf("%s: %s; %s", e.Field, e.Problem, e.Fix)
}

// VersionConflictError refuses an update made against a stale version.
type VersionConflictError struct {
	Expected int64
	Current  int64
}

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("expected_version %d is stale: the object is at version %d; read it again and reapply your change", e.Expected, e.Current)
}
