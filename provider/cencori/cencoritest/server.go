// Package cencoritest is a fake Cencori for tests, examples and benchmarks:
// the REST host (/v1/metrics, /v1/models, /v1/memory/*) and the native
// gateway (/api/ai/chat) on one loopback server, reproducing the wire
// behaviour described in shared/reference/providers.md section 3:
//
//   - the key is read from the CENCORI_API_KEY header first, then from
//     Authorization: Bearer (a JWT-shaped bearer is a user session, not a
//     key); keys are validated against Cencori's regexes and looked up by
//     value, revoked keys are "Invalid API key";
//   - publishable keys (cpk_) need an Origin or Referer whose host is in the
//     key's allowed domains, else 403 domain_not_allowed; agent keys (cake_)
//     need an agent, which must be enabled;
//   - errors are flat {"error","message"?,"code"?} bodies, except /v1/metrics,
//     whose 401s carry no code and which reads only the Bearer header;
//   - every response carries X-Request-Id; AI and memory requests count in a
//     sliding 60 s window per project (60 requests), report it in
//     X-RateLimit-Limit/-Remaining/-Reset (a millisecond Unix time), and a
//     429 adds Retry-After (seconds) and retry_after_ms;
//   - memory is immutable: write, list (cursor = a createdAt value), search,
//     get and delete; WithMemoryDisabled reproduces the production gating
//     (404 {"error":"Not found"} on every memory path).
//
// Where providers.md says a shape is unknown, the choice made here is
// marked "unknown:" in a comment.
package cencoritest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Key types and environments as Cencori stores them (api_keys.key_type,
// api_keys.environment).
const (
	KeySecret      = "secret"
	KeyPublishable = "publishable"
	EnvProduction  = "production"
	EnvTest        = "test"
)

// DefaultRateLimit is Cencori's limit: requests per sliding 60 s window per
// project, across AI and memory endpoints.
const DefaultRateLimit = 60

// RateWindow is the length of the sliding window.
const RateWindow = time.Minute

// DemoProject is the project the seeded demo keys belong to.
const DemoProject = "proj_demo"

// DemoAgentID is the enabled agent DemoAgentKey is bound to.
const DemoAgentID = "agent_demo"

// DemoAllowedDomain is the one domain DemoPublishableKey may be used from.
const DemoAllowedDomain = "app.example.com"

// demoKey makes a well-formed, deterministic fake key: prefix plus 48 hex
// characters, as Cencori's 24 random bytes would give.
func demoKey(prefix, label string) string {
	sum := sha256.Sum256([]byte("cencoritest demo key " + label))
	return prefix + hex.EncodeToString(sum[:])[:48]
}

// Demo keys seeded into every new Server. They are fake and safe to print.
var (
	DemoSecretKey          = demoKey("csk_", "secret")
	DemoTestSecretKey      = demoKey("csk_test_", "secret test")
	DemoPublishableKey     = demoKey("cpk_", "publishable")
	DemoTestPublishableKey = demoKey("cpk_test_", "publishable test")
	DemoAgentKey           = demoKey("cake_", "agent")
	// DemoUnboundAgentKey is an agent key with no agent behind it: Cencori
	// refuses it with 401 "Invalid Agent Key".
	DemoUnboundAgentKey = demoKey("cake_", "unbound agent")
)

// keyPattern is validateApiKey from Cencori's lib/api-keys.ts.
var keyPattern = regexp.MustCompile(`^(?:(?:csk|cpk)(?:_test)?_[a-f0-9]{48}|cake_[a-f0-9]{48}|cen_[1-9A-HJ-NP-Za-km-z]{32}|cencori_[A-Za-z0-9._-]{16,})$`)

// Key is one API key the fake accepts.
type Key struct {
	Value          string
	ProjectID      string
	Type           string // KeySecret or KeyPublishable
	Environment    string // EnvProduction or EnvTest
	AgentID        string // set for agent keys (cake_)
	AllowedDomains []string
	Revoked        bool
}

// Agent is an agent an agent key may be bound to.
type Agent struct {
	ID      string
	Name    string
	Enabled bool
}

// Memory is one stored memory.
type Memory struct {
	ID          string
	ProjectID   string
	Scope       string // "user" or "session"
	ScopeKey    string // the userId or sessionId
	Namespace   string
	Content     string
	Metadata    map[string]any
	Importance  float64
	AccessCount int
	ExpiresAt   time.Time
	CreatedAt   time.Time
}

// record is one gateway request counted in a project's metrics.
type record struct {
	at      time.Time
	status  int
	costUSD float64
	tokens  int
}

type injected struct {
	method  string // "" matches any
	path    string // "" matches any
	status  int
	headers map[string]string
	body    string
	drop    bool
}

// Server is the fake. It is an http.Handler and safe for concurrent use.
type Server struct {
	mu             sync.Mutex
	now            func() time.Time
	limit          int
	memoryDisabled bool
	keys           map[string]*Key
	agents         map[string]*Agent
	memories       map[string]*Memory
	window         map[string][]time.Time // project -> request times in the window
	history        map[string][]record    // project -> gateway requests, for /v1/metrics
	requests       map[string]int         // path -> count, every request
	inject         []injected
	lastCreated    time.Time
	reqSeq         int
}

// Option configures a Server.
type Option func(*Server)

// WithClock sets the clock used for the rate window, timestamps and
// expiry; tests move it to cross the 60 s window without waiting.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithRateLimit sets the requests allowed per 60 s window per project.
func WithRateLimit(n int) Option { return func(s *Server) { s.limit = n } }

// WithMemoryDisabled makes every memory path answer 404 {"error":"Not
// found"}, as the cencori.com snapshot does on non-localhost hosts while
// memory is "local-only until the product is launched".
func WithMemoryDisabled() Option { return func(s *Server) { s.memoryDisabled = true } }

// New returns a fake seeded with the demo project, its keys, an agent and
// a few memories for user "keygate".
func New(opts ...Option) *Server {
	s := &Server{
		now:      time.Now,
		limit:    DefaultRateLimit,
		keys:     map[string]*Key{},
		agents:   map[string]*Agent{DemoAgentID: {ID: DemoAgentID, Name: "Demo agent", Enabled: true}},
		memories: map[string]*Memory{},
		window:   map[string][]time.Time{},
		history:  map[string][]record{},
		requests: map[string]int{},
	}
	for _, o := range opts {
		o(s)
	}
	for _, k := range []Key{
		{Value: DemoSecretKey, Type: KeySecret, Environment: EnvProduction},
		{Value: DemoTestSecretKey, Type: KeySecret, Environment: EnvTest},
		{Value: DemoPublishableKey, Type: KeyPublishable, Environment: EnvProduction, AllowedDomains: []string{DemoAllowedDomain}},
		{Value: DemoTestPublishableKey, Type: KeyPublishable, Environment: EnvTest, AllowedDomains: []string{"localhost"}},
		{Value: DemoAgentKey, Type: KeySecret, Environment: EnvProduction, AgentID: DemoAgentID},
		{Value: DemoUnboundAgentKey, Type: KeySecret, Environment: EnvProduction, AgentID: "agent_deleted"},
	} {
		k.ProjectID = DemoProject
		s.AddKey(k)
	}
	now := s.now()
	for i, c := range []struct{ ns, content string }{
		{"default", "The user prefers short answers with code examples."},
		{"default", "keygate is an MCP server that gives agents scoped access to content APIs."},
		{"projects", "The launch of the docs site is planned for the first week of March."},
	} {
		m := &Memory{ID: fmt.Sprintf("mem_seed_%d", i+1), ProjectID: DemoProject, Scope: "user", ScopeKey: "keygate",
			Namespace: c.ns, Content: c.content, Metadata: map[string]any{"source": "seed"}, Importance: 0.5,
			CreatedAt: now.Add(time.Duration(i-10) * time.Minute).UTC().Truncate(time.Millisecond)}
		s.memories[m.ID] = m
	}
	s.history[DemoProject] = []record{
		{at: now.Add(-3 * time.Hour), status: 200, costUSD: 0.0021, tokens: 420},
		{at: now.Add(-2 * time.Hour), status: 200, costUSD: 0.0013, tokens: 260},
		{at: now.Add(-time.Hour), status: 500, costUSD: 0, tokens: 0},
	}
	return s
}

// Start serves the fake on a loopback port. Close the returned server when
// done.
func (s *Server) Start() *httptest.Server { return httptest.NewServer(s) }

// AddKey adds or replaces a key. An agent key's agent must exist (see
// AddAgent) or the key is refused as unbound.
func (s *Server) AddKey(k Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k.ProjectID == "" {
		k.ProjectID = DemoProject
	}
	s.keys[k.Value] = &k
}

// AddAgent adds or replaces an agent.
func (s *Server) AddAgent(a Agent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.agents[a.ID] = &a
}

// SetAgentEnabled enables or disables an agent.
func (s *Server) SetAgentEnabled(id string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.agents[id]; a != nil {
		a.Enabled = on
	}
}

// RevokeKey revokes a key, as the dashboard does; it is then "Invalid API
// key".
func (s *Server) RevokeKey(value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.keys[value]; k != nil {
		k.Revoked = true
	}
}

// SetMemoryDisabled switches the production memory gating on or off.
func (s *Server) SetMemoryDisabled(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.memoryDisabled = on
}

// FailNext makes the next request (any path) answer status with headers
// and body instead of being handled. Calls queue up.
func (s *Server) FailNext(status int, headers map[string]string, body string) {
	s.FailNextOn("", "", status, headers, body)
}

// FailNextOn is FailNext for the next request with this method and path
// ("" matches any).
func (s *Server) FailNextOn(method, path string, status int, headers map[string]string, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inject = append(s.inject, injected{method: method, path: path, status: status, headers: headers, body: body})
}

// DropNextResponse makes the next request be handled in full (a write is
// stored) but its connection closed without an answer, as when a response
// is lost on the way back.
func (s *Server) DropNextResponse() { s.DropNextResponseOn("", "") }

// DropNextResponseOn is DropNextResponse for the next request with this
// method and path ("" matches any).
func (s *Server) DropNextResponseOn(method, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inject = append(s.inject, injected{method: method, path: path, drop: true})
}

// Requests counts the requests received for path, injected failures
// included.
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

// TotalRequests counts every request received.
func (s *Server) TotalRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.requests {
		n += c
	}
	return n
}

