package upstream

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
	"sync"
	"time"
	"unicode/utf8"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// MaxMessage is the most bytes of an API's own text (a message, a code, a
// request id) that go into an error.
const MaxMessage = 200

// API is one remote provider's HTTP API as keygate calls it: requests
// built one way, sent through a Caller (retries, Budget, size cap), and
// answers turned into the provider sentinel errors one way, with the
// provider supplying only what is its own: how it authenticates (Request.
// Auth), what its error body says (Said), and its exceptions to the common
// status mapping (Except). Everything the API says is cleaned (Clean)
// before it reaches an error or a log line. Configure it before first use;
// it is then safe for concurrent use.
type API struct {
	// Name is keygate's name for the provider ("cosmic"), in errors and
	// log lines.
	Name   string
	Caller *Caller
	// Redactor masks the provider's secrets (Add them) and anything shaped
	// like a credential; nil masks the shapes only.
	Redactor *auth.Redactor
	// Log gets one debug line per request; nil: none.
	Log *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Said reads an error answer's code and message from the provider's
	// error body; nil: the answer says nothing.
	Said func(resp *Response) Said
	// RequestID reads an answer's request id; nil: none. See
	// RequestIDHeader.
	RequestID func(resp *Response) string
	// Except applies the provider's own rules to the error an answer
	// became under the common mapping (Error): it may change its Kind,
	// Message or Code. nil: none.
	Except func(resp *Response, e *provider.UpstreamError)
}

// Said is what an error answer says, as the API wrote it.
type Said struct {
	Code    string
	Message string
}

// NewAPI returns an API named name whose Caller and log use opts'
// collaborators (defaults filled in), with a Redactor that knows the
// credential shapes; Add the provider's secrets to it.
func NewAPI(name string, opts Options) *API {
	opts = opts.WithDefaults()
	return &API{
		Name:     name,
		Caller:   &Caller{HTTP: opts.HTTP, Now: opts.Now, Sleep: opts.Sleep},
		Redactor: auth.NewRedactor(),
		Log:      opts.Logger,
		Now:      opts.Now,
	}
}

// Request is one call to an API.
type Request struct {
	Method string
	// Base is the API's base URL, as CheckBaseURL returned it; Path is
	// below it, already escaped.
	Base, Path string
	Query      url.Values
	// Body is sent JSON-encoded when it is not nil.
	Body any
	// Header holds extra headers, e.g. an idempotency key.
	Header http.Header
	// Auth applies the credential to a copy of Header and Query, e.g. an
	// Authorization header or a key parameter; nil sends none.
	Auth func(h http.Header, q url.Values)
	// Idempotent lets the Caller retry a request other than GET and HEAD
	// (which always may be): one that carries an idempotency key, or that
	// changes nothing.
	Idempotent bool
}

func (r Request) idempotent() bool {
	return r.Idempotent || r.Method == http.MethodGet || r.Method == http.MethodHead
}

// OK reports a 2xx answer.
func (r *Response) OK() bool { return r.Status >= 200 && r.Status < 300 }

// Send builds r, sends it through the Caller and returns the answer,
// whatever its status. A request that got no answer is an error: keygate's
// own refusal to send it (a *provider.RationedError, or the Budget's
// ErrRateLimited *provider.UpstreamError) as it is; anything else (network,
// timeout, cancellation, a refused redirect, a body over the cap) an
// ErrUnavailable *provider.UpstreamError with Status 0 whose chain keeps
// the cause, so that errors.Is still finds context.DeadlineExceeded.
func (a *API) Send(ctx context.Context, r Request) (*Response, error) {
	req, err := a.build(ctx, r)
	if err != nil {
		return nil, err
	}
	start := a.now()
	resp, err := a.Caller.Do(req, r.idempotent())
	a.logRequest(ctx, r, resp, err, start)
	if err != nil {
		return nil, a.noAnswer(err)
	}
	return resp, nil
}

// Do is Send with an answer outside 2xx turned into its error (Error),
// which comes back together with the answer.
func (a *API) Do(ctx context.Context, r Request) (*Response, error) {
	resp, err := a.Send(ctx, r)
	if err != nil {
		return nil, err
	}
	if !resp.OK() {
		return resp, a.Error(resp)
	}
	return resp, nil
}

func (a *API) build(ctx context.Context, r Request) (*http.Request, error) {
	h := r.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	q := url.Values{}
	for k, v := range r.Query {
		q[k] = v
	}
	if r.Auth != nil {
		r.Auth(h, q)
	}
	target := r.Base + r.Path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	var body io.Reader
	if r.Body != nil {
		b, err := json.Marshal(r.Body)
		if err != nil {
			return nil, fmt.Errorf("%s: encoding %s %s: %w", a.Name, r.Method, r.Path, err)
		}
		body = bytes.NewReader(b) // NewRequest sets GetBody, so retries resend it
		h.Set("Content-Type", "application/json")
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, target, body)
	if err != nil {
		// The URL may carry a key in its query string.
		return nil, fmt.Errorf("%s: building %s %s: %s", a.Name, r.Method, r.Path, a.Clean(err.Error()))
	}
	h.Set("Accept", "application/json")
	h.Set("User-Agent", "keygate")
	req.Header = h
	return req, nil
}

