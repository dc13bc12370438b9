package cosmic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/upstream"
)

// RotateHint is what auth_whoami tells a person about rotating Cosmic
// credentials: Cosmic has no API to issue or revoke them
// (docs/providers/cosmic.md, Dashboard API).
const RotateHint = "Cosmic has no key-management API, so keygate cannot rotate these credentials. " +
	"Rotate bucket keys by hand in the Cosmic dashboard under Bucket Settings > API Access, and personal access tokens under Account Settings > API Tokens " +
	"(agent keys come from the agent sign-up and are managed in the claimed project). " +
	"Then put the new value in COSMIC_READ_KEY, COSMIC_WRITE_KEY, COSMIC_PAT or COSMIC_AGENT_KEY in the env file keygate reads: keygate picks it up at once, " +
	"without a restart (a value set in keygate's own environment, e.g. a client config, needs a restart instead); revoke the old key in the dashboard once keygate works with the new one."

// RotateHint says, without asking the API, how to rotate this provider's
// credentials by hand.
func (c *Client) RotateHint() string { return RotateHint }

// probeID is an object id that cannot exist: Cosmic ids are 24-hex
// MongoDB ObjectIds, which begin with their creation time, so the all-zero
// id (1970) is never issued (docs/providers/cosmic.md, Object JSON).
const probeID = "000000000000000000000000"

// probeTitle is the one parameter of the write-key probe's PATCH: the docs
// require at least one (docs/providers/cosmic.md, Objects), and on an
// object that does not exist it changes nothing.
const probeTitle = "keygate write-key check (changes nothing)"

// Probe outcomes.
type probe struct {
	verified string // provider.Verified*
	detail   string
	err      error
}

// probeRead checks the read key (or keyless reads) with GET /object-types.
func (c *Client) probeRead(ctx context.Context) probe {
	resp, err := c.api.Send(ctx, c.call(http.MethodGet, credRead, c.bucketPath("/object-types"), nil, nil))
	if err != nil {
		return sendFailed(err)
	}
	switch {
	case resp.Status == http.StatusNotFound && !bucketMissing(resp), resp.OK() && !routeNotFound(resp.Body):
		return probe{verified: provider.VerifiedOK, detail: "a read of the bucket's object types worked"}
	case resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden:
		ue := c.api.Error(resp)
		return probe{verified: provider.VerifiedRejected, detail: ue.Error(), err: ue}
	case routeNotFound(resp.Body):
		return probe{verified: provider.VerifiedUnreachable, detail: "Cosmic answered \"Route not found\": check " + EnvAPIURL}
	}
	ue := c.api.Error(resp)
	if bucketMissing(resp) {
		return probe{verified: provider.VerifiedRejected, detail: ue.Error() + " (check " + EnvBucketSlug + ")", err: ue}
	}
	return probe{verified: provider.VerifiedUnreachable, detail: ue.Error(), err: ue}
}

