// Package authserver is keygate's embedded OAuth 2.1 authorization server,
// built on github.com/zitadel/oidc/v3 (pkg/op), which parses and validates
// the protocol messages, checks PKCE and client authentication, and signs
// tokens with go-jose. keygate adds what the library leaves to its user:
// storage (grants, refresh tokens, registered clients and signing keys live
// in keygate's store), the consent page where a person signs in with a
// keygate token, client registration by RFC 7591 and by Client ID Metadata
// Documents, RFC 8707 resource binding, refresh-token reuse detection, and
// bounds on everything an anonymous caller can make it hold.
// docs/oauth.md describes the design.
package authserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/provider/local"
)

// Paths the server answers, relative to the issuer.
const (
	MetadataPath  = "/.well-known/oauth-authorization-server"
	AuthorizePath = "/oauth/authorize"
	TokenPath     = "/oauth/token"
	RevokePath    = "/oauth/revoke"
	JWKSPath      = "/oauth/jwks"
	RegisterPath  = "/oauth/register"
	ConsentPath   = "/oauth/consent"
)

// Defaults of Config.
const (
	DefaultAccessTokenTTL   = 10 * time.Minute
	DefaultCodeTTL          = time.Minute
	DefaultRequestTTL       = 10 * time.Minute
	DefaultMaxGrantLifetime = 90 * 24 * time.Hour
	DefaultKeyRotation      = 30 * 24 * time.Hour
	DefaultMaxPending       = 1000
)

// PATVerifier checks a keygate token (local.Store.Verify) and tells whether
// its key has been rotated (local.Store.Successor).
type PATVerifier interface {
	Verify(ctx context.Context, token string) (auth.Principal, error)
	Successor(ctx context.Context, id string) (string, error)
}

// GrantStore keeps grants and their refresh tokens.
type GrantStore interface {
	CreateGrant(ctx context.Context, g local.NewGrant) (local.Grant, error)
	LiveGrant(ctx context.Context, id string) (local.Grant, error)
	RevokeGrant(ctx context.Context, id, reason string) (local.Grant, bool, error)
	TouchGrant(ctx context.Context, id string)
	AddRefreshToken(ctx context.Context, grantID string, hash [32]byte) error
	LookupRefreshToken(ctx context.Context, hash [32]byte) (local.RefreshToken, error)
	RotateRefreshToken(ctx context.Context, old, next [32]byte) (local.RefreshToken, error)
}

// ClientStore keeps dynamically registered clients.
type ClientStore interface {
	RegisterOAuthClient(ctx context.Context, c local.OAuthClient, lim local.ClientLimits) (local.OAuthClient, error)
	GetOAuthClient(ctx context.Context, id string) (local.OAuthClient, error)
}

// KeyStore keeps the keys that sign access tokens.
type KeyStore interface {
	SigningKeys(ctx context.Context) ([]local.SigningKey, error)
	RotateSigningKey(ctx context.Context, fresh local.SigningKey, rotateBefore time.Time, keepFor time.Duration) (bool, error)
}

// Store is everything the server keeps; *local.Store is one.
type Store interface {
	PATVerifier
	GrantStore
	ClientStore
	KeyStore
}

// Journal is where grants and refusals are recorded; *audit.Log is one.
type Journal interface {
	Write(audit.Record) error
	WriteRefusal(audit.Record) error
}

// Limits bound what anonymous callers can make the server do or hold. Zero
// fields take the defaults in DefaultLimits.
type Limits struct {
	// MaxPending caps authorization requests waiting for consent or for
	// their code to be exchanged.
	MaxPending int
	// Authorize caps authorization requests per client address per minute.
	Authorize int
	// Register caps dynamic registrations per client address per hour.
	Register int
	// MaxIdleClients caps registered clients without a live grant, and
	// IdleClientTTL is how long such a client is kept.
	MaxIdleClients int
	IdleClientTTL  time.Duration
	// ConsentFailures caps wrong tokens on the consent page per client
	// address per 10 minutes; FailuresPerRequest ends one authorization
	// request after that many wrong tokens.
	ConsentFailures    int
	FailuresPerRequest int
	// MetadataFetches caps Client ID Metadata Document fetches per client
	// address per minute.
	MetadataFetches int
	// Addresses caps the client addresses each rate limiter tracks.
	Addresses int
}

// DefaultLimits are the limits used for zero fields of Limits.
var DefaultLimits = Limits{
	MaxPending: DefaultMaxPending, Authorize: 30, Register: 10,
	MaxIdleClients: 200, IdleClientTTL: 24 * time.Hour,
	ConsentFailures: 10, FailuresPerRequest: 5, MetadataFetches: 10,
	Addresses: 10000,
}

