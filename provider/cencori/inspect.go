package cencori

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// RotateHint is what auth_whoami tells a person: Cencori has no public
// key-management API, so keygate cannot rotate its key itself.
const RotateHint = "Cencori has no public API for keys. Create a new secret key (csk_) in the Cencori dashboard under the project's API keys, " +
	"put it in CENCORI_API_KEY (the environment or keygate's env file) and restart keygate, which reads the key at start-up; " +
	"then revoke the old key in the dashboard."

// RotateHint says, without asking the API, how to rotate this provider's
// credentials by hand.
func (c *Client) RotateHint() string { return RotateHint }

const publishableProblem = "a publishable key (cpk_) only works from a browser on one of the key's allowed domains; Cencori refuses it " +
	"for server-side use such as keygate's (403 domain_not_allowed)"

const publishableFix = "create a secret key (csk_) in the Cencori dashboard and put it in CENCORI_API_KEY"

const agentNote = "an agent-scoped key (cake_) acts as the one agent it is bound to; Cencori's AI chat refuses it once that agent is disabled or deleted, " +
	"but the memory and metrics endpoints keygate uses do not check the agent"

// memoryGrants are the keygate scopes a working server-side key exercises:
// Cencori keys carry no per-action permissions.
var memoryGrants = []string{"content:read:" + TypeMemories, "content:write:" + TypeMemories, "content:delete:" + TypeMemories}

// metricsAnswer is the part of /v1/metrics whoami reports.
type metricsAnswer struct {
	Period   string         `json:"period"`
	Requests map[string]any `json:"requests"`
	Cost     map[string]any `json:"cost"`
	Tokens   map[string]any `json:"tokens"`
}

// Describe reports the key's kind and environment from its prefix, and
// checks it live with GET /v1/metrics?period=24h, whose request and cost
// figures go into Details. A publishable key is not sent: Cencori refuses
// it server-side, and saying so needs no request.
func (c *Client) Describe(ctx context.Context) (provider.Description, error) {
	kt := c.cfg.KeyType()
	d := provider.Description{
		Provider:   Name,
		Owner:      "the Cencori project the key belongs to",
		RotateHint: RotateHint,
		Details: map[string]any{
			"key_type":    kt,
			"environment": c.cfg.Environment(),
			"api_url":     c.cfg.APIURL,
			"gateway_url": c.cfg.GatewayURL,
			"rate_limit":  fmt.Sprintf("%d requests per minute per project", rateLimit),
			"memory_user": c.cfg.MemoryUserID,
		},
	}
	if c.cfg.MemoryNamespace != "" {
		d.Details["memory_namespace"] = c.cfg.MemoryNamespace
	}
	cred := provider.Credential{Name: EnvAPIKey, Kind: c.cfg.Kind.ID, Label: c.cfg.Kind.Label, Masked: c.cfg.APIKey.Masked(),
		Source: c.cfg.APIKeySource, Grants: []string{}, Verified: provider.VerifiedNotChecked}
	if kt == KeyTypeAgent {
		d.Owner = "an agent of a Cencori project (agent-scoped key)"
		cred.Detail = agentNote
	}
	if kt == KeyTypePublishable {
		cred.Detail = "not checked: " + publishableProblem
		d.Problems = append(d.Problems, publishableProblem+"; "+publishableFix)
		d.Credentials = []provider.Credential{cred}
		return d, nil
	}
	resp, err := c.api.Do(ctx, c.bearer(http.MethodGet, "/v1/metrics", url.Values{"period": {"24h"}}))
	if ctxErr := ctx.Err(); ctxErr != nil && err != nil {
		return provider.Description{}, fmt.Errorf("cencori: describing: %w", ctxErr)
	}
	ue, isUpstream := errors.AsType[*provider.UpstreamError](err)
	var rationed *provider.RationedError
	switch {
	case errors.As(err, &rationed):
		// Nothing was sent: keygate keeps Cencori's limit for callers
		// with a scope for it.
		cred.Detail = "not checked now: " + rationed.Error()
	case err == nil:
		d.Reachable = true
		cred.Verified = provider.VerifiedOK
		cred.Grants = memoryGrants
		var m metricsAnswer
		if derr := c.decode(resp, "metrics", false, &m); derr != nil {
			d.Problems = append(d.Problems, "the metrics answer could not be read")
			break
		}
		d.Details["requests_24h"] = m.Requests
		d.Details["cost_24h"] = m.Cost
		if v, ok := m.Cost["total_usd"]; ok {
			d.Details["cost_usd_24h"] = v
		}
		if v, ok := m.Tokens["total"]; ok {
			d.Details["tokens_24h"] = v
		}
		if !c.describeMemory(ctx, &d) {
			cred.Grants = []string{}
		}
	case isUpstream && ue.Status != 0:
		d.Reachable = true
		switch {
		case errors.Is(err, provider.ErrUnauthorized), errors.Is(err, provider.ErrPermission):
			cred.Verified = provider.VerifiedRejected
			cred.Detail = ue.Error()
			d.Problems = append(d.Problems, "CENCORI_API_KEY was refused: "+ue.Error()+"; "+RotateHint)
		case errors.Is(err, provider.ErrRateLimited):
			cred.Detail = "not checked now: " + ue.Error()
		default:
			cred.Verified = provider.VerifiedUnreachable
			cred.Detail = ue.Error()
			d.Problems = append(d.Problems, "the live check failed: "+ue.Error())
		}
	default:
		cred.Verified = provider.VerifiedUnreachable
		cred.Detail = err.Error()
		d.Problems = append(d.Problems, "Cencori could not be reached: "+err.Error())
	}
	d.Credentials = []provider.Credential{cred}
	return d, nil
}

