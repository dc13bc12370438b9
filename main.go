// Command keygate is an MCP server that gives AI agents scoped access to
// content and credentials, over stdio or streamable HTTP.
//
//	keygate [serve] [--transport stdio|http] [--addr 127.0.0.1:8080] ...
//	keygate token create|list|revoke ...
//	keygate version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
	"github.com/keygate/keygate/rotation"
	"github.com/keygate/keygate/tools"
	"github.com/keygate/keygate/transport"
)

// version is set at build time with -ldflags "-X main.version=..."; it falls
// back to the module version recorded by the Go toolchain.
var version = ""

func keygateVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

// bootstrapLifetime is how long the admin token minted on first run lives.
const bootstrapLifetime = 365 * 24 * time.Hour

// shutdownGrace is how long work in flight may take to finish or roll back
// after SIGTERM or Ctrl-C (security.md row 43). HTTP's own drain is 10 s.
const shutdownGrace = 15 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The signal gives the calls in flight a deadline. Later signals
		// are absorbed until then: a client that closes stdin and then
		// sends SIGTERM must not cut a rotation short.
		<-ctx.Done()
		time.AfterFunc(shutdownGrace, func() {
			fmt.Fprintf(os.Stderr, "keygate: work still in flight %s after the signal; exiting\n", shutdownGrace)
			os.Exit(1)
		})
	}()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "keygate:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stdin, stdout, stderr)
	case "token":
		return tokenCommand(ctx, args, stdout, stderr)
	case "audit":
		return auditCommand(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "keygate", keygateVersion())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

const usage = `usage:
  keygate [serve] [flags]          serve MCP over stdio (default) or --transport http
  keygate token create [flags]     mint a token in the local store (printed once)
  keygate token list [flags]       list tokens (never their secrets)
  keygate token revoke [flags] ID  revoke a token (by id; a whole token is taken by its id)
  keygate audit [--since D] [--tool T] [--json] [--rotated=false]   print the audit journal
  keygate version
Run "keygate serve -h" or "keygate token create -h" for flags.
`

func newLogger(w io.Writer, c config, r *auth.Redactor) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel, ReplaceAttr: r.SlogReplaceAttr}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// gcPercent and memoryLimit tune the collector for a server whose live heap
// is a few MB: Go's default (collect whenever the heap doubles) collects
// thousands of times a second under load. Collecting at five times the live
// heap costs tens of MB under load (bench/README.md, memory) and gives back
// a sixth or more of the CPU per call; the soft limit makes the collector
// work harder before the heap nears it. GOGC and GOMEMLIMIT in the
// environment win.
const (
	gcPercent   = 400
	memoryLimit = 256 << 20
)

func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}

