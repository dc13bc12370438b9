package cockpit

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/upstream"
)

// RotateHint is what auth_whoami tells a person about rotating the Cockpit
// key: Cockpit's public API has no key management (docs/providers/cockpit.md A8).
const RotateHint = "Cockpit's API has no key management, so keygate cannot rotate this key. " +
	"Make a new key by hand in the Cockpit admin: custom keys (API-...) under Settings > API, user keys (USR-...) on the user's page under Settings > Users. " +
	"Then put it in COCKPIT_API_KEY in the env file keygate reads: keygate picks it up at once, without a restart " +
	"(a value set in keygate's own environment, e.g. a client config, needs a restart instead); delete the old key in the admin once keygate works with the new one."

// RotateHint says, without asking the API, how to rotate this provider's
// credentials by hand.
func (c *Client) RotateHint() string { return RotateHint }

// probeID is an item id that cannot exist: a no-op update or delete of it
// changes nothing (Cockpit answers 200 and writes nothing,
// docs/providers/cockpit.md W6 and W9).
const probeID = "000000000000000000000000"

// access is one model's answer to one permission.
type access struct {
	allowed, known bool
	reason, fix    string
}

// probe asks Cockpit about one permission on one model with a request
// that changes nothing (K5):
//   - read: GET /content/items/{model}?limit=1&skip=0&fields={"_id":1}
//   - update: POST {"data":{"_id":<an id that does not exist>}} (200, nothing written)
//   - delete: DELETE /content/item/{model}/<an id that does not exist> (200, nothing deleted)
//
// Create cannot be tried without creating an item.
func (c *Client) probe(ctx context.Context, model, perm string) access {
	var r upstream.Request
	switch perm {
	case "read":
		r = c.call(http.MethodGet, modelPath("items", model), url.Values{"limit": {"1"}, "skip": {"0"}, "fields": {`{"_id":1}`}}, nil)
	case "update":
		r = c.call(http.MethodPost, modelPath("item", model), nil, map[string]any{"data": map[string]any{"_id": probeID}})
	case "delete":
		r = c.call(http.MethodDelete, modelPath("item", model, probeID), nil, nil)
	case "create":
		return access{reason: fmt.Sprintf("create on %s: unknown until tried (it cannot be checked without creating an item)", model)}
	}
	resp, err := c.api.Send(ctx, r)
	if err != nil {
		return access{reason: "unknown until tried: " + errDetail(err)}
	}
	switch {
	case resp.OK():
		return access{allowed: true, known: true, reason: fmt.Sprintf("%s on %s: allowed (checked with a request that changes nothing)", perm, model)}
	case authFailed(resp):
		return access{known: true, reason: "Cockpit rejected " + EnvAPIKey + " (412 Authentication failed)",
			fix: "replace " + EnvAPIKey + " (see auth_whoami's rotate_hint)"}
	case resp.Status == http.StatusForbidden:
		return access{known: true, reason: fmt.Sprintf("%s on %s: permission denied for this key's role", perm, model),
			fix: fmt.Sprintf("give the key's role the permission content/%s/%s in the Cockpit admin (Settings > Roles)", model, perm)}
	case modelMissing(resp):
		return access{known: true, reason: fmt.Sprintf("Cockpit has no model %q", model), fix: c.modelNameFix()}
	case resp.Status == http.StatusPreconditionFailed && perm == "delete":
		return access{known: true, reason: fmt.Sprintf("%s is a singleton: its item cannot be deleted", model),
			fix: "change a singleton's item with content_update instead"}
	}
	return access{reason: "unknown until tried: " + c.api.Error(resp).Error()}
}

// modelNameFix is the fix for a model Cockpit does not have: a name to
// check, and the setting that lists the models keygate offers.
func (c *Client) modelNameFix() string {
	now := "not set"
	if len(c.cfg.Models) > 0 {
		now = strings.Join(c.cfg.Models, ", ")
	}
	return fmt.Sprintf("check the model's name in the Cockpit admin (names are case-sensitive), and list the models keygate should offer in %s (now: %s)", EnvModels, now)
}

// perms are the Cockpit permissions keygate's content operations use. An
// update or delete reads the item first (W6, W9), and a create reads the
// model's newest items (K2), so each needs read too.
var perms = map[auth.Action][]string{
	auth.ContentRead:   {"read"},
	auth.ContentWrite:  {"read", "update", "create"},
	auth.ContentDelete: {"read", "delete"},
}

