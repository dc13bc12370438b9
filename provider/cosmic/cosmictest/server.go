// Package cosmictest is a fake Cosmic API for tests, examples and
// benchmarks. It reproduces the wire behaviour written down, each fact with
// its source, in docs/providers/cosmic.md: the read key as the read_key
// query parameter, the write key as a Bearer token, {status,message} error
// bodies, 404 for empty lists, HTTP 200 "Route not found" for unrouted
// paths, the {objects,total}, {object}, {object_types} and {object_type}
// envelopes, Mongo-like queries, PATCH that merges the metafields it is
// given, and the dashboard API's users and agents endpoints.
//
// One server plays the three Cosmic hosts under three path prefixes:
// APIPrefix (api.cosmicjs.com/v3), DAPIPrefix (dapi.cosmicjs.com/v3) and
// WorkersPrefix (workers.cosmicjs.com/v3). A path of one host asked of
// another gets "Route not found", as it does upstream.
//
// Where docs/providers/cosmic.md lists a fact as unknown, the choice made
// here is a constant, an option or a comment marked "Unknown:".
package cosmictest

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/provider/internal/fakekit"
)

// Path prefixes of the three hosts on the fake.
const (
	APIPrefix     = "/api/v3"
	DAPIPrefix    = "/dapi/v3"
	WorkersPrefix = "/workers/v3"
)

// Demo credentials of a server made with New and no key options. They are
// fake values, printed by cmd/fake-cosmic. Unknown: the real bucket key
// format; these are 50 letters and digits, like the dashboard shows. The
// prefixed ones are assembled rather than written out, so the source holds
// nothing a secret scanner would take for a live key.
const (
	DemoBucket   = "keygate-demo"
	DemoReadKey  = "rk4DemoReadKeyOnlyForTheFakeCosmicServer0123456789"
	DemoWriteKey = "wk4DemoWriteKeyOnlyForTheFakeCosmicServer012345678"
	DemoPAT      = "cos" + "_DemoPersonalAccessTokenForTheFakeCosmic"
	DemoAgentKey = "agk" + "_DemoAgentKeyForTheFakeCosmicServer"
	// DemoOTP is the code /v3/agents/verify accepts.
	DemoOTP = "123456"
	// AgentAccessToken is the user JWT the agent endpoints hand out beside
	// their answer; keygate must never pass it on.
	AgentAccessToken = "eyJ" + "hbGciOiJub25lIn0.eyJzdWIiOiJrZXlnYXRlLWRlbW8ifQ.DemoAgentAccessTokenSignature"
)

// DefaultCreateStatus is the status of an object created without one:
// "defaults to published" (docs/providers/cosmic.md, Objects).
const DefaultCreateStatus = "published"

// patchParams are the body members an object PATCH documents; a PATCH
// with none of them is refused, as the docs say "At least one of the
// Parameters is required" (docs/providers/cosmic.md, Objects).
var patchParams = []string{"title", "slug", "content", "status", "metadata", "metafields", "publish_at", "unpublish_at",
	"options", "locale", "thumbnail", "trigger_webhook", "pretty"}

// Object is a stored Cosmic object, with the properties of the v3 Object
// model (docs/providers/cosmic.md, Object JSON). Properties the fake never
// sets are null, as the documented examples show them: the fake has no
// users (Unknown: what created_by and modified_by hold after a write with
// a bucket key) and no scheduling or locales.
type Object struct {
	ID          string         `json:"id"`
	Slug        string         `json:"slug"`
	Title       string         `json:"title"`
	Type        string         `json:"type"`
	Status      string         `json:"status"`
	Bucket      string         `json:"bucket"`
	Locale      *string        `json:"locale"`
	CreatedAt   string         `json:"created_at"`
	CreatedBy   *string        `json:"created_by"`
	ModifiedAt  string         `json:"modified_at"`
	ModifiedBy  *string        `json:"modified_by"`
	PublishedAt string         `json:"published_at,omitempty"`
	PublishAt   *int64         `json:"publish_at"`
	UnpublishAt *int64         `json:"unpublish_at"`
	Metadata    map[string]any `json:"metadata"`
}

