package authserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/provider/local"
)

// client is an OAuth client as the library sees it (op.Client): registered
// dynamically (RFC 7591) or described by its Client ID Metadata Document.
// Every client uses the authorization code grant with PKCE and may refresh.
type client struct {
	id           string
	name         string
	redirectURIs []string
	authMethod   oidc.AuthMethod
	secretHash   []byte
	// fromDocument marks a client whose id is the URL of its metadata
	// document: its host is who it is. A dynamically registered client's
	// name is only what it said about itself.
	fromDocument bool
	loginURL     func(id string) string
}

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return c.redirectURIs }
func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeNative }
func (c *client) AuthMethod() oidc.AuthMethod         { return c.authMethod }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) LoginURL(id string) string            { return c.loginURL(id) }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration       { return 0 }
func (c *client) DevMode() bool                        { return false }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}

// IsScopeAllowed admits keygate's scopes only.
func (c *client) IsScopeAllowed(scope string) bool {
	_, err := auth.ParseScope(scope)
	return err == nil
}

// errUnknownClient is every lookup failure a caller may see: unknown id,
// unreachable or invalid metadata document. The reason goes to the log.
var errUnknownClient = errors.New("unknown client")

// clients finds the client behind a client_id.
type clients struct {
	store    ClientStore
	docs     *documents // nil when Client ID Metadata Documents are off
	loginURL func(string) string
}

func (cs *clients) get(ctx context.Context, id string) (*client, error) {
	if strings.HasPrefix(id, "https://") || strings.HasPrefix(id, "http://") {
		if cs.docs == nil {
			return nil, fmt.Errorf("%w: Client ID Metadata Documents are turned off", errUnknownClient)
		}
		return cs.docs.get(ctx, id)
	}
	c, err := cs.store.GetOAuthClient(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnknownClient, err)
	}
	return &client{id: c.ID, name: c.Name, redirectURIs: c.RedirectURIs, authMethod: oidc.AuthMethod(c.AuthMethod),
		secretHash: c.SecretHash, loginURL: cs.loginURL}, nil
}

// checkSecret compares the secret a confidential client presented with the
// hash kept at registration.
func (cs *clients) checkSecret(ctx context.Context, id, secret string) error {
	c, err := cs.get(ctx, id)
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(secret))
	if c.secretHash == nil || subtle.ConstantTimeCompare(c.secretHash, sum[:]) != 1 {
		return errors.New("client authentication failed")
	}
	return nil
}

// asLocal is the stored form of a newly registered client.
func (c *client) asLocal() local.OAuthClient {
	return local.OAuthClient{ID: c.id, Name: c.name, SecretHash: c.secretHash, AuthMethod: string(c.authMethod), RedirectURIs: c.redirectURIs}
}

// Bounds on client metadata, for registration and for documents.
const (
	maxRedirectURIs   = 10
	maxRedirectURILen = 2000
	maxClientNameLen  = 100
)

// checkRedirectURIs applies keygate's rule to the redirect URIs a client
// registers: https; http on a loopback host only (RFC 8252 section 7.3); or
// a private-use scheme of a native app, which must contain a period (RFC
// 8252 section 7.1). None may hold a fragment (RFC 6749 section 3.1.2).
func checkRedirectURIs(uris []string) error {
	if len(uris) == 0 {
		return errors.New("redirect_uris: at least one redirect URI is required")
	}
	if len(uris) > maxRedirectURIs {
		return fmt.Errorf("redirect_uris: at most %d are accepted", maxRedirectURIs)
	}
	for _, raw := range uris {
		if err := checkRedirectURI(raw); err != nil {
			return fmt.Errorf("redirect_uris: %w", err)
		}
	}
	return nil
}

func checkRedirectURI(raw string) error {
	if len(raw) > maxRedirectURILen {
		return fmt.Errorf("a redirect URI is longer than %d bytes", maxRedirectURILen)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("%q is not an absolute URI", raw)
	}
	if strings.Contains(raw, "#") {
		return fmt.Errorf("%q must not contain a fragment", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		if u.Host == "" || u.User != nil {
			return fmt.Errorf("%q needs a host and no user name", raw)
		}
	case "http":
		if u.User != nil || !oauth.IsLoopbackHost(u.Hostname()) {
			return fmt.Errorf("%q: plain http is accepted only for a loopback host (127.0.0.1, [::1] or localhost); use https", raw)
		}
	default:
		if !strings.Contains(u.Scheme, ".") {
			return fmt.Errorf("%q: a native app's own scheme must be a reverse domain name such as com.example.app (RFC 8252 section 7.1)", raw)
		}
	}
	return nil
}

// cleanName makes a client-supplied name safe to show: printable, one line,
// bounded. The consent page says the name is the client's own claim.
func cleanName(name string) string {
	name = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, strings.ToValidUTF8(name, ""))
	name = strings.TrimSpace(name)
	if utf8.RuneCountInString(name) > maxClientNameLen {
		name = string([]rune(name)[:maxClientNameLen]) + "…"
	}
	return name
}

// hostOf returns the host (without port) of a URL, or the scheme of a
// native app's redirect URI.
func hostOf(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Host == "" {
		return u.Scheme + ":", nil
	}
	return u.Hostname(), nil
}