// Memories returns copies of a project's memories, newest first.
func (s *Server) Memories(projectID string) []Memory {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Memory
	for _, m := range s.memories {
		if m.ProjectID == projectID {
			c := *m
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out
}

// Memory returns a copy of one memory.
func (s *Server) Memory(id string) (Memory, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.memories[id]
	if !ok {
		return Memory{}, false
	}
	return *m, true
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.URL.Path]++
	s.reqSeq++
	reqID := fmt.Sprintf("req_%06d", s.reqSeq)
	var inj *injected
	for i, in := range s.inject {
		if (in.method == "" || in.method == r.Method) && (in.path == "" || in.path == r.URL.Path) {
			inj = &in
			s.inject = slices.Delete(s.inject, i, i+1)
			break
		}
	}
	s.mu.Unlock()
	setRaw(w, "X-Request-Id", reqID)
	if inj != nil && !inj.drop {
		for k, v := range inj.headers {
			w.Header().Set(k, v)
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(inj.status)
		_, _ = w.Write([]byte(inj.body))
		return
	}
	if inj != nil && inj.drop {
		rec := httptest.NewRecorder()
		s.route(rec, r)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	s.route(w, r)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		// CORS preflight: 204, no auth.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Headers", "CENCORI_API_KEY, Authorization, Content-Type")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/v1/metrics":
		s.metrics(w, r)
	case p == "/v1/models":
		s.models(w, r)
	case p == "/v1/health":
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	case strings.HasPrefix(p, "/v1/memory/") || p == "/v1/memory":
		s.gateway(w, r, s.memory)
	case p == "/api/ai/chat" || p == "/v1/chat/completions":
		s.gateway(w, r, s.chat)
	default:
		// unknown: the real 404 page is Next.js HTML; a flat JSON error is
		// what the API routes themselves answer.
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "Not found"})
	}
}