// Metafield is one field of an object type.
type Metafield struct {
	Key      string `json:"key"`
	Title    string `json:"title"`
	Type     string `json:"type"`
	Required bool   `json:"required"`
}

// ObjectType is a stored Cosmic object type.
type ObjectType struct {
	Slug       string      `json:"slug"`
	Title      string      `json:"title"`
	Singular   string      `json:"singular"`
	Emoji      string      `json:"emoji"`
	Metafields []Metafield `json:"metafields"`
}

// Request is one request the server received, for assertions.
type Request = fakekit.Request

// Server is the fake. It is an http.Handler and safe for concurrent use.
type Server struct {
	mu           sync.Mutex
	bucket       string
	readKey      string
	writeKey     string
	pat          string
	agentKey     string
	agentClaimed bool
	lookupFirst  bool
	now          func() time.Time
	types        []ObjectType
	objects      []*Object
	log          fakekit.Log    // every request, kept
	faults       fakekit.Faults // matched by path suffix
	seq          int
	base         string
}

// Option configures a Server.
type Option func(*Server)

// WithBucket sets the bucket slug.
func WithBucket(slug string) Option { return func(s *Server) { s.bucket = slug } }

// WithReadKey sets the read key; "" makes a bucket that takes reads
// without a key (docs/providers/cosmic.md, Authentication).
func WithReadKey(k string) Option { return func(s *Server) { s.readKey = k } }

// WithWriteKey sets the write key; "" refuses every write.
func WithWriteKey(k string) Option { return func(s *Server) { s.writeKey = k } }

// WithPAT sets the personal access token dapi accepts.
func WithPAT(k string) Option { return func(s *Server) { s.pat = k } }

// WithAgentKey sets the agent key dapi accepts.
func WithAgentKey(k string) Option { return func(s *Server) { s.agentKey = k } }

// WithAgentClaimed starts the agent's project claimed (verified).
func WithAgentClaimed() Option { return func(s *Server) { s.agentClaimed = true } }

// WithClock sets the clock for timestamps.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithObjectLookupBeforeWriteKey makes a PATCH or DELETE of an object that
// does not exist answer 404 before the write key is looked at. Unknown:
// which check Cosmic makes first is not documented; by default the fake
// checks the key first. keygate's write-key probe must stay honest under
// both orders (docs/providers/cosmic.md, Unknown).
func WithObjectLookupBeforeWriteKey() Option { return func(s *Server) { s.lookupFirst = true } }

// WithoutSeed starts with no object types and no objects.
func WithoutSeed() Option { return func(s *Server) { s.types, s.objects = nil, nil } }

// New returns a fake seeded with demo data and the demo keys.
func New(opts ...Option) *Server {
	s := &Server{bucket: DemoBucket, readKey: DemoReadKey, writeKey: DemoWriteKey, pat: DemoPAT, agentKey: DemoAgentKey,
		now: time.Now, log: fakekit.Log{Keep: true}, faults: fakekit.Faults{Suffix: true}}
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

// SetBaseURL records where the server is reachable (Start does it; a
// standalone program that serves on its own listener calls it).
func (s *Server) SetBaseURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base = strings.TrimRight(u, "/")
}

// APIURL is the value for COSMIC_API_URL.
func (s *Server) APIURL() string { s.mu.Lock(); defer s.mu.Unlock(); return s.base + APIPrefix }

// DAPIURL is the value for COSMIC_DAPI_URL.
func (s *Server) DAPIURL() string { s.mu.Lock(); defer s.mu.Unlock(); return s.base + DAPIPrefix }

// WorkersURL is the workers host (media upload, AI).
func (s *Server) WorkersURL() string { s.mu.Lock(); defer s.mu.Unlock(); return s.base + WorkersPrefix }

// BucketPath is the full request path of rest on the data plane, e.g.
// BucketPath("/objects"), as Requests counts it.
func (s *Server) BucketPath(rest string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return APIPrefix + "/buckets/" + s.bucket + rest
}

