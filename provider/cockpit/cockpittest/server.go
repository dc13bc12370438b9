// Package cockpittest is a fake Cockpit CMS v2 API for tests, examples and
// benchmarks. It reproduces the wire behaviour measured on Cockpit 2.13.2
// (shared/reference/providers.md section 6, which wins over section 2) and
// the checklist in section 5:
//
//   - the token comes from the first of: param api_key (query, form or JSON
//     body), header api-key, Authorization: Bearer (case-sensitive); none
//     means the literal "public" key;
//   - a bad key, an unknown USR- key or no key without a "public" key is
//     412 {"error":"Authentication failed"}; a JWT-shaped token is
//     anonymous and a key without a role may do nothing (403);
//   - a missing item or an unknown route is a 404 with an empty text/html
//     body; PUT and PATCH are unknown routes;
//   - items lists are a bare array unless both limit and skip are given;
//   - only published items (_state 1) are visible to reads;
//   - POST creates published items and returns the full item; with
//     data._id it updates (a partial $set) and echoes only the sent fields
//     plus _modified and _mby, and for an id that does not exist it echoes
//     and writes nothing;
//   - DELETE answers {"success":true} for any id;
//   - an update without the publish permission drops _state;
//   - JSON escapes slashes and lists item keys as model fields, then
//     _state, _modified, _mby, _created, _cby, _id;
//   - ?rspc=1 caches answers by route and parameters before authentication;
//   - the healthcheck needs no key and ignores a bad one;
//   - CORS headers on every /api answer.
package cockpittest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Demo keys of a server made with New. They are fake values in the shape
// the Cockpit admin issues ("API-"/"USR-" + 40 hex), printed by
// cmd/fake-cockpit. They are derived rather than written out, so the
// source holds nothing a secret scanner would take for a live key.
var (
	DemoRWKey     = demoKey("API-", "editor")  // role editor
	DemoROKey     = demoKey("API-", "reader")  // role reader
	DemoNoRoleKey = demoKey("API-", "no role") // no role
	DemoUserKey   = demoKey("USR-", "apiuser") // user apiuser, role editor
)

// demoKey is prefix and 40 hex characters fixed by label.
func demoKey(prefix, label string) string {
	sum := sha256.Sum256([]byte("cockpittest demo key " + label))
	return prefix + hex.EncodeToString(sum[:])[:40]
}

// Field is one field of a model.
type Field struct {
	Name    string
	Type    string // text, boolean, number, set, ...
	Default any    // booleans take it on create (opts.default)
}

// Model is a Cockpit content model.
type Model struct {
	Name      string
	Singleton bool
	Fields    []Field
}

// Item is a stored item: model fields plus the system fields.
type Item map[string]any

// Request is one request the server received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   string
}

type failure struct {
	method, suffix string
	status         int
	headers        map[string]string
	body           string
	drop           bool
}

type user struct {
	id, name, role, apiKey string
}

// Server is the fake. It is an http.Handler and safe for concurrent use.
type Server struct {
	mu        sync.Mutex
	models    []Model
	items     map[string][]Item
	keys      map[string]*string // key -> role (nil: no role)
	roles     map[string]map[string]bool
	users     []user
	now       func() time.Time
	unhealthy bool
	cache     map[string][]byte
	counts    map[string]int
	seen      []Request
	fails     []failure
	base      string
}

// Option configures a Server.
type Option func(*Server)

// WithClock sets the clock for _created and _modified.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithoutSeed starts with the demo models but no items.
func WithoutSeed() Option {
	return func(s *Server) {
		for m := range s.items {
			s.items[m] = nil
		}
	}
}

// WithPublicKey defines the "public" key with role (anonymous access).
func WithPublicKey(role string) Option { return func(s *Server) { s.keys["public"] = &role } }

// New returns a fake seeded with demo models, items, roles and keys.
func New(opts ...Option) *Server {
	s := &Server{now: time.Now, items: map[string][]Item{}, keys: map[string]*string{}, roles: map[string]map[string]bool{},
		cache: map[string][]byte{}, counts: map[string]int{}}
	s.seed()
	for _, o := range opts {
		o(s)
	}
	return s
}

