package tools

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
	"github.com/keygate/keygate/query"
	"github.com/keygate/keygate/shape"
)

const maxExpiryDays = 365

func credentialArg() mcp.ToolOption {
	return mcp.WithString("credential", mcp.Required(),
		mcp.Description(`The key id (or OAuth grant id, gr_...) from credentials_list, or "current" for the keygate credential acting now.`),
		mcp.Pattern(`^([A-Za-z0-9_-]{1,64}|current)$`))
}

func deliverArg(def string) mcp.ToolOption {
	return mcp.WithString("deliver",
		mcp.Description(`Where the new secret goes: "env:NAME_TOKEN" writes a new variable into keygate's env file (mode 0600, atomic, never overwriting; names end in _TOKEN, _KEY, _PAT or _SECRET, and keygate's own and providers' variables are refused), "file:NAME.token" writes a new file (mode 0600) in keygate's keys directory or, given a full path, beside the env file, "reveal" shows it once in the result (it then sits in the chat history; prefer env or file). `+def),
		mcp.Pattern(`^(env:[A-Za-z_][A-Za-z0-9_]{0,127}|file:.+|reveal|session)$`), mcp.MaxLength(1024))
}

const defaultDeliverDoc = "Default: a new file <key id>.token in keygate's keys directory, beside its store."

// credentialTools list, issue, rotate and revoke keys, through the
// credentials service.
type credentialTools struct {
	d      *Deps
	expiry expiry
}

type credentialsListArgs struct {
	Common
	Budget
	Cursor string `json:"cursor"`
}

type credentialsCreateArgs struct {
	Common
	Name          string   `json:"name"`
	Scopes        []string `json:"scopes"`
	ExpiresInDays float64  `json:"expires_in_days"`
	Deliver       string   `json:"deliver"`
}

type credentialsRotateArgs struct {
	Common
	Confirmation
	Credential   string  `json:"credential"`
	GraceSeconds float64 `json:"grace_seconds"`
	Deliver      string  `json:"deliver"`
}

type credentialsRevokeArgs struct {
	Common
	Confirmation
	Credential string `json:"credential"`
}

func (c *credentialTools) tools() []ServerTool {
	return []ServerTool{
		newTool(ToolsetCredentials, auth.CredentialsRead, mcp.NewTool("credentials_list",
			mcp.WithTitleAnnotation("List credentials"),
			mcp.WithDescription("List the credential keygate is acting with (masked, kind, source, scopes) and, for providers that manage keys, the keys you may see (every key with admin; otherwise your own key and the keys it created): name, id, masked value, scopes, created, expires, last used, revoked. On keygate's own store the list also holds the OAuth grants you may see (every grant with admin; otherwise those approved by your key or keys it created): client name, redirect host, scopes, approving key, created, expires, last used, revoked. Each entry has kind \"key\" or \"oauth_grant\". Secrets are never shown."),
			providerArg(), maxBytesArg(), formatArg(), listCursorArg(),
			mcp.WithReadOnlyHintAnnotation(true), mcp.WithDestructiveHintAnnotation(false),
			mcp.WithIdempotentHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(true)), c.list),
		newTool(ToolsetCredentials, auth.CredentialsWrite, mcp.NewTool("credentials_create",
			mcp.WithTitleAnnotation("Create credential"),
			mcp.WithDescription("Create a key with some of your own scopes that expires no later than your own credential. The secret is delivered to a file or env variable; it is shown in the result only with deliver: \"reveal\"."),
			providerArg(),
			mcp.WithString("name", mcp.Required(), mcp.Description("What the key is for, e.g. \"ci-publisher\"."), mcp.MinLength(1), mcp.MaxLength(100)),
			mcp.WithArray("scopes", mcp.Required(), mcp.Description(`Scopes, e.g. ["content:read", "content:write:posts"]. Known: content:read, content:write, content:delete (each optionally :TYPE), credentials:read, credentials:write, admin.`),
				mcp.WithStringItems(mcp.MaxLength(100)), mcp.MinItems(1), mcp.MaxItems(20)),
			mcp.WithNumber("expires_in_days", mcp.Required(), mcp.Description("Lifetime in days, 1 to 365."), mcp.Min(1), mcp.Max(maxExpiryDays)),
			deliverArg(defaultDeliverDoc),
			mcp.WithReadOnlyHintAnnotation(false), mcp.WithDestructiveHintAnnotation(false),
			mcp.WithIdempotentHintAnnotation(false), mcp.WithOpenWorldHintAnnotation(true)), c.create),
		newTool(ToolsetCredentials, auth.CredentialsWrite, mcp.NewTool("credentials_rotate",
			append([]mcp.ToolOption{
				mcp.WithTitleAnnotation("Rotate credential"),
				mcp.WithDescription("Replace a key with a new one with the same name and scopes; the old one stops working after grace_seconds (0 = at once). When it is the credential keygate itself uses, keygate writes the new one to its env file and switches to it, so it keeps working. The user is asked to confirm; use dry_run to preview."),
				providerArg(), credentialArg(),
				mcp.WithNumber("grace_seconds", mcp.Description("How long the old key keeps working, 0 to 604800 (default 0: at once)."), mcp.Min(0), mcp.Max(credentials.MaxGrace.Seconds()), mcp.DefaultNumber(0)),
				deliverArg(`For keygate's own credential the new key always replaces it in its env file (leave deliver out). "session" keeps a session's own key (from auth_authenticate) in that session only, which is also the default for it. Default for any other key: a new file <key id>.token in keygate's keys directory.`),
				mcp.WithReadOnlyHintAnnotation(false), mcp.WithDestructiveHintAnnotation(true),
				mcp.WithIdempotentHintAnnotation(false), mcp.WithOpenWorldHintAnnotation(true),
			}, confirmArgs()...)...), c.rotate),
		newTool(ToolsetCredentials, auth.CredentialsWrite, mcp.NewTool("credentials_revoke",
			append([]mcp.ToolOption{
				mcp.WithTitleAnnotation("Revoke credential"),
				mcp.WithDescription("Revoke a key for good: it stops working on the next request, and so do its successors, its earlier versions still in a grace period and every key it or they created. Revoking an already revoked key revokes whatever of that lineage still works. Given an OAuth grant's id (gr_...), ends that grant and its access and refresh tokens at once; keys made through it stay, they belong to the key that approved it. The user is asked to confirm; use dry_run to preview."),
				providerArg(), credentialArg(),
				mcp.WithReadOnlyHintAnnotation(false), mcp.WithDestructiveHintAnnotation(true),
				mcp.WithIdempotentHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(true),
			}, confirmArgs()...)...), c.revoke),
	}
}