// Bucket, ReadKey, WriteKey, PAT and AgentKey return the configured values.
func (s *Server) Bucket() string   { s.mu.Lock(); defer s.mu.Unlock(); return s.bucket }
func (s *Server) ReadKey() string  { s.mu.Lock(); defer s.mu.Unlock(); return s.readKey }
func (s *Server) WriteKey() string { s.mu.Lock(); defer s.mu.Unlock(); return s.writeKey }
func (s *Server) PAT() string      { s.mu.Lock(); defer s.mu.Unlock(); return s.pat }
func (s *Server) AgentKey() string { s.mu.Lock(); defer s.mu.Unlock(); return s.agentKey }

// SetKeys replaces the bucket keys, as a rotation in the dashboard would.
func (s *Server) SetKeys(read, write string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readKey, s.writeKey = read, write
}

// AgentClaimed reports whether the agent's project was verified.
func (s *Server) AgentClaimed() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.agentClaimed }

// FailNext makes the next request, whatever it is, get this answer.
func (s *Server) FailNext(status int, headers map[string]string, body string) {
	s.FailNextRequest("", "", status, headers, body)
}

// FailNextRequest makes the next request with this method ("" any) whose
// path ends in suffix ("" any) get this answer. Failures queue up.
func (s *Server) FailNextRequest(method, suffix string, status int, headers map[string]string, body string) {
	s.faults.Fail(method, suffix, status, headers, body)
}

// DropAnswerTo makes the next request with this method whose path ends in
// suffix take effect and then lose its answer: the connection is closed
// without a response, as on a network failure after the write.
func (s *Server) DropAnswerTo(method, suffix string) { s.faults.Drop(method, suffix) }

// Requests returns how many requests reached path (without the query).
func (s *Server) Requests(path string) int { return s.log.Count(path) }

// Seen returns every request received, in order.
func (s *Server) Seen() []Request { return s.log.Seen() }

// Object returns a stored object by id.
func (s *Server) Object(id string) (Object, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.find(id); o != nil {
		return clone(*o), true
	}
	return Object{}, false
}

// Objects returns the stored objects of typ ("" all), oldest first.
func (s *Server) Objects(typ string) []Object {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Object
	for _, o := range s.objects {
		if typ == "" || o.Type == typ {
			out = append(out, clone(*o))
		}
	}
	return out
}

// PutObject stores o (replacing an object with the same id), filling the id
// and timestamps when empty. It returns the stored object.
func (s *Server) PutObject(o Object) Object {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.ID == "" {
		o.ID = s.newID()
	}
	ts := s.stamp()
	if o.CreatedAt == "" {
		o.CreatedAt = ts
	}
	if o.ModifiedAt == "" {
		o.ModifiedAt = ts
	}
	if o.Status == "" {
		o.Status = "published"
	}
	if o.Status == "published" && o.PublishedAt == "" {
		o.PublishedAt = ts
	}
	if o.Metadata == nil {
		o.Metadata = map[string]any{}
	}
	o.Bucket = s.bucket
	c := clone(o)
	for i, old := range s.objects {
		if old.ID == o.ID {
			s.objects[i] = &c
			return clone(c)
		}
	}
	s.objects = append(s.objects, &c)
	return clone(c)
}

// AddType stores an object type.
func (s *Server) AddType(t ObjectType) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.types = append(s.types, t)
}

func (s *Server) find(id string) *Object {
	for _, o := range s.objects {
		if o.ID == id {
			return o
		}
	}
	return nil
}

func clone(o Object) Object {
	b, _ := json.Marshal(o)
	var c Object
	_ = json.Unmarshal(b, &c)
	return c
}

func (s *Server) stamp() string { return s.now().UTC().Format("2006-01-02T15:04:05.000Z") }

// newID returns a fresh 24-hex ObjectId-like id.
func (s *Server) newID() string {
	s.seq++
	return fmt.Sprintf("66%06x%016x", s.seq, rand.Uint64())
}

