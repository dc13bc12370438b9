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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/upstream"
)

// Name is the provider's name in keygate.
const Name = "cosmic"

// maxMessage is the longest API message passed on in an error.
const maxMessage = 200

// Options are the Client's collaborators; see upstream.Options.
type Options = upstream.Options

// Client talks to one Cosmic bucket and account. It is safe for concurrent
// use.
type Client struct {
	cfg    Config
	caller *upstream.Caller
	// types are the bucket's object types as last listed, for the rate
	// limit's priority rule (limit.go); nil until Types has answered.
	types atomic.Pointer[map[string]bool]
	now   func() time.Time
	log   *slog.Logger
	// red masks the configured secrets and anything key-shaped in API text
	// before it is put into an error.
	red *auth.Redactor
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
	opts = opts.WithDefaults()
	hc := opts.HTTP
	c := &Client{cfg: cfg, now: opts.Now, log: opts.Logger, red: auth.NewRedactor()}
	// Cosmic documents a 6 MB response cap (docs/providers/cosmic.md,
	// Limits); keygate's pages are far smaller, so the shared 4 MiB default
	// is kept.
	c.caller = &upstream.Caller{HTTP: hc, Now: c.now, Sleep: opts.Sleep, Budget: c.newBudget(opts.Sleep)}
	for _, s := range cfg.secrets() {
		c.red.Add(s)
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
	credRead   credential = iota // read_key query parameter (when configured)
	credWrite                    // Authorization: Bearer write key
	credPAT                      // Authorization: Bearer cos_ PAT (dapi)
	credAgent                    // Authorization: Bearer agk_ agent key (dapi)
	credBearer                   // Authorization: Bearer request.token (not a configured secret)
	credNone
)

// request is one call to Cosmic.
type request struct {
	method string
	dapi   bool   // dashboard API instead of the data plane
	path   string // below the base URL, already escaped
	query  url.Values
	cred   credential
	token  string // the Bearer value for credBearer
	body   any    // JSON-encoded when non-nil
}

// bucketPath returns the escaped data-plane path for the configured bucket.
func (c *Client) bucketPath(rest string) string {
	return "/buckets/" + url.PathEscape(c.cfg.BucketSlug) + rest
}

// send performs r and returns the answer of any status, or a transport
// error already mapped to an *provider.UpstreamError (ErrUnavailable). Only
// GETs are retried; writes are sent once, since Cosmic has no idempotency
// keys.
func (c *Client) send(ctx context.Context, r request) (*upstream.Response, error) {
	base := c.cfg.APIURL
	if r.dapi {
		base = c.cfg.DAPIURL
	}
	q := url.Values{}
	for k, v := range r.query {
		q[k] = v
	}
	var header = http.Header{}
	switch r.cred {
	case credRead:
		// The read key travels as the read_key query parameter; a bucket
		// without a read key takes reads without one. The URL is never
		// logged nor put in an error (upstream strips it too).
		if !c.cfg.ReadKey.Secret.IsZero() {
			q.Set("read_key", c.cfg.ReadKey.Secret.Reveal())
		}
	case credWrite:
		header.Set("Authorization", "Bearer "+c.cfg.WriteKey.Secret.Reveal())
	case credPAT:
		header.Set("Authorization", "Bearer "+c.cfg.PAT.Secret.Reveal())
	case credAgent:
		header.Set("Authorization", "Bearer "+c.cfg.AgentKey.Secret.Reveal())
	case credBearer:
		header.Set("Authorization", "Bearer "+r.token)
	}
	u := base + r.path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	var payload []byte
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, fmt.Errorf("cosmic: encoding %s body: %w", r.method, err)
		}
		payload = b
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("cosmic: building %s request: %w", r.method, c.scrub(err))
	}
	req.Header = header
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "keygate")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(payload)), nil }
	}
	idempotent := r.method == http.MethodGet || r.method == http.MethodHead
	start := c.now()
	resp, err := c.caller.Do(req, idempotent)
	logPath := req.URL.Path
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelDebug, "cosmic request failed", slog.String("method", r.method),
			slog.String("path", logPath), slog.Duration("duration", c.now().Sub(start)), slog.String("error", c.scrub(err).Error()))
		return nil, c.transportError(err)
	}
	if c.log.Enabled(ctx, slog.LevelDebug) { // the request id costs header lookups and a redaction pass
		c.log.LogAttrs(ctx, slog.LevelDebug, "cosmic request", slog.String("method", r.method), slog.String("path", logPath),
			slog.Int("status", resp.Status), slog.Duration("duration", c.now().Sub(start)), slog.String("request_id", c.requestID(resp.Header)))
	}
	return resp, nil
}

