package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/provider"
)

// secret is a configured key of the test API; csk is a credential of
// another provider, which every API masks by its shape.
const (
	secret = "TESTSECRET0123456789"
	csk    = "csk_0123456789abcdef0123456789abcdef0123456789abcdef"
)

// seen is what a test server received.
type seen struct {
	mu   sync.Mutex
	reqs []*http.Request
	body []string
}

func (s *seen) add(r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, r)
	s.body = append(s.body, string(b))
}

// answering serves status, header and body to every request.
func answering(t *testing.T, status int, header http.Header, body string) (*httptest.Server, *seen) {
	t.Helper()
	s := &seen{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.add(r)
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, s
}

func testAPI(logs io.Writer) *API {
	var log *slog.Logger
	if logs != nil {
		log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a := NewAPI("test", Options{HTTP: NewHTTPClient(time.Second), Logger: log,
		Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
	a.Redactor.Add(secret)
	return a
}

func keyQuery(_ http.Header, q url.Values) { q.Set("key", secret) }

func TestAPIBuildsRequests(t *testing.T) {
	tests := []struct {
		name       string
		req        Request
		wantURL    string
		wantHeader map[string]string // "" means absent
		wantBody   string
	}{
		{"GET with the key in the query", Request{Method: http.MethodGet, Path: "/items", Query: url.Values{"limit": {"2"}, "a": {"x y"}}, Auth: keyQuery},
			"/v1/items?a=x+y&key=" + secret + "&limit=2", map[string]string{"Accept": "application/json", "User-Agent": "keygate", "Content-Type": ""}, ""},
		{"POST with a body, a bearer and an extra header", Request{Method: http.MethodPost, Path: "/items", Body: map[string]any{"b": 1, "a": "é"},
			Header: http.Header{"X-Idempotency-Key": {"k1"}}, Auth: func(h http.Header, _ url.Values) { h.Set("Authorization", "Bearer "+secret) }},
			"/v1/items", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + secret, "X-Idempotency-Key": "k1"}, `{"a":"é","b":1}`},
		{"no credential", Request{Method: http.MethodDelete, Path: "/items/1"}, "/v1/items/1", map[string]string{"Authorization": ""}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, got := answering(t, http.StatusOK, nil, `{}`)
			tc.req.Base = srv.URL + "/v1"
			extra := tc.req.Header.Clone()
			if _, err := testAPI(nil).Send(t.Context(), tc.req); err != nil {
				t.Fatal(err)
			}
			r := got.reqs[0]
			if r.URL.RequestURI() != tc.wantURL || r.Method != tc.req.Method {
				t.Errorf("sent %s %s, want %s", r.Method, r.URL.RequestURI(), tc.wantURL)
			}
			for k, want := range tc.wantHeader {
				if v := r.Header.Get(k); v != want {
					t.Errorf("%s: %q, want %q", k, v, want)
				}
			}
			if got.body[0] != tc.wantBody {
				t.Errorf("body %q, want %q", got.body[0], tc.wantBody)
			}
			if !slices.Equal(tc.req.Header.Values("Authorization"), extra.Values("Authorization")) {
				t.Error("Auth changed the caller's header")
			}
		})
	}
}

// Only GET, HEAD and requests marked idempotent are retried.
func TestAPIRetriesIdempotentOnly(t *testing.T) {
	tests := []struct {
		req  Request
		want int
	}{
		{Request{Method: http.MethodGet}, 3},
		{Request{Method: http.MethodPost}, 1},
		{Request{Method: http.MethodPost, Idempotent: true}, 3},
		{Request{Method: http.MethodDelete}, 1},
	}
	for _, tc := range tests {
		srv, got := answering(t, http.StatusServiceUnavailable, nil, `{}`)
		tc.req.Base = srv.URL
		resp, err := testAPI(nil).Send(t.Context(), tc.req)
		if err != nil || resp.Status != http.StatusServiceUnavailable {
			t.Fatalf("%s: %v %v", tc.req.Method, resp, err)
		}
		if len(got.reqs) != tc.want {
			t.Errorf("%s (idempotent %v): %d sends, want %d", tc.req.Method, tc.req.Idempotent, len(got.reqs), tc.want)
		}
	}
}

// A retry waits what the provider's Wait reads from the answer.
func TestAPIRetryWaitsWhatTheAnswerAsks(t *testing.T) {
	srv, got := answering(t, http.StatusTooManyRequests, nil, `{"retry_after_ms":1500.2}`)
	a := testAPI(nil)
	var slept []time.Duration
	a.Caller.Sleep = func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }
	a.Caller.Wait = func(resp *Response, _ time.Time) (time.Duration, bool) { return RetryAfterMS(resp.Body) }
	_, err := a.Do(t.Context(), Request{Method: http.MethodGet, Base: srv.URL})
	var ue *provider.UpstreamError
	if !errors.As(err, &ue) || !errors.Is(err, provider.ErrRateLimited) || ue.RetryAfter != 1501*time.Millisecond {
		t.Fatalf("err = %#v", err)
	}
	if len(got.reqs) != 3 || !slices.Equal(slept, []time.Duration{1501 * time.Millisecond, 1501 * time.Millisecond}) {
		t.Errorf("%d sends, slept %v", len(got.reqs), slept)
	}
}

func TestAPIError(t *testing.T) {
	said := func(resp *Response) Said {
		var b struct{ Code, Message string }
		_ = json.Unmarshal(resp.Body, &b)
		return Said{Code: b.Code, Message: b.Message}
	}
	// The test provider's exception: 412 "auth" is a rejected key.
	except := func(resp *Response, e *provider.UpstreamError) {
		if resp.Status == http.StatusPreconditionFailed && e.Code == "auth" {
			e.Kind = provider.ErrUnauthorized
		}
	}
	long := strings.Repeat("é", MaxMessage)
	tests := []struct {
		status       int
		header       http.Header
		body         string
		kind         error
		code, msg    string
		retryAfter   time.Duration
		wantID       string
		mustNotCarry []string
	}{
		{401, nil, `{"code":"bad_key","message":"key ` + secret + ` is wrong"}`, provider.ErrUnauthorized, "bad_key", "key [REDACTED:…6789] is wrong", 0, "", []string{secret}},
		{402, nil, `{"message":"upgrade"}`, provider.ErrPermission, "", "upgrade", 0, "", nil},
		{403, nil, `{"message":"leaked ` + csk + `"}`, provider.ErrPermission, "", "", 0, "", []string{csk}},
		{404, nil, `{}`, nil, "", "", 0, "", nil},
		{412, nil, `{"code":"auth"}`, provider.ErrUnauthorized, "auth", "", 0, "", nil},
		{412, nil, `{"code":"other"}`, nil, "other", "", 0, "", nil},
		{429, http.Header{"Retry-After": {"7"}, "X-Request-Id": {"req-" + secret}}, `{}`, provider.ErrRateLimited, "", "", 7 * time.Second, "req-[REDACTED:…6789]", []string{secret}},
		{500, nil, `{"message":"` + long + `"}`, provider.ErrUnavailable, "", "", 0, "", nil},
		{503, nil, `not json`, provider.ErrUnavailable, "", "", 0, "", nil},
	}
	for _, tc := range tests {
		a := testAPI(nil)
		a.Said, a.Except, a.RequestID = said, except, RequestIDHeader("X-Request-Id")
		resp := &Response{Status: tc.status, Header: tc.header, Body: []byte(tc.body)}
		if resp.Header == nil {
			resp.Header = http.Header{}
		}
		e := a.Error(resp)
		if !errors.Is(e.Kind, tc.kind) || e.Status != tc.status || e.Provider != "test" || e.Code != tc.code || e.RetryAfter != tc.retryAfter || e.RequestID != tc.wantID {
			t.Errorf("%d %s: %#v", tc.status, tc.body, e)
		}
		if tc.msg != "" && e.Message != tc.msg {
			t.Errorf("%d: message %q, want %q", tc.status, e.Message, tc.msg)
		}
		if len(e.Message) > MaxMessage+len("…") {
			t.Errorf("%d: message of %d bytes", tc.status, len(e.Message))
		}
		for _, s := range tc.mustNotCarry {
			if strings.Contains(e.Error()+e.RequestID, s) {
				t.Errorf("%d: %q carries %s", tc.status, e.Error(), s)
			}
		}
	}
}

// A request that got no answer is an ErrUnavailable UpstreamError that
// keeps its cause for errors.Is and never shows the URL's key; keygate's
// own refusals pass through as they are.
func TestAPINoAnswer(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	a := testAPI(nil)
	a.Caller.MaxRetries = -1
	_, err := a.Send(t.Context(), Request{Method: http.MethodGet, Base: dead.URL, Auth: keyQuery})
	var ue *provider.UpstreamError
	if !errors.As(err, &ue) || !errors.Is(err, provider.ErrUnavailable) || ue.Status != 0 || ue.Provider != "test" || strings.Contains(err.Error(), secret) {
		t.Fatalf("err = %v", err)
	}

	srv, got := answering(t, http.StatusOK, nil, `{}`)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = a.Send(ctx, Request{Method: http.MethodGet, Base: srv.URL})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, provider.ErrUnavailable) {
		t.Fatalf("cancelled: %v", err)
	}

	clk := newFakeClock()
	a.Caller.Budget = testBudget(clk)
	for range 2 {
		_, err = a.Send(as(t, "content:read:posts"), Request{Method: http.MethodGet, Base: srv.URL})
	}
	var re *provider.RationedError
	if !errors.As(err, &re) || errors.Is(err, provider.ErrUnavailable) || len(got.reqs) != 1 {
		t.Fatalf("rationed: %v after %d sends", err, len(got.reqs))
	}
}

