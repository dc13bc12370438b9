package authserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
)

// Refresh tokens are opaque: a prefix and 256 random bits. The prefix has
// the shape keygate's redactor masks (auth.NewRedactor), so one cannot
// reach a log line or a tool result unmasked. Only their SHA-256 is kept.
const refreshTokenPrefix = "kg_rt_"

func newRefreshToken() string {
	return refreshTokenPrefix + strings.ReplaceAll(rand.Text()+rand.Text(), "=", "")
}

func refreshTokenHash(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// tokenRequest is what an access token is minted from: a live grant and
// the scopes of this token (all the grant's, or fewer when a refresh asked
// for fewer, RFC 6749 section 6). It is an op.RefreshTokenRequest, so the
// library always asks storage for a refresh token with it, and never an ID
// token: keygate is not an OpenID provider.
type tokenRequest struct {
	grant    local.Grant
	clientID string
	scopes   []string
}

func (r *tokenRequest) GetAMR() []string             { return nil }
func (r *tokenRequest) GetAudience() []string        { return []string{r.grant.Resource} }
func (r *tokenRequest) GetAuthTime() time.Time       { return r.grant.CreatedAt }
func (r *tokenRequest) GetClientID() string          { return r.clientID }
func (r *tokenRequest) GetScopes() []string          { return r.scopes }
func (r *tokenRequest) GetSubject() string           { return r.grant.ID }
func (r *tokenRequest) SetCurrentScopes(ss []string) { r.scopes = ss }

// storage is the op.Storage the library calls. Methods for features keygate
// does not offer (OpenID Connect user info, JWT profile, sessions) refuse.
type storage struct{ s *Server }

var errNotOffered = errors.New("not offered by keygate's authorization server")

// The authorization request is created by Server.authorize, not through
// the library; see server.go.
func (st storage) CreateAuthRequest(context.Context, *oidc.AuthRequest, string) (op.AuthRequest, error) {
	return nil, errNotOffered
}

func (st storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	a, ok := st.s.pending.get(id)
	if !ok {
		return nil, errUnknownRequest
	}
	return a, nil
}

// AuthRequestByCode finds the request a code was issued for. A code used
// twice means it was stolen or replayed: the grant made with it is revoked,
// and with it the tokens the first exchange returned (RFC 6749 section
// 4.1.2, OAuth 2.1 section 4.1.3).
func (st storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	a, err := st.s.pending.byCodeHash(codeHash(code))
	if errors.Is(err, errCodeReplayed) {
		st.s.revokeGrant(ctx, a.grant.ID, local.GrantRevokedCodeReplay, "authorization code replayed")
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (st storage) SaveAuthCode(_ context.Context, id, code string) error {
	return st.s.pending.saveCode(id, code)
}

func (st storage) DeleteAuthRequest(_ context.Context, id string) error {
	st.s.pending.remove(id)
	return nil
}

// CreateAccessToken names a token minted without a refresh token; keygate
// always mints both, but the library may ask.
func (st storage) CreateAccessToken(context.Context, op.TokenRequest) (string, time.Time, error) {
	return newTokenID(), st.s.now().Add(st.s.cfg.AccessTokenTTL), nil
}

// CreateAccessAndRefreshTokens issues the refresh token that goes with an
// access token: the grant's first one after a code exchange, or the next one
// of a refresh, which retires the current one (rotation, OAuth 2.1 section
// 4.3.1). It returns the access token's id (jti) and expiry.
func (st storage) CreateAccessAndRefreshTokens(ctx context.Context, request op.TokenRequest, current string) (string, string, time.Time, error) {
	tr, ok := request.(*tokenRequest)
	if !ok {
		return "", "", time.Time{}, oidc.ErrServerError().WithDescription("unexpected token request")
	}
	next := newRefreshToken()
	if current == "" {
		if err := st.s.cfg.Store.AddRefreshToken(ctx, tr.grant.ID, refreshTokenHash(next)); err != nil {
			return "", "", time.Time{}, grantError(err)
		}
	} else {
		_, err := st.s.cfg.Store.RotateRefreshToken(ctx, refreshTokenHash(current), refreshTokenHash(next))
		if errors.Is(err, local.ErrRefreshTokenReused) {
			st.s.grantRevokedForReuse(ctx, tr.grant.ID)
		}
		if err != nil {
			return "", "", time.Time{}, grantError(err)
		}
	}
	return newTokenID(), next, st.s.now().Add(st.s.cfg.AccessTokenTTL), nil
}

// grantError turns a store error about a grant or refresh token into the
// token endpoint's answer: invalid_grant for everything the client caused,
// server_error for a fault.
func grantError(err error) error {
	switch {
	case errors.Is(err, local.ErrGrantEnded), errors.Is(err, provider.ErrNotFound):
		return oidc.ErrInvalidGrant().WithDescription("the grant has ended or the token is unknown; authorize again")
	case errors.Is(err, local.ErrRefreshTokenReused):
		return oidc.ErrInvalidGrant().WithDescription("this refresh token was already used; the grant has been revoked, authorize again")
	}
	return oidc.ErrServerError().WithParent(err)
}

func newTokenID() string { return strings.ToLower(rand.Text()) }

// TokenRequestByRefreshToken finds the grant of a refresh token. A token
// that was already exchanged is a replay: the grant is revoked.
func (st storage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	if !strings.HasPrefix(token, refreshTokenPrefix) {
		return nil, op.ErrInvalidRefreshToken
	}
	rt, err := st.s.cfg.Store.LookupRefreshToken(ctx, refreshTokenHash(token))
	if err != nil {
		return nil, grantError(err)
	}
	if !rt.UsedAt.IsZero() {
		st.s.grantRevokedForReuse(ctx, rt.GrantID)
		return nil, grantError(local.ErrRefreshTokenReused)
	}
	g, err := st.s.cfg.Store.LiveGrant(ctx, rt.GrantID)
	if err != nil {
		return nil, grantError(err)
	}
	return &tokenRequest{grant: g, clientID: g.ClientID, scopes: g.Scopes}, nil
}

func (st storage) TerminateSession(context.Context, string, string) error { return errNotOffered }

// RevokeToken and GetRefreshTokenInfo serve the library's revocation
// handler, which keygate replaces (Server.revocation).
func (st storage) RevokeToken(context.Context, string, string, string) *oidc.Error {
	return oidc.ErrServerError().WithParent(errNotOffered)
}

func (st storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (st storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	return st.s.keys.active(ctx)
}

func (st storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{signingAlg}, nil
}

func (st storage) KeySet(ctx context.Context) ([]op.Key, error) { return st.s.keys.public(ctx) }

func (st storage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := st.s.clients.get(ctx, id)
	if err != nil {
		st.s.cfg.Logger.WarnContext(ctx, "oauth: client lookup failed", "client_id", id, "err", err)
		return nil, err
	}
	return c, nil
}

func (st storage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	if err := st.s.clients.checkSecret(ctx, id, secret); err != nil {
		st.s.refuse(ctx, "oauth.token", id, "client authentication failed")
		return err
	}
	return nil
}

func (st storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return errNotOffered
}

func (st storage) SetUserinfoFromToken(context.Context, *oidc.UserInfo, string, string, string) error {
	return errNotOffered
}

func (st storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errNotOffered
}

// GetPrivateClaimsFromScopes adds the scope claim (RFC 9068 section 2.2.3)
// to access tokens.
func (st storage) GetPrivateClaimsFromScopes(_ context.Context, _, _ string, scopes []string) (map[string]any, error) {
	return map[string]any{"scope": strings.Join(scopes, " ")}, nil
}

func (st storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errNotOffered
}

func (st storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errNotOffered
}

func (st storage) Health(context.Context) error { return nil }

var _ op.Storage = storage{}

// audit helpers

func (s *Server) record(r audit.Record) {
	if s.cfg.Journal == nil {
		return
	}
	if err := s.cfg.Journal.Write(r); err != nil {
		s.cfg.Logger.Error("oauth: writing the audit journal", "err", err)
	}
}

// refuse records a refused attempt (coalesced by the journal).
func (s *Server) refuse(ctx context.Context, tool, target, detail string) {
	if s.cfg.Journal == nil {
		return
	}
	err := s.cfg.Journal.WriteRefusal(audit.Record{Tool: tool, Target: target, Outcome: audit.OutcomeDenied,
		Detail: detail, Remote: addressFrom(ctx)})
	if err != nil {
		s.cfg.Logger.Error("oauth: writing the audit journal", "err", err)
	}
}

// revokeGrant ends a grant for a reason of keygate's own and records it.
func (s *Server) revokeGrant(ctx context.Context, id, reason, detail string) {
	if id == "" {
		return
	}
	g, already, err := s.cfg.Store.RevokeGrant(ctx, id, reason)
	if err != nil {
		s.cfg.Logger.Error("oauth: revoking grant", "grant", id, "err", err)
		return
	}
	if already {
		return
	}
	s.cfg.Logger.Warn("oauth: grant revoked", "grant", id, "client_id", g.ClientID, "reason", reason)
	s.record(audit.Record{Principal: g.ApprovedBy, Tool: "oauth.token", Target: "grant:" + id, Outcome: audit.OutcomeRefused,
		Detail: fmt.Sprintf("%s: grant revoked (client %s)", detail, g.ClientID), Remote: addressFrom(ctx)})
}

// grantRevokedForReuse revokes (or finds revoked by the store) a grant one
// of whose refresh tokens was replayed, and records it. It runs once per
// grant: revocation deletes the grant's refresh tokens.
func (s *Server) grantRevokedForReuse(ctx context.Context, id string) {
	g, _, err := s.cfg.Store.RevokeGrant(ctx, id, local.GrantRevokedReuse)
	if err != nil {
		s.cfg.Logger.Error("oauth: revoking grant", "grant", id, "err", err)
		return
	}
	s.cfg.Logger.Warn("oauth: refresh token replayed, grant revoked", "grant", id, "client_id", g.ClientID)
	s.record(audit.Record{Principal: g.ApprovedBy, Tool: "oauth.token", Target: "grant:" + id, Outcome: audit.OutcomeRefused,
		Detail: fmt.Sprintf("refresh token replayed: grant revoked (client %s)", g.ClientID), Remote: addressFrom(ctx)})
}
