package agrenting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// agentGrants are the keygate scopes an agent credential exercises:
// Agrenting keys carry no scopes, so the agent may do all it can.
var agentGrants = []string{"content:read:tasks", "content:write:tasks", "content:read:artifacts", "content:write:artifacts", "credentials:read", "credentials:write"}

type balance struct {
	Available string `json:"available"`
	Escrow    string `json:"escrow"`
	Total     string `json:"total"`
	Currency  string `json:"currency"`
}

func (c *Client) balance(ctx context.Context) (balance, error) {
	res, err := c.do(ctx, call{method: http.MethodGet, path: "/ledger/balance"})
	if err != nil {
		return balance{}, err
	}
	var b balance
	if err := json.Unmarshal(res.env.Data, &b); err != nil {
		return balance{}, fmt.Errorf("agrenting: the balance answer is not an object")
	}
	return b, nil
}

// Describe reports the agent (id, name) and the credential kind, checked
// live: with an agent key by Authenticate (once: it is rate limited), with
// a user token by GET /agents/:agent_id; then the balance (GET
// /ledger/balance, the official client's connection test).
func (c *Client) Describe(ctx context.Context) (provider.Description, error) {
	kind := c.cfg.Kind()
	cred := provider.Credential{Kind: kind.ID, Label: kind.Label, Grants: []string{}, Verified: provider.VerifiedNotChecked}
	if c.cfg.Token.IsZero() {
		c.mu.Lock()
		cred.Name, cred.Source, cred.Masked = EnvAPIKey, c.cfg.APIKeySource, c.apiKey.Masked()
		c.mu.Unlock()
	} else {
		cred.Name, cred.Source, cred.Masked = EnvToken, c.cfg.TokenSource, c.cfg.Token.Masked()
		cred.Detail = "a user token acting as agent " + c.cfg.AgentID + " (X-Agent-ID)"
	}
	d := provider.Description{Provider: Name, Details: map[string]any{
		"credential_kind": kind.Label,
		"api_url":         c.cfg.APIURL,
		"rotate_endpoint": RotateKeyPath,
		"revoke_path":     c.cfg.RevokePath,
		"rate_limit":      "100 requests per minute per agent by default (scaled by reputation); authentication 10 per minute per IP",
	}}
	fail := func(err error) (provider.Description, error) {
		if ctx.Err() != nil {
			return provider.Description{}, fmt.Errorf("agrenting: describing: %w", ctx.Err())
		}
		ue, isUpstream := errors.AsType[*provider.UpstreamError](err)
		d.Reachable = isUpstream && ue.Status != 0 // 0: no answer came
		var rationed *provider.RationedError
		switch {
		case errors.As(err, &rationed):
			// Nothing was sent: keygate keeps the limit for callers with a
			// scope for Agrenting.
			cred.Detail = "not checked now: " + rationed.Error()
		case errors.Is(err, provider.ErrUnauthorized), errors.Is(err, provider.ErrPermission):
			cred.Verified = provider.VerifiedRejected
			d.Problems = append(d.Problems, cred.Name+" was refused: "+ue.Error())
		case errors.Is(err, provider.ErrRateLimited):
			cred.Detail = "not checked now: " + ue.Error()
		default:
			cred.Verified = provider.VerifiedUnreachable
			d.Problems = append(d.Problems, "the live check failed: "+err.Error())
		}
		d.Credentials = []provider.Credential{cred}
		return d, nil
	}
	var agentID, agentName string
	if c.cfg.Token.IsZero() {
		if _, err := c.agentOrAuthenticate(ctx); err != nil {
			return fail(err)
		}
		c.mu.Lock()
		agentID, agentName = c.agentID, c.agentName
		if !c.session.IsZero() {
			d.Details["session"] = "active"
			if !c.sessionExp.IsZero() {
				d.Details["session_expires_at"] = c.sessionExp
			}
		}
		c.mu.Unlock()
	} else {
		res, err := c.do(ctx, call{method: http.MethodGet, path: "/agents/" + url.PathEscape(c.cfg.AgentID)})
		if err != nil {
			return fail(err)
		}
		var a struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		}
		_ = json.Unmarshal(res.env.Data, &a)
		agentID, agentName = c.cfg.AgentID, a.Name
	}
	d.Owner = fmt.Sprintf("agent %s (%s)", agentName, agentID)
	d.Details["agent_id"], d.Details["agent_name"] = agentID, agentName
	b, err := c.balance(ctx)
	if err != nil {
		return fail(err)
	}
	d.Reachable = true
	d.Details["balance"] = b
	cred.Verified = provider.VerifiedOK
	cred.Grants = agentGrants
	d.Credentials = []provider.Credential{cred}
	return d, nil
}

