package auth

import "context"

type credentialKey struct{}

// WithCredential attaches the credential a request arrived with (the HTTP
// bearer token) to ctx.
func WithCredential(ctx context.Context, c Credential) context.Context {
	return context.WithValue(ctx, credentialKey{}, c)
}

// CredentialFrom returns the credential attached by WithCredential.
func CredentialFrom(ctx context.Context) (Credential, bool) {
	c, ok := ctx.Value(credentialKey{}).(Credential)
	return c, ok && !c.Secret.IsZero()
}

type callerScopesKey struct{}

// WithCallerScopes records in ctx the scopes of the caller a tool call runs
// for; nil scopes mean a caller without a valid credential. keygate's tool
// layer does this for every call, so a provider can tell whose request it
// is sending.
func WithCallerScopes(ctx context.Context, ss Scopes) context.Context {
	return context.WithValue(ctx, callerScopesKey{}, ss)
}

// CallerScopes returns the scopes WithCallerScopes recorded. ok is false
// when ctx does not come from a tool call: keygate's own work, such as
// settling a rotation at start-up.
func CallerScopes(ctx context.Context) (ss Scopes, ok bool) {
	ss, ok = ctx.Value(callerScopesKey{}).(Scopes)
	return ss, ok
}
