package cencoritest

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// Memory limits and defaults from Cencori's lib/memory (see
// docs/providers/cencori.md, "Memory API").
const (
	// contentMaxChars is MEMORY_CONTENT_MAX_CHARS (JavaScript string
	// length, UTF-16 code units).
	contentMaxChars = 10240
	// sessionCap is SESSION_MEMORY_CAP: entries kept per session.
	sessionCap = 20
	// defaultSessionTTL is the default sessionTtlSeconds (86400).
	defaultSessionTTL = 24 * time.Hour
	// topKMax clamps a search's topK (parseMemoryDirective).
	topKMax = 20
	// managedThreshold is DEFAULT_RETRIEVAL_THRESHOLD.google, used when a
	// search sends no threshold and the managed Gemini embedding is in use.
	managedThreshold = 0.55
)

// The embedding the managed path records in a written memory's metadata.
const (
	embeddingProvider = "google"
	embeddingModel    = "gemini-embedding-001"
)

// sessionPlaceholderID is the id of every session-scope memory: session
// memories live in a Redis list and have no id of their own.
const sessionPlaceholderID = "mem_session"

// memory routes /v1/memory/*. Gating (proxy.ts) happened in route.
func (s *Server) memory(w http.ResponseWriter, r *http.Request, k *Key) float64 {
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
		// unknown: remember, graph, entities and forget-suggestions are not
		// modelled, and Next.js answers an unknown route with an HTML page.
		flatError(w, http.StatusNotFound, "", "Not found", "")
	}
	return 0
}

// The memory routes' error bodies: {"error": <code>, "message": <text>},
// with no "code" field.
func badRequest(w http.ResponseWriter, message string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"error": "bad_request", "message": message})
}

func internalError(w http.ResponseWriter, message string) {
	writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "internal_error", "message": message})
}

func memoryDisabled(w http.ResponseWriter) {
	writeJSON(w, http.StatusForbidden, map[string]any{"error": "memory_disabled", "message": "Memory is disabled for this project."})
}

// directive is parseMemoryDirective's scope, scope key and namespace.
type directive struct {
	scope, scopeKey, namespace string
}

// parseDirective is parseMemoryDirective: the scope defaults to user
// (`input.scope || 'user'`) whatever ids are given; user scope needs a
// userId, session scope a sessionId or, failing that, the userId. Only
// string ids count, trimmed.
func parseDirective(userID, sessionID, namespace any, scope any) (directive, string) {
	str := func(v any) string {
		s, _ := v.(string)
		return strings.TrimSpace(s)
	}
	sc := "user"
	switch v := scope.(type) {
	case nil, bool:
		if v == true {
			return directive{}, "memory.scope must be one of: session, user"
		}
	case string:
		if v != "" {
			sc = v
		}
	case float64:
		if v != 0 {
			return directive{}, "memory.scope must be one of: session, user"
		}
	default:
		return directive{}, "memory.scope must be one of: session, user"
	}
	if sc != "user" && sc != "session" {
		return directive{}, "memory.scope must be one of: session, user"
	}
	d := directive{scope: sc, namespace: str(namespace)}
	if sc == "session" {
		d.scopeKey = str(sessionID)
		if d.scopeKey == "" {
			d.scopeKey = str(userID)
		}
		if d.scopeKey == "" {
			return directive{}, "memory.sessionId (or userId) is required for session scope"
		}
	} else {
		d.scopeKey = str(userID)
		if d.scopeKey == "" {
			return directive{}, "memory.userId is required for user scope"
		}
	}
	if len(utf16.Encode([]rune(d.scopeKey))) > 256 {
		return directive{}, "memory scope key must be 256 characters or fewer"
	}
	return d, ""
}

// readBody decodes a JSON object body. req.json() throwing lands in the
// routes' catch: a 500 internal_error.
func readBody(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	var body map[string]any
	if err == nil {
		err = json.Unmarshal(raw, &body)
	}
	if err != nil {
		// unknown: the text, which is the JavaScript SyntaxError's message.
		internalError(w, "Unexpected token in JSON body")
		return nil, false
	}
	if body == nil {
		body = map[string]any{} // the routes read fields of whatever came
	}
	return body, true
}