// probeWrite checks the write key with a PATCH of an id that cannot exist,
// which changes nothing. 401 or 403 means the key was refused. A 404
// alone proves nothing: the docs do not say whether Cosmic checks the key
// before it looks the object up. So after a 404 the same PATCH is sent
// with a made-up key: if Cosmic refuses that one, it checks keys first and
// the configured key passed; if it answers 404 again, the key cannot be
// checked without writing, and the answer is "unknown until tried".
func (c *Client) probeWrite(ctx context.Context) probe {
	patch := func(key string) (*upstream.Response, error) {
		r := c.call(http.MethodPatch, credWrite, c.bucketPath("/objects/"+probeID), nil, map[string]any{"title": probeTitle})
		r.Auth = bearer(key)
		return c.api.Send(ctx, r)
	}
	resp, err := patch(c.cfg.WriteKey.Secret.Reveal())
	if err != nil {
		return sendFailed(err)
	}
	switch {
	case resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden:
		ue := c.api.Error(resp)
		return probe{verified: provider.VerifiedRejected, detail: ue.Error(), err: ue}
	case routeNotFound(resp.Body):
		return probe{verified: provider.VerifiedUnreachable, detail: "Cosmic answered \"Route not found\": check " + EnvAPIURL}
	case resp.Status == http.StatusNotFound && bucketMissing(resp):
		ue := c.api.Error(resp)
		return probe{verified: provider.VerifiedRejected, detail: ue.Error() + " (check " + EnvBucketSlug + ")", err: ue}
	case resp.Status != http.StatusNotFound:
		ue := c.api.Error(resp)
		if resp.OK() || resp.Status < 500 {
			return probe{verified: provider.VerifiedNotChecked, detail: fmt.Sprintf("the write check that changes nothing got an unexpected %d, so the key is checked on the first write", resp.Status)}
		}
		return probe{verified: provider.VerifiedUnreachable, detail: ue.Error(), err: ue}
	}
	control, err := patch(madeUpKey(len(c.cfg.WriteKey.Secret.Reveal()), c.cfg.WriteKey.Secret.Reveal()))
	if err != nil {
		return probe{verified: provider.VerifiedUnreachable, detail: errDetail(err), err: err}
	}
	if control.Status == http.StatusUnauthorized || control.Status == http.StatusForbidden {
		return probe{verified: provider.VerifiedOK, detail: "accepted by a write that changes nothing (an update of an object that cannot exist), which Cosmic refused with a made-up key"}
	}
	return probe{verified: provider.VerifiedNotChecked,
		detail: "Cosmic answers an update of a missing object without checking the key, so the write key can only be checked by a real write"}
}

// madeUpKey returns n random letters and digits other than key, the shape
// a bucket key has; no bucket has it as a key.
func madeUpKey(n int, key string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, max(n, 8))
	for {
		for i := range b {
			b[i] = alphabet[rand.IntN(len(alphabet))]
		}
		if string(b) != key {
			return string(b)
		}
	}
}

func errDetail(err error) string {
	var rationed *provider.RationedError
	if errors.As(err, &rationed) {
		return rationed.Error()
	}
	var ue *provider.UpstreamError
	if errors.As(err, &ue) {
		return ue.Error()
	}
	return "the request failed"
}

// sendFailed is a probe whose request got no answer: the provider could
// not be reached, or keygate kept its rate limit for callers with a scope
// for Cosmic and sent nothing, which says nothing about the key.
func sendFailed(err error) probe {
	if errors.As(err, new(*provider.RationedError)) {
		return probe{verified: provider.VerifiedNotChecked, detail: "not checked now: " + errDetail(err), err: err}
	}
	return probe{verified: provider.VerifiedUnreachable, detail: errDetail(err), err: err}
}

// user is the part of dapi's user record keygate shows: members of the
// official CLI's CosmicUser (docs/providers/cosmic.md, Dashboard API).
// Unknown: username, which the CLI does not declare; it is a last resort.
type user struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Username  string `json:"username"`
}

func (u user) display() string {
	name := strings.TrimSpace(u.FirstName + " " + u.LastName)
	switch {
	case u.Email != "" && name != "":
		return name + " <" + u.Email + ">"
	case u.Email != "":
		return u.Email
	case name != "":
		return name
	case u.Username != "":
		return u.Username
	}
	return u.ID
}

// agentStatus is GET /v3/agents/status, as the official CLI declares it
// (docs/providers/cosmic.md, Dashboard API). The access_token (a user JWT)
// and any bucket keys it carries are never read into this struct, so they
// cannot leak.
type agentStatus struct {
	AuthType    string         `json:"auth_type"`
	ClaimStatus string         `json:"claim_status"`
	PlanID      any            `json:"plan_id"`
	Limits      map[string]any `json:"limits"`
	Bucket      struct {
		Slug string `json:"slug"`
	} `json:"bucket"`
	Project struct {
		ID string `json:"id"`
	} `json:"project"`
	AutoDeleteAfterDays any `json:"auto_delete_after_days"`
}