// agentOrAuthenticate makes sure an agent key was checked: Authenticate
// when there is no session yet.
func (c *Client) agentOrAuthenticate(ctx context.Context) (string, error) {
	c.mu.Lock()
	has := !c.session.IsZero() && c.agentName != ""
	id := c.agentID
	c.mu.Unlock()
	if has {
		return id, nil
	}
	if err := c.Authenticate(ctx); err != nil {
		return "", err
	}
	return c.agent(ctx)
}

// CheckAccess answers for each keygate scope, with requests that change
// nothing: content:read by listing one task, content:write from the same
// (agents carry no scopes) plus the balance a task's max_price is escrowed
// from, credentials:read by listing the agent's credentials (an
// undocumented endpoint: a platform without it gets a denial saying so).
// credentials:write is "unknown until tried": creating and rotating cannot
// be tested without changing a key, and the revoke path is undocumented.
// Deletes and admin have no Agrenting counterpart. A 401 is returned as an
// error (ErrUnauthorized), as are 429 and unreachability.
func (c *Client) CheckAccess(ctx context.Context, asked []provider.Operation) ([]provider.Access, error) {
	// Tools ask by the scope they need; this provider answers per scope.
	ops := make([]auth.Scope, len(asked))
	for i, a := range asked {
		ops[i] = a.Scope
	}
	out := make([]provider.Access, len(ops))
	var needTasks, needCreds, needBalance bool
	for i, op := range ops {
		a := provider.Access{Operation: op.String(), Known: true}
		switch {
		case op.Type != "" && op.Type != TypeTasks && op.Type != TypeArtifacts:
			a.Reason, a.Fix = fmt.Sprintf("Agrenting has no content type %q", op.Type), "use tasks or artifacts"
		case op.Action == auth.ContentDelete:
			a.Reason = fmt.Sprintf(errNoDelete, "tasks or artifacts")
		case op.Action == auth.Admin:
			a.Reason = "Agrenting has no counterpart to keygate's admin scope"
		case op.Action == auth.CredentialsWrite:
			a.Known = false
			a.Reason = fmt.Sprintf("creating keys (POST %s) and rotating keygate's own key (POST %s) are documented but cannot be tested without changing a key; revoking by id needs an undocumented list and revoke path (%s)",
				CredentialsPath, RotateKeyPath, c.cfg.RevokePath)
			a.Fix = "try it; if the platform answers ROUTE_NOT_FOUND to a revoke, set " + EnvRevokePath + " or revoke in the Agrenting dashboard"
		case op.Action == auth.CredentialsRead:
			needCreds = true
		case op.Action == auth.ContentWrite:
			needTasks, needBalance = true, true
		default:
			needTasks = true
		}
		out[i] = a
	}
	denied := func(err error) (string, error) {
		if ue, ok := errors.AsType[*provider.UpstreamError](err); ok && errors.Is(err, provider.ErrPermission) {
			return "Agrenting refused: " + ue.Error(), nil
		}
		var fe *provider.FieldError
		if errors.As(err, &fe) {
			return fe.Problem, nil
		}
		return "", fmt.Errorf("agrenting: checking access: %w", err)
	}
	var tasksReason, credsReason, credsFix, balanceNote string
	tasksOK, credsOK := false, false
	if needTasks {
		_, err := c.do(ctx, call{method: http.MethodGet, path: "/tasks", query: url.Values{"limit": {"1"}}})
		if err != nil {
			if tasksReason, err = denied(err); err != nil {
				return nil, err
			}
		} else {
			tasksOK, tasksReason = true, "the agent lists its tasks; Agrenting keys carry no scopes"
		}
	}
	if needBalance && tasksOK {
		if b, err := c.balance(ctx); err == nil {
			balanceNote = fmt.Sprintf("; a task's max_price is escrowed from the available balance (%s %s)", b.Available, b.Currency)
		}
	}
	if needCreds {
		if _, err := c.listCredentials(ctx, "list the agent's keys"); err != nil {
			var fe *provider.FieldError
			if errors.As(err, &fe) {
				credsFix = fe.Fix
			}
			if credsReason, err = denied(err); err != nil {
				return nil, err
			}
		} else {
			credsOK, credsReason = true, "the agent lists its credentials"
		}
	}
	for i, op := range ops {
		if !out[i].Known || out[i].Reason != "" {
			continue
		}
		switch op.Action {
		case auth.CredentialsRead:
			out[i].Allowed, out[i].Reason = credsOK, credsReason
		case auth.ContentWrite:
			out[i].Allowed, out[i].Reason = tasksOK, tasksReason+balanceNote
		default:
			out[i].Allowed, out[i].Reason = tasksOK, tasksReason
		}
		if !out[i].Allowed {
			out[i].Fix = "check the agent's status and the credential in the Agrenting dashboard"
			if op.Action == auth.CredentialsRead && credsFix != "" {
				out[i].Fix = credsFix
			}
		}
	}
	return out, nil
}
