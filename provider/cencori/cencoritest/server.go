// Package cencoritest is a fake Cencori for tests, examples and benchmarks:
// the REST host (/v1/metrics, /v1/models, /v1/memory/*) and the native
// gateway (/api/ai/chat) on one loopback server. Every wire detail it
// reproduces is listed, with the Cencori source it comes from, in
// docs/providers/cencori.md; what no source settles is listed there under
// "Unknown" and marked "unknown:" here. In short:
//
//   - memory is gated by default, as in production: every /v1/memory path
//     answers 404 {"error":"Not found"} before any authentication (Cencori's
//     proxy.ts serves memory only on localhost until the product launches);
//     WithMemoryEnabled serves it, as a local build does;
//   - the key is read from the CENCORI_API_KEY header first, then from
//     Authorization: Bearer (a JWT-shaped bearer is a user session, not a
//     key), and looked up by value: the server checks no format, so a
//     revoked or unknown key is "Invalid API key";
//   - publishable keys (cpk_) need an Origin or Referer whose host is in the
//     key's allowed domains, else 403 domain_not_allowed; agent keys (cake_)
//     need an enabled agent, but only on the AI chat route;
//   - errors are flat {"error","message"?,"code"?} bodies; /v1/metrics' 401s
//     carry no code;
//   - gateway responses carry X-Request-Id; AI and memory requests count in
//     a sliding 60 s window per project (60 requests); the 429 past it
//     carries X-RateLimit-Limit/-Remaining/-Reset (a millisecond Unix
//     time), Retry-After (seconds) and retry_after_ms;
//   - memories follow the routes in app/api/v1/memory: scope defaults to
//     user, search topK is clamped to 1-20, writes answer mem_<uuid> ids and
//     store metadata with extractedFrom "manual", and session-scope memories
//     live in a capped list whose entries all have the id mem_session.
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
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/provider/internal/fakekit"
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

// demoKey makes a well-formed, deterministic fake key: prefix plus n hex
// characters (48 for csk_/cpk_, from 24 random bytes; 32 for cake_, a
// UUID without dashes).
func demoKey(prefix, label string, n int) string {
	sum := sha256.Sum256([]byte("cencoritest demo key " + label))
	return prefix + hex.EncodeToString(sum[:])[:n]
}

// Demo keys seeded into every new Server. They are fake and safe to print.
var (
	DemoSecretKey          = demoKey("csk_", "secret", 48)
	DemoTestSecretKey      = demoKey("csk_test_", "secret test", 48)
	DemoPublishableKey     = demoKey("cpk_", "publishable", 48)
	DemoTestPublishableKey = demoKey("cpk_test_", "publishable test", 48)
	// DemoAgentKey has the shape the dashboard's agent setup issues: cake_
	// and 32 hex.
	DemoAgentKey = demoKey("cake_", "agent", 32)
	// DemoUnboundAgentKey is an agent key with no agent behind it: the AI
	// chat route refuses it with 401 "Invalid Agent Key".
	DemoUnboundAgentKey = demoKey("cake_", "unbound agent", 32)
)

// The seeded memories' ids: mem_ and a UUID, as Cencori issues them.
const (
	SeedMemory1 = "mem_5f0c3a52-8a1e-4c1b-9d43-0f6a2b7c9e11"
	SeedMemory2 = "mem_0b7d9c64-2e35-4f8a-a1c6-3d5e7f9a1b22"
	SeedMemory3 = "mem_c41e8f07-6b29-4d3c-8e5a-9f1b2c3d4e33"
)

// Key is one API key the fake accepts.
type Key struct {
	Value          string
	ProjectID      string
	Type           string // KeySecret or KeyPublishable
	Environment    string // EnvProduction or EnvTest
	AgentID        string // set for agent keys (cake_); empty for an unbound one
	AllowedDomains []string
	Revoked        bool
}

// Agent is an agent an agent key may be bound to.
type Agent struct {
	ID      string
	Name    string
	Enabled bool
}