// dbTime is a time as Postgres keeps a timestamptz: microseconds, UTC.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// pgTime is a timestamptz as supabase-js returns it from PostgREST.
func pgTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.999999-07:00") }

// jsTime is new Date().toISOString().
func jsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func pgTimeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return pgTime(t)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// spread is JavaScript's {...v}: an object's own keys, an array's or a
// string's indexes; nothing for null, numbers and booleans.
func spread(v any) map[string]any {
	out := map[string]any{}
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			out[k] = x
		}
	case []any:
		for i, x := range t {
			out[strconv.Itoa(i)] = x
		}
	case string:
		for i, r := range []rune(t) {
			out[strconv.Itoa(i)] = string(r)
		}
	}
	return out
}

// writtenMetadata is what a write stores: the caller's metadata with
// extractedFrom "manual" (the write route), then the redaction count and the
// embedding (writeMemories' insert).
func writtenMetadata(meta any, redactions int) map[string]any {
	m := spread(meta)
	m["extractedFrom"] = "manual"
	m["piiRedactions"] = redactions
	m["embeddingProvider"] = embeddingProvider
	m["embeddingModel"] = embeddingModel
	return m
}

// redact applies the project's data rules; it returns the text to store
// and how many rules matched.
func (s *Server) redact(text string) (string, int) {
	s.mu.Lock()
	rules := s.rules
	s.mu.Unlock()
	n := 0
	for _, rule := range rules {
		if rule.re.MatchString(text) {
			n++
			text = rule.re.ReplaceAllString(text, rule.with)
		}
	}
	return text, n
}

// jsDateParse accepts the ISO 8601 forms Date.parse is specified for.
// unknown: the implementation-defined forms V8 also accepts.
func jsDateParse(v any) (time.Time, bool) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func jsLength(s string) int { return len(utf16.Encode([]rune(s))) }

func (s *Server) memWrite(w http.ResponseWriter, r *http.Request, k *Key) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	off := s.memoryOff[k.ProjectID]
	s.mu.Unlock()
	if off {
		memoryDisabled(w)
		return
	}
	content, _ := body["content"].(string)
	content = strings.TrimSpace(content)
	if content == "" {
		badRequest(w, "content is required")
		return
	}
	if jsLength(content) > contentMaxChars {
		badRequest(w, "content exceeds the 10240-character limit per memory")
		return
	}
	d, problem := parseDirective(body["userId"], body["sessionId"], body["namespace"], body["scope"])
	if problem != "" {
		badRequest(w, problem)
		return
	}
	importance := 0.5
	if f, ok := body["importance"].(float64); ok {
		importance = min(1, max(0, f))
	}
	now := s.now()
	var expires time.Time
	if v, present := body["expiresAt"]; present {
		t, ok := jsDateParse(v)
		if !ok || !t.After(now) {
			badRequest(w, "expiresAt must be a future ISO-8601 timestamp")
			return
		}
		expires = t.UTC().Truncate(time.Millisecond)
	}
	stored, redactions := s.redact(content)
	if d.scope == "session" {
		// Redis, no id, no metadata, no namespace, no expiresAt: the
		// session's TTL applies.
		s.mu.Lock()
		key := k.ProjectID + "/" + d.scopeKey
		l := s.sessions[key]
		if l == nil || !l.expires.After(now) {
			l = &sessionList{}
			s.sessions[key] = l
		}
		l.entries = append([]SessionMemory{{Content: stored, Importance: importance, CreatedAt: now.UTC().Truncate(time.Millisecond)}}, l.entries...)
		l.entries = l.entries[:min(len(l.entries), sessionCap)]
		l.expires = now.Add(s.sessionTTL)
		s.mu.Unlock()
		writeJSON(w, http.StatusCreated, map[string]any{
			"id": sessionPlaceholderID, "scope": "session", "scopeKey": d.scopeKey,
			"content": stored, "importance": importance, "createdAt": jsTime(now),
		})
		return
	}
	// unknown: reconciliation. Cencori asks a model whether the fact adds to,
	// updates or repeats similar memories (a repeat answers 422
	// memory_not_written); the fake always adds.
	s.mu.Lock()
	at := dbTime(now)
	// createdAt is the list cursor, so keep it strictly increasing.
	if !at.After(s.lastCreated) {
		at = s.lastCreated.Add(time.Microsecond)
	}
	s.lastCreated = at
	m := &Memory{ID: "mem_" + newUUID(), ProjectID: k.ProjectID, Scope: d.scope, ScopeKey: d.scopeKey, Namespace: d.namespace,
		Content: stored, Metadata: writtenMetadata(body["metadata"], redactions), Importance: importance,
		ExpiresAt: expires, CreatedAt: at, UpdatedAt: at}
	s.memories[m.ID] = m
	s.mu.Unlock()
	var exp any
	if !expires.IsZero() {
		exp = jsTime(expires)
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": m.ID, "scope": m.Scope, "scopeKey": m.ScopeKey, "namespace": nullable(m.Namespace),
		"content": m.Content, "importance": m.Importance, "expiresAt": exp, "createdAt": jsTime(now),
	})
}

