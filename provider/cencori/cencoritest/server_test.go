package cencoritest

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func call(t *testing.T, base, method, path string, headers map[string]string, body string) answer {
	t.Helper()
	var rdr io.Reader
	if body != "" {
		rdr = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, rdr)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object", method, path, raw)
		}
	}
	return a
}

func key(k string) map[string]string     { return map[string]string{"CENCORI_API_KEY": k} }
func bearerH(k string) map[string]string { return map[string]string{"Authorization": "Bearer " + k} }

func TestAuthentication(t *testing.T) {
	s := New()
	hs := s.Start()
	defer hs.Close()
	s.AddKey(Key{Value: demoKey("csk_", "revoked"), Type: KeySecret, Environment: EnvProduction, Revoked: true})
	s.AddAgent(Agent{ID: "agent_off", Enabled: false})
	s.AddKey(Key{Value: demoKey("cake_", "off"), Type: KeySecret, Environment: EnvProduction, AgentID: "agent_off"})
	list := "/v1/memory/list?userId=keygate"
	cases := []struct {
		name    string
		headers map[string]string
		status  int
		code    string
		errText string
	}{
		{"header key", key(DemoSecretKey), 200, "", ""},
		{"bearer key", bearerH(DemoSecretKey), 200, "", ""},
		{"header wins over bearer", map[string]string{"CENCORI_API_KEY": DemoSecretKey, "Authorization": "Bearer csk_nonsense"}, 200, "", ""},
		{"test key", key(DemoTestSecretKey), 200, "", ""},
		{"no key", nil, 401, "missing_api_key", "Missing API key. Provide CENCORI_API_KEY header or Authorization: Bearer <key>"},
		{"jwt bearer is a session, not a key", bearerH("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"), 401, "missing_api_key", ""},
		{"malformed", key("csk_123"), 401, "invalid_api_key", "Invalid API key"},
		{"unknown", key(demoKey("csk_", "nobody")), 401, "invalid_api_key", "Invalid API key"},
		{"revoked", key(demoKey("csk_", "revoked")), 401, "invalid_api_key", "Invalid API key"},
		{"publishable without origin", key(DemoPublishableKey), 403, "domain_not_allowed", ""},
		{"publishable from another origin", map[string]string{"CENCORI_API_KEY": DemoPublishableKey, "Origin": "https://evil.example.net"}, 403, "domain_not_allowed", ""},
		{"publishable from allowed origin", map[string]string{"CENCORI_API_KEY": DemoPublishableKey, "Origin": "https://" + DemoAllowedDomain}, 200, "", ""},
		{"publishable from allowed referer", map[string]string{"CENCORI_API_KEY": DemoPublishableKey, "Referer": "https://" + DemoAllowedDomain + "/page"}, 200, "", ""},
		{"agent key", key(DemoAgentKey), 200, "", ""},
		{"unbound agent key", key(DemoUnboundAgentKey), 401, "invalid_api_key", "Invalid Agent Key: No agent associated with this key"},
		{"disabled agent", key(demoKey("cake_", "off")), 403, "agent_disabled", "Agent is disabled"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, hs.URL, "GET", list, tc.headers, "")
			if a.status != tc.status {
				t.Fatalf("status %d, want %d (%v)", a.status, tc.status, a.body)
			}
			if a.header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
			if tc.status == 200 {
				return
			}
			if a.body["code"] != tc.code {
				t.Errorf("code %v, want %s", a.body["code"], tc.code)
			}
			if tc.errText != "" && a.body["error"] != tc.errText {
				t.Errorf("error %v, want %q", a.body["error"], tc.errText)
			}
		})
	}
}