// describeMemory reports in d whether this deployment serves the memory
// API keygate's content tools need, and returns false when it does not.
// Production Cencori gates it before checking the key; whoami says so
// rather than leave it to the first content call.
func (c *Client) describeMemory(ctx context.Context, d *provider.Description) bool {
	err := c.probeMemory(ctx)
	var mu *memoryUnavailable
	switch {
	case err == nil:
		d.Details["memory"] = "available"
	case errors.As(err, &mu):
		d.Details["memory"] = "not available: " + mu.reason
		d.Problems = append(d.Problems, err.Error())
		return false
	default:
		d.Details["memory"] = "not checked: " + err.Error()
	}
	return true
}

// CheckAccess answers for each keygate scope. Offline: a publishable key is
// refused for server-side use; credentials and admin scopes have no Cencori
// counterpart; only the memories type exists. Live, once, for content
// scopes: GET /v1/memory/list?limit=1. Cencori keys carry no per-action
// permissions, so a key that may list memories may also write and delete
// them. A 401 is returned as an error (ErrUnauthorized: the fix is a new
// key), as are 429 and unreachability (nothing is known); a 403 is a known
// "no" for every content scope.
func (c *Client) CheckAccess(ctx context.Context, asked []provider.Operation) ([]provider.Access, error) {
	// Tools ask by the scope they need; this provider answers per scope.
	ops := make([]auth.Scope, len(asked))
	for i, a := range asked {
		ops[i] = a.Scope
	}
	out := make([]provider.Access, len(ops))
	var live []int
	kt := c.cfg.KeyType()
	for i, op := range ops {
		a := provider.Access{Operation: op.String(), Known: true}
		switch {
		case kt == KeyTypePublishable:
			a.Reason, a.Fix = publishableProblem, publishableFix
		case op.Action == auth.CredentialsRead || op.Action == auth.CredentialsWrite:
			a.Reason = "Cencori has no public key-management API: keys are created and revoked in the dashboard"
			a.Fix = "manage Cencori keys in its dashboard; see auth_whoami's rotate_hint"
		case op.Action == auth.Admin:
			a.Reason = "Cencori keys have no administrative counterpart to keygate's admin scope"
		case op.Type != "" && op.Type != TypeMemories:
			a.Reason = fmt.Sprintf("Cencori has no content type %q; its only type is %s", op.Type, TypeMemories)
			a.Fix = "use type " + TypeMemories
		default:
			live = append(live, i)
		}
		out[i] = a
	}
	if len(live) == 0 {
		return out, nil
	}
	err := c.probeMemory(ctx)
	var reason, fix string
	allowed := false
	var mu *memoryUnavailable
	switch ue, isUpstream := errors.AsType[*provider.UpstreamError](err); {
	case err == nil:
		allowed = true
		reason = "the key lists the project's memories; Cencori keys carry no per-action permissions, so it may also write and delete them"
		if kt == KeyTypeAgent {
			reason += "; " + agentNote
		}
	case errors.As(err, &mu):
		reason, fix = "memory is not available on this Cencori deployment: "+mu.reason, mu.fix
	case isUpstream && errors.Is(ue, provider.ErrPermission):
		reason = "Cencori refused: " + ue.Error()
		fix = "check the key's project, network policy and billing in the Cencori dashboard"
	default:
		return nil, fmt.Errorf("cencori: checking access: %w", err)
	}
	for _, i := range live {
		out[i].Allowed, out[i].Reason, out[i].Fix = allowed, reason, fix
	}
	return out, nil
}
