package cosmic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/cosmic/cosmictest"
	"github.com/keygate/keygate/provider/internal/providertest"
)

// A transcript (testdata/transcripts/*.txtar) is one exchange taken from
// Cosmic's own clients and docs, each part with its source in the file's
// comment (docs/providers/cosmic.md lists them). Its sections:
//
//	setup.json           objects the fake holds first (optional)
//	request.json         the documented request
//	response.json        the documented answer
//	keygate.json         the keygate operation that makes the same call
//	keygate-request.json the request keygate must send for it
//	want.json            what keygate must make of the documented answer
//
// Placeholders {bucket}, {read_key}, {write_key} and {agent_key} stand for
// the fake's values.
type transcript struct {
	name           string
	setup          []cosmictest.Object
	request        wireRequest
	response       wireResponse
	op             keygateOp
	keygateRequest wireRequest
	want           json.RawMessage
}

type wireRequest struct {
	Method string            `json:"method"`
	Host   string            `json:"host"` // "api" (default) or "dapi"
	Path   string            `json:"path"`
	Query  map[string]string `json:"query"`
	Header map[string]string `json:"header"`
	Body   json.RawMessage   `json:"body"`
}

type wireResponse struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

type keygateOp struct {
	Keys   []string        `json:"keys"` // which credentials keygate has: read, write, agent
	Op     string          `json:"op"`   // list, create, update, delete, describe
	Type   string          `json:"type"`
	ID     string          `json:"id"`
	Title  string          `json:"title"`
	Slug   string          `json:"slug"`
	Status string          `json:"status"`
	Limit  int             `json:"limit"`
	Fields json.RawMessage `json:"fields"`
}

// Documented request parameters (docs/providers/cosmic.md, Objects): the
// only query parameters and body members keygate may send.
var (
	documentedQuery = []string{"read_key", "query", "props", "limit", "skip", "sort", "status", "depth", "after", "use_cache", "trigger_webhook"}
	documentedBody  = []string{"title", "type", "slug", "content", "status", "metadata", "locale", "publish_at", "unpublish_at", "thumbnail", "trigger_webhook"}
)

// txtarFiles splits a txtar archive into its comment and named files.
func txtarFiles(data string) (comment string, files map[string]string) {
	files = map[string]string{}
	name := ""
	var cur strings.Builder
	flush := func() {
		if name == "" {
			comment = cur.String()
		} else {
			files[name] = cur.String()
		}
		cur.Reset()
	}
	for line := range strings.Lines(data) {
		if n, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "-- "); ok && strings.HasSuffix(n, " --") {
			flush()
			name = strings.TrimSuffix(n, " --")
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return comment, files
}

func loadTranscripts(t *testing.T, fake *cosmictest.Server) []transcript {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "transcripts", "*.txtar"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	subst := strings.NewReplacer("{bucket}", fake.Bucket(), "{read_key}", fake.ReadKey(), "{write_key}", fake.WriteKey(), "{agent_key}", fake.AgentKey())
	var out []transcript
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		comment, files := txtarFiles(string(b))
		if !strings.Contains(comment, "Request:") || !strings.Contains(comment, "Answer:") {
			t.Errorf("%s: the comment must name the source of the request and of the answer", p)
		}
		tr := transcript{name: strings.TrimSuffix(filepath.Base(p), ".txtar")}
		for _, part := range []struct {
			name     string
			v        any
			optional bool
		}{
			{"setup.json", &tr.setup, true}, {"request.json", &tr.request, false}, {"response.json", &tr.response, false},
			{"keygate.json", &tr.op, false}, {"keygate-request.json", &tr.keygateRequest, false}, {"want.json", &tr.want, false},
		} {
			text, ok := files[part.name]
			if !ok {
				if !part.optional {
					t.Fatalf("%s: no %s", p, part.name)
				}
				continue
			}
			if err := json.Unmarshal([]byte(subst.Replace(text)), part.v); err != nil {
				t.Fatalf("%s: %s: %v", p, part.name, err)
			}
		}
		out = append(out, tr)
	}
	return out
}

// base returns the fake's base URL for a request's host.
func (r wireRequest) base(fake *cosmictest.Server) string {
	if r.Host == "dapi" {
		return fake.DAPIURL()
	}
	return fake.APIURL()
}

func (r wireRequest) prefix() string {
	if r.Host == "dapi" {
		return cosmictest.DAPIPrefix
	}
	return cosmictest.APIPrefix
}

