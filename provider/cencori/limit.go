package cencori

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/provider/upstream"
)

// Cencori's limit: 60 requests in any 60 s (a sliding window in Redis, per
// project, across AI endpoints). keygate keeps under it on its side, so a
// burst of tool calls waits for a slot instead of collecting 429s.
const (
	rateLimit  = 60
	rateWindow = time.Minute
)

// limiter is a sliding-window limiter with the server's own semantics: a
// request may go when fewer than limit requests went in the last window. It
// also holds every request back until a time the server named (Retry-After,
// retry_after_ms, or an X-RateLimit-Reset with nothing remaining), so no
// request is sent before the deadline the server gave.
type limiter struct {
	mu      sync.Mutex
	limit   int
	window  time.Duration
	maxWait time.Duration
	sent    []time.Time // the send times of the last limit requests
	until   time.Time   // the server asked for no request before this
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) error
}

// heldBack is returned when the next slot is further away than the caller
// can wait. It reports itself as context.DeadlineExceeded so that
// upstream.Caller does not retry it: no request was sent.
type heldBack struct{ wait time.Duration }

func (e *heldBack) Error() string {
	return fmt.Sprintf("held back by keygate's rate limiter: next slot in %s", e.wait.Round(time.Millisecond))
}

func (e *heldBack) Is(target error) bool { return target == context.DeadlineExceeded }

// wait reserves the next slot and sleeps until it. It refuses, without
// reserving, when the slot is more than maxWait away or past ctx's
// deadline.
func (l *limiter) wait(ctx context.Context) error {
	l.mu.Lock()
	now := l.now()
	at := now
	if l.until.After(at) {
		at = l.until
	}
	if len(l.sent) >= l.limit {
		if free := l.sent[len(l.sent)-l.limit].Add(l.window); free.After(at) {
			at = free
		}
	}
	d := at.Sub(now)
	if d > 0 {
		dl, ok := ctx.Deadline()
		if d > l.maxWait || (ok && at.After(dl)) {
			l.mu.Unlock()
			return &heldBack{wait: d}
		}
	}
	l.sent = append(l.sent, at)
	if len(l.sent) > l.limit {
		l.sent = append(l.sent[:0], l.sent[len(l.sent)-l.limit:]...)
	}
	l.mu.Unlock()
	if d <= 0 {
		return nil
	}
	return l.sleep(ctx, d)
}

// block holds requests back for d from now.
func (l *limiter) block(d time.Duration) {
	if d <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.now().Add(d); t.After(l.until) {
		l.until = t
	}
}

// blockUntil holds requests back until t.
func (l *limiter) blockUntil(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.After(l.until) {
		l.until = t
	}
}

// observe reads the rate-limit headers of an answer: a 429's Retry-After,
// and an X-RateLimit-Reset (milliseconds since the epoch) when nothing
// remains in the window, which also catches other clients of the same
// project using it up.
func (l *limiter) observe(h http.Header, status int) {
	if status == http.StatusTooManyRequests {
		if d, ok := upstream.RetryAfter(h, l.now()); ok {
			l.block(d)
		}
	}
	if h.Get("X-RateLimit-Remaining") == "0" || status == http.StatusTooManyRequests {
		if reset, ok := resetTime(h, l.now()); ok {
			l.blockUntil(reset)
		}
	}
}

// resetTime reads X-RateLimit-Reset, a Unix time in milliseconds. A reset
// is never more than one window away; a value further out (a skewed clock,
// a misread header) is capped at that.
func resetTime(h http.Header, now time.Time) (time.Time, bool) {
	ms, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, false
	}
	t := time.UnixMilli(ms)
	if limit := now.Add(rateWindow); t.After(limit) {
		t = limit
	}
	return t, true
}

// attempts counts the sends of one request. The first send waited for its
// slot before the request entered the http.Client (whose Timeout would
// otherwise count the wait); the Caller's retries wait in the transport.
type attempts struct{ n atomic.Int32 }

type attemptsKey struct{}

// firstWaited marks ctx as belonging to a request whose first send already
// has its slot.
func firstWaited(ctx context.Context) context.Context {
	return context.WithValue(ctx, attemptsKey{}, &attempts{})
}

// limitedTransport puts every send, retries included, through the
// limiter, and feeds the limiter every answer's rate-limit headers.
type limitedTransport struct {
	base http.RoundTripper
	lim  *limiter
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	a, _ := req.Context().Value(attemptsKey{}).(*attempts)
	if a != nil && a.n.Add(1) == 1 {
		// The slot was taken in send.
	} else if err := t.lim.wait(req.Context()); err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	resp, err := t.base.RoundTrip(req)
	if err == nil {
		t.lim.observe(resp.Header, resp.StatusCode)
	}
	return resp, err
}