// toolPerms are the permissions each content tool needs (K5): a tool
// check asks about that tool's own action, so content_update does not
// wait on create, which cannot be checked.
var toolPerms = map[string][]string{
	"content_types":  {"read"},
	"content_list":   {"read"},
	"content_get":    {"read"},
	"content_create": {"read", "create"},
	"content_update": {"read", "update"},
	"content_delete": {"read", "delete"},
}

// prober asks each (model, permission) once per call.
type prober struct {
	c     *Client
	ctx   context.Context
	cache map[string]access
}

func (p *prober) get(model, perm string) access {
	k := model + "\x00" + perm
	if a, ok := p.cache[k]; ok {
		return a
	}
	a := p.c.probe(p.ctx, model, perm)
	p.cache[k] = a
	return a
}

// onModel combines a model's answers to several permissions (allOf).
func (p *prober) onModel(model string, perms []string) access {
	each := make([]access, len(perms))
	for i, perm := range perms {
		each[i] = p.get(model, perm)
	}
	return allOf(each)
}

func reasons(as []access) string {
	var out []string
	for _, a := range as {
		if !slices.Contains(out, a.reason) {
			out = append(out, a.reason)
		}
	}
	return strings.Join(out, "; ")
}

func fixes(as []access) string {
	var out []string
	for _, a := range as {
		if a.fix != "" && !slices.Contains(out, a.fix) {
			out = append(out, a.fix)
		}
	}
	return strings.Join(out, "; ")
}

