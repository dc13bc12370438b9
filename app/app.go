// Package app builds a whole keygate from its configuration: the store,
// the providers, the rotation engines (with recovery of what an earlier
// process left unfinished), the credentials service, the audit journal,
// identity, the MCP server and the env-file reloader. Run serves it over
// stdio or streamable HTTP. Everything a keygate process does between
// parsing its command line and exiting happens here, so tests can build a
// real keygate inside the test binary.
package app

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/oauth/authserver"
	"github.com/keygate/keygate/provider/local"
	"github.com/keygate/keygate/rotation"
	"github.com/keygate/keygate/rotation/pgjournal"
)

// Options are what the process gives keygate besides its configuration.
type Options struct {
	// Stdin and Stdout carry MCP over stdio; nothing else is written to
	// Stdout.
	Stdin  io.Reader
	Stdout io.Writer
	// Stderr receives the logs.
	Stderr  io.Writer
	Version string
	// TuneProcess applies the runtime settings meant for a keygate
	// process of its own: over stdio, one P once the handshake is
	// answered. Tests that build keygate inside the test binary leave it
	// off.
	TuneProcess bool
	// Listening, if set, is told the HTTP address once keygate listens.
	Listening func(net.Addr)
	// OAuthNow is the clock of OAuth token issue and checks; nil is
	// time.Now. Tests move it to expire tokens.
	OAuthNow func() time.Time
	// OAuthCIMD, if set, replaces how the embedded authorization server
	// fetches Client ID Metadata Documents: tests serve them from a
	// loopback https server whose CA it trusts.
	OAuthCIMD *authserver.CIMDConfig
}

// App is a built keygate.
type App struct {
	cfg      config.Config
	opts     Options
	logger   *slog.Logger
	redactor *auth.Redactor
	store    *local.Store
	journal  auditJournal
	db       *sql.DB             // with a Postgres store: journals and audit
	journals *pgjournal.Journals // with a Postgres store
	health   *readiness          // with a Postgres store: answers /healthz
	stop     context.CancelFunc  // ends what Build started in the background
	verifier *identity.CachingVerifier
	ident    *identity.Identity
	places   delivery.Places
	engine   *rotation.Engine // rotations of the store's keys
	remotes  *remoteSet
	mcp      *mcpServer
	reloader *reloader

	closeOnce sync.Once
	closeErr  error
}

// Build opens and wires everything cfg describes. The caller must Close
// the App.
func Build(ctx context.Context, cfg config.Config, opts Options) (_ *App, err error) {
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	a := &App{cfg: cfg, opts: opts, redactor: auth.NewRedactor(),
		places: delivery.Places{EnvFile: cfg.EnvFile, KeysDir: cfg.KeysDir()}}
	a.logger = newLogger(opts.Stderr, cfg, a.redactor)
	defer func() {
		if err != nil {
			_ = a.Close()
		}
	}()
	if err := a.openShared(ctx); err != nil {
		return nil, err
	}
	if err := a.openStore(ctx); err != nil {
		return nil, err
	}
	a.learnOwnToken()
	// One short-lived cache of verifications serves the HTTP bearer check,
	// the tool filter and the call wrapper, so a call verifies its token
	// against the store once; key changes made through keygate clear it.
	a.verifier = identity.NewCachingVerifier(a.store, identity.DefaultVerifyCacheTTL, nil)
	// Over HTTP each caller brings its own bearer token; keygate's own
	// token must never stand in for a caller.
	a.ident = identity.NewIdentity(a.verifier, a.cfg.Token)
	if a.cfg.Transport == "http" {
		a.ident = identity.NewHTTPIdentity(a.verifier)
	}
	var watchCtx context.Context
	watchCtx, a.stop = context.WithCancel(context.WithoutCancel(ctx))
	go a.watchKeys(watchCtx)
	if a.journal, err = a.openAudit(ctx); err != nil {
		return nil, err
	}
	if a.remotes, err = a.loadRemotes(a.cfg.Env); err != nil {
		return nil, err
	}
	if a.cfg.Transport == "stdio" {
		// A rotation of keygate's own token settled later (an earlier
		// one's journal) switches the process to the new token too.
		a.engine.Follow = func(next auth.Secret) {
			a.ident.SetProcess(auth.Credential{Secret: next, Source: auth.SourceEnvFile, Var: auth.TokenVar})
		}
	}
	if err := a.buildServer(); err != nil {
		return nil, err
	}
	a.reloader = newReloader(a.cfg.EnvFile, a.logger, a.Reload)
	return a, nil
}

