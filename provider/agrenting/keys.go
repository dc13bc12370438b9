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

// credentialJSON is a credential as the API shows it. unknown: the fields;
// key_prefix (the first 8 characters) and last_four are keygate's choice
// for identifying a key without its secret, and the fake's.
type credentialJSON struct {
	ID         string  `json:"id"`
	AgentID    string  `json:"agent_id"`
	Name       string  `json:"name"`
	KeyPrefix  string  `json:"key_prefix"`
	LastFour   string  `json:"last_four"`
	CreatedAt  string  `json:"created_at"`
	LastUsedAt *string `json:"last_used_at"`
	RevokedAt  *string `json:"revoked_at"`
	ExpiresAt  *string `json:"expires_at"`
	RotatedTo  *string `json:"rotated_to"`
}

// issuedJSON is the data of a create or a rotation: the credential and its
// secret, shown once.
type issuedJSON struct {
	Credential credentialJSON `json:"credential"`
	APIKey     string         `json:"api_key"`
}

func parseTime(s *string) time.Time {
	if s == nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, *s)
	return t
}

func (cj credentialJSON) key() provider.Key {
	masked := "****"
	if cj.LastFour != "" {
		masked = cj.KeyPrefix + "…" + cj.LastFour
	}
	k := provider.Key{ID: cj.ID, Name: cj.Name, Masked: masked, Scopes: []string{},
		LastUsedAt: parseTime(cj.LastUsedAt), RevokedAt: parseTime(cj.RevokedAt), ExpiresAt: parseTime(cj.ExpiresAt)}
	k.CreatedAt, _ = time.Parse(time.RFC3339Nano, cj.CreatedAt)
	if cj.RotatedTo != nil {
		k.RotatedTo = *cj.RotatedTo
	}
	return k
}

// matches reports whether the credential is the secret s, by its visible
// prefix and last four characters.
func (cj credentialJSON) matches(s string) bool {
	return s != "" && cj.LastFour != "" && len(s) >= len(cj.KeyPrefix)+len(cj.LastFour) &&
		s[:len(cj.KeyPrefix)] == cj.KeyPrefix && s[len(s)-len(cj.LastFour):] == cj.LastFour
}

// CurrentKey is the agent key the client uses now ("" with a user token).
func (c *Client) CurrentKey() auth.Secret {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apiKey
}

// OwnKeyID finds the id of the agent key the client uses among the agent's
// credentials; "" when none matches.
func (c *Client) OwnKeyID(ctx context.Context) (string, error) {
	current := c.CurrentKey()
	if current.IsZero() {
		return "", nil
	}
	list, err := c.listCredentials(ctx)
	if err != nil {
		return "", err
	}
	for _, cj := range list {
		if cj.RevokedAt == nil && cj.matches(current.Reveal()) {
			return cj.ID, nil
		}
	}
	return "", nil
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

func (c *Client) credentialsPath(ctx context.Context) (string, string, error) {
	agent, err := c.agent(ctx)
	if err != nil {
		return "", "", err
	}
	return agent, expandPath(CredentialsPath, agent, ""), nil
}

func (c *Client) listCredentials(ctx context.Context) ([]credentialJSON, error) {
	agent, err := c.agent(ctx)
	if err != nil {
		return nil, err
	}
	return c.listCredentialsAs(ctx, agent, call{})
}

// listCredentialsAs lists agent's credentials, authenticated by cred's
// asKey or asSession (the client's own credential when both are zero).
func (c *Client) listCredentialsAs(ctx context.Context, agent string, cred call) ([]credentialJSON, error) {
	cred.method, cred.path = http.MethodGet, expandPath(CredentialsPath, agent, "")
	res, err := c.do(ctx, cred)
	if err != nil {
		return nil, err
	}
	var list []credentialJSON
	if err := json.Unmarshal(res.env.Data, &list); err != nil {
		return nil, fmt.Errorf("agrenting: the credential list is not a list")
	}
	return list, nil
}

// ListKeys lists the agent's credentials (GET /agents/:agent_id/credentials),
// revoked ones included, masked.
func (c *Client) ListKeys(ctx context.Context) ([]provider.Key, error) {
	list, err := c.listCredentials(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]provider.Key, 0, len(list))
	for _, cj := range list {
		out = append(out, cj.key())
	}
	return out, nil
}

// CreateKey issues a new key for the agent (POST
// /agents/:agent_id/credentials). A lost answer is retried with the same
// idempotency key, and the platform replays the same key.
func (c *Client) CreateKey(ctx context.Context, name string) (provider.IssuedKey, error) {
	_, path, err := c.credentialsPath(ctx)
	if err != nil {
		return provider.IssuedKey{}, err
	}
	res, err := c.do(ctx, call{method: http.MethodPost, path: path, body: map[string]any{"name": name}, idemKey: newIdempotencyKey()})
	if err != nil {
		return provider.IssuedKey{}, c.writeError(err, res.env, map[string]string{"name": "name"})
	}
	return c.issued(res)
}