// CheckAccess answers each operation: a tool by what that tool does
// upstream (CheckTools: content_update needs read and update, not create),
// a scope per model (the narrowed type, or every model in COCKPIT_MODELS),
// where every model must allow it. content:write as a scope needs create,
// which cannot be checked, so it stays "unknown until tried" (fail closed).
func (c *Client) CheckAccess(ctx context.Context, asked []provider.Operation) ([]provider.Access, error) {
	p := &prober{c: c, ctx: ctx, cache: map[string]access{}}
	out := make([]provider.Access, 0, len(asked))
	for _, q := range asked {
		if q.Tool != "" {
			a, err := c.CheckTools(ctx, []string{q.Tool})
			if err != nil {
				return nil, err
			}
			out = append(out, a...)
			continue
		}
		op := q.Scope
		a := provider.Access{Operation: op.String()}
		if !c.offline(&a, op.Action) {
			models := c.cfg.Models
			if op.Type != "" {
				models = []string{op.Type}
			}
			if len(models) == 0 {
				a.Reason = "unknown until tried: Cockpit cannot list its models and " + EnvModels + " is not set"
				a.Fix = "set " + EnvModels + " to the models keygate should offer, or ask about one type (" + op.String() + ":<model>)"
			} else {
				var each []access
				for _, m := range models {
					each = append(each, p.onModel(m, perms[op.Action]))
				}
				r := allOf(each)
				a.Allowed, a.Known, a.Reason, a.Fix = r.allowed, r.known, r.reason, r.fix
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// offline answers the operations Cockpit's API cannot be asked about; it
// reports false for content operations.
func (c *Client) offline(a *provider.Access, action auth.Action) bool {
	switch action {
	case auth.ContentRead, auth.ContentWrite, auth.ContentDelete:
		return false
	case auth.CredentialsRead, auth.CredentialsWrite:
		a.Known, a.Reason = true, "Cockpit's API has no key management"
		a.Fix = "manage Cockpit keys in its admin (Settings > API, Settings > Users)"
	case auth.Admin:
		a.Known, a.Reason = true, "keygate does not administer Cockpit through its API"
	default:
		a.Reason = "unknown operation: unknown until tried"
	}
	return true
}

// allOf: any known refusal decides; else any unknown keeps it closed.
func allOf(each []access) access {
	var denied, unknown, allowed []access
	for _, a := range each {
		switch {
		case a.known && !a.allowed:
			denied = append(denied, a)
		case !a.known:
			unknown = append(unknown, a)
		default:
			allowed = append(allowed, a)
		}
	}
	switch {
	case len(denied) > 0:
		return access{known: true, reason: reasons(denied), fix: fixes(denied)}
	case len(unknown) > 0:
		return access{reason: reasons(append(allowed, unknown...))}
	}
	return access{allowed: true, known: true, reason: reasons(allowed)}
}

// CheckTools answers, for each tool, whether this key may do what that
// tool does upstream, on at least one model of COCKPIT_MODELS (as keygate
// allows a tool when the caller holds its scope for some types). Tools
// need not be content tools; an unknown name is "unknown until tried".
func (c *Client) CheckTools(ctx context.Context, tools []string) ([]provider.Access, error) {
	p := &prober{c: c, ctx: ctx, cache: map[string]access{}}
	out := make([]provider.Access, 0, len(tools))
	for _, tool := range tools {
		a := provider.Access{Operation: tool}
		need, isContent := toolPerms[tool]
		switch {
		case !isContent && strings.HasPrefix(tool, "credentials_"):
			c.offline(&a, auth.CredentialsRead)
		case !isContent && strings.HasPrefix(tool, "auth_"):
			a.Allowed, a.Known, a.Reason = true, true, "keygate answers it without Cockpit"
		case !isContent:
			a.Reason = fmt.Sprintf("unknown tool %q: unknown until tried", tool)
		case len(c.cfg.Models) == 0:
			a.Reason = "unknown until tried: Cockpit cannot list its models and " + EnvModels + " is not set"
			a.Fix = "set " + EnvModels + " to the models keygate should offer"
		default:
			r := someOf(p, c.cfg.Models, need)
			a.Allowed, a.Known, a.Reason, a.Fix = r.allowed, r.known, r.reason, r.fix
		}
		out = append(out, a)
	}
	return out, nil
}

// someOf allows when at least one model allows every permission, and says
// which models do not.
func someOf(p *prober, models, need []string) access {
	var yes, no, unsure []string
	var refusals, unknowns []access
	for _, m := range models {
		switch a := p.onModel(m, need); {
		case a.allowed:
			yes = append(yes, m)
		case a.known:
			no = append(no, m)
			refusals = append(refusals, a)
		default:
			unsure = append(unsure, m)
			unknowns = append(unknowns, a)
		}
	}
	switch {
	case len(yes) > 0:
		r := access{allowed: true, known: true, reason: fmt.Sprintf("%s on %s: allowed (checked with requests that change nothing)", strings.Join(need, " and "), strings.Join(yes, ", "))}
		if len(no)+len(unsure) > 0 {
			r.reason += "; not on " + strings.Join(append(no, unsure...), ", ") + ": " + reasons(append(refusals, unknowns...))
		}
		return r
	case len(unsure) > 0:
		return access{reason: reasons(append(refusals, unknowns...))}
	}
	return access{known: true, reason: reasons(refusals), fix: fixes(refusals)}
}

// Describe reports the key's kind (from its prefix: Cockpit reveals no
// identity), whether the site is reachable, and what reads prove.
func (c *Client) Describe(ctx context.Context) (provider.Description, error) {
	key := c.cfg.APIKey.Secret.Reveal()
	kind, label := "cockpit_api_key", "Cockpit custom API key"
	keyKind := "custom key (API-): its rights are those of the role set on the key"
	if strings.HasPrefix(key, "USR-") {
		kind, label = "cockpit_user_key", "Cockpit user API key"
		keyKind = "user key (USR-): it acts as the user it belongs to, with that user's role"
	}
	cr := provider.Credential{Name: EnvAPIKey, Kind: kind, Label: label, Masked: c.cfg.APIKey.Secret.Masked(),
		Source: string(c.cfg.APIKey.Source), Grants: []string{}, Verified: provider.VerifiedNotChecked}
	d := provider.Description{Provider: Name, RotateHint: RotateHint, Details: map[string]any{
		"key_kind":    keyKind,
		"identity":    "Cockpit's API does not reveal who owns a key or its role; keygate can only infer permissions by trying reads",
		"reads_prove": "a successful read proves the key is valid and its role may read that model; it proves nothing about writes",
		"site":        c.cfg.URL,
	}}

	// Reachability: the healthcheck needs no key (and ignores a bad one).
	resp, err := c.api.Send(ctx, c.noKey(http.MethodGet, "/system/healthcheck"))
	switch {
	case err != nil:
		d.Problems = append(d.Problems, "Cockpit is unreachable: "+errDetail(err))
		cr.Verified, cr.Detail = provider.VerifiedUnreachable, "the site did not answer"
	case resp.Status == http.StatusOK:
		d.Reachable = true
		var h struct {
			Status string `json:"status"`
		}
		if json.Unmarshal(resp.Body, &h) != nil || h.Status != "ok" {
			d.Problems = append(d.Problems, "/api/system/healthcheck did not answer {\"status\":\"ok\"}: check "+EnvURL)
		}
		d.Details["health"] = "ok"
	default:
		d.Reachable = resp.Status < 500 || resp.Status == http.StatusInternalServerError
		d.Details["health"] = fmt.Sprintf("failing (%d)", resp.Status)
		d.Problems = append(d.Problems, fmt.Sprintf("Cockpit's healthcheck answered %d: %s", resp.Status, c.message(resp)))
	}

	if d.Reachable {
		if len(c.cfg.Models) == 0 {
			d.Problems = append(d.Problems, EnvModels+" is not set: Cockpit's API cannot list models, so keygate offers none")
			cr.Verified, cr.Detail = c.verifyKeyOnly(ctx, "the key authenticated; which models it may read is not known without "+EnvModels)
		} else {
			models := map[string]string{}
			rejected := false
			for _, m := range c.cfg.Models {
				a := c.probe(ctx, m, "read")
				switch {
				case a.allowed:
					models[m] = "readable"
					cr.Grants = append(cr.Grants, string(auth.ContentRead)+":"+m)
				case a.known && strings.Contains(a.reason, "rejected"):
					rejected = true
					models[m] = "key rejected"
				case a.known && strings.Contains(a.reason, "no model"):
					models[m] = "no such model"
					d.Problems = append(d.Problems, fmt.Sprintf("%s names %q, which Cockpit does not have", EnvModels, m))
				case a.known:
					models[m] = "read denied"
				default:
					models[m] = "unknown"
				}
			}
			d.Details["models"] = models
			switch {
			case rejected:
				cr.Verified, cr.Detail = provider.VerifiedRejected, "Cockpit answered 412 Authentication failed: the key is wrong, deleted or mistyped"
				d.Problems = append(d.Problems, EnvAPIKey+" was rejected by Cockpit: replace it (see rotate_hint)")
			case len(cr.Grants) > 0:
				cr.Verified, cr.Detail = provider.VerifiedOK, "reads worked on "+strings.Join(grantModels(cr.Grants), ", ")+"; write permissions are checked by auth_check_scopes"
			case slices.Contains(slices.Collect(maps.Values(models)), "read denied"):
				// A 403 comes only after the key authenticated (A3).
				list := strings.Join(c.cfg.Models, ", ")
				cr.Verified, cr.Detail = provider.VerifiedOK, "Cockpit accepted the key, but its role may read none of "+EnvModels+" ("+list+")"
				d.Problems = append(d.Problems, "the key's role may read none of "+EnvModels+" ("+list+"): give it content/<model>/read in the Cockpit admin (Settings > Roles), or check "+EnvModels)
			default:
				cr.Verified, cr.Detail = c.verifyKeyOnly(ctx, "the key authenticated, but none of "+EnvModels+" ("+strings.Join(c.cfg.Models, ", ")+") could be read")
			}
		}
	}
	d.Credentials = []provider.Credential{cr}
	return d, nil
}

func grantModels(grants []string) []string {
	out := make([]string, len(grants))
	for i, g := range grants {
		out[i] = strings.TrimPrefix(g, string(auth.ContentRead)+":")
	}
	return out
}

// verifyKeyOnly checks the key without naming a model: /content/items
// with a models parameter leaves out models that do not exist or that the
// key may not read (R8), so a 200 means the key authenticated; okDetail
// says what that proves here.
func (c *Client) verifyKeyOnly(ctx context.Context, okDetail string) (string, string) {
	resp, err := c.api.Send(ctx, c.call(http.MethodGet, "/content/items", url.Values{"models": {`{"keygate_probe":{"model":"keygate_probe","limit":1}}`}}, nil))
	switch {
	case err != nil:
		return provider.VerifiedUnreachable, errDetail(err)
	case authFailed(resp):
		return provider.VerifiedRejected, "Cockpit answered 412 Authentication failed: the key is wrong, deleted or mistyped"
	case resp.OK():
		return provider.VerifiedOK, okDetail
	case resp.Status == http.StatusForbidden:
		return provider.VerifiedOK, "the key authenticated but its role may read nothing checked"
	}
	return provider.VerifiedNotChecked, c.api.Error(resp).Error()
}
