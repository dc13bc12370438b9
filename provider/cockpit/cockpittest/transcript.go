package cockpittest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A Transcript is a recorded conversation with Cockpit: requests and the
// answers a real Cockpit 2.13.2 gave, or its code gives, stored as JSON in
// provider/cockpit/testdata/transcripts (the format is described in the
// README there). Play sends the requests to a server (the fake) and
// checks its answers; Replay answers an HTTP client (the adapter) with the
// recorded ones.
type Transcript struct {
	Name      string     `json:"name"`
	Source    string     `json:"source"`
	Facts     []string   `json:"facts,omitempty"` // ids in docs/providers/cockpit.md
	Setup     *Setup     `json:"setup,omitempty"`
	Exchanges []Exchange `json:"exchanges"`
	// Adapter holds replay cases for the Cockpit adapter's tests; this
	// package passes them through.
	Adapter []json.RawMessage `json:"adapter,omitempty"`
	File    string            `json:"-"`
}

// Setup prepares a fake before a transcript is played.
type Setup struct {
	NoSeed    bool                         `json:"no_seed,omitempty"` // no demo items (the demo models remain)
	Clock     int64                        `json:"clock,omitempty"`   // Unix seconds for _created and _modified
	Models    []SetupModel                 `json:"models,omitempty"`  // defined or replaced
	AddFields map[string][]SetupField      `json:"add_fields,omitempty"`
	Items     map[string][]json.RawMessage `json:"items,omitempty"` // stored as written, key order kept
	Grant     []string                     `json:"grant,omitempty"` // "role content/<model>/<perm>"
}

// SetupModel is a model definition in a Setup.
type SetupModel struct {
	Name      string       `json:"name"`
	Singleton bool         `json:"singleton,omitempty"`
	Fields    []SetupField `json:"fields"`
}

// SetupField is a field definition in a Setup.
type SetupField struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Default  any    `json:"default,omitempty"`
	Multiple bool   `json:"multiple,omitempty"`
}

// Exchange is one request and its answer.
type Exchange struct {
	Note     string     `json:"note,omitempty"`
	Source   string     `json:"source,omitempty"` // when it differs from the transcript's
	Request  TRequest   `json:"request"`
	Response TResponse  `json:"response"`
	Save     SaveFields `json:"save,omitempty"` // variable -> path in the answer body
}

// SaveFields names values of an answer for later requests ({{name}}).
type SaveFields map[string]string

// TRequest is a recorded request.
type TRequest struct {
	Method string            `json:"method"`
	Path   string            `json:"path"`
	Query  map[string]string `json:"query,omitempty"`
	Key    string            `json:"key,omitempty"`    // a demo key name (see keyNames); none when empty
	KeyIn  string            `json:"key_in,omitempty"` // "header" (api-key, default), "bearer", "query"
	Header map[string]string `json:"header,omitempty"`
	Body   json.RawMessage   `json:"body,omitempty"` // a JSON body
	Form   string            `json:"form,omitempty"` // a form-encoded body
	Raw    *string           `json:"raw,omitempty"`  // a body sent as is, as application/json
}

// TResponse is a recorded answer and how to compare one with it.
type TResponse struct {
	Status      int               `json:"status"`
	ContentType string            `json:"content_type,omitempty"` // a prefix
	Header      map[string]string `json:"header,omitempty"`
	Body        json.RawMessage   `json:"body,omitempty"`     // the JSON answer; key order counts
	Empty       bool              `json:"empty,omitempty"`    // no body at all
	Contains    []string          `json:"contains,omitempty"` // substrings of the raw body
	Vary        []string          `json:"vary,omitempty"`     // body paths whose value may differ ("*" any key)
	Shape       string            `json:"shape,omitempty"`    // "array" or "object": only the type counts
}

// keyNames are the keys a transcript can name.
var keyNames = map[string]string{
	"rw": DemoRWKey, "ro": DemoROKey, "norole": DemoNoRoleKey, "user": DemoUserKey,
	"bad": "API-" + strings.Repeat("9", 40), "bad_user": "USR-" + strings.Repeat("9", 40), "jwt": "aaa.bbb.ccc",
}

// LoadTranscripts reads every *.json file of dir.
func LoadTranscripts(dir string) ([]Transcript, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []Transcript
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var t Transcript
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(f), err)
		}
		t.File = filepath.Base(f)
		out = append(out, t)
	}
	return out, nil
}

