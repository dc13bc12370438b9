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
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

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
	cfg    Config
	caller *upstream.Caller
	log    *slog.Logger
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
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
	opts = opts.WithDefaults()
	now, sleep, log, hc := opts.Now, opts.Sleep, opts.Logger, opts.HTTP
	counted := *hc
	base := counted.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	counted.Transport = &countingTransport{base: base}
	red := auth.NewRedactor()
	red.Add(cfg.APIKey.Reveal())
	red.Add(cfg.Token.Reveal())
	return &Client{
		cfg: cfg, caller: &upstream.Caller{HTTP: &counted, Now: now, Sleep: sleep, Budget: newBudget(now, sleep)},
		log: log, now: now, sleep: sleep, redact: red,
		apiKey: cfg.APIKey, agentID: cfg.AgentID, artifacts: map[string]string{},
	}, nil
}

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
	var payload []byte
	if cl.body != nil {
		b, err := json.Marshal(cl.body)
		if err != nil {
			return result{}, fmt.Errorf("agrenting: encoding %s %s: %w", cl.method, cl.path, err)
		}
		payload = b
	}
	reauthed := false
	var pendingWaited time.Duration
	counter := &sends{}
	for attempt := 0; ; attempt++ {
		usedSession, resp, err := c.send(context.WithValue(ctx, sendsKey{}, counter), cl, payload)
		if err != nil {
			return result{sends: int(counter.n.Load())}, c.transportError(err)
		}
		var env envelope
		decodeErr := json.Unmarshal(resp.Body, &env)
		if resp.Status >= 200 && resp.Status <= 299 && decodeErr == nil && len(env.Errors) == 0 {
			return result{status: resp.Status, env: env, raw: resp.Body, sends: int(counter.n.Load())}, nil
		}
		ue := c.statusError(resp, env)
		if cl.method == http.MethodGet && ue.Kind == provider.ErrOutcomeUnknown {
			ue.Kind = provider.ErrUnavailable // a read changes nothing: it just failed
		}
		switch {
		case resp.Status == http.StatusUnauthorized && usedSession != "" && !reauthed && c.hasKey():
			// The session expired or was logged out: get a new one with
			// the key and resend, with the same idempotency key.
			reauthed = true
			if aerr := c.renewSession(ctx, usedSession); aerr != nil {
				return result{sends: int(counter.n.Load())}, aerr
			}
			continue
		case resp.Status == http.StatusConflict && ue.Code == "IDEMPOTENCY_PENDING" && cl.idemKey != "":
			wait := min(250*time.Millisecond<<min(attempt, 4), maxPendingSleep)
			dl, hasDL := ctx.Deadline()
			if (hasDL && c.now().Add(wait).After(dl)) || (!hasDL && pendingWaited+wait > maxPendingWait) {
				return result{sends: int(counter.n.Load())}, fmt.Errorf("agrenting: %w: %s %s is still being processed by Agrenting (409 IDEMPOTENCY_PENDING) and the call's time ran out; it may complete: check before repeating it",
					provider.ErrOutcomeUnknown, cl.method, cl.path)
			}
			if serr := c.sleep(ctx, wait); serr != nil {
				return result{sends: int(counter.n.Load())}, fmt.Errorf("agrenting: %w: %s %s was still being processed when the call ended: %w", provider.ErrOutcomeUnknown, cl.method, cl.path, serr)
			}
			pendingWaited += wait
			continue
		}
		return result{status: resp.Status, env: env, raw: resp.Body, sends: int(counter.n.Load())}, ue
	}
}

