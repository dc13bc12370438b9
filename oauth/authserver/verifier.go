package authserver

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
)

// Verifier checks an access token this server issued and returns the
// principal it stands for. go-oidc checks the signature (with a key of the
// keyring, ES256 only), the issuer, the audience (keygate's MCP endpoint:
// a token for any other resource is refused), expiry and not-before.
// keygate then checks, on every use, that the grant the token was minted
// from is live: revoking the grant, or the key that approved it, ends its
// access tokens at once, not when they expire.
//
// A client sends the same access token with every request for its
// lifetime, so the outcome of the signature check is remembered (by the
// token's SHA-256, until the token expires, at most maxVerified tokens):
// the signature is checked once per token, the grant on every use.
type Verifier struct {
	resource string
	grants   GrantStore
	now      func() time.Time
	jwt      *gooidc.IDTokenVerifier

	mu          sync.Mutex
	verified    map[[32]byte]verifiedToken
	maxVerified int
}

type verifiedToken struct {
	claims  accessClaims
	expires time.Time
}

// maxVerified bounds the remembered tokens: a few thousand clients' worth.
const maxVerified = 4096

func newVerifier(issuer, resource string, keys *keyring, grants GrantStore, now func() time.Time) *Verifier {
	return &Verifier{resource: resource, grants: grants, now: now, verified: map[[32]byte]verifiedToken{}, maxVerified: maxVerified,
		jwt: gooidc.NewVerifier(issuer, keyringKeySet{keys}, &gooidc.Config{
			ClientID: resource, SupportedSigningAlgs: []string{string(signingAlg)}, Now: now,
		})}
}

// verifiedClaims returns the claims of a token whose signature, issuer,
// audience and lifetime hold, from memory when it was checked before.
func (v *Verifier) verifiedClaims(ctx context.Context, token string) (accessClaims, error) {
	h := sha256.Sum256([]byte(token))
	now := v.now()
	v.mu.Lock()
	t, ok := v.verified[h]
	v.mu.Unlock()
	if ok && now.Before(t.expires) {
		return t.claims, nil
	}
	idt, err := v.jwt.Verify(ctx, token)
	if err != nil {
		return accessClaims{}, err
	}
	var c accessClaims
	if err := idt.Claims(&c); err != nil {
		return accessClaims{}, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.verified) >= v.maxVerified {
		for k, t := range v.verified {
			if !now.Before(t.expires) {
				delete(v.verified, k)
			}
		}
	}
	if len(v.verified) < v.maxVerified {
		v.verified[h] = verifiedToken{claims: c, expires: idt.Expiry}
	}
	return c, nil
}

// accessClaims are the claims keygate reads from its access tokens (RFC
// 9068 section 2.2).
type accessClaims struct {
	Subject  string `json:"sub"` // the grant id
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
}

// claims verifies token's signature, issuer, audience and lifetime.
func (v *Verifier) claims(ctx context.Context, token string) (accessClaims, error) {
	t, err := v.jwt.Verify(ctx, token)
	if err != nil {
		return accessClaims{}, err
	}
	var c accessClaims
	if err := t.Claims(&c); err != nil {
		return accessClaims{}, err
	}
	return c, nil
}

// Verify returns the principal of an access token: KeyID is the grant id
// (gr_...), Scopes the token's scopes (the grant's, or fewer), ExpiresAt the
// grant's expiry and CreatedBy the key that approved it. Every way a token
// can be wrong gives exactly auth.ErrInvalidToken; a store failure gives
// another error, on which callers fail closed.
func (v *Verifier) Verify(ctx context.Context, token string) (auth.Principal, error) {
	c, err := v.verifiedClaims(ctx, token)
	if err != nil {
		return auth.Principal{}, auth.ErrInvalidToken
	}
	g, err := v.grants.LiveGrant(ctx, c.Subject)
	if errors.Is(err, local.ErrGrantEnded) || errors.Is(err, provider.ErrNotFound) {
		return auth.Principal{}, auth.ErrInvalidToken
	}
	if err != nil {
		return auth.Principal{}, fmt.Errorf("verifying access token: %w", err)
	}
	if g.ClientID != c.ClientID || g.Resource != v.resource {
		return auth.Principal{}, auth.ErrInvalidToken
	}
	var names []string
	for _, sc := range strings.Fields(c.Scope) {
		if slices.Contains(g.Scopes, sc) {
			names = append(names, sc)
		}
	}
	scopes, err := auth.ParseScopes(names)
	if err != nil {
		return auth.Principal{}, auth.ErrInvalidToken
	}
	if g.LastUsedAt.IsZero() || v.now().Sub(g.LastUsedAt) >= time.Minute {
		v.grants.TouchGrant(ctx, g.ID) // the store writes at most once a minute; this spares the statement
	}
	return auth.Principal{KeyID: g.ID, Name: g.ClientName, Masked: "OAuth grant " + g.ID, Scopes: scopes,
		CreatedAt: g.CreatedAt, ExpiresAt: g.ExpiresAt, LastUsedAt: g.LastUsedAt, CreatedBy: g.ApprovedBy,
		Source: auth.SourceBearer}, nil
}

// keyringKeySet verifies signatures with the keyring's keys (go-oidc's
// KeySet): the key is chosen by the token's kid, and only ES256 is parsed.
type keyringKeySet struct{ keys *keyring }

func (k keyringKeySet) VerifySignature(ctx context.Context, token string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{signingAlg})
	if err != nil {
		return nil, fmt.Errorf("parsing token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must have exactly one signature")
	}
	pub, ok, err := k.keys.verificationKey(ctx, jws.Signatures[0].Header.KeyID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("token signed with an unknown key")
	}
	return jws.Verify(pub)
}

// auditRecord describes a grant for the journal.
func auditRecord(g local.Grant, tool, detail string) audit.Record {
	return audit.Record{Principal: g.ApprovedBy, Tool: tool, Target: "grant:" + g.ID, Outcome: audit.OutcomeOK,
		Detail: fmt.Sprintf("%s; client %s (%q, redirect host %s), scopes %s", detail, g.ClientID, g.ClientName, g.RedirectHost, strings.Join(g.Scopes, " "))}
}
