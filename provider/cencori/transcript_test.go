package cencori

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/cencori/cencoritest"
	"github.com/keygate/keygate/provider/cencori/internal/transcript"
	"github.com/keygate/keygate/provider/internal/providertest"
)

// replayer answers keygate from one transcript: each request must be one
// keygate is recorded to send (method, path, query, key header and body
// alike), and gets the recorded answer with concrete values in place of
// the placeholders. A request matching nothing is answered 599 and
// reported.
type replayer struct {
	tr   transcript.Transcript
	mu   sync.Mutex
	vars transcript.Vars
	used []bool
	odd  []string
}

func (rp *replayer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			body = string(raw)
		}
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	pick := -1
	for i, ex := range rp.tr.Exchanges {
		if !ex.SentByKeygate() || !rp.matches(ex.Request, r, body) {
			continue
		}
		if pick = i; !rp.used[i] {
			break // the first unused match, else the last match again
		}
	}
	if pick < 0 {
		rp.odd = append(rp.odd, fmt.Sprintf("%s %s %s", r.Method, r.URL.RequestURI(), raw))
		w.WriteHeader(599)
		return
	}
	rp.used[pick] = true
	ex := rp.tr.Exchanges[pick]
	for name, v := range ex.Response.Headers {
		switch v {
		case "<absent>":
		case "<present>":
			w.Header()[name] = []string{"req_replay"}
		default:
			w.Header()[name] = []string{v}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ex.Response.Status)
	_ = json.NewEncoder(w).Encode(transcript.Sample(ex.Response.Body, rp.vars))
}

func (rp *replayer) matches(req transcript.Request, r *http.Request, body any) bool {
	if r.Method != req.Method || r.URL.Path != rp.vars.Expand(req.Path) {
		return false
	}
	q := r.URL.Query()
	if len(q) != len(req.Query) {
		return false
	}
	for k, v := range req.Query {
		if got, ok := q[k]; !ok || len(got) != 1 || got[0] != rp.vars.Expand(v) {
			return false
		}
	}
	for k, v := range req.Headers {
		if r.Header.Get(k) != rp.vars.Expand(v) {
			return false
		}
	}
	want, _ := json.Marshal(rp.vars.ExpandValue(req.Body))
	got, _ := json.Marshal(body)
	return string(want) == string(got)
}

