package agrenting

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
	"github.com/keygate/keygate/provider/internal/providertest"
	"github.com/keygate/keygate/provider/upstream"
)

var tasksQ = provider.ListQuery{Type: "tasks", Limit: 5}

func errBody(code, msg string) string {
	return `{"data":null,"meta":{"version":"1.0","request_id":"req_x"},"errors":[{"code":"` + code + `","message":"` + msg + `"}]}`
}

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		name     string
		status   int
		headers  map[string]string
		body     string
		kind     error
		code     string
		requests int
		retry    time.Duration
	}{
		{"unauthorized", 401, nil, errBody("UNAUTHORIZED", "Invalid API key"), provider.ErrUnauthorized, "UNAUTHORIZED", 1, 0},
		{"forbidden", 403, nil, errBody("FORBIDDEN", "no"), provider.ErrPermission, "FORBIDDEN", 1, 0},
		{"payment", 402, nil, errBody("PAYMENT_FAILED", "card declined"), provider.ErrPermission, "PAYMENT_FAILED", 1, 0},
		{"rate limited, header", 429, map[string]string{"retry-after": "100"}, `{"errors":[{"code":"RATE_LIMIT_EXCEEDED","message":"Rate limit exceeded. Retry after 100 seconds."}],"meta":{"version":"1.0"}}`, provider.ErrRateLimited, "RATE_LIMIT_EXCEEDED", 1, 100 * time.Second},
		{"rate limited, text only", 429, nil, `{"errors":[{"code":"RATE_LIMIT_EXCEEDED","message":"Rate limit exceeded. Retry after 45 seconds."}],"meta":{"version":"1.0"}}`, provider.ErrRateLimited, "RATE_LIMIT_EXCEEDED", 3, 45 * time.Second},
		{"internal", 500, nil, errBody("INTERNAL_ERROR", "boom"), provider.ErrUnavailable, "INTERNAL_ERROR", 1, 0},
		{"agent unavailable", 503, nil, errBody("AGENT_UNAVAILABLE", "later"), provider.ErrUnavailable, "AGENT_UNAVAILABLE", 3, 0},
		{"errors on a 200", 200, nil, `{"data":[],"meta":{"version":"1.0"},"errors":[{"code":"PARTIAL","message":"half"}]}`, provider.ErrUnavailable, "PARTIAL", 1, 0},
		{"html", 502, nil, `<html>bad gateway</html>`, provider.ErrUnavailable, "", 3, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, keyEnv())
			for range tc.requests {
				f.fake.FailNextOn("GET", "/api/v1/tasks", tc.status, tc.headers, tc.body)
			}
			_, err := f.c.List(t.Context(), tasksQ)
			ue := providertest.WantKind(t, err, tc.kind)
			if ue.Status != tc.status || ue.Code != tc.code || ue.Provider != "agrenting" || ue.RetryAfter != tc.retry {
				t.Errorf("%#v", ue)
			}
			if n := f.fake.Requests("/api/v1/tasks"); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
		})
	}
}

func TestGetRetriedAfter5xx(t *testing.T) {
	f := newFixture(t, keyEnv())
	f.fake.FailNextOn("GET", "/api/v1/tasks/task_seed_1", 503, nil, errBody("AGENT_UNAVAILABLE", "x"))
	if _, err := f.c.Get(t.Context(), "tasks", provider.Ref{ID: "task_seed_1"}); err != nil {
		t.Fatal(err)
	}
	if f.fake.Requests("/api/v1/tasks/task_seed_1") != 2 || len(f.clk.Slept()) != 1 {
		t.Errorf("%d requests, slept %v", f.fake.Requests("/api/v1/tasks/task_seed_1"), f.clk.Slept())
	}
}