// Close releases the journal and the store. It is safe to call twice.
func (a *App) Close() error {
	a.closeOnce.Do(func() {
		var errs []error
		if a.stop != nil {
			a.stop()
		}
		if a.journal != nil {
			errs = append(errs, a.journal.Close())
		}
		if a.store != nil {
			errs = append(errs, a.store.Close())
		}
		if a.db != nil {
			errs = append(errs, a.db.Close())
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

// Run serves MCP over the configured transport until ctx is done (or, over
// stdio, until the input ends).
func (a *App) Run(ctx context.Context) error {
	if a.cfg.Transport == "stdio" {
		// What waits until the handshake is answered starts once the first
		// answer (to initialize) is written, so it does not compete with
		// the start-up a client waits on.
		out := &afterFirstWrite{Writer: a.opts.Stdout, fn: func() { a.background(ctx) }}
		return a.mcp.serveStdio(ctx, a, a.opts.Stdin, out)
	}
	a.background(ctx)
	return a.mcp.serveHTTP(ctx, a)
}

// HTTPHandler is keygate's HTTP handler (/mcp, /healthz and, with OAuth,
// its metadata and authorization server) for a listener at addr, for tests
// and embedders that run their own server. The env-file watcher does not
// run; Reload applies the env file on demand. It fails when OAuth cannot
// be set up (an external issuer that cannot be reached, say).
func (a *App) HTTPHandler(ctx context.Context, addr net.Addr) (http.Handler, error) {
	return a.mcp.httpHandler(ctx, a, addr)
}

// Watching is closed once the env-file watcher (started by Run) watches
// the env file and SIGHUP, so a change made after it is not missed.
func (a *App) Watching() <-chan struct{} { return a.reloader.ready }

// background starts what runs beside the transport: over stdio, dropping
// to one P; watching the env file; and saying at once when keygate's own
// credential is about to lapse or already has (the tools repeat it to the
// client).
func (a *App) background(ctx context.Context) {
	if a.cfg.Transport == "stdio" && a.opts.TuneProcess {
		oneProcessor()
	}
	go a.reloader.run(ctx)
	if a.cfg.Transport == "stdio" && !a.cfg.Token.Secret.IsZero() {
		go a.checkOwnToken(ctx)
	}
}

// oneProcessor drops to one P unless GOMAXPROCS is set. One client, whose
// request crosses several goroutines (stdin reader, tool worker, the HTTP
// client's read and write loops): on one P those hand-offs stay on one
// thread instead of waking another CPU each time. That cuts the latency
// keygate adds to an upstream call by a third (bench/README.md, section 6);
// the work per call is small enough for one CPU. Start-up, which is over
// by now, keeps every CPU.
func oneProcessor() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

// checkOwnToken logs when keygate's own token is invalid or expires within
// the expiry warning.
func (a *App) checkOwnToken(ctx context.Context) {
	tok := a.cfg.Token
	switch p, err := a.verifier.Verify(ctx, tok.Secret.Reveal()); {
	case err != nil:
		a.logger.Warn("KEYGATE_TOKEN is not valid (revoked, expired or mistyped); tools that need a scope are hidden until it is replaced", "source", tok.Source)
	case time.Until(p.ExpiresAt) < a.cfg.ExpiryWarning:
		a.logger.Warn("KEYGATE_TOKEN expires soon; rotate it with credentials_rotate", "key_id", p.KeyID, "expires_at", p.ExpiresAt.UTC())
	}
}

// learnOwnToken: the operator configured it, so it is redacted whether it
// works or not. (Secrets a caller sends join the redactor only once
// verified.)
func (a *App) learnOwnToken() {
	if a.cfg.Token.Secret.IsZero() {
		return
	}
	a.redactor.Add(a.cfg.Token.Secret.Reveal())
	if !auth.LooksLikeToken(a.cfg.Token.Secret.Reveal()) {
		a.logger.Warn("KEYGATE_TOKEN is not shaped like a keygate token (kg_pat_...); tools will refuse it", "source", a.cfg.Token.Source)
	}
}

func newLogger(w io.Writer, c config.Config, r *auth.Redactor) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel, ReplaceAttr: r.SlogReplaceAttr}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// afterFirstWrite calls fn once, right after the first write to Writer.
type afterFirstWrite struct {
	io.Writer
	once sync.Once
	fn   func()
}

func (w *afterFirstWrite) Write(p []byte) (int, error) {
	n, err := w.Writer.Write(p)
	w.once.Do(w.fn)
	return n, err
}
