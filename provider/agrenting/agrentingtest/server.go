// Package agrentingtest is a fake Agrenting API (base /api/v1) for tests,
// examples and benchmarks. It reproduces the wire behaviour that
// docs/providers/agrenting.md records with its sources (Agrenting's docs
// pages and its official client, AgRenting/paperclip-adapter):
//
//   - {data, meta} envelopes; errors {data:null, meta, errors:[{code,
//     message, details}]}; the 429 body has no data field;
//   - credentials: X-API-Key (or Api-Key) agent keys, Bearer ap_ user tokens
//     with X-Agent-ID, Bearer session tokens from POST /auth/authenticate
//     (10 per 60 s per IP, then a 5-minute lockout); DELETE /auth/logout
//     requires X-API-Key;
//   - cursor pagination (Base64URL {"offset":N}) with meta.pagination
//     {total_count, cursor, has_more}; limit default 20, max 100;
//   - X-Idempotency-Key on POST and PUT: the key is kept SHA-256-hashed with
//     a fingerprint of the request for 24 h; same key and body after
//     completion replays the original answer with 200; a different body is
//     422 IDEMPOTENCY_MISMATCH; still in progress is 409
//     IDEMPOTENCY_PENDING; a failed final answer is replayed;
//   - lower-case x-ratelimit-limit / x-ratelimit-remaining on every answer,
//     retry-after only when limited (100 requests per 60 s per agent);
//   - POST /auth/rotate-key: the caller's own key is revoked at once and a
//     new one returned; POST /agents/:id/credentials creates a key.
//
// What no source settles (the answers of rotate-key and create, the list
// and revoke endpoints, the key formats) is listed under "Unknown" in
// docs/providers/agrenting.md; the choice made here is marked "unknown:" in
// a comment, and options let tests vary it (WithRotateAnswer,
// WithoutCredentialList, WithBareCredentialList, WithRevokePath,
// WithSessionsEndingWithKey).
package agrentingtest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/provider/internal/fakekit"
)

// Limits and windows.
const (
	DefaultRateLimit = 100 // general requests per agent per window
	RateWindow       = time.Minute
	AuthLimit        = 10 // POST /auth/authenticate per IP per window
	AuthLockout      = 5 * time.Minute
	IdempotencyTTL   = 24 * time.Hour
	MaxArtifacts     = 50
	SessionTTL       = time.Hour
)

// RotateKeyPath is the documented self-rotation endpoint (under /api/v1).
const RotateKeyPath = "/auth/rotate-key"

// CredentialsPath lists (unknown: undocumented) and creates (documented)
// an agent's keys.
const CredentialsPath = "/agents/:agent_id/credentials"

// DefaultRevokePath is where the fake revokes a key. unknown: Agrenting
// documents only "DELETE credential endpoint"; :agent_id is the agent, :id
// the credential.
const DefaultRevokePath = "/agents/:agent_id/credentials/:id"

// ArtifactTypes are the documented artifact types; file and image content
// is base64.
var ArtifactTypes = []string{"code_block", "markdown", "html", "file", "diff", "image", "json", "link", "text"}

// Demo identities seeded into every new Server. The keys are fake.
const (
	DemoAgentID      = "3f6c1a52-8d0e-4c1b-9a57-0d2f4e6b7a11"
	DemoAgentName    = "keygate demo agent"
	DemoOtherAgentID = "9b2d7e10-4f3a-4e8c-b1d6-52a8c0f3e944"
	DemoUserID       = "user_demo"
)

func demoSecret(prefix, label string) string {
	sum := sha256.Sum256([]byte("agrentingtest " + label))
	return prefix + hex.EncodeToString(sum[:])[:40]
}

// Demo credentials.
var (
	// DemoAgentKey is the demo agent's API key (X-API-Key).
	DemoAgentKey = demoSecret("agr_", "agent key")
	// DemoUserToken is the demo user's token (Bearer), owner of both demo
	// agents, so it needs X-Agent-ID.
	DemoUserToken = "ap_" + demoSecret("", "user token")
)

// Agent is an agent on the platform.
type Agent struct {
	ID, Name, DID, OwnerID string
	Capabilities           []string
	Balance                float64 // available, USD
	Escrow                 float64
}

// Credential is an agent API key.
type Credential struct {
	ID         string
	AgentID    string
	Name       string
	Secret     string
	CreatedAt  time.Time
	LastUsedAt time.Time
	RevokedAt  time.Time
	RotatedTo  string
}

