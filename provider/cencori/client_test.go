package cencori

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/cencori/cencoritest"
	"github.com/keygate/keygate/provider/internal/providertest"
	"github.com/keygate/keygate/provider/upstream"
)

var listQ = provider.ListQuery{Type: "memories", Limit: 5}

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		name     string
		status   int
		headers  map[string]string
		body     string
		kind     error
		code     string
		message  string
		requests int // Caller retries 502/503/504/429 of a GET
	}{
		{"invalid key", 401, nil, `{"error":"Invalid API key","code":"invalid_api_key"}`, provider.ErrUnauthorized, "invalid_api_key", "Invalid API key", 1},
		{"missing key", 401, nil, `{"error":"Missing API key. Provide CENCORI_API_KEY header or Authorization: Bearer <key>","code":"missing_api_key"}`, provider.ErrUnauthorized, "missing_api_key", "Missing API key", 1},
		{"domain", 403, nil, `{"error":"Domain not allowed","code":"domain_not_allowed"}`, provider.ErrPermission, "domain_not_allowed", "Domain not allowed", 1},
		{"network policy", 403, nil, `{"error":"Network access denied","code":"network_access_denied"}`, provider.ErrPermission, "network_access_denied", "", 1},
		{"spend cap", 402, nil, `{"error":"Spend cap reached","code":"spend_cap_reached","spend":12}`, provider.ErrPermission, "spend_cap_reached", "Spend cap reached", 1},
		{"rate limited beyond MaxWait", 429, map[string]string{"Retry-After": "100"}, `{"error":"Rate limit exceeded","code":"rate_limit_exceeded","message":"60 requests per minute allowed. Try again shortly.","retry_after_ms":99500}`, provider.ErrRateLimited, "rate_limit_exceeded", "60 requests per minute allowed", 1},
		{"internal", 500, nil, `{"error":"internal_error"}`, provider.ErrUnavailable, "internal_error", "", 1},
		{"redis down", 503, nil, `{"error":"Rate limiting unavailable","code":"rate_limit_unavailable"}`, provider.ErrUnavailable, "rate_limit_unavailable", "", 3},
		{"html gateway page", 502, map[string]string{"Content-Type": "text/html"}, `<html>bad gateway</html>`, provider.ErrUnavailable, "", "Bad Gateway", 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, cencoritest.DemoSecretKey)
			for range tc.requests {
				f.fake.FailNext(tc.status, tc.headers, tc.body)
			}
			_, err := f.c.List(t.Context(), listQ)
			ue := providertest.WantKind(t, err, tc.kind)
			if ue == nil || ue.Status != tc.status || ue.Code != tc.code || !strings.Contains(ue.Message, tc.message) || ue.RequestID == "" || ue.Provider != "cencori" {
				t.Fatalf("%#v", ue)
			}
			if got := f.fake.Requests("/v1/memory/list"); got != tc.requests {
				t.Errorf("%d requests, want %d", got, tc.requests)
			}
			if tc.status == 429 && ue.RetryAfter != 100*time.Second {
				t.Errorf("RetryAfter %s", ue.RetryAfter)
			}
		})
	}
}

// A write past the project's memory allowance answers 429 with a nested
// error (lib/memory/quota.ts): a refusal, not a rate limit, and nothing is
// held back.
func TestMemoryQuotaIsNotARateLimit(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	f.fake.FailNextOn("POST", "/v1/memory/write", 429, nil,
		`{"error":{"code":"memory_quota_exceeded","message":"Project has reached its memory tier limit.","upgradeUrl":"https://cencori.com/pricing","tier":"free","used":1000,"limit":1000}}`)
	_, err := f.c.Create(t.Context(), provider.NewObject{Type: "memories", Title: "x", Fields: []byte(`{}`)})
	ue := providertest.WantKind(t, err, provider.ErrPermission)
	if errors.Is(err, provider.ErrRateLimited) || ue.Code != "memory_quota_exceeded" || !strings.Contains(ue.Message, "memory tier limit") || ue.RetryAfter != 0 {
		t.Fatalf("%#v", ue)
	}
	if _, err := f.c.List(t.Context(), listQ); err != nil || len(f.clk.Slept()) != 0 {
		t.Errorf("a read after the quota: %v, slept %v", err, f.clk.Slept())
	}
}

func TestGetRetriedAfter5xx(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	f.fake.FailNext(503, nil, `{"error":"Service unavailable"}`)
	o, err := f.c.Get(t.Context(), "memories", provider.Ref{ID: cencoritest.SeedMemory1})
	if err != nil || o.ID != cencoritest.SeedMemory1 {
		t.Fatal(err)
	}
	if f.fake.Requests("/v1/memory/"+cencoritest.SeedMemory1) != 2 || len(f.clk.Slept()) != 1 {
		t.Errorf("requests %d, sleeps %v", f.fake.Requests("/v1/memory/"+cencoritest.SeedMemory1), f.clk.Slept())
	}
}