// NewServer returns a fake prepared by the transcript's setup.
func (t Transcript) NewServer() (*Server, error) {
	st := t.Setup
	if st == nil {
		st = &Setup{}
	}
	var opts []Option
	if st.NoSeed {
		opts = append(opts, WithoutSeed())
	}
	if st.Clock != 0 {
		at := time.Unix(st.Clock, 0)
		opts = append(opts, WithClock(func() time.Time { return at }))
	}
	s := New(opts...)
	for _, m := range st.Models {
		md := Model{Name: m.Name, Singleton: m.Singleton}
		for _, f := range m.Fields {
			md.Fields = append(md.Fields, Field(f))
		}
		s.SetModel(md)
		s.mu.Lock()
		s.items[m.Name] = nil
		s.mu.Unlock()
	}
	models := make([]string, 0, len(st.Items))
	for m := range st.Items {
		models = append(models, m)
	}
	sort.Strings(models)
	for _, m := range models {
		for _, raw := range st.Items[m] {
			v, err := parseJSON(string(raw), false)
			o, ok := v.(*object)
			if err != nil || !ok {
				return nil, fmt.Errorf("setup item of %s is not an object", m)
			}
			s.mu.Lock()
			s.items[m] = append(s.items[m], phpArray(o).(*object))
			s.mu.Unlock()
		}
	}
	for m, fields := range st.AddFields {
		for _, f := range fields {
			s.AddField(m, Field(f))
		}
	}
	for _, g := range st.Grant {
		role, perm, ok := strings.Cut(g, " ")
		if !ok {
			return nil, fmt.Errorf("grant %q is not \"role perm\"", g)
		}
		s.SetPermission(role, perm, true)
	}
	return s, nil
}

var placeholder = regexp.MustCompile(`\{\{(\w+)\}\}`)

func expand(s string, vars map[string]string) string {
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := vars[m[2:len(m)-2]]; ok {
			return v
		}
		return m
	})
}

