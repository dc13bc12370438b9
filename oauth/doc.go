// Package oauth makes keygate's /mcp endpoint an OAuth 2.1 protected
// resource, as the MCP authorization specification asks: it describes the
// resource (RFC 9728 protected resource metadata), builds the
// WWW-Authenticate challenges of its 401 and 403 answers (RFC 6750
// section 3), and chooses the verifier of a bearer token by its shape, so
// keygate's own tokens (kg_pat_...) and OAuth access tokens (JWTs) work side
// by side.
//
// The embedded authorization server is package oauth/authserver; the mode
// that trusts an external issuer instead is package oauth/external.
// docs/oauth.md describes the design.
package oauth
