// Package agrenting is keygate's provider for Agrenting, an agent
// marketplace: its content is the agent's tasks and their artifacts, and its
// credentials (the agent's API keys) are managed live through the API.
//
// Wire facts, each with its source, are in docs/providers/agrenting.md;
// the fake in agrentingtest reproduces them. Every POST and PUT carries an
// X-Idempotency-Key generated once per adapter method call and reused by
// every retry of that call, so those requests are retried like GETs (on
// 5xx, 429 and network errors) without ever creating twice: the platform
// replays the first answer. A 409 IDEMPOTENCY_PENDING (the first attempt
// still running) is waited out with the same key within the call's
// deadline.
package agrenting

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/upstream"
)

// Name is the provider's name in keygate.
const Name = "agrenting"

// How long a 409 IDEMPOTENCY_PENDING is waited out when the call has no
// deadline, and the longest single wait.
const (
	maxPendingWait  = 15 * time.Second
	maxPendingSleep = 2 * time.Second
)

// Options are the Client's collaborators; see upstream.Options.
type Options = upstream.Options

// Client talks to Agrenting as one agent. It is safe for concurrent use.
type Client struct {
	cfg Config
	api *upstream.API
	// redact is api.Redactor: every secret the client holds is added to it.
	redact *auth.Redactor

	authMu sync.Mutex // one authentication at a time

	mu         sync.Mutex
	apiKey     auth.Secret   // the agent key in use; replaced by a rotation
	retired    []string      // keys rotated away, still redacted
	known      []auth.Secret // agent keys met lately (issued, verified), by keyID; bounded
	session    auth.Secret   // from Authenticate; never logged
	sessionExp time.Time
	agentID    string
	agentName  string
	artifacts  map[string]string // artifact id -> task id, for Get
}

// New returns a client for cfg, as LoadConfig made it.
func New(cfg Config, opts Options) (*Client, error) {
	if cfg.APIKey.IsZero() == cfg.Token.IsZero() {
		return nil, fmt.Errorf("agrenting: set exactly one of %s and %s", EnvAPIKey, EnvToken)
	}
	if !cfg.Token.IsZero() && cfg.AgentID == "" {
		return nil, fmt.Errorf("agrenting: %s needs %s", EnvToken, EnvAgentID)
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	if cfg.RevokePath == "" {
		cfg.RevokePath = DefaultRevokePath
	}
	api := upstream.NewAPI(Name, opts)
	api.Caller.HTTP = counting(api.Caller.HTTP)
	api.Caller.Budget = newBudget(api.Now, api.Caller.Sleep)
	api.Said = said
	api.RequestID = requestID
	api.Except = except
	api.Redactor.Add(cfg.APIKey.Reveal())
	api.Redactor.Add(cfg.Token.Reveal())
	return &Client{cfg: cfg, api: api, redact: api.Redactor,
		apiKey: cfg.APIKey, agentID: cfg.AgentID, artifacts: map[string]string{}}, nil
}

func (c *Client) now() time.Time { return c.api.Now() }

// clean is text the API sent, made safe for an error (upstream.API.Clean).
func (c *Client) clean(s string) string { return c.api.Clean(s) }

// Name returns "agrenting".
func (c *Client) Name() string { return Name }

// Secrets returns every secret the client holds now: the configured key or
// token, the session token once Authenticate ran, and keys issued to it by
// rotation (register them again after Authenticate and RotateKey; the
// rotation engine's Swap hands over the new key too).
func (c *Client) Secrets() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, s := range []string{c.cfg.APIKey.Reveal(), c.cfg.Token.Reveal(), c.apiKey.Reveal(), c.session.Reveal()} {
		if s != "" && !contains(out, s) {
			out = append(out, s)
		}
	}
	for _, s := range c.retired {
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Config returns the configuration (secrets stay Secrets).
func (c *Client) Config() Config { return c.cfg }

// sends counts the attempts of one request (the Caller's retries included),
// so a caller can tell a first answer from one to a retry.
type sends struct{ n atomic.Int32 }

type sendsKey struct{}

type countingTransport struct{ base http.RoundTripper }

// counting returns a copy of hc whose sends are counted.
func counting(hc *http.Client) *http.Client {
	counted := *hc
	base := counted.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	counted.Transport = &countingTransport{base: base}
	return &counted
}

func (s *sends) count() int { return int(s.n.Load()) }

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if s, ok := req.Context().Value(sendsKey{}).(*sends); ok {
		s.n.Add(1)
	}
	return t.base.RoundTrip(req)
}

// newIdempotencyKey is one key per adapter method call.
func newIdempotencyKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "keygate-" + hex.EncodeToString(b)
}