func serve(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	tuneGC()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	settings := serveSettings()
	env, err := parseSettings(fs, settings, args)
	if err != nil {
		return err
	}
	cfg, err := buildConfig(settings, env)
	if err != nil {
		return err
	}
	redactor := auth.NewRedactor()
	logger := newLogger(stderr, cfg, redactor)

	store, err := local.Open(ctx, cfg.Store, local.Options{})
	if err != nil {
		return fmt.Errorf("opening store: %w", err)
	}
	defer store.Close()
	if store.Created() {
		if err := firstRun(ctx, store, &cfg, logger); err != nil {
			return err
		}
	}
	places := delivery.Places{EnvFile: cfg.EnvFile, KeysDir: filepath.Join(filepath.Dir(cfg.Store), "keys")}
	localEngine := recoverRotation(ctx, store, places, &cfg, logger)
	if !cfg.Token.Secret.IsZero() {
		// The operator configured it: it is redacted whether it works or
		// not. (Secrets a caller sends join the redactor only once
		// verified.)
		redactor.Add(cfg.Token.Secret.Reveal())
		if !auth.LooksLikeToken(cfg.Token.Secret.Reveal()) {
			logger.Warn("KEYGATE_TOKEN is not shaped like a keygate token (kg_pat_...); tools will refuse it", "source", cfg.Token.Source)
		}
	}

	// One short-lived cache of verifications serves the HTTP bearer check
	// (which hands its answer to the tools in the request's context) and,
	// over stdio, the tool filter and the call middleware; key changes made
	// through keygate clear it.
	verifier := identity.NewCachingVerifier(store, identity.DefaultVerifyCacheTTL, nil)
	// Over HTTP each caller brings its own bearer token; keygate's own
	// token must never stand in for a caller.
	ident := identity.NewIdentity(verifier, cfg.Token)
	if cfg.Transport == "http" {
		ident = identity.NewHTTPIdentity(verifier)
	}
	journal, err := audit.OpenWith(cfg.AuditFile, audit.Options{Redact: redactor.Redact,
		OnError: func(err error) { logger.Error("cannot write refusals to the audit journal", "err", err) }})
	if err != nil {
		return err
	}
	defer journal.Close()

	remotes, err := loadRemotes(env.file, cfg.EnvFile, rotationDir(cfg), places, redactor, logger)
	if err != nil {
		return err
	}
	for _, r := range remotes {
		for _, s := range r.Secrets() {
			redactor.Add(s)
		}
	}
	localProvider := tools.Provider{Name: "local", Content: store, Ring: credentials.LocalRing(store, localEngine, cfg.EnvFile, ident)}
	if cfg.Transport == "stdio" {
		// A rotation of keygate's own token settled later (an earlier
		// one's journal) switches the process to the new token too.
		localEngine.Follow = func(next auth.Secret) {
			ident.SetProcess(auth.Credential{Secret: next, Source: auth.SourceEnvFile, Var: auth.TokenVar})
		}
	}

	deps := &tools.Deps{
		Providers: tools.NewProviders(providerList(localProvider, remotes)...),
		Identity:  ident,
		Redactor:  redactor,
		Credentials: &credentials.Service{Store: store, Places: places, Learn: redactor.Add,
			Changed: ident.Invalidate},
		EnvFile: cfg.EnvFile,
		Audit:   journal,

		ExpiryWarning: cfg.ExpiryWarning,
		HTTP:          cfg.Transport == "http",
		Logger:        logger,
	}
	mcpServer, served, err := tools.NewServer(deps, tools.Options{Toolsets: cfg.Toolsets, ReadOnly: cfg.ReadOnly, Version: keygateVersion()})
	if err != nil {
		return fmt.Errorf("building MCP server: %w", err)
	}

	reloads := []func(context.Context, map[string]string) error{remotesReload(deps, localProvider, cfg.EnvFile, rotationDir(cfg), places, redactor, logger, &remotes)}
	if cfg.Transport == "stdio" {
		reloads = append(reloads, tokenReload(deps, served, mcpServer, redactor, logger))
	}
	// What waits until the handshake is answered: over stdio, dropping to
	// one P; watching the env file; and saying at once when keygate's own
	// credential is about to lapse or already has (the tools repeat it to
	// the client).
	background := func() {
		if cfg.Transport == "stdio" && os.Getenv("GOMAXPROCS") == "" {
			// One client, whose request crosses several goroutines (stdin
			// reader, tool worker, the HTTP client's read and write loops):
			// on one P those hand-offs stay on one thread instead of waking
			// another CPU each time. That cuts the latency keygate adds to
			// an upstream call by a third (bench/README.md, section 6); the
			// work per call is small enough for one CPU. Start-up, which
			// is over by now, keeps every CPU.
			runtime.GOMAXPROCS(1)
		}
		go (&reloader{envFile: cfg.EnvFile, logger: logger, apply: combineReloads(reloads...)}).run(ctx)
		if cfg.Transport == "stdio" && !cfg.Token.Secret.IsZero() {
			go checkOwnToken(ctx, verifier, cfg.Token, cfg.ExpiryWarning, logger)
		}
	}

	if cfg.Transport == "stdio" {
		logger.Info("serving MCP over stdio", "store", cfg.Store, "tools", len(served), "providers", deps.Providers.Names())
		// It starts once the first answer (to initialize) is written, so it
		// does not compete with the start-up a client waits on.
		out := &afterFirstWrite{Writer: stdout, fn: background}
		if f, ok := stdin.(*os.File); ok {
			pollable, restore := transport.PollableStdin(f)
			defer restore()
			stdin = pollable
		}
		err := transport.ServeStdio(ctx, mcpServer, stdin, out, logger)
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
			return fmt.Errorf("stdio: %w", err)
		}
		return nil
	}

	background()
	if !transport.IsLoopback(cfg.Addr) {
		logger.Warn("listening beyond loopback: every request still needs a keygate bearer token", "addr", cfg.Addr)
	}
	return transport.ServeHTTP(ctx, mcpServer, transport.HTTPConfig{
		Addr:           cfg.Addr,
		AllowedOrigins: cfg.AllowedOrigins,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		Verifier:       verifier,
		ScopeCheck:     tools.ScopeCheckFor(served),
		Logger:         logger,
		Version:        keygateVersion(),
		OnSessionEnd:   ident.ForgetSession,
		// Refusals are coalesced per reason and client host and never
		// synced one by one: a flood of them costs little disk and no
		// flushes (audit.Log.WriteRefusal).
		OnAuthFailure: func(r *http.Request, reason string) {
			if err := journal.WriteRefusal(audit.Record{Tool: "http", Outcome: audit.OutcomeDenied, Detail: reason, Remote: r.RemoteAddr}); err != nil {
				logger.Error("cannot write the audit journal", "err", err)
			}
		},
	}, func(addr net.Addr) {
		logger.Info("serving MCP over streamable HTTP", "url", transport.MCPURL(addr), "store", cfg.Store,
			"auth", "Authorization: Bearer <KEYGATE_TOKEN from "+cfg.EnvFile+">")
	})
}