// ServeHTTP routes a request to one of the three hosts.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body := ""
	if r.Body != nil {
		// Cosmic caps requests at 6 MB (docs/providers/cosmic.md, Limits).
		b, _ := io.ReadAll(io.LimitReader(r.Body, 6<<20))
		body = string(b)
	}
	s.log.Add(r, body)
	if f, ok := s.faults.Take(r); ok {
		s.faults.Serve(w, f, func(w http.ResponseWriter) { s.route(w, r, body) })
		return
	}
	s.route(w, r, body)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, body string) {
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, APIPrefix+"/"):
		s.api(w, r, strings.TrimPrefix(p, APIPrefix), body)
	case strings.HasPrefix(p, DAPIPrefix+"/"):
		s.dapi(w, r, strings.TrimPrefix(p, DAPIPrefix), body)
	case strings.HasPrefix(p, WorkersPrefix+"/"):
		s.workers(w, r, strings.TrimPrefix(p, WorkersPrefix), body)
	default:
		routeNotFound(w)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiError writes Cosmic's error body {"status":N,"message":"..."}
// (docs/providers/cosmic.md, Errors). Unknown: the message texts. The
// docs show one ("Metafield validation: …", whose prefix the fake's
// required-metafield message keeps); every other text is the fake's own,
// and keygate matches none of them except "bucket … not found".
func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"status": status, "message": msg})
}

// routeNotFound is Cosmic's answer to an unrouted path: HTTP 200
// (docs/providers/cosmic.md, Errors; observed on GET /v3/buckets).
func routeNotFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, map[string]any{
		"message":       "Route not found",
		"documentation": "https://api.cosmicjs.com/v3/openapi.json",
		"hints": []string{
			"/v3/agents/* and /v3/users/* are served by https://dapi.cosmicjs.com",
			"POST /v3/buckets/{slug}/media is served by https://workers.cosmicjs.com",
		},
	})
}

var (
	reObjects     = regexp.MustCompile(`^/buckets/([^/]+)/objects$`)
	reObject      = regexp.MustCompile(`^/buckets/([^/]+)/objects/([^/]+)$`)
	reObjectTypes = regexp.MustCompile(`^/buckets/([^/]+)/object-types$`)
	reObjectType  = regexp.MustCompile(`^/buckets/([^/]+)/object-types/([^/]+)$`)
	reAIText      = regexp.MustCompile(`^/buckets/([^/]+)/ai/text$`)
)

// api serves the data plane.
func (s *Server) api(w http.ResponseWriter, r *http.Request, p, body string) {
	route, m := dataRoute(p)
	switch {
	case route == "":
		routeNotFound(w)
	case m[1] != s.bucket:
		apiError(w, http.StatusNotFound, fmt.Sprintf("bucket with slug: '%s' not found", m[1]))
	case s.authorized(w, r, route, m):
		s.serveData(w, r, route, m, body)
	}
}

// dataRoute names the data-plane route of path p, with its matches
// (bucket, then id or type); "" when none fits.
func dataRoute(p string) (string, []string) {
	for name, re := range map[string]*regexp.Regexp{"objects": reObjects, "object": reObject, "types": reObjectTypes, "type": reObjectType} {
		if m := re.FindStringSubmatch(p); m != nil {
			return name, m
		}
	}
	return "", nil
}

// authorized checks the key a request needs, answering when it fails: the
// read key (when the bucket has one) for a GET, the write key for a
// write, and "Route not found" for any other method.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, route string, m []string) bool {
	switch {
	case r.Method == http.MethodGet:
		// The read key is the read_key query parameter; a bucket without
		// one takes reads without it. Unknown: the 401 text for a wrong
		// read key.
		if s.readKey != "" && r.URL.Query().Get("read_key") != s.readKey {
			apiError(w, http.StatusUnauthorized, "Unauthorized: invalid read_key")
			return false
		}
	case route == "objects" && r.Method == http.MethodPost, route == "object" && (r.Method == http.MethodPatch || r.Method == http.MethodDelete):
		if s.lookupFirst && route == "object" && s.find(m[2]) == nil {
			apiError(w, http.StatusNotFound, "Object not found")
			return false
		}
		// The write key is a Bearer token on every write; the read key
		// cannot write. Unknown: the 401 text for a wrong write key.
		if s.writeKey == "" || r.Header.Get("Authorization") != "Bearer "+s.writeKey {
			apiError(w, http.StatusUnauthorized, "Unauthorized: invalid write_key")
			return false
		}
	default:
		routeNotFound(w)
		return false
	}
	return true
}

