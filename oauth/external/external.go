// Package external lets keygate's MCP endpoint accept access tokens from
// an authorization server it does not run (an organisation's identity
// provider) instead of its embedded one. Tokens must be JWTs (RFC 9068)
// signed by the issuer, whose keys are found through its RFC 8414 or OpenID
// Connect metadata; they must name this resource as audience (RFC 8707, MCP
// authorization "Token Audience Binding"), be unexpired, and carry scopes
// that a configured mapping turns into keygate scopes. go-oidc performs the
// checks of the token; this package discovers the issuer, fetches its keys
// within bounds, and maps claims to an auth.Principal. docs/oauth.md
// ("External issuer") describes it.
package external

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/oauth"
)

// DefaultAlgorithms are the signature algorithms accepted by default:
// asymmetric ones only. An HMAC-signed token would need a secret shared
// with the issuer, and "none" is never accepted.
var DefaultAlgorithms = []string{
	gooidc.RS256, gooidc.RS384, gooidc.RS512, gooidc.PS256, gooidc.PS384, gooidc.PS512,
	gooidc.ES256, gooidc.ES384, gooidc.ES512, gooidc.EdDSA,
}

// Config configures a Verifier.
type Config struct {
	// Issuer is the issuer identifier, exactly as the issuer's metadata and
	// tokens state it (an https URL, or http on loopback).
	Issuer string
	// Audience is this resource's canonical URL: tokens must name it in aud.
	Audience string
	// Scopes maps a scope the issuer grants to the keygate scopes it stands
	// for, such as "mcp.read" -> ["content:read"]. Scopes not in the map
	// grant nothing.
	Scopes map[string][]string
	// Algorithms are the accepted signature algorithms; nil takes
	// DefaultAlgorithms.
	Algorithms []string
	// HTTPClient fetches the metadata and the keys; nil uses a client with
	// a 10 second timeout.
	HTTPClient *http.Client
	// MinRefetch is the shortest time between two fetches of the keys for
	// tokens signed with a key not seen yet; zero is 15 seconds.
	MinRefetch time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Verifier checks tokens of one external issuer.
type Verifier struct {
	issuer string
	scopes map[string]auth.Scopes
	jwt    *gooidc.IDTokenVerifier
	keys   *remoteKeys
}

// maxMetadataBytes bounds the metadata document read.
const maxMetadataBytes = 256 << 10

// New discovers the issuer's metadata and returns a verifier for its
// tokens. It fails when the metadata cannot be fetched, names another
// issuer (RFC 8414 section 3.3) or has no jwks_uri, or when the scope map
// names a scope keygate does not know.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	// The issuer is compared as a string with the metadata's and the
	// tokens' (a trailing slash counts), so it is only checked here.
	if _, err := oauth.CanonicalURL(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("external issuer: %w", err)
	}
	issuer := cfg.Issuer
	audience, err := oauth.CanonicalURL(cfg.Audience)
	if err != nil {
		return nil, fmt.Errorf("external issuer: audience: %w", err)
	}
	if len(cfg.Scopes) == 0 {
		return nil, errors.New("external issuer: a scope mapping is required (issuer scope -> keygate scopes)")
	}
	mapping := map[string]auth.Scopes{}
	for ext, kg := range cfg.Scopes {
		sc, err := auth.ParseScopes(kg)
		if err != nil {
			return nil, fmt.Errorf("external issuer: scope mapping for %q: %w", ext, err)
		}
		mapping[ext] = sc
	}
	algs := cfg.Algorithms
	if algs == nil {
		algs = DefaultAlgorithms
	}
	for _, a := range algs {
		if !slices.Contains(DefaultAlgorithms, a) {
			return nil, fmt.Errorf("external issuer: algorithm %q is not accepted; use asymmetric ones: %s", a, strings.Join(DefaultAlgorithms, ", "))
		}
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	jwksURI, err := discover(ctx, client, issuer)
	if err != nil {
		return nil, err
	}
	minRefetch := cfg.MinRefetch
	if minRefetch <= 0 {
		minRefetch = 15 * time.Second
	}
	keys := newRemoteKeys(jwksURI, client, algs, now, minRefetch)
	return &Verifier{issuer: issuer, scopes: mapping, keys: keys,
		jwt: gooidc.NewVerifier(issuer, keys, &gooidc.Config{ClientID: audience, SupportedSigningAlgs: algs, Now: now})}, nil
}

// Issuer is the issuer this verifier trusts, for the resource's metadata.
func (v *Verifier) Issuer() string { return v.issuer }

// metadataURLs are where an issuer's metadata may be: RFC 8414 section 3.1
// first, then OpenID Connect Discovery in its two forms (MCP authorization,
// "Authorization Server Metadata Discovery").
func metadataURLs(issuer string) []string {
	u, _ := url.Parse(issuer) // canonical
	p := strings.TrimRight(u.Path, "/")
	at := func(path string) string { c := *u; c.Path = path; return c.String() }
	if p == "" {
		return []string{at("/.well-known/oauth-authorization-server"), at("/.well-known/openid-configuration")}
	}
	return []string{at("/.well-known/oauth-authorization-server" + p), at("/.well-known/openid-configuration" + p),
		at(p + "/.well-known/openid-configuration")}
}

func discover(ctx context.Context, client *http.Client, issuer string) (string, error) {
	var problems []string
	for _, u := range metadataURLs(issuer) {
		var md struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := getJSON(ctx, client, u, maxMetadataBytes, &md); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if md.Issuer != issuer {
			return "", fmt.Errorf("external issuer: %s names issuer %q, not %q (RFC 8414 section 3.3)", u, md.Issuer, issuer)
		}
		if _, err := oauth.CanonicalURL(md.JWKSURI); err != nil {
			return "", fmt.Errorf("external issuer: %s: jwks_uri: %w", u, err)
		}
		return md.JWKSURI, nil
	}
	return "", fmt.Errorf("external issuer: no metadata found for %s: %s", issuer, strings.Join(problems, "; "))
}

func getJSON(ctx context.Context, client *http.Client, u string, limit int64, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("GET %s: larger than %d bytes", u, limit)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// claims are what keygate reads of an access token: RFC 9068 section 2.2
// names scope a space-separated string; some issuers send scp, a list or a
// string, instead.
type claims struct {
	Subject  string          `json:"sub"`
	Scope    string          `json:"scope"`
	SCP      json.RawMessage `json:"scp"`
	IssuedAt int64           `json:"iat"`
}

func (c claims) scopes() []string {
	out := strings.Fields(c.Scope)
	var list []string
	var one string
	switch {
	case json.Unmarshal(c.SCP, &list) == nil:
		out = append(out, list...)
	case json.Unmarshal(c.SCP, &one) == nil:
		out = append(out, strings.Fields(one)...)
	}
	return out
}

// maxSubjectLen bounds the subject kept in a principal.
const maxSubjectLen = 128

// Verify checks a token and returns its principal: KeyID "ext:" and the
// subject, the keygate scopes its scopes map to (possibly none: the caller
// then answers 403 insufficient_scope), ExpiresAt its expiry. Every way a
// token can be wrong gives exactly auth.ErrInvalidToken.
func (v *Verifier) Verify(ctx context.Context, token string) (auth.Principal, error) {
	if !oauth.LooksLikeJWT(token) {
		return auth.Principal{}, auth.ErrInvalidToken
	}
	t, err := v.jwt.Verify(ctx, token)
	if err != nil {
		return auth.Principal{}, auth.ErrInvalidToken
	}
	var c claims
	if err := t.Claims(&c); err != nil || c.Subject == "" {
		return auth.Principal{}, auth.ErrInvalidToken
	}
	var granted auth.Scopes
	for _, s := range c.scopes() {
		for _, kg := range v.scopes[s] {
			if !slices.Contains(granted, kg) {
				granted = append(granted, kg)
			}
		}
	}
	sub := printable(c.Subject)
	p := auth.Principal{KeyID: auth.ExternalPrefix + sub, Name: sub, Masked: "access token from " + v.issuer, Scopes: granted,
		ExpiresAt: t.Expiry, CreatedBy: v.issuer, Source: auth.SourceBearer}
	if c.IssuedAt > 0 {
		p.CreatedAt = time.Unix(c.IssuedAt, 0).UTC()
	}
	return p, nil
}

// printable keeps a subject safe to show and log: printable characters
// only, bounded.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) && r != ' ' {
			return r
		}
		return '_'
	}, strings.ToValidUTF8(s, "_"))
	if r := []rune(s); len(r) > maxSubjectLen {
		s = string(r[:maxSubjectLen])
	}
	return s
}
