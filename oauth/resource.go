package oauth

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/auth"
)

// Resource describes keygate's MCP endpoint as an OAuth protected resource.
type Resource struct {
	// URL is the canonical resource identifier (RFC 8707 section 2, RFC 9728
	// section 1.2), such as https://keygate.example.com/mcp. Tokens are
	// accepted only when issued for exactly this value.
	URL string
	// AuthorizationServers are the issuers whose tokens the resource takes.
	AuthorizationServers []string
	// Scopes are the scopes a client may ask for: keygate's own.
	Scopes []string
	// Name is shown by clients that display the resource.
	Name string
}

// NewResource describes the MCP endpoint at resourceURL, protected by the
// given authorization servers (issuer URLs). Both must be https URLs, or
// http on a loopback host.
func NewResource(resourceURL string, authorizationServers ...string) (*Resource, error) {
	canon, err := CanonicalURL(resourceURL)
	if err != nil {
		return nil, fmt.Errorf("resource: %w", err)
	}
	if len(authorizationServers) == 0 {
		return nil, errors.New("resource: at least one authorization server is required (RFC 9728 section 2, MCP authorization)")
	}
	var issuers []string
	for _, as := range authorizationServers {
		c, err := CanonicalURL(as)
		if err != nil {
			return nil, fmt.Errorf("authorization server: %w", err)
		}
		issuers = append(issuers, c)
	}
	scopes := make([]string, len(auth.AllActions))
	for i, a := range auth.AllActions {
		scopes[i] = string(a)
	}
	return &Resource{URL: canon, AuthorizationServers: issuers, Scopes: scopes, Name: "keygate"}, nil
}