// TestTranscriptsAgainstFake sends each documented request to the fake:
// it must answer with the documented status and shape.
func TestTranscriptsAgainstFake(t *testing.T) {
	probe := cosmictest.New()
	for _, tr := range loadTranscripts(t, probe) {
		t.Run(tr.name, func(t *testing.T) {
			fake := cosmictest.New()
			ts := fake.Start()
			defer ts.Close()
			for _, o := range tr.setup {
				fake.PutObject(o)
			}
			q := url.Values{}
			for k, v := range tr.request.Query {
				q.Set(k, v)
			}
			u := tr.request.base(fake) + tr.request.Path
			if len(q) > 0 {
				u += "?" + q.Encode()
			}
			var body io.Reader
			if len(tr.request.Body) > 0 {
				body = bytes.NewReader(tr.request.Body)
			}
			req, err := http.NewRequest(tr.request.Method, u, body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tr.request.Header {
				req.Header.Set(k, v)
			}
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tr.response.Status {
				t.Fatalf("status %d, documented %d: %s", resp.StatusCode, tr.response.Status, raw)
			}
			var doc, got any
			if err := json.Unmarshal(tr.response.Body, &doc); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("the fake's answer is not JSON: %s", raw)
			}
			if err := shapeCovers(doc, got, "$"); err != nil {
				t.Errorf("the fake's answer lacks the documented shape: %v\n%s", err, raw)
			}
		})
	}
}

// shapeCovers reports where got lacks doc's shape: every documented member
// present, with the same kind of value. A null on either side stands for
// any value (the docs show unset members as null). Metadata is checked to
// be an object only: its members are the bucket's own metafields.
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
			if k == "metadata" {
				if _, isObj := gv.(map[string]any); !isObj && gv != nil {
					return fmt.Errorf("%s.%s: %T, documented an object", path, k, gv)
				}
				continue
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
		if len(d) > 0 {
			if len(g) == 0 {
				return fmt.Errorf("%s: empty, documented with members", path)
			}
			return shapeCovers(d[0], g[0], path+"[0]")
		}
	default:
		if fmt.Sprintf("%T", doc) != fmt.Sprintf("%T", got) {
			return fmt.Errorf("%s: %T, documented %T", path, got, doc)
		}
	}
	return nil
}

// recorded is a request the adapter sent to the documented endpoint.
type recorded struct {
	method, path string
	query        url.Values
	auth         string
	body         []byte
}

// TestTranscriptsAgainstAdapter runs the keygate operation of each
// transcript. The documented endpoint answers with the documented answer
// (after the fake applied the request, so that later reads see its
// effect); every other request goes to the fake. keygate must send the
// documented request once, with documented parameters only, and make of
// the answer what want.json says.
func TestTranscriptsAgainstAdapter(t *testing.T) {
	probe := cosmictest.New()
	for _, tr := range loadTranscripts(t, probe) {
		t.Run(tr.name, func(t *testing.T) {
			fake := cosmictest.New()
			for _, o := range tr.setup {
				fake.PutObject(o)
			}
			var mu sync.Mutex
			var hits []recorded
			h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				if req.Method != tr.keygateRequest.Method || req.URL.Path != tr.keygateRequest.prefix()+tr.keygateRequest.Path {
					fake.ServeHTTP(w, req)
					return
				}
				body, _ := io.ReadAll(req.Body)
				mu.Lock()
				hits = append(hits, recorded{method: req.Method, path: req.URL.Path, query: req.URL.Query(), auth: req.Header.Get("Authorization"), body: body})
				mu.Unlock()
				req.Body = io.NopCloser(bytes.NewReader(body))
				fake.ServeHTTP(httptest.NewRecorder(), req)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tr.response.Status)
				_, _ = w.Write(tr.response.Body)
			})
			ts := httptest.NewServer(h)
			defer ts.Close()
			fake.SetBaseURL(ts.URL)

			e := env{EnvAPIURL: fake.APIURL(), EnvDAPIURL: fake.DAPIURL()}
			for _, k := range tr.op.Keys {
				switch k {
				case "read":
					e[EnvReadKey], e[EnvBucketSlug] = fake.ReadKey(), fake.Bucket()
				case "write":
					e[EnvWriteKey], e[EnvBucketSlug] = fake.WriteKey(), fake.Bucket()
				case "agent":
					e[EnvAgentKey] = fake.AgentKey()
				default:
					t.Fatalf("unknown key %q", k)
				}
			}
			cfg, _, err := LoadConfig(e.Get)
			if err != nil {
				t.Fatal(err)
			}
			c, err := New(cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := runOp(t, c, tr.op)
			if err != nil {
				t.Fatalf("%s: %v", tr.op.Op, err)
			}
			var want any
			_ = json.Unmarshal(tr.want, &want)
			if err := subset(want, got, "$"); err != nil {
				b, _ := json.Marshal(got)
				t.Errorf("keygate's result: %v\n%s", err, b)
			}
			if tok := accessToken(tr.response.Body); tok != "" {
				if b, _ := json.Marshal(got); strings.Contains(string(b), tok) {
					t.Error("the access token reached keygate's result")
				}
			}

			mu.Lock()
			defer mu.Unlock()
			if len(hits) != 1 {
				t.Fatalf("keygate sent %d requests to %s %s, want 1", len(hits), tr.keygateRequest.Method, tr.keygateRequest.Path)
			}
			if err := sameRequest(tr.keygateRequest, hits[0]); err != nil {
				t.Error(err)
			}
		})
	}
}