// A 429's Retry-After is honoured: the retry is not sent before it.
func TestRetryAfterHonoured(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	start := f.clk.Now()
	f.fake.FailNext(429, map[string]string{"Retry-After": "3"}, `{"error":"Rate limit exceeded","code":"rate_limit_exceeded","retry_after_ms":2500}`)
	var sentDuringWait []int
	f.clk.OnSleep = func(time.Duration) { sentDuringWait = append(sentDuringWait, f.fake.Requests("/v1/memory/list")) }
	p, err := f.c.List(t.Context(), listQ)
	if err != nil || len(p.Objects) != 3 {
		t.Fatal(err)
	}
	slept := f.clk.Slept()
	var total time.Duration
	for _, d := range slept {
		total += d
	}
	if total < 3*time.Second || f.clk.Now().Sub(start) < 3*time.Second {
		t.Errorf("waited %s (%v), want at least Retry-After's 3s", total, slept)
	}
	for _, n := range sentDuringWait {
		if n != 1 {
			t.Errorf("%d requests sent before the wait was over", n)
		}
	}
	if f.fake.Requests("/v1/memory/list") != 2 {
		t.Errorf("%d requests", f.fake.Requests("/v1/memory/list"))
	}
}

// When Retry-After does not fit the call's deadline, the call fails at once
// with ErrRateLimited and RetryAfter, and later calls are held back
// without a request until the time is up.
func TestRetryAfterBeyondDeadline(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	ctx, cancel := context.WithDeadline(t.Context(), f.clk.Now().Add(time.Second))
	defer cancel()
	f.fake.FailNext(429, map[string]string{"Retry-After": "5"}, `{"error":"Rate limit exceeded","code":"rate_limit_exceeded","retry_after_ms":5000}`)
	_, err := f.c.List(ctx, listQ)
	ue := providertest.WantKind(t, err, provider.ErrRateLimited)
	if ue.RetryAfter != 5*time.Second || len(f.clk.Slept()) != 0 {
		t.Fatalf("RetryAfter %s, slept %v", ue.RetryAfter, f.clk.Slept())
	}
	_, err = f.c.Get(ctx, "memories", provider.Ref{ID: cencoritest.SeedMemory1})
	ue = providertest.WantKind(t, err, provider.ErrRateLimited)
	if ue.RetryAfter <= 0 || ue.RetryAfter > 5*time.Second || !strings.Contains(ue.Message, "nothing was sent") {
		t.Errorf("held back: %#v", ue)
	}
	if n := f.fake.TotalRequests(); n != 1 {
		t.Errorf("%d requests, want only the first", n)
	}
	// Without a deadline the next call waits out the rest, then goes.
	if _, err := f.c.Get(t.Context(), "memories", provider.Ref{ID: cencoritest.SeedMemory1}); err != nil {
		t.Fatal(err)
	}
	if slept := f.clk.Slept(); len(slept) != 1 || slept[0] != 5*time.Second {
		t.Errorf("slept %v, want the 5s the server asked for", slept)
	}
}

