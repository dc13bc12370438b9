// Package transcript reads the recorded Cencori exchanges in
// provider/cencori/testdata/transcripts and checks answers against them.
// The same files are replayed against the fake (is its answer the one
// recorded?) and against the adapter (does keygate send only recorded
// requests, and read the recorded answers right?).
//
// A transcript is JSON:
//
//	{"sources": ["cencori/cencori@1942349c app/api/v1/memory/write/route.ts", ...],
//	 "memory": "enabled" | "gated", "project_memory": true | false,
//	 "exchanges": [{"note": "...", "keygate": true,
//	                "request": {"method", "path", "query", "headers", "body"},
//	                "response": {"status", "headers", "body"}}]}
//
// In a response, a string "<mem_id>", "<iso>", "<number>" or "<any>"
// matches any value of that kind, and "<mem_id:name>" or "<iso:name>" also
// captures it as name; "<name>" anywhere else (a request's path, query or
// body, or a response) stands for the value captured as name. A response
// header "<present>" or "<absent>" checks only that. An exchange with
// "keygate": false records what the server answers to a request keygate
// never sends (a scope-less call, a request without a key).
package transcript

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Request is one recorded request.
type Request struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Query   map[string]string `json:"query,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body,omitempty"`
}

// Response is the answer recorded for it.
type Response struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body"`
}

// Exchange is a request and its answer.
type Exchange struct {
	Note     string   `json:"note"`
	Keygate  *bool    `json:"keygate,omitempty"` // default true
	Request  Request  `json:"request"`
	Response Response `json:"response"`
}

// SentByKeygate reports whether keygate sends this request.
func (e Exchange) SentByKeygate() bool { return e.Keygate == nil || *e.Keygate }

// Transcript is one file.
type Transcript struct {
	Name          string     `json:"-"`
	Sources       []string   `json:"sources"`
	Memory        string     `json:"memory"`                   // "enabled" or "gated"
	ProjectMemory *bool      `json:"project_memory,omitempty"` // default true
	Exchanges     []Exchange `json:"exchanges"`
}

// ProjectMemoryOn reports whether the project's memory setting is on.
func (t Transcript) ProjectMemoryOn() bool { return t.ProjectMemory == nil || *t.ProjectMemory }

// LoadAll reads every transcript in dir, sorted by name.
func LoadAll(dir string) ([]Transcript, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []Transcript
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var t Transcript
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		t.Name = strings.TrimSuffix(filepath.Base(p), ".json")
		if len(t.Sources) == 0 || (t.Memory != "enabled" && t.Memory != "gated") || len(t.Exchanges) == 0 {
			return nil, fmt.Errorf("%s: needs sources, memory (enabled or gated) and exchanges", p)
		}
		out = append(out, t)
	}
	return out, nil
}

var (
	placeholder = regexp.MustCompile(`^<([a-z_]+)(?::([a-z_]+))?>$`)
	inText      = regexp.MustCompile(`<([a-z_]+)>`)
	memID       = regexp.MustCompile(`^mem_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// Vars are captured values, by name.
type Vars map[string]any

// Expand replaces "<name>" in s with captured values.
func (v Vars) Expand(s string) string {
	return inText.ReplaceAllStringFunc(s, func(m string) string {
		if x, ok := v[m[1:len(m)-1]]; ok {
			return fmt.Sprint(x)
		}
		return m
	})
}

// ExpandValue is Expand on every string of a JSON value.
func (v Vars) ExpandValue(x any) any {
	switch t := x.(type) {
	case string:
		return v.Expand(t)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = v.ExpandValue(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = v.ExpandValue(e)
		}
		return out
	}
	return x
}

// Match checks a decoded JSON answer against a recorded body, capturing
// into v. It returns the first difference.
func Match(want, got any, v Vars, at string) error {
	if s, ok := want.(string); ok {
		if m := placeholder.FindStringSubmatch(s); m != nil {
			return matchPlaceholder(s, m[1], m[2], got, v, at)
		}
	}
	switch w := want.(type) {
	case map[string]any:
		return matchObject(w, got, v, at)
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s: %v is not an array of %d", at, got, len(w))
		}
		for i := range w {
			if err := Match(w[i], g[i], v, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if !jsonEqual(want, got) {
		return fmt.Errorf("%s: %v, want %v", at, got, want)
	}
	return nil
}

// matchPlaceholder checks got against the placeholder s, of kind (any,
// number, mem_id, iso, or a name captured before), and captures it as name
// when one is given.
func matchPlaceholder(s, kind, name string, got any, v Vars, at string) error {
	ok := true
	switch kind {
	case "any":
	case "number":
		_, ok = got.(float64)
	case "mem_id":
		g, isStr := got.(string)
		ok = isStr && memID.MatchString(g)
	case "iso":
		g, isStr := got.(string)
		_, err := time.Parse(time.RFC3339Nano, g)
		ok = isStr && err == nil
	default:
		captured, known := v[kind]
		if !known {
			return fmt.Errorf("%s: %s was never captured", at, s)
		}
		ok = jsonEqual(captured, got)
	}
	if !ok {
		return fmt.Errorf("%s: %v is not %s", at, got, s)
	}
	if name != "" {
		v[name] = got
	}
	return nil
}

// matchObject checks that got has exactly want's keys, each matching.
func matchObject(want map[string]any, got any, v Vars, at string) error {
	g, ok := got.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: %v is not an object", at, got)
	}
	for k := range g {
		if _, known := want[k]; !known {
			return fmt.Errorf("%s: unexpected key %q (%v)", at, k, g[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		gv, present := g[k]
		if !present {
			return fmt.Errorf("%s: missing key %q", at, k)
		}
		if err := Match(want[k], gv, v, at+"."+k); err != nil {
			return err
		}
	}
	return nil
}

// Sample turns a recorded body into a concrete answer: each placeholder
// becomes a fixed value of its kind, and a capture binds its name to it in
// v (so later requests that name it match).
func Sample(want any, v Vars) any {
	switch w := want.(type) {
	case string:
		m := placeholder.FindStringSubmatch(w)
		if m == nil {
			return w
		}
		var x any
		switch m[1] {
		case "any":
			x = nil
		case "number":
			x = 1.0
		case "mem_id":
			x = fmt.Sprintf("mem_00000000-0000-4000-8000-%012d", len(v)+1)
		case "iso":
			x = "2026-08-21T06:51:23.123456+00:00"
		default:
			x = v[m[1]]
		}
		if m[2] != "" {
			v[m[2]] = x
		}
		return x
	case map[string]any:
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys) // captures bind in a stable order
		out := make(map[string]any, len(w))
		for _, k := range keys {
			out[k] = Sample(w[k], v)
		}
		return out
	case []any:
		out := make([]any, len(w))
		for i, e := range w {
			out[i] = Sample(e, v)
		}
		return out
	}
	return want
}

func jsonEqual(a, b any) bool {
	x, errA := json.Marshal(a)
	y, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(x) == string(y)
}
