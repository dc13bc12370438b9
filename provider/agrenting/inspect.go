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
	out := make([]provider.Access, len(asked))
	var need liveChecks
	for i, a := range asked {
		out[i] = c.offlineAccess(a.Scope, &need)
	}
	live, err := c.checkLive(ctx, need)
	if err != nil {
		return nil, err
	}
	for i, a := range asked {
		if out[i].Known && out[i].Reason == "" {
			live.answer(&out[i], a.Scope.Action)
		}
	}
	return out, nil
}

// liveChecks are the requests CheckAccess makes.
type liveChecks struct{ tasks, creds, balance bool }

// offlineAccess answers what needs no request, and otherwise records in
// need what will answer op (its Reason is left empty).
func (c *Client) offlineAccess(op auth.Scope, need *liveChecks) provider.Access {
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
		need.creds = true
	case op.Action == auth.ContentWrite:
		need.tasks, need.balance = true, true
	default:
		need.tasks = true
	}
	return a
}

// liveAnswers are what the requests of CheckAccess found.
type liveAnswers struct {
	tasksOK, credsOK                                bool
	tasksReason, credsReason, credsFix, balanceNote string
}

// checkLive makes the requests need asks for: list one task, read the
// balance (when the task list works), list the credentials. A refusal is
// an answer; anything else (401, 429, unreachable) is an error.
func (c *Client) checkLive(ctx context.Context, need liveChecks) (liveAnswers, error) {
	var l liveAnswers
	var err error
	if need.tasks {
		_, terr := c.do(ctx, call{method: http.MethodGet, path: "/tasks", query: url.Values{"limit": {"1"}}})
		if l.tasksOK, l.tasksReason, err = accessOutcome(terr, "the agent lists its tasks; Agrenting keys carry no scopes"); err != nil {
			return l, err
		}
	}
	if need.balance && l.tasksOK {
		if b, err := c.balance(ctx); err == nil {
			l.balanceNote = fmt.Sprintf("; a task's max_price is escrowed from the available balance (%s %s)", b.Available, b.Currency)
		}
	}
	if need.creds {
		_, cerr := c.listCredentials(ctx, "list the agent's keys")
		if fe, ok := errors.AsType[*provider.FieldError](cerr); ok {
			l.credsFix = fe.Fix
		}
		if l.credsOK, l.credsReason, err = accessOutcome(cerr, "the agent lists its credentials"); err != nil {
			return l, err
		}
	}
	return l, nil
}

// accessOutcome reads a check's error: nil allows, a refusal (a
// permission error, or a FieldError saying the platform lacks the
// endpoint) denies, anything else is returned.
func accessOutcome(err error, okReason string) (bool, string, error) {
	if err == nil {
		return true, okReason, nil
	}
	if ue, ok := errors.AsType[*provider.UpstreamError](err); ok && errors.Is(err, provider.ErrPermission) {
		return false, "Agrenting refused: " + ue.Error(), nil
	}
	if fe, ok := errors.AsType[*provider.FieldError](err); ok {
		return false, fe.Problem, nil
	}
	return false, "", fmt.Errorf("agrenting: checking access: %w", err)
}

// answer fills a's verdict for action from what the checks found.
func (l liveAnswers) answer(a *provider.Access, action auth.Action) {
	switch action {
	case auth.CredentialsRead:
		a.Allowed, a.Reason = l.credsOK, l.credsReason
	case auth.ContentWrite:
		a.Allowed, a.Reason = l.tasksOK, l.tasksReason+l.balanceNote
	default:
		a.Allowed, a.Reason = l.tasksOK, l.tasksReason
	}
	if a.Allowed {
		return
	}
	a.Fix = "check the agent's status and the credential in the Agrenting dashboard"
	if action == auth.CredentialsRead && l.credsFix != "" {
		a.Fix = l.credsFix
	}
}