func TestMetricsAuthQuirks(t *testing.T) {
	s := New()
	hs := s.Start()
	defer hs.Close()
	cases := []struct {
		name    string
		headers map[string]string
		status  int
		errText string
	}{
		{"bearer", bearerH(DemoSecretKey), 200, ""},
		{"header only is missing here", key(DemoSecretKey), 401, "Missing API key. Use Authorization: Bearer <api_key>"},
		{"invalid", bearerH(demoKey("csk_", "nobody")), 401, "Invalid API key"},
		{"unbound agent", bearerH(DemoUnboundAgentKey), 401, "Invalid API key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, hs.URL, "GET", "/v1/metrics?period=24h", tc.headers, "")
			if a.status != tc.status {
				t.Fatalf("status %d, want %d", a.status, tc.status)
			}
			if tc.status != 200 {
				if _, has := a.body["code"]; has {
					t.Errorf("/v1/metrics 401 has a code: %v", a.body)
				}
				if a.body["error"] != tc.errText {
					t.Errorf("error %v, want %q", a.body["error"], tc.errText)
				}
				return
			}
			req := a.body["requests"].(map[string]any)
			if req["total"].(float64) != 3 || req["error"].(float64) != 1 {
				t.Errorf("requests %v, want the 3 seeded", req)
			}
		})
	}
	if a := call(t, hs.URL, "GET", "/v1/metrics?period=2w", bearerH(DemoSecretKey), ""); a.status != 400 {
		t.Errorf("bad period: %d", a.status)
	}
}

func TestRateWindow(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	s := New(WithClock(clk.Now))
	hs := s.Start()
	defer hs.Close()
	path := "/v1/memory/list?userId=keygate&limit=1"
	for i := range DefaultRateLimit {
		a := call(t, hs.URL, "GET", path, key(DemoSecretKey), "")
		if a.status != 200 {
			t.Fatalf("request %d: %d", i+1, a.status)
		}
		if got := a.header.Get("X-RateLimit-Remaining"); got != strconv.Itoa(DefaultRateLimit-i-1) {
			t.Fatalf("request %d: remaining %s", i+1, got)
		}
		if i == 0 {
			reset, _ := strconv.ParseInt(a.header.Get("X-RateLimit-Reset"), 10, 64)
			if want := clk.Now().Add(RateWindow).UnixMilli(); reset != want {
				t.Fatalf("X-RateLimit-Reset %d, want %d (milliseconds)", reset, want)
			}
		}
		clk.Advance(100 * time.Millisecond)
	}
	a := call(t, hs.URL, "GET", path, key(DemoSecretKey), "")
	if a.status != 429 || a.body["code"] != "rate_limit_exceeded" || a.body["error"] != "Rate limit exceeded" {
		t.Fatalf("61st: %d %v", a.status, a.body)
	}
	// The oldest request was 6 s ago: it leaves the window in 54 s.
	if got := a.header.Get("Retry-After"); got != "54" {
		t.Errorf("Retry-After %q, want 54", got)
	}
	if got := a.body["retry_after_ms"].(float64); got != 54000 {
		t.Errorf("retry_after_ms %v", got)
	}
	if a.body["message"] != "60 requests per minute allowed. Try again shortly." {
		t.Errorf("message %v", a.body["message"])
	}
	// Another project is not affected.
	s.AddKey(Key{Value: demoKey("csk_", "other"), ProjectID: "proj_other", Type: KeySecret, Environment: EnvProduction})
	if a := call(t, hs.URL, "GET", path, key(demoKey("csk_", "other")), ""); a.status != 200 {
		t.Errorf("other project: %d", a.status)
	}
	// /v1/metrics is outside the gateway window.
	if a := call(t, hs.URL, "GET", "/v1/metrics", bearerH(DemoSecretKey), ""); a.status != 200 {
		t.Errorf("metrics: %d", a.status)
	}
	clk.Advance(54 * time.Second)
	if a := call(t, hs.URL, "GET", path, key(DemoSecretKey), ""); a.status != 200 {
		t.Errorf("after the window moved: %d", a.status)
	}
}

