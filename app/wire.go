package app

// Every use of the tools and transport packages is in this file, so a
// change to how they build the MCP server or the HTTP handler is adapted
// here and nowhere else.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/tools"
	"github.com/keygate/keygate/transport"
)

// remote is a remote provider as keygate wires it in: content, a live view
// of its credentials, and the secrets it holds (for the redactor).
type remote interface {
	tools.ContentStore
	tools.Inspector
	Name() string
	Secrets() []string
}

// ringed is a remote provider with a key API keygate manages through the
// credentials service.
type ringed interface {
	Ring() credentials.Ring
}

// mcpServer is the MCP server with the tools it serves.
type mcpServer struct {
	deps   *tools.Deps
	server *server.MCPServer
	served []tools.ServerTool
	local  tools.Provider
}

// buildServer builds the tools' dependencies and the MCP server.
func (a *App) buildServer() error {
	m := &mcpServer{local: tools.Provider{Name: "local", Content: a.store,
		Ring: credentials.LocalRing(a.store, a.engine, a.cfg.EnvFile, a.ident)}}
	m.deps = &tools.Deps{
		Providers: tools.NewProviders(m.providerList(a.remotes.list())...),
		Identity:  a.ident,
		Redactor:  a.redactor,
		Credentials: &credentials.Service{Store: a.store, Grants: a.store, Places: a.places, Learn: a.redactor.Add,
			Changed: a.ident.Invalidate},
		EnvFile:       a.cfg.EnvFile,
		Audit:         a.journal,
		ExpiryWarning: a.cfg.ExpiryWarning,
		HTTP:          a.cfg.Transport == "http",
		Logger:        a.logger,
	}
	var err error
	m.server, m.served, err = tools.NewServer(m.deps, tools.Options{Toolsets: a.cfg.Toolsets, ReadOnly: a.cfg.ReadOnly, Version: a.opts.Version})
	if err != nil {
		return fmt.Errorf("building MCP server: %w", err)
	}
	a.mcp = m
	return nil
}

// providerList puts local first (the default) and the remotes after it.
func (m *mcpServer) providerList(remotes []remote) []tools.Provider {
	out := []tools.Provider{m.local}
	for _, r := range remotes {
		p := tools.Provider{Name: r.Name(), Content: r, Inspect: r, Ring: credentials.Ring{Provider: r.Name()}}
		if rr, ok := r.(ringed); ok {
			p.Ring = rr.Ring()
		}
		if h, ok := r.(interface{ RotateHint() string }); ok {
			p.Ring.RotateHint = h.RotateHint()
		}
		out = append(out, p)
	}
	return out
}

// setRemotes swaps the remote providers in; calls in flight keep the one
// they picked.
func (m *mcpServer) setRemotes(remotes []remote) {
	m.deps.Providers.Set(m.providerList(remotes)...)
}

// providerNames lists the providers the tools offer.
func (m *mcpServer) providerNames() []string { return m.deps.Providers.Names() }

// visibleTools lists the tools p may see (nil: no valid credential).
func (m *mcpServer) visibleTools(p *auth.Principal) []string { return tools.VisibleTools(m.served, p) }

// toolsChanged tells every client to fetch tools/list again.
func (m *mcpServer) toolsChanged() {
	m.server.SendNotificationToAllClients("notifications/tools/list_changed", nil)
}

// serveStdio serves MCP on in and out until ctx is done or in ends.
func (m *mcpServer) serveStdio(ctx context.Context, a *App, in io.Reader, out io.Writer) error {
	a.logger.Info("serving MCP over stdio", "store", a.cfg.StoreName(), "tools", len(m.served), "providers", m.providerNames())
	if f, ok := in.(*os.File); ok {
		pollable, restore := transport.PollableStdin(f)
		defer restore()
		in = pollable
	}
	err := transport.ServeStdio(ctx, m.server, in, out, a.logger)
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("stdio: %w", err)
	}
	return nil
}

