package tools

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/shape"
)

// EnvTokenVar is the variable that holds keygate's own credential.
const EnvTokenVar = auth.TokenVar

// authTools are the tools that say who is calling and what it may do.
type authTools struct {
	d       *Deps
	catalog *catalog
	inspect *inspector
	expiry  expiry
}

type whoamiArgs struct {
	Common
}

type checkScopesArgs struct {
	Common
	Operations []string `json:"operations"`
	Tool       string   `json:"tool"`
}

type authenticateArgs struct {
	Common
	Token string `json:"token"`
	Save  bool   `json:"save"`
}

func (a *authTools) tools() []ServerTool {
	return []ServerTool{
		newTool(ToolsetAuth, "", mcp.NewTool("auth_whoami",
			mcp.WithTitleAnnotation("Who am I"),
			mcp.WithDescription("Show the credential keygate is acting with: provider, credential kind, masked value, where it came from, owner, scopes, creation/expiry/last use, days until expiry, and which tools it unlocks. Call this first, and whenever a call is refused."),
			providerArg(),
			mcp.WithReadOnlyHintAnnotation(true),
			mcp.WithDestructiveHintAnnotation(false),
			mcp.WithIdempotentHintAnnotation(true),
			mcp.WithOpenWorldHintAnnotation(true),
		), a.whoami),
		newTool(ToolsetAuth, "", mcp.NewTool("auth_check_scopes",
			mcp.WithTitleAnnotation("Check scopes"),
			mcp.WithDescription("Before acting, check whether the current credential may perform operations (scopes such as \"content:write:posts\") or call a tool. For each: allowed or denied, why, and which scope or key is missing. Answers denied when it cannot tell. With no operations and no tool, checks every tool."),
			providerArg(),
			mcp.WithArray("operations",
				mcp.Description("Scopes to check, e.g. [\"content:read\", \"content:write:posts\", \"credentials:write\"]."),
				mcp.WithStringItems(mcp.MaxLength(100)), mcp.MaxItems(20)),
			mcp.WithString("tool", mcp.Description("A tool name to check, e.g. \"content_delete\"."), mcp.MaxLength(64)),
			mcp.WithReadOnlyHintAnnotation(true),
			mcp.WithDestructiveHintAnnotation(false),
			mcp.WithIdempotentHintAnnotation(true),
			mcp.WithOpenWorldHintAnnotation(true),
		), a.checkScopes),
		newTool(ToolsetAuth, "", mcp.NewTool("auth_authenticate",
			mcp.WithTitleAnnotation("Authenticate for this session"),
			mcp.WithDescription("Use a keygate token (kg_pat_...) for the rest of this session only. The token is verified first, kept in memory, never echoed, and written to the env file only if save is true. Warning: a token pasted into a chat is exposed to the model and the chat history; prefer setting KEYGATE_TOKEN in the environment or .env file."),
			providerArg(),
			mcp.WithString("token", mcp.Required(), mcp.Description("The token to use, kg_pat_ followed by 51 characters."), mcp.MinLength(1), mcp.MaxLength(256)),
			mcp.WithBoolean("save", mcp.Description("Also write it to the env file as KEYGATE_TOKEN so later runs use it (default false)."), mcp.DefaultBool(false)),
			mcp.WithReadOnlyHintAnnotation(false),
			mcp.WithDestructiveHintAnnotation(false),
			mcp.WithIdempotentHintAnnotation(true),
			mcp.WithOpenWorldHintAnnotation(false),
		), a.authenticate),
	}
}

// CredentialView describes a credential without its secret.
type CredentialView struct {
	Kind      string `json:"kind"`
	KindLabel string `json:"kind_label"`
	Masked    string `json:"masked"`
	Source    string `json:"source"`
	Variable  string `json:"variable,omitempty"`
	EnvFile   string `json:"env_file,omitempty"`
}