// setRaw sets a header with the exact spelling Cencori uses on the wire
// (Go would send X-Ratelimit-Limit).
func setRaw(w http.ResponseWriter, name, value string) { w.Header()[name] = []string{value} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// flatError writes Cencori's gateway error body.
func flatError(w http.ResponseWriter, status int, code, errText, message string) {
	body := map[string]any{"error": errText}
	if code != "" {
		body["code"] = code
	}
	if message != "" {
		body["message"] = message
	}
	writeJSON(w, status, body)
}

// extractKey is extractCencoriApiKeyFromHeaders: the CENCORI_API_KEY header
// first, then a Bearer value that is not a Supabase JWT.
func extractKey(r *http.Request) string {
	if v := strings.TrimSpace(r.Header.Get("CENCORI_API_KEY")); v != "" {
		return v
	}
	return bearer(r)
}

var jwtShape = regexp.MustCompile(`^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$`)

func bearer(r *http.Request) string {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	v = strings.TrimSpace(v)
	if jwtShape.MatchString(v) {
		return "" // a user session, not an API key
	}
	return v
}

// authError is why a key was refused: status, code, error text.
type authError struct {
	status int
	code   string
	text   string
}

// lookup validates a key as the gateway middleware does. Callers hold mu.
func (s *Server) lookup(r *http.Request, value string) (*Key, *authError) {
	if value == "" {
		return nil, &authError{401, "missing_api_key", "Missing API key. Provide CENCORI_API_KEY header or Authorization: Bearer <key>"}
	}
	k := s.keys[value]
	if !keyPattern.MatchString(value) || k == nil || k.Revoked {
		return nil, &authError{401, "invalid_api_key", "Invalid API key"}
	}
	if strings.HasPrefix(value, "cake_") || k.AgentID != "" {
		a := s.agents[k.AgentID]
		if k.AgentID == "" || a == nil {
			return nil, &authError{401, "invalid_api_key", "Invalid Agent Key: No agent associated with this key"}
		}
		if !a.Enabled {
			// unknown: the wire code; the text is Cencori's.
			return nil, &authError{403, "agent_disabled", "Agent is disabled"}
		}
	}
	if k.Type == KeyPublishable && !domainAllowed(r, k.AllowedDomains) {
		return nil, &authError{403, "domain_not_allowed", "Domain not allowed"}
	}
	return k, nil
}

// domainAllowed checks the Origin, else the Referer, host against the
// key's allowed domains. No header at all (a server-side caller) fails.
func domainAllowed(r *http.Request, allowed []string) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	u, err := url.Parse(src)
	if src == "" || err != nil || u.Hostname() == "" {
		return false
	}
	host := strings.ToLower(u.Hostname())
	for _, d := range allowed {
		d = strings.ToLower(d)
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// gateway runs the middleware of AI and memory routes: key, then the
// project's rate window, then the handler; the request is recorded in the
// project's metrics.
func (s *Server) gateway(w http.ResponseWriter, r *http.Request, h func(http.ResponseWriter, *http.Request, *Key) float64) {
	s.mu.Lock()
	k, aerr := s.lookup(r, extractKey(r))
	if aerr != nil {
		s.mu.Unlock()
		flatError(w, aerr.status, aerr.code, aerr.text, "")
		return
	}
	now := s.now()
	win := s.window[k.ProjectID][:0:0]
	for _, t := range s.window[k.ProjectID] {
		if now.Sub(t) < RateWindow {
			win = append(win, t)
		}
	}
	if len(win) >= s.limit {
		s.window[k.ProjectID] = win
		wait := win[len(win)-s.limit].Add(RateWindow).Sub(now)
		reset := now.Add(wait)
		s.history[k.ProjectID] = append(s.history[k.ProjectID], record{at: now, status: http.StatusTooManyRequests})
		s.mu.Unlock()
		setRaw(w, "X-RateLimit-Limit", strconv.Itoa(s.limit))
		setRaw(w, "X-RateLimit-Remaining", "0")
		setRaw(w, "X-RateLimit-Reset", strconv.FormatInt(reset.UnixMilli(), 10))
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(wait.Seconds())), 10))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{
			"error": "Rate limit exceeded", "code": "rate_limit_exceeded",
			"message":        fmt.Sprintf("%d requests per minute allowed. Try again shortly.", s.limit),
			"retry_after_ms": wait.Milliseconds(),
		})
		return
	}
	win = append(win, now)
	s.window[k.ProjectID] = win
	reset := win[0].Add(RateWindow)
	s.mu.Unlock()
	setRaw(w, "X-RateLimit-Limit", strconv.Itoa(s.limit))
	setRaw(w, "X-RateLimit-Remaining", strconv.Itoa(s.limit-len(win)))
	setRaw(w, "X-RateLimit-Reset", strconv.FormatInt(reset.UnixMilli(), 10))
	sw := &statusWriter{ResponseWriter: w}
	cost := h(sw, r, k)
	s.mu.Lock()
	s.history[k.ProjectID] = append(s.history[k.ProjectID], record{at: now, status: sw.status, costUSD: cost})
	s.mu.Unlock()
}

