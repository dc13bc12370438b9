package auth

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Source says where a credential came from, so whoami can tell the user which
// file or setting to change.
type Source string

const (
	SourceEnv     Source = "env"      // the process environment
	SourceEnvFile Source = "env_file" // the .env file
	SourceSession Source = "session"  // auth_authenticate, this session only
	SourceBearer  Source = "bearer"   // the HTTP Authorization header
)

// Principal is a verified keygate credential: who is calling and what it may
// do. It never holds the secret.
type Principal struct {
	KeyID      string
	Name       string
	Masked     string
	Scopes     Scopes
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never expires
	LastUsedAt time.Time // zero: never used before
	CreatedBy  string
	Source     Source
}

// The principal of an OAuth access token is not a keygate key, and says so
// by the shape of its KeyID: a key's id is 12 base62 characters
// (ParseToken), which hold neither "_" nor ":".
const (
	// GrantPrefix starts the id of an OAuth grant of keygate's embedded
	// authorization server (provider/local, CreateGrant), the principal of
	// the access tokens minted from it; CreatedBy is the key that approved
	// it.
	GrantPrefix = "gr_"
	// ExternalPrefix starts the principal of an access token of an external
	// issuer (oauth/external): "ext:" and the token's subject. It holds no
	// keygate key.
	ExternalPrefix = "ext:"
)

// IsGrant reports whether p is an OAuth grant of keygate's own
// authorization server.
func (p Principal) IsGrant() bool { return strings.HasPrefix(p.KeyID, GrantPrefix) }

// IsExternal reports whether p is the subject of an external issuer's
// access token.
func (p Principal) IsExternal() bool { return strings.HasPrefix(p.KeyID, ExternalPrefix) }

// Secret holds a credential in memory. Every way of printing it prints
// [REDACTED]; only Reveal gives the value, so a secret cannot leak through a
// stray %v, a log attribute or a JSON encoder.
type Secret struct{ value string }

// NewSecret wraps a credential value.
func NewSecret(v string) Secret { return Secret{value: v} }

// Reveal returns the value. Call it only where the value is sent to its
// destination (an auth check, a header, the env file).
func (s Secret) Reveal() string { return s.value }

// IsZero reports whether no value is held.
func (s Secret) IsZero() bool { return s.value == "" }

// Masked shows the value as prefix and last four characters.
func (s Secret) Masked() string { return Mask(s.value) }

const redacted = "[REDACTED]"

func (s Secret) String() string               { return redacted }
func (s Secret) GoString() string             { return redacted }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (s Secret) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(redacted)) }

// Credential is a secret with the place it came from.
type Credential struct {
	Secret Secret
	Source Source
	// Var is the variable that holds it (KEYGATE_TOKEN), when it came from
	// the environment or the env file.
	Var string
}
