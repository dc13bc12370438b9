package identity

import (
	"context"
	"errors"
	"testing"

	"github.com/keygate/keygate/auth"
)

// countingTable verifies tokens from a table and counts the calls.
type countingTable struct {
	principals map[string]auth.Principal
	calls      int
}

func (c *countingTable) Verify(_ context.Context, tok string) (auth.Principal, error) {
	c.calls++
	if p, ok := c.principals[tok]; ok {
		return p, nil
	}
	return auth.Principal{}, auth.ErrInvalidToken
}

func TestResolve(t *testing.T) {
	bearer := auth.Credential{Secret: auth.NewSecret("bearer-token"), Source: auth.SourceBearer}
	bearerP := auth.Principal{KeyID: "k_bearer", Source: auth.SourceBearer}
	process := auth.Credential{Secret: auth.NewSecret("process-token"), Source: auth.SourceEnvFile}
	tests := []struct {
		name      string
		ident     func(v Verifier) *Identity
		ctx       func(id *Identity) context.Context
		wantKey   string
		wantErr   error
		wantCalls int
	}{
		{"the transport's verification is taken as it is",
			func(v Verifier) *Identity { return NewHTTPIdentity(v) },
			func(*Identity) context.Context { return WithVerified(context.Background(), bearerP, bearer) },
			"k_bearer", nil, 0},
		{"the process credential is verified",
			func(v Verifier) *Identity { return NewIdentity(v, process) },
			func(*Identity) context.Context { return context.Background() },
			"k_process", nil, 1},
		{"a session's own credential wins over the transport's, and is verified",
			func(v Verifier) *Identity { return NewIdentity(v, process) },
			func(id *Identity) context.Context {
				id.SetSession(context.Background(), auth.Credential{Secret: auth.NewSecret("session-token"), Source: auth.SourceSession})
				return WithVerified(context.Background(), bearerP, bearer)
			},
			"k_session", nil, 1},
		{"no credential at all",
			func(v Verifier) *Identity { return NewHTTPIdentity(v) },
			func(*Identity) context.Context { return context.Background() },
			"", ErrNoCredential, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := &countingTable{principals: map[string]auth.Principal{
				"process-token": {KeyID: "k_process"}, "session-token": {KeyID: "k_session"}}}
			id := tc.ident(v)
			p, _, err := id.Resolve(tc.ctx(id))
			if !errors.Is(err, tc.wantErr) || p.KeyID != tc.wantKey {
				t.Errorf("Resolve = %q, %v; want %q, %v", p.KeyID, err, tc.wantKey, tc.wantErr)
			}
			if v.calls != tc.wantCalls {
				t.Errorf("verifier called %d times, want %d", v.calls, tc.wantCalls)
			}
		})
	}
}