// metrics is GET /v1/metrics, which authenticates on its own: Bearer only,
// and 401 bodies without a code.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		flatError(w, http.StatusMethodNotAllowed, "", "Method not allowed", "")
		return
	}
	value := bearer(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if value == "" {
		flatError(w, http.StatusUnauthorized, "", "Missing API key. Use Authorization: Bearer <api_key>", "")
		return
	}
	k, aerr := s.lookup(r, value)
	if aerr != nil {
		if aerr.status == http.StatusUnauthorized {
			flatError(w, http.StatusUnauthorized, "", "Invalid API key", "")
		} else {
			flatError(w, aerr.status, aerr.code, aerr.text, "")
		}
		return
	}
	period := r.URL.Query().Get("period")
	if period == "" {
		period = "24h"
	}
	now := s.now().UTC()
	var start time.Time
	switch period {
	case "1h":
		start = now.Add(-time.Hour)
	case "24h":
		start = now.Add(-24 * time.Hour)
	case "7d":
		start = now.Add(-7 * 24 * time.Hour)
	case "30d":
		start = now.Add(-30 * 24 * time.Hour)
	case "mtd":
		start = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	default:
		// unknown: the exact text of this error.
		flatError(w, http.StatusBadRequest, "", "Invalid period. Use one of: 1h, 24h, 7d, 30d, mtd", "")
		return
	}
	var total, success, failed, tokens int
	var cost float64
	for _, rec := range s.history[k.ProjectID] {
		if rec.at.Before(start) {
			continue
		}
		total++
		if rec.status < 400 {
			success++
		} else {
			failed++
		}
		cost += rec.costUSD
		tokens += rec.tokens
	}
	rate, avg := 0.0, 0.0
	if total > 0 {
		rate = math.Round(float64(success)/float64(total)*10000) / 100
		avg = cost / float64(total)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"period": period, "start_date": start.Format(time.RFC3339), "end_date": now.Format(time.RFC3339),
		"requests":              map[string]any{"total": total, "success": success, "error": failed, "filtered": 0, "success_rate": rate},
		"cost":                  map[string]any{"total_usd": cost, "average_per_request_usd": avg},
		"tokens":                map[string]any{"prompt": tokens / 2, "completion": tokens - tokens/2, "total": tokens},
		"latency":               map[string]any{"avg_ms": 412, "p50_ms": 380, "p90_ms": 610, "p99_ms": 990},
		"inference_performance": map[string]any{"samples": total},
		"providers":             map[string]any{"openai": map[string]any{"requests": total, "cost_usd": cost}},
		"models":                map[string]any{},
	})
}