// ConfiguredCredential is the credential in use, as credentials_list shows it.
type ConfiguredCredential struct {
	CredentialView
	KeyID  string   `json:"key_id,omitempty"`
	Scopes []string `json:"scopes"`
	InUse  bool     `json:"in_use"`
}

// caller is the call's verified caller, as the credentials service sees it.
func (c *credentialTools) caller(ctx context.Context, call *Call) credentials.Caller {
	return credentials.Caller{Principal: call.Caller, Cred: call.Cred,
		SetSession: func(cred auth.Credential) bool { return c.d.Identity.SetSession(ctx, cred) }}
}

func (c *credentialTools) list(ctx context.Context, call *Call, args credentialsListArgs) (*mcp.CallToolResult, error) {
	pr := call.Provider
	configured := c.configured(ctx, call)
	out := map[string]any{"provider": pr.Name, "configured": configured}
	var b strings.Builder
	for _, cc := range configured {
		fmt.Fprintf(&b, "configured: %s %s from %s", cc.KindLabel, cc.Masked, cc.Source)
		if cc.InUse {
			b.WriteString(" (in use)")
		}
		b.WriteString("\n")
	}
	if pr.Inspect != nil {
		desc, err := pr.Inspect.Describe(ctx)
		if err != nil {
			return providerError(err, "")
		}
		c.listUpstream(&b, out, pr, desc)
	}
	if !pr.Ring.Local && pr.Ring.Remote == nil {
		return shapedResult(args.Format, out, func() string { return strings.TrimSuffix(b.String(), "\n") }), nil
	}
	listing, err := c.d.Credentials.ListCredentials(ctx, c.caller(ctx, call), pr.Ring)
	if err != nil {
		return providerError(err, "")
	}
	if listing.Note != "" {
		out["note"] = listing.Note
		b.WriteString("note: " + listing.Note + "\n")
	}
	all := credentialItems(listing)
	offset, errRes := readOffsetCursor(args.Cursor, "keys/"+pr.Name)
	if errRes != nil {
		return errRes, nil
	}
	head := b.String()
	return shape.FitResult(args.maxBytes(), func(room int) *mcp.CallToolResult {
		page := maps.Clone(out)
		var b strings.Builder
		b.WriteString(head)
		c.listKeys(&b, page, pr, all, offset, room-shape.EncodedLen(out))
		return shapedResult(args.Format, page, func() string { return strings.TrimSuffix(b.String(), "\n") })
	}), nil
}