// serveData serves an authorized data-plane request.
func (s *Server) serveData(w http.ResponseWriter, r *http.Request, route string, m []string, body string) {
	switch {
	case route == "objects" && r.Method == http.MethodPost:
		s.createObject(w, body)
	case route == "objects":
		s.listObjects(w, r.URL.Query())
	case route == "object" && r.Method == http.MethodGet:
		s.getObject(w, m[2], r.URL.Query())
	case route == "object" && r.Method == http.MethodPatch:
		s.patchObject(w, m[2], body)
	case route == "object" && r.Method == http.MethodDelete:
		s.deleteObject(w, m[2])
	case route == "types" && len(s.types) == 0:
		apiError(w, http.StatusNotFound, "No object types found")
	case route == "types":
		writeJSON(w, http.StatusOK, map[string]any{"object_types": s.types})
	case route == "type":
		if t := s.typeNamed(m[2]); t != nil {
			writeJSON(w, http.StatusOK, map[string]any{"object_type": *t})
			return
		}
		apiError(w, http.StatusNotFound, "Object type not found")
	}
}

func (s *Server) typeNamed(slug string) *ObjectType {
	for i := range s.types {
		if s.types[i].Slug == slug {
			return &s.types[i]
		}
	}
	return nil
}

// statusMatches applies the status parameter: published (the default),
// draft or any.
func statusMatches(param, status string) (bool, bool) {
	switch param {
	case "", "published":
		return status == "published", true
	case "draft":
		return status == "draft", true
	case "any":
		return true, true
	}
	return false, false
}

func (s *Server) listObjects(w http.ResponseWriter, q url.Values) {
	var query map[string]any
	if raw := q.Get("query"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &query); err != nil {
			apiError(w, http.StatusBadRequest, "query is not valid JSON")
			return
		}
	}
	limit, skip := 1000, 0
	var err error
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			apiError(w, http.StatusBadRequest, "limit must be a positive number")
			return
		}
	}
	if v := q.Get("skip"); v != "" {
		if skip, err = strconv.Atoi(v); err != nil || skip < 0 {
			apiError(w, http.StatusBadRequest, "skip must be a positive number")
			return
		}
	}
	var matched []*Object
	for _, o := range s.objects {
		ok, valid := statusMatches(q.Get("status"), o.Status)
		if !valid {
			apiError(w, http.StatusBadRequest, "status must be published, draft or any")
			return
		}
		if ok && match(docOf(o), query) {
			matched = append(matched, o)
		}
	}
	if err := sortObjects(matched, q.Get("sort")); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	total := len(matched)
	page := matched[min(skip, total):]
	if limit > 0 {
		page = page[:min(limit, len(page))]
	}
	if len(page) == 0 {
		// A list that matches nothing is a 404, not an empty page.
		// Unknown: the message text.
		apiError(w, http.StatusNotFound, "No objects found")
		return
	}
	props := q.Get("props")
	out := make([]any, 0, len(page))
	for _, o := range page {
		out = append(out, project(o, props))
	}
	answer := map[string]any{"objects": out, "total": total}
	if q.Get("limit") != "" {
		// The docs' example answer to a request with limit=1 echoes
		// "limit": 1 beside "total".
		answer["limit"] = limit
	}
	writeJSON(w, http.StatusOK, answer)
}