// call is one API operation.
type call struct {
	method string
	path   string // relative to the API base
	query  url.Values
	body   any
	// idemKey is the call's X-Idempotency-Key (POST and PUT).
	idemKey string
	// useKey sends the agent key even when a session exists
	// (Authenticate).
	useKey bool
	// asKey or asSession, when set, authenticate this call instead of the
	// client's own credential (the rotation engine checks and uses
	// credentials other than the one in use); with both, both headers are
	// sent (logout). Such a call never re-authenticates.
	asKey, asSession auth.Secret
}

// envelope is Agrenting's {data, meta, errors}.
type envelope struct {
	Data   json.RawMessage `json:"data"`
	Meta   meta            `json:"meta"`
	Errors []apiError      `json:"errors"`
}

type meta struct {
	RequestID  string      `json:"request_id"`
	Pagination *pagination `json:"pagination"`
}

type pagination struct {
	TotalCount *int    `json:"total_count"`
	Cursor     *string `json:"cursor"`
	HasMore    bool    `json:"has_more"`
}

type apiError struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Field   string          `json:"field"`
	Details json.RawMessage `json:"details"`
}

// result is an answer, decoded. raw is its body as it came, for answers
// whose shape no source documents.
type result struct {
	status int
	env    envelope
	raw    []byte
	sends  int
}

// do sends cl and decodes the envelope. A non-2xx answer, or a 2xx whose
// errors array is not empty, is an error (a *provider.UpstreamError); so is
// a request that got no answer. It re-authenticates once when a session
// token is refused, and waits out 409 IDEMPOTENCY_PENDING.
func (c *Client) do(ctx context.Context, cl call) (result, error) {
	counter := &sends{}
	var st retries
	for {
		usedSession, resp, err := c.send(context.WithValue(ctx, sendsKey{}, counter), cl)
		if err != nil {
			return result{sends: counter.count()}, err
		}
		res, ue := c.answer(cl, resp)
		res.sends = counter.count()
		if ue == nil {
			return res, nil
		}
		again, err := c.again(ctx, cl, ue, usedSession, &st)
		switch {
		case err != nil:
			return result{sends: res.sends}, err
		case !again:
			return res, ue
		}
	}
}

// answer decodes an answer: its envelope, and its error when it is not a
// 2xx with an empty errors array.
func (c *Client) answer(cl call, resp *upstream.Response) (result, *provider.UpstreamError) {
	var env envelope
	decodeErr := json.Unmarshal(resp.Body, &env)
	res := result{status: resp.Status, env: env, raw: resp.Body}
	if resp.OK() && decodeErr == nil && len(env.Errors) == 0 {
		return res, nil
	}
	ue := c.api.Error(resp)
	if cl.method == http.MethodGet && errors.Is(ue.Kind, provider.ErrOutcomeUnknown) {
		ue.Kind = provider.ErrUnavailable // a read changes nothing: it just failed
	}
	return res, ue
}

// retries is what one call has done about refused answers so far.
type retries struct {
	attempt       int
	reauthed      bool
	pendingWaited time.Duration
}

// again handles the answers a call outlives: a refused session (renewed
// once with the key, then the request is resent with the same idempotency
// key) and 409 IDEMPOTENCY_PENDING (waited out). It reports whether to
// send again.
func (c *Client) again(ctx context.Context, cl call, ue *provider.UpstreamError, usedSession string, st *retries) (bool, error) {
	st.attempt++
	switch {
	case ue.Status == http.StatusUnauthorized && usedSession != "" && !st.reauthed && c.hasKey():
		st.reauthed = true
		return true, c.renewSession(ctx, usedSession)
	case ue.Status == http.StatusConflict && ue.Code == "IDEMPOTENCY_PENDING" && cl.idemKey != "":
		return true, c.waitPending(ctx, cl, st)
	}
	return false, nil
}