// credentialView describes c; envFile is where a credential read from the
// env file came from.
func credentialView(c auth.Credential, envFile string) CredentialView {
	k := auth.Classify(c.Secret.Reveal())
	if k == auth.UnknownKind && oauth.LooksLikeJWT(c.Secret.Reveal()) {
		k = oauthAccessToken
	}
	v := CredentialView{Kind: k.ID, KindLabel: k.Label, Masked: c.Secret.Masked(), Source: string(c.Source), Variable: c.Var}
	if c.Source == auth.SourceEnvFile {
		v.EnvFile = envFile
	}
	return v
}

// oauthAccessToken is the kind of a bearer JWT, which keygate's /mcp takes
// as an OAuth access token (oauth.ByShape).
var oauthAccessToken = auth.Kind{ID: "oauth_access_token", Label: "OAuth access token"}

// Whoami is auth_whoami's structured answer.
type Whoami struct {
	Provider        string          `json:"provider"`
	Authenticated   bool            `json:"authenticated"`
	Problem         string          `json:"problem,omitempty"`
	Fix             string          `json:"fix,omitempty"`
	Credential      *CredentialView `json:"credential,omitempty"`
	KeyID           string          `json:"key_id,omitempty"`
	Owner           string          `json:"owner,omitempty"`
	CreatedBy       string          `json:"created_by,omitempty"`
	Scopes          []string        `json:"scopes"`
	CreatedAt       *time.Time      `json:"created_at,omitempty"`
	ExpiresAt       *time.Time      `json:"expires_at,omitempty"`
	LastUsedAt      *time.Time      `json:"last_used_at,omitempty"`
	DaysUntilExpiry *int            `json:"days_until_expiry,omitempty"`
	ExpiresSoon     bool            `json:"expires_soon,omitempty"`
	Warnings        []string        `json:"warnings,omitempty"`
	ToolsAvailable  []string        `json:"tools_available"`
	ToolsHidden     []HiddenTool    `json:"tools_hidden,omitempty"`
	// Upstream describes remote providers' credentials: the one asked
	// for, or all of them when no provider was named.
	Upstream []provider.Description `json:"upstream,omitempty"`
}

func (a *authTools) whoami(ctx context.Context, call *Call, args whoamiArgs) (*mcp.CallToolResult, error) {
	w := Whoami{Provider: call.Provider.Name, Scopes: []string{}}
	if cred, ok := a.d.Identity.Credential(ctx); ok {
		v := credentialView(cred, a.d.EnvFile)
		w.Credential = &v
	}
	if call.Caller == nil {
		p := problemOf(credentialProblem(call.credErr))
		if why := a.diagnose(ctx, call.Cred); why != nil {
			p = *why
		}
		w.Problem, w.Fix = p.Problem, p.Fix
	} else {
		a.describeCaller(&w, call.Caller)
		// keygate's own credential gates every provider, so it is always
		// reported; remote credentials are described (masked, checked
		// live) to authenticated callers only: the one asked for, or all.
		targets := a.d.Providers.Remote()
		if args.Provider != "" {
			targets = nil
			if call.Provider.Inspect != nil {
				targets = []Provider{call.Provider}
			}
		}
		w.Upstream = a.describeAll(ctx, targets)
		w.Warnings = append(w.Warnings, a.upstreamWarnings(w.Upstream)...)
	}
	w.ToolsAvailable, w.ToolsHidden = a.catalog.access(call.Caller)
	w.Provider = "local"
	return shape.OK(w, renderWhoami(w)), nil
}

// describeCaller fills in what keygate knows of the verified caller.
func (a *authTools) describeCaller(w *Whoami, p *auth.Principal) {
	w.Authenticated = true
	w.KeyID, w.Owner, w.CreatedBy = p.KeyID, p.Name, p.CreatedBy
	w.Scopes = p.Scopes.Strings()
	w.CreatedAt, w.ExpiresAt, w.LastUsedAt = timePtr(p.CreatedAt), timePtr(p.ExpiresAt), timePtr(p.LastUsedAt)
	if !p.ExpiresAt.IsZero() {
		days := a.expiry.daysLeft(p.ExpiresAt)
		w.DaysUntilExpiry = &days
	}
	if a.expiry.soon(p.ExpiresAt) {
		w.ExpiresSoon = true
		w.Warnings = append(w.Warnings, a.expiry.warning(p))
	}
}

