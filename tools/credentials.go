package tools

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

const (
	maxExpiryDays = 365
	maxGrace      = 7 * 24 * time.Hour
)

var keyIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9A-Za-z]{12}$`) })

func credentialArg() mcp.ToolOption {
	return mcp.WithString("credential", mcp.Required(),
		mcp.Description(`The key id from credentials_list, or "current" for the keygate credential acting now.`),
		mcp.Pattern(`^([A-Za-z0-9_-]{1,64}|current)$`))
}

func deliverArg(def string) mcp.ToolOption {
	return mcp.WithString("deliver",
		mcp.Description(`Where the new secret goes: "env:VAR" writes VAR into keygate's env file (mode 0600, atomic, never overwriting), "file:PATH" writes a new file (mode 0600) beside the env file or in keygate's keys directory, "reveal" shows it once in the result (it then sits in the chat history; prefer env or file). `+def),
		mcp.Pattern(`^(env:[A-Za-z_][A-Za-z0-9_]{0,127}|file:.+|reveal)$`), mcp.MaxLength(1024))
}

const defaultDeliverDoc = "Default: a new file <key id>.token in keygate's keys directory, beside its store."

func credentialTools(d *Deps) []ServerTool {
	return []ServerTool{
		{
			Toolset: ToolsetCredentials, Needs: auth.CredentialsRead, Handler: d.credentialsList,
			Tool: mcp.NewTool("credentials_list",
				mcp.WithTitleAnnotation("List credentials"),
				mcp.WithDescription("List the credential keygate is acting with (masked, kind, source, scopes) and, for providers that manage keys, every key: name, id, masked value, scopes, created, expires, last used, revoked. Secrets are never shown."),
				providerArg(), maxBytesArg(), formatArg(), listCursorArg(),
				mcp.WithReadOnlyHintAnnotation(true), mcp.WithDestructiveHintAnnotation(false),
				mcp.WithIdempotentHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(true)),
		},
		{
			Toolset: ToolsetCredentials, Needs: auth.CredentialsWrite, Handler: d.credentialsCreate,
			Tool: mcp.NewTool("credentials_create",
				mcp.WithTitleAnnotation("Create credential"),
				mcp.WithDescription("Create a key with some of your own scopes that expires no later than your own credential. The secret is delivered to a file or env variable; it is shown in the result only with deliver: \"reveal\"."),
				providerArg(),
				mcp.WithString("name", mcp.Required(), mcp.Description("What the key is for, e.g. \"ci-publisher\"."), mcp.MinLength(1), mcp.MaxLength(100)),
				mcp.WithArray("scopes", mcp.Required(), mcp.Description(`Scopes, e.g. ["content:read", "content:write:posts"]. Known: content:read, content:write, content:delete (each optionally :TYPE), credentials:read, credentials:write, admin.`),
					mcp.WithStringItems(mcp.MaxLength(100)), mcp.MinItems(1), mcp.MaxItems(20)),
				mcp.WithNumber("expires_in_days", mcp.Required(), mcp.Description("Lifetime in days, 1 to 365."), mcp.Min(1), mcp.Max(maxExpiryDays)),
				deliverArg(defaultDeliverDoc),
				mcp.WithReadOnlyHintAnnotation(false), mcp.WithDestructiveHintAnnotation(false),
				mcp.WithIdempotentHintAnnotation(false), mcp.WithOpenWorldHintAnnotation(true)),
		},
		{
			Toolset: ToolsetCredentials, Needs: auth.CredentialsWrite, Handler: d.credentialsRotate,
			Tool: mcp.NewTool("credentials_rotate",
				append([]mcp.ToolOption{
					mcp.WithTitleAnnotation("Rotate credential"),
					mcp.WithDescription("Replace a key with a new one with the same name and scopes; the old one stops working after grace_seconds (0 = at once). When it is the credential keygate itself uses, keygate writes the new one to its env file and switches to it, so it keeps working. The user is asked to confirm; use dry_run to preview."),
					providerArg(), credentialArg(),
					mcp.WithNumber("grace_seconds", mcp.Description("How long the old key keeps working, 0 to 604800 (default 0: at once)."), mcp.Min(0), mcp.Max(maxGrace.Seconds()), mcp.DefaultNumber(0)),
					deliverArg("Default for keygate's own credential: env:KEYGATE_TOKEN, replaced in place; for any other key: a new file <key id>.token in keygate's keys directory."),
					mcp.WithReadOnlyHintAnnotation(false), mcp.WithDestructiveHintAnnotation(true),
					mcp.WithIdempotentHintAnnotation(false), mcp.WithOpenWorldHintAnnotation(true),
				}, confirmArgs()...)...),
		},
		{
			Toolset: ToolsetCredentials, Needs: auth.CredentialsWrite, Handler: d.credentialsRevoke,
			Tool: mcp.NewTool("credentials_revoke",
				append([]mcp.ToolOption{
					mcp.WithTitleAnnotation("Revoke credential"),
					mcp.WithDescription("Revoke a key for good: it stops working on the next request. Revoking an already revoked key changes nothing and succeeds. The user is asked to confirm; use dry_run to preview."),
					providerArg(), credentialArg(),
					mcp.WithReadOnlyHintAnnotation(false), mcp.WithDestructiveHintAnnotation(true),
					mcp.WithIdempotentHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(true),
				}, confirmArgs()...)...),
		},
	}
}

// keysOf returns the provider's key manager or an honest refusal: for a
// remote provider without a key API, where a person rotates its keys and
// how keygate picks the new value up (from the adapter, without a call to
// the provider).
func keysOf(pr Provider) (KeyManager, *mcp.CallToolResult) {
	if pr.Keys != nil {
		return pr.Keys, nil
	}
	fix := pr.RotateHint
	if fix == "" {
		fix = "manage this provider's keys in its dashboard, then update the variable in keygate's env file: keygate picks the new value up without a restart"
	}
	return nil, errorResult("provider", fmt.Sprintf("%s has no key-management API that keygate can use, so keygate cannot create, rotate or revoke its keys", pr.Name), fix)
}

// ConfiguredCredential is the credential in use, as credentials_list shows it.
type ConfiguredCredential struct {
	CredentialView
	KeyID  string   `json:"key_id,omitempty"`
	Scopes []string `json:"scopes"`
	InUse  bool     `json:"in_use"`
}

func (d *Deps) credentialsList(ctx context.Context, call *Call) (*mcp.CallToolResult, error) {
	pr, errRes := d.Providers.Pick(call.Req.GetString("provider", ""))
	if errRes != nil {
		return errRes, nil
	}
	configured := []ConfiguredCredential{{CredentialView: d.credentialView(call.Cred), KeyID: call.Caller.KeyID, Scopes: call.Caller.Scopes.Strings(), InUse: true}}
	if proc := d.Identity.Process(); !proc.Secret.IsZero() && proc.Secret.Reveal() != call.Cred.Secret.Reveal() {
		c := ConfiguredCredential{CredentialView: d.credentialView(proc), Scopes: []string{}}
		if p, err := d.Identity.verifier.Verify(ctx, proc.Secret.Reveal()); err == nil {
			c.KeyID, c.Scopes = p.KeyID, p.Scopes.Strings()
		}
		configured = append(configured, c)
	}
	out := map[string]any{"provider": pr.Name, "configured": configured}
	var b strings.Builder
	truncNote := ""
	for _, c := range configured {
		fmt.Fprintf(&b, "configured: %s %s from %s", c.KindLabel, c.Masked, c.Source)
		if c.InUse {
			b.WriteString(" (in use)")
		}
		b.WriteString("\n")
	}
	if pr.Inspect != nil {
		desc, err := pr.Inspect.Describe(ctx)
		if err != nil {
			return providerError(err, "")
		}
		out["upstream"] = desc.Credentials
		if desc.RotateHint != "" {
			out["rotate_hint"] = desc.RotateHint
		}
		for _, c := range desc.Credentials {
			fmt.Fprintf(&b, "%s: %s %s %s from %s, %s", pr.Name, c.Name, c.Label, c.Masked, c.Source, c.Verified)
			if len(c.Grants) > 0 {
				fmt.Fprintf(&b, ", grants %s", strings.Join(c.Grants, ", "))
			}
			if d.expiresSoon(c.ExpiresAt) {
				fmt.Fprintf(&b, " (EXPIRES IN %d DAYS)", d.daysLeft(c.ExpiresAt))
			}
			b.WriteString("\n")
		}
		if desc.RotateHint != "" {
			b.WriteString("to rotate: " + desc.RotateHint + "\n")
		}
	}
	if pr.RemoteKeys != nil {
		if err := d.remoteKeyList(ctx, pr, out, &b); err != nil {
			return providerError(err, "")
		}
	}
	if pr.Keys != nil {
		all, err := pr.Keys.ListKeys(ctx)
		if err != nil {
			return providerError(err, "")
		}
		budget, errRes := readMaxBytes(call)
		if errRes != nil {
			return errRes, nil
		}
		offset, errRes := readOffsetCursor(call, "keys/"+pr.Name)
		if errRes != nil {
			return errRes, nil
		}
		keys, next := pageItems(all, offset, budget-envelopeBytes-encodedLen(out))
		if keys == nil {
			keys = []provider.Key{}
		}
		out["keys"] = keys
		if next > 0 {
			out["next_cursor"], out["truncated"] = offsetCursor("keys/"+pr.Name, next), true
			truncNote = fmt.Sprintf("TRUNCATED: %d of %d keys shown (max_bytes); next_cursor=%s", len(keys), len(all), out["next_cursor"])
		}
		now := d.now()
		soon := []string{}
		for _, k := range keys {
			state := keyState(k, now)
			if k.RevokedAt.IsZero() && d.expiresSoon(k.ExpiresAt) {
				soon = append(soon, k.ID)
				state += fmt.Sprintf(" (EXPIRES IN %d DAYS: rotate it)", d.daysLeft(k.ExpiresAt))
			}
			fmt.Fprintf(&b, "key %s %q %s [%s] %s\n", k.ID, k.Name, k.Masked, strings.Join(k.Scopes, ", "), state)
		}
		out["expiring_soon"] = soon
	}
	b.WriteString(truncNote)
	return shapedResult(call, out, func() string { return strings.TrimSuffix(b.String(), "\n") }), nil
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

func (d *Deps) credentialsCreate(ctx context.Context, call *Call) (*mcp.CallToolResult, error) {
	pr, errRes := d.Providers.Pick(call.Req.GetString("provider", ""))
	if errRes != nil {
		return errRes, nil
	}
	if pr.RemoteKeys != nil {
		return d.remoteCreate(ctx, call, pr)
	}
	km, errRes := keysOf(pr)
	if errRes != nil {
		return errRes, nil
	}
	scopes, err := auth.ParseScopes(call.Req.GetStringSlice("scopes", nil))
	if err != nil {
		return errorResult("scopes", err.Error(), "use scopes such as content:read or content:write:posts"), nil
	}
	days := call.Req.GetInt("expires_in_days", 0)
	if days < 1 || days > maxExpiryDays {
		return errorResult("expires_in_days", fmt.Sprintf("%d is out of range", days), "use 1 to 365"), nil
	}
	dl, errRes := d.destination(call)
	if errRes != nil {
		return errRes, nil
	}
	nk := provider.NewKey{Name: strings.TrimSpace(call.Req.GetString("name", "")), Scopes: scopes,
		ExpiresAt: d.now().Add(time.Duration(days) * 24 * time.Hour)}
	issued, err := km.CreateKey(ctx, call.Caller, nk)
	if err != nil {
		return providerError(err, "")
	}
	dl, errRes, err = d.deliverNew(ctx, call, dl, issued, func(ctx context.Context) error {
		_, _, err := km.RevokeKey(ctx, call.Caller, issued.Key.ID)
		return err
	})
	if errRes != nil || err != nil {
		return errRes, err
	}
	out := map[string]any{"provider": pr.Name, "created": true, "key": issued.Key}
	text := fmt.Sprintf("created key %s %q %s [%s], expires %s", issued.Key.ID, issued.Key.Name, issued.Key.Masked,
		strings.Join(issued.Key.Scopes, ", "), issued.Key.ExpiresAt.Format(time.DateOnly))
	return okResult(out, d.deliveredText(out, text, dl, issued.Secret)), nil
}

// destination reads and preflights the deliver argument of a tool that
// issues a key, before anything is created.
func (d *Deps) destination(call *Call) (delivery, *mcp.CallToolResult) {
	dl, p := d.deliveryArg(call.Req.GetString("deliver", ""))
	if p == nil {
		p = d.preflight(dl, false)
	}
	if p != nil {
		return delivery{}, errorResult(p.Field, p.Problem, p.Fix)
	}
	return dl, nil
}

// deliverNew hands a newly issued key's secret to its destination. A key
// that cannot be delivered is revoked again at once, so nothing is left
// that nobody holds.
func (d *Deps) deliverNew(ctx context.Context, call *Call, dl delivery, issued provider.IssuedKey, revoke func(context.Context) error) (delivery, *mcp.CallToolResult, error) {
	d.Redactor.Add(issued.Secret.Reveal())
	dl, err := d.deliver(call, dl, issued.Secret, false, issued.Key.ID)
	if err == nil {
		return dl, nil, nil
	}
	if rerr := revoke(ctx); rerr != nil {
		return dl, nil, fmt.Errorf("delivering the new key failed (%v) and revoking it failed too: %w", err, rerr)
	}
	return dl, errorResult("deliver", "the key could not be delivered, so it was revoked again: "+err.Error(), "fix the destination or choose another"), nil
}

// deliveredText records where a new secret went in out and text, and shows
// the secret itself only for a reveal delivery.
func (d *Deps) deliveredText(out map[string]any, text string, dl delivery, secret auth.Secret) string {
	out["delivered_to"], out["delivery"] = dl.String(), d.deliveredNote(dl)
	text += "; secret " + d.deliveredNote(dl)
	if dl.kind == "reveal" {
		out["token"] = secret.Reveal()
		text += "\ntoken: " + secret.Reveal()
	}
	return text
}

// resolveKeyID turns "current" into the acting key's id.
func resolveKeyID(call *Call, arg string) (string, *mcp.CallToolResult) {
	if arg == "current" {
		return call.Caller.KeyID, nil
	}
	if !keyIDPattern().MatchString(arg) {
		return "", errorResult("credential", fmt.Sprintf("%q is not a key id", arg), "pass the 12-character id from credentials_list, or \"current\"")
	}
	return arg, nil
}

// holder says who, inside keygate, holds the key being changed.
type holder struct {
	process bool            // keygate's own KEYGATE_TOKEN
	caller  bool            // the credential this call acts with
	secret  auth.Credential // the held value, when known
}

func (d *Deps) holderOf(ctx context.Context, call *Call, keyID string) holder {
	var h holder
	if call.Caller.KeyID == keyID {
		h.caller, h.secret = true, call.Cred
	}
	if proc := d.Identity.Process(); !proc.Secret.IsZero() {
		if p, err := d.Identity.verifier.Verify(ctx, proc.Secret.Reveal()); err == nil && p.KeyID == keyID {
			h.process, h.secret = true, proc
		}
	}
	return h
}

func (d *Deps) credentialsRotate(ctx context.Context, call *Call) (*mcp.CallToolResult, error) {
	pr, errRes := d.Providers.Pick(call.Req.GetString("provider", ""))
	if errRes != nil {
		return errRes, nil
	}
	if pr.RemoteKeys != nil {
		return d.remoteRotate(ctx, call, pr)
	}
	km, errRes := keysOf(pr)
	if errRes != nil {
		return errRes, nil
	}
	id, errRes := resolveKeyID(call, call.Req.GetString("credential", ""))
	if errRes != nil {
		return errRes, nil
	}
	grace := time.Duration(call.Req.GetFloat("grace_seconds", 0) * float64(time.Second))
	if grace < 0 || grace > maxGrace {
		return errorResult("grace_seconds", "out of range", "use 0 to 604800"), nil
	}
	old, err := km.GetKey(ctx, id)
	if err != nil {
		return providerError(err, "")
	}
	h := d.holderOf(ctx, call, id)

	// Decide where the new secret goes before anything changes.
	deliverArg := call.Req.GetString("deliver", "")
	overwrite := false
	switch {
	case deliverArg != "":
	case h.process:
		deliverArg, overwrite = "env:"+EnvTokenVar, true
	case h.caller && h.secret.Source == auth.SourceSession:
		// The session switches to the new key in memory; nothing is written.
	default:
		deliverArg = deliverToKeysDir
	}
	var dl delivery
	if deliverArg != "" {
		var p *Problem
		if dl, p = d.deliveryArg(deliverArg); p == nil {
			p = d.preflight(dl, overwrite)
		}
		if p != nil {
			return errorResult(p.Field, p.Problem, p.Fix), nil
		}
	}
	when := "at once"
	if grace > 0 {
		when = "in " + grace.String()
	}
	what := fmt.Sprintf("Rotate key %s %q [%s]? A new key replaces it and the old one stops working %s.", old.ID, old.Name, strings.Join(old.Scopes, ", "), when)
	if h.process {
		what += " This is the credential keygate itself uses; keygate switches to the new one."
	}
	if call.Req.GetBool("dry_run", false) {
		dest := "kept in this session's memory"
		if deliverArg != "" {
			dest = dl.String()
		}
		return okResult(map[string]any{"provider": pr.Name, "dry_run": true, "key": old, "grace_seconds": grace.Seconds(),
			"new_secret_goes_to": dest, "keygate_switches": h.process || h.caller},
			"dry run: "+what+" New secret would go to "+dest+". Nothing was changed."), nil
	}
	if r := confirmDestructive(ctx, call.Req, what); r != nil {
		return r, nil
	}
	// keygate's own token, held in its env file: the journaled rotation
	// engine, which survives a crash at any step.
	if d.Rotation != nil && pr.Keys != nil && h.process && h.secret.Source == auth.SourceEnvFile && call.Req.GetString("deliver", "") == "" {
		return d.journaledRotate(ctx, call, pr, old, h, grace)
	}

	// Create the successor with the old key still valid, store it, switch
	// to it, and only then retire the old key: a failure before the last
	// step never leaves keygate without a working credential.
	issued, _, err := km.RotateKey(ctx, call.Caller, id, -1)
	if err != nil {
		return providerError(err, "")
	}
	d.Redactor.Add(issued.Secret.Reveal())
	if deliverArg != "" {
		if dl, err = d.deliver(call, dl, issued.Secret, overwrite, issued.Key.ID); err != nil {
			if _, _, rerr := km.RevokeKey(ctx, nil, issued.Key.ID); rerr != nil {
				return nil, fmt.Errorf("storing the rotated key failed (%v) and revoking the new key failed too: %w", err, rerr)
			}
			return errorResult("deliver", "the new key could not be stored, so it was revoked and the old key still works: "+err.Error(), "fix the destination and rotate again"), nil
		}
	}
	switched := false
	if h.process || h.caller {
		src := h.secret.Source
		if h.process {
			src = auth.SourceEnvFile
		}
		d.Identity.Replace(h.secret.Secret, auth.Credential{Secret: issued.Secret, Source: src})
		switched = true
	}
	retired, err := km.RetireKey(ctx, id, grace)
	if err != nil {
		return nil, fmt.Errorf("new key %s is in place but retiring old key %s failed: %w", issued.Key.ID, id, err)
	}
	stops := retired.RevokedAt
	if stops.IsZero() {
		stops = retired.ExpiresAt
	}
	out := map[string]any{"provider": pr.Name, "rotated": true, "old": retired, "old_stops_working_at": stops.UTC(),
		"new": issued.Key, "keygate_switched": switched}
	text := fmt.Sprintf("rotated %s -> %s %q %s; old key stops working %s", old.ID, issued.Key.ID, issued.Key.Name, issued.Key.Masked, stops.UTC().Format(time.RFC3339))
	if deliverArg != "" {
		text = d.deliveredText(out, text, dl, issued.Secret)
	}
	if switched {
		text += "; keygate now uses the new key"
	}
	return okResult(out, text), nil
}

func (d *Deps) credentialsRevoke(ctx context.Context, call *Call) (*mcp.CallToolResult, error) {
	pr, errRes := d.Providers.Pick(call.Req.GetString("provider", ""))
	if errRes != nil {
		return errRes, nil
	}
	if pr.RemoteKeys != nil {
		return d.remoteRevoke(ctx, call, pr)
	}
	km, errRes := keysOf(pr)
	if errRes != nil {
		return errRes, nil
	}
	id, errRes := resolveKeyID(call, call.Req.GetString("credential", ""))
	if errRes != nil {
		return errRes, nil
	}
	k, err := km.GetKey(ctx, id)
	if err != nil {
		return providerError(err, "")
	}
	if !k.RevokedAt.IsZero() {
		return okResult(map[string]any{"provider": pr.Name, "revoked": true, "already_revoked": true, "key": k},
			fmt.Sprintf("key %s %q was already revoked on %s; nothing changed", k.ID, k.Name, k.RevokedAt.Format(time.RFC3339))), nil
	}
	h := d.holderOf(ctx, call, id)
	what := fmt.Sprintf("Revoke key %s %q [%s]? It stops working at once and cannot be restored.", k.ID, k.Name, strings.Join(k.Scopes, ", "))
	if h.process || h.caller {
		what += " keygate is using this key: its tools stop working until a new token is configured."
	}
	if call.Req.GetBool("dry_run", false) {
		return okResult(map[string]any{"provider": pr.Name, "dry_run": true, "key": k, "in_use_by_keygate": h.process || h.caller},
			"dry run: "+what+" Nothing was changed."), nil
	}
	if r := confirmDestructive(ctx, call.Req, what); r != nil {
		return r, nil
	}
	revoked, already, err := km.RevokeKey(ctx, call.Caller, id)
	if err != nil {
		return providerError(err, "")
	}
	text := fmt.Sprintf("revoked key %s %q", revoked.ID, revoked.Name)
	if already {
		text = fmt.Sprintf("key %s %q was already revoked; nothing changed", revoked.ID, revoked.Name)
	}
	if h.process || h.caller {
		text += "; this was keygate's own credential: set a new KEYGATE_TOKEN (keygate token create) or call auth_authenticate"
	}
	return okResult(map[string]any{"provider": pr.Name, "revoked": true, "already_revoked": already, "key": revoked}, text), nil
}
