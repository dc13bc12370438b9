package tools

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/shape"
)

// middleware is what every call passes through.
type middleware struct {
	d         *Deps
	validator *argValidator
	warnings  *expiryWarnings
	inspect   *inspector
}

// wrap puts every call through the same steps: resolve the caller, check
// the arguments against the schema (which never echoes them) and decode
// them, journal a credential operation before it happens, pick the
// provider and decide access once (the tool's scope, on the type the
// arguments name), run the handler with panic recovery, redact the
// result, journal it, and log one line without arguments.
func (m *middleware) wrap(t ServerTool) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (res *mcp.CallToolResult, err error) {
		start := m.d.now()
		call := &Call{Req: req, reveal: &revealed{}}
		audited := false // set once the call reaches the handler
		defer func() {
			if r := recover(); r != nil {
				// The panic's value may quote the call's arguments; its type
				// and the stack say where it happened without them.
				m.d.Logger.Error("panic in tool handler", "tool", t.Tool.Name, "panic_type", fmt.Sprintf("%T", r), "stack", string(debug.Stack()))
				res, err = nil, fmt.Errorf("internal error in %s", t.Tool.Name)
			}
			res, err = m.finish(ctx, t, call, audited, start, res, err)
		}()
		ctx = m.identify(ctx, t, call)
		args, refusal := m.admit(t, call)
		if refusal != nil {
			return refusal, nil
		}
		if r := m.journalAttempt(t, call, args); r != nil {
			return r, nil
		}
		audited = !t.ReadOnly()
		if t.Toolset == ToolsetCredentials && !t.ReadOnly() {
			// A key may change: nobody may act on a cached verification of it.
			defer m.invalidateVerifications()
		}
		if r := m.authorize(t, call, args); r != nil {
			return r, nil
		}
		return t.run(ctx, call, args)
	}
}

// identify resolves the call's caller, warns about its expiry, journals an
// invalid token, and tells providers whose call it is (upstream.Budget
// spends shared rate limits on callers with a scope for them first).
func (m *middleware) identify(ctx context.Context, t ServerTool, call *Call) context.Context {
	p, cred, verr := m.d.Identity.Resolve(ctx)
	call.Cred, call.credErr = cred, verr
	var scopes auth.Scopes // nil: no valid credential
	if verr == nil {
		call.Caller = &p
		m.warnings.warn(ctx, &p)
		scopes = p.Scopes
	}
	if errors.Is(verr, auth.ErrInvalidToken) && m.d.Audit != nil {
		if err := m.d.Audit.WriteRefusal(m.auditRecord(t, call, audit.OutcomeDenied)); err != nil {
			m.d.Logger.Error("cannot write the audit journal", "tool", t.Tool.Name, "err", err)
		}
	}
	return auth.WithCallerScopes(ctx, scopes)
}

// admit validates and decodes the arguments; a non-nil result refuses the
// call.
func (m *middleware) admit(t ServerTool, call *Call) (arguments, *mcp.CallToolResult) {
	if t.Needs != "" && call.Caller == nil {
		return nil, credentialProblem(call.credErr)
	}
	if r := m.validator.check(t.Tool.Name, call.Req); r != nil {
		return nil, r
	}
	args, err := t.decode(call.Req.GetArguments())
	if err != nil {
		// The schema accepted them, so this is keygate's bug; the error
		// names the tool, never the values.
		m.d.Logger.Error("arguments passed the schema but not decoding", "tool", t.Tool.Name, "err", err)
		return nil, shape.Error("", "keygate cannot read these arguments", "report this as a bug in keygate")
	}
	return args, nil
}

// authorize picks the provider the arguments name and decides, once,
// whether the caller may call the tool on the type they name.
func (m *middleware) authorize(t ServerTool, call *Call, args arguments) *mcp.CallToolResult {
	pr, errRes := m.d.Providers.Pick(args.providerName())
	if errRes != nil {
		return errRes
	}
	call.Provider = pr
	typ := ""
	if ta, ok := args.(typed); ok {
		typ = ta.contentType()
	}
	switch Decide(call.Caller, t.Needs, typ) {
	case NoCredential:
		return credentialProblem(call.credErr)
	case MissingScope:
		return insufficientScope(t.Tool.Name, t.Needs, call.Caller.Scopes)
	case MissingTypeScope:
		return shape.Error("type", fmt.Sprintf("insufficient_scope: your credential does not grant %s on %q (it holds %s)", t.Needs, typ, scopeList(call.Caller.Scopes)),
			fmt.Sprintf("use a type you may access, or a key with %s:%s", t.Needs, typ))
	}
	return nil
}

// journalAttempt writes a credential operation's attempt before anything
// changes: one that cannot be journaled does not happen.
func (m *middleware) journalAttempt(t ServerTool, call *Call, args arguments) *mcp.CallToolResult {
	if t.Toolset != ToolsetCredentials || t.ReadOnly() || m.d.Audit == nil || isDryRun(args) {
		return nil
	}
	if err := m.d.Audit.Write(m.auditRecord(t, call, audit.OutcomeAttempt)); err != nil {
		m.d.Logger.Error("audit journal cannot be written; refusing a credential operation", "tool", t.Tool.Name, "err", err)
		return shape.Error("", "the audit journal cannot be written, so keygate refuses credential operations until it can",
			"ask the operator to fix the audit file named in keygate's log (disk space, permissions), then retry")
	}
	return nil
}

func isDryRun(args arguments) bool {
	p, ok := args.(previewable)
	return ok && p.dryRun()
}

// finish redacts what a call returns, journals it, and logs it.
func (m *middleware) finish(ctx context.Context, t ServerTool, call *Call, audited bool, start time.Time, res *mcp.CallToolResult, err error) (*mcp.CallToolResult, error) {
	outcome, logged := "ok", ""
	switch {
	case err != nil:
		outcome = "error"
		logged = m.d.Redactor.Redact(err.Error())
		// The caller gets what it may know: a store outage's public
		// text, not the database's address, user and name that the
		// driver's text carries; the log keeps the whole cause.
		var pe provider.PublicError
		if errors.As(err, &pe) {
			err = errors.New(pe.PublicText())
		} else {
			err = errors.New(logged)
		}
	case res != nil && res.IsError:
		outcome = "error_result"
	}
	if res != nil {
		shape.Redact(m.d.Redactor, res, call.reveal.values)
	}
	if audited && (res == nil || !res.NeedsInput()) {
		m.audit(t, call, auditOutcome(res, err))
	}
	// A read that succeeded is logged at debug: it changes nothing and is
	// most of the traffic. Writes (which the audit journal also records)
	// and failures stay at info.
	level := slog.LevelInfo
	if outcome == "ok" && t.ReadOnly() {
		level = slog.LevelDebug
	}
	if m.d.Logger.Enabled(ctx, level) {
		keyID := ""
		if call.Caller != nil {
			keyID = call.Caller.KeyID
		}
		attrs := []slog.Attr{slog.String("tool", t.Tool.Name), slog.String("key_id", keyID),
			slog.String("outcome", outcome), slog.Float64("duration_ms", float64(m.d.now().Sub(start).Microseconds())/1000)}
		if logged != "" {
			attrs = append(attrs, slog.String("err", logged))
		}
		m.d.Logger.LogAttrs(ctx, level, "tool call", attrs...)
	}
	return res, err
}

// invalidateVerifications forgets cached verifications and the shared
// answers of remote credential checks, after a key may have changed.
func (m *middleware) invalidateVerifications() {
	m.d.Identity.Invalidate()
	m.inspect.forget()
}