// waitPending waits before the next try of a request Agrenting is still
// processing: a growing wait, within the call's deadline, or
// maxPendingWait in all without one.
func (c *Client) waitPending(ctx context.Context, cl call, st *retries) error {
	wait := min(250*time.Millisecond<<min(st.attempt-1, 4), maxPendingSleep)
	dl, hasDL := ctx.Deadline()
	if (hasDL && c.now().Add(wait).After(dl)) || (!hasDL && st.pendingWaited+wait > maxPendingWait) {
		return fmt.Errorf("agrenting: %w: %s %s is still being processed by Agrenting (409 IDEMPOTENCY_PENDING) and the call's time ran out; it may complete: check before repeating it",
			provider.ErrOutcomeUnknown, cl.method, cl.path)
	}
	if err := c.api.Caller.Sleep(ctx, wait); err != nil {
		return fmt.Errorf("agrenting: %w: %s %s was still being processed when the call ended: %w", provider.ErrOutcomeUnknown, cl.method, cl.path, err)
	}
	st.pendingWaited += wait
	return nil
}

// send makes one request (the Caller may retry it: POST and PUT carry an
// idempotency key, so retrying them is safe) and returns the client's
// session token when that authenticated it.
func (c *Client) send(ctx context.Context, cl call) (string, *upstream.Response, error) {
	creds, usedSession := c.credentials(cl)
	r := upstream.Request{Method: cl.method, Base: c.cfg.APIURL, Path: cl.path, Query: cl.query, Body: cl.body, Idempotent: cl.idemKey != "",
		Auth: func(h http.Header, _ url.Values) {
			for k, v := range creds {
				h.Set(k, v)
			}
		}}
	if cl.idemKey != "" {
		r.Header = http.Header{"X-Idempotency-Key": {cl.idemKey}}
	}
	resp, err := c.api.Send(ctx, r)
	return usedSession, resp, err
}

// credentials are the headers that authenticate cl: the credentials it
// names, else the session, else the agent key, else the user token with
// the agent's id. usedSession is the session token when that is used.
func (c *Client) credentials(cl call) (h map[string]string, usedSession string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h = map[string]string{}
	switch {
	case !cl.asKey.IsZero() || !cl.asSession.IsZero():
		if !cl.asKey.IsZero() {
			h["X-API-Key"] = cl.asKey.Reveal()
		}
		if !cl.asSession.IsZero() {
			h["Authorization"] = "Bearer " + cl.asSession.Reveal()
		}
	case !c.session.IsZero() && !cl.useKey:
		usedSession = c.session.Reveal()
		h["Authorization"] = "Bearer " + usedSession
	case !c.apiKey.IsZero():
		h["X-API-Key"] = c.apiKey.Reveal()
	default:
		h["Authorization"] = "Bearer " + c.cfg.Token.Reveal()
		h["X-Agent-ID"] = c.cfg.AgentID
	}
	return h, usedSession
}

func (c *Client) hasKey() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.apiKey.IsZero()
}

func (c *Client) dropSession() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.session = auth.Secret{}
	c.sessionExp = time.Time{}
}

// requestID is meta.request_id, else the X-Request-Id header.
func requestID(resp *upstream.Response) string {
	var m struct {
		Meta meta `json:"meta"`
	}
	if json.Unmarshal(resp.Body, &m) == nil && m.Meta.RequestID != "" {
		return m.Meta.RequestID
	}
	return resp.Header.Get("X-Request-Id")
}

// said reads the first entry of the envelope's errors array: its code, and
// its message with the field and the validation details. An error answer
// without one says its status text; a 2xx, that it is not an envelope.
func said(resp *upstream.Response) upstream.Said {
	var env envelope
	_ = json.Unmarshal(resp.Body, &env)
	switch {
	case len(env.Errors) > 0:
		e := env.Errors[0]
		msg := e.Message
		if e.Field != "" {
			msg = e.Field + ": " + msg
		}
		if d := detailText(e.Details); d != "" {
			msg += " (" + d + ")"
		}
		return upstream.Said{Code: e.Code, Message: msg}
	case !resp.OK():
		return upstream.Said{Message: http.StatusText(resp.Status)}
	}
	return upstream.Said{Message: "the answer is not the JSON envelope expected"}
}

// except is Agrenting's part of the status mapping (upstream.API.Error):
// an errors array on a 2xx, or junk, is a failure, as the official client
// treats both; whether anything happened is unknown. A 429 without a
// retry-after header may say when to retry in its message. 404, 409, 422
// and 423 keep no kind: their meaning depends on the endpoint, and callers
// refine them.
func except(resp *upstream.Response, e *provider.UpstreamError) {
	switch {
	case resp.OK():
		e.Kind = provider.ErrOutcomeUnknown
	case errors.Is(e.Kind, provider.ErrRateLimited) && e.RetryAfter == 0:
		if m := retryAfterText().FindStringSubmatch(e.Message); m != nil {
			n, _ := strconv.Atoi(m[1])
			e.RetryAfter = time.Duration(n) * time.Second
		}
	}
}