// httpConfig is the streamable HTTP transport's configuration; oa is the
// OAuth side (nil with --oauth off).
func (m *mcpServer) httpConfig(a *App, oa *oauthSetup) transport.HTTPConfig {
	cfg := transport.HTTPConfig{
		Addr:           a.cfg.Addr,
		AllowedOrigins: a.cfg.AllowedOrigins,
		MaxBodyBytes:   a.cfg.MaxBodyBytes,
		Verifier:       a.verifier,
		ScopeCheck:     tools.ScopeCheckFor(m.served),
		Logger:         a.logger,
		Version:        a.opts.Version,
		OnSessionEnd:   a.ident.ForgetSession,
		Stateless:      a.cfg.Stateless,
		BehindProxy:    a.cfg.TrustProxy,
		Ready:          a.ready,
		TLSCert:        a.cfg.TLSCert,
		TLSKey:         a.cfg.TLSKey,
		// Refusals are coalesced per reason and client host and never
		// synced one by one: a flood of them costs little disk and no
		// flushes (audit.Log.WriteRefusal).
		OnAuthFailure: func(r *http.Request, reason string) {
			if err := a.journal.WriteRefusal(audit.Record{Tool: "http", Outcome: audit.OutcomeDenied, Detail: reason, Remote: a.clientAddress(r)}); err != nil {
				a.logger.Error("cannot write the audit journal", "err", err)
			}
		},
	}
	if oa != nil {
		// keygate tokens keep working beside access tokens, each checked
		// by its own verifier: keygate tokens through the short cache the
		// tools share, access tokens against their grant on every request
		// (authserver.Verifier), so a revoked grant ends at once.
		cfg.Verifier = oauth.ByShape(a.verifier, oa.tokens)
		cfg.Challenges = oa.resource
		cfg.ChallengeScopes = challengeScopes(m.served)
		cfg.MaxAuthHeader = len("Bearer ") + oauth.MaxJWTLen
		for _, r := range oa.routes() {
			cfg.Routes = append(cfg.Routes, transport.Route{Pattern: r.pattern, Handler: r.handler, CORS: r.cors})
		}
	}
	return cfg
}

// challengeScopes are the scopes a client without a token is told to ask
// for: those the served tools need, and no more (admin, which no tool
// needs, is left for the person to grant on purpose).
func challengeScopes(served []tools.ServerTool) []string {
	var out []string
	for _, act := range auth.AllActions {
		if slices.ContainsFunc(served, func(t tools.ServerTool) bool { return t.Needs == act }) {
			out = append(out, string(act))
		}
	}
	return out
}

// serveHTTP listens on the configured address and serves until ctx is
// done, then drains.
func (m *mcpServer) serveHTTP(ctx context.Context, a *App) error {
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", a.cfg.Addr, err)
	}
	publicURL := a.cfg.ResolvePublicURL(ln.Addr())
	oa, err := a.oauthFor(ctx, publicURL)
	if err != nil {
		ln.Close()
		return err
	}
	if !transport.IsLoopback(a.cfg.Addr) {
		a.logger.Warn("listening beyond loopback: every request still needs a keygate token or an OAuth access token", "addr", a.cfg.Addr)
		if a.cfg.TLSCert == "" && !strings.HasPrefix(publicURL, "https://") {
			a.logger.Warn("serving plain HTTP beyond loopback: tokens travel in clear text unless a TLS-terminating proxy is in front; "+
				"serve HTTPS with --tls-cert and --tls-key, or, behind such a proxy, say so with --public-url https://...", "addr", a.cfg.Addr)
		}
	}
	return transport.Serve(ctx, ln, m.server, m.httpConfig(a, oa), func(addr net.Addr) {
		a.logger.Info("serving MCP over streamable HTTP", "url", publicURL+"/mcp", "store", a.cfg.StoreName(), "oauth", a.cfg.OAuth,
			"auth", "Authorization: Bearer <KEYGATE_TOKEN from "+a.cfg.EnvFile+">"+oauthHint(oa))
		if a.opts.Listening != nil {
			a.opts.Listening(addr)
		}
	})
}

// oauthHint says how else a client authenticates.
func oauthHint(oa *oauthSetup) string {
	if oa == nil {
		return ""
	}
	return " or an OAuth access token (discovery: " + oa.resource.MetadataURL() + ")"
}

// oauthFor sets OAuth up for publicURL, unless it is off.
func (a *App) oauthFor(ctx context.Context, publicURL string) (*oauthSetup, error) {
	if a.cfg.OAuth == "" || a.cfg.OAuth == config.OAuthOff {
		return nil, nil
	}
	return a.setUpOAuth(ctx, publicURL)
}

// httpHandler is the HTTP handler (/mcp, /healthz and, with OAuth, its
// routes) for a listener at addr, for a server the caller runs.
func (m *mcpServer) httpHandler(ctx context.Context, a *App, addr net.Addr) (http.Handler, error) {
	oa, err := a.oauthFor(ctx, a.cfg.ResolvePublicURL(addr))
	if err != nil {
		return nil, err
	}
	return transport.NewHTTPHandler(m.server, m.httpConfig(a, oa), transport.OwnOrigins(addr)), nil
}