// configured is the credential in use and, when another one is, keygate's
// process credential.
func (c *credentialTools) configured(ctx context.Context, call *Call) []ConfiguredCredential {
	configured := []ConfiguredCredential{{CredentialView: credentialView(call.Cred, c.d.EnvFile), KeyID: call.Caller.KeyID, Scopes: call.Caller.Scopes.Strings(), InUse: true}}
	if proc := c.d.Identity.Process(); !proc.Secret.IsZero() && proc.Secret.Reveal() != call.Cred.Secret.Reveal() {
		cc := ConfiguredCredential{CredentialView: credentialView(proc, c.d.EnvFile), Scopes: []string{}}
		if p, err := c.d.Identity.Verify(ctx, proc.Secret.Reveal()); err == nil {
			cc.KeyID, cc.Scopes = p.KeyID, p.Scopes.Strings()
		}
		configured = append(configured, cc)
	}
	return configured
}

// listUpstream adds what a remote provider says of its own credentials.
func (c *credentialTools) listUpstream(b *strings.Builder, out map[string]any, pr Provider, desc provider.Description) {
	out["upstream"] = desc.Credentials
	if desc.RotateHint != "" {
		out["rotate_hint"] = desc.RotateHint
	}
	for _, cr := range desc.Credentials {
		fmt.Fprintf(b, "%s: %s %s %s from %s, %s", pr.Name, cr.Name, cr.Label, cr.Masked, cr.Source, cr.Verified)
		if len(cr.Grants) > 0 {
			fmt.Fprintf(b, ", grants %s", strings.Join(cr.Grants, ", "))
		}
		if c.expiry.soon(cr.ExpiresAt) {
			fmt.Fprintf(b, " (EXPIRES IN %d DAYS)", c.expiry.daysLeft(cr.ExpiresAt))
		}
		b.WriteString("\n")
	}
	if desc.RotateHint != "" {
		b.WriteString("to rotate: " + desc.RotateHint + "\n")
	}
}

// KeyItem is a key as credentials_list lists it.
type KeyItem struct {
	Kind string `json:"kind"` // "key"
	provider.Key
}

// GrantItem is an OAuth grant as credentials_list lists it: a credential
// beside the keys, revoked with credentials_revoke.
type GrantItem struct {
	Kind string `json:"kind"` // "oauth_grant"
	local.Grant
}

// credentialItems are a listing's keys, then its grants.
func credentialItems(l credentials.Listing) []any {
	out := make([]any, 0, len(l.Keys)+len(l.Grants))
	for _, k := range l.Keys {
		out = append(out, KeyItem{Kind: "key", Key: k})
	}
	for _, g := range l.Grants {
		out = append(out, GrantItem{Kind: "oauth_grant", Grant: g})
	}
	return out
}

// listKeys adds the page of keys and grants from offset that fits in room
// bytes.
func (c *credentialTools) listKeys(b *strings.Builder, out map[string]any, pr Provider, all []any, offset, room int) {
	keys, next := shape.PageItems(all, offset, room)
	if keys == nil {
		keys = []any{}
	}
	out["keys"] = keys
	truncNote := ""
	if next > 0 {
		out["next_cursor"], out["truncated"] = query.OffsetCursor("keys/"+pr.Name, next), true
		truncNote = fmt.Sprintf("TRUNCATED: %d of %d keys shown (max_bytes); next_cursor=%s", len(keys), len(all), out["next_cursor"])
	}
	now := c.d.now()
	soon := []string{}
	label := "key"
	if !pr.Ring.Local {
		label = pr.Name + " key"
	}
	for _, item := range keys {
		if g, ok := item.(GrantItem); ok {
			fmt.Fprintf(b, "oauth grant %s %q via %s [%s] approved by key %s %s\n", g.ID, g.ClientName, g.RedirectHost,
				strings.Join(g.Scopes, ", "), g.ApprovedBy, grantState(g.Grant, now))
			continue
		}
		k := item.(KeyItem).Key
		state := keyState(k, now)
		if k.RevokedAt.IsZero() && c.expiry.soon(k.ExpiresAt) {
			soon = append(soon, k.ID)
			state += fmt.Sprintf(" (EXPIRES IN %d DAYS: rotate it)", c.expiry.daysLeft(k.ExpiresAt))
		}
		if len(k.Scopes) > 0 {
			fmt.Fprintf(b, "%s %s %q %s [%s] %s\n", label, k.ID, k.Name, k.Masked, strings.Join(k.Scopes, ", "), state)
		} else {
			fmt.Fprintf(b, "%s %s %q %s %s\n", label, k.ID, k.Name, k.Masked, state)
		}
	}
	if pr.Ring.Local {
		out["expiring_soon"] = soon
	}
	b.WriteString(truncNote)
}