// models is GET /v1/models. unknown: the shape; this is OpenAI's list.
func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	_, aerr := s.lookup(r, extractKey(r))
	s.mu.Unlock()
	if aerr != nil {
		flatError(w, aerr.status, aerr.code, aerr.text, "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]any{
		{"id": "gpt-4o-mini", "object": "model", "owned_by": "openai"},
		{"id": "claude-sonnet-4", "object": "model", "owned_by": "anthropic"},
	}})
}

// chat is a canned chat completion, enough for the rate window and the
// metrics to count AI traffic.
func (s *Server) chat(w http.ResponseWriter, r *http.Request, _ *Key) float64 {
	if r.Method != http.MethodPost {
		flatError(w, http.StatusMethodNotAllowed, "", "Method not allowed", "")
		return 0
	}
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model == "" || len(req.Messages) == 0 {
		flatError(w, http.StatusBadRequest, "bad_request", "bad_request", "model and messages are required")
		return 0
	}
	content := "echo: " + req.Messages[len(req.Messages)-1].Content
	const cost = 0.0004
	writeJSON(w, http.StatusOK, map[string]any{
		"id": "chatcmpl-" + randomHex(8), "object": "chat.completion", "created": s.now().Unix(), "model": req.Model,
		"choices": []map[string]any{{"index": 0, "message": map[string]any{"role": "assistant", "content": content}, "finish_reason": "stop"}},
		"usage":   map[string]any{"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
		"content": content, "provider": "openai", "toolCalls": []any{}, "cost_usd": cost, "finish_reason": "stop",
	})
	return cost
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// memory routes /v1/memory/*.
func (s *Server) memory(w http.ResponseWriter, r *http.Request, k *Key) float64 {
	s.mu.Lock()
	disabled := s.memoryDisabled
	s.mu.Unlock()
	if disabled {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "Not found"})
		return 0
	}
	rest := strings.TrimPrefix(r.URL.Path, "/v1/memory/")
	switch {
	case rest == "write" && r.Method == http.MethodPost:
		s.memWrite(w, r, k)
	case rest == "list" && r.Method == http.MethodGet:
		s.memList(w, r, k)
	case rest == "search" && r.Method == http.MethodPost:
		s.memSearch(w, r, k)
	case rest != "" && !strings.Contains(rest, "/") && !slices.Contains([]string{"write", "list", "search", "remember", "graph", "entities", "forget-suggestions"}, rest):
		switch r.Method {
		case http.MethodGet:
			s.memGet(w, k, rest)
		case http.MethodDelete:
			s.memDelete(w, k, rest)
		default:
			flatError(w, http.StatusMethodNotAllowed, "", "Method not allowed", "")
		}
	default:
		flatError(w, http.StatusNotFound, "", "Not found", "")
	}
	return 0
}

