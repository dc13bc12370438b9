// Package cosmic is keygate's provider for the Cosmic headless CMS
// (cosmicjs.com): bucket content through the v3 data plane, and the
// account and agent credentials through the dashboard API (dapi).
//
// Every wire fact the code relies on is written down, with its source, in
// docs/providers/cosmic.md. Where that document lists a fact as unknown,
// the choice made here is marked "Unknown:" in a comment next to the code
// that depends on it.
package cosmic

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/upstream"
)

// Name is the provider's name in keygate.
const Name = "cosmic"

// Options are the Client's collaborators; see upstream.Options.
type Options = upstream.Options

// Client talks to one Cosmic bucket and account. It is safe for concurrent
// use.
type Client struct {
	cfg Config
	api *upstream.API
	// types are the bucket's object types as last listed, for the rate
	// limit's priority rule (limit.go); nil until Types has answered.
	types atomic.Pointer[map[string]bool]
}

// New returns a client for cfg, as LoadConfig returned it.
func New(cfg Config, opts Options) (*Client, error) {
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	if cfg.DAPIURL == "" {
		cfg.DAPIURL = DefaultDAPIURL
	}
	var err error
	if cfg.APIURL, err = upstream.CheckBaseURL(EnvAPIURL, cfg.APIURL); err != nil {
		return nil, err
	}
	if cfg.DAPIURL, err = upstream.CheckBaseURL(EnvDAPIURL, cfg.DAPIURL); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, api: upstream.NewAPI(Name, opts)}
	// Cosmic documents a 6 MB response cap (docs/providers/cosmic.md,
	// Limits); keygate's pages are far smaller, so the shared 4 MiB default
	// is kept.
	c.api.Caller.Budget = c.newBudget()
	c.api.Said = said
	c.api.Except = except
	c.api.RequestID = upstream.RequestIDHeader("X-Request-Id", "X-Amzn-Requestid", "Cf-Ray")
	for _, s := range cfg.secrets() {
		c.api.Redactor.Add(s)
	}
	return c, nil
}

// Name returns "cosmic".
func (c *Client) Name() string { return Name }

// Secrets returns every configured secret value, for the caller's redactor.
func (c *Client) Secrets() []string { return c.cfg.secrets() }

// credential says how a request authenticates.
type credential int

const (
	credRead  credential = iota // read_key query parameter (when configured)
	credWrite                   // Authorization: Bearer write key
	credPAT                     // Authorization: Bearer cos_ PAT (dapi)
	credAgent                   // Authorization: Bearer agk_ agent key (dapi)
)

// call is one request to Cosmic, authenticated with cred: the data plane
// for the bucket keys, the dashboard API (dapi) for the PAT and the agent
// key. Only GETs are retried; writes are sent once, since Cosmic has no
// idempotency keys.
func (c *Client) call(method string, cred credential, path string, query url.Values, body any) upstream.Request {
	r := upstream.Request{Method: method, Base: c.cfg.APIURL, Path: path, Query: query, Body: body}
	switch cred {
	case credRead:
		r.Auth = c.readKey
	case credWrite:
		r.Auth = bearer(c.cfg.WriteKey.Secret.Reveal())
	case credPAT:
		r.Base, r.Auth = c.cfg.DAPIURL, bearer(c.cfg.PAT.Secret.Reveal())
	case credAgent:
		r.Base, r.Auth = c.cfg.DAPIURL, bearer(c.cfg.AgentKey.Secret.Reveal())
	}
	return r
}

// readKey sends the read key as the read_key query parameter; a bucket
// without a read key takes reads without one. The URL is never logged nor
// put in an error.
func (c *Client) readKey(_ http.Header, q url.Values) {
	if !c.cfg.ReadKey.Secret.IsZero() {
		q.Set("read_key", c.cfg.ReadKey.Secret.Reveal())
	}
}

// bearer sends token as Authorization: Bearer.
func bearer(token string) func(http.Header, url.Values) {
	return func(h http.Header, _ url.Values) { h.Set("Authorization", "Bearer "+token) }
}

// bucketPath returns the escaped data-plane path for the configured bucket.
func (c *Client) bucketPath(rest string) string {
	return "/buckets/" + url.PathEscape(c.cfg.BucketSlug) + rest
}

// apiError is Cosmic's error body: {"status": 404, "message": "..."} on
// the data plane; dapi adds "code" (docs/providers/cosmic.md, Errors).
type apiError struct {
	Status  json.Number `json:"status"`
	Message string      `json:"message"`
	Code    string      `json:"code"`
	Error   string      `json:"error"`
}

// said reads an error body: message (or error), and code; a body that is
// not JSON is its own message.
func said(resp *upstream.Response) upstream.Said {
	var ae apiError
	_ = json.Unmarshal(resp.Body, &ae)
	msg := ae.Message
	if msg == "" {
		msg = ae.Error
	}
	if msg == "" && !json.Valid(resp.Body) {
		msg = strings.TrimSpace(string(resp.Body))
	}
	return upstream.Said{Code: ae.Code, Message: msg}
}

// except is Cosmic's part of the status mapping (upstream.API.Error): a
// 404 is something missing. Callers that give a 404 its own meaning (an
// empty list, docs/providers/cosmic.md, Errors) check it first. A 402 is
// the bucket needing an upgrade, or an unclaimed agent project past its
// limits: the credential works but may not do this (the common mapping).
func except(resp *upstream.Response, e *provider.UpstreamError) {
	if resp.Status == http.StatusNotFound {
		e.Kind = provider.ErrNotFound
	}
}

// routeNotFound reports Cosmic's answer to an unrouted path: HTTP 200 with
// {"message":"Route not found",...} (docs/providers/cosmic.md, Errors). It
// means a base URL points at the wrong host (e.g. COSMIC_API_URL set to the
// dapi host).
func routeNotFound(body []byte) bool {
	var env map[string]json.RawMessage
	return json.Unmarshal(body, &env) == nil && isRouteNotFound(env)
}

// isRouteNotFound is routeNotFound for an answer already split into its
// members. The key is matched without regard to case, as encoding/json
// matches a struct field.
func isRouteNotFound(env map[string]json.RawMessage) bool {
	for k, raw := range env {
		var msg string
		if strings.EqualFold(k, "message") && json.Unmarshal(raw, &msg) == nil && msg == "Route not found" {
			return true
		}
	}
	return false
}

// decode reads a 2xx answer's envelope into v. A 200 "Route not found" or
// a body without the expected envelope key is an error, not an empty
// result. The body is parsed once: every read goes through here.
func (c *Client) decode(resp *upstream.Response, key string, v any, baseVar string) error {
	var env map[string]json.RawMessage
	err := json.Unmarshal(resp.Body, &env)
	switch {
	case err == nil && isRouteNotFound(env):
		return c.api.BadAnswer(resp, false, "Route not found: check "+baseVar)
	case err != nil:
		return c.api.BadAnswer(resp, false, "answer is not a JSON object")
	}
	raw, ok := env[key]
	if !ok {
		return c.api.BadAnswer(resp, false, fmt.Sprintf("answer has no %q", key))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return c.api.BadAnswer(resp, false, fmt.Sprintf("cannot read %q: %s", key, err))
	}
	return nil
}