// CIMDConfig configures the fetching of Client ID Metadata Documents.
type CIMDConfig struct {
	// Disabled turns Client ID Metadata Documents off: URL client ids are
	// then unknown clients.
	Disabled bool
	// AllowLoopback lets the server fetch documents from loopback
	// addresses. The draft allows it only for an authorization server that
	// itself runs on loopback, for development and tests; New refuses it
	// for any other issuer.
	AllowLoopback bool
	// TLSConfig is used for the fetches (tests trust their own CA with it).
	TLSConfig *tls.Config
	// MaxBytes, Timeout, MinCache, MaxCache and MaxEntries bound the fetch
	// and the cache; zero takes the defaults of cimd.go.
	MaxBytes   int64
	Timeout    time.Duration
	MinCache   time.Duration
	MaxCache   time.Duration
	MaxEntries int
}

// Config configures a Server.
type Config struct {
	// Issuer is the server's issuer identifier (RFC 8414 section 2), an
	// https URL without query or fragment, or http on loopback. keygate
	// serves the authorization server on its own origin, so this is usually
	// the origin of Resource.
	Issuer string
	// Resource is the canonical URL of the MCP endpoint: every token is
	// issued for it and for nothing else (RFC 8707).
	Resource string
	// Resources are other MCP endpoints this server may issue tokens for:
	// keygates that trust it as their external issuer (their --oauth
	// external). A client names one with the resource parameter (RFC 8707);
	// a request naming none gets a token for Resource. The server's own
	// Verifier accepts tokens for Resource only.
	Resources []string
	Store     Store
	// Journal records grants and refusals; nil records nothing.
	Journal Journal
	// Logger receives operational messages, never a secret; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time

	AccessTokenTTL   time.Duration
	CodeTTL          time.Duration
	RequestTTL       time.Duration
	MaxGrantLifetime time.Duration
	KeyRotation      time.Duration

	Limits Limits
	CIMD   CIMDConfig
	// ClientAddress names the client of a request for rate limits and the
	// journal; nil takes the host of RemoteAddr. Set it when keygate runs
	// behind a proxy that it trusts to say who the client is.
	ClientAddress func(*http.Request) string
}

func (c *Config) withDefaults() error {
	if c.Store == nil {
		return errors.New("authserver: Config.Store is required")
	}
	var err error
	if c.Issuer, err = oauth.CanonicalURL(c.Issuer); err != nil {
		return fmt.Errorf("authserver: issuer: %w", err)
	}
	if c.Resource, err = oauth.CanonicalURL(c.Resource); err != nil {
		return fmt.Errorf("authserver: resource: %w", err)
	}
	for i, r := range c.Resources {
		if c.Resources[i], err = oauth.CanonicalURL(r); err != nil {
			return fmt.Errorf("authserver: resources: %w", err)
		}
	}
	if c.CIMD.AllowLoopback && !isLoopbackURL(c.Issuer) {
		return errors.New("authserver: CIMD.AllowLoopback is for an authorization server on loopback only (draft-ietf-oauth-client-id-metadata-document, SSRF)")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	dur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	dur(&c.AccessTokenTTL, DefaultAccessTokenTTL)
	dur(&c.CodeTTL, DefaultCodeTTL)
	dur(&c.RequestTTL, DefaultRequestTTL)
	dur(&c.MaxGrantLifetime, DefaultMaxGrantLifetime)
	dur(&c.KeyRotation, DefaultKeyRotation)
	num := func(n *int, def int) {
		if *n <= 0 {
			*n = def
		}
	}
	d := DefaultLimits
	num(&c.Limits.MaxPending, d.MaxPending)
	num(&c.Limits.Authorize, d.Authorize)
	num(&c.Limits.Register, d.Register)
	num(&c.Limits.MaxIdleClients, d.MaxIdleClients)
	dur(&c.Limits.IdleClientTTL, d.IdleClientTTL)
	num(&c.Limits.ConsentFailures, d.ConsentFailures)
	num(&c.Limits.FailuresPerRequest, d.FailuresPerRequest)
	num(&c.Limits.MetadataFetches, d.MetadataFetches)
	num(&c.Limits.Addresses, d.Addresses)
	if c.ClientAddress == nil {
		c.ClientAddress = remoteHost
	}
	return nil
}

func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

func isLoopbackURL(u string) bool {
	h, err := hostOf(u)
	return err == nil && oauth.IsLoopbackHost(h)
}