// Start serves the fake on a loopback port. The caller closes it.
func (s *Server) Start() *httptest.Server {
	ts := httptest.NewServer(s)
	s.SetBaseURL(ts.URL)
	return ts
}

// SetBaseURL records the site URL (Start does it).
func (s *Server) SetBaseURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base = strings.TrimRight(u, "/")
}

// URL is the value for COCKPIT_URL.
func (s *Server) URL() string { s.mu.Lock(); defer s.mu.Unlock(); return s.base }

// SetKey adds or changes a custom key; role "" means no role.
func (s *Server) SetKey(key, role string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if role == "" {
		s.keys[key] = nil
		return
	}
	s.keys[key] = &role
}

// RemoveKey deletes a custom key, as the admin would.
func (s *Server) RemoveKey(key string) { s.mu.Lock(); defer s.mu.Unlock(); delete(s.keys, key) }

// SetPermission grants or withdraws perm (e.g. "content/posts/update") on role.
func (s *Server) SetPermission(role, perm string, allowed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.roles[role] == nil {
		s.roles[role] = map[string]bool{}
	}
	s.roles[role][perm] = allowed
}

// SetUnhealthy makes the healthcheck fail.
func (s *Server) SetUnhealthy(b bool) { s.mu.Lock(); defer s.mu.Unlock(); s.unhealthy = b }

// FailNext makes the next request, whatever it is, get this answer.
func (s *Server) FailNext(status int, headers map[string]string, body string) {
	s.FailNextRequest("", "", status, headers, body)
}

// FailNextRequest makes the next request with this method ("" any) whose
// path ends in suffix ("" any) get this answer. Failures queue up.
func (s *Server) FailNextRequest(method, suffix string, status int, headers map[string]string, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, failure{method: method, suffix: suffix, status: status, headers: headers, body: body})
}

// DropAnswerTo makes the next matching request take effect and then lose
// its answer (the connection is closed).
func (s *Server) DropAnswerTo(method, suffix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, failure{method: method, suffix: suffix, drop: true})
}

// Requests returns how many requests reached path (without the query).
func (s *Server) Requests(path string) int { s.mu.Lock(); defer s.mu.Unlock(); return s.counts[path] }

// Seen returns every request received, in order.
func (s *Server) Seen() []Request { s.mu.Lock(); defer s.mu.Unlock(); return slices.Clone(s.seen) }

// Item returns a stored item (published or not).
func (s *Server) Item(model, id string) (Item, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it := s.find(model, id); it != nil {
		return cloneItem(it), true
	}
	return nil, false
}

// Items returns the stored items of a model, hidden ones included.
func (s *Server) Items(model string) []Item {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Item
	for _, it := range s.items[model] {
		out = append(out, cloneItem(it))
	}
	return out
}

// PutItem stores an item as given (an _id is added when missing) and
// returns its id.
func (s *Server) PutItem(model string, it Item) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	it = cloneItem(it)
	if _, ok := it["_id"]; !ok {
		it["_id"] = newID()
	}
	s.items[model] = append(s.items[model], it)
	return it["_id"].(string)
}

func cloneItem(it Item) Item {
	b, _ := json.Marshal(it)
	var c Item
	_ = json.Unmarshal(b, &c)
	return c
}

func (s *Server) find(model, id string) Item {
	for _, it := range s.items[model] {
		if it["_id"] == id {
			return it
		}
	}
	return nil
}

func (s *Server) model(name string) *Model {
	for i := range s.models {
		if s.models[i].Name == name {
			return &s.models[i]
		}
	}
	return nil
}

func newID() string { return fmt.Sprintf("6b%022x", rand.Uint64()) }

func (s *Server) unix() float64 { return float64(s.now().Unix()) }

// ServeHTTP handles one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	s.counts[r.URL.Path]++
	s.seen = append(s.seen, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: string(raw)})
	for i, f := range s.fails {
		if (f.method == "" || f.method == r.Method) && strings.HasSuffix(r.URL.Path, f.suffix) {
			s.fails = slices.Delete(s.fails, i, i+1)
			if f.drop {
				s.route(httptest.NewRecorder(), r, raw)
				if hj, ok := w.(http.Hijacker); ok {
					if conn, _, err := hj.Hijack(); err == nil {
						_ = conn.Close()
						return
					}
				}
				panic(http.ErrAbortHandler)
			}
			for k, v := range f.headers {
				w.Header().Set(k, v)
			}
			if w.Header().Get("Content-Type") == "" {
				w.Header().Set("Content-Type", "application/json")
			}
			w.WriteHeader(f.status)
			_, _ = w.Write([]byte(f.body))
			return
		}
	}
	s.route(w, r, raw)
}