func describeCred(cr auth.Credential, kind, label string, grants []string) provider.Credential {
	return provider.Credential{Name: cr.Var, Kind: kind, Label: label, Masked: cr.Secret.Masked(), Source: string(cr.Source),
		Grants: grants, Verified: provider.VerifiedNotChecked}
}

// Describe checks each configured credential live and reports what it is.
func (c *Client) Describe(ctx context.Context) (provider.Description, error) {
	d := provider.Description{Provider: Name, Details: map[string]any{}, Credentials: []provider.Credential{}, RotateHint: RotateHint}
	if c.cfg.BucketSlug != "" {
		d.Details["bucket"] = c.cfg.BucketSlug
		c.describeBucketKeys(ctx, &d)
	} else {
		d.Problems = append(d.Problems, EnvBucketSlug+" is not set: no bucket content is available")
	}
	if !c.cfg.PAT.Secret.IsZero() {
		c.describePAT(ctx, &d)
	}
	if !c.cfg.AgentKey.Secret.IsZero() {
		c.describeAgentKey(ctx, &d)
	}
	for _, cr := range d.Credentials {
		if cr.Verified == provider.VerifiedRejected {
			d.Problems = append(d.Problems, fmt.Sprintf("%s was rejected by Cosmic: replace it (see rotate_hint)", cr.Name))
		}
	}
	return d, nil
}

// reached records in d that a probe got an answer about a key.
func reached(d *provider.Description, p probe) {
	if p.verified == provider.VerifiedOK || p.verified == provider.VerifiedRejected {
		d.Reachable = true
	}
}

// describeBucketKeys checks the read key (or keyless reads) and the
// write key.
func (c *Client) describeBucketKeys(ctx context.Context, d *provider.Description) {
	read := c.probeRead(ctx)
	reached(d, read)
	switch {
	case !c.cfg.ReadKey.Secret.IsZero():
		cr := describeCred(c.cfg.ReadKey, "cosmic_read_key", "Cosmic bucket read key", []string{string(auth.ContentRead)})
		cr.Verified, cr.Detail = read.verified, read.detail
		d.Credentials = append(d.Credentials, cr)
	case read.verified == provider.VerifiedOK:
		d.Problems = append(d.Problems, EnvReadKey+" is not set; this bucket answers reads without a read key")
	default:
		d.Problems = append(d.Problems, EnvReadKey+" is not set and the bucket refused a read without one: content reads, updates and deletes will fail (content_create needs only the write key)")
	}
	d.Details["read_works"] = read.verified == provider.VerifiedOK
	if c.cfg.WriteKey.Secret.IsZero() {
		d.Problems = append(d.Problems, EnvWriteKey+" is not set: content_create, content_update and content_delete are not available for Cosmic")
		return
	}
	cr := describeCred(c.cfg.WriteKey, "cosmic_write_key", "Cosmic bucket write key", []string{string(auth.ContentWrite), string(auth.ContentDelete)})
	w := c.probeWrite(ctx)
	cr.Verified, cr.Detail = w.verified, w.detail
	reached(d, w)
	d.Credentials = append(d.Credentials, cr)
}

// describePAT checks the personal access token and names its user.
func (c *Client) describePAT(ctx context.Context, d *provider.Description) {
	cr := describeCred(c.cfg.PAT, "cosmic_pat", "Cosmic personal access token", []string{})
	u, p := c.whoami(ctx)
	cr.Verified, cr.Detail = p.verified, p.detail
	reached(d, p)
	if p.verified == provider.VerifiedOK {
		d.Owner = u.display()
		cr.Detail = "account token of " + d.Owner + "; it grants no content scope in keygate by itself"
	}
	d.Credentials = append(d.Credentials, cr)
}

