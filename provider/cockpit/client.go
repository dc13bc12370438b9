// Package cockpit is keygate's provider for Cockpit CMS v2 (self-hosted,
// getcockpit.com): content items through the REST API under {site}/api.
//
// Every wire fact the adapter relies on is in docs/providers/cockpit.md,
// with its source (an observation on a running Cockpit 2.13.2, or
// Cockpit-HQ/Cockpit's code at tag 2.13.2); comments cite its ids (A1,
// R3, ...). The recorded exchanges in testdata/transcripts are replayed
// against the adapter.
package cockpit

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
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/upstream"
)

// Name is the provider's name in keygate.
const Name = "cockpit"

const maxMessage = 200

// Options are the Client's collaborators; see upstream.Options.
type Options = upstream.Options

// Client talks to one Cockpit site with one key. It is safe for concurrent
// use.
type Client struct {
	cfg    Config
	caller *upstream.Caller
	now    func() time.Time
	log    *slog.Logger
	red    *auth.Redactor
}

// New returns a client for cfg, as LoadConfig returned it.
func New(cfg Config, opts Options) (*Client, error) {
	u, err := upstream.CheckBaseURL(EnvURL, cfg.URL)
	if err != nil {
		return nil, err
	}
	cfg.URL = strings.TrimSuffix(u, "/api")
	opts = opts.WithDefaults()
	hc := opts.HTTP
	c := &Client{cfg: cfg, now: opts.Now, log: opts.Logger, red: auth.NewRedactor()}
	c.caller = &upstream.Caller{HTTP: hc, Now: c.now, Sleep: opts.Sleep}
	for _, s := range c.Secrets() {
		c.red.Add(s)
	}
	return c, nil
}

// Name returns "cockpit".
func (c *Client) Name() string { return Name }

// Secrets returns the configured key, for the caller's redactor.
func (c *Client) Secrets() []string {
	if c.cfg.APIKey.Secret.IsZero() {
		return nil
	}
	return []string{c.cfg.APIKey.Secret.Reveal()}
}

// request is one call to Cockpit's API.
type request struct {
	method string
	path   string // below {site}/api, already escaped
	query  url.Values
	body   any
	noKey  bool // the healthcheck needs none
}

// send performs r with the key in the api-key header (never in the query
// string, where Cockpit also looks first: A1, K7). Only GETs are retried.
func (c *Client) send(ctx context.Context, r request) (*upstream.Response, error) {
	u := c.cfg.URL + "/api" + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	var payload []byte
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, fmt.Errorf("cockpit: encoding %s body: %w", r.method, err)
		}
		payload = b
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("cockpit: building %s request: %s", r.method, c.red.Redact(err.Error()))
	}
	if !r.noKey {
		req.Header.Set("api-key", c.cfg.APIKey.Secret.Reveal())
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "keygate")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(payload)), nil }
	}
	idempotent := r.method == http.MethodGet || r.method == http.MethodHead
	start := c.now()
	resp, err := c.caller.Do(req, idempotent)
	if err != nil {
		msg := truncate(c.red.Redact(err.Error()))
		c.log.LogAttrs(ctx, slog.LevelDebug, "cockpit request failed", slog.String("method", r.method),
			slog.String("path", req.URL.Path), slog.Duration("duration", c.now().Sub(start)), slog.String("error", msg))
		return nil, &provider.UpstreamError{Provider: Name, Message: msg, Kind: provider.ErrUnavailable}
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "cockpit request", slog.String("method", r.method), slog.String("path", req.URL.Path),
		slog.Int("status", resp.Status), slog.Duration("duration", c.now().Sub(start)))
	return resp, nil
}

// apiError is Cockpit's error body: {"error":"..."}, and for a 500
// {"error": "500", "message": "system error"} (docs/providers/cockpit.md M6).
type apiError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func (c *Client) message(resp *upstream.Response) string {
	var ae apiError
	if json.Unmarshal(resp.Body, &ae) != nil {
		return ""
	}
	m := ae.Error
	if ae.Message != "" {
		if m != "" {
			m += ": "
		}
		m += ae.Message
	}
	return truncate(c.red.Redact(m))
}

// emptyNotFound is Cockpit's "no such item" (and "no such route"): a 404
// with an empty body (docs/providers/cockpit.md R4, R7).
func emptyNotFound(resp *upstream.Response) bool {
	return resp.Status == http.StatusNotFound && len(bytes.TrimSpace(resp.Body)) == 0
}

// modelMissing reports 404 {"error":"Model <m> not found"} (R2).
func modelMissing(resp *upstream.Response) bool {
	if resp.Status != http.StatusNotFound {
		return false
	}
	var ae apiError
	return json.Unmarshal(resp.Body, &ae) == nil && strings.HasPrefix(ae.Error, "Model ") && strings.HasSuffix(ae.Error, " not found")
}

// authFailed reports Cockpit's answer to a rejected key: 412, not 401 (A2).
func authFailed(resp *upstream.Response) bool {
	if resp.Status != http.StatusPreconditionFailed {
		return false
	}
	var ae apiError
	return json.Unmarshal(resp.Body, &ae) == nil && ae.Error == "Authentication failed"
}

// upstreamError maps a non-2xx answer. 412 carries several meanings in
// Cockpit; only "Authentication failed" is a rejected key.
func (c *Client) upstreamError(resp *upstream.Response) *provider.UpstreamError {
	e := &provider.UpstreamError{Provider: Name, Status: resp.Status, Message: c.message(resp)}
	switch {
	case authFailed(resp):
		e.Kind = provider.ErrUnauthorized
	case resp.Status == http.StatusPreconditionFailed && e.Message == "Not allowed":
		// api.security.origins refused the request's origin (M6).
		e.Kind = provider.ErrPermission
	case resp.Status == http.StatusForbidden:
		e.Kind = provider.ErrPermission
	case resp.Status == http.StatusNotFound:
		e.Kind = provider.ErrNotFound
		if e.Message == "" {
			e.Message = "not found (empty answer)"
		}
	case resp.Status == http.StatusTooManyRequests:
		// Cockpit's limiter sends no Retry-After (M6); pass one on if a proxy did.
		e.Kind = provider.ErrRateLimited
		if d, ok := upstream.RetryAfter(resp.Header, c.now()); ok {
			e.RetryAfter = d
		}
	case resp.Status >= 500:
		e.Kind = provider.ErrUnavailable
	}
	return e
}

// notFoundOr maps a 404 on a model path: the model or the item.
func (c *Client) notFoundOr(resp *upstream.Response, model, item string) error {
	switch {
	case modelMissing(resp):
		return &provider.NotFoundError{What: "content type", Name: model}
	case emptyNotFound(resp) && item != "":
		return &provider.NotFoundError{What: "object", Name: item}
	}
	return c.upstreamError(resp)
}

// badRequest maps 400 {"error":"<filter> is not valid json"} (Q1).
func (c *Client) badRequest(resp *upstream.Response) error {
	m := c.message(resp)
	for param, field := range map[string]string{"<filter>": "filter", "<sort>": "sort", "<fields>": "fields"} {
		if strings.HasPrefix(m, param) {
			return &provider.FieldError{Field: field, Problem: "Cockpit refused it: " + m, Fix: "use plain values and the operators $eq, $ne, $in, $gt, $gte, $lt, $lte"}
		}
	}
	return c.upstreamError(resp)
}

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

func ok2xx(resp *upstream.Response) bool { return resp.Status >= 200 && resp.Status < 300 }

func errDetail(err error) string {
	var ue *provider.UpstreamError
	if errors.As(err, &ue) {
		return ue.Error()
	}
	return "the request failed"
}