// sessionEntries returns a session's live entries, newest first, at most n.
// Callers hold mu.
func (s *Server) sessionEntries(projectID, sessionKey string, n int, now time.Time) []SessionMemory {
	l := s.sessions[projectID+"/"+sessionKey]
	if l == nil || !l.expires.After(now) {
		return nil
	}
	return slices.Clone(l.entries[:min(n, len(l.entries))])
}

// SessionMemories returns a session's memories, newest first.
func (s *Server) SessionMemories(projectID, sessionID string) []SessionMemory {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessionEntries(projectID, sessionID, sessionCap, s.now())
}

// jsParseInt is parseInt(v, 10): the leading integer, ok false for NaN.
func jsParseInt(v string) (int, bool) {
	v = strings.TrimLeft(v, " \t\n\r")
	end := 0
	if end < len(v) && (v[end] == '-' || v[end] == '+') {
		end++
	}
	digits := end
	for end < len(v) && v[end] >= '0' && v[end] <= '9' {
		end++
	}
	if end == digits {
		return 0, false
	}
	n, err := strconv.Atoi(v[:end])
	if err != nil {
		return math.MaxInt32, true
	}
	return n, true
}

func (s *Server) memList(w http.ResponseWriter, r *http.Request, k *Key) {
	q := r.URL.Query()
	param := func(name string) any {
		if !q.Has(name) {
			return nil
		}
		return q.Get(name)
	}
	d, problem := parseDirective(param("userId"), param("sessionId"), param("namespace"), param("scope"))
	if problem != "" {
		badRequest(w, problem)
		return
	}
	// Math.min(100, Math.max(1, parseInt(limit || '50', 10) || 50))
	limit := 50
	if n, ok := jsParseInt(q.Get("limit")); ok && n != 0 {
		limit = min(100, max(1, n))
	}
	s.mu.Lock()
	now := s.now()
	if d.scope == "session" {
		entries := s.sessionEntries(k.ProjectID, d.scopeKey, limit, now)
		s.mu.Unlock()
		out := make([]map[string]any, 0, len(entries))
		for _, e := range entries {
			out = append(out, map[string]any{"id": sessionPlaceholderID, "content": e.Content, "importance": e.Importance, "createdAt": jsTime(e.CreatedAt)})
		}
		writeJSON(w, http.StatusOK, map[string]any{"memories": out, "count": len(out), "nextCursor": nil})
		return
	}
	var before time.Time
	if c := q.Get("cursor"); c != "" {
		t, err := time.Parse(time.RFC3339Nano, c)
		if err != nil {
			s.mu.Unlock()
			internalError(w, "Failed to list memories") // Postgres refuses the timestamp
			return
		}
		before = t
	}
	var all []*Memory
	for _, m := range s.memories {
		// The route filters on neither expiry nor anything else.
		if m.ProjectID != k.ProjectID || m.Scope != d.scope || m.ScopeKey != d.scopeKey || (d.namespace != "" && m.Namespace != d.namespace) {
			continue
		}
		if !before.IsZero() && !m.CreatedAt.Before(before) {
			continue
		}
		all = append(all, m)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].CreatedAt.After(all[j].CreatedAt) })
	all = all[:min(limit, len(all))]
	out := make([]map[string]any, 0, len(all))
	for _, m := range all {
		out = append(out, map[string]any{"id": m.ID, "namespace": nullable(m.Namespace), "content": m.Content, "metadata": m.Metadata,
			"importance": m.Importance, "accessCount": m.AccessCount, "createdAt": pgTime(m.CreatedAt)})
	}
	s.mu.Unlock()
	// A full page always names a next cursor, even when nothing follows.
	var next any
	if len(out) == limit {
		next = out[len(out)-1]["createdAt"]
	}
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

