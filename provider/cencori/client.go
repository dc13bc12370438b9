// Package cencori is keygate's provider for Cencori, an AI gateway whose
// content, for keygate, is the project's memories: immutable snippets of
// text kept per user or session, listed newest first or found by semantic
// search.
//
// Every wire fact keygate relies on is in docs/providers/cencori.md, with
// the Cencori source it comes from; the fake in cencoritest reproduces
// them. The key goes in the CENCORI_API_KEY header
// on memory (and AI) endpoints and as Authorization: Bearer on the REST
// endpoints (/v1/metrics), as Cencori's docs say; the server accepts
// either, but /v1/metrics' own error text asks for Bearer.
//
// Cencori allows 60 requests per minute per project. A client-side
// sliding-window budget (upstream.Budget) keeps keygate under it, spends it
// on callers with a scope for Cencori first, and every 429's Retry-After /
// retry_after_ms / X-RateLimit-Reset holds all requests back until then.
package cencori

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/upstream"
)

// Name is the provider's name in keygate.
const Name = "cencori"

// Options are the Client's collaborators; see upstream.Options.
type Options = upstream.Options

// Client talks to one Cencori project with one key. It is safe for
// concurrent use.
type Client struct {
	cfg    Config
	caller *upstream.Caller
	budget *upstream.Budget
	log    *slog.Logger
	now    func() time.Time
	redact *auth.Redactor
}

// New returns a client for cfg, as LoadConfig made it.
func New(cfg Config, opts Options) (*Client, error) {
	if cfg.APIKey.IsZero() {
		return nil, fmt.Errorf("cencori: %s is not set", EnvAPIKey)
	}
	if cfg.Kind.ID == "" {
		kind, err := classifyKey(cfg.APIKey.Reveal())
		if err != nil {
			return nil, fmt.Errorf("cencori: %w", err)
		}
		cfg.Kind = kind
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	if cfg.GatewayURL == "" {
		cfg.GatewayURL = DefaultGatewayURL
	}
	if cfg.MemoryUserID == "" {
		cfg.MemoryUserID = DefaultMemoryUserID
	}
	opts = opts.WithDefaults()
	now, sleep, log, hc := opts.Now, opts.Sleep, opts.Logger, opts.HTTP
	budget := newBudget(now, sleep)
	red := auth.NewRedactor()
	red.Add(cfg.APIKey.Reveal())
	return &Client{
		cfg:    cfg,
		caller: &upstream.Caller{HTTP: hc, Now: now, Sleep: sleep, Budget: budget},
		budget: budget,
		log:    log,
		now:    now,
		redact: red,
	}, nil
}

// Name returns "cencori".
func (c *Client) Name() string { return Name }

// Secrets returns the configured key, for the caller's redactor.
func (c *Client) Secrets() []string { return []string{c.cfg.APIKey.Reveal()} }

// Config returns the configuration in use (the key stays a Secret).
func (c *Client) Config() Config { return c.cfg }

// authMode says where the key goes.
type authMode int

const (
	// authHeader sends CENCORI_API_KEY: the AI and memory endpoints.
	authHeader authMode = iota
	// authBearer sends Authorization: Bearer: the /v1 REST endpoints.
	authBearer
)

// send makes one call to the REST host. A non-2xx answer comes back as the
// response together with a *provider.UpstreamError; a failure to get an
// answer comes back as an error alone. idempotent lets the Caller retry.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body any, mode authMode, idempotent bool) (*upstream.Response, error) {
	target := c.cfg.APIURL + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var rdr io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("cencori: encoding %s %s: %w", method, path, err)
		}
		rdr = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rdr)
	if err != nil {
		return nil, fmt.Errorf("cencori: building %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "keygate")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch mode {
	case authHeader:
		req.Header.Set("CENCORI_API_KEY", c.cfg.APIKey.Reveal())
	case authBearer:
		req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey.Reveal())
	}
	start := time.Now()
	resp, err := c.caller.Do(req, idempotent)
	if err != nil {
		c.log.DebugContext(ctx, "cencori request", "method", method, "path", path, "error", c.redact.Redact(err.Error()), "duration", time.Since(start))
		return nil, c.transportError(err)
	}
	reqID := resp.Header.Get("X-Request-Id")
	c.log.DebugContext(ctx, "cencori request", "method", method, "path", path, "status", resp.Status, "duration", time.Since(start), "request_id", reqID)
	if resp.Status < 200 || resp.Status > 299 {
		return resp, c.statusError(resp)
	}
	return resp, nil
}

// transportError is a request that got no answer. keygate's own refusals
// (the budget held it back, or kept it for callers with a scope) pass
// through as they are: nothing was sent.
func (c *Client) transportError(err error) error {
	var rationed *provider.RationedError
	var held *provider.UpstreamError
	switch {
	case errors.As(err, &rationed):
		return rationed
	case errors.As(err, &held):
		return held
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("cencori: %w", err)
	}
	return fmt.Errorf("cencori: %w: %w", provider.ErrUnavailable, &redacted{msg: c.redact.Redact(err.Error()), err: err})
}