// build makes the HTTP request of an exchange against base.
func (r TRequest) build(base string, vars map[string]string) (*http.Request, error) {
	q := url.Values{}
	for k, v := range r.Query {
		q.Set(k, expand(v, vars))
	}
	key := keyNames[r.Key]
	if r.Key != "" && key == "" {
		return nil, fmt.Errorf("unknown key name %q", r.Key)
	}
	if key != "" && r.KeyIn == "query" {
		q.Set("api_key", key)
	}
	u := base + expand(r.Path, vars)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	ct := ""
	switch {
	case r.Body != nil:
		body, ct = strings.NewReader(expand(string(r.Body), vars)), "application/json"
	case r.Form != "":
		body, ct = strings.NewReader(expand(r.Form, vars)), "application/x-www-form-urlencoded"
	case r.Raw != nil:
		body, ct = strings.NewReader(expand(*r.Raw, vars)), "application/json"
	}
	req, err := http.NewRequest(r.Method, u, body)
	if err != nil {
		return nil, err
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	switch {
	case key == "":
	case r.KeyIn == "bearer":
		req.Header.Set("Authorization", "Bearer "+key)
	case r.KeyIn == "" || r.KeyIn == "header":
		req.Header.Set("api-key", key)
	}
	for k, v := range r.Header {
		req.Header.Set(k, v)
	}
	return req, nil
}

// Play sends every request of t to the server at base (a site URL, the
// API below it at /api) and returns how its answers differ from the
// recorded ones; nil means they all match.
func Play(client *http.Client, base string, t Transcript) []string {
	var problems []string
	vars := map[string]string{}
	for i, ex := range t.Exchanges {
		where := fmt.Sprintf("%s exchange %d (%s %s)", t.File, i, ex.Request.Method, ex.Request.Path)
		req, err := ex.Request.build(base, vars)
		if err != nil {
			problems = append(problems, where+": "+err.Error())
			continue
		}
		resp, err := client.Do(req)
		if err != nil {
			problems = append(problems, where+": "+err.Error())
			continue
		}
		raw, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		for _, p := range ex.Response.Compare(resp.StatusCode, resp.Header, raw) {
			problems = append(problems, where+": "+p)
		}
		ex.Save.collect(raw, vars)
	}
	return problems
}

func (s SaveFields) collect(raw []byte, vars map[string]string) {
	if len(s) == 0 {
		return
	}
	body, err := parseJSON(string(raw), false)
	if err != nil {
		return
	}
	for name, path := range s {
		if v, ok := at(body, strings.Split(path, ".")); ok {
			vars[name] = phpString(v)
		}
	}
}

func at(v any, path []string) (any, bool) {
	for _, p := range path {
		switch t := v.(type) {
		case *object:
			var ok bool
			if v, ok = t.get(p); !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(t) {
				return nil, false
			}
			v = t[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// Compare checks an answer against the recorded one.
func (r TResponse) Compare(status int, header http.Header, raw []byte) []string {
	var out []string
	if status != r.Status {
		out = append(out, fmt.Sprintf("status %d, recorded %d (body %.200s)", status, r.Status, raw))
	}
	ct := header.Get("Content-Type")
	if r.ContentType != "" && !strings.HasPrefix(ct, r.ContentType) {
		out = append(out, fmt.Sprintf("Content-Type %q, recorded %q", ct, r.ContentType))
	}
	for k, v := range r.Header {
		if got := header.Get(k); got != v {
			out = append(out, fmt.Sprintf("header %s %q, recorded %q", k, got, v))
		}
	}
	if r.Empty && len(raw) > 0 {
		out = append(out, fmt.Sprintf("body %.200q, recorded empty", raw))
	}
	for _, c := range r.Contains {
		if !bytes.Contains(raw, []byte(c)) {
			out = append(out, fmt.Sprintf("body %.300s lacks %s", raw, c))
		}
	}
	if r.Body == nil && r.Shape == "" {
		return out
	}
	got, err := parseJSON(string(raw), false)
	if err != nil {
		return append(out, fmt.Sprintf("body is not JSON: %.200q", raw))
	}
	switch r.Shape {
	case "array", "object":
		if _, isList := got.([]any); isList != (r.Shape == "array") {
			out = append(out, fmt.Sprintf("body %.200s is not an %s", raw, r.Shape))
		}
		if _, isObj := got.(*object); r.Shape == "object" && !isObj {
			out = append(out, fmt.Sprintf("body %.200s is not an object", raw))
		}
	}
	if r.Body != nil {
		want, err := parseJSON(string(r.Body), false)
		if err != nil {
			return append(out, "the recorded body is not JSON: "+err.Error())
		}
		out = append(out, diff(want, got, nil, r.Vary)...)
	}
	return out
}

// diff compares recorded and actual JSON, key order included; paths in
// vary need only be present.
func diff(want, got any, path []string, vary []string) []string {
	where := strings.Join(path, ".")
	if where == "" {
		where = "body"
	}
	if slices.ContainsFunc(vary, func(p string) bool { return pathMatches(p, path) }) {
		return nil
	}
	switch w := want.(type) {
	case *object:
		g, ok := got.(*object)
		if !ok {
			return []string{fmt.Sprintf("%s is %s, recorded %s", where, encodePHP(got), encodePHP(want))}
		}
		if !slices.Equal(w.keys, g.keys) {
			return []string{fmt.Sprintf("%s has keys %v, recorded %v", where, g.keys, w.keys)}
		}
		var out []string
		for _, k := range w.keys {
			out = append(out, diff(w.vals[k], g.vals[k], append(slices.Clone(path), k), vary)...)
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s is %.300s, recorded %.300s", where, encodePHP(got), encodePHP(want))}
		}
		var out []string
		for i := range w {
			out = append(out, diff(w[i], g[i], append(slices.Clone(path), strconv.Itoa(i)), vary)...)
		}
		return out
	}
	if !bytes.Equal(encodePHP(want), encodePHP(got)) {
		return []string{fmt.Sprintf("%s is %s, recorded %s", where, encodePHP(got), encodePHP(want))}
	}
	return nil
}

func pathMatches(pattern string, path []string) bool {
	parts := strings.Split(pattern, ".")
	if len(parts) != len(path) {
		return false
	}
	for i, p := range parts {
		if p != "*" && p != path[i] {
			return false
		}
	}
	return true
}

// Replay is an http.Handler that answers with the recorded answers of
// some exchanges of a transcript, in order, checking that each request is
// the one recorded (method, path, the recorded query values and body
// keys). It is how recorded Cockpit answers are fed to the adapter.
type Replay struct {
	mu       sync.Mutex
	t        Transcript
	order    []int
	next     int
	vars     map[string]string
	problems []string
}

// NewReplay replays the exchanges of t at the given indexes, in order.
// Saved values ({{name}}) come from the recorded answers.
func NewReplay(t Transcript, indexes []int) *Replay {
	vars := map[string]string{}
	for _, ex := range t.Exchanges {
		if ex.Response.Body != nil {
			ex.Save.collect(ex.Response.Body, vars)
		}
	}
	return &Replay{t: t, order: indexes, vars: vars}
}

// Problems lists requests that were not the recorded ones, and recorded
// exchanges never requested.
func (rp *Replay) Problems() []string {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	out := slices.Clone(rp.problems)
	for _, i := range rp.order[rp.next:] {
		out = append(out, fmt.Sprintf("exchange %d (%s %s) was never requested", i, rp.t.Exchanges[i].Request.Method, rp.t.Exchanges[i].Request.Path))
	}
	return out
}

func (rp *Replay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	raw, _ := io.ReadAll(r.Body)
	if rp.next >= len(rp.order) {
		rp.problems = append(rp.problems, fmt.Sprintf("unexpected %s %s?%s: the transcript has no more answers", r.Method, r.URL.Path, r.URL.RawQuery))
		w.WriteHeader(599)
		return
	}
	idx := rp.order[rp.next]
	ex := rp.t.Exchanges[idx]
	if p := ex.Request.mismatch(r, raw, rp.vars); p != "" {
		rp.problems = append(rp.problems, fmt.Sprintf("request %d is not exchange %d: %s", rp.next, idx, p))
		w.WriteHeader(599)
		return
	}
	rp.next++
	for k, v := range ex.Response.Header {
		w.Header().Set(k, v)
	}
	switch {
	case ex.Response.ContentType != "":
		w.Header().Set("Content-Type", ex.Response.ContentType)
	case ex.Response.Empty:
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	default:
		w.Header().Set("Content-Type", "application/json")
	}
	var body []byte
	if ex.Response.Body != nil {
		v, err := parseJSON(string(ex.Response.Body), false)
		if err != nil {
			rp.problems = append(rp.problems, fmt.Sprintf("exchange %d: the recorded body is not JSON", idx))
		}
		body = encodePHP(v)
	}
	w.WriteHeader(ex.Response.Status)
	_, _ = w.Write(body)
}

// mismatch says how r differs from the recorded request ("" if not).
func (rq TRequest) mismatch(r *http.Request, raw []byte, vars map[string]string) string {
	if r.Method != rq.Method {
		return fmt.Sprintf("method %s, recorded %s", r.Method, rq.Method)
	}
	if want := expand(rq.Path, vars); r.URL.Path != want {
		return fmt.Sprintf("path %s, recorded %s", r.URL.Path, want)
	}
	q := r.URL.Query()
	for k, v := range rq.Query {
		want := expand(v, vars)
		got, has := q[k]
		if !has || !sameParam(got[0], want) {
			return fmt.Sprintf("query %s=%q, recorded %q", k, q.Get(k), want)
		}
	}
	if rq.Body != nil {
		want, err1 := parseJSON(expand(string(rq.Body), vars), false)
		got, err2 := parseJSON(string(raw), false)
		if err1 != nil || err2 != nil || !subset(want, got) {
			return fmt.Sprintf("body %.300s, recorded %.300s", raw, rq.Body)
		}
	}
	return ""
}

// sameParam compares parameters as values when both are JSON5.
func sameParam(got, want string) bool {
	if got == want {
		return true
	}
	g, err1 := parseJSON(got, true)
	w, err2 := parseJSON(want, true)
	return err1 == nil && err2 == nil && bytes.Equal(encodePHP(g), encodePHP(w))
}

// subset reports whether every key of want is in got with the same
// value (objects recursively, other values whole).
func subset(want, got any) bool {
	w, ok := want.(*object)
	if !ok {
		return bytes.Equal(encodePHP(want), encodePHP(got))
	}
	g, ok := got.(*object)
	if !ok {
		return false
	}
	for _, k := range w.keys {
		gv, has := g.get(k)
		if !has || !subset(w.vals[k], gv) {
			return false
		}
	}
	return true
}
