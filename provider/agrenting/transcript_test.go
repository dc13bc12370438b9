package agrenting

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
	"github.com/keygate/keygate/provider/internal/providertest"
	"github.com/keygate/keygate/rotation"
)

// A transcript (testdata/transcripts/*.json) is one exchange taken from
// Agrenting's docs or its official client, with its sources
// (docs/providers/agrenting.md lists them):
//
//	sources   where the request and the answer come from
//	setup     "session": a session is opened with the agent key first
//	request   the documented request
//	response  the documented answer; null where the source gives none
//	after     documented effects: further requests and the status each gets
//	fake      false when the fake does not serve the route
//	keygate   the keygate operation that makes the same call, the request
//	          it must send (headers: a value, "<present>" or "<absent>"),
//	          and what it must make of the answer
//
// Placeholders: {agent_key} and {agent_id} are the fake's demo agent's,
// {agent_key_id} keygate's name for that key, {session} the session opened
// in setup (or by keygate), {token} the token the answer gave.
type transcript struct {
	name     string
	Sources  []string        `json:"sources"`
	Note     string          `json:"note"`
	Setup    string          `json:"setup"`
	Request  wireRequest     `json:"request"`
	Response *wireResponse   `json:"response"`
	After    []afterCheck    `json:"after"`
	Fake     *bool           `json:"fake"`
	Keygate  keygateExchange `json:"keygate"`
}

type wireRequest struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

type wireResponse struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

type afterCheck struct {
	Note       string      `json:"note"`
	Request    wireRequest `json:"request"`
	Status     int         `json:"status"`
	SameAnswer bool        `json:"same_answer"`
}

type keygateExchange struct {
	Op    string          `json:"op"`
	Sends *wireRequest    `json:"sends"`
	Want  json.RawMessage `json:"want"`
}

func loadTranscripts(t *testing.T) []transcript {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "transcripts", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	var out []transcript
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var tr transcript
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&tr); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if len(tr.Sources) == 0 {
			t.Errorf("%s names no source", p)
		}
		tr.name = strings.TrimSuffix(filepath.Base(p), ".json")
		out = append(out, tr)
	}
	return out
}

// vars are the placeholders' values in one run.
type vars map[string]string

func (v vars) expand(s string) string {
	for k, val := range v {
		s = strings.ReplaceAll(s, "{"+k+"}", val)
	}
	return s
}

func demoVars() vars {
	return vars{"agent_key": agrentingtest.DemoAgentKey, "agent_id": agrentingtest.DemoAgentID, "agent_key_id": keyID(agrentingtest.DemoAgentKey)}
}