// send makes one request (the Caller may retry it) and returns the
// client's session token when that authenticated it.
func (c *Client) send(ctx context.Context, cl call, payload []byte) (string, *upstream.Response, error) {
	target := c.cfg.APIURL + cl.path
	if len(cl.query) > 0 {
		target += "?" + cl.query.Encode()
	}
	var rdr io.Reader
	if payload != nil {
		rdr = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, target, rdr)
	if err != nil {
		return "", nil, fmt.Errorf("agrenting: building %s %s: %w", cl.method, cl.path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "keygate")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.idemKey != "" {
		req.Header.Set("X-Idempotency-Key", cl.idemKey)
	}
	c.mu.Lock()
	usedSession := ""
	switch {
	case !cl.asKey.IsZero() || !cl.asSession.IsZero():
		if !cl.asKey.IsZero() {
			req.Header.Set("X-API-Key", cl.asKey.Reveal())
		}
		if !cl.asSession.IsZero() {
			req.Header.Set("Authorization", "Bearer "+cl.asSession.Reveal())
		}
	case !c.session.IsZero() && !cl.useKey:
		req.Header.Set("Authorization", "Bearer "+c.session.Reveal())
		usedSession = c.session.Reveal()
	case !c.apiKey.IsZero():
		req.Header.Set("X-API-Key", c.apiKey.Reveal())
	default:
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token.Reveal())
		req.Header.Set("X-Agent-ID", c.cfg.AgentID)
	}
	c.mu.Unlock()
	// POST and PUT carry an idempotency key, so retrying them is safe.
	idempotent := cl.method == http.MethodGet || cl.method == http.MethodHead || cl.idemKey != ""
	start := time.Now()
	resp, err := c.caller.Do(req, idempotent)
	if err != nil {
		c.log.DebugContext(ctx, "agrenting request", "method", cl.method, "path", cl.path, "error", c.redact.Redact(err.Error()), "duration", time.Since(start))
		return usedSession, nil, err
	}
	var m struct {
		Meta meta `json:"meta"`
	}
	_ = json.Unmarshal(resp.Body, &m)
	c.log.DebugContext(ctx, "agrenting request", "method", cl.method, "path", cl.path, "status", resp.Status,
		"duration", time.Since(start), "request_id", c.clean(requestID(resp, &envelope{Meta: m.Meta})))
	return usedSession, resp, nil
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

// transportError is a request that got no answer.
func (c *Client) transportError(err error) error {
	// keygate's own refusals (the budget held the request back, or kept it
	// for callers with a scope) pass through as they are: nothing was sent.
	var rationed *provider.RationedError
	if errors.As(err, &rationed) {
		return rationed
	}
	if held, ok := asUpstream(err); ok {
		return held
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("agrenting: %w", err)
	}
	return fmt.Errorf("agrenting: %w: %w", provider.ErrUnavailable, &redacted{msg: c.redact.Redact(err.Error()), err: err})
}

// redacted is an error whose text went through the redactor but whose
// chain (errors.Is) is kept.
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

func requestID(resp *upstream.Response, env *envelope) string {
	if env != nil && env.Meta.RequestID != "" {
		return env.Meta.RequestID
	}
	return resp.Header.Get("X-Request-Id")
}

var retryAfterText = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)retry after (\d{1,6}) seconds?`) })

// statusError maps an error answer. Kind is left nil where the meaning
// depends on the endpoint (404, 422, 409, 423); callers refine those.
func (c *Client) statusError(resp *upstream.Response, env envelope) *provider.UpstreamError {
	ue := &provider.UpstreamError{Provider: Name, Status: resp.Status, RequestID: c.clean(requestID(resp, &env))}
	if len(env.Errors) > 0 {
		e := env.Errors[0]
		ue.Code = c.clean(e.Code)
		msg := e.Message
		if e.Field != "" {
			msg = e.Field + ": " + msg
		}
		if d := detailText(e.Details); d != "" {
			msg += " (" + d + ")"
		}
		ue.Message = c.clean(msg)
	} else if resp.Status < 200 || resp.Status > 299 {
		ue.Message = http.StatusText(resp.Status)
	} else {
		ue.Message = "the answer is not the JSON envelope expected"
	}
	switch {
	case resp.Status == http.StatusUnauthorized:
		ue.Kind = provider.ErrUnauthorized
	case resp.Status == http.StatusForbidden || resp.Status == http.StatusPaymentRequired:
		ue.Kind = provider.ErrPermission
	case resp.Status == http.StatusTooManyRequests:
		ue.Kind = provider.ErrRateLimited
		if d, ok := upstream.RetryAfter(resp.Header, c.now()); ok {
			ue.RetryAfter = d
		} else if m := retryAfterText().FindStringSubmatch(ue.Message); m != nil {
			n, _ := strconv.Atoi(m[1])
			ue.RetryAfter = time.Duration(n) * time.Second
		}
	case resp.Status >= 500:
		ue.Kind = provider.ErrUnavailable
	case resp.Status >= 200 && resp.Status <= 299:
		// An errors array on a 2xx, or junk: the official client treats
		// both as failures. Whether anything happened is unknown.
		ue.Kind = provider.ErrOutcomeUnknown
	}
	return ue
}

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

// clean makes an API's text safe to show: key-shaped strings and every
// secret the client holds masked, cut to 200 bytes.
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

func asUpstream(err error) (*provider.UpstreamError, bool) {
	var ue *provider.UpstreamError
	ok := errors.As(err, &ue)
	return ue, ok
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
