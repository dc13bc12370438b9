package upstream

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// server answers with the given statuses in turn, then 200.
func server(t *testing.T, statuses []int, header http.Header) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		for k, v := range header {
			w.Header()[k] = v
		}
		if i < len(statuses) {
			w.WriteHeader(statuses[i])
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

type sleeps struct{ d []time.Duration }

func (s *sleeps) sleep(_ context.Context, d time.Duration) error { s.d = append(s.d, d); return nil }

func TestDoRetries(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		idempotent bool
		statuses   []int
		header     http.Header
		wantCalls  int32
		wantStatus int
		wantSleeps []time.Duration
	}{
		{"GET 503 then ok", http.MethodGet, true, []int{503}, nil, 2, 200, nil},
		{"GET 429 honours seconds", http.MethodGet, true, []int{429}, http.Header{"Retry-After": {"3"}}, 2, 200, []time.Duration{3 * time.Second}},
		{"GET gives up after retries", http.MethodGet, true, []int{502, 502, 502, 502}, nil, 3, 502, nil},
		{"GET wait longer than MaxWait is not taken", http.MethodGet, true, []int{429}, http.Header{"Retry-After": {"3600"}}, 1, 429, []time.Duration{}},
		{"POST never retried", http.MethodPost, false, []int{503}, nil, 1, 503, []time.Duration{}},
		{"404 not retried", http.MethodGet, true, []int{404}, nil, 1, 404, []time.Duration{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, n := server(t, tc.statuses, tc.header)
			sl := &sleeps{}
			c := &Caller{HTTP: NewHTTPClient(time.Second), Sleep: sl.sleep}
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+"/x", bytes.NewReader([]byte(`{}`)))
			resp, err := c.Do(req, tc.idempotent)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.wantStatus || n.Load() != tc.wantCalls {
				t.Errorf("status %d after %d calls, want %d after %d", resp.Status, n.Load(), tc.wantStatus, tc.wantCalls)
			}
			if len(tc.wantSleeps) > 0 && !slices.Equal(sl.d, tc.wantSleeps) {
				t.Errorf("slept %v, want %v", sl.d, tc.wantSleeps)
			}
			if tc.wantSleeps != nil && len(tc.wantSleeps) == 0 && len(sl.d) != 0 {
				t.Errorf("slept %v, want none", sl.d)
			}
		})
	}
}

func TestDoNeverWaitsPastDeadline(t *testing.T) {
	srv, n := server(t, []int{429}, http.Header{"Retry-After": {"5"}})
	sl := &sleeps{}
	c := &Caller{HTTP: NewHTTPClient(time.Second), Sleep: sl.sleep}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := c.Do(req, true)
	if err != nil || resp.Status != 429 || n.Load() != 1 || len(sl.d) != 0 {
		t.Errorf("status %v err %v calls %d sleeps %v: want the 429 back at once", resp, err, n.Load(), sl.d)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{"-5", 0, true},
		{"99999999999", 24 * time.Hour, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"soon", 0, false},
	}
	for _, tc := range tests {
		got, ok := RetryAfter(http.Header{"Retry-After": {tc.v}}, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBodyCapAndURLFreeErrors(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("a"), 2048))
	}))
	defer big.Close()
	c := &Caller{HTTP: NewHTTPClient(time.Second), MaxBody: 1024}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, big.URL+"/objects?read_key=SECRETKEY", nil)
	if _, err := c.Do(req, true); !errors.Is(err, ErrTooLarge) || strings.Contains(err.Error(), "SECRETKEY") {
		t.Errorf("over-cap body: %v", err)
	}
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, dead.URL+"/objects?read_key=SECRETKEY", nil)
	_, err := (&Caller{HTTP: NewHTTPClient(time.Second), MaxRetries: -1}).Do(req, true)
	if err == nil || strings.Contains(err.Error(), "SECRETKEY") {
		t.Errorf("network error carries the URL: %v", err)
	}
}

func TestRedirectsStayOnHost(t *testing.T) {
	var leaked atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(r.Header.Get("Authorization"))
	}))
	defer other.Close()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusFound)
	}))
	defer origin.Close()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, origin.URL, nil)
	req.Header.Set("Authorization", "Bearer secret")
	// httptest servers share 127.0.0.1 but differ in port, which is part of the host.
	if _, err := (&Caller{HTTP: NewHTTPClient(time.Second)}).Do(req, false); err == nil {
		t.Error("a redirect to another host was followed")
	}
	if leaked.Load() != nil {
		t.Error("the other host received the request")
	}
}

// Clients keep more than http.DefaultTransport's two idle connections per
// host, so concurrent calls to one provider reuse their connections, and
// they share one pool.
func TestNewHTTPClientKeepsConnections(t *testing.T) {
	a, b := NewHTTPClient(0), NewHTTPClient(time.Second)
	tr, ok := a.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport is %T", a.Transport)
	}
	if tr.MaxIdleConnsPerHost < maxIdlePerHost {
		t.Errorf("MaxIdleConnsPerHost = %d, want %d", tr.MaxIdleConnsPerHost, maxIdlePerHost)
	}
	if b.Transport != a.Transport {
		t.Error("clients do not share one transport")
	}
	if tr.Proxy == nil || tr.DialContext == nil {
		t.Error("the defaults of http.DefaultTransport (proxy, dialer) were lost")
	}
}