func cors(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Origin, Cache-Control, Pragma, Authorization, Accept, Accept-Encoding, API-KEY")
	h.Set("Access-Control-Allow-Methods", "PUT, POST, GET, OPTIONS, DELETE")
}

// encode is PHP's json_encode as Cockpit uses it: slashes escaped, HTML
// characters not.
func encode(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.ReplaceAll(bytes.TrimSpace(b.Bytes()), []byte("/"), []byte(`\/`))
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) { writeRaw(w, status, encode(v)) }

func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// empty404 is Cockpit's "handler returned false": 404, empty, text/html.
func empty404(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	w.WriteHeader(http.StatusNotFound)
}

var jwtShape = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$`)

// caller is who a token authenticates as.
type caller struct {
	role   *string
	userID any // nil for API keys
}

// params merges the query, a form body and a JSON body, as Lime's request
// does (providers.md 2.1).
func params(r *http.Request, raw []byte) map[string]any {
	p := map[string]any{}
	for k, v := range r.URL.Query() {
		p[k] = v[0]
	}
	ct := r.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/json"):
		var m map[string]any
		if json.Unmarshal(raw, &m) == nil {
			for k, v := range m {
				p[k] = v
			}
		}
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		form, _ := url.ParseQuery(string(raw))
		for k, v := range form {
			if inner, ok := strings.CutPrefix(k, "data["); ok && strings.HasSuffix(inner, "]") {
				data, _ := p["data"].(map[string]any)
				if data == nil {
					data = map[string]any{}
					p["data"] = data
				}
				data[strings.TrimSuffix(inner, "]")] = v[0]
				continue
			}
			p[k] = v[0]
		}
	}
	return p
}

// token picks the key: param api_key, header api-key, Bearer; else "public".
func token(r *http.Request, p map[string]any) string {
	if v, ok := p["api_key"].(string); ok && v != "" {
		return v
	}
	if v := r.Header.Get("api-key"); v != "" {
		return v
	}
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && v != "" {
		return v
	}
	return "public"
}

// authenticate applies Cockpit's key rules; ok false means 412.
func (s *Server) authenticate(tok string) (caller, bool) {
	switch {
	case strings.HasPrefix(tok, "USR-"):
		for _, u := range s.users {
			if u.apiKey == tok {
				role := u.role
				return caller{role: &role, userID: u.id}, true
			}
		}
		return caller{}, false
	case jwtShape.MatchString(tok):
		return caller{}, true // the "todo" branch: anonymous, no role
	}
	role, ok := s.keys[tok]
	if !ok {
		return caller{}, false
	}
	return caller{role: role}, true
}

func (s *Server) allowed(c caller, perm string) bool {
	if c.role == nil {
		return false
	}
	if *c.role == "admin" {
		return true
	}
	return s.roles[*c.role][perm]
}

var (
	reItems    = regexp.MustCompile(`^/content/items/([^/]+)$`)
	reItem     = regexp.MustCompile(`^/content/item/([^/]+)$`)
	reItemByID = regexp.MustCompile(`^/content/item/([^/]+)/([^/]+)$`)
)

func (s *Server) route(w http.ResponseWriter, r *http.Request, raw []byte) {
	path, isAPI := strings.CutPrefix(r.URL.Path, "/api")
	if !isAPI || (path != "" && !strings.HasPrefix(path, "/")) {
		empty404(w)
		return
	}
	cors(w)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("OK CORS"))
		return
	}
	if path == "/system/healthcheck" && r.Method == http.MethodGet {
		w.Header().Set("Cache-Control", "no-store, no-cache, must-revalidate")
		w.Header().Set("X-Health-Checks", "db, memory, fs, redis, smtp, custom")
		if s.unhealthy {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"status": "error", "message": "Enable debug mode to see detailed error messages"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	p := params(r, raw)
	// The rspc cache runs before authentication (providers.md 6).
	cacheKey := ""
	if r.Method == http.MethodGet && r.URL.Query().Get("rspc") == "1" {
		q := r.URL.Query()
		q.Del("api_key")
		cacheKey = path + "?" + q.Encode()
		if body, ok := s.cache[cacheKey]; ok {
			w.Header().Set("APP_RSP_CACHE", "true")
			writeRaw(w, http.StatusOK, body)
			return
		}
	}
	c, ok := s.authenticate(token(r, p))
	if !ok {
		apiError(w, http.StatusPreconditionFailed, "Authentication failed")
		return
	}
	if cacheKey != "" {
		rec := httptest.NewRecorder()
		s.content(rec, r, path, p, c)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		if rec.Code == http.StatusOK {
			s.cache[cacheKey] = rec.Body.Bytes()
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	s.content(w, r, path, p, c)
}

func (s *Server) content(w http.ResponseWriter, r *http.Request, path string, p map[string]any, c caller) {
	var m []string
	switch {
	case r.Method == http.MethodGet && path == "/content/items":
		s.multi(w, p, c)
	case r.Method == http.MethodGet && reItems.MatchString(path):
		m = reItems.FindStringSubmatch(path)
		s.list(w, m[1], p, c)
	case r.Method == http.MethodGet && reItem.MatchString(path):
		m = reItem.FindStringSubmatch(path)
		s.first(w, m[1], p, c)
	case r.Method == http.MethodPost && reItem.MatchString(path):
		m = reItem.FindStringSubmatch(path)
		s.save(w, m[1], p, c)
	case r.Method == http.MethodGet && reItemByID.MatchString(path):
		m = reItemByID.FindStringSubmatch(path)
		s.getByID(w, m[1], m[2], p, c)
	case r.Method == http.MethodDelete && reItemByID.MatchString(path):
		m = reItemByID.FindStringSubmatch(path)
		s.remove(w, m[1], m[2], c)
	default:
		empty404(w) // PUT, PATCH and unknown routes
	}
}

// modelFor checks the model exists and the caller may perm it.
func (s *Server) modelFor(w http.ResponseWriter, name, perm string, c caller) *Model {
	md := s.model(name)
	if md == nil {
		apiError(w, http.StatusNotFound, fmt.Sprintf("Model %s not found", name))
		return nil
	}
	if !s.allowed(c, fmt.Sprintf("content/%s/%s", name, perm)) {
		apiError(w, http.StatusForbidden, "Permission denied")
		return nil
	}
	return md
}

// jsonParam reads a JSON parameter (Cockpit takes JSON5; the fake takes
// JSON) or writes Cockpit's 400.
func jsonParam(w http.ResponseWriter, p map[string]any, name string) (any, bool, bool) {
	v, ok := p[name]
	if !ok {
		return nil, false, true
	}
	if s, isStr := v.(string); isStr {
		var out any
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("<%s> is not valid json", name))
			return nil, false, false
		}
		return out, true, true
	}
	return v, true, true
}

type listQuery struct {
	filter       map[string]any
	sort         []sortKey
	fields       map[string]any
	limit, skip  int
	hasLimitSkip bool
}

type sortKey struct {
	path string
	dir  float64
}

// parseQuery reads filter, sort, fields, limit and skip.
func parseQuery(w http.ResponseWriter, p map[string]any) (listQuery, bool) {
	var q listQuery
	f, has, ok := jsonParam(w, p, "filter")
	if !ok {
		return q, false
	}
	if has {
		q.filter, _ = f.(map[string]any)
	}
	if raw, has := p["sort"].(string); has {
		keys, err := orderedKeys(raw)
		if err != nil {
			apiError(w, http.StatusBadRequest, "<sort> is not valid json")
			return q, false
		}
		q.sort = keys
	}
	fl, has, ok := jsonParam(w, p, "fields")
	if !ok {
		return q, false
	}
	if has {
		q.fields, _ = fl.(map[string]any)
	}
	_, hasLimit := p["limit"]
	_, hasSkip := p["skip"]
	q.hasLimitSkip = hasLimit && hasSkip
	q.limit, q.skip = intParam(p["limit"]), intParam(p["skip"])
	return q, true
}

func intParam(v any) int {
	switch n := v.(type) {
	case string:
		i, _ := strconv.Atoi(n)
		return i
	case float64:
		return int(n)
	}
	return 0
}

// orderedKeys reads a sort object keeping its key order.
func orderedKeys(raw string) ([]sortKey, error) {
	dec := json.NewDecoder(strings.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not an object")
	}
	var out []sortKey
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := t.(string)
		var dir float64
		if err := dec.Decode(&dir); err != nil {
			return nil, err
		}
		out = append(out, sortKey{path: k, dir: dir})
	}
	return out, nil
}

// visible returns the published items of a model matching q, sorted.
func (s *Server) visible(model string, q listQuery) []Item {
	var out []Item
	for _, it := range s.items[model] {
		if st, _ := it["_state"].(float64); st != 1 {
			continue
		}
		if match(it, q.filter) {
			out = append(out, it)
		}
	}
	if len(q.sort) > 0 {
		slices.SortStableFunc(out, func(a, b Item) int {
			for _, k := range q.sort {
				if c := compareValues(a[k.path], b[k.path]); c != 0 {
					if k.dir < 0 {
						return -c
					}
					return c
				}
			}
			return 0
		})
	}
	return out
}

func (s *Server) list(w http.ResponseWriter, model string, p map[string]any, c caller) {
	md := s.modelFor(w, model, "read", c)
	if md == nil {
		return
	}
	q, ok := parseQuery(w, p)
	if !ok {
		return
	}
	all := s.visible(model, q)
	page := all[min(q.skip, len(all)):]
	if q.limit > 0 {
		page = page[:min(q.limit, len(page))]
	}
	items := make([]json.RawMessage, 0, len(page))
	for _, it := range page {
		items = append(items, s.render(md, project(it, q.fields)))
	}
	if q.hasLimitSkip {
		writeRaw(w, http.StatusOK, []byte(fmt.Sprintf(`{"data":%s,"meta":{"total":%d}}`, joinRaw(items), len(all))))
		return
	}
	writeRaw(w, http.StatusOK, joinRaw(items))
}

func joinRaw(items []json.RawMessage) []byte {
	var b bytes.Buffer
	b.WriteString("[")
	for i, it := range items {
		if i > 0 {
			b.WriteString(",")
		}
		b.Write(it)
	}
	b.WriteString("]")
	return b.Bytes()
}

// multi serves GET /content/items?models={alias:{model,...}}: models the
// caller may not read are silently left out.
func (s *Server) multi(w http.ResponseWriter, p map[string]any, c caller) {
	raw, ok := p["models"].(string)
	if !ok {
		apiError(w, http.StatusPreconditionFailed, "<models> parameter is missing")
		return
	}
	var spec map[string]map[string]any
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		apiError(w, http.StatusPreconditionFailed, "<models> is not valid json")
		return
	}
	out := map[string]any{}
	for alias, opts := range spec {
		name, _ := opts["model"].(string)
		if name == "" {
			name = alias
		}
		md := s.model(name)
		if md == nil || !s.allowed(c, "content/"+name+"/read") {
			continue
		}
		q := listQuery{limit: intParam(opts["limit"]), skip: intParam(opts["skip"])}
		q.filter, _ = opts["filter"].(map[string]any)
		all := s.visible(name, q)
		page := all[min(q.skip, len(all)):]
		if q.limit > 0 {
			page = page[:min(q.limit, len(page))]
		}
		list := []any{}
		for _, it := range page {
			list = append(list, it)
		}
		out[alias] = list
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) first(w http.ResponseWriter, model string, p map[string]any, c caller) {
	md := s.modelFor(w, model, "read", c)
	if md == nil {
		return
	}
	q, ok := parseQuery(w, p)
	if !ok {
		return
	}
	all := s.visible(model, q)
	if len(all) == 0 {
		empty404(w)
		return
	}
	writeRaw(w, http.StatusOK, s.render(md, project(all[0], q.fields)))
}

func (s *Server) getByID(w http.ResponseWriter, model, id string, p map[string]any, c caller) {
	md := s.modelFor(w, model, "read", c)
	if md == nil {
		return
	}
	q, ok := parseQuery(w, p)
	if !ok {
		return
	}
	it := s.find(model, id)
	if st, _ := it["_state"].(float64); it == nil || st != 1 {
		empty404(w) // missing, deleted or unpublished
		return
	}
	writeRaw(w, http.StatusOK, s.render(md, project(it, q.fields)))
}

// save is POST /content/item/{model}: create, or update with data._id.
func (s *Server) save(w http.ResponseWriter, model string, p map[string]any, c caller) {
	md := s.model(model)
	if md == nil {
		apiError(w, http.StatusNotFound, fmt.Sprintf("Model %s not found", model))
		return
	}
	data, ok := p["data"].(map[string]any)
	if !ok || len(data) == 0 {
		apiError(w, http.StatusPreconditionFailed, "Item data is missing")
		return
	}
	id, isUpdate := data["_id"].(string)
	perm := "create"
	if isUpdate {
		perm = "update"
	}
	if !s.allowed(c, fmt.Sprintf("content/%s/%s", model, perm)) {
		apiError(w, http.StatusForbidden, "Permission denied")
		return
	}
	// Keys that are not model fields are dropped.
	clean := Item{}
	for _, f := range md.Fields {
		if v, ok := data[f.Name]; ok {
			clean[f.Name] = v
		}
	}
	if st, ok := data["_state"]; ok {
		// From the code: an update without publish silently drops _state;
		// create does not check publish.
		if !isUpdate || s.allowed(c, fmt.Sprintf("content/%s/publish", model)) {
			clean["_state"] = st
		}
	}
	now := s.unix()
	if isUpdate {
		echo := Item{"_id": id}
		for k, v := range clean {
			echo[k] = v
		}
		echo["_modified"], echo["_mby"] = now, c.userID
		if it := s.find(model, id); it != nil {
			for k, v := range clean {
				it[k] = v
			}
			it["_modified"], it["_mby"] = now, c.userID
		}
		// For an id that does not exist: the same echo, nothing written.
		writeRaw(w, http.StatusOK, s.render(md, echo))
		return
	}
	it := Item{}
	for _, f := range md.Fields {
		switch v, ok := clean[f.Name]; {
		case ok:
			it[f.Name] = v
		case f.Type == "boolean":
			it[f.Name] = f.Default
		default:
			it[f.Name] = nil
		}
	}
	it["_state"] = 1.0
	if st, ok := clean["_state"]; ok {
		it["_state"] = st
	}
	it["_modified"], it["_mby"], it["_created"], it["_cby"], it["_id"] = now, c.userID, now, c.userID, newID()
	s.items[model] = append(s.items[model], it)
	writeRaw(w, http.StatusOK, s.render(md, it))
}

func (s *Server) remove(w http.ResponseWriter, model, id string, c caller) {
	md := s.model(model)
	if md == nil {
		apiError(w, http.StatusNotFound, fmt.Sprintf("Model %s not found", model))
		return
	}
	if md.Singleton {
		apiError(w, http.StatusPreconditionFailed, fmt.Sprintf("DELETE method not allowed for %s", model))
		return
	}
	if !s.allowed(c, fmt.Sprintf("content/%s/delete", model)) {
		apiError(w, http.StatusForbidden, "Permission denied")
		return
	}
	s.items[model] = slices.DeleteFunc(s.items[model], func(it Item) bool { return it["_id"] == id })
	// Success also for ids that do not exist or are malformed.
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

var systemOrder = []string{"_state", "_modified", "_mby", "_created", "_cby", "_id"}

// render writes an item with Cockpit's key order: model fields, then the
// system fields.
func (s *Server) render(md *Model, it Item) []byte {
	var b bytes.Buffer
	b.WriteString("{")
	first := true
	put := func(k string) {
		v, ok := it[k]
		if !ok {
			return
		}
		if !first {
			b.WriteString(",")
		}
		first = false
		b.Write(encode(k))
		b.WriteString(":")
		b.Write(encode(v))
	}
	for _, f := range md.Fields {
		put(f.Name)
	}
	for _, k := range systemOrder {
		put(k)
	}
	b.WriteString("}")
	return b.Bytes()
}

// project applies a fields projection: {"title":1} keeps title and _id;
// {"x":0} drops x.
func project(it Item, fields map[string]any) Item {
	if len(fields) == 0 {
		return it
	}
	include := false
	for _, v := range fields {
		if f, _ := v.(float64); f == 1 {
			include = true
		}
	}
	out := Item{}
	if include {
		out["_id"] = it["_id"]
		for k, v := range fields {
			if f, _ := v.(float64); f == 1 {
				if val, ok := it[k]; ok {
					out[k] = val
				}
			} else if k == "_id" {
				delete(out, "_id")
			}
		}
		return out
	}
	for k, v := range it {
		out[k] = v
	}
	for k := range fields {
		delete(out, k)
	}
	return out
}

// match evaluates a Mongo-like filter (MongoLite) against an item.
func match(doc map[string]any, q map[string]any) bool {
	for k, v := range q {
		switch k {
		case "$and", "$or", "$nor":
			list, _ := v.([]any)
			n := 0
			for _, sub := range list {
				if m, ok := sub.(map[string]any); ok && match(doc, m) {
					n++
				}
			}
			if k == "$and" && n != len(list) || k == "$or" && n == 0 || k == "$nor" && n != 0 {
				return false
			}
		default:
			val, exists := lookup(doc, strings.Split(k, "."))
			if !fieldMatches(val, exists, v) {
				return false
			}
		}
	}
	return true
}

func lookup(doc any, parts []string) (any, bool) {
	cur := doc
	for _, p := range parts {
		var m map[string]any
		switch d := cur.(type) {
		case Item:
			m = d
		case map[string]any:
			m = d
		default:
			return nil, false
		}
		var ok bool
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func fieldMatches(val any, exists bool, cond any) bool {
	ops, isOps := cond.(map[string]any)
	if isOps {
		for k := range ops {
			if !strings.HasPrefix(k, "$") {
				isOps = false
			}
		}
	}
	if !isOps || len(ops) == 0 {
		return equalish(val, cond)
	}
	for op, arg := range ops {
		ok := false
		switch op {
		case "$eq":
			ok = equalish(val, arg)
		case "$ne":
			ok = !equalish(val, arg)
		case "$gt", "$gte", "$lt", "$lte":
			c, comparable := order(val, arg)
			ok = comparable && (op == "$gt" && c > 0 || op == "$gte" && c >= 0 || op == "$lt" && c < 0 || op == "$lte" && c <= 0)
		case "$in", "$nin":
			list, _ := arg.([]any)
			for _, e := range list {
				if equalish(val, e) {
					ok = true
				}
			}
			if op == "$nin" {
				ok = !ok
			}
		case "$exists":
			want, _ := arg.(bool)
			ok = exists == want
		case "$regex":
			pat, _ := arg.(string)
			if o, _ := ops["$options"].(string); strings.Contains(o, "i") {
				pat = "(?i)" + pat
			}
			re, err := regexp.Compile(pat)
			s, isStr := val.(string)
			ok = err == nil && isStr && re.MatchString(s)
		case "$options":
			ok = true
		case "$not":
			ok = !fieldMatches(val, exists, arg)
		}
		if !ok {
			return false
		}
	}
	return true
}

func equalish(val, want any) bool {
	if list, ok := val.([]any); ok {
		for _, e := range list {
			if scalarEqual(e, want) {
				return true
			}
		}
	}
	return scalarEqual(val, want)
}

func scalarEqual(a, b any) bool {
	if fa, ok := num(a); ok {
		fb, ok := num(b)
		return ok && fa == fb
	}
	return reflect.DeepEqual(a, b)
}

func num(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}

func order(a, b any) (int, bool) {
	if fa, ok := num(a); ok {
		fb, ok := num(b)
		if !ok {
			return 0, false
		}
		switch {
		case fa < fb:
			return -1, true
		case fa > fb:
			return 1, true
		}
		return 0, true
	}
	sa, ok1 := a.(string)
	sb, ok2 := b.(string)
	if !ok1 || !ok2 {
		return 0, false
	}
	return strings.Compare(sa, sb), true
}

// compareValues orders any two values for sorting: nulls first, then
// numbers, then strings.
func compareValues(a, b any) int {
	if c, ok := order(a, b); ok {
		return c
	}
	rank := func(v any) int {
		switch v.(type) {
		case nil:
			return 0
		case float64:
			return 1
		case string:
			return 2
		}
		return 3
	}
	return rank(a) - rank(b)
}