// redacted is an error whose text went through the redactor but whose
// chain (errors.Is) is kept.
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// errorBody is Cencori's flat error, {"error","message"?,"code"?}; the
// agent-keys route nests it as {"error":{"message","type","code"}}.
type errorBody struct {
	Error        json.RawMessage `json:"error"`
	Message      string          `json:"message"`
	Code         string          `json:"code"`
	RetryAfterMS *float64        `json:"retry_after_ms"`
}

var codeShape = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9_]{2,63}$`) })

// statusError maps a non-2xx answer. 404 and 400 keep Kind nil: their
// meaning depends on the endpoint, and the callers refine them.
func (c *Client) statusError(resp *upstream.Response) *provider.UpstreamError {
	ue := &provider.UpstreamError{Provider: Name, Status: resp.Status, RequestID: resp.Header.Get("X-Request-Id")}
	var eb errorBody
	text := ""
	if json.Unmarshal(resp.Body, &eb) == nil {
		ue.Code = eb.Code
		var s string
		var nested struct{ Message, Code string }
		switch {
		case json.Unmarshal(eb.Error, &s) == nil:
			text = s
		case json.Unmarshal(eb.Error, &nested) == nil:
			text = nested.Message
			if ue.Code == "" {
				ue.Code = nested.Code
			}
		}
		if ue.Code == "" && codeShape().MatchString(text) {
			// Endpoint-level errors often put the code in "error".
			ue.Code, text = text, ""
		}
		if eb.Message != "" {
			text = eb.Message
		}
	} else {
		text = http.StatusText(resp.Status)
	}
	ue.Message = c.clean(text)
	ue.Code = c.clean(ue.Code)
	switch {
	case resp.Status == http.StatusUnauthorized:
		ue.Kind = provider.ErrUnauthorized
	case resp.Status == http.StatusForbidden || resp.Status == http.StatusPaymentRequired:
		ue.Kind = provider.ErrPermission
	case ue.Code == "memory_quota_exceeded":
		// A 429 that waiting a minute does not cure: the project's memory
		// allowance is used up until it is raised (docs/providers/cencori.md,
		// "Errors"). It holds nothing back.
		ue.Kind = provider.ErrPermission
	case resp.Status == http.StatusTooManyRequests:
		ue.Kind = provider.ErrRateLimited
		ue.RetryAfter = c.retryAfter(resp, eb.RetryAfterMS)
		c.budget.Hold(ue.RetryAfter)
	case resp.Status >= 500:
		ue.Kind = provider.ErrUnavailable
	}
	if ue.Code == "memory_disabled" {
		ue.Kind = provider.ErrUnsupported
	}
	return ue
}

// retryAfter is the longest of Retry-After, retry_after_ms and the
// X-RateLimit-Reset time: waiting that long satisfies all three.
func (c *Client) retryAfter(resp *upstream.Response, ms *float64) time.Duration {
	now := c.now()
	var d time.Duration
	if v, ok := upstream.RetryAfter(resp.Header, now); ok {
		d = v
	}
	if ms != nil && *ms > 0 && *ms < float64(24*time.Hour/time.Millisecond) {
		d = max(d, time.Duration(math.Ceil(*ms))*time.Millisecond)
	}
	if t, ok := resetTime(resp.Header, now); ok {
		d = max(d, t.Sub(now))
	}
	return d
}

// clean makes an API's text safe to show: key-shaped strings and the
// configured key masked, cut to 200 bytes on a character boundary.
func (c *Client) clean(s string) string {
	s = c.redact.Redact(s)
	if len(s) <= 200 {
		return s
	}
	cut := 200
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// asUpstream returns err's UpstreamError, if any.
func asUpstream(err error) (*provider.UpstreamError, bool) {
	var ue *provider.UpstreamError
	ok := errors.As(err, &ue)
	return ue, ok
}

// outcomeUnknown reports whether a write that failed with err may still
// have happened: no answer came (other than keygate holding it back), or
// the answer was a 500, 502 or 504, which a proxy or a crashing handler
// gives after the work may have been done.
func outcomeUnknown(err error) bool {
	if ue, ok := asUpstream(err); ok {
		return ue.Status == http.StatusInternalServerError || ue.Status == http.StatusBadGateway || ue.Status == http.StatusGatewayTimeout
	}
	return errors.Is(err, provider.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// decode reads a JSON answer into v.
func decode(resp *upstream.Response, what string, v any) error {
	if err := json.Unmarshal(resp.Body, v); err != nil {
		return fmt.Errorf("cencori: %s: the answer is not the JSON expected (%d bytes): %w", what, len(resp.Body), err)
	}
	return nil
}

func itoa(n int) string { return strconv.Itoa(n) }