func badRequest(w http.ResponseWriter, message string) {
	flatError(w, http.StatusBadRequest, "bad_request", "bad_request", message)
}

// scopeOf reads userId / sessionId / scope as the memory routes do.
func scopeOf(userID, sessionID, scope string) (string, string, string) {
	switch {
	case scope == "" && userID != "":
		scope = "user"
	case scope == "" && sessionID != "":
		scope = "session"
	}
	switch scope {
	case "user":
		if userID == "" {
			return "", "", "userId is required for scope user"
		}
		return scope, userID, ""
	case "session":
		if sessionID == "" {
			return "", "", "sessionId is required for scope session"
		}
		return scope, sessionID, ""
	case "":
		return "", "", "userId or sessionId is required"
	}
	return "", "", `scope must be "user" or "session"`
}

var emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)

func (s *Server) memWrite(w http.ResponseWriter, r *http.Request, k *Key) {
	var req struct {
		Content    *string         `json:"content"`
		UserID     string          `json:"userId"`
		SessionID  string          `json:"sessionId"`
		Scope      string          `json:"scope"`
		Namespace  string          `json:"namespace"`
		Importance *float64        `json:"importance"`
		ExpiresAt  string          `json:"expiresAt"`
		Metadata   json.RawMessage `json:"metadata"`
	}
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&req); err != nil {
		badRequest(w, "Invalid JSON body")
		return
	}
	if req.Content == nil || strings.TrimSpace(*req.Content) == "" {
		badRequest(w, "content is required")
		return
	}
	scope, scopeKey, problem := scopeOf(req.UserID, req.SessionID, req.Scope)
	if problem != "" {
		badRequest(w, problem)
		return
	}
	imp := 0.5
	if req.Importance != nil {
		if *req.Importance < 0 || *req.Importance > 1 {
			badRequest(w, "importance must be between 0 and 1")
			return
		}
		imp = *req.Importance
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	var exp time.Time
	if req.ExpiresAt != "" {
		t, err := time.Parse(time.RFC3339Nano, req.ExpiresAt)
		if err != nil || !t.After(now) {
			badRequest(w, "expiresAt must be an ISO date-time in the future")
			return
		}
		exp = t.UTC()
	}
	var meta map[string]any
	if len(req.Metadata) > 0 && string(req.Metadata) != "null" {
		if err := json.Unmarshal(req.Metadata, &meta); err != nil {
			badRequest(w, "metadata must be an object")
			return
		}
	}
	ns := req.Namespace
	if ns == "" {
		ns = "default"
	}
	s.mu.Lock()
	// createdAt is the list cursor, so keep it strictly increasing.
	if !now.After(s.lastCreated) {
		now = s.lastCreated.Add(time.Millisecond)
	}
	s.lastCreated = now
	m := &Memory{ID: uuidLike(), ProjectID: k.ProjectID, Scope: scope, ScopeKey: scopeKey, Namespace: ns,
		Content: *req.Content, Metadata: meta, Importance: imp, ExpiresAt: exp, CreatedAt: now}
	s.memories[m.ID] = m
	s.mu.Unlock()
	// The answer's content is redacted (providers.md: "content (redacted)");
	// unknown: what is redacted. Here: e-mail addresses.
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": m.ID, "scope": m.Scope, "scopeKey": m.ScopeKey, "namespace": m.Namespace,
		"content": emailPattern.ReplaceAllString(m.Content, "[REDACTED_EMAIL]"), "importance": m.Importance,
		"expiresAt": timeOrNil(m.ExpiresAt), "createdAt": m.CreatedAt.Format(time.RFC3339Nano),
	})
}