// Retry-After is honoured: no request before it; beyond the deadline the
// call fails at once with ErrRateLimited and RetryAfter.
func TestRetryAfter(t *testing.T) {
	f := newFixture(t, keyEnv())
	limited := `{"errors":[{"code":"RATE_LIMIT_EXCEEDED","message":"Rate limit exceeded. Retry after 4 seconds."}],"meta":{"version":"1.0"}}`
	f.fake.FailNextOn("GET", "/api/v1/tasks", 429, map[string]string{"retry-after": "4"}, limited)
	var seen []int
	f.clk.OnSleep = func(time.Duration) { seen = append(seen, f.fake.Requests("/api/v1/tasks")) }
	if _, err := f.c.List(t.Context(), tasksQ); err != nil {
		t.Fatal(err)
	}
	if s := f.clk.Slept(); len(s) != 1 || s[0] != 4*time.Second || len(seen) != 1 || seen[0] != 1 {
		t.Errorf("slept %v with %v requests sent", s, seen)
	}
	f.fake.FailNextOn("GET", "/api/v1/tasks", 429, map[string]string{"retry-after": "4"}, limited)
	ctx, cancel := context.WithDeadline(t.Context(), f.clk.Now().Add(time.Second))
	defer cancel()
	_, err := f.c.List(ctx, tasksQ)
	ue := providertest.WantKind(t, err, provider.ErrRateLimited)
	if ue.RetryAfter != 4*time.Second || f.fake.Requests("/api/v1/tasks") != 3 || len(f.clk.Slept()) != 1 {
		t.Errorf("%#v, %d requests", ue, f.fake.Requests("/api/v1/tasks"))
	}
}

// A DELETE has no idempotency key, so it is sent once.
func TestDeleteNotRetried(t *testing.T) {
	f := newFixture(t, keyEnv())
	id := f.fake.AddCredential(agrentingtest.DemoAgentID, "spare", "agr_spare_key_0000000000000000")
	path := "/api/v1/agents/" + agrentingtest.DemoAgentID + "/credentials/" + id
	f.fake.FailNextOn("DELETE", path, 503, nil, errBody("INTERNAL_ERROR", "x"))
	_, _, err := f.c.RevokeKey(t.Context(), id)
	providertest.WantKind(t, err, provider.ErrUnavailable)
	if f.fake.Requests(path) != 1 {
		t.Errorf("%d DELETEs", f.fake.Requests(path))
	}
}

func TestSessionUsedAndRenewed(t *testing.T) {
	f := newFixture(t, keyEnv())
	ctx := t.Context()
	if err := f.c.Authenticate(ctx); err != nil {
		t.Fatal(err)
	}
	secrets := f.c.Secrets()
	if len(secrets) != 2 || !strings.HasPrefix(secrets[1], "sess_") {
		t.Fatalf("Secrets() = %d values", len(secrets))
	}
	// The session authenticates: revoke the key, the session still works.
	f.fake.ExpireSessions()
	if _, err := f.c.List(ctx, tasksQ); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	if n := f.fake.Requests("/api/v1/auth/authenticate"); n != 2 {
		t.Errorf("%d authentications, want the first and one renewal", n)
	}
	if f.fake.SessionCount() != 1 {
		t.Errorf("%d sessions", f.fake.SessionCount())
	}
	if strings.Contains(f.logs.String(), "sess_") || strings.Contains(f.logs.String(), agrentingtest.DemoAgentKey) {
		t.Error("a secret reached the log")
	}
	// A wrong key fails Authenticate with ErrUnauthorized.
	g := newFixture(t, env{EnvAPIKey: "agr_not_a_real_key_000"})
	providertest.WantKind(t, g.c.Authenticate(ctx), provider.ErrUnauthorized)
}

func TestResponseTooLarge(t *testing.T) {
	f := newFixture(t, keyEnv())
	f.fake.FailNextOn("GET", "/api/v1/tasks", 200, nil, `{"data":["`+strings.Repeat("x", upstream.DefaultMaxBody)+`"]}`)
	_, err := f.c.List(t.Context(), tasksQ)
	if !errors.Is(err, upstream.ErrTooLarge) || !errors.Is(err, provider.ErrUnavailable) || f.fake.Requests("/api/v1/tasks") != 1 {
		t.Fatalf("%v", err)
	}
}

func TestCrossHostRedirectRefused(t *testing.T) {
	clk := providertest.NewClock()
	fake := agrentingtest.New(agrentingtest.WithClock(clk.Now))
	target := fake.Start()
	defer target.Close()
	redirector := providertest.CrossHostRedirector(t, target.URL, http.StatusTemporaryRedirect)
	f := newFixtureAt(t, keyEnv(), redirector+"/api/v1", fake, clk)
	_, err := f.c.List(t.Context(), tasksQ)
	if err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("%v", err)
	}
	providertest.NoSecret(t, err.Error(), agrentingtest.DemoAgentKey)
	if fake.Requests("/api/v1/tasks") != 0 {
		t.Error("the redirect was followed")
	}
}