// memSearch is POST /v1/memory/search. unknown: Cencori's embedding and
// rerank; the fake scores by word overlap (the share of the query's words
// found in the memory), which keeps the documented threshold and topK
// semantics. Graph-expanded hits are not modelled.
func (s *Server) memSearch(w http.ResponseWriter, r *http.Request, k *Key) {
	start := time.Now()
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	off := s.memoryOff[k.ProjectID]
	s.mu.Unlock()
	if off {
		memoryDisabled(w)
		return
	}
	query, _ := body["query"].(string)
	query = strings.TrimSpace(query)
	if query == "" && body["scope"] != "session" {
		badRequest(w, "query is required")
		return
	}
	d, problem := parseDirective(body["userId"], body["sessionId"], body["namespace"], body["scope"])
	if problem != "" {
		badRequest(w, problem)
		return
	}
	topK, threshold := searchLimits(body)
	s.mu.Lock()
	var out []map[string]any
	if d.scope == "session" {
		out = s.searchSession(k, d, topK)
	} else {
		out = s.searchUser(k, d, query, topK, threshold)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"results": out, "count": len(out), "latencyMs": time.Since(start).Milliseconds()})
}

// searchLimits reads topK and threshold: clamp(Math.round(topK ?? 5), 1,
// 20) and clamp(threshold, 0, 1).
func searchLimits(body map[string]any) (topK int, threshold float64) {
	topK = 5
	if f, ok := body["topK"].(float64); ok {
		topK = int(min(topKMax, max(1, math.Floor(f+0.5))))
	}
	threshold = managedThreshold
	if f, ok := body["threshold"].(float64); ok {
		threshold = min(1, max(0, f))
	}
	return topK, threshold
}

// searchSession is a session's recent entries, unranked, similarity 1.
// Callers hold mu.
func (s *Server) searchSession(k *Key, d directive, topK int) []map[string]any {
	out := []map[string]any{}
	for _, e := range s.sessionEntries(k.ProjectID, d.scopeKey, topK, s.now()) {
		out = append(out, map[string]any{"id": sessionPlaceholderID, "content": e.Content, "score": 1, "namespace": nil,
			"importance": e.Importance, "createdAt": jsTime(e.CreatedAt)})
	}
	return out
}

