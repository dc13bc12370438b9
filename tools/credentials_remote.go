package tools

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// remoteKeyIDPattern is the shape of a key id of a remote provider.
const remoteKeyIDPattern = `^[A-Za-z0-9_-]{1,64}$`

// remoteKeyID reads the credential argument for a remote provider, where
// keygate cannot tell which key "current" is: the caller names it.
func remoteKeyID(call *Call) (string, *mcp.CallToolResult) {
	id := call.Req.GetString("credential", "")
	if id == "current" {
		return "", errorResult("credential", `"current" names keygate's own key; for a remote provider pass the key's id`, "call credentials_list with this provider to see its key ids")
	}
	return id, nil
}

// remoteCreate issues a key with a remote provider's own API. Remote keys
// carry the provider's permissions, not keygate scopes, so creating one is
// limited to admins who say so with scopes ["admin"].
func (d *Deps) remoteCreate(ctx context.Context, call *Call, pr Provider) (*mcp.CallToolResult, error) {
	scopes, err := auth.ParseScopes(call.Req.GetStringSlice("scopes", nil))
	if err != nil || len(scopes) != 1 || scopes[0].Action != auth.Admin {
		return errorResult("scopes", fmt.Sprintf("%s keys cannot be narrowed to keygate scopes: they act with the agent's full permissions on %s", pr.Name, pr.Name),
			`pass scopes ["admin"] to create one anyway (your keygate credential must hold admin)`), nil
	}
	if err := auth.CheckGrant(*call.Caller, scopes, time.Time{}); err != nil {
		return providerError(err, "")
	}
	dl, errRes := d.destination(call)
	if errRes != nil {
		return errRes, nil
	}
	issued, err := pr.RemoteKeys.CreateKey(ctx, strings.TrimSpace(call.Req.GetString("name", "")))
	if err != nil {
		return providerError(err, "")
	}
	dl, errRes, err = d.deliverNew(ctx, call, dl, issued, func(ctx context.Context) error {
		_, _, err := pr.RemoteKeys.RevokeKey(ctx, issued.Key.ID)
		return err
	})
	if errRes != nil || err != nil {
		return errRes, err
	}
	out := map[string]any{"provider": pr.Name, "created": true, "key": issued.Key}
	text := fmt.Sprintf("created %s key %s %q %s", pr.Name, issued.Key.ID, issued.Key.Name, issued.Key.Masked)
	return okResult(out, d.deliveredText(out, text, dl, issued.Secret)), nil
}

// remoteRotate replaces a remote key. The platform revokes the old key the
// moment it issues the new one, so the new secret is the only working one:
// it goes where deliver says (a new 0600 file by default), and if that
// fails it is shown once rather than lost. When the key is the one keygate
// itself uses, the adapter rotates it through keygate's rotation engine,
// which has written it to the env file and switched to it before the
// adapter returns.
func (d *Deps) remoteRotate(ctx context.Context, call *Call, pr Provider) (*mcp.CallToolResult, error) {
	id, errRes := remoteKeyID(call)
	if errRes != nil {
		return errRes, nil
	}
	dl, errRes := d.destination(call)
	if errRes != nil {
		return errRes, nil
	}
	what := fmt.Sprintf("Rotate %s key %s? %s revokes the old key at once; the new one replaces it.", pr.Name, id, pr.Name)
	if call.Req.GetBool("dry_run", false) {
		return okResult(map[string]any{"provider": pr.Name, "dry_run": true, "credential": id, "new_secret_goes_to": dl.String()},
			"dry run: "+what+" New secret would go to "+dl.String()+". Nothing was changed."), nil
	}
	if r := confirmDestructive(ctx, call.Req, what); r != nil {
		return r, nil
	}
	issued, err := pr.RemoteKeys.RotateKey(ctx, id)
	if err != nil {
		return providerError(err, "")
	}
	d.Redactor.Add(issued.Secret.Reveal())
	out := map[string]any{"provider": pr.Name, "rotated": true, "old_revoked": true, "new": issued.Key}
	text := fmt.Sprintf("rotated %s key %s -> %s %s; %s revoked the old key", pr.Name, id, issued.Key.ID, issued.Key.Masked, pr.Name)
	if dl, err = d.deliver(call, dl, issued.Secret, false, issued.Key.ID); err != nil {
		call.Reveal(issued.Secret)
		out["token"] = issued.Secret.Reveal()
		out["warning"] = "the new key could not be written to " + dl.String() + ": " + err.Error() + "; it is shown once here because the old key no longer works"
		return okResult(out, text+"\nWARNING: "+out["warning"].(string)+"\ntoken: "+issued.Secret.Reveal()), nil
	}
	return okResult(out, d.deliveredText(out, text, dl, issued.Secret)), nil
}

func (d *Deps) remoteRevoke(ctx context.Context, call *Call, pr Provider) (*mcp.CallToolResult, error) {
	id, errRes := remoteKeyID(call)
	if errRes != nil {
		return errRes, nil
	}
	what := fmt.Sprintf("Revoke %s key %s? It stops working at once and cannot be restored.", pr.Name, id)
	if call.Req.GetBool("dry_run", false) {
		return okResult(map[string]any{"provider": pr.Name, "dry_run": true, "credential": id}, "dry run: "+what+" Nothing was changed."), nil
	}
	if r := confirmDestructive(ctx, call.Req, what); r != nil {
		return r, nil
	}
	k, already, err := pr.RemoteKeys.RevokeKey(ctx, id)
	if err != nil {
		return providerError(err, "")
	}
	text := fmt.Sprintf("revoked %s key %s %q", pr.Name, k.ID, k.Name)
	if already {
		text = fmt.Sprintf("%s key %s %q was already revoked; nothing changed", pr.Name, k.ID, k.Name)
	}
	return okResult(map[string]any{"provider": pr.Name, "revoked": true, "already_revoked": already, "key": k}, text), nil
}

// remoteKeyList adds a remote provider's own keys to a credentials_list
// answer.
func (d *Deps) remoteKeyList(ctx context.Context, pr Provider, out map[string]any, b *strings.Builder) error {
	keys, err := pr.RemoteKeys.ListKeys(ctx)
	if err != nil {
		return err
	}
	if keys == nil {
		keys = []provider.Key{}
	}
	out["keys"] = keys
	for _, k := range keys {
		fmt.Fprintf(b, "%s key %s %q %s %s\n", pr.Name, k.ID, k.Name, k.Masked, keyState(k, d.now()))
	}
	return nil
}