// send makes a transcript request to base (…/api/v1 stripped: paths
// carry it).
func send(t *testing.T, base string, r wireRequest, v vars) (int, []byte) {
	t.Helper()
	var body io.Reader
	if len(r.Body) > 0 {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(t.Context(), r.Method, base+v.expand(r.Path), body)
	if err != nil {
		t.Fatal(err)
	}
	for k, val := range r.Headers {
		req.Header.Set(k, v.expand(val))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func openSession(t *testing.T, base string) string {
	t.Helper()
	status, raw := send(t, base, wireRequest{Method: "POST", Path: "/api/v1/auth/authenticate", Headers: map[string]string{"X-API-Key": "{agent_key}"}}, demoVars())
	var a struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	if status != 200 || json.Unmarshal(raw, &a) != nil || a.Data.Token == "" {
		t.Fatalf("opening a session: %d", status)
	}
	return a.Data.Token
}

// TestTranscriptsAgainstFake sends each documented request to the fake:
// it must answer with the documented status and shape (any 2xx where the
// source shows no answer), and the documented effects must follow.
func TestTranscriptsAgainstFake(t *testing.T) {
	for _, tr := range loadTranscripts(t) {
		if tr.Fake != nil && !*tr.Fake {
			continue
		}
		t.Run(tr.name, func(t *testing.T) {
			fake := agrentingtest.New()
			hs := fake.Start()
			defer hs.Close()
			v := demoVars()
			if tr.Setup == "session" {
				v["session"] = openSession(t, hs.URL)
			}
			status, raw := send(t, hs.URL, tr.Request, v)
			var got any
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("the fake's answer is not JSON: %s", raw)
			}
			if tr.Response != nil {
				if status != tr.Response.Status {
					t.Fatalf("status %d, documented %d: %s", status, tr.Response.Status, raw)
				}
				var doc any
				if err := json.Unmarshal(tr.Response.Body, &doc); err != nil {
					t.Fatal(err)
				}
				if err := shapeCovers(doc, got, "$"); err != nil {
					t.Errorf("the fake's answer lacks the documented shape: %v\n%s", err, raw)
				}
			} else if status < 200 || status > 299 {
				t.Fatalf("status %d: %s", status, raw)
			}
			if m, ok := got.(map[string]any); ok {
				if d, ok := m["data"].(map[string]any); ok {
					if tok, ok := d["token"].(string); ok {
						v["token"] = tok
					}
				}
			}
			for i, a := range tr.After {
				st, again := send(t, hs.URL, a.Request, v)
				if st != a.Status {
					t.Errorf("after[%d]: status %d, want %d: %s", i, st, a.Status, again)
				}
				if a.SameAnswer && dataOf(again) != dataOf(raw) {
					t.Errorf("after[%d]: a different answer: %s", i, again)
				}
			}
		})
	}
}

func dataOf(raw []byte) string {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(raw, &m)
	return string(m["data"])
}

// shapeCovers reports where got lacks doc's shape: every documented member
// present, with the same kind of value.
func shapeCovers(doc, got any, path string) error {
	if doc == nil || got == nil {
		return nil
	}
	switch d := doc.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T, documented an object", path, got)
		}
		for k, dv := range d {
			gv, ok := g[k]
			if !ok {
				return fmt.Errorf("%s.%s: missing", path, k)
			}
			if err := shapeCovers(dv, gv, path+"."+k); err != nil {
				return err
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Errorf("%s: %T, documented an array", path, got)
		}
		if len(d) > 0 && len(g) > 0 {
			return shapeCovers(d[0], g[0], path+"[0]")
		}
	default:
		if reflect.TypeOf(doc) != reflect.TypeOf(got) {
			return fmt.Errorf("%s: %T, documented %T", path, got, doc)
		}
	}
	return nil
}

// TestTranscriptsAgainstAdapter runs each transcript's keygate operation.
// Where the source documents the answer, keygate gets exactly that (after
// the fake applied the request, so later requests see its effects); every
// other request goes to the fake. keygate must send the documented request
// once, with the documented headers, and make of the answer what the
// transcript wants.
func TestTranscriptsAgainstAdapter(t *testing.T) {
	for _, tr := range loadTranscripts(t) {
		t.Run(tr.name, func(t *testing.T) {
			if tr.Keygate.Op == "find_issued" {
				f, err := findIssued(tr.Response.Body)
				if err != nil {
					t.Fatal(err)
				}
				wantJSON(t, tr.Keygate.Want, map[string]any{"secret": f.secret, "id": f.id}, demoVars())
				return
			}
			clk := providertest.NewClock()
			fake := agrentingtest.New(agrentingtest.WithClock(clk.Now))
			v := demoVars()
			var mu sync.Mutex
			var hits []*http.Request
			sends := tr.Keygate.Sends
			path := v.expand(sends.Path) // before the handler runs: it must not read v
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != sends.Method || r.URL.Path != path {
					fake.ServeHTTP(w, r)
					return
				}
				mu.Lock()
				hits = append(hits, r.Clone(r.Context()))
				mu.Unlock()
				if tr.Response == nil {
					fake.ServeHTTP(w, r)
					return
				}
				fake.ServeHTTP(httptest.NewRecorder(), r)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tr.Response.Status)
				_, _ = w.Write(tr.Response.Body)
			})
			hs := httptest.NewServer(h)
			defer hs.Close()
			e := keyEnv()
			if tr.Keygate.Op != "authenticate" {
				e[EnvAgentID] = agrentingtest.DemoAgentID
			}
			f := newFixtureAt(t, e, hs.URL+"/api/v1", fake, clk)
			got := runKeygateOp(t, f, tr.Keygate.Op, v)
			wantJSON(t, tr.Keygate.Want, got, v)

			mu.Lock()
			defer mu.Unlock()
			if len(hits) != 1 {
				t.Fatalf("keygate sent %d requests to %s %s, want 1", len(hits), sends.Method, sends.Path)
			}
			for name, want := range sends.Headers {
				val := hits[0].Header.Get(name)
				switch want {
				case "<present>":
					if val == "" {
						t.Errorf("no %s header", name)
					}
				case "<absent>":
					if val != "" {
						t.Errorf("an %s header was sent", name)
					}
				default:
					if val != v.expand(want) {
						t.Errorf("header %s: %q, want %q", name, auth.Mask(val), auth.Mask(v.expand(want)))
					}
				}
			}
		})
	}
}