// Do returns the answer together with the error of a non-2xx status.
func TestAPIDo(t *testing.T) {
	srv, _ := answering(t, http.StatusNotFound, nil, `{}`)
	resp, err := testAPI(nil).Do(t.Context(), Request{Method: http.MethodGet, Base: srv.URL})
	var ue *provider.UpstreamError
	if resp == nil || resp.Status != http.StatusNotFound || !errors.As(err, &ue) || ue.Status != http.StatusNotFound {
		t.Fatalf("%v %v", resp, err)
	}
	srv, _ = answering(t, http.StatusCreated, nil, `{}`)
	if resp, err := testAPI(nil).Do(t.Context(), Request{Method: http.MethodPost, Base: srv.URL}); err != nil || !resp.OK() {
		t.Fatalf("%v %v", resp, err)
	}
}

func TestAPIBadAnswer(t *testing.T) {
	a := testAPI(nil)
	resp := &Response{Status: 200, Header: http.Header{}}
	if e := a.BadAnswer(resp, true, "no id"); !errors.Is(e.Kind, provider.ErrOutcomeUnknown) || e.Message != "no id" {
		t.Errorf("write: %#v", e)
	}
	if e := a.BadAnswer(resp, false, "no list"); !errors.Is(e.Kind, provider.ErrUnavailable) {
		t.Errorf("read: %#v", e)
	}
	lost := &provider.UpstreamError{Provider: "test", Message: "connection reset", Kind: provider.ErrUnavailable}
	e := a.Unsettled("update", "item", lost)
	if !errors.Is(e.Kind, provider.ErrOutcomeUnknown) || e.Message != "the update was sent but no answer came back, and reading the item back could not tell whether it was applied (connection reset)" {
		t.Errorf("unsettled: %#v", e)
	}
}

