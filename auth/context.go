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