// runOp performs the transcript's keygate operation and returns its result
// as JSON-shaped values.
func runOp(t *testing.T, c *Client, op keygateOp) (any, error) {
	ctx := providertest.Context(t)
	object := func(o provider.Object) map[string]any {
		var fields any
		_ = json.Unmarshal(o.Fields, &fields)
		return map[string]any{"id": o.ID, "type": o.Type, "slug": o.Slug, "title": o.Title, "status": o.Status, "fields": fields}
	}
	switch op.Op {
	case "list":
		p, err := c.List(ctx, provider.ListQuery{Type: op.Type, Limit: op.Limit})
		if err != nil {
			return nil, err
		}
		objs := []any{}
		for _, o := range p.Objects {
			objs = append(objs, object(o))
		}
		return map[string]any{"total": p.Total, "next_cursor": p.NextCursor, "objects": objs}, nil
	case "create":
		o, err := c.Create(ctx, provider.NewObject{Type: op.Type, Title: op.Title, Slug: op.Slug, Status: op.Status, Fields: op.Fields})
		return object(o), err
	case "update":
		o, err := c.Update(ctx, provider.Patch{Type: op.Type, ID: op.ID, Fields: op.Fields})
		return object(o), err
	case "delete":
		o, err := c.Delete(ctx, op.Type, op.ID)
		return object(o), err
	case "describe":
		d, err := c.Describe(ctx)
		if err != nil {
			return nil, err
		}
		var v any
		b, _ := json.Marshal(map[string]any{"details": d.Details, "owner": d.Owner, "problems": d.Problems})
		_ = json.Unmarshal(b, &v)
		return v, nil
	}
	t.Fatalf("unknown op %q", op.Op)
	return nil, nil
}

// subset reports where got differs from want: every member of want present
// in got with an equal value (objects recursively, arrays element by
// element and of the same length).
func subset(want, got any, path string) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T, want an object", path, got)
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return fmt.Errorf("%s.%s: missing", path, k)
			}
			if err := subset(wv, gv, path+"."+k); err != nil {
				return err
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s: %v, want %d elements", path, got, len(w))
		}
		for i := range w {
			if err := subset(w[i], g[i], fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if !jsonEqual(want, got) {
		return fmt.Errorf("%s: %v, want %v", path, got, want)
	}
	return nil
}

// sameRequest compares what keygate sent with the transcript's
// keygate-request: method, path, the Authorization header, every query
// parameter (the JSON query compared as JSON) and the JSON body. Each
// query parameter and body member must be a documented one.
func sameRequest(want wireRequest, got recorded) error {
	var errs []string
	if got.method != want.Method || got.path != want.prefix()+want.Path {
		errs = append(errs, fmt.Sprintf("sent %s %s", got.method, got.path))
	}
	if got.auth != want.Header["Authorization"] {
		errs = append(errs, "the Authorization header differs")
	}
	for k := range got.query {
		if !slices.Contains(documentedQuery, k) {
			errs = append(errs, fmt.Sprintf("query parameter %q is not documented", k))
		}
		if _, ok := want.Query[k]; !ok {
			errs = append(errs, fmt.Sprintf("query parameter %q was not expected", k))
		}
	}
	for k, v := range want.Query {
		g := got.query.Get(k)
		if k == "query" {
			var a, b any
			if json.Unmarshal([]byte(v), &a) != nil || json.Unmarshal([]byte(g), &b) != nil || !jsonEqual(a, b) {
				errs = append(errs, fmt.Sprintf("query=%s, want %s", g, v))
			}
			continue
		}
		if !got.query.Has(k) || g != v {
			errs = append(errs, fmt.Sprintf("%s=%q, want %q", k, g, v))
		}
	}
	if len(want.Body) == 0 {
		if len(got.body) != 0 {
			errs = append(errs, fmt.Sprintf("sent a body: %s", got.body))
		}
	} else {
		var w, g map[string]any
		_ = json.Unmarshal(want.Body, &w)
		if err := json.Unmarshal(got.body, &g); err != nil {
			errs = append(errs, fmt.Sprintf("body is not a JSON object: %s", got.body))
		}
		for k := range g {
			if !slices.Contains(documentedBody, k) {
				errs = append(errs, fmt.Sprintf("body member %q is not documented", k))
			}
		}
		if !jsonEqual(w, g) {
			errs = append(errs, fmt.Sprintf("body %s, want %s", got.body, want.Body))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("keygate's request: %s", strings.Join(errs, "; "))
	}
	return nil
}

// accessToken returns the access_token member of a documented answer.
func accessToken(body json.RawMessage) string {
	var v struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal(body, &v)
	return v.AccessToken
}
