package oauth

import (
	"context"
	"strings"

	"github.com/keygate/keygate/auth"
)

// Verifier turns a bearer token into the principal it stands for. Every way
// a token can be wrong gives exactly auth.ErrInvalidToken; another error is
// a fault (the store is unreachable), on which callers fail closed.
type Verifier interface {
	Verify(ctx context.Context, token string) (auth.Principal, error)
}

// VerifierFunc adapts a function to Verifier.
type VerifierFunc func(ctx context.Context, token string) (auth.Principal, error)

// Verify calls f.
func (f VerifierFunc) Verify(ctx context.Context, token string) (auth.Principal, error) {
	return f(ctx, token)
}

// ByShape routes a token to the verifier for its kind: keygate tokens
// (kg_pat_...) to pat, JWTs to jwt. A nil verifier, or a token of neither
// shape, gives auth.ErrInvalidToken, so an OAuth deployment can turn PATs
// off and a PAT-only one never parses JWTs.
func ByShape(pat, jwt Verifier) Verifier {
	return VerifierFunc(func(ctx context.Context, token string) (auth.Principal, error) {
		switch {
		case strings.HasPrefix(token, auth.TokenPrefix) && pat != nil:
			return pat.Verify(ctx, token)
		case LooksLikeJWT(token) && jwt != nil:
			return jwt.Verify(ctx, token)
		}
		return auth.Principal{}, auth.ErrInvalidToken
	})
}

// MaxJWTLen bounds the tokens LooksLikeJWT accepts: far beyond any access
// token keygate or a usual issuer makes, short enough that a huge header is
// refused before anything parses it.
const MaxJWTLen = 8 << 10

// LooksLikeJWT reports whether token has the shape of a compact JWS: three
// non-empty base64url parts joined by dots. It says nothing of validity.
func LooksLikeJWT(token string) bool {
	if len(token) > MaxJWTLen {
		return false
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.IndexFunc(p, notBase64URL) >= 0 {
			return false
		}
	}
	return true
}

func notBase64URL(c rune) bool {
	return !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_')
}