// TestTranscriptsAgainstAdapter drives keygate through each transcript that
// records requests keygate sends, and checks both that it sent only those
// (and all of them) and what it made of the answers.
func TestTranscriptsAgainstAdapter(t *testing.T) {
	drivers := map[string]func(t *testing.T, c *Client, vars transcript.Vars){
		"memory-lifecycle": func(t *testing.T, c *Client, vars transcript.Vars) {
			ctx := t.Context()
			o, err := c.Create(ctx, provider.NewObject{Type: TypeMemories, Fields: json.RawMessage(`{"content":"Prefers dark mode. Uses TypeScript primarily.","userId":"user_123"}`)})
			if err != nil {
				t.Fatal(err)
			}
			if meta, _ := providertest.FieldsOf(t, o)["metadata"].(map[string]any); o.ID != vars["id"] || o.Title != "Prefers dark mode. Uses TypeScript primarily." || meta["extractedFrom"] != "manual" {
				t.Errorf("created %+v", o)
			}
			p, err := c.List(ctx, provider.ListQuery{Type: TypeMemories, Limit: 10, Filter: []provider.Condition{providertest.Eq("userId", "user_123")}})
			if err != nil || len(p.Objects) != 1 || p.Objects[0].ID != o.ID || p.NextCursor != "" || p.Total != 1 {
				t.Fatalf("list %+v %v", p, err)
			}
			p, err = c.List(ctx, provider.ListQuery{Type: TypeMemories, Limit: 3, Filter: []provider.Condition{providertest.Eq("userId", "user_123"), providertest.Eq("query", "dark mode")}})
			if err != nil || len(p.Objects) != 1 || providertest.FieldsOf(t, p.Objects[0])["score"] != 1.0 {
				t.Fatalf("search %+v %v", p, err)
			}
			if _, err := c.Delete(ctx, TypeMemories, o.ID); err != nil {
				t.Fatal(err)
			}
			_, err = c.Get(ctx, TypeMemories, provider.Ref{ID: o.ID})
			providertest.WantNotFound(t, err, "object")
		},
		"session-memory": func(t *testing.T, c *Client, _ transcript.Vars) {
			ctx := t.Context()
			o, err := c.Create(ctx, provider.NewObject{Type: TypeMemories, Fields: json.RawMessage(`{"content":"Prefers short answers today.","sessionId":"chat_42"}`)})
			if err != nil {
				t.Fatal(err)
			}
			if note, _ := providertest.FieldsOf(t, o)["keygate_note"].(string); o.ID != "" || !strings.Contains(note, "mem_session") {
				t.Errorf("created %+v", o)
			}
			p, err := c.List(ctx, provider.ListQuery{Type: TypeMemories, Limit: 10, Filter: []provider.Condition{providertest.Eq("sessionId", "chat_42")}})
			if err != nil || len(p.Objects) != 1 || p.Objects[0].ID != "" {
				t.Fatalf("list %+v %v", p, err)
			}
			p, err = c.List(ctx, provider.ListQuery{Type: TypeMemories, Limit: 20, Filter: []provider.Condition{providertest.Eq("sessionId", "chat_42"), providertest.Eq("query", "answers")}})
			if err != nil || len(p.Objects) != 1 {
				t.Fatalf("search %+v %v", p, err)
			}
		},
		"gated": func(t *testing.T, c *Client, _ transcript.Vars) {
			ctx := t.Context()
			d, err := c.Describe(ctx)
			mem, _ := d.Details["memory"].(string)
			if err != nil || d.Credentials[0].Verified != provider.VerifiedOK || !strings.HasPrefix(mem, "not available") {
				t.Fatalf("describe %+v %v", d, err)
			}
			_, err = c.Types(ctx)
			if !errors.Is(err, provider.ErrUnsupported) || !strings.Contains(err.Error(), "before checking the key") {
				t.Errorf("types: %v", err)
			}
			_, err = c.Create(ctx, provider.NewObject{Type: TypeMemories, Title: "Prefers tea", Fields: json.RawMessage(`{}`)})
			if !errors.Is(err, provider.ErrUnsupported) || !strings.Contains(err.Error(), "CENCORI_API_URL") {
				t.Errorf("create: %v", err)
			}
		},
		"project-memory-off": func(t *testing.T, c *Client, _ transcript.Vars) {
			ctx := t.Context()
			_, err := c.Create(ctx, provider.NewObject{Type: TypeMemories, Title: "Prefers tea", Fields: json.RawMessage(`{}`)})
			if !errors.Is(err, provider.ErrUnsupported) || !strings.Contains(err.Error(), "project's settings") {
				t.Errorf("create: %v", err)
			}
			_, err = c.List(ctx, provider.ListQuery{Type: TypeMemories, Limit: 20, Filter: []provider.Condition{providertest.Eq("query", "tea")}})
			if !errors.Is(err, provider.ErrUnsupported) {
				t.Errorf("search: %v", err)
			}
			p, err := c.List(ctx, provider.ListQuery{Type: TypeMemories, Limit: 10, Filter: []provider.Condition{providertest.Eq("userId", "nobody")}})
			if err != nil || len(p.Objects) != 0 || p.Total != 0 {
				t.Errorf("list %+v %v", p, err)
			}
		},
	}
	all, err := transcript.LoadAll("testdata/transcripts")
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range all {
		t.Run(tr.Name, func(t *testing.T) {
			sent := 0
			for _, ex := range tr.Exchanges {
				if ex.SentByKeygate() {
					sent++
				}
			}
			drive, ok := drivers[tr.Name]
			if !ok {
				if sent > 0 {
					t.Fatalf("%d exchanges keygate sends, and no driver replays them here", sent)
				}
				return
			}
			rp := &replayer{tr: tr, vars: transcript.Vars{"key": cencoritest.DemoSecretKey}, used: make([]bool, len(tr.Exchanges))}
			hs := httptest.NewServer(rp)
			defer hs.Close()
			f := newFixtureAt(t, cencoritest.DemoSecretKey, hs.URL, nil, providertest.NewClock())
			drive(t, f.c, rp.vars)
			rp.mu.Lock()
			defer rp.mu.Unlock()
			if len(rp.odd) > 0 {
				t.Errorf("keygate sent requests no transcript records:\n%s", strings.Join(rp.odd, "\n"))
			}
			for i, ex := range tr.Exchanges {
				if ex.SentByKeygate() && !rp.used[i] {
					t.Errorf("exchange %d (%s) was never sent", i, ex.Note)
				}
			}
		})
	}
}
