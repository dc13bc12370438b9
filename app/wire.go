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

	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/credentials"
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
		Credentials: &credentials.Service{Store: a.store, Places: a.places, Learn: a.redactor.Add,
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
	a.logger.Info("serving MCP over stdio", "store", a.cfg.Store, "tools", len(m.served), "providers", m.providerNames())
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

// httpConfig is the streamable HTTP transport's configuration.
func (m *mcpServer) httpConfig(a *App) transport.HTTPConfig {
	return transport.HTTPConfig{
		Addr:           a.cfg.Addr,
		AllowedOrigins: a.cfg.AllowedOrigins,
		MaxBodyBytes:   a.cfg.MaxBodyBytes,
		Verifier:       a.verifier,
		ScopeCheck:     tools.ScopeCheckFor(m.served),
		Logger:         a.logger,
		Version:        a.opts.Version,
		OnSessionEnd:   a.ident.ForgetSession,
		// Refusals are coalesced per reason and client host and never
		// synced one by one: a flood of them costs little disk and no
		// flushes (audit.Log.WriteRefusal).
		OnAuthFailure: func(r *http.Request, reason string) {
			if err := a.journal.WriteRefusal(audit.Record{Tool: "http", Outcome: audit.OutcomeDenied, Detail: reason, Remote: r.RemoteAddr}); err != nil {
				a.logger.Error("cannot write the audit journal", "err", err)
			}
		},
	}
}

// serveHTTP listens on the configured address and serves until ctx is
// done, then drains.
func (m *mcpServer) serveHTTP(ctx context.Context, a *App) error {
	if !transport.IsLoopback(a.cfg.Addr) {
		a.logger.Warn("listening beyond loopback: every request still needs a keygate bearer token", "addr", a.cfg.Addr)
	}
	return transport.ServeHTTP(ctx, m.server, m.httpConfig(a), func(addr net.Addr) {
		a.logger.Info("serving MCP over streamable HTTP", "url", transport.MCPURL(addr), "store", a.cfg.Store,
			"auth", "Authorization: Bearer <KEYGATE_TOKEN from "+a.cfg.EnvFile+">")
		if a.opts.Listening != nil {
			a.opts.Listening(addr)
		}
	})
}

// httpHandler is the HTTP handler (/mcp, /healthz) for a listener at addr,
// for a server the caller runs.
func (m *mcpServer) httpHandler(a *App, addr net.Addr) http.Handler {
	return transport.NewHTTPHandler(m.server, m.httpConfig(a), transport.OwnOrigins(addr))
}
