// Package upstream is the HTTP plumbing keygate's remote providers share:
// a client that never carries credentials to another host, bounded response
// bodies, and retries of idempotent requests that honour Retry-After.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for a Caller.
const (
	DefaultMaxBody    = 4 << 20
	DefaultMaxRetries = 2
	DefaultMaxWait    = 10 * time.Second
	DefaultTimeout    = 30 * time.Second
)

// ErrTooLarge is returned when a response body exceeds the Caller's limit.
var ErrTooLarge = errors.New("response body too large")

// NewHTTPClient returns a client for calling an upstream API. It refuses to
// follow a redirect to another host, so an Authorization header or a key in
// a header never reaches a server it was not meant for.
func NewHTTPClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &http.Client{
		Timeout:   timeout,
		Transport: sharedTransport(),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
				return fmt.Errorf("refusing redirect to another host (%s)", req.URL.Host)
			}
			return nil
		},
	}
}

// maxIdlePerHost is how many kept-alive connections to one upstream host
// stay open. http.DefaultTransport keeps 2, so with more calls in flight
// (several HTTP sessions using one provider) every answer beyond the second
// closes its connection and the next call dials again.
const maxIdlePerHost = 32

// sharedTransport is http.DefaultTransport with room for maxIdlePerHost
// idle connections per host, shared by every client as DefaultTransport
// would be. Should DefaultTransport have been replaced by something else,
// that is used as it is.
var sharedTransport = sync.OnceValue(func() http.RoundTripper {
	dt, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return http.DefaultTransport
	}
	t := dt.Clone()
	t.MaxIdleConnsPerHost = maxIdlePerHost
	return t
})

// Response is an upstream answer with its body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Caller sends requests to one upstream API.
type Caller struct {
	HTTP       *http.Client
	MaxBody    int64         // 0: DefaultMaxBody
	MaxRetries int           // 0: DefaultMaxRetries; negative: none
	MaxWait    time.Duration // longest single wait for Retry-After; 0: DefaultMaxWait
	Now        func() time.Time
	// Sleep waits d or until ctx is done; tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Budget, when set, is the provider's rate limit: every send, retries
	// included, takes a slot first, outside the http.Client so that its
	// Timeout does not count the wait, and every answer is shown to it.
	Budget *Budget
	// Wait reads how long an answer asks the client to wait before it
	// sends again; nil: its Retry-After header (RetryAfter). A retry waits
	// that long, and a 429 turned into an error (API.Error) carries it.
	Wait func(resp *Response, now time.Time) (time.Duration, bool)
}

func (c *Caller) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Caller) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	return Sleep(ctx, d)
}

// Do sends req and reads its body, up to MaxBody bytes. An idempotent
// request is retried on 429, 502, 503, 504 and network errors: after
// the wait the answer asks for (Wait) when it gives one, else after
// a jittered exponential backoff, and never when the wait would not fit
// MaxWait or ctx's deadline; then the last answer is returned as it is. A
// request that is not idempotent is sent once. With a Budget, a send that
// gets no slot is not made: the first one's refusal (a
// *provider.RationedError or an ErrRateLimited *provider.UpstreamError) is
// returned as it is, a retry's leaves the last answer. Errors never include
// the request URL, which may carry a key in its query string.
func (c *Caller) Do(req *http.Request, idempotent bool) (*Response, error) {
	retries := c.MaxRetries
	switch {
	case retries == 0:
		retries = DefaultMaxRetries
	case retries < 0:
		retries = 0
	}
	if !idempotent {
		retries = 0
	}
	var resp *Response
	var err error
	for attempt := 0; ; attempt++ {
		if attempt > 0 && req.GetBody != nil {
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, fmt.Errorf("%s %s: rewinding body: %w", req.Method, req.URL.Path, gerr)
			}
			req.Body = body
		}
		if berr := c.Budget.Take(req.Context()); berr != nil {
			if attempt == 0 {
				if req.Body != nil {
					_ = req.Body.Close()
				}
				return nil, berr
			}
			// No slot for the retry: the last answer stands.
			return resp, err
		}
		resp, err = c.once(req)
		if resp != nil {
			c.Budget.Observe(resp.Header, resp.Status)
		}
		if attempt >= retries || !retryable(resp, err) {
			return resp, err
		}
		wait := c.backoff(attempt, resp)
		if !c.fits(req.Context(), wait) {
			return resp, err
		}
		if serr := c.sleep(req.Context(), wait); serr != nil {
			return resp, err
		}
	}
}

func (c *Caller) once(req *http.Request) (*Response, error) {
	client := c.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, stripURL(err))
	}
	defer resp.Body.Close()
	limit := c.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading response: %w", req.Method, req.URL.Path, stripURL(err))
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%s %s: %w (over %d bytes)", req.Method, req.URL.Path, ErrTooLarge, limit)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// stripURL drops the URL from a *url.Error, whose text would otherwise
// carry a query-string key.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}

func retryable(resp *Response, err error) bool {
	if err != nil {
		return !errors.Is(err, ErrTooLarge) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	switch resp.Status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func (c *Caller) backoff(attempt int, resp *Response) time.Duration {
	if resp != nil {
		if d, ok := c.wait(resp, c.now()); ok {
			return d
		}
	}
	base := 250 * time.Millisecond << attempt
	return base/2 + rand.N(base/2+1)
}

func (c *Caller) wait(resp *Response, now time.Time) (time.Duration, bool) {
	if c.Wait != nil {
		return c.Wait(resp, now)
	}
	return RetryAfter(resp.Header, now)
}

func (c *Caller) fits(ctx context.Context, wait time.Duration) bool {
	maxWait := c.MaxWait
	if maxWait <= 0 {
		maxWait = DefaultMaxWait
	}
	if wait > maxWait {
		return false
	}
	if dl, ok := ctx.Deadline(); ok && c.now().Add(wait).After(dl) {
		return false
	}
	return true
}

// RetryAfter reads a Retry-After header as seconds or an HTTP date,
// relative to now. It reports false when the header is absent or junk; a
// date in the past or a negative number gives zero.
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, true
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now)), true
	}
	return 0, false
}