func TestMemoryLifecycle(t *testing.T) {
	s := New()
	hs := s.Start()
	defer hs.Close()
	k := key(DemoSecretKey)
	a := call(t, hs.URL, "POST", "/v1/memory/write", k, `{"content":"mail me at a@b.co","userId":"u1","metadata":{"x":1}}`)
	if a.status != 201 || a.body["content"] != "mail me at [REDACTED_EMAIL]" || a.body["scope"] != "user" || a.body["scopeKey"] != "u1" || a.body["namespace"] != "default" {
		t.Fatalf("write: %d %v", a.status, a.body)
	}
	id := a.body["id"].(string)
	if m, _ := s.Memory(id); m.Content != "mail me at a@b.co" {
		t.Errorf("stored %q, want the original text", m.Content)
	}
	g := call(t, hs.URL, "GET", "/v1/memory/"+id, k, "")
	if g.status != 200 || g.body["content"] != "mail me at a@b.co" || g.body["metadata"].(map[string]any)["x"].(float64) != 1 {
		t.Fatalf("get: %d %v", g.status, g.body)
	}
	for _, bad := range []string{`{"userId":"u1"}`, `{"content":"x"}`, `{"content":"x","userId":"u","importance":2}`, `{"content":"x","userId":"u","expiresAt":"2001-01-01T00:00:00Z"}`, `{"content":"x","scope":"session","userId":"u"}`, `nope`} {
		if a := call(t, hs.URL, "POST", "/v1/memory/write", k, bad); a.status != 400 || a.body["error"] != "bad_request" {
			t.Errorf("write %s: %d %v", bad, a.status, a.body)
		}
	}
	d := call(t, hs.URL, "DELETE", "/v1/memory/"+id, k, "")
	if d.status != 200 || d.body["deleted"] != true || d.body["id"] != id {
		t.Fatalf("delete: %d %v", d.status, d.body)
	}
	for _, m := range []string{"GET", "DELETE"} {
		nf := call(t, hs.URL, m, "/v1/memory/"+id, k, "")
		if nf.status != 404 || nf.body["error"] != "not_found" || nf.body["message"] != "Memory not found" {
			t.Errorf("%s after delete: %d %v", m, nf.status, nf.body)
		}
	}
	// Another project's key cannot see it.
	s.AddKey(Key{Value: demoKey("csk_", "other"), ProjectID: "proj_other", Type: KeySecret, Environment: EnvProduction})
	if nf := call(t, hs.URL, "GET", "/v1/memory/mem_seed_1", key(demoKey("csk_", "other")), ""); nf.status != 404 {
		t.Errorf("other project reads a memory: %d", nf.status)
	}
}

func TestMemoryListCursorAndSearch(t *testing.T) {
	s := New()
	hs := s.Start()
	defer hs.Close()
	k := key(DemoSecretKey)
	for i := range 5 {
		call(t, hs.URL, "POST", "/v1/memory/write", k, `{"content":"note `+strconv.Itoa(i)+` about cats","userId":"u2"}`)
	}
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		path := "/v1/memory/list?userId=u2&limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		a := call(t, hs.URL, "GET", path, k, "")
		if a.status != 200 {
			t.Fatalf("page %d: %d %v", page, a.status, a.body)
		}
		for _, m := range a.body["memories"].([]any) {
			seen = append(seen, m.(map[string]any)["content"].(string))
		}
		if int(a.body["count"].(float64)) != len(a.body["memories"].([]any)) {
			t.Errorf("count %v", a.body["count"])
		}
		if a.body["nextCursor"] == nil {
			break
		}
		cursor = a.body["nextCursor"].(string)
	}
	want := []string{"note 4 about cats", "note 3 about cats", "note 2 about cats", "note 1 about cats", "note 0 about cats"}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Errorf("pages gave %q, want newest first %q", seen, want)
	}
	if a := call(t, hs.URL, "GET", "/v1/memory/list", k, ""); a.status != 400 {
		t.Errorf("list without userId/sessionId: %d", a.status)
	}
	if a := call(t, hs.URL, "GET", "/v1/memory/list?userId=u2&limit=101", k, ""); a.status != 400 {
		t.Errorf("limit 101: %d", a.status)
	}
	a := call(t, hs.URL, "POST", "/v1/memory/search", k, `{"query":"cats note 3","userId":"u2","topK":2,"threshold":0.5}`)
	if a.status != 200 || a.body["count"].(float64) != 2 {
		t.Fatalf("search: %d %v", a.status, a.body)
	}
	first := a.body["results"].([]any)[0].(map[string]any)
	if first["content"] != "note 3 about cats" || first["score"].(float64) != 1 {
		t.Errorf("best hit %v", first)
	}
	if a := call(t, hs.URL, "POST", "/v1/memory/search", k, `{"query":"dogs","userId":"u2"}`); a.body["count"].(float64) != 0 {
		t.Errorf("search for dogs found %v", a.body)
	}
}

