// Package cockpittest is a fake Cockpit CMS v2 API for tests, examples and
// benchmarks. It reproduces the REST API of Cockpit 2.13.2: every rule it
// follows is listed, with its source (an observation on a running 2.13.2,
// or Cockpit-HQ/Cockpit's code at tag 2.13.2), in docs/providers/cockpit.md,
// and the recorded exchanges in provider/cockpit/testdata/transcripts are
// replayed against it. In short:
//
//   - the token comes from param api_key, else header api-key, else
//     Authorization: Bearer; none means the literal "public" key (A1-A5);
//   - content reads see only published items; lists are a bare array
//     unless both limit and skip are given (R1-R6);
//   - filter, sort and fields are JSON5; filters are evaluated as
//     MongoLite does, in SQLite where it can (Q1-Q9);
//   - POST creates (the full item) or, with data._id, updates (an echo of
//     the sent fields); keys the model lacks are dropped (W1-W9);
//   - singletons answer their one item for any id, [] as a list, and 412
//     to DELETE (S1-S5);
//   - answers are PHP's json_encode: \/ and \uXXXX escapes, {} as [] (J1-J4).
package cockpittest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/provider/internal/fakekit"
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
	Name     string
	Type     string // text, boolean, number, set, ...
	Default  any    // opts.default: a new item takes it (else null)
	Multiple bool   // a multiple field without a default starts as []
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
type Request = fakekit.Request

type user struct {
	id, name, role, apiKey string
}

// Server is the fake. It is an http.Handler and safe for concurrent use.
type Server struct {
	mu     sync.Mutex
	models []Model
	// items holds each model's documents in insertion order (SQLite's
	// rowid order); a singleton has at most one.
	items     map[string][]*object
	keys      map[string]*string // key -> role (nil: no role)
	roles     map[string]map[string]bool
	users     []user
	now       func() time.Time
	unhealthy bool
	cache     map[string][]byte
	log       fakekit.Log    // every request, kept
	faults    fakekit.Faults // matched by path suffix
	base      string
}

// Option configures a Server.
type Option func(*Server)

// WithClock sets the clock for _created and _modified.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithoutSeed starts with the demo models but no items (the singleton
// then has never been saved).
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
	s := &Server{now: time.Now, items: map[string][]*object{}, keys: map[string]*string{}, roles: map[string]map[string]bool{},
		cache: map[string][]byte{}, log: fakekit.Log{Keep: true}, faults: fakekit.Faults{Suffix: true}}
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

// SetModel defines a model, or replaces its definition, as the admin
// would. Stored items are left as they are: Cockpit does not rewrite them
// (docs/providers/cockpit.md W8).
func (s *Server) SetModel(m Model) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m.Fields = slices.Clone(m.Fields)
	if i := slices.IndexFunc(s.models, func(x Model) bool { return x.Name == m.Name }); i >= 0 {
		s.models[i] = m
		return
	}
	s.models = append(s.models, m)
}

// AddField adds a field to a model, as the admin would: items created
// before keep lacking it (docs W8). It panics on an unknown model.
func (s *Server) AddField(model string, f Field) {
	s.mu.Lock()
	defer s.mu.Unlock()
	md := s.model(model)
	if md == nil {
		panic("cockpittest: AddField on unknown model " + model)
	}
	md.Fields = append(md.Fields, f)
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
	s.faults.Fail(method, suffix, status, headers, body)
}

// DropAnswerTo makes the next matching request take effect and then lose
// its answer (the connection is closed).
func (s *Server) DropAnswerTo(method, suffix string) { s.faults.Drop(method, suffix) }

// Requests returns how many requests reached path (without the query).
func (s *Server) Requests(path string) int { return s.log.Count(path) }

// Seen returns every request received, in order.
func (s *Server) Seen() []Request { return s.log.Seen() }

// Item returns a stored item (published or not).
func (s *Server) Item(model, id string) (Item, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.find(model, id); d != nil {
		return toGo(d).(map[string]any), true
	}
	return nil, false
}

// Items returns the stored items of a model, hidden ones included.
func (s *Server) Items(model string) []Item {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Item
	for _, d := range s.items[model] {
		out = append(out, toGo(d).(map[string]any))
	}
	return out
}

// PutItem stores an item as given (an _id is added when missing) and
// returns its id. Its keys are ordered as Cockpit writes them: the
// model's fields, _model, the system fields, then any other key. A
// singleton's item replaces the one stored.
func (s *Server) PutItem(model string, it Item) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := newObject()
	var names []string
	if md := s.model(model); md != nil {
		for _, f := range md.Fields {
			names = append(names, f.Name)
		}
	}
	names = append(names, "_model")
	names = append(names, systemOrder...)
	for _, k := range names {
		if v, ok := it[k]; ok {
			d.set(k, fromGo(v))
		}
	}
	rest := objectFromMap(it)
	for _, k := range rest.keys {
		if _, done := d.get(k); !done {
			d.set(k, rest.vals[k])
		}
	}
	if _, ok := d.get("_id"); !ok {
		d.set("_id", newID())
	}
	if md := s.model(model); md != nil && md.Singleton {
		s.items[model] = []*object{d}
	} else {
		s.items[model] = append(s.items[model], d)
	}
	id, _ := d.vals["_id"].(string)
	return id
}

// systemOrder is the order of the system keys on an item Cockpit created
// (docs J3).
var systemOrder = []string{"_state", "_modified", "_mby", "_created", "_cby", "_id"}

func (s *Server) find(model, id string) *object {
	for _, d := range s.items[model] {
		if v, _ := d.get("_id"); v == id {
			return d
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

// newID is a MongoDB-like id: 24 hex characters.
func newID() string { return fmt.Sprintf("6b%022x", rand.Uint64()) }

func (s *Server) unix() float64 { return float64(s.now().Unix()) }

// ServeHTTP handles one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	s.log.Add(r, string(raw))
	if f, ok := s.faults.Take(r); ok {
		s.faults.Serve(w, f, func(w http.ResponseWriter) { s.route(w, r, raw) })
		return
	}
	s.route(w, r, raw)
}
