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
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sync"
	"time"

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
	cfg Config
	api *upstream.API
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
	api := upstream.NewAPI(Name, opts)
	api.Caller.Budget = newBudget(api.Now, api.Caller.Sleep)
	api.Caller.Wait = wait
	api.Said = said
	api.RequestID = upstream.RequestIDHeader("X-Request-Id")
	api.Except = except(api.Caller.Budget)
	api.Redactor.Add(cfg.APIKey.Reveal())
	return &Client{cfg: cfg, api: api}, nil
}

// Name returns "cencori".
func (c *Client) Name() string { return Name }

// Secrets returns the configured key, for the caller's redactor.
func (c *Client) Secrets() []string { return []string{c.cfg.APIKey.Reveal()} }

// Config returns the configuration in use (the key stays a Secret).
func (c *Client) Config() Config { return c.cfg }

// request is a call to the REST host with the key in the CENCORI_API_KEY
// header, as the AI and memory endpoints take it; idempotent lets the
// Caller retry a POST that changes nothing.
func (c *Client) request(method, path string, query url.Values, body any, idempotent bool) upstream.Request {
	return upstream.Request{Method: method, Base: c.cfg.APIURL, Path: path, Query: query, Body: body, Idempotent: idempotent,
		Auth: func(h http.Header, _ url.Values) { h.Set("CENCORI_API_KEY", c.cfg.APIKey.Reveal()) }}
}

// bearer is request with the key as Authorization: Bearer, as the /v1
// REST endpoints (/v1/metrics) take it.
func (c *Client) bearer(method, path string, query url.Values) upstream.Request {
	r := c.request(method, path, query, nil, false)
	r.Auth = func(h http.Header, _ url.Values) { h.Set("Authorization", "Bearer "+c.cfg.APIKey.Reveal()) }
	return r
}

// errorBody is Cencori's flat error, {"error","message"?,"code"?}; the
// agent-keys route nests it as {"error":{"message","type","code"}}.
type errorBody struct {
	Error   json.RawMessage `json:"error"`
	Message string          `json:"message"`
	Code    string          `json:"code"`
}

var codeShape = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9_]{2,63}$`) })

// said reads an error body, flat or nested; endpoint-level errors often
// put the code in "error". A body that is not JSON says its status text.
func said(resp *upstream.Response) upstream.Said {
	var eb errorBody
	if json.Unmarshal(resp.Body, &eb) != nil {
		return upstream.Said{Message: http.StatusText(resp.Status)}
	}
	out := upstream.Said{Code: eb.Code}
	var s string
	var nested struct{ Message, Code string }
	switch {
	case json.Unmarshal(eb.Error, &s) == nil:
		out.Message = s
	case json.Unmarshal(eb.Error, &nested) == nil:
		out.Message = nested.Message
		if out.Code == "" {
			out.Code = nested.Code
		}
	}
	if out.Code == "" && codeShape().MatchString(out.Message) {
		out.Code, out.Message = out.Message, ""
	}
	if eb.Message != "" {
		out.Message = eb.Message
	}
	return out
}

// except is Cencori's part of the status mapping (upstream.API.Error).
// 404 and 400 keep no kind: their meaning depends on the endpoint, and the
// callers refine them (memoryError). A 429 holds every request back for
// as long as it asked.
func except(budget *upstream.Budget) func(*upstream.Response, *provider.UpstreamError) {
	return func(resp *upstream.Response, e *provider.UpstreamError) {
		switch {
		case e.Code == "memory_quota_exceeded" && !errors.Is(e.Kind, provider.ErrUnauthorized) && !errors.Is(e.Kind, provider.ErrPermission):
			// A 429 that waiting a minute does not cure: the project's
			// memory allowance is used up until it is raised
			// (docs/providers/cencori.md, "Errors"). It holds nothing back.
			e.Kind, e.RetryAfter = provider.ErrPermission, 0
		case errors.Is(e.Kind, provider.ErrRateLimited):
			budget.Hold(e.RetryAfter)
		}
		if e.Code == "memory_disabled" {
			e.Kind = provider.ErrUnsupported
		}
	}
}

// wait is how long an answer asks keygate to wait: its Retry-After, and
// for a 429 the longest of that, retry_after_ms and the X-RateLimit-Reset
// time (docs/providers/cencori.md, "Rate limits"): waiting that long
// satisfies all three.
func wait(resp *upstream.Response, now time.Time) (time.Duration, bool) {
	d, ok := upstream.RetryAfter(resp.Header, now)
	if resp.Status != http.StatusTooManyRequests {
		return d, ok
	}
	if ms, has := upstream.RetryAfterMS(resp.Body); has {
		d, ok = max(d, ms), true
	}
	if t, has := resetTime(resp.Header, now); has {
		d, ok = max(d, t.Sub(now)), true
	}
	return d, ok
}

// outcomeUnknown reports whether a write that failed with err may still
// have happened: no answer came (other than keygate holding it back), or
// the answer was a 500, 502 or 504, which a proxy or a crashing handler
// gives after the work may have been done.
func outcomeUnknown(err error) bool {
	ue, ok := errors.AsType[*provider.UpstreamError](err)
	if !ok {
		return false
	}
	switch ue.Status {
	case 0, http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// decode reads a 2xx answer into v; an answer that is not the JSON
// expected leaves a write's outcome unknown.
func (c *Client) decode(resp *upstream.Response, what string, write bool, v any) error {
	if err := json.Unmarshal(resp.Body, v); err != nil {
		return c.api.BadAnswer(resp, write, fmt.Sprintf("%s: the answer is not the JSON expected (%d bytes)", what, len(resp.Body)))
	}
	return nil
}