func uuidLike() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Format(time.RFC3339Nano)
}

// visible reports whether m belongs to the project and has not expired.
func (s *Server) visible(m *Memory, k *Key, now time.Time) bool {
	return m.ProjectID == k.ProjectID && (m.ExpiresAt.IsZero() || m.ExpiresAt.After(now))
}

func (s *Server) memList(w http.ResponseWriter, r *http.Request, k *Key) {
	q := r.URL.Query()
	scope, scopeKey, problem := scopeOf(q.Get("userId"), q.Get("sessionId"), q.Get("scope"))
	if problem != "" {
		badRequest(w, problem)
		return
	}
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			badRequest(w, "limit must be between 1 and 100")
			return
		}
		limit = n
	}
	var before time.Time
	if c := q.Get("cursor"); c != "" {
		t, err := time.Parse(time.RFC3339Nano, c)
		if err != nil {
			badRequest(w, "Invalid cursor")
			return
		}
		before = t
	}
	ns := q.Get("namespace")
	s.mu.Lock()
	now := s.now()
	var all []*Memory
	for _, m := range s.memories {
		if !s.visible(m, k, now) || m.Scope != scope || m.ScopeKey != scopeKey || (ns != "" && m.Namespace != ns) {
			continue
		}
		if !before.IsZero() && !m.CreatedAt.Before(before) {
			continue
		}
		all = append(all, m)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].CreatedAt.After(all[j].CreatedAt) })
	var next any
	if len(all) > limit {
		all = all[:limit]
		next = all[limit-1].CreatedAt.Format(time.RFC3339Nano)
	}
	out := make([]map[string]any, 0, len(all))
	for _, m := range all {
		out = append(out, map[string]any{"id": m.ID, "namespace": m.Namespace, "content": m.Content, "metadata": m.Metadata,
			"importance": m.Importance, "accessCount": m.AccessCount, "createdAt": m.CreatedAt.Format(time.RFC3339Nano)})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"memories": out, "count": len(out), "nextCursor": next})
}

var wordPattern = regexp.MustCompile(`[\p{L}\p{N}]+`)

