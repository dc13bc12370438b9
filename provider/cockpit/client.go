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
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/upstream"
)

// Name is the provider's name in keygate.
const Name = "cockpit"

// Options are the Client's collaborators; see upstream.Options.
type Options = upstream.Options

// Client talks to one Cockpit site with one key. It is safe for concurrent
// use.
type Client struct {
	cfg Config
	api *upstream.API
}

// New returns a client for cfg, as LoadConfig returned it.
func New(cfg Config, opts Options) (*Client, error) {
	u, err := upstream.CheckBaseURL(EnvURL, cfg.URL)
	if err != nil {
		return nil, err
	}
	cfg.URL = strings.TrimSuffix(u, "/api")
	c := &Client{cfg: cfg, api: upstream.NewAPI(Name, opts)}
	c.api.Said = said
	c.api.Except = except
	for _, s := range c.Secrets() {
		c.api.Redactor.Add(s)
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

// call is a request to Cockpit's API, below {site}/api, with the key in
// the api-key header (never in the query string, where Cockpit also looks
// first: A1, K7). Only GETs are retried.
func (c *Client) call(method, path string, query url.Values, body any) upstream.Request {
	return upstream.Request{Method: method, Base: c.cfg.URL + "/api", Path: path, Query: query, Body: body,
		Auth: func(h http.Header, _ url.Values) { h.Set("api-key", c.cfg.APIKey.Secret.Reveal()) }}
}

// noKey is a request that needs no key (the healthcheck).
func (c *Client) noKey(method, path string) upstream.Request {
	r := c.call(method, path, nil, nil)
	r.Auth = nil
	return r
}

// apiError is Cockpit's error body: {"error":"..."}, and for a 500
// {"error": "500", "message": "system error"} (docs/providers/cockpit.md M6).
type apiError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// said reads an error body's text: error, then message.
func said(resp *upstream.Response) upstream.Said {
	var ae apiError
	if json.Unmarshal(resp.Body, &ae) != nil {
		return upstream.Said{}
	}
	m := ae.Error
	if ae.Message != "" {
		if m != "" {
			m += ": "
		}
		m += ae.Message
	}
	return upstream.Said{Message: m}
}

// message is an error answer's text, cleaned.
func (c *Client) message(resp *upstream.Response) string { return c.api.Clean(said(resp).Message) }

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

// except is Cockpit's part of the status mapping (upstream.API.Error).
// 412 carries several meanings in Cockpit; only "Authentication failed" is
// a rejected key (A2), and "Not allowed" is api.security.origins refusing
// the request's origin (M6). A 404 is a missing model, item or route.
// Cockpit's limiter sends no Retry-After (M6); a proxy's is passed on.
func except(resp *upstream.Response, e *provider.UpstreamError) {
	switch {
	case authFailed(resp):
		e.Kind = provider.ErrUnauthorized
	case resp.Status == http.StatusPreconditionFailed && e.Message == "Not allowed":
		e.Kind = provider.ErrPermission
	case resp.Status == http.StatusNotFound:
		e.Kind = provider.ErrNotFound
		if e.Message == "" {
			e.Message = "not found (empty answer)"
		}
	}
}

// notFoundOr maps a 404 on a model path: the model or the item.
func (c *Client) notFoundOr(resp *upstream.Response, model, item string) error {
	switch {
	case modelMissing(resp):
		return &provider.NotFoundError{What: "content type", Name: model}
	case emptyNotFound(resp) && item != "":
		return &provider.NotFoundError{What: "object", Name: item}
	}
	return c.api.Error(resp)
}

// badRequest maps 400 {"error":"<filter> is not valid json"} (Q1).
func (c *Client) badRequest(resp *upstream.Response) error {
	m := c.message(resp)
	for param, field := range map[string]string{"<filter>": "filter", "<sort>": "sort", "<fields>": "fields"} {
		if strings.HasPrefix(m, param) {
			return &provider.FieldError{Field: field, Problem: "Cockpit refused it: " + m, Fix: "use plain values and the operators $eq, $ne, $in, $gt, $gte, $lt, $lte"}
		}
	}
	return c.api.Error(resp)
}

func errDetail(err error) string {
	var ue *provider.UpstreamError
	if errors.As(err, &ue) {
		return ue.Error()
	}
	return "the request failed"
}
