package cencoritest

import (
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/provider/internal/providertest"
)

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func call(t *testing.T, base, method, path string, headers map[string]string, body string) answer {
	t.Helper()
	a := providertest.Call(t, method, base+path, headers, body)
	return answer{status: a.Status, header: a.Header, body: a.Body}
}

func key(k string) map[string]string     { return map[string]string{"CENCORI_API_KEY": k} }
func bearerH(k string) map[string]string { return map[string]string{"Authorization": "Bearer " + k} }

func TestAuthentication(t *testing.T) {
	s := New(WithMemoryEnabled())
	hs := s.Start()
	defer hs.Close()
	s.AddKey(Key{Value: demoKey("csk_", "revoked", 48), Type: KeySecret, Environment: EnvProduction, Revoked: true})
	// The server checks no key format: an odd-shaped key that is on file works.
	s.AddKey(Key{Value: "cake_" + strings.Repeat("ab", 24), Type: KeySecret, Environment: EnvProduction, AgentID: DemoAgentID})
	wildcard := demoKey("cpk_", "wildcard", 48)
	s.AddKey(Key{Value: wildcard, Type: KeyPublishable, Environment: EnvProduction, AllowedDomains: []string{"*.example.org"}})
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
		{"unknown", key(demoKey("csk_", "nobody", 48)), 401, "invalid_api_key", "Invalid API key"},
		{"revoked", key(demoKey("csk_", "revoked", 48)), 401, "invalid_api_key", "Invalid API key"},
		{"publishable without origin", key(DemoPublishableKey), 403, "domain_not_allowed", "Domain not allowed for this API key"},
		{"publishable from another origin", map[string]string{"CENCORI_API_KEY": DemoPublishableKey, "Origin": "https://evil.example.net"}, 403, "domain_not_allowed", ""},
		{"publishable from allowed origin", map[string]string{"CENCORI_API_KEY": DemoPublishableKey, "Origin": "https://" + DemoAllowedDomain}, 200, "", ""},
		{"publishable from allowed referer", map[string]string{"CENCORI_API_KEY": DemoPublishableKey, "Referer": "https://" + DemoAllowedDomain + "/page"}, 200, "", ""},
		{"publishable from a subdomain of an exact domain", map[string]string{"CENCORI_API_KEY": DemoPublishableKey, "Origin": "https://x." + DemoAllowedDomain}, 403, "domain_not_allowed", ""},
		{"publishable under a wildcard", map[string]string{"CENCORI_API_KEY": wildcard, "Origin": "https://a.b.example.org"}, 200, "", ""},
		{"publishable at a wildcard's base", map[string]string{"CENCORI_API_KEY": wildcard, "Origin": "https://example.org"}, 200, "", ""},
		{"agent key of 32 hex", key(DemoAgentKey), 200, "", ""},
		{"agent key of 48 hex", key("cake_" + strings.Repeat("ab", 24)), 200, "", ""},
		// Memory routes do not look at the agent (only the AI chat route does).
		{"unbound agent key", key(DemoUnboundAgentKey), 200, "", ""},
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
	if len(DemoAgentKey) != len("cake_")+32 {
		t.Errorf("DemoAgentKey has %d characters; the dashboard's agent setup issues cake_ + 32 hex", len(DemoAgentKey))
	}
}