var retryAfterText = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)retry after (\d{1,6}) seconds?`) })

// detailText renders VALIDATION_ERROR details, {"field": ["message"]}.
func detailText(raw json.RawMessage) string {
	var m map[string][]string
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+" "+strings.Join(m[k], ", "))
	}
	return strings.Join(parts, "; ")
}

// validation turns a 422 VALIDATION_ERROR into a FieldError on the first
// field it names, as keygate calls it (fields.<name>).
func validation(ue *provider.UpstreamError, env envelope, fieldMap map[string]string) error {
	if ue.Status != http.StatusUnprocessableEntity || ue.Code != "VALIDATION_ERROR" || len(env.Errors) == 0 {
		return ue
	}
	e := env.Errors[0]
	var m map[string][]string
	_ = json.Unmarshal(e.Details, &m)
	field := e.Field
	if field == "" {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if len(keys) > 0 {
			field = keys[0]
		}
	}
	name := "fields"
	if f, ok := fieldMap[field]; ok {
		name = f
	} else if field != "" {
		name = "fields." + field
	}
	return &provider.FieldError{Field: name, Problem: "Agrenting refused it: " + ue.Message, Fix: "correct the value and try again"}
}

// authAnswer is POST /auth/authenticate's data.
type authAnswer struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	Agent     struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"agent"`
}

// Authenticate exchanges the agent key for a session token (POST
// /auth/authenticate with X-API-Key) and uses it for later calls; it is
// kept in memory only, never logged, and listed by Secrets. It also learns
// the agent's id and name. With a user token it is an error: the token is
// used as it is. Agrenting allows 10 authentications per minute per IP
// (then locks out for 5 minutes; docs/providers/agrenting.md "Rate
// limits"), so call it once, at start-up.
func (c *Client) Authenticate(ctx context.Context) error {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	return c.authenticate(ctx)
}

// renewSession replaces session token refused, which a request was just
// refused with. Requests refused with the same token share one
// authentication: the first to get here makes it, and the others find a
// newer token and use that, so a burst of 401s after the session expired
// costs one of the 10 authentications a minute, not one each.
func (c *Client) renewSession(ctx context.Context, refused string) error {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	c.mu.Lock()
	current := c.session.Reveal()
	c.mu.Unlock()
	if current != "" && current != refused {
		return nil // renewed meanwhile
	}
	c.dropSession()
	return c.authenticate(ctx)
}

// authenticate is Authenticate; callers hold authMu.
func (c *Client) authenticate(ctx context.Context) error {
	c.mu.Lock()
	key := c.apiKey
	c.mu.Unlock()
	if key.IsZero() {
		return fmt.Errorf("agrenting: Authenticate needs %s (an agent key); %s is used as it is", EnvAPIKey, EnvToken)
	}
	res, err := c.do(ctx, call{method: http.MethodPost, path: "/auth/authenticate", idemKey: newIdempotencyKey(), useKey: true})
	if err != nil {
		return fmt.Errorf("agrenting: authenticating: %w", err)
	}
	var a authAnswer
	if err := json.Unmarshal(res.env.Data, &a); err != nil || a.Token == "" || a.Agent.ID == "" {
		return fmt.Errorf("agrenting: authenticating: the answer has no token or agent")
	}
	c.redact.Add(a.Token)
	exp, _ := time.Parse(time.RFC3339Nano, a.ExpiresAt)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg.AgentID != "" && c.cfg.AgentID != a.Agent.ID {
		return fmt.Errorf("agrenting: %s names agent %s, but the key belongs to agent %s", EnvAgentID, c.cfg.AgentID, a.Agent.ID)
	}
	c.session, c.sessionExp = auth.NewSecret(a.Token), exp
	c.agentID, c.agentName = a.Agent.ID, a.Agent.Name
	return nil
}

// learnAgent records the agent id when the client does not know it yet.
func (c *Client) learnAgent(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.agentID == "" {
		c.agentID = id
	}
}

// agent returns the agent id, authenticating once when it is not known.
func (c *Client) agent(ctx context.Context) (string, error) {
	c.mu.Lock()
	id := c.agentID
	c.mu.Unlock()
	if id != "" {
		return id, nil
	}
	if err := c.Authenticate(ctx); err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.agentID, nil
}
