package agrenting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// Key management. docs/providers/agrenting.md, "Keys": creating a key (POST
// /agents/:id/credentials) and rotating one's own (POST /auth/rotate-key,
// rotation.go) are documented; listing keys and the revoke path are not.
// What rests on the undocumented parts (credentials_list, revoking by id)
// says so when the platform answers otherwise, and keygate's own key is
// told by its secret, never by a field of the list.

// listedKey is one entry of the (undocumented) credential list, as it came.
type listedKey map[string]any

func (l listedKey) str(k string) string { s, _ := l[k].(string); return s }

func (l listedKey) time(k string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, l.str(k))
	return t
}

func (l listedKey) id() string { return l.str("id") }

// revoked reads revoked_at or a status of "revoked", when the entry has
// them (the fake's fields; unknown on the platform).
func (l listedKey) revoked() bool {
	return !l.time("revoked_at").IsZero() || l.str("status") == "revoked"
}

func (l listedKey) key() provider.Key {
	masked := "****"
	if last := l.str("last_four"); last != "" {
		masked = l.str("key_prefix") + "…" + last
	}
	k := provider.Key{ID: l.id(), Name: l.str("name"), Masked: masked, Scopes: []string{}, CreatedAt: l.time("created_at"),
		LastUsedAt: l.time("last_used_at"), RevokedAt: l.time("revoked_at"), ExpiresAt: l.time("expires_at"), RotatedTo: l.str("rotated_to")}
	return k
}

// CurrentKey is the agent key the client uses now ("" with a user token).
func (c *Client) CurrentKey() auth.Secret {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apiKey
}

// OwnKeyID names the agent key the client uses, by its secret (keyID): no
// request is made, and none would help, for Agrenting documents no way to
// learn a key's id from the key. "" with a user token.
func (c *Client) OwnKeyID(context.Context) (string, error) {
	current := c.CurrentKey()
	if current.IsZero() {
		return "", nil
	}
	return keyID(current.Reveal()), nil
}

// UseKey switches the client to agent key next, as the rotation engine
// does once next is safely stored. The old key stays redacted.
func (c *Client) UseKey(next auth.Secret) {
	c.redact.Add(next.Reveal())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apiKey.Reveal() != next.Reveal() {
		c.retired = append(c.retired, c.apiKey.Reveal())
		c.apiKey = next
	}
}

// errNoList says that the platform lists no keys, for an operation that
// needs the list.
func errNoList(ue *provider.UpstreamError, op, fix string) error {
	return &provider.FieldError{Field: "provider",
		Problem: fmt.Sprintf("keygate cannot %s: Agrenting documents no endpoint that lists an agent's keys, and %s %s answered %d %s",
			op, http.MethodGet, CredentialsPath, ue.Status, ue.Code),
		Fix: fix}
}

// listFix is the fix for anything that needs the list.
const listFix = `see and revoke the agent's keys in the Agrenting dashboard; keygate can still rotate its own key (credentials_rotate with credential "current")`