// scrub removes secrets from an error's text.
func (c *Client) scrub(err error) error {
	return errors.New(c.red.Redact(err.Error()))
}

// transportError maps a failure to get any answer (network, timeout,
// cancellation, a refused redirect, a body over the cap): the provider
// could not be used.
func (c *Client) transportError(err error) error {
	// keygate's own refusals (the budget held the request back, or kept it
	// for callers with a scope) pass through as they are: nothing was sent.
	var rationed *provider.RationedError
	var held *provider.UpstreamError
	switch {
	case errors.As(err, &rationed):
		return rationed
	case errors.As(err, &held):
		return held
	}
	return &provider.UpstreamError{Provider: Name, Message: truncate(c.red.Redact(err.Error())), Kind: provider.ErrUnavailable}
}

func (c *Client) requestID(h http.Header) string {
	for _, k := range []string{"X-Request-Id", "X-Amzn-Requestid", "Cf-Ray"} {
		if v := h.Get(k); v != "" {
			return truncate(c.red.Redact(v))
		}
	}
	return ""
}

// apiError is Cosmic's error body: {"status": 404, "message": "..."} on
// the data plane; dapi adds "code" (docs/providers/cosmic.md, Errors).
type apiError struct {
	Status  json.Number `json:"status"`
	Message string      `json:"message"`
	Code    string      `json:"code"`
	Error   string      `json:"error"`
}

// upstreamError turns a non-2xx answer into an *provider.UpstreamError.
// Callers that give a status its own meaning (404 on a list) check it
// before calling this.
func (c *Client) upstreamError(resp *upstream.Response) *provider.UpstreamError {
	var ae apiError
	_ = json.Unmarshal(resp.Body, &ae)
	msg := ae.Message
	if msg == "" {
		msg = ae.Error
	}
	if msg == "" && !json.Valid(resp.Body) {
		msg = strings.TrimSpace(string(resp.Body))
	}
	e := &provider.UpstreamError{Provider: Name, Status: resp.Status, Code: truncate(c.red.Redact(ae.Code)),
		Message: truncate(c.red.Redact(msg)), RequestID: c.requestID(resp.Header)}
	switch {
	case resp.Status == http.StatusUnauthorized:
		e.Kind = provider.ErrUnauthorized
	case resp.Status == http.StatusForbidden || resp.Status == http.StatusPaymentRequired:
		// 402: the bucket needs an upgrade, or an unclaimed agent project
		// hit its limits: the credential works but may not do this.
		e.Kind = provider.ErrPermission
	case resp.Status == http.StatusNotFound:
		e.Kind = provider.ErrNotFound
	case resp.Status == http.StatusTooManyRequests:
		e.Kind = provider.ErrRateLimited
		if d, ok := upstream.RetryAfter(resp.Header, c.now()); ok {
			e.RetryAfter = d
		}
	case resp.Status >= 500:
		e.Kind = provider.ErrUnavailable
	}
	return e
}

// truncate cuts s to maxMessage bytes at a rune boundary.
func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

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
	if err == nil && isRouteNotFound(env) {
		return &provider.UpstreamError{Provider: Name, Status: resp.Status, RequestID: c.requestID(resp.Header),
			Message: "Route not found: check " + baseVar, Kind: provider.ErrUnavailable}
	}
	if err != nil {
		return &provider.UpstreamError{Provider: Name, Status: resp.Status, RequestID: c.requestID(resp.Header),
			Message: "answer is not a JSON object", Kind: provider.ErrUnavailable}
	}
	raw, ok := env[key]
	if !ok {
		return &provider.UpstreamError{Provider: Name, Status: resp.Status, RequestID: c.requestID(resp.Header),
			Message: fmt.Sprintf("answer has no %q", key), Kind: provider.ErrUnavailable}
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return &provider.UpstreamError{Provider: Name, Status: resp.Status, RequestID: c.requestID(resp.Header),
			Message: fmt.Sprintf("cannot read %q: %s", key, truncate(c.red.Redact(err.Error()))), Kind: provider.ErrUnavailable}
	}
	return nil
}

func ok2xx(resp *upstream.Response) bool { return resp.Status >= 200 && resp.Status < 300 }