// The log line names method, path, status and request id, never the
// query or a secret.
func TestAPILogLine(t *testing.T) {
	srv, _ := answering(t, http.StatusOK, http.Header{"X-Request-Id": {"req-1"}}, `{}`)
	var logs bytes.Buffer
	a := testAPI(&logs)
	a.RequestID = RequestIDHeader("X-Request-Id")
	if _, err := a.Send(t.Context(), Request{Method: http.MethodGet, Base: srv.URL, Path: "/things", Query: url.Values{"q": {"private"}}, Auth: keyQuery}); err != nil {
		t.Fatal(err)
	}
	line := logs.String()
	for _, want := range []string{`msg="test request"`, "method=GET", "path=/things", "status=200", "request_id=req-1", "duration="} {
		if !strings.Contains(line, want) {
			t.Errorf("log %q lacks %s", line, want)
		}
	}
	if strings.Contains(line, "private") || strings.Contains(line, secret) {
		t.Errorf("log carries the query: %q", line)
	}
}

func TestCut(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijk", 10, "abcdefghij…"},
		{"aé", 2, "a…"},
	}
	for _, tc := range tests {
		if got := Cut(tc.in, tc.n); got != tc.want {
			t.Errorf("Cut(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestRetryAfterMS(t *testing.T) {
	tests := []struct {
		body string
		want time.Duration
		ok   bool
	}{
		{`{"retry_after_ms":5000}`, 5 * time.Second, true},
		{`{"retry_after_ms":0.4}`, time.Millisecond, true},
		{`{"retry_after_ms":0}`, 0, false},
		{`{"retry_after_ms":-3}`, 0, false},
		{`{"retry_after_ms":1e12}`, 0, false},
		{`{"retry_after_ms":"5"}`, 0, false},
		{`[]`, 0, false},
		{`<html>`, 0, false},
	}
	for _, tc := range tests {
		if got, ok := RetryAfterMS([]byte(tc.body)); got != tc.want || ok != tc.ok {
			t.Errorf("RetryAfterMS(%s) = %v, %v", tc.body, got, ok)
		}
	}
}

func TestResetTime(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	h := func(v string) http.Header { return http.Header{"X-Ratelimit-Reset": {v}} }
	tests := []struct {
		h    http.Header
		unit time.Duration
		want time.Time
		ok   bool
	}{
		{h(strconv.FormatInt(now.Add(20*time.Second).UnixMilli(), 10)), time.Millisecond, now.Add(20 * time.Second), true},
		{h(strconv.FormatInt(now.Add(20*time.Second).Unix(), 10)), time.Second, now.Add(20 * time.Second), true},
		{h(strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10)), time.Millisecond, now.Add(time.Minute), true},
		{h("soon"), time.Second, time.Time{}, false},
		{http.Header{}, time.Second, time.Time{}, false},
	}
	for _, tc := range tests {
		got, ok := ResetTime(tc.h, "X-RateLimit-Reset", tc.unit, now, time.Minute)
		if !got.Equal(tc.want) || ok != tc.ok {
			t.Errorf("ResetTime(%v, %v) = %v, %v", tc.h, tc.unit, got, ok)
		}
	}
}