func words(s string) map[string]bool {
	out := map[string]bool{}
	for _, w := range wordPattern.FindAllString(strings.ToLower(s), -1) {
		out[w] = true
	}
	return out
}

// memSearch scores by word overlap: the share of the query's words found in
// the memory. unknown: Cencori's embedding model; any monotone score with
// the documented threshold and topK semantics will do for a fake.
func (s *Server) memSearch(w http.ResponseWriter, r *http.Request, k *Key) {
	var req struct {
		Query     string   `json:"query"`
		UserID    string   `json:"userId"`
		SessionID string   `json:"sessionId"`
		Scope     string   `json:"scope"`
		TopK      *int     `json:"topK"`
		Threshold *float64 `json:"threshold"`
		Namespace string   `json:"namespace"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		badRequest(w, "Invalid JSON body")
		return
	}
	if strings.TrimSpace(req.Query) == "" {
		badRequest(w, "query is required")
		return
	}
	scope, scopeKey, problem := scopeOf(req.UserID, req.SessionID, req.Scope)
	if problem != "" {
		badRequest(w, problem)
		return
	}
	topK, threshold := 5, 0.7
	if req.TopK != nil {
		if *req.TopK < 1 || *req.TopK > 100 {
			badRequest(w, "topK must be between 1 and 100")
			return
		}
		topK = *req.TopK
	}
	if req.Threshold != nil {
		threshold = *req.Threshold
	}
	start := time.Now()
	qw := words(req.Query)
	type hit struct {
		m     *Memory
		score float64
	}
	var hits []hit
	s.mu.Lock()
	now := s.now()
	for _, m := range s.memories {
		if !s.visible(m, k, now) || m.Scope != scope || m.ScopeKey != scopeKey || (req.Namespace != "" && m.Namespace != req.Namespace) {
			continue
		}
		mw := words(m.Content)
		n := 0
		for w := range qw {
			if mw[w] {
				n++
			}
		}
		score := float64(n) / float64(max(1, len(qw)))
		if score >= threshold && n > 0 {
			hits = append(hits, hit{m, score})
		}
	}
	sort.Slice(hits, func(i, j int) bool {
		if hits[i].score != hits[j].score {
			return hits[i].score > hits[j].score
		}
		return hits[i].m.CreatedAt.After(hits[j].m.CreatedAt)
	})
	if len(hits) > topK {
		hits = hits[:topK]
	}
	out := make([]map[string]any, 0, len(hits))
	for _, h := range hits {
		h.m.AccessCount++
		out = append(out, map[string]any{"id": h.m.ID, "content": h.m.Content, "score": math.Round(h.score*1000) / 1000,
			"namespace": h.m.Namespace, "importance": h.m.Importance, "createdAt": h.m.CreatedAt.Format(time.RFC3339Nano)})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"results": out, "count": len(out), "latencyMs": time.Since(start).Milliseconds()})
}

func memoryJSON(m *Memory) map[string]any {
	return map[string]any{"id": m.ID, "scope": m.Scope, "scopeKey": m.ScopeKey, "namespace": m.Namespace,
		"content": m.Content, "metadata": m.Metadata, "importance": m.Importance, "accessCount": m.AccessCount,
		"expiresAt": timeOrNil(m.ExpiresAt), "createdAt": m.CreatedAt.Format(time.RFC3339Nano)}
}

func (s *Server) memGet(w http.ResponseWriter, k *Key, id string) {
	s.mu.Lock()
	m, ok := s.memories[id]
	if !ok || !s.visible(m, k, s.now()) {
		s.mu.Unlock()
		flatError(w, http.StatusNotFound, "", "not_found", "Memory not found")
		return
	}
	body := memoryJSON(m)
	s.mu.Unlock()
	// unknown: whether the memory is wrapped; the route returns it bare.
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) memDelete(w http.ResponseWriter, k *Key, id string) {
	s.mu.Lock()
	m, ok := s.memories[id]
	if !ok || !s.visible(m, k, s.now()) {
		s.mu.Unlock()
		flatError(w, http.StatusNotFound, "", "not_found", "Memory not found")
		return
	}
	delete(s.memories, id)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"deleted": true, "id": id})
}