// Memory is one stored user-scope memory (a gateway_memories row).
type Memory struct {
	ID             string // mem_ + UUID
	ProjectID      string
	Scope          string // "user"
	ScopeKey       string // the userId
	Namespace      string // "" is null
	Content        string
	Metadata       map[string]any
	Importance     float64
	AccessCount    int
	LastAccessedAt time.Time
	ExpiresAt      time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// SessionMemory is one entry of a session's memory list (Redis in Cencori):
// no id, no metadata, no namespace.
type SessionMemory struct {
	Content    string
	Importance float64
	CreatedAt  time.Time
}

// sessionList is one session's entries, newest first, and when it expires.
type sessionList struct {
	entries []SessionMemory
	expires time.Time
}

// dataRule is a project data rule that rewrites what it matches before a
// memory is stored.
type dataRule struct {
	re   *regexp.Regexp
	with string
}

// record is one gateway request counted in a project's metrics.
type record struct {
	at      time.Time
	status  int
	costUSD float64
	tokens  int
}

// Server is the fake. It is an http.Handler and safe for concurrent use.
type Server struct {
	mu            sync.Mutex
	now           func() time.Time
	limit         int
	memoryEnabled bool
	memoryOff     map[string]bool // project -> memory switched off in its settings
	rules         []dataRule
	sessionTTL    time.Duration
	keys          map[string]*Key
	agents        map[string]*Agent
	memories      map[string]*Memory
	sessions      map[string]*sessionList // project + "/" + sessionId
	window        map[string][]time.Time  // project -> request times in the window
	history       map[string][]record     // project -> gateway requests, for /v1/metrics
	log           fakekit.Log             // every request, counted
	faults        fakekit.Faults          // matched by method and path
	lastCreated   time.Time
	reqSeq        int
}

// Option configures a Server.
type Option func(*Server)

// WithClock sets the clock used for the rate window, timestamps and
// expiry; tests move it to cross the 60 s window without waiting.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithRateLimit sets the requests allowed per 60 s window per project.
func WithRateLimit(n int) Option { return func(s *Server) { s.limit = n } }

// WithMemoryEnabled serves the memory API, as Cencori does on localhost.
// Without it every memory path answers 404 {"error":"Not found"}, as
// Cencori's proxy.ts does on every other host.
func WithMemoryEnabled() Option { return func(s *Server) { s.memoryEnabled = true } }

// WithDataRule adds a project data rule: what re matches in a memory's
// content is replaced by with before the memory is stored, as Cencori's
// custom data rules do. A project has none by default.
func WithDataRule(re *regexp.Regexp, with string) Option {
	return func(s *Server) { s.rules = append(s.rules, dataRule{re: re, with: with}) }
}

// New returns a fake seeded with the demo project, its keys, an agent and
// three memories for user "keygate".
func New(opts ...Option) *Server {
	s := &Server{
		now:        time.Now,
		limit:      DefaultRateLimit,
		memoryOff:  map[string]bool{},
		sessionTTL: defaultSessionTTL,
		keys:       map[string]*Key{},
		agents:     map[string]*Agent{DemoAgentID: {ID: DemoAgentID, Name: "Demo agent", Enabled: true}},
		memories:   map[string]*Memory{},
		sessions:   map[string]*sessionList{},
		window:     map[string][]time.Time{},
		history:    map[string][]record{},
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
		{Value: DemoUnboundAgentKey, Type: KeySecret, Environment: EnvProduction},
	} {
		k.ProjectID = DemoProject
		s.AddKey(k)
	}
	now := s.now()
	for i, c := range []struct{ id, ns, content string }{
		{SeedMemory1, "", "The user prefers short answers with code examples."},
		{SeedMemory2, "", "keygate is an MCP server that gives agents scoped access to content APIs."},
		{SeedMemory3, "projects", "The launch of the docs site is planned for the first week of March."},
	} {
		at := dbTime(now.Add(time.Duration(i-10) * time.Minute))
		m := &Memory{ID: c.id, ProjectID: DemoProject, Scope: "user", ScopeKey: "keygate", Namespace: c.ns, Content: c.content,
			Metadata: writtenMetadata(map[string]any{"source": "seed"}, 0), Importance: 0.5, CreatedAt: at, UpdatedAt: at}
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

// SetMemoryEnabled serves the memory API (true, as on localhost) or gates
// it (false, as on every other host).
func (s *Server) SetMemoryEnabled(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.memoryEnabled = on
}

// SetProjectMemoryEnabled switches memory on or off in a project's settings:
// off, writes and searches answer 403 memory_disabled.
func (s *Server) SetProjectMemoryEnabled(projectID string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.memoryOff[projectID] = !on
}

// FailNext makes the next request (any path) answer status with headers
// and body instead of being handled. Calls queue up.
func (s *Server) FailNext(status int, headers map[string]string, body string) {
	s.FailNextOn("", "", status, headers, body)
}

// FailNextOn is FailNext for the next request with this method and path
// ("" matches any).
func (s *Server) FailNextOn(method, path string, status int, headers map[string]string, body string) {
	s.faults.Fail(method, path, status, headers, body)
}

// DropNextResponse makes the next request be handled in full (a write is
// stored) but its connection closed without an answer, as when a response
// is lost on the way back.
func (s *Server) DropNextResponse() { s.DropNextResponseOn("", "") }

// DropNextResponseOn is DropNextResponse for the next request with this
// method and path ("" matches any).
func (s *Server) DropNextResponseOn(method, path string) { s.faults.Drop(method, path) }

// Requests counts the requests received for path, injected failures
// included.
func (s *Server) Requests(path string) int { return s.log.Count(path) }

// TotalRequests counts every request received.
func (s *Server) TotalRequests() int { return s.log.Total() }

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
	s.log.Add(r, "")
	s.mu.Lock()
	s.reqSeq++
	reqID := fmt.Sprintf("req_%06d", s.reqSeq)
	s.mu.Unlock()
	setRaw(w, "X-Request-Id", reqID)
	if f, ok := s.faults.Take(r); ok {
		s.faults.Serve(w, f, func(w http.ResponseWriter) { s.route(w, r) })
		return
	}
	s.route(w, r)
}

// isMemoryPath is proxy.ts's isLocalMemoryPath for the paths the fake
// serves (api.cencori.com's /v1/memory/* is /api/v1/memory/* there).
func isMemoryPath(p string) bool { return p == "/v1/memory" || strings.HasPrefix(p, "/v1/memory/") }

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	gated := !s.memoryEnabled && isMemoryPath(r.URL.Path)
	s.mu.Unlock()
	if gated {
		// proxy.ts answers before the route, its authentication and the
		// gateway headers: no X-Request-Id, whatever the method or key.
		w.Header().Del("X-Request-Id")
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "Not found"})
		return
	}
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
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "service": "cencori-api", "version": "v1", "timestamp": jsTime(s.now())})
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