// listCredentials lists the agent's credentials (GET
// /agents/:agent_id/credentials, undocumented). A platform that does not
// serve it gets a FieldError naming the operation op and the fix.
func (c *Client) listCredentials(ctx context.Context, op string) ([]listedKey, error) {
	agent, err := c.agent(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.do(ctx, call{method: http.MethodGet, path: expandPath(CredentialsPath, agent, "")})
	if ue, ok := errors.AsType[*provider.UpstreamError](err); ok && (ue.Status == http.StatusNotFound || ue.Status == http.StatusMethodNotAllowed) {
		return nil, errNoList(ue, op, listFix)
	}
	if err != nil {
		return nil, err
	}
	var list []listedKey
	if err := json.Unmarshal(res.env.Data, &list); err != nil {
		return nil, &provider.FieldError{Field: "provider",
			Problem: fmt.Sprintf("keygate cannot %s: GET %s (an endpoint Agrenting does not document) answered something that is not a list of keys", op, CredentialsPath),
			Fix:     listFix}
	}
	return list, nil
}

// ListKeys lists the agent's credentials, revoked ones included, masked.
// The endpoint is not documented: a platform that does not serve it gets
// an error saying so and where to look instead.
func (c *Client) ListKeys(ctx context.Context) ([]provider.Key, error) {
	list, err := c.listCredentials(ctx, "list the agent's keys")
	if err != nil {
		return nil, err
	}
	out := make([]provider.Key, 0, len(list))
	for _, l := range list {
		if l.id() != "" {
			out = append(out, l.key())
		}
	}
	return out, nil
}

// CreateKey issues a new key for the agent (POST /agents/:agent_id/
// credentials, documented; its body and answer are not). keygate sends the
// name, finds the key in the answer whatever its shape (findIssued), and
// names it by the platform's id when the answer gives one beside it, else
// by keyID. A lost answer is retried with the same idempotency key, and the
// platform replays the same key.
func (c *Client) CreateKey(ctx context.Context, name string) (provider.IssuedKey, error) {
	agent, err := c.agent(ctx)
	if err != nil {
		return provider.IssuedKey{}, err
	}
	res, err := c.do(ctx, call{method: http.MethodPost, path: expandPath(CredentialsPath, agent, ""), body: map[string]any{"name": name}, idemKey: newIdempotencyKey()})
	if err != nil && !(res.status >= 200 && res.status <= 299) {
		return provider.IssuedKey{}, c.writeError(err, res.env, map[string]string{"name": "name"})
	}
	f, ferr := findIssued(res.raw, c.CurrentKey().Reveal())
	if ferr != nil {
		return provider.IssuedKey{}, fmt.Errorf("agrenting: %w: the platform answered %d but keygate found no key in the answer (%s); see the agent's keys in the Agrenting dashboard",
			provider.ErrOutcomeUnknown, res.status, c.clean(ferr.Error()))
	}
	secret := auth.NewSecret(f.secret)
	c.remember(secret)
	id := f.id
	if id == "" {
		id = keyID(f.secret)
	}
	if f.name != "" {
		name = f.name
	}
	return provider.IssuedKey{Key: provider.Key{ID: id, Name: c.clean(name), Masked: auth.Mask(f.secret), Scopes: []string{}, CreatedAt: c.now().UTC()},
		Secret: secret}, nil
}

// RevokeKey revokes key id, a platform id from the list or a keyID name.
// It needs the (undocumented) list, to find the key and to tell keygate's
// own key, and the undocumented revoke path (AGRENTING_REVOKE_PATH). It
// refuses to revoke the key keygate runs on, which would cut keygate off:
// by its name (keyID of the client's key), and in the list by the parts of
// its secret an entry shows (showsSecret). When no entry shows anything of
// keygate's key, keygate cannot tell which one it is and refuses to revoke
// any, saying why. A key already revoked is reported without a request.
func (c *Client) RevokeKey(ctx context.Context, id string) (provider.Key, bool, error) {
	own := c.CurrentKey()
	if !own.IsZero() && id == keyID(own.Reveal()) {
		return provider.Key{}, false, errOwnKey(id)
	}
	var secret auth.Secret
	if isKeyID(id) {
		s, ok := c.knownSecret(id)
		if !ok {
			return provider.Key{}, false, &provider.NotFoundError{What: "key", Name: id}
		}
		secret = s
	} else if !idPattern().MatchString(id) {
		return provider.Key{}, false, &provider.NotFoundError{What: "key", Name: id}
	}
	list, err := c.listCredentials(ctx, "revoke a key by id")
	if err != nil {
		return provider.Key{}, false, err
	}
	target, err := pick(list, id, secret)
	if err != nil {
		return provider.Key{}, false, err
	}
	if target.revoked() {
		return target.key(), true, nil
	}
	if !own.IsZero() {
		var mine []string
		for _, l := range list {
			if !l.revoked() && showsSecret(l, own.Reveal()) {
				mine = append(mine, l.id())
			}
		}
		switch {
		case len(mine) == 0:
			return provider.Key{}, false, &provider.FieldError{Field: "credential",
				Problem: fmt.Sprintf("keygate cannot tell whether key %s is the one it runs on: no key Agrenting lists shows any part of keygate's key, and revoking that one would cut keygate off", target.id()),
				Fix:     "revoke it in the Agrenting dashboard, where each key's start is shown"}
		case contains(mine, target.id()):
			return provider.Key{}, false, errOwnKey(target.id())
		}
	}
	agent, err := c.agent(ctx)
	if err != nil {
		return provider.Key{}, false, err
	}
	k, err := c.revoke(ctx, agent, target)
	return k, false, err
}

func errOwnKey(id string) error {
	return &provider.FieldError{Field: "credential", Problem: fmt.Sprintf("key %s is the one keygate itself uses for Agrenting; revoking it would cut keygate off", id),
		Fix: `rotate it instead (credential "current"), or configure another key in ` + EnvAPIKey + " first"}
}

// pick finds key id in the list: by the platform's id, or, for a keyID
// name, the one entry that shows part of secret.
func pick(list []listedKey, id string, secret auth.Secret) (listedKey, error) {
	if secret.IsZero() {
		for _, l := range list {
			if l.id() == id {
				return l, nil
			}
		}
		return nil, &provider.NotFoundError{What: "key", Name: id}
	}
	var hits []listedKey
	for _, l := range list {
		if l.id() != "" && showsSecret(l, secret.Reveal()) {
			hits = append(hits, l)
		}
	}
	if len(hits) != 1 {
		return nil, &provider.FieldError{Field: "credential",
			Problem: fmt.Sprintf("keygate cannot tell which key Agrenting lists is %s (%d entries show part of its secret)", id, len(hits)),
			Fix:     "revoke it in the Agrenting dashboard"}
	}
	return hits[0], nil
}

// revoke sends the DELETE for key target and returns it revoked. The path
// is not documented (AGRENTING_REVOKE_PATH overrides it), nor is the
// answer: a 2xx counts as done, with the revocation time from the answer
// or the list when they give one. An answer lost on the way is settled by
// listing again.
func (c *Client) revoke(ctx context.Context, agent string, target listedKey) (provider.Key, error) {
	id := target.id()
	res, err := c.do(ctx, call{method: http.MethodDelete, path: expandPath(c.cfg.RevokePath, agent, id)})
	if err != nil {
		ue, ok := errors.AsType[*provider.UpstreamError](err)
		switch {
		case ok && ue.Status == http.StatusNotFound && ue.Code == "ROUTE_NOT_FOUND":
			ue.Kind = provider.ErrUnsupported
			ue.Message += fmt.Sprintf(" (Agrenting documents no revoke path; set %s to the right one, or revoke the key in the dashboard)", EnvRevokePath)
			return provider.Key{}, ue
		case ok && ue.Status == http.StatusNotFound:
			return provider.Key{}, &provider.NotFoundError{What: "key", Name: id}
		case ok && ue.Status == 0 && ctx.Err() == nil:
			// No answer: look again.
			if list, lerr := c.listCredentials(ctx, "check the revocation"); lerr == nil {
				if again, perr := pick(list, id, auth.Secret{}); perr == nil && again.revoked() {
					return again.key(), nil
				}
			}
			return provider.Key{}, fmt.Errorf("agrenting: %w: revoking key %s got no answer (%w) and it does not show as revoked", provider.ErrOutcomeUnknown, id, err)
		}
		return provider.Key{}, err
	}
	k := target.key()
	var out listedKey
	if json.Unmarshal(res.env.Data, &out) == nil && out.id() == id && !out.time("revoked_at").IsZero() {
		k = out.key()
	}
	if k.RevokedAt.IsZero() {
		k.RevokedAt = c.now().UTC()
	}
	return k, nil
}