func grantState(g local.Grant, now time.Time) string {
	switch {
	case !g.RevokedAt.IsZero():
		return "revoked " + g.RevokedAt.Format(time.DateOnly) + " (" + g.RevokedReason + ")"
	case !g.ExpiresAt.After(now):
		return "expired " + g.ExpiresAt.Format(time.DateOnly)
	}
	return "active, expires " + g.ExpiresAt.Format(time.DateOnly)
}

func keyState(k provider.Key, now time.Time) string {
	switch {
	case !k.RevokedAt.IsZero():
		return "revoked " + k.RevokedAt.Format(time.DateOnly)
	case !k.ExpiresAt.IsZero() && !k.ExpiresAt.After(now):
		return "expired " + k.ExpiresAt.Format(time.DateOnly)
	case !k.ExpiresAt.IsZero():
		return "active, expires " + k.ExpiresAt.Format(time.DateOnly)
	}
	return "active"
}

func (c *credentialTools) create(ctx context.Context, call *Call, args credentialsCreateArgs) (*mcp.CallToolResult, error) {
	pr := call.Provider
	scopes, err := auth.ParseScopes(args.Scopes)
	if err != nil {
		return shape.Error("scopes", err.Error(), "use scopes such as content:read or content:write:posts"), nil
	}
	days := int(args.ExpiresInDays)
	if days < 1 || days > maxExpiryDays {
		return shape.Error("expires_in_days", fmt.Sprintf("%d is out of range", days), "use 1 to 365"), nil
	}
	issued, err := c.d.Credentials.Create(ctx, c.caller(ctx, call), pr.Ring, credentials.CreateRequest{
		Name: strings.TrimSpace(args.Name), Scopes: scopes,
		ExpiresAt: c.d.now().Add(time.Duration(days) * 24 * time.Hour), Deliver: args.Deliver})
	if err != nil {
		return providerError(err, "")
	}
	out := map[string]any{"provider": pr.Name, "created": true, "key": issued.Key}
	text := fmt.Sprintf("created %s key %s %q %s", pr.Name, issued.Key.ID, issued.Key.Name, issued.Key.Masked)
	if pr.Ring.Local {
		text = fmt.Sprintf("created key %s %q %s [%s], expires %s", issued.Key.ID, issued.Key.Name, issued.Key.Masked,
			strings.Join(issued.Key.Scopes, ", "), issued.Key.ExpiresAt.Format(time.DateOnly))
	}
	return shape.OK(out, c.deliveredText(call, out, text, issued.Delivered, issued.Secret)), nil
}

// deliveredText records where a new secret went in out and text, and shows
// the secret itself only for a reveal delivery.
func (c *credentialTools) deliveredText(call *Call, out map[string]any, text string, to delivery.Spec, secret auth.Secret) string {
	note := c.d.Credentials.Places.Note(to)
	out["delivered_to"], out["delivery"] = to.String(), note
	text += "; secret " + note
	if to.Kind == delivery.Reveal {
		call.Reveal(secret)
		out["token"] = secret.Reveal()
		text += "\ntoken: " + secret.Reveal()
	}
	return text
}