// lookup validates a key as validateGatewayRequest does: by value (Cencori
// hashes it and looks the hash up; it checks no format), not revoked, and
// for a publishable key an allowed Origin or Referer. Callers hold mu.
func (s *Server) lookup(r *http.Request, value string) (*Key, *authError) {
	if value == "" {
		return nil, &authError{401, "missing_api_key", "Missing API key. Provide CENCORI_API_KEY header or Authorization: Bearer <key>"}
	}
	k := s.keys[value]
	if k == nil || k.Revoked {
		return nil, &authError{401, "invalid_api_key", "Invalid API key"}
	}
	if k.Type == KeyPublishable && !domainAllowed(r, k.AllowedDomains) {
		return nil, &authError{403, "domain_not_allowed", "Domain not allowed for this API key"}
	}
	return k, nil
}

// domainAllowed is validateDomain: the Origin, else the Referer, host must
// equal an allowed domain, or match a "*.example.com" pattern (which also
// admits example.com itself). No header at all (a server-side caller)
// fails.
func domainAllowed(r *http.Request, allowed []string) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	u, err := url.Parse(src)
	if src == "" || err != nil || u.Hostname() == "" {
		return false
	}
	host := strings.ToLower(u.Hostname()) // the URL parser lower-cases it
	for _, d := range allowed {
		if host == d {
			return true
		}
		if base, ok := strings.CutPrefix(d, "*."); ok && (host == base || strings.HasSuffix(host, "."+base)) {
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
		w.Header().Set("Retry-After", strconv.FormatInt(max(1, int64(math.Round(wait.Seconds()))), 10))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{
			"error": "Rate limit exceeded", "code": "rate_limit_exceeded",
			"message":        fmt.Sprintf("%d requests per minute allowed. Try again shortly.", s.limit),
			"retry_after_ms": wait.Milliseconds(),
		})
		return
	}
	win = append(win, now)
	s.window[k.ProjectID] = win
	s.mu.Unlock()
	// The routes add only X-Request-Id: the X-RateLimit-* headers come
	// with the middleware's own refusals.
	sw := &statusWriter{ResponseWriter: w}
	cost := h(sw, r, k)
	s.mu.Lock()
	s.history[k.ProjectID] = append(s.history[k.ProjectID], record{at: now, status: sw.status, costUSD: cost})
	s.mu.Unlock()
}

// metrics is GET /v1/metrics, which authenticates on its own: the key from
// either header, looked up with no domain or agent check, and 401 bodies
// without a code.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		flatError(w, http.StatusMethodNotAllowed, "", "Method not allowed", "")
		return
	}
	value := extractKey(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if value == "" {
		flatError(w, http.StatusUnauthorized, "", "Missing API key. Use Authorization: Bearer <api_key>", "")
		return
	}
	k := s.keys[value]
	if k == nil || k.Revoked {
		flatError(w, http.StatusUnauthorized, "", "Invalid API key", "")
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
		// getPeriodDates falls back to 24 hours; the answer names the
		// period as asked.
		start = now.Add(-24 * time.Hour)
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

// models is GET /v1/models: {"object":"list","data":[...]} as the route
// documents; the models listed are made up.
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
// metrics to count AI traffic. It alone checks an agent key's agent, as
// Cencori's ai-chat-handler does.
func (s *Server) chat(w http.ResponseWriter, r *http.Request, k *Key) float64 {
	if r.Method != http.MethodPost {
		flatError(w, http.StatusMethodNotAllowed, "", "Method not allowed", "")
		return 0
	}
	if strings.HasPrefix(k.Value, "cake_") || k.AgentID != "" {
		s.mu.Lock()
		a := s.agents[k.AgentID]
		s.mu.Unlock()
		switch {
		case k.AgentID == "" || a == nil:
			// unknown: a key whose agent row is gone; treated as unbound.
			flatError(w, http.StatusUnauthorized, "", "Invalid Agent Key: No agent associated with this key", "")
			return 0
		case !a.Enabled:
			flatError(w, http.StatusForbidden, "", "Agent is disabled", "This agent has been deactivated.")
			return 0
		}
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