// Task is a task between two agents.
type Task struct {
	ID              string
	ClientAgentID   string
	ProviderAgentID string
	Capability      string
	Input           json.RawMessage
	MaxPrice        json.RawMessage
	Status          string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Artifact is a stored task artifact.
type Artifact struct {
	ID, TaskID, Type, Name, Content string
	CreatedAt                       time.Time
}

type session struct {
	agentID string
	credID  string // the key that opened it
	expires time.Time
}

// idemEntry is one idempotency record.
type idemEntry struct {
	fingerprint  string
	state        string // "pending", "completed", "failed_final"
	status       int
	body         []byte
	created      time.Time
	pendingUntil time.Time // StallNextOn: answers 409 until then
}

// Server is the fake. It is an http.Handler and safe for concurrent use.
type Server struct {
	mu         sync.Mutex
	now        func() time.Time
	limit      int
	revokePath string
	// noList: GET /agents/:id/credentials is not served (the platform
	// documents no such endpoint).
	noList       bool
	bareList     bool
	rotateAnswer RotateAnswer
	agents       map[string]*Agent
	creds        map[string]*Credential // by id
	users        map[string][]string    // user token -> owned agent ids
	sessions     map[string]*session
	tasks        map[string]*Task
	artifacts    map[string][]*Artifact // by task id
	idem         map[string]*idemEntry  // sha256(agent + key) -> entry
	window       map[string][]time.Time // agent -> request times
	authTries    map[string][]time.Time // ip -> authenticate times
	lockedUntil  map[string]time.Time   // ip -> lockout end
	// sessionsEndWithKey: revoking a key ends the sessions it opened.
	sessionsEndWithKey bool
	log                fakekit.Log    // every request, counted
	faults             fakekit.Faults // matched by method and path
	seq                int
	lastStamp          time.Time
}

// Option configures a Server.
type Option func(*Server)

// WithClock sets the clock for timestamps, windows, sessions and
// idempotency records.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithRateLimit sets the general requests allowed per agent per 60 s.
func WithRateLimit(n int) Option { return func(s *Server) { s.limit = n } }

// WithRevokePath serves revoke on another path (with :agent_id and :id
// placeholders), as the real, undocumented one may be.
func WithRevokePath(revoke string) Option {
	return func(s *Server) { s.revokePath = revoke }
}

// WithoutCredentialList answers GET /agents/:id/credentials with 404
// ROUTE_NOT_FOUND, as Agrenting may: no source documents that endpoint.
func WithoutCredentialList() Option { return func(s *Server) { s.noList = true } }

// WithBareCredentialList lists keys with their id, name, status and times
// only: no part of any key shows. unknown: what Agrenting's list, if it has
// one, shows of a key.
func WithBareCredentialList() Option { return func(s *Server) { s.bareList = true } }

// RotateAnswer builds the data of a POST /auth/rotate-key answer from the
// new key, its credential as the list shows it, and the revoked key's id.
type RotateAnswer func(newKey string, cred map[string]any, revokedID string) any

// WithRotateAnswer makes POST /auth/rotate-key answer with another shape.
// unknown: Agrenting documents only that "a new key is returned".
func WithRotateAnswer(a RotateAnswer) Option { return func(s *Server) { s.rotateAnswer = a } }

// Rotate-key answer shapes. AnswerAPIKey, the default, is the shape of the
// documented register answer, the one documented answer that hands out an
// agent key: {"api_key", "message"}.
var (
	AnswerAPIKey RotateAnswer = func(k string, _ map[string]any, _ string) any {
		return map[string]any{"api_key": k, "message": "Keep your API key secure. It will not be shown again."}
	}
	// AnswerKeyOnly is {"key": "<new key>"}.
	AnswerKeyOnly RotateAnswer = func(k string, _ map[string]any, _ string) any { return map[string]any{"key": k} }
	// AnswerCredential nests the credential: {"credential": {...},
	// "api_key", "revoked_credential_id"}.
	AnswerCredential RotateAnswer = func(k string, cred map[string]any, revoked string) any {
		return map[string]any{"credential": cred, "api_key": k, "revoked_credential_id": revoked}
	}
	// AnswerNested hides the key two levels down, beside ids and a
	// timestamp: {"rotation": {"id", "rotated_at", "new_key": {"value"}}}.
	AnswerNested RotateAnswer = func(k string, cred map[string]any, _ string) any {
		return map[string]any{"rotation": map[string]any{"id": "rot_1", "rotated_at": cred["created_at"], "new_key": map[string]any{"value": k}}}
	}
)

// WithSessionsEndingWithKey makes revoking or rotating a key end the
// session tokens it opened. unknown: which Agrenting does; by default the
// fake keeps them until their TTL or logout, as a session of the agent.
func WithSessionsEndingWithKey() Option { return func(s *Server) { s.sessionsEndWithKey = true } }

// endSessionsOf ends credID's sessions when the option says so. Callers
// hold mu.
func (s *Server) endSessionsOf(credID string) {
	if !s.sessionsEndWithKey {
		return
	}
	for tok, ss := range s.sessions {
		if ss.credID == credID {
			delete(s.sessions, tok)
		}
	}
}

// New returns a fake seeded with two agents owned by the demo user, the
// demo agent's key, and a few tasks with artifacts.
func New(opts ...Option) *Server {
	s := &Server{
		now: time.Now, limit: DefaultRateLimit, revokePath: DefaultRevokePath, rotateAnswer: AnswerAPIKey,
		agents: map[string]*Agent{}, creds: map[string]*Credential{}, users: map[string][]string{},
		sessions: map[string]*session{}, tasks: map[string]*Task{}, artifacts: map[string][]*Artifact{},
		idem: map[string]*idemEntry{}, window: map[string][]time.Time{}, authTries: map[string][]time.Time{},
		lockedUntil: map[string]time.Time{},
		// Agrenting sends its header names in lower case
		// (docs/providers/agrenting.md, "Rate limits"); injected ones too.
		faults: fakekit.Faults{LowerCase: true},
	}
	for _, o := range opts {
		o(s)
	}
	now := s.now().UTC()
	s.agents[DemoAgentID] = &Agent{ID: DemoAgentID, Name: DemoAgentName, DID: "did:agr:demo", OwnerID: DemoUserID,
		Capabilities: []string{"summarize", "translate"}, Balance: 250}
	s.agents[DemoOtherAgentID] = &Agent{ID: DemoOtherAgentID, Name: "keygate helper agent", DID: "did:agr:helper", OwnerID: DemoUserID,
		Capabilities: []string{"code-review"}, Balance: 40}
	s.users[DemoUserToken] = []string{DemoAgentID, DemoOtherAgentID}
	s.creds["cred_demo"] = &Credential{ID: "cred_demo", AgentID: DemoAgentID, Name: "default", Secret: DemoAgentKey, CreatedAt: now.Add(-48 * time.Hour)}
	for i, c := range []struct{ capability, input string }{
		{"summarize", `"Summarize the keygate README"`},
		{"translate", `{"text":"hello","to":"fr"}`},
		{"code-review", `"Review provider/upstream"`},
	} {
		t := &Task{ID: fmt.Sprintf("task_seed_%d", i+1), ClientAgentID: DemoAgentID, ProviderAgentID: DemoOtherAgentID,
			Capability: c.capability, Input: json.RawMessage(c.input), Status: []string{"completed", "in_progress", "pending"}[i],
			CreatedAt: now.Add(time.Duration(i-10) * time.Minute), UpdatedAt: now.Add(time.Duration(i-5) * time.Minute)}
		s.tasks[t.ID] = t
	}
	s.artifacts["task_seed_1"] = []*Artifact{
		{ID: "art_seed_1", TaskID: "task_seed_1", Type: "markdown", Name: "summary.md", Content: "# keygate\nScoped access for agents.", CreatedAt: now.Add(-9 * time.Minute)},
		{ID: "art_seed_2", TaskID: "task_seed_1", Type: "json", Name: "stats.json", Content: `{"words":120}`, CreatedAt: now.Add(-8 * time.Minute)},
	}
	return s
}

// Start serves the fake on a loopback port, under /api/v1.
func (s *Server) Start() *httptest.Server { return httptest.NewServer(s) }

// FailNextOn makes the next request with this method and path ("" matches
// any) answer status, headers and body before anything else runs (as a
// proxy would): no idempotency record is made.
func (s *Server) FailNextOn(method, path string, status int, headers map[string]string, body string) {
	s.faults.Fail(method, path, status, headers, body)
}

// DropNextResponseOn makes the next matching request be handled in full
// (stored, idempotency record completed) but its connection closed without
// an answer.
func (s *Server) DropNextResponseOn(method, path string) {
	s.faults.Drop(method, path)
}

// StallNextOn is DropNextResponseOn, and the request's idempotency record
// stays "in progress" for d more (the fake's clock): a retry with the same
// key meanwhile gets 409 IDEMPOTENCY_PENDING.
func (s *Server) StallNextOn(method, path string, d time.Duration) {
	s.faults.Add(fakekit.Fault{Method: method, Path: path, Drop: true, Stall: d})
}

// Requests counts requests received for a path (as sent, /api/v1/...).
func (s *Server) Requests(path string) int { return s.log.Count(path) }

// Tasks returns copies of every task, oldest first.
func (s *Server) Tasks() []Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Task
	for _, t := range s.tasks {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// Artifacts returns copies of a task's artifacts.
func (s *Server) Artifacts(taskID string) []Artifact {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Artifact
	for _, a := range s.artifacts[taskID] {
		out = append(out, *a)
	}
	return out
}

// Credentials returns copies of an agent's credentials, secrets included.
func (s *Server) Credentials(agentID string) []Credential {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Credential
	for _, c := range s.creds {
		if c.AgentID == agentID {
			out = append(out, *c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// AddCredential adds an API key for an agent and returns its id.
func (s *Server) AddCredential(agentID, name, secret string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newID("cred")
	s.creds[id] = &Credential{ID: id, AgentID: agentID, Name: name, Secret: secret, CreatedAt: s.stamp()}
	return id
}

// SetBalance sets an agent's available balance.
func (s *Server) SetBalance(agentID string, available float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.agents[agentID]; a != nil {
		a.Balance = available
	}
}

// ExpireSessions ends every session token, as their TTL would.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions = map[string]*session{}
}

// SessionCount is the number of live session tokens.
func (s *Server) SessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Server) newID(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// stamp is a strictly increasing now (callers hold mu).
func (s *Server) stamp() time.Time {
	t := s.now().UTC()
	if !t.After(s.lastStamp) {
		t = s.lastStamp.Add(time.Microsecond)
	}
	s.lastStamp = t
	return t
}

func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

// ---- wire helpers ----

// reply is an answer being built: status and body, and the headers set on
// the real writer.
type reply struct {
	status int
	body   []byte
}

func (s *Server) meta(reqID string) map[string]any {
	return map[string]any{"version": "1.0", "timestamp": ts(s.now()), "request_id": reqID}
}

func (s *Server) ok(reqID string, status int, data any, extra map[string]any) reply {
	m := s.meta(reqID)
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(map[string]any{"data": data, "meta": m})
	return reply{status, b}
}

func (s *Server) fail(reqID string, status int, code, message string, details any) reply {
	e := map[string]any{"code": code, "message": message}
	if details != nil {
		e["details"] = details
	}
	b, _ := json.Marshal(map[string]any{"data": nil, "meta": s.meta(reqID), "errors": []any{e}})
	return reply{status, b}
}

// setLower sets a header with its lower-case spelling on the wire.
func setLower(w http.ResponseWriter, name, value string) {
	w.Header()[strings.ToLower(name)] = []string{value}
}

// ---- dispatch ----

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.log.Add(r, "")
	s.mu.Lock()
	s.seq++
	reqID := fmt.Sprintf("req_%06d", s.seq)
	s.mu.Unlock()
	if f, ok := s.faults.Take(r); ok {
		// An injected answer comes before anything else runs (as a proxy
		// would): no idempotency record is made.
		s.faults.Serve(w, f, func(w http.ResponseWriter) { s.handle(w, r, reqID, &f) })
		return
	}
	rec := httptest.NewRecorder()
	s.handle(rec, r, reqID, nil)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// principal is who a request acts as.
type principal struct {
	agentID string
	via     string // "key", "token", "session"
	credID  string
}

var routeParam = regexp.MustCompile(`:[a-z_]+`)

// match reports whether path fits pattern (with :name placeholders) and
// returns the values.
func match(pattern, path string) (map[string]string, bool) {
	ps, xs := strings.Split(strings.Trim(pattern, "/"), "/"), strings.Split(strings.Trim(path, "/"), "/")
	if len(ps) != len(xs) {
		return nil, false
	}
	out := map[string]string{}
	for i, p := range ps {
		if routeParam.MatchString(p) && strings.HasPrefix(p, ":") {
			if xs[i] == "" {
				return nil, false
			}
			out[p[1:]] = xs[i]
		} else if p != xs[i] {
			return nil, false
		}
	}
	return out, true
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, reqID string, inj *fakekit.Fault) {
	w.Header().Set("Content-Type", "application/json")
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v1")
	if !ok {
		s.write(w, s.fail(reqID, 404, "ROUTE_NOT_FOUND", "Route not found", nil))
		return
	}
	if rest == "/auth/authenticate" && r.Method == http.MethodPost {
		s.write(w, s.authenticate(r, reqID))
		return
	}
	s.mu.Lock()
	p, rep := s.identify(r, reqID)
	s.mu.Unlock()
	if p == nil {
		s.write(w, rep)
		return
	}
	if rep, limited := s.rateLimit(w, p, reqID); limited {
		s.write(w, rep)
		return
	}
	body, _ := readAll(r)
	mutating := r.Method == http.MethodPost || r.Method == http.MethodPut
	key := r.Header.Get("X-Idempotency-Key")
	if !mutating || key == "" {
		s.write(w, s.route(r, rest, p, body, reqID))
		return
	}
	s.write(w, s.idempotent(r, rest, p, body, reqID, key, inj))
}

// idempotent is the idempotency state machine around a POST or PUT with a
// key (docs/providers/agrenting.md, "Keys"): a key is kept with a
// fingerprint of the request; the same key and body replays the answer, a
// different body is refused, and a key still in progress is refused with
// 409 IDEMPOTENCY_PENDING.
func (s *Server) idempotent(r *http.Request, rest string, p *principal, body []byte, reqID, key string, inj *fakekit.Fault) reply {
	sum := sha256.Sum256([]byte(p.agentID + "\x00" + key))
	hashed := hex.EncodeToString(sum[:])
	fp := sha256.Sum256(append([]byte(r.Method+" "+r.URL.Path+"\n"), body...))
	fingerprint := hex.EncodeToString(fp[:])
	s.mu.Lock()
	now := s.now()
	e := s.idem[hashed]
	if e != nil && now.Sub(e.created) > IdempotencyTTL {
		delete(s.idem, hashed)
		e = nil
	}
	if e != nil {
		defer s.mu.Unlock()
		return s.replay(e, fingerprint, now, reqID)
	}
	e = &idemEntry{fingerprint: fingerprint, state: "pending", created: now}
	s.idem[hashed] = e
	s.mu.Unlock()
	rep := s.route(r, rest, p, body, reqID)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case rep.status < 400:
		e.state, e.status, e.body = "completed", rep.status, rep.body
	case rep.status < 500 && rep.status != 429 && rep.status != 409:
		e.state, e.status, e.body = "failed_final", rep.status, rep.body
	default:
		// failed_retriable: the client is told to retry with a new key.
		// unknown: what the same key gets then; here it is free again.
		delete(s.idem, hashed)
	}
	if inj != nil && inj.Stall > 0 {
		e.pendingUntil = s.now().Add(inj.Stall)
	}
	return rep
}

// replay answers a request whose key has a record. Callers hold mu.
func (s *Server) replay(e *idemEntry, fingerprint string, now time.Time, reqID string) reply {
	switch {
	case e.fingerprint != fingerprint:
		return s.fail(reqID, 422, "IDEMPOTENCY_MISMATCH", "Idempotency key was already used with a different request", nil)
	case e.state == "pending" || now.Before(e.pendingUntil):
		return s.fail(reqID, 409, "IDEMPOTENCY_PENDING", "A request with this idempotency key is still being processed", nil)
	case e.state == "completed":
		return reply{http.StatusOK, e.body}
	}
	return reply{e.status, e.body} // failed_final
}

func readAll(r *http.Request) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(http.MaxBytesReader(nil, r.Body, 8<<20))
	return b.Bytes(), err
}

func (s *Server) write(w http.ResponseWriter, rep reply) {
	w.WriteHeader(rep.status)
	_, _ = w.Write(rep.body)
}

// identify reads the credential. X-API-Key (or Api-Key) wins over
// Authorization (unknown: which wins when both are sent). A Bearer value is
// an ap_ user token (X-Agent-ID picks among the user's agents) or a session
// token; unknown: whether Bearer <agent key> works; here it does not.
// Callers hold mu.
func (s *Server) identify(r *http.Request, reqID string) (*principal, reply) {
	unauthorized := func(msg string) (*principal, reply) {
		return nil, s.fail(reqID, 401, "UNAUTHORIZED", msg, nil)
	}
	key := r.Header.Get("X-API-Key")
	if key == "" {
		key = r.Header.Get("Api-Key")
	}
	bearer, hasBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case key != "" && !strings.HasPrefix(key, "ap_"):
		for _, c := range s.creds {
			if c.Secret == key && c.RevokedAt.IsZero() {
				c.LastUsedAt = s.now().UTC()
				return &principal{agentID: c.AgentID, via: "key", credID: c.ID}, reply{}
			}
		}
		return unauthorized("Invalid API key")
	case key != "" || (hasBearer && strings.HasPrefix(bearer, "ap_")):
		tok := key
		if tok == "" {
			tok = bearer
		}
		owned, ok := s.users[tok]
		if !ok {
			return unauthorized("Invalid token")
		}
		agent := r.Header.Get("X-Agent-ID")
		if agent == "" {
			if len(owned) != 1 {
				return nil, s.fail(reqID, 403, "FORBIDDEN", "X-Agent-ID is required: this user owns several agents", nil)
			}
			agent = owned[0]
		}
		if !slices.Contains(owned, agent) {
			return nil, s.fail(reqID, 403, "FORBIDDEN", "You do not own this agent", nil)
		}
		return &principal{agentID: agent, via: "token"}, reply{}
	case hasBearer && bearer != "":
		if ss := s.sessions[bearer]; ss != nil && s.now().Before(ss.expires) {
			return &principal{agentID: ss.agentID, via: "session", credID: ss.credID}, reply{}
		}
		return unauthorized("Invalid or expired token")
	}
	return unauthorized("Missing authentication credentials")
}

// rateLimit counts the request in the agent's window and sets the
// lower-case headers.
func (s *Server) rateLimit(w http.ResponseWriter, p *principal, reqID string) (reply, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	win := s.window[p.agentID][:0:0]
	for _, t := range s.window[p.agentID] {
		if now.Sub(t) < RateWindow {
			win = append(win, t)
		}
	}
	setLower(w, "x-ratelimit-limit", strconv.Itoa(s.limit))
	if len(win) >= s.limit {
		s.window[p.agentID] = win
		wait := int(math.Ceil(win[len(win)-s.limit].Add(RateWindow).Sub(now).Seconds()))
		setLower(w, "x-ratelimit-remaining", "0")
		setLower(w, "retry-after", strconv.Itoa(wait))
		b, _ := json.Marshal(map[string]any{"errors": []any{map[string]any{"code": "RATE_LIMIT_EXCEEDED",
			"message": fmt.Sprintf("Rate limit exceeded. Retry after %d seconds.", wait)}}, "meta": map[string]any{"version": "1.0"}})
		return reply{429, b}, true
	}
	win = append(win, now)
	s.window[p.agentID] = win
	setLower(w, "x-ratelimit-remaining", strconv.Itoa(s.limit-len(win)))
	return reply{}, false
}

// authenticate is POST /auth/authenticate: X-API-Key in, a session token
// out. unknown: the request body (the docs send none; any is ignored) and
// the token's TTL (SessionTTL here, reported as expires_at).
func (s *Server) authenticate(r *http.Request, reqID string) reply {
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if until := s.lockedUntil[ip]; now.Before(until) {
		return s.authLimited(reqID, until.Sub(now))
	}
	var tries []time.Time
	for _, t := range s.authTries[ip] {
		if now.Sub(t) < RateWindow {
			tries = append(tries, t)
		}
	}
	if len(tries) >= AuthLimit {
		s.lockedUntil[ip] = now.Add(AuthLockout)
		s.authTries[ip] = nil
		return s.authLimited(reqID, AuthLockout)
	}
	s.authTries[ip] = append(tries, now)
	key := r.Header.Get("X-API-Key")
	if key == "" {
		key = r.Header.Get("Api-Key")
	}
	for _, c := range s.creds {
		if key != "" && c.Secret == key && c.RevokedAt.IsZero() {
			tok := "sess_" + hex.EncodeToString(randomBytes(24))
			s.sessions[tok] = &session{agentID: c.AgentID, credID: c.ID, expires: now.Add(SessionTTL)}
			a := s.agents[c.AgentID]
			return s.ok(reqID, 200, map[string]any{"token": tok, "expires_at": ts(now.Add(SessionTTL)),
				"agent": map[string]any{"id": a.ID, "name": a.Name}}, nil)
		}
	}
	return s.fail(reqID, 401, "UNAUTHORIZED", "Invalid API key", nil)
}

func (s *Server) authLimited(reqID string, wait time.Duration) reply {
	b, _ := json.Marshal(map[string]any{"errors": []any{map[string]any{"code": "RATE_LIMIT_EXCEEDED",
		"message": fmt.Sprintf("Rate limit exceeded. Retry after %d seconds.", int(math.Ceil(wait.Seconds())))}}, "meta": map[string]any{"version": "1.0", "request_id": reqID}})
	return reply{429, b}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func (s *Server) route(r *http.Request, rest string, p *principal, body []byte, reqID string) reply {
	if rep, ok := s.routeAgent(r, rest, p, body, reqID); ok {
		return rep
	}
	if rep, ok := s.routeTasks(r, rest, p, body, reqID); ok {
		return rep
	}
	return s.fail(reqID, 404, "ROUTE_NOT_FOUND", "Route not found", nil)
}

// routeAgent serves the agent's own routes: its key, session, balance,
// credentials and record.
func (s *Server) routeAgent(r *http.Request, rest string, p *principal, body []byte, reqID string) (reply, bool) {
	m := r.Method
	if rest == RotateKeyPath && m == http.MethodPost {
		return s.rotateKey(p, reqID), true
	}
	if v, ok := match(s.revokePath, rest); ok && m == http.MethodDelete {
		return s.revoke(p, v["agent_id"], v["id"], reqID), true
	}
	switch {
	case rest == "/auth/logout" && m == http.MethodDelete:
		return s.logout(r, p, reqID), true
	case rest == "/ledger/balance" && m == http.MethodGet:
		return s.balance(p, reqID), true
	}
	if v, ok := match(CredentialsPath, rest); ok {
		switch {
		case m == http.MethodGet && s.noList:
			return s.fail(reqID, 404, "ROUTE_NOT_FOUND", "Route not found", nil), true
		case m == http.MethodGet:
			return s.listCredentials(p, v["agent_id"], reqID), true
		case m == http.MethodPost:
			return s.createCredential(p, v["agent_id"], body, reqID), true
		}
	}
	if v, ok := match("/agents/:id", rest); ok && m == http.MethodGet {
		return s.getAgent(v["id"], reqID), true
	}
	return reply{}, false
}

// routeTasks serves tasks and their artifacts.
func (s *Server) routeTasks(r *http.Request, rest string, p *principal, body []byte, reqID string) (reply, bool) {
	m := r.Method
	switch {
	case rest == "/tasks" && m == http.MethodGet:
		return s.listTasks(r, p, reqID), true
	case rest == "/tasks" && m == http.MethodPost:
		return s.createTask(p, body, reqID), true
	}
	if v, ok := match("/tasks/:id", rest); ok && m == http.MethodGet {
		return s.getTask(p, v["id"], reqID), true
	}
	if v, ok := match("/tasks/:id/artifacts", rest); ok {
		switch m {
		case http.MethodGet:
			return s.listArtifacts(r, p, v["id"], reqID), true
		case http.MethodPost:
			return s.createArtifacts(p, v["id"], body, reqID), true
		}
	}
	return reply{}, false
}

func (s *Server) balance(p *principal, reqID string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[p.agentID]
	return s.ok(reqID, 200, map[string]any{"available": money(a.Balance), "escrow": money(a.Escrow), "total": money(a.Balance + a.Escrow), "currency": "USD"}, nil)
}

func (s *Server) getAgent(id, reqID string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[id]
	if a == nil {
		return s.fail(reqID, 404, "NOT_FOUND", "Agent not found", nil)
	}
	return s.ok(reqID, 200, agentJSON(a), nil)
}

func (s *Server) getTask(p *principal, id, reqID string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[id]
	if t == nil || !visible(t, p) {
		return s.fail(reqID, 404, "NOT_FOUND", "Task not found", nil)
	}
	return s.ok(reqID, 200, taskJSON(t), nil)
}

func money(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }

func agentJSON(a *Agent) map[string]any {
	return map[string]any{"id": a.ID, "did": a.DID, "name": a.Name, "owner_id": a.OwnerID, "capabilities": a.Capabilities,
		"reputation": 4.2, "status": "active"}
}

func visible(t *Task, p *principal) bool {
	return t.ClientAgentID == p.agentID || t.ProviderAgentID == p.agentID
}

func taskJSON(t *Task) map[string]any {
	m := map[string]any{"id": t.ID, "status": t.Status, "client_agent_id": t.ClientAgentID, "provider_agent_id": nilIfEmpty(t.ProviderAgentID),
		"capability": t.Capability, "input": t.Input, "created_at": ts(t.CreatedAt), "updated_at": ts(t.UpdatedAt),
		"progress_percent": 0, "execution_mode": "async"}
	if len(t.MaxPrice) > 0 {
		m["max_price"] = t.MaxPrice
	}
	if t.Status == "completed" {
		m["output"] = "done"
		m["completed_at"] = ts(t.UpdatedAt)
		m["progress_percent"] = 100
	}
	return m
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// page cuts a list for limit, cursor and offset, and returns the
// meta.pagination block.
func page[T any](r *http.Request, items []T) ([]T, map[string]any, string) {
	q := r.URL.Query()
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, nil, "limit must be a positive integer"
		}
		limit = min(n, 100)
	}
	offset := 0
	if c := q.Get("cursor"); c != "" {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(c, "="))
		var pos struct {
			Offset *int `json:"offset"`
		}
		if err != nil || json.Unmarshal(raw, &pos) != nil || pos.Offset == nil || *pos.Offset < 0 {
			return nil, nil, "cursor is invalid"
		}
		offset = *pos.Offset
	} else if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, nil, "offset must be a non-negative integer"
		}
		offset = n
	}
	total := len(items)
	if offset > total {
		offset = total
	}
	end := min(offset+limit, total)
	pg := map[string]any{"total_count": total, "has_more": end < total, "cursor": nil}
	if end < total {
		b, _ := json.Marshal(map[string]int{"offset": end})
		pg["cursor"] = base64.RawURLEncoding.EncodeToString(b)
	}
	return items[offset:end], pg, ""
}