func (c *credentialTools) rotate(ctx context.Context, call *Call, args credentialsRotateArgs) (*mcp.CallToolResult, error) {
	pr := call.Provider
	plan, err := c.d.Credentials.PlanRotate(ctx, c.caller(ctx, call), pr.Ring, credentials.RotateRequest{
		Credential: args.Credential,
		Grace:      time.Duration(args.GraceSeconds * float64(time.Second)),
		Deliver:    args.Deliver})
	if err != nil {
		return providerError(err, "")
	}
	what := rotationQuestion(pr, plan)
	dest := plan.Dest.String()
	if args.DryRun {
		return shape.OK(map[string]any{"provider": pr.Name, "dry_run": true, "key": plan.Key, "grace_seconds": plan.Grace().Seconds(),
			"new_secret_goes_to": dest, "keygate_switches": plan.Own},
			"dry run: "+what+" New secret would go to "+dest+". Nothing was changed."), nil
	}
	if r := confirmDestructive(ctx, call, args.Confirmation, what); r != nil {
		return r, nil
	}
	res, err := c.d.Credentials.Rotate(ctx, plan)
	if err != nil {
		return providerError(err, "")
	}
	out := map[string]any{"provider": pr.Name, "rotated": true, "rotation_id": res.RotationID, "old": res.OldKeyID,
		"new": res.New, "keygate_switched": plan.Own && res.Followed}
	text := fmt.Sprintf("rotated %s -> %s %q %s (rotation %s)", res.OldKeyID, res.New.ID, res.New.Name, res.New.Masked, res.RotationID)
	if stops := res.OldStopsAt.UTC(); !stops.IsZero() {
		out["old_stops_working_at"] = stops
		text += "; old key stops working " + stops.Format(time.RFC3339)
	}
	text = c.deliveredText(call, out, text, res.Delivered, res.Secret) + rotationOutcome(plan, res)
	text = removedText(out, text, res.Removed, res.RemoveErr)
	if res.Warning != "" {
		out["warning"] = res.Warning
		text += "\nWARNING: " + strings.TrimSpace(res.Warning)
	}
	return shape.OK(out, text), nil
}

// rotationQuestion is what the user is asked to approve.
func rotationQuestion(pr Provider, plan credentials.RotatePlan) string {
	old := plan.Key
	when := "at once"
	if g := plan.Grace(); g > 0 {
		when = "in " + g.String()
	}
	what := fmt.Sprintf("Rotate %s key %s? A new key replaces it and the old one stops working %s.", pr.Name, old.ID, when)
	if pr.Ring.Local {
		what = fmt.Sprintf("Rotate key %s %q [%s]? A new key replaces it and the old one stops working %s.", old.ID, old.Name, strings.Join(old.Scopes, ", "), when)
	}
	if plan.Own {
		what += " This is the credential keygate itself uses; keygate switches to the new one."
	}
	return what
}

// rotationOutcome says who now acts with the new key.
func rotationOutcome(plan credentials.RotatePlan, res credentials.Rotated) string {
	switch {
	case plan.Own && res.Followed:
		return "; keygate now uses the new key"
	case plan.Own:
		return "; keygate's env file holds the new key, and keygate (and any other keygate sharing that env file) reads it from there"
	case res.Delivered.Kind == delivery.Session && res.Followed:
		return "; this session now acts with the new key"
	}
	return ""
}

func (c *credentialTools) revoke(ctx context.Context, call *Call, args credentialsRevokeArgs) (*mcp.CallToolResult, error) {
	pr := call.Provider
	plan, err := c.d.Credentials.PlanRevoke(ctx, c.caller(ctx, call), pr.Ring, args.Credential)
	if err != nil {
		return providerError(err, "")
	}
	if plan.Grant != nil {
		return c.revokeGrant(ctx, call, args, plan)
	}
	k := plan.Key
	if plan.Noop {
		// Revoking twice is a success that changes nothing: no prompt.
		return shape.OK(map[string]any{"provider": pr.Name, "revoked": true, "already_revoked": true, "key": k, "also_revoked": []string{}},
			fmt.Sprintf("key %s %q was already revoked on %s; nothing of its lineage works, so nothing changed", k.ID, k.Name, k.RevokedAt.UTC().Format(time.RFC3339))), nil
	}
	what := revocationQuestion(pr, plan)
	if args.DryRun {
		return shape.OK(map[string]any{"provider": pr.Name, "dry_run": true, "key": k, "in_use_by_keygate": plan.InUse, "also_revokes": nonNil(plan.Falls)},
			"dry run: "+what+" Nothing was changed."), nil
	}
	if r := confirmDestructive(ctx, call, args.Confirmation, what); r != nil {
		return r, nil
	}
	res, err := c.d.Credentials.Revoke(ctx, plan)
	if err != nil {
		return providerError(err, "")
	}
	out := map[string]any{"provider": pr.Name, "revoked": true, "already_revoked": res.Already, "key": res.Key, "also_revoked": nonNil(res.AlsoRevoked)}
	return shape.OK(out, removedText(out, revocationText(pr, plan, res), res.Removed, res.RemoveErr)), nil
}