func TestMemoryDisabled(t *testing.T) {
	s := New(WithMemoryDisabled())
	hs := s.Start()
	defer hs.Close()
	for _, p := range []string{"/v1/memory/list?userId=keygate", "/v1/memory/mem_seed_1"} {
		a := call(t, hs.URL, "GET", p, key(DemoSecretKey), "")
		if a.status != 404 || a.body["error"] != "Not found" || a.body["code"] != nil {
			t.Errorf("%s: %d %v", p, a.status, a.body)
		}
	}
	// Auth still runs first.
	if a := call(t, hs.URL, "GET", "/v1/memory/list", nil, ""); a.status != 401 {
		t.Errorf("no key: %d", a.status)
	}
}

func TestInjection(t *testing.T) {
	s := New()
	hs := s.Start()
	defer hs.Close()
	s.FailNext(503, map[string]string{"Retry-After": "2"}, `{"error":"Service unavailable","code":"rate_limit_unavailable"}`)
	a := call(t, hs.URL, "GET", "/v1/memory/list?userId=keygate", key(DemoSecretKey), "")
	if a.status != 503 || a.header.Get("Retry-After") != "2" || a.header.Get("X-Request-Id") == "" || a.body["code"] != "rate_limit_unavailable" {
		t.Fatalf("injected: %d %v %v", a.status, a.header, a.body)
	}
	s.DropNextResponse()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", hs.URL+"/v1/memory/write", strings.NewReader(`{"content":"lost answer","userId":"keygate"}`))
	req.Header.Set("CENCORI_API_KEY", DemoSecretKey)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("a dropped response arrived")
	}
	found := false
	for _, m := range s.Memories(DemoProject) {
		found = found || m.Content == "lost answer"
	}
	if !found {
		t.Error("the write whose answer was dropped was not stored")
	}
	if s.Requests("/v1/memory/write") != 1 || s.Requests("/v1/memory/list") != 1 {
		t.Errorf("request counts %d %d", s.Requests("/v1/memory/write"), s.Requests("/v1/memory/list"))
	}
	if a := call(t, hs.URL, "OPTIONS", "/v1/memory/list", nil, ""); a.status != 204 {
		t.Errorf("preflight: %d", a.status)
	}
}

func TestChatCountsInMetrics(t *testing.T) {
	s := New()
	hs := s.Start()
	defer hs.Close()
	a := call(t, hs.URL, "POST", "/api/ai/chat", key(DemoSecretKey), `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
	if a.status != 200 || a.body["content"] != "echo: hi" || a.body["object"] != "chat.completion" {
		t.Fatalf("chat: %d %v", a.status, a.body)
	}
	m := call(t, hs.URL, "GET", "/v1/metrics", bearerH(DemoSecretKey), "")
	if m.body["requests"].(map[string]any)["total"].(float64) != 4 || m.body["period"] != "24h" {
		t.Errorf("metrics after one chat: %v", m.body)
	}
}