func (s *Server) listTasks(r *http.Request, p *principal, reqID string) reply {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*Task
	for _, t := range s.tasks {
		if !visible(t, p) {
			continue
		}
		if st := q.Get("status"); st != "" && t.Status != st {
			continue
		}
		if a := q.Get("agent_id"); a != "" && t.ClientAgentID != a && t.ProviderAgentID != a {
			continue
		}
		all = append(all, t)
	}
	// Newest first. unknown: the order Agrenting lists tasks in.
	sort.Slice(all, func(i, j int) bool { return all[i].CreatedAt.After(all[j].CreatedAt) })
	items, pg, problem := page(r, all)
	if problem != "" {
		return s.fail(reqID, 422, "VALIDATION_ERROR", "Validation failed", map[string][]string{"pagination": {problem}})
	}
	out := make([]any, 0, len(items))
	for _, t := range items {
		out = append(out, taskJSON(t))
	}
	return s.ok(reqID, 200, out, map[string]any{"pagination": pg})
}

// taskRequest is the body of POST /tasks.
type taskRequest struct {
	Capability      *string         `json:"capability"`
	Input           json.RawMessage `json:"input"`
	MaxPrice        json.RawMessage `json:"max_price"`
	ExecutionMode   *string         `json:"execution_mode"`
	ProviderAgentID *string         `json:"provider_agent_id"`
}