func (c *Client) issued(res result) (provider.IssuedKey, error) {
	var is issuedJSON
	if err := json.Unmarshal(res.env.Data, &is); err != nil || is.APIKey == "" || is.Credential.ID == "" {
		return provider.IssuedKey{}, fmt.Errorf("agrenting: %w: the platform answered %d without the new key; list the keys to see whether one was made", provider.ErrOutcomeUnknown, res.status)
	}
	c.redact.Add(is.APIKey)
	return provider.IssuedKey{Key: is.Credential.key(), Secret: auth.NewSecret(is.APIKey)}, nil
}

func (c *Client) findCredential(ctx context.Context, id string) (credentialJSON, error) {
	if !idPattern().MatchString(id) {
		return credentialJSON{}, &provider.NotFoundError{What: "key", Name: id}
	}
	list, err := c.listCredentials(ctx)
	if err != nil {
		return credentialJSON{}, err
	}
	for _, cj := range list {
		if cj.ID == id {
			return cj, nil
		}
	}
	return credentialJSON{}, &provider.NotFoundError{What: "key", Name: id}
}

// rotateError explains a failed rotation.
func (c *Client) rotateError(err error, res result, id string) error {
	ue, ok := asUpstream(err)
	if !ok {
		return err
	}
	switch {
	case ue.Status == http.StatusNotFound && ue.Code == "ROUTE_NOT_FOUND":
		ue.Kind = provider.ErrUnsupported
		ue.Message += fmt.Sprintf(" (the rotate path is not documented; set %s to the right one)", EnvRotatePath)
	case ue.Status == http.StatusNotFound:
		return &provider.NotFoundError{What: "key", Name: id}
	}
	return c.writeError(ue, res.env, nil)
}

// RevokeKey revokes credential id (DELETE; AGRENTING_REVOKE_PATH overrides
// the undocumented path). It reports false, without a request, for a key
// already revoked, and refuses to revoke the key this client uses, which
// would cut keygate off. A lost answer is settled by listing again.
func (c *Client) RevokeKey(ctx context.Context, id string) (provider.Key, bool, error) {
	agent, err := c.agent(ctx)
	if err != nil {
		return provider.Key{}, false, err
	}
	cj, err := c.findCredential(ctx, id)
	if err != nil {
		return provider.Key{}, false, err
	}
	if cj.RevokedAt != nil {
		return cj.key(), true, nil // already revoked: nothing to do
	}
	c.mu.Lock()
	own := cj.matches(c.apiKey.Reveal())
	c.mu.Unlock()
	if own {
		return provider.Key{}, false, &provider.FieldError{Field: "id", Problem: fmt.Sprintf("key %s is the one keygate itself uses for Agrenting; revoking it would cut keygate off", id),
			Fix: "rotate it instead, or configure another key in " + EnvAPIKey + " first"}
	}
	k, err := c.revoke(ctx, agent, id)
	return k, false, err
}

// revoke sends the DELETE for credential id and returns it revoked.
func (c *Client) revoke(ctx context.Context, agent, id string) (provider.Key, error) {
	res, err := c.do(ctx, call{method: http.MethodDelete, path: expandPath(c.cfg.RevokePath, agent, id)})
	if err != nil {
		ue, ok := asUpstream(err)
		switch {
		case ok && ue.Status == http.StatusNotFound && ue.Code == "ROUTE_NOT_FOUND":
			ue.Kind = provider.ErrUnsupported
			ue.Message += fmt.Sprintf(" (the revoke path is not documented; set %s to the right one)", EnvRevokePath)
			return provider.Key{}, ue
		case ok && ue.Status == http.StatusNotFound:
			return provider.Key{}, &provider.NotFoundError{What: "key", Name: id}
		case errors.Is(err, provider.ErrUnavailable) && !ok && ctx.Err() == nil:
			// No answer: look again.
			again, ferr := c.findCredential(ctx, id)
			if ferr == nil && again.RevokedAt != nil {
				return again.key(), nil
			}
			return provider.Key{}, fmt.Errorf("agrenting: %w: revoking key %s got no answer (%w) and it does not show as revoked", provider.ErrOutcomeUnknown, id, err)
		}
		return provider.Key{}, err
	}
	var out credentialJSON
	if err := json.Unmarshal(res.env.Data, &out); err != nil || out.ID == "" {
		// The answer does not show it: read it back.
		again, ferr := c.findCredential(ctx, id)
		if ferr != nil {
			return provider.Key{}, ferr
		}
		out = again
	}
	if out.RevokedAt == nil {
		return provider.Key{}, fmt.Errorf("agrenting: revoking key %s answered %d but the key is not revoked", id, res.status)
	}
	return out.key(), nil
}
