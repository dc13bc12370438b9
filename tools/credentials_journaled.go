package tools

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/rotation"
)

// journaledRotate rotates keygate's own token through the rotation engine:
// lock, preflight, journal, create (tagged), pending file, verify, env file,
// swap, retire. The engine settles any failure itself, so the answer only
// has to say what state it left.
func (d *Deps) journaledRotate(ctx context.Context, call *Call, pr Provider, old provider.Key, h holder, grace time.Duration) (*mcp.CallToolResult, error) {
	res, err := d.Rotation.Rotate(ctx, rotation.Request{Old: h.secret.Secret, Grace: grace, Actor: call.Caller})
	if res.RotationID != "" && d.Audit != nil {
		if aerr := d.Audit.Write(audit.Record{Time: d.now().UTC(), Principal: call.Caller.KeyID, Provider: pr.Name, Tool: "credentials_rotate",
			Target: old.ID, Outcome: journalOutcome(err), RotationID: res.RotationID, Detail: "new key " + res.New.ID}); aerr != nil {
			d.Logger.Error("cannot write the audit journal", "err", aerr)
		}
	}
	if !res.NewSecret.IsZero() {
		d.Redactor.Add(res.NewSecret.Reveal())
	}
	var pe *rotation.PreflightError
	var se *rotation.ScopeError
	switch {
	case err == nil:
	case errors.As(err, &pe):
		return errorResult("credential", pe.Problem+": "+pe.Err.Error(), pe.Fix), nil
	case errors.Is(err, rotation.ErrInProgress):
		return errorResult("credential", "a rotation of this credential is in progress", "wait for it to finish, then check with auth_whoami"), nil
	case errors.Is(err, rotation.ErrUnfinished):
		rep, rerr := d.Rotation.Recover(ctx)
		if rerr != nil {
			return nil, fmt.Errorf("settling an unfinished rotation: %w", rerr)
		}
		return errorResult("credential", "an earlier rotation was unfinished and has now been settled: "+rep.Summary(), "call credentials_rotate again"), nil
	case errors.As(err, &se):
		return errorResult("credential", "the new key did not verify with the same scopes ("+se.Error()+"), so it was revoked and the old key kept", "check the key's scopes with credentials_list and rotate again"), nil
	case errors.Is(err, rotation.ErrSwapFailed):
		return errorResult("credential", "the new key could not be written to the env file ("+err.Error()+"); it is kept in keygate's pending file and the old key still works",
			"fix the env file (disk space, permissions) and restart keygate, which finishes the rotation"), nil
	case res.New.ID == "":
		return providerError(err, "")
	}
	stops := res.OldStopsAt.UTC()
	out := map[string]any{"provider": pr.Name, "rotated": true, "rotation_id": res.RotationID, "old": old.ID, "old_stops_working_at": stops,
		"new": res.New, "keygate_switched": true, "delivered_to": "env:" + EnvTokenVar, "delivery": d.deliveredNote(delivery{kind: "env", target: EnvTokenVar})}
	text := fmt.Sprintf("rotated %s -> %s %q %s (rotation %s); old key stops working %s; new secret %s; keygate now uses the new key",
		old.ID, res.New.ID, res.New.Name, res.New.Masked, res.RotationID, stops.Format(time.RFC3339), out["delivery"])
	if err != nil {
		// The swap happened; what failed came after it (e.g. retiring the
		// old key), and the engine will finish it.
		out["warning"] = err.Error()
		text += "\nWARNING: " + strings.TrimSpace(err.Error())
	}
	return okResult(out, text), nil
}

func journalOutcome(err error) string {
	if err != nil {
		return audit.OutcomeRefused
	}
	return audit.OutcomeOK
}
