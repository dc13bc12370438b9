package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/oauth/authserver"
	"github.com/keygate/keygate/oauth/external"
)

// oauthSetup is what OAuth adds to the HTTP transport (docs/oauth.md,
// "Integration"): /mcp described as a protected resource, the verifier of
// access tokens, and, in embedded mode, the authorization server. It is
// made once keygate knows the URL clients reach it at, which may depend on
// the port it listens on.
type oauthSetup struct {
	publicURL string
	resource  *oauth.Resource
	tokens    oauth.Verifier
	server    *authserver.Server // nil unless embedded
}

// setUpOAuth builds the OAuth side for publicURL; nil when --oauth off.
func (a *App) setUpOAuth(ctx context.Context, publicURL string) (*oauthSetup, error) {
	resourceURL := publicURL + "/mcp"
	s := &oauthSetup{publicURL: publicURL}
	var issuer string
	switch a.cfg.OAuth {
	case config.OAuthEmbedded:
		cfg := authserver.Config{Issuer: publicURL, Resource: resourceURL, Resources: a.cfg.OAuthResources,
			Store: a.store, Journal: a.journal, Logger: a.logger, Now: a.opts.OAuthNow, ClientAddress: a.clientAddress}
		if a.opts.OAuthCIMD != nil {
			cfg.CIMD = *a.opts.OAuthCIMD
		}
		as, err := authserver.New(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("starting the OAuth authorization server for %s: %w", publicURL, err)
		}
		s.server, s.tokens, issuer = as, as.Verifier(), as.Issuer()
	case config.OAuthExternal:
		audience := a.cfg.OAuthAudience
		if audience == "" {
			audience = resourceURL
		}
		v, err := external.New(ctx, external.Config{Issuer: a.cfg.OAuthIssuer, Audience: audience, Scopes: a.cfg.OAuthScopes, Now: a.opts.OAuthNow})
		if err != nil {
			return nil, fmt.Errorf("--oauth external: %w", err)
		}
		s.tokens, issuer = v, v.Issuer()
	default:
		return nil, fmt.Errorf("unknown OAuth mode %q", a.cfg.OAuth)
	}
	var err error
	if s.resource, err = oauth.NewResource(resourceURL, issuer); err != nil {
		return nil, fmt.Errorf("--public-url: %w", err)
	}
	return s, nil
}

// corsPaths are the authorization server's endpoints that browser-based
// clients call themselves; the others are browser navigations (authorize,
// consent) or for token verifiers (JWKS).
var corsPaths = []string{authserver.MetadataPath, authserver.TokenPath, authserver.RegisterPath, authserver.RevokePath}

// route is a handler OAuth adds beside /mcp; cors marks one that
// browser-based clients call.
type route struct {
	pattern string
	handler http.Handler
	cors    bool
}

// routes are the handlers OAuth adds beside /mcp.
func (s *oauthSetup) routes() []route {
	var out []route
	for _, p := range s.resource.MetadataPaths() {
		out = append(out, route{pattern: p, handler: s.resource.MetadataHandler(), cors: true})
	}
	if s.server != nil {
		for _, p := range authserver.Patterns() {
			out = append(out, route{pattern: p, handler: s.server.Handler(), cors: slices.Contains(corsPaths, p)})
		}
	}
	return out
}

// clientAddress names the client of a request, for the authorization
// server's rate limits and the journal: the peer, or, with --trust-proxy,
// the address the proxy in front appended last to X-Forwarded-For (earlier
// entries are the client's own claims).
func (a *App) clientAddress(r *http.Request) string {
	if a.cfg.TrustProxy {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			parts := strings.Split(xff[len(xff)-1], ",")
			if ip := net.ParseIP(strings.TrimSpace(parts[len(parts)-1])); ip != nil {
				return ip.String()
			}
		}
	}
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}