// CanonicalURL checks that raw can identify a resource or an issuer and
// returns its canonical form: scheme and host in lower case, no trailing
// slash (MCP authorization, "Canonical Server URI"). It must be https, or
// http on a loopback host (RFC 8252 section 8.3: loopback traffic never
// leaves the machine), and may have no user, query or fragment (RFC 8707
// section 2, RFC 8414 section 2).
func CanonicalURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	switch {
	case u.Host == "" || !u.IsAbs():
		return "", fmt.Errorf("%q must be an absolute URL such as https://keygate.example.com/mcp", raw)
	case u.Scheme == "http" && !IsLoopbackHost(u.Hostname()):
		return "", fmt.Errorf("%q must use https (plain http is accepted only on a loopback host such as 127.0.0.1)", raw)
	case u.Scheme != "https" && u.Scheme != "http":
		return "", fmt.Errorf("%q must use https", raw)
	case u.User != nil:
		return "", fmt.Errorf("%q must not contain a user name or password", raw)
	case u.RawQuery != "" || u.ForceQuery:
		return "", fmt.Errorf("%q must not contain a query", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", fmt.Errorf("%q must not contain a fragment", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// IsLoopbackHost reports whether host (without port) names the loopback
// interface: localhost or a loopback IP literal.
func IsLoopbackHost(host string) bool {
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// MetadataPath is the path of the resource's metadata document, its
// well-known URL with the resource's path appended (RFC 9728 section 3.1):
// /.well-known/oauth-protected-resource/mcp for /mcp.
func (r *Resource) MetadataPath() string { return server.ProtectedResourceMetadataPath(r.URL) }

// MetadataURL is the absolute URL of the metadata document, the value of
// resource_metadata in challenges.
func (r *Resource) MetadataURL() string {
	u, _ := url.Parse(r.URL) // checked by NewResource
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: r.MetadataPath()}).String()
}

// Metadata is the document served at MetadataPath.
func (r *Resource) Metadata() server.ProtectedResourceMetadataConfig {
	return server.ProtectedResourceMetadataConfig{
		Resource:               r.URL,
		AuthorizationServers:   r.AuthorizationServers,
		ScopesSupported:        r.Scopes,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           r.Name,
	}
}

// MetadataHandler serves the metadata document (mcp-go's RFC 9728 handler:
// GET and HEAD, CORS for browser clients, no-store).
func (r *Resource) MetadataHandler() http.Handler {
	return server.NewProtectedResourceMetadataHandler(r.Metadata())
}

// MetadataPaths are both places MCP clients look for the metadata
// document: the path-specific well-known URL and, for clients that only
// try the root, /.well-known/oauth-protected-resource (MCP authorization,
// "Protected Resource Metadata Discovery Requirements").
func (r *Resource) MetadataPaths() []string {
	if r.MetadataPath() == server.WellKnownProtectedResourcePath {
		return []string{r.MetadataPath()}
	}
	return []string{r.MetadataPath(), server.WellKnownProtectedResourcePath}
}

// Register serves the metadata document on mux at MetadataPaths.
func (r *Resource) Register(mux *http.ServeMux) {
	h := r.MetadataHandler()
	for _, p := range r.MetadataPaths() {
		mux.Handle(p, h)
	}
}

// Challenge is the WWW-Authenticate value of a 401 for a request without a
// token: where to find the metadata, and the scopes to ask for (all of
// keygate's when scopes is empty). RFC 6750 section 3 gives no error code
// when no credential was sent; RFC 9728 section 5.1 adds
// resource_metadata.
func (r *Resource) Challenge(scopes []string) string {
	return bearer(
		"resource_metadata", r.MetadataURL(),
		"scope", strings.Join(r.orAll(scopes), " "),
	)
}

// InvalidTokenChallenge is the WWW-Authenticate value of a 401 for a token
// that is malformed, expired, revoked or issued for another resource (RFC
// 6750 section 3.1, invalid_token). The description must not repeat the
// token.
func (r *Resource) InvalidTokenChallenge(description string, scopes []string) string {
	return bearer(
		"error", "invalid_token",
		"error_description", description,
		"resource_metadata", r.MetadataURL(),
		"scope", strings.Join(r.orAll(scopes), " "),
	)
}

// InvalidRequestChallenge is the WWW-Authenticate value of a 401 for a
// request whose credential is malformed: two Authorization headers, a
// scheme other than Bearer, a token in the query string (RFC 6750 section
// 3.1, invalid_request). Like the others it names the metadata, so a
// client that sent a broken header can still discover how to get a token.
func (r *Resource) InvalidRequestChallenge(description string, scopes []string) string {
	return bearer(
		"error", "invalid_request",
		"error_description", description,
		"resource_metadata", r.MetadataURL(),
		"scope", strings.Join(r.orAll(scopes), " "),
	)
}

// InsufficientScopeChallenge is the WWW-Authenticate value of a 403 for a
// valid token without the scopes a request needs (RFC 6750 section 3.1,
// MCP authorization "Runtime Insufficient Scope Errors"). needed should hold
// the scopes the caller already has that still matter plus the missing
// ones, so a client that asks again does not lose what it had.
func (r *Resource) InsufficientScopeChallenge(needed []string, description string) string {
	return bearer(
		"error", "insufficient_scope",
		"scope", strings.Join(needed, " "),
		"resource_metadata", r.MetadataURL(),
		"error_description", description,
	)
}

func (r *Resource) orAll(scopes []string) []string {
	if len(scopes) == 0 {
		return r.Scopes
	}
	return scopes
}

// bearer renders a Bearer challenge from name/value pairs, skipping empty
// values. Values are quoted-strings (RFC 9110 section 11.2); a value holding
// a character that cannot be quoted is dropped to a safe form.
func bearer(pairs ...string) string {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			continue
		}
		b.WriteString(sep)
		b.WriteString(pairs[i])
		b.WriteString(`="`)
		b.WriteString(quote(pairs[i+1]))
		b.WriteString(`"`)
		sep = ", "
	}
	return b.String()
}

// quote escapes a value for a quoted-string and drops control and non-ASCII
// characters, which RFC 6750 section 3 does not allow in its parameters.
func quote(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c < 0x20 || c > 0x7e:
			b.WriteByte(' ')
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}