// revokeGrant ends an OAuth grant, as revoke does a key.
func (c *credentialTools) revokeGrant(ctx context.Context, call *Call, args credentialsRevokeArgs, plan credentials.RevokePlan) (*mcp.CallToolResult, error) {
	pr, g := call.Provider, *plan.Grant
	if plan.Noop {
		return shape.OK(map[string]any{"provider": pr.Name, "revoked": true, "already_revoked": true, "grant": g, "also_revoked": []string{}},
			fmt.Sprintf("OAuth grant %s for %q has already ended (%s); nothing changed", g.ID, g.ClientName, grantState(g, c.d.now()))), nil
	}
	what := fmt.Sprintf("Revoke OAuth grant %s, which lets %q (redirect host %s) act with [%s] of key %s? Its access and refresh tokens stop working at once; keys made through it stay.",
		g.ID, g.ClientName, g.RedirectHost, strings.Join(g.Scopes, ", "), g.ApprovedBy)
	if plan.InUse {
		what += " This call acts through that grant: it is the last one."
	}
	if args.DryRun {
		return shape.OK(map[string]any{"provider": pr.Name, "dry_run": true, "grant": g, "in_use": plan.InUse, "also_revokes": []string{}},
			"dry run: "+what+" Nothing was changed."), nil
	}
	if r := confirmDestructive(ctx, call, args.Confirmation, what); r != nil {
		return r, nil
	}
	res, err := c.d.Credentials.Revoke(ctx, plan)
	if err != nil {
		return providerError(err, "")
	}
	text := fmt.Sprintf("revoked OAuth grant %s for %q: its access and refresh tokens no longer work", res.Grant.ID, res.Grant.ClientName)
	if res.Already {
		text = fmt.Sprintf("OAuth grant %s for %q was already revoked; nothing changed", res.Grant.ID, res.Grant.ClientName)
	}
	return shape.OK(map[string]any{"provider": pr.Name, "revoked": true, "already_revoked": res.Already, "grant": res.Grant, "also_revoked": []string{}}, text), nil
}

// removedText reports the delivered copies of revoked keys keygate removed,
// and any it could not.
func removedText(out map[string]any, text string, removed []string, err error) string {
	out["removed_from"] = nonNil(removed)
	if len(removed) > 0 {
		text += "; removed the revoked secrets keygate had delivered to " + strings.Join(removed, ", ")
	}
	if err != nil {
		out["remove_error"] = err.Error()
		text += fmt.Sprintf("; could not remove every delivered copy of a revoked key (%v): delete it by hand, it no longer works", err)
	}
	return text
}

// revocationQuestion is what the user is asked to approve.
func revocationQuestion(pr Provider, plan credentials.RevokePlan) string {
	k := plan.Key
	what := fmt.Sprintf("Revoke %s key %s? It stops working at once and cannot be restored.", pr.Name, k.ID)
	if pr.Ring.Local {
		what = fmt.Sprintf("Revoke key %s %q [%s]? It stops working at once and cannot be restored.", k.ID, k.Name, strings.Join(k.Scopes, ", "))
		if !k.RevokedAt.IsZero() {
			what = fmt.Sprintf("Key %s %q is revoked, but keys of its lineage still work. Revoke them?", k.ID, k.Name)
		}
	}
	if len(plan.Falls) > 0 {
		what += fmt.Sprintf(" Its lineage falls with it: keys %s.", strings.Join(plan.Falls, ", "))
	}
	if plan.InUse {
		what += " keygate is using this key: its tools stop working until a new token is configured."
	}
	return what
}

// revocationText says what a revocation did.
func revocationText(pr Provider, plan credentials.RevokePlan, res credentials.Revoked) string {
	label := "key"
	if !pr.Ring.Local {
		label = pr.Name + " key"
	}
	text := fmt.Sprintf("revoked %s %s %q", label, res.Key.ID, res.Key.Name)
	if res.Already {
		text = fmt.Sprintf("%s %s %q was already revoked", label, res.Key.ID, res.Key.Name)
		if len(res.AlsoRevoked) == 0 {
			text += "; nothing changed"
		}
	}
	if len(res.AlsoRevoked) > 0 {
		text += fmt.Sprintf("; also revoked, as its lineage: %s", strings.Join(res.AlsoRevoked, ", "))
	}
	if plan.InUse {
		text += "; this was keygate's own credential: set a new KEYGATE_TOKEN (keygate token create) or call auth_authenticate"
	}
	return text
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}