// Canary: the configured key, the session token and key-shaped strings
// planted in error bodies never reach an error string.
func TestNoSecretInErrors(t *testing.T) {
	f := newFixture(t, keyEnv())
	if err := f.c.Authenticate(t.Context()); err != nil {
		t.Fatal(err)
	}
	planted := f.c.Secrets()
	planted = append(planted, "ap_"+strings.Repeat("z", 24), "csk_"+strings.Repeat("ab", 24))
	all := strings.Join(planted, " ")
	bodies := []struct {
		status int
		body   string
	}{
		{401, errBody("UNAUTHORIZED", all)},
		{403, `{"data":null,"meta":{"request_id":"` + planted[0] + `"},"errors":[{"code":"` + planted[1] + `","message":"x","field":"` + all + `"}]}`},
		{422, `{"data":null,"meta":{},"errors":[{"code":"VALIDATION_ERROR","message":"bad","details":{"capability":["` + all + `"]}}]}`},
		{500, errBody("INTERNAL_ERROR", all)},
		{418, all},
	}
	for _, b := range bodies {
		for range 3 {
			f.fake.FailNextOn("GET", "/api/v1/tasks", b.status, nil, b.body)
		}
		_, err := f.c.List(t.Context(), tasksQ)
		if err == nil {
			t.Fatalf("%d: no error", b.status)
		}
		providertest.NoSecret(t, err.Error(), planted...)
		for range 3 {
			f.fake.FailNextOn("POST", "/api/v1/tasks", b.status, nil, b.body)
		}
		_, err = f.c.Create(t.Context(), provider.NewObject{Type: "tasks", Title: "t", Fields: []byte(`{"capability":"x"}`)})
		if err == nil {
			t.Fatalf("%d: create: no error", b.status)
		}
		providertest.NoSecret(t, err.Error(), planted...)
	}
	providertest.NoSecret(t, f.logs.String(), planted[:2]...)
}

func TestLogLines(t *testing.T) {
	f := newFixture(t, keyEnv())
	if _, err := f.c.List(t.Context(), tasksQ); err != nil {
		t.Fatal(err)
	}
	line := f.logs.String()
	for _, want := range []string{"method=GET", "path=/tasks", "status=200", "duration=", "request_id=req_"} {
		if !strings.Contains(line, want) {
			t.Errorf("log %q lacks %s", line, want)
		}
	}
}

// Requests refused because the session expired share one authentication:
// Agrenting allows 10 a minute per IP, then locks out for 5 minutes. All
// n requests are held at the server until every one of them has arrived
// with the expired session, so each gets a 401.
func TestConcurrent401sShareOneAuthentication(t *testing.T) {
	const n = 8
	clk := providertest.NewClock()
	fake := agrentingtest.New(agrentingtest.WithClock(clk.Now))
	var mu sync.Mutex
	held, arrived := 0, make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/tasks" && r.Header.Get("Authorization") != "" {
			mu.Lock()
			hold := held < n
			if hold {
				if held++; held == n {
					close(arrived)
				}
			}
			mu.Unlock()
			if hold {
				select {
				case <-arrived:
				case <-r.Context().Done():
					return
				}
			}
		}
		fake.ServeHTTP(w, r)
	}))
	defer hs.Close()
	f := newFixtureAt(t, keyEnv(), hs.URL+"/api/v1", fake, clk)
	if err := f.c.Authenticate(t.Context()); err != nil {
		t.Fatal(err)
	}
	fake.ExpireSessions()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.c.List(t.Context(), tasksQ)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := fake.Requests("/api/v1/auth/authenticate"); got != 2 {
		t.Errorf("%d authentications, want the first and exactly one renewal for %d refused requests", got, n)
	}
	if got := fake.Requests("/api/v1/tasks"); got != 2*n {
		t.Errorf("%d task requests, want %d refused and %d resent", got, n, n)
	}
}