// The agent behind a cake_ key is checked on the AI chat route alone, with
// bodies that carry no code.
func TestAgentKeysOnChat(t *testing.T) {
	s := New()
	hs := s.Start()
	defer hs.Close()
	s.AddAgent(Agent{ID: "agent_off", Enabled: false})
	off := demoKey("cake_", "off", 32)
	s.AddKey(Key{Value: off, Type: KeySecret, Environment: EnvProduction, AgentID: "agent_off"})
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	cases := []struct {
		name, key      string
		status         int
		errText, msg   string
		memoryStatusOK bool
	}{
		{"bound", DemoAgentKey, 200, "", "", true},
		{"unbound", DemoUnboundAgentKey, 401, "Invalid Agent Key: No agent associated with this key", "", true},
		{"disabled", off, 403, "Agent is disabled", "This agent has been deactivated.", true},
	}
	s.SetMemoryEnabled(true)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, hs.URL, "POST", "/api/ai/chat", key(tc.key), chat)
			if a.status != tc.status {
				t.Fatalf("chat: %d %v", a.status, a.body)
			}
			if tc.status != 200 {
				if _, has := a.body["code"]; has || a.body["error"] != tc.errText || (tc.msg != "" && a.body["message"] != tc.msg) {
					t.Errorf("chat body %v", a.body)
				}
			}
			if m := call(t, hs.URL, "GET", "/v1/memory/list?userId=keygate", key(tc.key), ""); m.status != 200 {
				t.Errorf("memory list: %d %v", m.status, m.body)
			}
			if m := call(t, hs.URL, "GET", "/v1/metrics", bearerH(tc.key), ""); m.status != 200 {
				t.Errorf("metrics: %d %v", m.status, m.body)
			}
		})
	}
}