// logRequest writes the debug line of one request: its method and path
// (never the query, which may carry a key), and its status, request id
// and duration, or the error.
func (a *API) logRequest(ctx context.Context, r Request, resp *Response, err error, start time.Time) {
	if a.Log == nil || !a.Log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.Path)}
	if err != nil {
		attrs = append(attrs, slog.String("error", a.redact(err.Error())))
	} else {
		attrs = append(attrs, slog.Int("status", resp.Status), slog.String("request_id", a.requestID(resp)))
	}
	attrs = append(attrs, slog.Duration("duration", a.now().Sub(start)))
	a.Log.LogAttrs(ctx, slog.LevelDebug, a.Name+" request", attrs...)
}

// noAnswer is the error of a request that got no answer.
func (a *API) noAnswer(err error) error {
	var rationed *provider.RationedError
	var held *provider.UpstreamError
	switch {
	case errors.As(err, &rationed):
		return rationed
	case errors.As(err, &held):
		return held
	}
	return &noAnswerError{
		UpstreamError: &provider.UpstreamError{Provider: a.Name, Message: a.Clean(err.Error()), Kind: provider.ErrUnavailable},
		cause:         err,
	}
}

// noAnswerError is an ErrUnavailable *provider.UpstreamError that keeps
// its cause's chain for errors.Is; its text is the cleaned one.
type noAnswerError struct {
	*provider.UpstreamError
	cause error
}

func (e *noAnswerError) Unwrap() []error { return []error{e.UpstreamError, e.cause} }

// Error turns an answer outside 2xx (or a 2xx the provider refuses) into
// an *provider.UpstreamError: the provider's code and message (Said) and
// request id, cleaned, and the common mapping of its status (StatusKind;
// a 429 carries the wait the answer asked for), then the provider's
// exceptions (Except).
func (a *API) Error(resp *Response) *provider.UpstreamError {
	var said Said
	if a.Said != nil {
		said = a.Said(resp)
	}
	e := &provider.UpstreamError{Provider: a.Name, Status: resp.Status, Code: a.Clean(said.Code), Message: a.Clean(said.Message),
		RequestID: a.requestID(resp), Kind: StatusKind(resp.Status)}
	if errors.Is(e.Kind, provider.ErrRateLimited) {
		e.RetryAfter, _ = a.Caller.wait(resp, a.now())
	}
	if a.Except != nil {
		a.Except(resp, e)
	}
	return e
}

// StatusKind is the common mapping of an answer's status to the provider
// sentinel errors: 401 a rejected credential, 402 and 403 a refusal (the
// credential works but may not do this: a plan limit, a role), 429 rate
// limited, 5xx unavailable. Any other status has no kind of its own: its
// meaning depends on the endpoint, and providers refine it.
func StatusKind(status int) error {
	switch {
	case status == http.StatusUnauthorized:
		return provider.ErrUnauthorized
	case status == http.StatusForbidden || status == http.StatusPaymentRequired:
		return provider.ErrPermission
	case status == http.StatusTooManyRequests:
		return provider.ErrRateLimited
	case status >= 500:
		return provider.ErrUnavailable
	}
	return nil
}

// BadAnswer is a 2xx answer without the body expected, what saying what
// is wrong with it: for a write, whether it was applied is unknown
// (ErrOutcomeUnknown); for a read, the provider failed (ErrUnavailable).
func (a *API) BadAnswer(resp *Response, write bool, what string) *provider.UpstreamError {
	kind := provider.ErrUnavailable
	if write {
		kind = provider.ErrOutcomeUnknown
	}
	return &provider.UpstreamError{Provider: a.Name, Status: resp.Status, Message: a.Clean(what), RequestID: a.requestID(resp), Kind: kind}
}

// Unsettled is a write whose answer was lost and whose effect reading the
// thing back ("object") could not establish: ErrOutcomeUnknown, with what
// the failure said.
func (a *API) Unsettled(write, thing string, cause error) *provider.UpstreamError {
	msg := "the " + write + " was sent but no answer came back, and reading the " + thing + " back could not tell whether it was applied"
	if ue, ok := errors.AsType[*provider.UpstreamError](cause); ok && ue.Message != "" {
		msg += " (" + ue.Message + ")"
	}
	return &provider.UpstreamError{Provider: a.Name, Message: Cut(msg, MaxMessage), Kind: provider.ErrOutcomeUnknown}
}

// Clean makes text the API sent safe to put in an error or a log line:
// the provider's secrets and anything shaped like a credential masked, then
// cut to MaxMessage bytes.
func (a *API) Clean(s string) string { return Cut(a.redact(s), MaxMessage) }

// shapesOnly masks credential shapes for an API without a Redactor.
var shapesOnly = sync.OnceValue(auth.NewRedactor)

func (a *API) redact(s string) string {
	if a.Redactor == nil {
		return shapesOnly().Redact(s)
	}
	return a.Redactor.Redact(s)
}

// Cut shortens s to at most n bytes on a character boundary, marking the
// cut with "…".
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func (a *API) requestID(resp *Response) string {
	if a.RequestID == nil || resp == nil {
		return ""
	}
	return a.Clean(a.RequestID(resp))
}

// RequestIDHeader returns a RequestID that reads the first of the headers
// names that an answer has.
func RequestIDHeader(names ...string) func(*Response) string {
	return func(resp *Response) string {
		for _, k := range names {
			if v := resp.Header.Get(k); v != "" {
				return v
			}
		}
		return ""
	}
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}