// describeAgentKey checks the agent key and reports its claim status and
// limits.
func (c *Client) describeAgentKey(ctx context.Context, d *provider.Description) {
	cr := describeCred(c.cfg.AgentKey, "cosmic_agent_key", "Cosmic agent key", []string{})
	st, p := c.agentStatus(ctx)
	cr.Verified, cr.Detail = p.verified, p.detail
	reached(d, p)
	if p.verified == provider.VerifiedOK {
		d.Details["agent"] = st.details()
		cr.Detail = "agent key, claim status " + orUnknown(st.ClaimStatus) + "; used for the agent sign-up flow only"
		if st.AuthType == "unclaimed" || st.ClaimStatus == "unclaimed" || st.ClaimStatus == "pending" {
			d.Problems = append(d.Problems, "the agent's Cosmic project is unclaimed: it is limited (50 objects, 5 MB media, no AI) and deleted after 14 days unless the human claims it")
		}
		if d.Owner == "" && st.Project.ID != "" {
			d.Owner = "agent project " + st.Project.ID
		}
	}
	d.Credentials = append(d.Credentials, cr)
}

// details are the agent status figures auth_whoami shows: those present.
func (st agentStatus) details() map[string]any {
	agent := map[string]any{"auth_type": st.AuthType, "claim_status": st.ClaimStatus}
	if st.PlanID != nil {
		agent["plan_id"] = st.PlanID
	}
	if st.Limits != nil {
		agent["limits"] = st.Limits
	}
	if st.Bucket.Slug != "" {
		agent["bucket"] = st.Bucket.Slug
	}
	if st.Project.ID != "" {
		agent["project"] = st.Project.ID
	}
	if st.AutoDeleteAfterDays != nil {
		agent["auto_delete_after_days"] = st.AutoDeleteAfterDays
	}
	return agent
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// whoami reads the PAT's user from dapi.
func (c *Client) whoami(ctx context.Context) (user, probe) {
	resp, err := c.api.Send(ctx, c.call(http.MethodGet, credPAT, "/users/get", nil, nil))
	if err != nil {
		return user{}, sendFailed(err)
	}
	if !resp.OK() {
		ue := c.api.Error(resp)
		if resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden {
			return user{}, probe{verified: provider.VerifiedRejected, detail: ue.Error(), err: ue}
		}
		return user{}, probe{verified: provider.VerifiedUnreachable, detail: ue.Error(), err: ue}
	}
	var u user
	if err := c.decode(resp, "user", &u, EnvDAPIURL); err != nil {
		return user{}, probe{verified: provider.VerifiedUnreachable, detail: errDetail(err), err: err}
	}
	return u, probe{verified: provider.VerifiedOK}
}

// agentStatus reads the agent key's claim status and limits.
func (c *Client) agentStatus(ctx context.Context) (agentStatus, probe) {
	resp, err := c.api.Send(ctx, c.call(http.MethodGet, credAgent, "/agents/status", nil, nil))
	if err != nil {
		return agentStatus{}, sendFailed(err)
	}
	if !resp.OK() {
		ue := c.api.Error(resp)
		if resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden {
			return agentStatus{}, probe{verified: provider.VerifiedRejected, detail: ue.Error(), err: ue}
		}
		return agentStatus{}, probe{verified: provider.VerifiedUnreachable, detail: ue.Error(), err: ue}
	}
	if routeNotFound(resp.Body) {
		return agentStatus{}, probe{verified: provider.VerifiedUnreachable, detail: "Cosmic answered \"Route not found\": check " + EnvDAPIURL}
	}
	var st agentStatus
	if err := json.Unmarshal(resp.Body, &st); err != nil {
		return agentStatus{}, probe{verified: provider.VerifiedUnreachable, detail: "the agent status answer is not JSON"}
	}
	return st, probe{verified: provider.VerifiedOK}
}

// CheckAccess answers each operation from what the configured keys are for
// (read key: content:read; write key: content:write and content:delete;
// PAT and agent key: no content scope) and live checks that change
// nothing: a read for content:read, a no-op write for content:write and
// content:delete. Answers that cannot be established are Known: false.
func (c *Client) CheckAccess(ctx context.Context, asked []provider.Operation) ([]provider.Access, error) {
	// Tools ask by the scope they need; this provider answers per scope.
	ops := make([]auth.Scope, len(asked))
	for i, a := range asked {
		ops[i] = a.Scope
	}
	out := make([]provider.Access, 0, len(ops))
	var read, write *probe
	types := map[string]bool{}
	for _, op := range ops {
		a := provider.Access{Operation: op.String()}
		switch op.Action {
		case auth.ContentRead, auth.ContentWrite, auth.ContentDelete:
			if c.cfg.BucketSlug == "" {
				a.Known, a.Reason = true, "no Cosmic bucket is configured"
				a.Fix = "set " + EnvBucketSlug + " and " + EnvReadKey
				break
			}
			var p probe
			if op.Action == auth.ContentRead {
				if read == nil {
					r := c.probeRead(ctx)
					read = &r
				}
				p = *read
			} else {
				if c.cfg.WriteKey.Secret.IsZero() {
					a.Known, a.Reason = true, EnvWriteKey+" is not set: Cosmic takes writes only with the bucket's write key"
					a.Fix = "create a write key under Bucket Settings > API Access and set " + EnvWriteKey + ", then restart keygate"
					break
				}
				if write == nil {
					w := c.probeWrite(ctx)
					write = &w
				}
				p = *write
			}
			c.fromProbe(&a, op, p)
			if a.Allowed && op.Type != "" {
				exists, ok := types[op.Type]
				if !ok {
					var err error
					exists, err = c.typeExists(ctx, op.Type)
					if err != nil {
						a.Allowed, a.Known, a.Reason = false, false, "could not check that type "+op.Type+" exists: "+errDetail(err)
						break
					}
					types[op.Type] = exists
				}
				if !exists {
					a.Allowed, a.Known = false, true
					a.Reason = fmt.Sprintf("the bucket has no object type %q", op.Type)
					a.Fix = "call content_types to see the types"
				}
			}
		case auth.CredentialsRead, auth.CredentialsWrite:
			a.Known, a.Reason = true, "Cosmic has no API to list, issue or revoke keys (the personal access token and the agent key are account credentials, not key managers)"
			a.Fix = "rotate Cosmic keys by hand: " + "Bucket Settings > API Access, Account Settings > API Tokens"
		case auth.Admin:
			a.Known, a.Reason = true, "keygate holds no Cosmic credential that administers the bucket through an API it uses"
		default:
			a.Reason = "unknown operation: unknown until tried"
		}
		out = append(out, a)
	}
	return out, nil
}

func (c *Client) fromProbe(a *provider.Access, op auth.Scope, p probe) {
	keyVar := EnvReadKey
	if op.Action != auth.ContentRead {
		keyVar = EnvWriteKey
	}
	switch p.verified {
	case provider.VerifiedOK:
		a.Allowed, a.Known = true, true
		if op.Action == auth.ContentRead {
			a.Reason = "a read of the bucket worked"
			if c.cfg.ReadKey.Secret.IsZero() {
				a.Reason += " (without a read key: the bucket allows public reads)"
			} else {
				a.Reason += " with " + EnvReadKey
			}
		} else {
			a.Reason = EnvWriteKey + " was accepted by a write that changes nothing (Cosmic refused a made-up key on the same request); Cosmic write keys cover every type in the bucket"
		}
	case provider.VerifiedRejected:
		a.Known, a.Reason = true, "Cosmic rejected "+keyVar+": "+p.detail
		a.Fix = "replace " + keyVar + " with a current key (Bucket Settings > API Access)"
		if op.Action == auth.ContentRead && c.cfg.ReadKey.Secret.IsZero() {
			a.Reason = "the bucket refused a read without a read key: " + p.detail
			a.Fix = "set " + EnvReadKey
		}
	default:
		a.Reason = "unknown until tried: " + p.detail
	}
}