func sortObjects(objs []*Object, sortParam string) error {
	desc := strings.HasPrefix(sortParam, "-")
	key := strings.TrimPrefix(sortParam, "-")
	var less func(a, b *Object) int
	switch key {
	case "", "order":
		// The default is "order", the dashboard's manual order, which the
		// fake does not have: it lists newest first.
		less = func(a, b *Object) int { return strings.Compare(b.CreatedAt, a.CreatedAt) }
	case "created_at":
		less = func(a, b *Object) int { return strings.Compare(a.CreatedAt, b.CreatedAt) }
	case "modified_at":
		less = func(a, b *Object) int { return strings.Compare(a.ModifiedAt, b.ModifiedAt) }
	case "random":
		rand.Shuffle(len(objs), func(i, j int) { objs[i], objs[j] = objs[j], objs[i] })
		return nil
	default:
		// Unknown: Cosmic's answer to a sort it does not document.
		return fmt.Errorf("sort %q is not supported", sortParam)
	}
	slices.SortStableFunc(objs, func(a, b *Object) int {
		c := less(a, b)
		if c == 0 {
			c = strings.Compare(a.ID, b.ID)
		}
		if desc {
			return -c
		}
		return c
	})
	return nil
}

// docOf is the object as a query sees it.
func docOf(o *Object) map[string]any {
	b, _ := json.Marshal(o)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// project keeps the comma-separated props (dotted paths allowed), or the
// whole object when props is empty.
func project(o *Object, props string) any {
	doc := docOf(o)
	if strings.TrimSpace(props) == "" {
		return doc
	}
	out := map[string]any{}
	for p := range strings.SplitSeq(props, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		parts := strings.Split(p, ".")
		v, ok := lookup(doc, parts)
		if !ok {
			continue
		}
		dst := out
		for _, seg := range parts[:len(parts)-1] {
			next, ok := dst[seg].(map[string]any)
			if !ok {
				next = map[string]any{}
				dst[seg] = next
			}
			dst = next
		}
		dst[parts[len(parts)-1]] = v
	}
	return out
}

func lookup(doc any, parts []string) (any, bool) {
	cur := doc
	for _, p := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// getObject serves GET /objects/{id}, documented for v2 only: the v3
// official clients read one object with a query on id instead
// (docs/providers/cosmic.md, Unknown). keygate does not use it.
func (s *Server) getObject(w http.ResponseWriter, id string, q url.Values) {
	o := s.find(id)
	if o == nil {
		apiError(w, http.StatusNotFound, "Object not found")
		return
	}
	ok, valid := statusMatches(q.Get("status"), o.Status)
	if !valid {
		apiError(w, http.StatusBadRequest, "status must be published, draft or any")
		return
	}
	if !ok {
		apiError(w, http.StatusNotFound, "Object not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": project(o, q.Get("props"))})
}

func decodeBody(body string) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil || m == nil {
		return nil, fmt.Errorf("body is not a JSON object")
	}
	return m, nil
}

var slugRe = regexp.MustCompile(`[^a-z0-9]+`)

func (s *Server) createObject(w http.ResponseWriter, body string) {
	in, err := decodeBody(body)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	title, _ := in["title"].(string)
	typ, _ := in["type"].(string)
	if strings.TrimSpace(title) == "" {
		apiError(w, http.StatusBadRequest, "title is required")
		return
	}
	t := s.typeNamed(typ)
	if t == nil {
		// Unknown: the status and message for an unknown type.
		apiError(w, http.StatusBadRequest, fmt.Sprintf("Object type '%s' does not exist", typ))
		return
	}
	slug, _ := in["slug"].(string)
	if slug == "" {
		slug = strings.Trim(slugRe.ReplaceAllString(strings.ToLower(title), "-"), "-")
	}
	for _, o := range s.objects {
		if o.Type == typ && o.Slug == slug {
			// Slugs are unique per object type. Unknown: whether Cosmic
			// refuses a duplicate or changes the slug, and the message.
			apiError(w, http.StatusBadRequest, fmt.Sprintf("An object with slug '%s' already exists in this object type", slug))
			return
		}
	}
	status, _ := in["status"].(string)
	if status == "" {
		status = DefaultCreateStatus
	}
	if status != "published" && status != "draft" {
		apiError(w, http.StatusBadRequest, "status must be published or draft")
		return
	}
	meta := map[string]any{}
	if raw, ok := in["metadata"]; ok && raw != nil {
		if meta, ok = raw.(map[string]any); !ok {
			apiError(w, http.StatusBadRequest, "metadata must be an object")
			return
		}
	}
	for _, mf := range t.Metafields {
		if v, ok := meta[mf.Key]; mf.Required && (!ok || v == nil || v == "") {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("Metafield validation: '%s' is required", mf.Key))
			return
		}
	}
	ts := s.stamp()
	o := &Object{ID: s.newID(), Slug: slug, Title: title, Type: typ, Status: status, Bucket: s.bucket,
		CreatedAt: ts, ModifiedAt: ts, Metadata: meta}
	if status == "published" {
		o.PublishedAt = ts
	}
	s.objects = append(s.objects, o)
	// The documented success status is 200 (no 201 is listed). Unknown:
	// the status a create answers with.
	writeJSON(w, http.StatusOK, map[string]any{"object": docOf(o)})
}