// upstreamWarnings warns of remote credentials that expire soon.
func (a *authTools) upstreamWarnings(upstream []provider.Description) []string {
	var out []string
	for _, u := range upstream {
		for _, c := range u.Credentials {
			if a.expiry.soon(c.ExpiresAt) {
				out = append(out, fmt.Sprintf("%s credential %s (%s) expires %s, in %d days: rotate it in the provider's dashboard and update %s",
					u.Provider, c.Name, c.Masked, c.ExpiresAt.UTC().Format(time.RFC3339), a.expiry.daysLeft(c.ExpiresAt), c.Name))
			}
		}
	}
	return out
}

// problemOf is the structured problem of an error result.
func problemOf(res *mcp.CallToolResult) shape.Problem {
	return res.StructuredContent.(map[string]any)["error"].(shape.Problem)
}

// describeAll asks each remote provider about its credentials, at once,
// sharing recent answers between callers (inspector). A provider that
// cannot answer is reported with the problem, not dropped.
func (a *authTools) describeAll(ctx context.Context, ps []Provider) []provider.Description {
	out := make([]provider.Description, len(ps))
	var wg sync.WaitGroup
	for i, pr := range ps {
		wg.Go(func() {
			desc, err := a.inspect.describe(ctx, pr)
			if err != nil {
				desc = provider.Description{Provider: pr.Name, Problems: []string{upstreamDetail(err)}}
			}
			if desc.Provider == "" {
				desc.Provider = pr.Name
			}
			if desc.Credentials == nil {
				desc.Credentials = []provider.Credential{}
			}
			out[i] = desc
		})
	}
	wg.Wait()
	return out
}

// diagnose says precisely why keygate's own stdio credential was refused
// when it expired or was revoked. Over stdio the person reading this owns
// the store, so there is nothing to hide; over HTTP every refusal stays the
// same generic "invalid token".
func (a *authTools) diagnose(ctx context.Context, cred auth.Credential) *shape.Problem {
	if a.d.Identity.PerRequest() || cred.Source == auth.SourceBearer || cred.Secret.IsZero() || a.d.Credentials == nil {
		return nil
	}
	parsed, _, err := auth.ParseToken(cred.Secret.Reveal())
	if err != nil {
		return nil
	}
	l, err := a.d.Credentials.Store.Lineage(ctx, parsed.PublicID)
	if err != nil {
		return nil
	}
	k := l.Key
	fix := fmt.Sprintf("create a new token (keygate token create --name %q --scopes %s) and put it in %s, or call auth_authenticate with a valid one",
		k.Name, strings.Join(k.Scopes, ","), firstNonEmpty(cred.Var, EnvTokenVar))
	switch {
	case !k.RevokedAt.IsZero():
		return &shape.Problem{Problem: fmt.Sprintf("keygate's credential %s (key %s, %q) was revoked on %s", k.Masked, k.ID, k.Name, k.RevokedAt.UTC().Format(time.RFC3339)), Fix: fix}
	case !k.ExpiresAt.After(a.d.now()):
		return &shape.Problem{Problem: fmt.Sprintf("keygate's credential %s (key %s, %q) expired on %s", k.Masked, k.ID, k.Name, k.ExpiresAt.UTC().Format(time.RFC3339)), Fix: fix}
	}
	return nil
}