func TestMetricsAuthQuirks(t *testing.T) {
	s := New()
	hs := s.Start()
	defer hs.Close()
	s.AddKey(Key{Value: demoKey("csk_", "revoked", 48), Type: KeySecret, Environment: EnvProduction, Revoked: true})
	cases := []struct {
		name    string
		headers map[string]string
		status  int
		errText string
	}{
		{"bearer", bearerH(DemoSecretKey), 200, ""},
		{"header", key(DemoSecretKey), 200, ""},
		{"publishable, no domain check here", bearerH(DemoPublishableKey), 200, ""},
		{"none", nil, 401, "Missing API key. Use Authorization: Bearer <api_key>"},
		{"invalid", bearerH(demoKey("csk_", "nobody", 48)), 401, "Invalid API key"},
		{"revoked", bearerH(demoKey("csk_", "revoked", 48)), 401, "Invalid API key"},
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
	// An unknown period falls back to 24 hours.
	if a := call(t, hs.URL, "GET", "/v1/metrics?period=2w", bearerH(DemoSecretKey), ""); a.status != 200 || a.body["requests"].(map[string]any)["total"].(float64) != 3 {
		t.Errorf("bad period: %d %v", a.status, a.body)
	}
}

func TestRateWindow(t *testing.T) {
	clk := providertest.NewClockAt(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	s := New(WithClock(clk.Now), WithMemoryEnabled())
	hs := s.Start()
	defer hs.Close()
	path := "/v1/memory/list?userId=keygate&limit=1"
	for i := range DefaultRateLimit {
		a := call(t, hs.URL, "GET", path, key(DemoSecretKey), "")
		if a.status != 200 {
			t.Fatalf("request %d: %d", i+1, a.status)
		}
		// The memory routes add X-Request-Id only.
		if a.header.Get("X-RateLimit-Remaining") != "" || a.header.Get("X-Request-Id") == "" {
			t.Fatalf("request %d: headers %v", i+1, a.header)
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
	reset, _ := strconv.ParseInt(a.header.Get("X-RateLimit-Reset"), 10, 64)
	if want := clk.Now().Add(54 * time.Second).UnixMilli(); reset != want || a.header.Get("X-RateLimit-Remaining") != "0" || a.header.Get("X-RateLimit-Limit") != "60" {
		t.Errorf("X-RateLimit-* %v, want a reset of %d (milliseconds)", a.header, want)
	}
	// Another project is not affected.
	s.AddKey(Key{Value: demoKey("csk_", "other", 48), ProjectID: "proj_other", Type: KeySecret, Environment: EnvProduction})
	if a := call(t, hs.URL, "GET", path, key(demoKey("csk_", "other", 48)), ""); a.status != 200 {
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

// Production gates memory before anything else: every method, with or
// without a key, gets the same 404, with no gateway headers, and the
// rate window does not count it.
func TestMemoryGatedByDefault(t *testing.T) {
	s := New()
	hs := s.Start()
	defer hs.Close()
	for _, c := range []struct {
		method, path string
		headers      map[string]string
		body         string
	}{
		{"GET", "/v1/memory/list?userId=keygate", key(DemoSecretKey), ""},
		{"GET", "/v1/memory/list", nil, ""},
		{"POST", "/v1/memory/write", key("csk_nonsense"), `{"content":"x","userId":"u"}`},
		{"POST", "/v1/memory/search", nil, `{"query":"x","userId":"u"}`},
		{"GET", "/v1/memory/" + SeedMemory1, key(DemoSecretKey), ""},
		{"DELETE", "/v1/memory/" + SeedMemory1, key(DemoSecretKey), ""},
		{"OPTIONS", "/v1/memory/list", nil, ""},
		{"GET", "/v1/memory", nil, ""},
	} {
		a := call(t, hs.URL, c.method, c.path, c.headers, c.body)
		if a.status != 404 || len(a.body) != 1 || a.body["error"] != "Not found" {
			t.Errorf("%s %s: %d %v", c.method, c.path, a.status, a.body)
		}
		if a.header.Get("X-Request-Id") != "" || a.header.Get("X-RateLimit-Remaining") != "" {
			t.Errorf("%s %s: gateway headers on the gated answer: %v", c.method, c.path, a.header)
		}
	}
	if _, ok := s.Memory(SeedMemory1); !ok {
		t.Error("the gated DELETE deleted")
	}
	if a := call(t, hs.URL, "GET", "/v1/metrics", bearerH(DemoSecretKey), ""); a.status != 200 {
		t.Errorf("metrics is not gated: %d", a.status)
	}
	// None of the gated requests counted in the project's window.
	s.SetMemoryEnabled(true)
	for i := range DefaultRateLimit {
		if a := call(t, hs.URL, "GET", "/v1/memory/list?userId=keygate", key(DemoSecretKey), ""); a.status != 200 {
			t.Fatalf("enabled, request %d: %d %v", i+1, a.status, a.body)
		}
	}
}

func TestMemoryLifecycle(t *testing.T) {
	s := New(WithMemoryEnabled(), WithDataRule(regexp.MustCompile(`[a-z]+@[a-z.]+`), "[EMAIL]"))
	hs := s.Start()
	defer hs.Close()
	k := key(DemoSecretKey)
	a := call(t, hs.URL, "POST", "/v1/memory/write", k, `{"content":"  mail me at a@b.co ","userId":"u1","metadata":{"x":1,"extractedFrom":"mine"}}`)
	if a.status != 201 || a.body["content"] != "mail me at [EMAIL]" || a.body["scope"] != "user" || a.body["scopeKey"] != "u1" ||
		a.body["namespace"] != nil || a.body["importance"] != 0.5 || a.body["expiresAt"] != nil {
		t.Fatalf("write: %d %v", a.status, a.body)
	}
	id := a.body["id"].(string)
	if !regexp.MustCompile(`^mem_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Errorf("id %q is not mem_<uuid>", id)
	}
	// What is stored is the trimmed, redacted text, and the metadata gains
	// extractedFrom "manual" (overwriting the caller's) and the write's
	// bookkeeping.
	m, _ := s.Memory(id)
	wantMeta := map[string]any{"x": 1.0, "extractedFrom": "manual", "piiRedactions": 1, "embeddingProvider": "google", "embeddingModel": "gemini-embedding-001"}
	if m.Content != "mail me at [EMAIL]" || !reflect.DeepEqual(m.Metadata, wantMeta) {
		t.Errorf("stored %q %v", m.Content, m.Metadata)
	}
	g := call(t, hs.URL, "GET", "/v1/memory/"+id, k, "")
	if g.status != 200 || g.body["content"] != "mail me at [EMAIL]" || g.body["metadata"].(map[string]any)["extractedFrom"] != "manual" ||
		g.body["scope"] != "user" || g.body["lastAccessedAt"] != nil || g.body["updatedAt"] == nil {
		t.Fatalf("get: %d %v", g.status, g.body)
	}
	// The raw UUID names the same memory.
	if g := call(t, hs.URL, "GET", "/v1/memory/"+strings.TrimPrefix(id, "mem_"), k, ""); g.status != 200 || g.body["id"] != id {
		t.Errorf("get by raw uuid: %d %v", g.status, g.body)
	}
	for _, bad := range []struct{ body, message string }{
		{`{"userId":"u1"}`, "content is required"},
		{`{"content":"   ","userId":"u1"}`, "content is required"},
		{`{"content":"x"}`, "memory.userId is required for user scope"},
		{`{"content":"x","sessionId":"s1"}`, "memory.userId is required for user scope"},
		{`{"content":"x","scope":"org","userId":"u"}`, "memory.scope must be one of: session, user"},
		{`{"content":"x","scope":"session"}`, "memory.sessionId (or userId) is required for session scope"},
		{`{"content":"x","userId":"u","expiresAt":"2001-01-01T00:00:00Z"}`, "expiresAt must be a future ISO-8601 timestamp"},
		{`{"content":"x","userId":"u","expiresAt":null}`, "expiresAt must be a future ISO-8601 timestamp"},
		{`{"content":"` + strings.Repeat("x", 10241) + `","userId":"u"}`, "content exceeds the 10240-character limit per memory"},
	} {
		a := call(t, hs.URL, "POST", "/v1/memory/write", k, bad.body)
		if a.status != 400 || a.body["error"] != "bad_request" || a.body["message"] != bad.message || a.body["code"] != nil {
			t.Errorf("write %.60s: %d %v", bad.body, a.status, a.body)
		}
	}
	if a := call(t, hs.URL, "POST", "/v1/memory/write", k, `nope`); a.status != 500 || a.body["error"] != "internal_error" {
		t.Errorf("invalid JSON: %d %v", a.status, a.body)
	}
	// Importance is clamped, not refused.
	if a := call(t, hs.URL, "POST", "/v1/memory/write", k, `{"content":"x","userId":"u","importance":2}`); a.status != 201 || a.body["importance"] != 1.0 {
		t.Errorf("importance 2: %d %v", a.status, a.body)
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
	s.AddKey(Key{Value: demoKey("csk_", "other", 48), ProjectID: "proj_other", Type: KeySecret, Environment: EnvProduction})
	if nf := call(t, hs.URL, "GET", "/v1/memory/"+SeedMemory1, key(demoKey("csk_", "other", 48)), ""); nf.status != 404 {
		t.Errorf("other project reads a memory: %d", nf.status)
	}
	// Memory switched off in the project's settings: writes and searches
	// say so; reads go on.
	s.SetProjectMemoryEnabled(DemoProject, false)
	for _, c := range [][2]string{{"/v1/memory/write", `{"content":"x","userId":"u"}`}, {"/v1/memory/search", `{"query":"x","userId":"u"}`}} {
		if a := call(t, hs.URL, "POST", c[0], k, c[1]); a.status != 403 || a.body["error"] != "memory_disabled" || a.body["message"] != "Memory is disabled for this project." {
			t.Errorf("%s with memory off: %d %v", c[0], a.status, a.body)
		}
	}
	if a := call(t, hs.URL, "GET", "/v1/memory/list?userId=keygate", k, ""); a.status != 200 {
		t.Errorf("list with memory off: %d", a.status)
	}
}

// Finding: the scope defaults to user whatever ids are given, so a request
// with only a sessionId is refused. The fake used to infer "session".
func TestScopeDefaultsToUser(t *testing.T) {
	s := New(WithMemoryEnabled())
	hs := s.Start()
	defer hs.Close()
	k := key(DemoSecretKey)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/memory/write", `{"content":"x","sessionId":"s1"}`},
		{"GET", "/v1/memory/list?sessionId=s1", ""},
		{"POST", "/v1/memory/search", `{"query":"x","sessionId":"s1"}`},
	} {
		a := call(t, hs.URL, c.method, c.path, k, c.body)
		if a.status != 400 || a.body["message"] != "memory.userId is required for user scope" {
			t.Errorf("%s %s: %d %v", c.method, c.path, a.status, a.body)
		}
	}
	// Session scope falls back to the userId as its key.
	if a := call(t, hs.URL, "POST", "/v1/memory/write", k, `{"content":"x","scope":"session","userId":"u9"}`); a.status != 201 || a.body["scopeKey"] != "u9" {
		t.Errorf("session scope keyed by userId: %d %v", a.status, a.body)
	}
}

// Finding: session-scope writes answer the placeholder id mem_session, which
// cannot be read back; the session keeps its newest 20 entries.
func TestSessionScope(t *testing.T) {
	clk := providertest.NewClockAt(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	s := New(WithMemoryEnabled(), WithClock(clk.Now))
	hs := s.Start()
	defer hs.Close()
	k := key(DemoSecretKey)
	a := call(t, hs.URL, "POST", "/v1/memory/write", k, `{"content":"likes tea","scope":"session","sessionId":"s1","namespace":"ignored","metadata":{"a":1}}`)
	want := map[string]any{"id": "mem_session", "scope": "session", "scopeKey": "s1", "content": "likes tea", "importance": 0.5, "createdAt": "2026-11-22T12:00:00.000Z"}
	if a.status != 201 || !reflect.DeepEqual(a.body, want) {
		t.Fatalf("session write: %d %v", a.status, a.body)
	}
	if g := call(t, hs.URL, "GET", "/v1/memory/mem_session", k, ""); g.status != 404 || g.body["error"] != "not_found" {
		t.Errorf("get mem_session: %d %v", g.status, g.body)
	}
	if d := call(t, hs.URL, "DELETE", "/v1/memory/mem_session", k, ""); d.status != 500 || d.body["message"] != "Failed to delete memory" {
		t.Errorf("delete mem_session: %d %v", d.status, d.body)
	}
	for i := range 25 {
		clk.Advance(time.Second)
		call(t, hs.URL, "POST", "/v1/memory/write", k, `{"content":"note `+strconv.Itoa(i)+`","scope":"session","sessionId":"s1"}`)
	}
	l := call(t, hs.URL, "GET", "/v1/memory/list?scope=session&sessionId=s1&limit=100", k, "")
	mems := l.body["memories"].([]any)
	if l.status != 200 || len(mems) != 20 || l.body["nextCursor"] != nil || mems[0].(map[string]any)["content"] != "note 24" {
		t.Fatalf("session list: %d %v", l.status, l.body)
	}
	if first := mems[0].(map[string]any); first["id"] != "mem_session" || len(first) != 4 {
		t.Errorf("session entry %v", first)
	}
	sr := call(t, hs.URL, "POST", "/v1/memory/search", k, `{"scope":"session","sessionId":"s1","topK":3}`)
	if sr.status != 200 || sr.body["count"].(float64) != 3 || sr.body["results"].([]any)[0].(map[string]any)["score"] != 1.0 {
		t.Errorf("session search: %d %v", sr.status, sr.body)
	}
	// The list expires a day after its last write.
	clk.Advance(24 * time.Hour)
	if l := call(t, hs.URL, "GET", "/v1/memory/list?scope=session&sessionId=s1", k, ""); l.body["count"].(float64) != 0 {
		t.Errorf("expired session: %v", l.body)
	}
}

func TestMemoryListCursorAndSearch(t *testing.T) {
	s := New(WithMemoryEnabled())
	hs := s.Start()
	defer hs.Close()
	k := key(DemoSecretKey)
	for i := range 4 {
		call(t, hs.URL, "POST", "/v1/memory/write", k, `{"content":"note `+strconv.Itoa(i)+` about cats","userId":"u2"}`)
	}
	var seen []string
	cursor, pages := "", 0
	for ; ; pages++ {
		v := url.Values{"userId": {"u2"}, "limit": {"2"}}
		if cursor != "" {
			v.Set("cursor", cursor)
		}
		a := call(t, hs.URL, "GET", "/v1/memory/list?"+v.Encode(), k, "")
		if a.status != 200 {
			t.Fatalf("page %d: %d %v", pages, a.status, a.body)
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
	want := []string{"note 3 about cats", "note 2 about cats", "note 1 about cats", "note 0 about cats"}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Errorf("pages gave %q, want newest first %q", seen, want)
	}
	// A full page names a cursor even when nothing follows: 4 memories in
	// pages of 2 take a third, empty, page.
	if pages != 2 {
		t.Errorf("%d pages after the first, want 2", pages)
	}
	if a := call(t, hs.URL, "GET", "/v1/memory/list", k, ""); a.status != 400 || a.body["message"] != "memory.userId is required for user scope" {
		t.Errorf("list without userId: %d %v", a.status, a.body)
	}
	for limit, want := range map[string]int{"101": 4, "0": 4, "-3": 1, "x": 4, "2abc": 2} {
		if a := call(t, hs.URL, "GET", "/v1/memory/list?userId=u2&limit="+limit, k, ""); a.status != 200 || int(a.body["count"].(float64)) != want {
			t.Errorf("limit %s: %d %v, want %d", limit, a.status, a.body["count"], want)
		}
	}
	if a := call(t, hs.URL, "GET", "/v1/memory/list?userId=u2&cursor=yesterday", k, ""); a.status != 500 || a.body["message"] != "Failed to list memories" {
		t.Errorf("bad cursor: %d %v", a.status, a.body)
	}
	a := call(t, hs.URL, "POST", "/v1/memory/search", k, `{"query":"cats note 3","userId":"u2","topK":2,"threshold":0.5}`)
	if a.status != 200 || a.body["count"].(float64) != 2 {
		t.Fatalf("search: %d %v", a.status, a.body)
	}
	first := a.body["results"].([]any)[0].(map[string]any)
	if first["content"] != "note 3 about cats" || first["score"].(float64) != 1 || first["source"] != "vector" {
		t.Errorf("best hit %v", first)
	}
	if a := call(t, hs.URL, "POST", "/v1/memory/search", k, `{"query":"dogs","userId":"u2"}`); a.body["count"].(float64) != 0 {
		t.Errorf("search for dogs found %v", a.body)
	}
	if a := call(t, hs.URL, "POST", "/v1/memory/search", k, `{"query":" ","userId":"u2"}`); a.status != 400 || a.body["message"] != "query is required" {
		t.Errorf("empty query: %d %v", a.status, a.body)
	}
	// A namespace narrows a list to it, but a search also admits memories
	// that have no namespace.
	call(t, hs.URL, "POST", "/v1/memory/write", k, `{"content":"cats in the garden","userId":"u2","namespace":"garden"}`)
	if a := call(t, hs.URL, "GET", "/v1/memory/list?userId=u2&namespace=garden", k, ""); a.body["count"].(float64) != 1 {
		t.Errorf("namespaced list: %v", a.body)
	}
	if a := call(t, hs.URL, "POST", "/v1/memory/search", k, `{"query":"cats","userId":"u2","namespace":"garden","topK":20}`); a.body["count"].(float64) != 5 {
		t.Errorf("namespaced search: %v", a.body)
	}
}

// Finding: search clamps topK to 1-20, so results past 20 are never sent.
func TestSearchTopKClamped(t *testing.T) {
	s := New(WithMemoryEnabled())
	hs := s.Start()
	defer hs.Close()
	k := key(DemoSecretKey)
	for i := range 25 {
		call(t, hs.URL, "POST", "/v1/memory/write", k, `{"content":"fact `+strconv.Itoa(i)+` about otters","userId":"u3"}`)
	}
	for topK, want := range map[string]int{"50": 20, "20": 20, "0": 1, "-4": 1, "2.6": 3, `"9"`: 5} {
		a := call(t, hs.URL, "POST", "/v1/memory/search", k, `{"query":"otters","userId":"u3","topK":`+topK+`}`)
		if a.status != 200 || int(a.body["count"].(float64)) != want || len(a.body["results"].([]any)) != want {
			t.Errorf("topK %s: %d %v results, want %d", topK, a.status, a.body["count"], want)
		}
	}
}

func TestInjection(t *testing.T) {
	s := New(WithMemoryEnabled())
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