// patchObject serves PATCH /objects/{id}, after the write key was checked.
// The body is validated before the object is looked up. Unknown: the order
// in which Cosmic makes these checks.
func (s *Server) patchObject(w http.ResponseWriter, id, body string) {
	in, err := decodeBody(body)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !slices.ContainsFunc(patchParams, func(k string) bool { _, ok := in[k]; return ok }) {
		// Unknown: the status and message; the docs only say a parameter
		// is required.
		apiError(w, http.StatusBadRequest, "At least one of the Parameters is required to process the request.")
		return
	}
	o := s.find(id)
	if o == nil {
		apiError(w, http.StatusNotFound, "Object not found")
		return
	}
	next := clone(*o)
	if v, ok := in["title"]; ok {
		t, _ := v.(string)
		if strings.TrimSpace(t) == "" {
			apiError(w, http.StatusBadRequest, "title cannot be empty")
			return
		}
		next.Title = t
	}
	if v, ok := in["slug"]; ok {
		sl, _ := v.(string)
		for _, other := range s.objects {
			if other.ID != id && other.Type == o.Type && other.Slug == sl {
				apiError(w, http.StatusBadRequest, fmt.Sprintf("An object with slug '%s' already exists in this object type", sl))
				return
			}
		}
		next.Slug = sl
	}
	if v, ok := in["status"]; ok {
		st, _ := v.(string)
		if st != "published" && st != "draft" {
			apiError(w, http.StatusBadRequest, "status must be published or draft")
			return
		}
		if st == "published" && next.PublishedAt == "" {
			next.PublishedAt = s.stamp()
		}
		next.Status = st
	}
	if v, ok := in["metadata"]; ok {
		meta, ok := v.(map[string]any)
		if !ok {
			apiError(w, http.StatusBadRequest, "metadata must be an object")
			return
		}
		// Only the metafields sent change: the official clients send only
		// those ("Only provided fields will be updated"). A value replaces
		// the stored one whole. Unknown: how Cosmic treats a null value
		// and a key the object type has no metafield for; the fake
		// stores both as sent.
		for k, val := range meta {
			next.Metadata[k] = val
		}
	}
	next.ModifiedAt = s.stamp()
	*o = next
	writeJSON(w, http.StatusOK, map[string]any{"object": docOf(o)})
}

func (s *Server) deleteObject(w http.ResponseWriter, id string) {
	for i, o := range s.objects {
		if o.ID == id {
			s.objects = slices.Delete(s.objects, i, i+1)
			// The documented answer (v2 docs; unconfirmed for v3).
			writeJSON(w, http.StatusOK, map[string]any{"message": fmt.Sprintf("Object with id '%s' deleted successfully from bucket.", id)})
			return
		}
	}
	apiError(w, http.StatusNotFound, "Object not found")
}