func renderWhoami(w Whoami) string {
	var b strings.Builder
	if !w.Authenticated {
		fmt.Fprintf(&b, "provider %s: not authenticated: %s. Fix: %s", w.Provider, w.Problem, w.Fix)
		if w.Credential != nil {
			fmt.Fprintf(&b, "\ncredential presented: %s %s (from %s)", w.Credential.KindLabel, w.Credential.Masked, w.Credential.Source)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "provider %s: %s %s (key %s, %q", w.Provider, w.Credential.KindLabel, w.Credential.Masked, w.KeyID, w.Owner)
	fmt.Fprintf(&b, ", from %s", w.Credential.Source)
	if w.Credential.Variable != "" {
		fmt.Fprintf(&b, " %s", w.Credential.Variable)
	}
	b.WriteString(")\nscopes: " + strings.Join(w.Scopes, ", "))
	if w.ExpiresAt != nil {
		fmt.Fprintf(&b, "\nexpires %s (%d days)", w.ExpiresAt.Format(time.DateOnly), *w.DaysUntilExpiry)
	} else {
		b.WriteString("\nnever expires")
	}
	fmt.Fprintf(&b, "\ntools: %s", strings.Join(w.ToolsAvailable, ", "))
	for _, h := range w.ToolsHidden {
		fmt.Fprintf(&b, "\nhidden: %s (needs %s)", h.Tool, h.Needs)
	}
	for _, u := range w.Upstream {
		b.WriteString("\n" + renderDescription(u))
	}
	for _, warn := range w.Warnings {
		b.WriteString("\nWARNING: " + warn)
	}
	return b.String()
}

func renderDescription(u provider.Description) string {
	var b strings.Builder
	state := "reachable"
	if !u.Reachable {
		state = "NOT reachable"
	}
	fmt.Fprintf(&b, "provider %s: %s", u.Provider, state)
	if u.Owner != "" {
		fmt.Fprintf(&b, ", owner %s", u.Owner)
	}
	for _, c := range u.Credentials {
		fmt.Fprintf(&b, "\n  %s %s %s (from %s): %s", shape.LineStart(c.Name), c.Label, c.Masked, c.Source, c.Verified)
		if len(c.Grants) > 0 {
			fmt.Fprintf(&b, "; grants %s", strings.Join(c.Grants, ", "))
		}
		if c.Detail != "" {
			fmt.Fprintf(&b, "; %s", c.Detail)
		}
	}
	for _, p := range u.Problems {
		fmt.Fprintf(&b, "\n  problem: %s", p)
	}
	return b.String()
}

// ScopeCheck is one answer of auth_check_scopes.
type ScopeCheck struct {
	Check   string `json:"check"`
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"`
	Fix     string `json:"fix,omitempty"`
}

func (a *authTools) checkScopes(ctx context.Context, call *Call, args checkScopesArgs) (*mcp.CallToolResult, error) {
	var noCred string
	if call.Caller == nil {
		noCred = problemOf(credentialProblem(call.credErr)).Problem
	}
	scopes, errRes := parseOperations(args.Operations)
	if errRes != nil {
		return errRes, nil
	}
	var checks []ScopeCheck
	for _, sc := range scopes {
		checks = append(checks, checkScope(call.Caller, sc, noCred))
	}
	names := args.toolsToCheck(a.catalog)
	for _, name := range names {
		c, errRes := a.checkTool(call.Caller, name, noCred)
		if errRes != nil {
			return errRes, nil
		}
		checks = append(checks, c)
	}
	if call.Provider.Inspect != nil && call.Caller != nil {
		upstream, errRes := a.upstreamChecks(ctx, call.Provider, scopes, names)
		if errRes != nil {
			return errRes, nil
		}
		checks = combineChecks(checks, upstream)
	}
	return shape.OK(map[string]any{"provider": call.Provider.Name, "checks": checks}, renderChecks(checks)), nil
}

// parseOperations reads the scopes auth_check_scopes is asked about.
func parseOperations(ops []string) ([]auth.Scope, *mcp.CallToolResult) {
	out := make([]auth.Scope, 0, len(ops))
	for i, op := range ops {
		sc, err := auth.ParseScope(op)
		if err != nil {
			return nil, shape.Error(fmt.Sprintf("operations[%d]", i), err.Error(), "pass scopes such as content:read or content:write:posts")
		}
		out = append(out, sc)
	}
	return out, nil
}

// toolsToCheck are the tools asked about: the one named, or every served
// tool when neither a tool nor operations were given.
func (args checkScopesArgs) toolsToCheck(c *catalog) []string {
	switch {
	case args.Tool != "":
		return []string{args.Tool}
	case len(args.Operations) == 0:
		names := make([]string, 0, len(c.served))
		for _, t := range c.served {
			names = append(names, t.Tool.Name)
		}
		return names
	}
	return nil
}

// checkTool answers whether p may call the tool named name.
func (a *authTools) checkTool(p *auth.Principal, name, noCred string) (ScopeCheck, *mcp.CallToolResult) {
	t, served, ok := a.catalog.lookup(name)
	if !ok {
		return ScopeCheck{}, shape.Error("tool", fmt.Sprintf("no tool named %q", name), "use a tool name from tools/list, e.g. content_list")
	}
	c := ScopeCheck{Check: "tool " + name}
	switch {
	case !served:
		c.Reason = "not served by this keygate (disabled by --toolsets or --read-only)"
		c.Fix = "restart keygate with the toolset enabled and without --read-only"
	case t.Needs == "":
		c.Allowed, c.Reason = true, "needs no scope"
	default:
		c = checkScope(p, auth.Scope{Action: t.Needs}, noCred)
		c.Check = "tool " + name
		if p != nil && p.Scopes.AllowsSome(t.Needs) && !p.Scopes.Allows(t.Needs, "") {
			c.Allowed, c.Reason = true, "allowed for some types only: "+narrowedTypes(p.Scopes, t.Needs)
		}
	}
	return c, nil
}

func renderChecks(checks []ScopeCheck) string {
	var b strings.Builder
	for _, c := range checks {
		verdict := "denied"
		if c.Allowed {
			verdict = "allowed"
		}
		fmt.Fprintf(&b, "%s: %s (%s)", c.Check, verdict, c.Reason)
		if c.Fix != "" {
			fmt.Fprintf(&b, ". Fix: %s", c.Fix)
		}
		b.WriteString("\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// checkScope answers one scope question, failing closed when there is no
// verified caller.
func checkScope(p *auth.Principal, want auth.Scope, noCred string) ScopeCheck {
	c := ScopeCheck{Check: want.String()}
	if p == nil {
		c.Reason = "cannot tell: " + noCred + "; denied until a valid credential is in use"
		c.Fix = "set KEYGATE_TOKEN or call auth_authenticate, then check again"
		return c
	}
	if p.Scopes.Covers(want) {
		c.Allowed, c.Reason = true, "granted by "+scopeList(p.Scopes)
		return c
	}
	c.Reason = "the credential holds " + scopeList(p.Scopes)
	c.Fix = fmt.Sprintf("use a key with scope %s (or admin); keygate token create --scopes %s", want, want)
	return c
}

// upstreamChecks asks a remote provider whether its own credentials allow
// the same operations (for a tool: the scope it needs). The answers line up
// with checks: scopes first, then tools; nil where the provider has no say
// (a tool that needs no scope).
func (a *authTools) upstreamChecks(ctx context.Context, pr Provider, scopes []auth.Scope, tools []string) ([]*provider.Access, *mcp.CallToolResult) {
	var ops []provider.Operation
	var at []int // index in the answer list of each asked operation
	for i, sc := range scopes {
		ops, at = append(ops, provider.Operation{Scope: sc}), append(at, i)
	}
	for j, name := range tools {
		// A tool asks about itself: tools that need the same scope may
		// do different things upstream.
		if t, _, _ := a.catalog.lookup(name); t.Needs != "" {
			ops, at = append(ops, provider.Operation{Scope: auth.Scope{Action: t.Needs}, Tool: name}), append(at, len(scopes)+j)
		}
	}
	out := make([]*provider.Access, len(scopes)+len(tools))
	if len(ops) == 0 {
		return out, nil
	}
	access, err := a.inspect.checkAccess(ctx, pr, ops)
	if err != nil {
		res, ferr := providerError(err, "")
		if ferr != nil {
			res = shape.Error("provider", "could not check "+pr.Name+"'s credentials: "+upstreamDetail(err), "retry; auth_whoami checks reachability")
		}
		return nil, res
	}
	for _, i := range at {
		out[i] = &provider.Access{Reason: "the provider gave no answer for this operation"}
	}
	for k := range access {
		if k < len(at) {
			out[at[k]] = &access[k]
		}
	}
	return out, nil
}

// combineChecks denies a check that keygate allows when the provider's own
// credentials do not allow it: both must agree. A provider that gave no
// answer for a check it was asked about denies it (fail closed).
func combineChecks(checks []ScopeCheck, upstream []*provider.Access) []ScopeCheck {
	for i := range checks {
		if !checks[i].Allowed || i >= len(upstream) || upstream[i] == nil {
			continue
		}
		u := upstream[i]
		switch {
		case u.Allowed:
			checks[i].Reason += "; upstream: " + u.Reason
		case !u.Known:
			checks[i].Allowed = false
			checks[i].Reason = "unknown until tried upstream, so denied: " + u.Reason
			checks[i].Fix = u.Fix
		default:
			checks[i].Allowed = false
			checks[i].Reason = "keygate allows it, but the provider's credential does not: " + u.Reason
			checks[i].Fix = u.Fix
		}
	}
	return checks
}

func narrowedTypes(ss auth.Scopes, a auth.Action) string {
	var types []string
	for _, s := range ss {
		if s.Action == a && s.Type != "" {
			types = append(types, s.Type)
		}
	}
	return strings.Join(types, ", ")
}

func (a *authTools) authenticate(ctx context.Context, call *Call, args authenticateArgs) (*mcp.CallToolResult, error) {
	tok := strings.TrimSpace(args.Token)
	if args.Save && a.d.Identity.PerRequest() {
		// Over HTTP the env file is the operator's, holding the token the
		// server and any stdio keygate sharing it run on: no caller may
		// replace it.
		return shape.Error("save", "over HTTP keygate never writes a caller's token into the operator's env file",
			"leave save out: the token then acts for this session only; or send it as the Authorization: Bearer header"), nil
	}
	if _, _, err := auth.ParseToken(tok); err != nil {
		return shape.Error("token", "not a valid keygate token (expected kg_pat_ followed by 51 letters and digits, with a valid checksum)",
			"copy the whole token again; it is shown once when created"), nil
	}
	p, err := a.d.Identity.Verify(ctx, tok)
	if errors.Is(err, auth.ErrInvalidToken) {
		return shape.Error("token", "invalid token", "check that the token is not revoked or expired (credentials_list), or create a new one"), nil
	}
	if err != nil {
		return nil, fmt.Errorf("verifying token: %w", err)
	}
	// Only a verified secret joins the redactor: anything else a caller
	// sends could mask keygate's own output for everyone, and each value
	// makes every later redaction pass slower.
	a.d.Redactor.Add(tok)
	cred := auth.Credential{Secret: auth.NewSecret(tok), Source: auth.SourceSession}
	if !a.d.Identity.SetSession(ctx, cred) {
		return shape.Error("token", "this connection has no lasting session to keep the token in (each request stands alone)",
			"send the token as the Authorization: Bearer header, or set KEYGATE_TOKEN"), nil
	}
	saved := ""
	if args.Save {
		if err := auth.SetEnvVar(a.d.EnvFile, EnvTokenVar, tok, auth.EnvWriteOptions{Overwrite: true}); err != nil {
			return shape.Error("save", "the token is in use for this session but could not be saved: "+err.Error(), "check that the env file's directory is writable"), nil
		}
		saved = a.d.EnvFile
	}
	out := map[string]any{
		"provider": call.Provider.Name, "authenticated": true, "key_id": p.KeyID, "owner": p.Name,
		"masked": auth.Mask(tok), "scopes": p.Scopes.Strings(), "expires_at": timePtr(p.ExpiresAt),
		"session_only": saved == "", "saved_to": saved,
	}
	text := fmt.Sprintf("now acting as key %s (%q, %s) for this session; scopes: %s", p.KeyID, p.Name, auth.Mask(tok), scopeList(p.Scopes))
	if saved != "" {
		text += "; saved to " + saved + " as " + EnvTokenVar
	}
	return shape.OK(out, text), nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