// check returns the validation problems of req that need no state, by
// field, and the price to escrow.
func (req taskRequest) check() (map[string][]string, float64) {
	details := map[string][]string{}
	if req.Capability == nil || strings.TrimSpace(*req.Capability) == "" {
		details["capability"] = append(details["capability"], "can't be blank")
	}
	if in := strings.TrimSpace(string(req.Input)); in == "" || in == "null" || (in[0] != '"' && in[0] != '{') || in == `""` {
		details["input"] = append(details["input"], "must be a non-empty string or an object")
	}
	price := 0.0
	if len(req.MaxPrice) > 0 && string(req.MaxPrice) != "null" {
		var str string
		var err error
		if json.Unmarshal(req.MaxPrice, &str) == nil {
			price, err = strconv.ParseFloat(str, 64)
		} else {
			err = json.Unmarshal(req.MaxPrice, &price)
		}
		if err != nil || price <= 0 {
			details["max_price"] = append(details["max_price"], "must be a positive amount")
		}
	}
	if req.ExecutionMode != nil && *req.ExecutionMode != "async" {
		details["execution_mode"] = append(details["execution_mode"], "is invalid")
	}
	return details, price
}

func (s *Server) createTask(p *principal, body []byte, reqID string) reply {
	var req taskRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return s.fail(reqID, 422, "VALIDATION_ERROR", "Validation failed", map[string][]string{"body": {"must be a JSON object"}})
	}
	details, price := req.check()
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.ProviderAgentID != nil && *req.ProviderAgentID != "" && s.agents[*req.ProviderAgentID] == nil {
		details["provider_agent_id"] = append(details["provider_agent_id"], "does not exist")
	}
	if len(details) > 0 {
		return s.fail(reqID, 422, "VALIDATION_ERROR", "Validation failed", details)
	}
	a := s.agents[p.agentID]
	if price > a.Balance {
		return s.fail(reqID, 422, "INSUFFICIENT_BALANCE", "Insufficient balance to cover max_price", nil)
	}
	a.Balance -= price
	a.Escrow += price
	now := s.stamp()
	t := &Task{ID: s.newID("task"), ClientAgentID: p.agentID, Capability: *req.Capability, Input: req.Input,
		MaxPrice: req.MaxPrice, Status: "pending", CreatedAt: now, UpdatedAt: now}
	if req.ProviderAgentID != nil {
		t.ProviderAgentID = *req.ProviderAgentID
	}
	s.tasks[t.ID] = t
	return s.ok(reqID, 201, taskJSON(t), nil)
}