// dapi serves the dashboard API: users and the agents flow.
func (s *Server) dapi(w http.ResponseWriter, r *http.Request, p, body string) {
	bearer, hasBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	unauthorized := func() {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Unauthorized", "code": "unauthorized"})
	}
	switch {
	case p == "/users/get" && r.Method == http.MethodGet:
		if !hasBearer || s.pat == "" || bearer != s.pat {
			unauthorized()
			return
		}
		// Members of the official CLI's CosmicUser
		// (docs/providers/cosmic.md, Dashboard API).
		writeJSON(w, http.StatusOK, map[string]any{"user": map[string]any{
			"id": "5f0000000000000000000001", "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}})
	case p == "/agents/status" && r.Method == http.MethodGet:
		if !hasBearer || s.agentKey == "" || bearer != s.agentKey {
			unauthorized()
			return
		}
		writeJSON(w, http.StatusOK, s.agentStatus())
	case p == "/agents/verify" && r.Method == http.MethodPost:
		if !hasBearer || s.agentKey == "" || bearer != s.agentKey {
			unauthorized()
			return
		}
		in, _ := decodeBody(body)
		if code, _ := in["code"].(string); code != DemoOTP {
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Invalid or expired code", "code": "invalid_code"})
			return
		}
		s.agentClaimed = true
		// The members of AgentVerifyResponse in the official CLI.
		// Unknown: the claim_status values and the message text.
		writeJSON(w, http.StatusOK, map[string]any{"message": "Agent project verified", "auth_type": "verified",
			"claim_status": "claimed", "access_token": AgentAccessToken, "limits": nil})
	default:
		routeNotFound(w)
	}
}

// agentStatus is GET /v3/agents/status with the members of
// AgentStatusResponse in the official CLI (docs/providers/cosmic.md,
// Dashboard API): the plan is plan_id, the bucket carries only its slug,
// and a fresh access_token (a user JWT, a secret) comes with it. Unknown:
// the plan ids and the claim_status values.
func (s *Server) agentStatus() map[string]any {
	st := map[string]any{
		"auth_type": "unclaimed", "claim_status": "unclaimed", "plan_id": "agent-trial",
		"limits":       map[string]any{"ai_credits_remaining": 0, "media_mb_total": 5, "objects_max": 50},
		"access_token": AgentAccessToken,
		"bucket":       map[string]any{"slug": s.bucket},
		"project":      map[string]any{"id": "6a0000000000000000000042", "name": "Keygate demo"},
		"agent_id":     "keygate-demo", "client": nil, "human_email": "human@example.com",
		"auto_delete_after_days": 14,
	}
	if s.agentClaimed {
		st["auth_type"], st["claim_status"], st["plan_id"] = "verified", "claimed", "free"
		st["limits"] = nil
		st["auto_delete_after_days"] = nil
	}
	return st
}

// workers serves the AI text endpoint, enough to show the 402 an
// unclaimed agent project gets.
func (s *Server) workers(w http.ResponseWriter, r *http.Request, p, body string) {
	m := reAIText.FindStringSubmatch(p)
	if m == nil || r.Method != http.MethodPost {
		routeNotFound(w)
		return
	}
	if m[1] != s.bucket {
		apiError(w, http.StatusNotFound, fmt.Sprintf("bucket with slug: '%s' not found", m[1]))
		return
	}
	if s.writeKey == "" || r.Header.Get("Authorization") != "Bearer "+s.writeKey {
		apiError(w, http.StatusUnauthorized, "Unauthorized: invalid write_key")
		return
	}
	if s.agentKey != "" && !s.agentClaimed {
		writeJSON(w, http.StatusPaymentRequired, map[string]any{"status": 402, "code": "agent_unclaimed_limit", "action": "ai_generate",
			"message": "AI generation is not available until the project is claimed"})
		return
	}
	in, err := decodeBody(body)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	prompt, _ := in["prompt"].(string)
	if prompt == "" && in["messages"] == nil {
		apiError(w, http.StatusBadRequest, "prompt or messages is required")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"text": "(fake) " + prompt, "usage": map[string]any{"input_tokens": len(prompt) / 4, "output_tokens": 3}})
}

// queries evaluates Cosmic's Mongo-like queries: the operators its docs
// list (docs/providers/cosmic.md, Queries), with MongoDB's semantics.
var queries = fakekit.Mongo("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$all", "$regex", "$options", "$not")

// match evaluates a Mongo-like query against doc.
func match(doc, q map[string]any) bool { return queries.Match(fakekit.Map(doc), fakekit.Map(q)) }
