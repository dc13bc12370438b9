package cockpit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// RotateHint is what auth_whoami tells a person about rotating the Cockpit
// key: Cockpit's public API has no key management (providers.md 2.2).
const RotateHint = "Cockpit's API has no key management, so keygate cannot rotate this key. " +
	"Make a new key by hand in the Cockpit admin: custom keys (API-...) under Settings > API, user keys (USR-...) on the user's page under Settings > Users. " +
	"Then put it in COCKPIT_API_KEY in the env file keygate reads: keygate picks it up at once, without a restart " +
	"(a value set in keygate's own environment, e.g. a client config, needs a restart instead); delete the old key in the admin once keygate works with the new one."

// RotateHint says, without asking the API, how to rotate this provider's
// credentials by hand.
func (c *Client) RotateHint() string { return RotateHint }

// probeID is an item id that cannot exist: a no-op update or delete of it
// changes nothing (Cockpit answers 200 and writes nothing, providers.md 6).
const probeID = "000000000000000000000000"

// access is one model's answer to one permission.
type access struct {
	allowed, known bool
	reason         string
}

// probe asks Cockpit about one permission on one model with a request
// that changes nothing:
//   - read: GET /content/items/{model}?limit=1&skip=0&fields={"_id":1}
//   - update: POST {"data":{"_id":<an id that does not exist>}} (200, nothing written)
//   - delete: DELETE /content/item/{model}/<an id that does not exist> (200, nothing deleted)
//
// Create cannot be tried without creating an item.
func (c *Client) probe(ctx context.Context, model, perm string) access {
	var r request
	switch perm {
	case "read":
		r = request{method: http.MethodGet, path: modelPath("items", model), query: url.Values{"limit": {"1"}, "skip": {"0"}, "fields": {`{"_id":1}`}}}
	case "update":
		r = request{method: http.MethodPost, path: modelPath("item", model), body: map[string]any{"data": map[string]any{"_id": probeID}}}
	case "delete":
		r = request{method: http.MethodDelete, path: modelPath("item", model, probeID)}
	}
	resp, err := c.send(ctx, r)
	if err != nil {
		return access{reason: "unknown until tried: " + errDetail(err)}
	}
	switch {
	case ok2xx(resp):
		return access{allowed: true, known: true, reason: fmt.Sprintf("%s on %s: allowed (checked with a request that changes nothing)", perm, model)}
	case authFailed(resp):
		return access{known: true, reason: "Cockpit rejected " + EnvAPIKey + " (412 Authentication failed)"}
	case resp.Status == http.StatusForbidden:
		return access{known: true, reason: fmt.Sprintf("%s on %s: permission denied for this key's role", perm, model)}
	case modelMissing(resp):
		return access{known: true, reason: fmt.Sprintf("Cockpit has no model %q", model)}
	case resp.Status == http.StatusPreconditionFailed && perm == "delete":
		return access{known: true, reason: fmt.Sprintf("%s is a singleton: its item cannot be deleted", model)}
	}
	return access{reason: "unknown until tried: " + c.upstreamError(resp).Error()}
}

// CheckAccess answers each operation per model (the narrowed type, or
// every model in COCKPIT_MODELS). content:write needs both create and
// update: update is checked with a no-op, create cannot be, so a write the
// key may update is still "unknown until tried" (fail closed).
func (c *Client) CheckAccess(ctx context.Context, ops []auth.Scope) ([]provider.Access, error) {
	cache := map[string]access{}
	get := func(model, perm string) access {
		k := model + "\x00" + perm
		if a, ok := cache[k]; ok {
			return a
		}
		a := c.probe(ctx, model, perm)
		cache[k] = a
		return a
	}
	out := make([]provider.Access, 0, len(ops))
	for _, op := range ops {
		a := provider.Access{Operation: op.String()}
		var perms []string
		switch op.Action {
		case auth.ContentRead:
			perms = []string{"read"}
		case auth.ContentWrite:
			perms = []string{"update", "create"}
		case auth.ContentDelete:
			perms = []string{"delete"}
		case auth.CredentialsRead, auth.CredentialsWrite:
			a.Known, a.Reason = true, "Cockpit's API has no key management"
			a.Fix = "manage Cockpit keys in its admin (Settings > API, Settings > Users)"
			out = append(out, a)
			continue
		case auth.Admin:
			a.Known, a.Reason = true, "keygate does not administer Cockpit through its API"
			out = append(out, a)
			continue
		default:
			a.Reason = "unknown operation: unknown until tried"
			out = append(out, a)
			continue
		}
		models := c.cfg.Models
		if op.Type != "" {
			models = []string{op.Type}
		}
		if len(models) == 0 {
			a.Reason = "unknown until tried: Cockpit cannot list its models and " + EnvModels + " is not set"
			a.Fix = "set " + EnvModels + " to the models keygate should offer, or ask about one type (" + op.String() + ":<model>)"
			out = append(out, a)
			continue
		}
		// Any known refusal decides; else any unknown keeps it closed.
		var denied, unknown, reasons []string
		for _, m := range models {
			for _, perm := range perms {
				r := access{reason: fmt.Sprintf("create on %s: unknown until tried (it cannot be checked without creating an item)", m)}
				if perm != "create" {
					r = get(m, perm)
				}
				switch {
				case r.known && !r.allowed:
					denied = append(denied, r.reason)
				case !r.known:
					unknown = append(unknown, r.reason)
				default:
					reasons = append(reasons, r.reason)
				}
			}
		}
		switch {
		case len(denied) > 0:
			a.Known, a.Reason = true, strings.Join(denied, "; ")
			if strings.Contains(a.Reason, "rejected") {
				a.Fix = "replace " + EnvAPIKey + " (see auth_whoami's rotate_hint)"
			} else {
				a.Fix = "give the key's role the permission in the Cockpit admin (Settings > Roles)"
			}
		case len(unknown) > 0:
			a.Reason = strings.Join(append(reasons, unknown...), "; ")
		default:
			a.Allowed, a.Known, a.Reason = true, true, strings.Join(reasons, "; ")
		}
		out = append(out, a)
	}
	return out, nil
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
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/system/healthcheck", noKey: true})
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
			cr.Verified, cr.Detail = c.verifyKeyOnly(ctx)
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
			default:
				cr.Verified, cr.Detail = c.verifyKeyOnly(ctx)
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
// with a models parameter leaves out what the key may not read, so a 200
// means the key authenticated. Unknown: whether a model that does not
// exist is left out or refused; either way a 412 "Authentication failed"
// is the only answer read as a rejection.
func (c *Client) verifyKeyOnly(ctx context.Context) (string, string) {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/content/items",
		query: url.Values{"models": {`{"keygate_probe":{"model":"keygate_probe","limit":1}}`}}})
	switch {
	case err != nil:
		return provider.VerifiedUnreachable, errDetail(err)
	case authFailed(resp):
		return provider.VerifiedRejected, "Cockpit answered 412 Authentication failed: the key is wrong, deleted or mistyped"
	case ok2xx(resp):
		return provider.VerifiedOK, "the key authenticated; which models it may read is not known without " + EnvModels
	case resp.Status == http.StatusForbidden:
		return provider.VerifiedOK, "the key authenticated but its role may read nothing checked"
	}
	return provider.VerifiedNotChecked, c.upstreamError(resp).Error()
}
