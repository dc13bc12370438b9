// Package identity says who is calling: it verifies the credential a call
// acts with (a token given to auth_authenticate for one session, or
// keygate's own process credential) on every call, through a short-lived
// cache of verifications. An HTTP bearer token is verified once, by the
// transport, which hands the verified principal down in the request's
// context (WithVerified).
package identity

import (
	"context"
	"errors"
	"sync"

	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/auth"
)

// Verifier checks a keygate token and says whose it is.
type Verifier interface {
	Verify(ctx context.Context, token string) (auth.Principal, error)
}

// ErrNoCredential means the caller presented no credential at all.
var ErrNoCredential = errors.New("no credential")

// Identity decides, on every call, which keygate credential is acting:
// a token given to auth_authenticate for this session wins, then the HTTP
// bearer token, then the process credential (KEYGATE_TOKEN). It verifies the
// credential each time, so a revoked or expired key stops working on the very
// next call.
type Identity struct {
	verifier Verifier
	// perRequest is set over HTTP, where many clients share the process
	// and only a legacy session id can carry a credential across calls.
	// Over stdio the process serves one client, so the process is the
	// session.
	perRequest bool

	mu       sync.RWMutex
	process  auth.Credential
	sessions map[string]auth.Credential
}

// NewIdentity returns an Identity for a stdio server whose process
// credential is cred (which may be zero when none is configured).
func NewIdentity(v Verifier, cred auth.Credential) *Identity {
	return &Identity{verifier: v, process: cred, sessions: map[string]auth.Credential{}}
}

// NewHTTPIdentity returns an Identity for a streamable HTTP server, where
// each request carries its caller's bearer token and keygate has no
// process credential of its own.
func NewHTTPIdentity(v Verifier) *Identity {
	return &Identity{verifier: v, perRequest: true, sessions: map[string]auth.Credential{}}
}

type verifiedKey struct{}

// verified is a credential the transport verified for this request.
type verified struct {
	p    auth.Principal
	cred auth.Credential
}

// WithVerified records in ctx that the transport verified cred and found
// it to be p (the HTTP bearer token): Resolve answers with p instead of
// verifying cred again.
func WithVerified(ctx context.Context, p auth.Principal, cred auth.Credential) context.Context {
	return context.WithValue(ctx, verifiedKey{}, verified{p: p, cred: cred})
}

// VerifiedFrom returns what WithVerified recorded.
func VerifiedFrom(ctx context.Context) (auth.Principal, auth.Credential, bool) {
	v, ok := ctx.Value(verifiedKey{}).(verified)
	return v.p, v.cred, ok
}

// Credential returns the credential acting for ctx, unverified.
func (id *Identity) Credential(ctx context.Context) (auth.Credential, bool) {
	c, _, ok := id.acting(ctx)
	return c, ok
}

// acting picks the credential acting for ctx: a session's own, then the
// one the transport brought (already verified, when pre is non-nil), then
// the process credential.
func (id *Identity) acting(ctx context.Context) (c auth.Credential, pre *auth.Principal, ok bool) {
	id.mu.RLock()
	defer id.mu.RUnlock()
	if sid := id.SessionID(ctx); sid != "" {
		if c, ok := id.sessions[sid]; ok {
			return c, nil, true
		}
	}
	if p, c, ok := VerifiedFrom(ctx); ok {
		return c, &p, true
	}
	if c, ok := auth.CredentialFrom(ctx); ok {
		return c, nil, true
	}
	if !id.process.Secret.IsZero() {
		return id.process, nil, true
	}
	return auth.Credential{}, nil, false
}

// Resolve verifies the credential acting for ctx, or takes the transport's
// verification of it (WithVerified). The error is ErrNoCredential,
// auth.ErrInvalidToken, or a store fault; callers fail closed on all of
// them.
func (id *Identity) Resolve(ctx context.Context) (auth.Principal, auth.Credential, error) {
	cred, pre, ok := id.acting(ctx)
	if !ok {
		return auth.Principal{}, auth.Credential{}, ErrNoCredential
	}
	if pre != nil {
		return *pre, cred, nil
	}
	p, err := id.verifier.Verify(ctx, cred.Secret.Reveal())
	if err != nil {
		return auth.Principal{}, cred, err
	}
	p.Source = cred.Source
	return p, cred, nil
}

// SetSession makes cred act for the current session only. It reports false
// when the call has no lasting session to attach it to.
func (id *Identity) SetSession(ctx context.Context, cred auth.Credential) bool {
	sid := id.SessionID(ctx)
	if sid == "" {
		return false
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	id.sessions[sid] = cred
	return true
}

// ForgetSession drops a session's credential when the session ends.
func (id *Identity) ForgetSession(sid string) {
	id.mu.Lock()
	defer id.mu.Unlock()
	delete(id.sessions, sid)
}

// SetProcess replaces the process credential: after the env file changed,
// or when a rotation of keygate's own credential delivered its successor.
// It is the only credential that ever follows a rotation; a session that
// authenticated with a key keeps that key, and must authenticate again once
// it stops working. Calls already running finish with the credential they
// read.
func (id *Identity) SetProcess(c auth.Credential) {
	id.mu.Lock()
	defer id.mu.Unlock()
	id.process = c
}

// Verify checks a token with the identity's verifier.
func (id *Identity) Verify(ctx context.Context, tok string) (auth.Principal, error) {
	return id.verifier.Verify(ctx, tok)
}

// Invalidate forgets cached verifications, when the verifier caches them:
// keygate calls it after any change to keys.
func (id *Identity) Invalidate() {
	if c, ok := id.verifier.(interface{ Invalidate() }); ok {
		c.Invalidate()
	}
}

// PerRequest reports whether each request brings its own credential
// (streamable HTTP), rather than the process serving one client (stdio).
func (id *Identity) PerRequest() bool { return id.perRequest }

// Process returns the process credential.
func (id *Identity) Process() auth.Credential {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.process
}

// stdioSession is the key of the one session a stdio server has.
const stdioSession = "stdio"

// SessionID returns the id of a session that outlives this request: the
// process over stdio, or a legacy streamable-HTTP session. Modern
// (2026-07-28) HTTP requests are each their own throw-away session, so they
// have none.
func (id *Identity) SessionID(ctx context.Context) string {
	if !id.perRequest {
		return stdioSession
	}
	if server.IsModernRequest(ctx) {
		return ""
	}
	if s := server.ClientSessionFromContext(ctx); s != nil {
		return s.SessionID()
	}
	return ""
}