// searchUser ranks the user-scope memories d names by their overlap with
// query, best and newest first, and touches the topK returned. Callers
// hold mu.
func (s *Server) searchUser(k *Key, d directive, query string, topK int, threshold float64) []map[string]any {
	now := s.now()
	qw := words(query)
	type hit struct {
		m     *Memory
		score float64
	}
	var hits []hit
	for _, m := range s.memories {
		// match_gateway_memories_ranked: a namespace also admits memories
		// without one; expired memories are skipped.
		if m.ProjectID != k.ProjectID || m.Scope != d.scope || m.ScopeKey != d.scopeKey || (d.namespace != "" && m.Namespace != d.namespace && m.Namespace != "") ||
			(!m.ExpiresAt.IsZero() && !m.ExpiresAt.After(now)) {
			continue
		}
		if score, n := overlap(qw, words(m.Content)); n > 0 && score > threshold { // similarity > p_threshold
			hits = append(hits, hit{m, score})
		}
	}
	sort.Slice(hits, func(i, j int) bool {
		if hits[i].score != hits[j].score {
			return hits[i].score > hits[j].score
		}
		return hits[i].m.CreatedAt.After(hits[j].m.CreatedAt)
	})
	out := []map[string]any{}
	for _, h := range hits[:min(topK, len(hits))] {
		h.m.AccessCount++ // touch_gateway_memories
		h.m.LastAccessedAt = dbTime(now)
		out = append(out, map[string]any{"id": h.m.ID, "content": h.m.Content, "score": math.Round(h.score*1000) / 1000,
			"namespace": nullable(h.m.Namespace), "importance": h.m.Importance, "createdAt": pgTime(h.m.CreatedAt), "source": "vector"})
	}
	return out
}

// overlap is the share of the query's words found in a memory's, and how
// many were.
func overlap(query, memory map[string]bool) (float64, int) {
	n := 0
	for w := range query {
		if memory[w] {
			n++
		}
	}
	return float64(n) / float64(max(1, len(query))), n
}

var uuidShape = regexp.MustCompile(`^(?i:[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12})$`)

// storedID is fromMemoryId and the uuid column's parsing: the public id of
// the row an id names, ok false when Postgres would refuse it as a uuid.
func storedID(id string) (string, bool) {
	raw := strings.TrimPrefix(id, "mem_")
	if !uuidShape.MatchString(raw) {
		return "", false
	}
	h := strings.ToLower(strings.ReplaceAll(raw, "-", ""))
	return "mem_" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], true
}

func memoryJSON(m *Memory) map[string]any {
	return map[string]any{"id": m.ID, "scope": m.Scope, "scopeKey": m.ScopeKey, "namespace": nullable(m.Namespace),
		"content": m.Content, "metadata": m.Metadata, "importance": m.Importance, "accessCount": m.AccessCount,
		"lastAccessedAt": pgTimeOrNil(m.LastAccessedAt), "expiresAt": pgTimeOrNil(m.ExpiresAt),
		"createdAt": pgTime(m.CreatedAt), "updatedAt": pgTime(m.UpdatedAt)}
}

func memNotFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]any{"error": "not_found", "message": "Memory not found"})
}

// memGet is fetchMemoryById: any lookup error, a malformed id included, is
// "not found"; expiry is not checked.
func (s *Server) memGet(w http.ResponseWriter, k *Key, id string) {
	sid, ok := storedID(id)
	s.mu.Lock()
	m := s.memories[sid]
	if !ok || m == nil || m.ProjectID != k.ProjectID {
		s.mu.Unlock()
		memNotFound(w)
		return
	}
	body := memoryJSON(m)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body) // the memory itself, not wrapped
}

// memDelete is the DELETE route: a malformed id is a database error (500),
// a missing one a 404.
func (s *Server) memDelete(w http.ResponseWriter, k *Key, id string) {
	sid, ok := storedID(id)
	if !ok {
		internalError(w, "Failed to delete memory")
		return
	}
	s.mu.Lock()
	m := s.memories[sid]
	if m == nil || m.ProjectID != k.ProjectID {
		s.mu.Unlock()
		memNotFound(w)
		return
	}
	delete(s.memories, sid)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"deleted": true, "id": sid})
}

func newUUID() string {
	h := randomHex(16)
	b := []byte(h)
	b[12] = '4'                                                    // version 4
	b[16] = "89ab"[strings.IndexByte("0123456789abcdef", b[16])%4] // variant 10xx
	h = string(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