// The client-side limiter keeps keygate within 60 requests per minute:
// the 61st waits for the oldest to leave the window, and the fake (whose
// window is real) never answers 429.
func TestClientSideLimit(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	ctx := t.Context()
	for i := range 60 {
		if _, err := f.c.Get(ctx, "memories", provider.Ref{ID: cencoritest.SeedMemory1}); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	short, cancel := context.WithDeadline(ctx, f.clk.Now().Add(time.Second))
	defer cancel()
	_, err := f.c.Get(short, "memories", provider.Ref{ID: cencoritest.SeedMemory1})
	ue := providertest.WantKind(t, err, provider.ErrRateLimited)
	if ue.RetryAfter != time.Minute {
		t.Errorf("RetryAfter %s", ue.RetryAfter)
	}
	if f.fake.TotalRequests() != 60 {
		t.Fatalf("%d requests", f.fake.TotalRequests())
	}
	if _, err := f.c.Get(ctx, "memories", provider.Ref{ID: cencoritest.SeedMemory1}); err != nil {
		t.Fatalf("61st: %v", err)
	}
	if slept := f.clk.Slept(); len(slept) != 1 || slept[0] != time.Minute {
		t.Errorf("slept %v", slept)
	}
}

// The limiter also stops when the server says the window is used up by
// others (X-RateLimit-Remaining: 0).
func TestRemainingZeroHoldsBack(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	reset := f.clk.Now().Add(20 * time.Second).UnixMilli()
	f.fake.FailNext(200, map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": itoa64(reset)}, `{"memories":[],"count":0,"nextCursor":null}`)
	if _, err := f.c.List(t.Context(), listQ); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.List(t.Context(), listQ); err != nil {
		t.Fatal(err)
	}
	if slept := f.clk.Slept(); len(slept) != 1 || slept[0] < 20*time.Second-time.Millisecond || slept[0] > 20*time.Second {
		t.Errorf("slept %v, want 20s", slept)
	}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func TestResponseTooLarge(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	f.fake.FailNext(200, nil, `{"memories":["`+strings.Repeat("x", upstream.DefaultMaxBody)+`"]}`)
	_, err := f.c.List(t.Context(), listQ)
	if !errors.Is(err, upstream.ErrTooLarge) || !errors.Is(err, provider.ErrUnavailable) {
		t.Fatalf("%v", err)
	}
	if f.fake.Requests("/v1/memory/list") != 1 {
		t.Error("a too-large answer was retried")
	}
}

func TestCrossHostRedirectRefused(t *testing.T) {
	clk := providertest.NewClock()
	fake := cencoritest.New(cencoritest.WithClock(clk.Now))
	target := fake.Start()
	defer target.Close()
	// Same server, other host name: the redirect must not carry the key.
	redirector := providertest.CrossHostRedirector(t, target.URL, http.StatusFound)
	f := newFixtureAt(t, cencoritest.DemoSecretKey, redirector, fake, clk)
	_, err := f.c.List(t.Context(), listQ)
	if err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("%v", err)
	}
	providertest.NoSecret(t, err.Error(), cencoritest.DemoSecretKey)
	if fake.TotalRequests() != 0 {
		t.Error("the redirect was followed")
	}
}

// Canary: key-shaped strings and the configured key planted in error
// bodies never reach an error string or a log line.
func TestNoSecretInErrors(t *testing.T) {
	planted := []string{
		cencoritest.DemoSecretKey,
		"csk_" + strings.Repeat("ab", 24),
		"cake_" + strings.Repeat("cd", 24),
		"cencori_" + strings.Repeat("Z9", 10),
		"ap_" + strings.Repeat("q", 20),
	}
	all := strings.Join(planted, " ")
	bodies := []struct {
		status int
		body   string
	}{
		{401, `{"error":"Invalid API key ` + all + `","code":"invalid_api_key"}`},
		{403, `{"error":"x","message":"` + all + `","code":"domain_not_allowed"}`},
		{429, `{"error":"x","code":"` + planted[0] + `","retry_after_ms":999999999}`},
		{400, `{"error":"bad_request","message":"content ` + all + `"}`},
		{404, `{"error":"` + planted[0] + `"}`},
		{500, `{"error":{"message":"` + all + `","type":"invalid_request_error","code":"` + planted[1] + `"},"status":"failed"}`},
		{418, all},
	}
	for _, b := range bodies {
		f := newFixture(t, cencoritest.DemoSecretKey)
		for range 3 { // enough for the Caller's retries of a GET
			f.fake.FailNextOn("GET", "/v1/memory/list", b.status, nil, b.body)
			f.fake.FailNextOn("GET", "/v1/metrics", b.status, nil, b.body)
		}
		_, err := f.c.List(t.Context(), listQ)
		if err == nil {
			t.Fatalf("%d: no error", b.status)
		}
		providertest.NoSecret(t, err.Error(), planted...)
		desc, _ := f.c.Describe(t.Context())
		providertest.NoSecret(t, strings.Join(desc.Problems, " ")+desc.Credentials[0].Detail, planted...)

		f = newFixture(t, cencoritest.DemoSecretKey)
		f.fake.FailNextOn("POST", "/v1/memory/write", b.status, nil, b.body)
		for range 3 {
			f.fake.FailNextOn("GET", "/v1/memory/list", b.status, nil, b.body)
		}
		_, err = f.c.Create(t.Context(), provider.NewObject{Type: "memories", Title: "x", Fields: []byte(`{}`)})
		if err == nil {
			t.Fatalf("%d: create: no error", b.status)
		}
		providertest.NoSecret(t, err.Error(), planted...)
		providertest.NoSecret(t, f.logs.String(), cencoritest.DemoSecretKey)
	}
}

func TestLogLines(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	if _, err := f.c.List(t.Context(), listQ); err != nil {
		t.Fatal(err)
	}
	line := f.logs.String()
	for _, want := range []string{"method=GET", "path=/v1/memory/list", "status=200", "request_id=req_", "duration="} {
		if !strings.Contains(line, want) {
			t.Errorf("log %q lacks %s", line, want)
		}
	}
	if strings.Contains(line, "userId") || strings.Contains(line, cencoritest.DemoSecretKey) {
		t.Errorf("log carries the query or the key: %q", line)
	}
}