var base64Pattern = regexp.MustCompile(`^[A-Za-z0-9+/]*={0,2}$`)

// artifactJSON is a stored artifact. unknown: the response fields; these
// carry the documented "metadata and download URLs".
func artifactJSON(a *Artifact) map[string]any {
	m := map[string]any{"id": a.ID, "task_id": a.TaskID, "artifact_type": a.Type, "name": a.Name,
		"size_bytes": len(a.Content), "download_url": "/api/v1/tasks/" + a.TaskID + "/artifacts/" + a.ID + "/download",
		"created_at": ts(a.CreatedAt)}
	if a.Type != "file" && a.Type != "image" {
		m["content"] = a.Content
	}
	return m
}

func (s *Server) listArtifacts(r *http.Request, p *principal, taskID, reqID string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[taskID]
	if t == nil || !visible(t, p) {
		return s.fail(reqID, 404, "NOT_FOUND", "Task not found", nil)
	}
	items, pg, problem := page(r, s.artifacts[taskID])
	if problem != "" {
		return s.fail(reqID, 422, "VALIDATION_ERROR", "Validation failed", map[string][]string{"pagination": {problem}})
	}
	out := make([]any, 0, len(items))
	for _, a := range items {
		out = append(out, artifactJSON(a))
	}
	return s.ok(reqID, 200, out, map[string]any{"pagination": pg})
}