// runKeygateOp performs a transcript's keygate operation and returns what
// keygate made of it, as JSON-shaped values. It sets {session} when the
// operation opens one.
func runKeygateOp(t *testing.T, f *fixture, op string, v vars) map[string]any {
	t.Helper()
	ctx := t.Context()
	b := f.c.RotationBackend()
	demo := auth.NewSecret(agrentingtest.DemoAgentKey)
	openReplay := func() auth.Secret {
		replay, err := b.OpenReplay(ctx, demo)
		if err != nil {
			t.Fatal(err)
		}
		rc, _ := b.decodeReplay(replay)
		v["session"] = rc.Session
		return replay
	}
	works := func(key string) bool {
		g := newFixtureAt(t, env{EnvAPIKey: key, EnvAgentID: agrentingtest.DemoAgentID}, f.base, f.fake, f.clk)
		_, err := g.c.List(ctx, tasksQ)
		return err == nil
	}
	switch op {
	case "authenticate":
		if err := f.c.Authenticate(ctx); err != nil {
			t.Fatal(err)
		}
		f.c.mu.Lock()
		defer f.c.mu.Unlock()
		return map[string]any{"agent_id": f.c.agentID, "agent_name": f.c.agentName, "session": f.c.session.Reveal()}
	case "logout":
		if err := b.CloseReplay(ctx, openReplay()); err != nil {
			t.Fatal(err)
		}
		return map[string]any{"sessions_left": float64(f.fake.SessionCount())}
	case "rotate":
		var kept []byte
		issued, err := b.Create(ctx, rotation.CreateRequest{Old: demo, OldKeyID: keyID(demo.Reveal()), RotationID: "rot-000000000000000000000001", Replay: openReplay(),
			Keep: func(raw []byte) error { kept = raw; return nil }})
		if err != nil {
			t.Fatal(err)
		}
		return map[string]any{"kept": len(kept) > 0, "new_key_works": works(issued.Secret.Reveal()), "old_key_works": works(demo.Reveal())}
	case "create_key":
		issued, err := f.c.CreateKey(ctx, "ci")
		if err != nil {
			t.Fatal(err)
		}
		return map[string]any{"new_key_works": works(issued.Secret.Reveal())}
	case "verify":
		h, err := b.Verify(ctx, demo)
		if err != nil {
			t.Fatal(err)
		}
		return map[string]any{"key_id": h.KeyID, "can_create": h.CanCreate}
	}
	t.Fatalf("unknown op %q", op)
	return nil
}

// wantJSON checks that every member of want (placeholders expanded) is in
// got with the same value.
func wantJSON(t *testing.T, want json.RawMessage, got map[string]any, v vars) {
	t.Helper()
	var w map[string]any
	if err := json.Unmarshal([]byte(v.expand(string(want))), &w); err != nil {
		t.Fatal(err)
	}
	for k, wv := range w {
		if !reflect.DeepEqual(got[k], wv) {
			t.Errorf("%s: %v, want %v", k, got[k], wv)
		}
	}
}