// checkOwnToken logs when keygate's own token is invalid or expires within
// warn.
func checkOwnToken(ctx context.Context, v *identity.CachingVerifier, tok auth.Credential, warn time.Duration, logger *slog.Logger) {
	switch p, err := v.Verify(ctx, tok.Secret.Reveal()); {
	case err != nil:
		logger.Warn("KEYGATE_TOKEN is not valid (revoked, expired or mistyped); tools that need a scope are hidden until it is replaced", "source", tok.Source)
	case time.Until(p.ExpiresAt) < warn:
		logger.Warn("KEYGATE_TOKEN expires soon; rotate it with credentials_rotate", "key_id", p.KeyID, "expires_at", p.ExpiresAt.UTC())
	}
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

// crashHook is set only in binaries built with -tags crashtest.
var crashHook func(*rotation.Engine)

// recoverRotation settles every rotation of the store's keys that an
// earlier process left unfinished (it was killed, or a destination could
// not be written), before anything uses keygate's own token, so keygate
// always starts with a working credential. It returns the store's rotation
// engine, which every later rotation of a store key goes through.
func recoverRotation(ctx context.Context, store *local.Store, places delivery.Places, cfg *config, logger *slog.Logger) *rotation.Engine {
	eng := &rotation.Engine{Name: "local", Dir: rotationDir(*cfg), EnvFile: cfg.EnvFile, Legacy: auth.TokenVar,
		Backend: store.RotationBackend(), Places: places, Logger: logger}
	if crashHook != nil {
		crashHook(eng)
	}
	reports, err := eng.Recover(ctx)
	for _, rep := range reports {
		switch {
		case errors.Is(err, rotation.ErrInProgress) && rep.Action == rotation.ActionNone:
			logger.Warn("another keygate process is rotating a key; its recovery was skipped", "slot", rep.Slot)
		case rep.Action != rotation.ActionNone:
			logger.Warn("settled an unfinished rotation: "+rep.Summary(), "outcome", rep)
		}
		if rep.Slot == auth.TokenVar && !rep.Current.IsZero() && (cfg.Token.Secret.IsZero() || cfg.Token.Source == auth.SourceEnvFile) {
			cfg.Token = auth.Credential{Secret: rep.Current, Source: auth.SourceEnvFile, Var: auth.TokenVar}
		}
	}
	if err != nil && !errors.Is(err, rotation.ErrInProgress) {
		logger.Error("rotation recovery incomplete", "err", err)
	}
	return eng
}

// rotationDir holds the rotation engines' journals, pending and lock files,
// beside the store (not beside the env file, which may be shared).
func rotationDir(cfg config) string { return filepath.Join(filepath.Dir(cfg.Store), "rotation") }

// firstRun seeds a new store and mints its admin token. The token goes to
// the env file (never overwriting a value already there) or, failing that,
// to a 0600 file beside the store; it is never printed.
func firstRun(ctx context.Context, store *local.Store, cfg *config, logger *slog.Logger) error {
	if err := store.Seed(ctx); err != nil {
		return fmt.Errorf("seeding new store: %w", err)
	}
	issued, err := store.CreateKey(ctx, provider.NewKey{Name: "admin (first run)", Scopes: auth.Scopes{{Action: auth.Admin}},
		ExpiresAt: time.Now().Add(bootstrapLifetime)})
	if err != nil {
		return fmt.Errorf("minting admin token: %w", err)
	}
	tok := issued.Secret.Reveal()
	werr := errors.New("no env file configured")
	if cfg.EnvFile != "" {
		werr = auth.SetEnvVar(cfg.EnvFile, tools.EnvTokenVar, tok, auth.EnvWriteOptions{})
	}
	if werr == nil {
		logger.Info("created the store, seeded example content and wrote an admin token", "store", cfg.Store,
			"env_file", cfg.EnvFile, "variable", tools.EnvTokenVar, "key_id", issued.Key.ID)
		if cfg.Token.Secret.IsZero() || cfg.Token.Source == auth.SourceEnvFile {
			cfg.Token = auth.Credential{Secret: issued.Secret, Source: auth.SourceEnvFile, Var: tools.EnvTokenVar}
		} else {
			logger.Warn("KEYGATE_TOKEN in the environment overrides the new admin token in the env file", "env_file", cfg.EnvFile)
		}
		return nil
	}
	fallback := filepath.Join(filepath.Dir(cfg.Store), "admin.token")
	if err := auth.WriteSecretFile(fallback, tok); err != nil {
		return fmt.Errorf("cannot store the first-run admin token (env file: %v; %s: %w)", werr, fallback, err)
	}
	logger.Warn("created the store; the admin token could not go into the env file, so it was written beside the store",
		"reason", werr.Error(), "token_file", fallback, "key_id", issued.Key.ID)
	return nil
}