func (s *Server) createArtifacts(p *principal, taskID string, body []byte, reqID string) reply {
	var req struct {
		Artifacts []struct {
			Type    string `json:"artifact_type"`
			Name    string `json:"name"`
			Content string `json:"content"`
		} `json:"artifacts"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return s.fail(reqID, 422, "VALIDATION_ERROR", "Validation failed", map[string][]string{"artifacts": {"must be a list"}})
	}
	details := map[string][]string{}
	switch {
	case len(req.Artifacts) == 0:
		details["artifacts"] = []string{"can't be empty"}
	case len(req.Artifacts) > MaxArtifacts:
		details["artifacts"] = []string{fmt.Sprintf("at most %d artifacts per request", MaxArtifacts)}
	}
	for i, a := range req.Artifacts {
		k := fmt.Sprintf("artifacts[%d]", i)
		if !slices.Contains(ArtifactTypes, a.Type) {
			details[k+".artifact_type"] = []string{"is invalid"}
		}
		if strings.TrimSpace(a.Name) == "" {
			details[k+".name"] = []string{"can't be blank"}
		}
		if (a.Type == "file" || a.Type == "image") && (a.Content == "" || !base64Pattern.MatchString(a.Content)) {
			details[k+".content"] = []string{"must be base64"}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[taskID]
	if t == nil || !visible(t, p) {
		return s.fail(reqID, 404, "NOT_FOUND", "Task not found", nil)
	}
	if len(details) > 0 {
		return s.fail(reqID, 422, "VALIDATION_ERROR", "Validation failed", details)
	}
	out := make([]any, 0, len(req.Artifacts))
	for _, in := range req.Artifacts {
		a := &Artifact{ID: s.newID("art"), TaskID: taskID, Type: in.Type, Name: in.Name, Content: in.Content, CreatedAt: s.stamp()}
		s.artifacts[taskID] = append(s.artifacts[taskID], a)
		out = append(out, artifactJSON(a))
	}
	return s.ok(reqID, 201, out, nil)
}

// ---- credentials ----

// credentialJSON never carries the secret. unknown: the fields; key_prefix
// (the first 8 characters) and last_four identify a key without showing it.
func credentialJSON(c *Credential) map[string]any {
	return map[string]any{"id": c.ID, "agent_id": c.AgentID, "name": c.Name, "key_prefix": c.Secret[:8], "last_four": c.Secret[len(c.Secret)-4:],
		"status":     map[bool]string{true: "active", false: "revoked"}[c.RevokedAt.IsZero()],
		"created_at": ts(c.CreatedAt), "last_used_at": ts(c.LastUsedAt), "revoked_at": ts(c.RevokedAt), "rotated_to": nilIfEmpty(c.RotatedTo)}
}

// mayManage: an agent manages its own credentials; a user token those of
// the agents it owns (it acts as the X-Agent-ID agent). Callers hold mu.
func (s *Server) mayManage(p *principal, agentID, reqID string) (reply, bool) {
	if s.agents[agentID] == nil {
		return s.fail(reqID, 404, "NOT_FOUND", "Agent not found", nil), false
	}
	if p.agentID != agentID {
		return s.fail(reqID, 403, "FORBIDDEN", "You may only manage your own agent's credentials", nil), false
	}
	return reply{}, true
}

// listCredentials is GET /agents/:id/credentials. unknown: Agrenting
// documents no list endpoint (WithoutCredentialList turns it off) nor its
// fields.
func (s *Server) listCredentials(p *principal, agentID, reqID string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rep, ok := s.mayManage(p, agentID, reqID); !ok {
		return rep
	}
	var list []*Credential
	for _, c := range s.creds {
		if c.AgentID == agentID {
			list = append(list, c)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].CreatedAt.Before(list[j].CreatedAt) })
	out := make([]any, 0, len(list))
	for _, c := range list {
		cj := credentialJSON(c)
		if s.bareList {
			delete(cj, "key_prefix")
			delete(cj, "last_four")
		}
		out = append(out, cj)
	}
	return s.ok(reqID, 200, out, nil)
}

func (s *Server) newSecret() string { return "agr_" + hex.EncodeToString(randomBytes(20)) }

// createCredential is the documented POST /agents/:id/credentials.
// unknown: its body (the fake takes an optional name) and its answer (here
// {"credential": {...}, "api_key"}).
func (s *Server) createCredential(p *principal, agentID string, body []byte, reqID string) reply {
	var req struct {
		Name string `json:"name"`
	}
	if len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &req) != nil {
		return s.fail(reqID, 422, "VALIDATION_ERROR", "Validation failed", map[string][]string{"body": {"must be a JSON object"}})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rep, ok := s.mayManage(p, agentID, reqID); !ok {
		return rep
	}
	if len(req.Name) > 100 {
		return s.fail(reqID, 422, "VALIDATION_ERROR", "Validation failed", map[string][]string{"name": {"should be at most 100 character(s)"}})
	}
	c := &Credential{ID: s.newID("cred"), AgentID: agentID, Name: req.Name, Secret: s.newSecret(), CreatedAt: s.stamp()}
	s.creds[c.ID] = c
	return s.ok(reqID, 201, map[string]any{"credential": credentialJSON(c), "api_key": c.Secret}, nil)
}

// rotateKey is POST /auth/rotate-key: the caller's own key is revoked at
// once and a new one returned, shown once. The docs' example authenticates
// with "Authorization: Be…" (cut off); the fake takes a session token
// (Bearer) and rotates the key that opened it. unknown: whether X-API-Key
// works too (here it does, rotating that key), what a user token gets
// (here 403), what a session whose key is gone gets (here 422), and the
// answer's shape (WithRotateAnswer; AnswerAPIKey by default).
func (s *Server) rotateKey(p *principal, reqID string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.via == "token" {
		return s.fail(reqID, 403, "FORBIDDEN", "rotate-key rotates an agent's own API key: authenticate as the agent", nil)
	}
	old := s.creds[p.credID]
	if old == nil || !old.RevokedAt.IsZero() {
		return s.fail(reqID, 422, "VALIDATION_ERROR", "Validation failed", map[string][]string{"credential": {"is revoked"}})
	}
	now := s.stamp()
	c := &Credential{ID: s.newID("cred"), AgentID: old.AgentID, Name: old.Name, Secret: s.newSecret(), CreatedAt: now}
	s.creds[c.ID] = c
	old.RevokedAt, old.RotatedTo = now, c.ID
	s.endSessionsOf(old.ID)
	return s.ok(reqID, 200, s.rotateAnswer(c.Secret, credentialJSON(c), old.ID), nil)
}

// logout is DELETE /auth/logout, which "requires the X-API-Key header": it
// ends the session token named by Authorization: Bearer, if it is one of
// the key's agent's. unknown: how the platform tells which session is
// "current"; without a Bearer the fake ends every session the key opened,
// and an unknown or ended session is no error.
func (s *Server) logout(r *http.Request, p *principal, reqID string) reply {
	if r.Header.Get("X-API-Key") == "" && r.Header.Get("Api-Key") == "" {
		return s.fail(reqID, 401, "UNAUTHORIZED", "The X-API-Key header is required", nil)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if ss := s.sessions[tok]; ss != nil && ss.agentID == p.agentID {
			delete(s.sessions, tok)
		}
	} else {
		for tok, ss := range s.sessions {
			if ss.credID == p.credID && p.credID != "" {
				delete(s.sessions, tok)
			}
		}
	}
	return s.ok(reqID, 200, map[string]any{"message": "Logged out"}, nil)
}

// revoke is DELETE: the credential with revoked_at set; revoking twice
// answers the same (unknown: Agrenting's answer for a revoked credential).
func (s *Server) revoke(p *principal, agentID, credID, reqID string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rep, ok := s.mayManage(p, agentID, reqID); !ok {
		return rep
	}
	c := s.creds[credID]
	if c == nil || c.AgentID != agentID {
		return s.fail(reqID, 404, "NOT_FOUND", "Credential not found", nil)
	}
	if c.RevokedAt.IsZero() {
		c.RevokedAt = s.stamp()
		s.endSessionsOf(c.ID)
	}
	return s.ok(reqID, 200, credentialJSON(c), nil)
}
