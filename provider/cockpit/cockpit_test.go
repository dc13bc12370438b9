package cockpit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/cockpit/cockpittest"
	"github.com/keygate/keygate/provider/internal/providertest"
	"github.com/keygate/keygate/tools"
)

var (
	_ tools.ContentStore = (*Client)(nil)
	_ tools.Inspector    = (*Client)(nil)
)

type env = providertest.Env

// rig is a client wired to a fresh fake on loopback; the client's retries
// do not wait, and are recorded.
type rig struct {
	fake   *cockpittest.Server
	client *Client
	sleeps *providertest.Sleeps
	logs   *providertest.Log
}

func newRig(t *testing.T, edit func(env), opts ...cockpittest.Option) *rig {
	t.Helper()
	fake := cockpittest.New(opts...)
	ts := fake.Start()
	t.Cleanup(ts.Close)
	e := env{EnvURL: fake.URL(), EnvAPIKey: cockpittest.DemoRWKey, EnvModels: "posts,authors,pages"}
	if edit != nil {
		edit(e)
	}
	cfg, configured, err := LoadConfig(e.FromFile)
	if err != nil || !configured {
		t.Fatalf("LoadConfig: %v %v", configured, err)
	}
	logger, logs := providertest.NewLogger()
	c, err := New(cfg, Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{fake: fake, client: c, sleeps: &providertest.Sleeps{}, logs: logs}
	c.api.Caller.Sleep = r.sleeps.Sleep
	return r
}

// writes counts the requests that could change content: POSTs and
// DELETEs other than keygate's no-op checks on probeID.
func (r *rig) writes() int {
	n := 0
	for _, req := range r.fake.Seen() {
		if (req.Method == http.MethodPost || req.Method == http.MethodDelete) && !strings.Contains(req.Body+req.Path, probeID) {
			n++
		}
	}
	return n
}

func (r *rig) methods(method string) int {
	n := 0
	for _, req := range r.fake.Seen() {
		if req.Method == method {
			n++
		}
	}
	return n
}

func TestLoadConfig(t *testing.T) {
	good := env{EnvURL: "https://cms.example.com", EnvAPIKey: cockpittest.DemoRWKey, EnvModels: " posts, authors ,posts,"}
	with := good.With
	cpk := "cpk_" + strings.Repeat("ab", 24)
	tests := []struct {
		name, wantVar, secret string
		env                   env
	}{
		{"complete", "", "", good},
		{"user key", "", "", with(EnvAPIKey, cockpittest.DemoUserKey)},
		{"URL with /api", "", "", with(EnvURL, "https://cms.example.com/api/")},
		{"missing URL", EnvURL, "", good.Without(EnvURL)},
		{"CRLF in key", EnvAPIKey, "API-0a1b", with(EnvAPIKey, cockpittest.DemoRWKey+"\r\n")},
		{"space in key", EnvAPIKey, "API-0a1b", with(EnvAPIKey, "API-0a1b 2c3d4e5f60718293a4b5c6d7e8f901234567")},
		{"Cencori key", EnvAPIKey, cpk, with(EnvAPIKey, cpk)},
		{"Cosmic PAT", EnvAPIKey, "cos_abcdefgh1234", with(EnvAPIKey, "cos_abcdefgh1234")},
		{"JWT", EnvAPIKey, "eyJhbGciOiJIUzI1NiJ9", with(EnvAPIKey, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig")},
		{"no prefix", EnvAPIKey, "0a1b2c3d4e5f60718293", with(EnvAPIKey, "0a1b2c3d4e5f60718293a4b5c6d7e8f9")},
		{"ftp URL", EnvURL, "", with(EnvURL, "ftp://cms.example.com")},
		{"URL with password", EnvURL, "hunter2", with(EnvURL, "https://admin:hunter2@cms.example.com")},
		{"plain http remote", EnvURL, "", with(EnvURL, "http://cms.example.com")},
		{"bad model name", EnvModels, "", with(EnvModels, "posts,Blog Posts")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, configured, err := LoadConfig(tc.env.FromFile)
			if !configured {
				t.Fatal("not configured")
			}
			providertest.WantConfigError(t, err, tc.wantVar, tc.secret)
			if err == nil && (strings.HasSuffix(cfg.URL, "/api") || strings.HasSuffix(cfg.URL, "/")) {
				t.Errorf("URL %s", cfg.URL)
			}
		})
	}
	cfg, _, _ := LoadConfig(good.FromFile)
	if !slices.Equal(cfg.Models, []string{"posts", "authors"}) || cfg.APIKey.Source != auth.SourceEnvFile {
		t.Errorf("cfg = %+v", cfg)
	}
	if _, configured, err := LoadConfig(env{EnvURL: "https://x"}.FromFile); configured || err != nil {
		t.Errorf("without a key: %v %v", configured, err)
	}
}

func TestTypes(t *testing.T) {
	ctx := providertest.Context(t)
	r := newRig(t, func(e env) { e[EnvModels] = "posts,authors,pages,nosuch" })
	types, err := r.client.Types(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]provider.ContentType{}
	for _, ct := range types {
		got[ct.Name] = ct
	}
	if len(types) != 3 || got["posts"].Count != 4 || got["authors"].Count != 2 || got["pages"].Count != 1 {
		t.Errorf("types %+v", types)
	}
	if !slices.Equal(got["posts"].Fields, []string{"body", "featured", "tags", "views"}) {
		t.Errorf("posts fields %v", got["posts"].Fields)
	}
	noRole := newRig(t, func(e env) { e[EnvAPIKey] = cockpittest.DemoNoRoleKey })
	if types, err := noRole.client.Types(ctx); err != nil || len(types) != 0 {
		t.Errorf("no-role key: %v %v", types, err)
	}
	bad := newRig(t, func(e env) { e[EnvAPIKey] = "API-" + strings.Repeat("9", 40) })
	if _, err := bad.client.Types(ctx); !errors.Is(err, provider.ErrUnauthorized) {
		t.Errorf("bad key: %v", err)
	}
}

func slugs(p provider.Page) []string {
	var out []string
	for _, o := range p.Objects {
		out = append(out, o.Slug)
	}
	return out
}

func TestList(t *testing.T) {
	ctx := providertest.Context(t)
	r := newRig(t, nil)
	f := func(path string, op provider.Op, v any) provider.Condition {
		return provider.Condition{Path: path, Op: op, Value: v}
	}
	tests := []struct {
		name  string
		q     provider.ListQuery
		want  []string
		total int
	}{
		{"newest modified first; the unpublished item is invisible", provider.ListQuery{Type: "posts"}, []string{"weekly-digest", "release-notes", "second-thoughts", "hello-world"}, 4},
		{"status published", provider.ListQuery{Type: "posts", Status: "published"}, []string{"weekly-digest", "release-notes", "second-thoughts", "hello-world"}, 4},
		{"field range", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("fields.views", provider.OpGt, 10.0), f("fields.views", provider.OpLt, 200.0)}}, []string{"second-thoughts", "hello-world"}, 2},
		{"array in", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("fields.tags", provider.OpIn, []any{"opinion", "intro"})}}, []string{"second-thoughts", "hello-world"}, 2},
		{"id", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("id", provider.OpEq, "6b0000000000000000000003")}}, []string{"release-notes"}, 1},
		{"created_at as a date", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("created_at", provider.OpGte, "2026-01-09")}, Sort: []provider.SortKey{{Path: "created_at"}}}, []string{"release-notes", "weekly-digest"}, 2},
		{"status condition kept", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("status", provider.OpNe, "draft"), f("fields.featured", provider.OpEq, true)}}, []string{"hello-world"}, 1},
		{"two sort keys", provider.ListQuery{Type: "posts", Sort: []provider.SortKey{{Path: "fields.featured", Desc: true}, {Path: "title"}}}, []string{"hello-world", "release-notes", "second-thoughts", "weekly-digest"}, 4},
		{"no match", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("title", provider.OpEq, "nope")}}, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := r.client.List(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(slugs(p), tc.want) || p.Total != tc.total || p.NextCursor != "" || p.Objects == nil {
				t.Errorf("got %v total %d next %q, want %v total %d", slugs(p), p.Total, p.NextCursor, tc.want, tc.total)
			}
		})
	}
	t.Run("paging", func(t *testing.T) {
		var got []string
		cursor := ""
		for range 4 {
			p, err := r.client.List(ctx, provider.ListQuery{Type: "posts", Limit: 3, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, slugs(p)...)
			if cursor = p.NextCursor; cursor == "" {
				break
			}
		}
		if len(got) != 4 {
			t.Errorf("paged %v", got)
		}
	})
	t.Run("object mapping", func(t *testing.T) {
		o, err := r.client.Get(ctx, "posts", provider.Ref{ID: "6b0000000000000000000004"})
		if err != nil {
			t.Fatal(err)
		}
		if o.Title != "Weekly digest" || o.Slug != "weekly-digest" || o.Status != "published" || o.Version != 0 ||
			!o.ModifiedAt.Equal(time.Date(2026, 1, 14, 9, 0, 0, 0, time.UTC)) || !o.CreatedAt.Equal(time.Date(2026, 1, 11, 9, 0, 0, 0, time.UTC)) {
			t.Errorf("object %+v", o)
		}
		if string(o.Fields) != `{"featured":false,"views":7}` {
			t.Errorf("fields %s (nulls, title and slug are left out)", o.Fields)
		}
	})
	t.Run("wire", func(t *testing.T) {
		before := len(r.fake.Seen())
		if _, err := r.client.List(ctx, provider.ListQuery{Type: "posts", Limit: 2, Cursor: "1", Filter: []provider.Condition{f("fields.views", provider.OpGt, 1.0)}}); err != nil {
			t.Fatal(err)
		}
		req := r.fake.Seen()[before]
		if req.Header.Get("api-key") != cockpittest.DemoRWKey || req.Query.Has("api_key") || req.Header.Get("Authorization") != "" {
			t.Errorf("key not in the api-key header alone: %v %v", req.Header, req.Query)
		}
		if req.Query.Get("limit") != "2" || req.Query.Get("skip") != "1" || req.Query.Get("sort") != `{"_modified":-1}` || req.Query.Get("filter") != `{"views":{"$gt":1}}` {
			t.Errorf("query %v", req.Query)
		}
	})
	refusals := []struct {
		name, field string
		q           provider.ListQuery
	}{
		{"drafts", "status", provider.ListQuery{Type: "posts", Status: "draft"}},
		{"draft condition", "filter", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("status", provider.OpEq, "draft")}}},
		{"version filter", "filter", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("version", provider.OpGt, 1.0)}}},
		{"version sort", "sort", provider.ListQuery{Type: "posts", Sort: []provider.SortKey{{Path: "version"}}}},
		{"bad date", "filter", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("modified_at", provider.OpGt, "yesterday")}}},
		{"bad cursor", "cursor", provider.ListQuery{Type: "posts", Cursor: "-1"}},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			before := len(r.fake.Seen())
			_, err := r.client.List(ctx, tc.q)
			var fe *provider.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("err = %v", err)
			}
			if len(r.fake.Seen()) != before {
				t.Error("a refused query was sent")
			}
		})
	}
	t.Run("unknown model", func(t *testing.T) {
		_, err := r.client.List(ctx, provider.ListQuery{Type: "nosuch"})
		var nf *provider.NotFoundError
		if !errors.As(err, &nf) || nf.What != "content type" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a 400 for the filter names the field", func(t *testing.T) {
		r.fake.FailNext(400, nil, `{"error":"<filter> is not valid json"}`)
		_, err := r.client.List(ctx, provider.ListQuery{Type: "posts"})
		var fe *provider.FieldError
		if !errors.As(err, &fe) || fe.Field != "filter" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a bare array has no total", func(t *testing.T) {
		r.fake.FailNext(200, nil, `[{"_id":"x","title":"T","_state":1}]`)
		p, err := r.client.List(ctx, provider.ListQuery{Type: "posts", Limit: 1})
		if err != nil || p.Total != -1 || p.NextCursor != "1" {
			t.Fatalf("%+v %v", p, err)
		}
	})
}

func TestGet(t *testing.T) {
	ctx := providertest.Context(t)
	r := newRig(t, nil)
	tests := []struct {
		name, model string
		ref         provider.Ref
		wantTitle   string
		check       func(error) bool
	}{
		{"by id", "posts", provider.Ref{ID: "6b0000000000000000000001"}, "Hello, world", nil},
		{"by slug", "authors", provider.Ref{Slug: "grace"}, "Grace Hopper", nil},
		{"unpublished is not found", "posts", provider.Ref{ID: "6b0000000000000000000005"}, "", isNotFound("object")},
		{"missing id", "posts", provider.Ref{ID: "6b00000000000000000000ff"}, "", isNotFound("object")},
		{"missing slug", "posts", provider.Ref{Slug: "nope"}, "", isNotFound("object")},
		{"slug on a model without slugs", "pages", provider.Ref{Slug: "about"}, "", isField("slug")},
		{"unknown model", "nosuch", provider.Ref{ID: "x"}, "", isNotFound("content type")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := r.client.Get(ctx, tc.model, tc.ref)
			if tc.check != nil {
				if !tc.check(err) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || o.Title != tc.wantTitle || o.Type != tc.model {
				t.Fatalf("%+v %v", o, err)
			}
		})
	}
}

func isNotFound(what string) func(error) bool {
	return func(err error) bool { var nf *provider.NotFoundError; return errors.As(err, &nf) && nf.What == what }
}

func isField(field string) func(error) bool {
	return func(err error) bool { var fe *provider.FieldError; return errors.As(err, &fe) && fe.Field == field }
}

func TestCreate(t *testing.T) {
	ctx := providertest.Context(t)
	r := newRig(t, nil)
	o, err := r.client.Create(ctx, provider.NewObject{Type: "posts", Title: "Fresh", Slug: "fresh", Status: "published",
		Fields: json.RawMessage(`{"body":"<p>hi</p>","views":3}`)})
	if err != nil {
		t.Fatal(err)
	}
	if o.ID == "" || o.Title != "Fresh" || o.Slug != "fresh" || o.Status != "published" || string(o.Fields) != `{"body":"<p>hi</p>","featured":false,"views":3}` {
		t.Errorf("created %+v %s", o, o.Fields)
	}
	stored, ok := r.fake.Item("posts", o.ID)
	if !ok || stored["_state"] != 1.0 || stored["title"] != "Fresh" {
		t.Errorf("stored %v", stored)
	}
	var post *cockpittest.Request
	for _, req := range r.fake.Seen() {
		if req.Method == http.MethodPost {
			post = &req
		}
	}
	if post == nil || post.Header.Get("api-key") != cockpittest.DemoRWKey || !strings.HasPrefix(post.Body, `{"data":{`) || strings.Contains(post.Body, "_state") {
		t.Errorf("POST %+v", post)
	}

	refusals := []struct {
		name  string
		n     provider.NewObject
		check func(error) bool
	}{
		{"draft", provider.NewObject{Type: "posts", Title: "D", Slug: "d", Status: "draft"}, isField("status")},
		{"unknown field", provider.NewObject{Type: "posts", Title: "U", Slug: "u", Status: "published", Fields: json.RawMessage(`{"colour":"red"}`)}, isField("fields")},
		{"system field", provider.NewObject{Type: "posts", Title: "S", Slug: "s", Status: "published", Fields: json.RawMessage(`{"_state":0}`)}, isField("fields")},
		{"title inside fields", provider.NewObject{Type: "posts", Title: "S", Slug: "s", Status: "published", Fields: json.RawMessage(`{"title":"x"}`)}, isField("fields")},
		{"slug taken", provider.NewObject{Type: "posts", Title: "Again", Slug: "hello-world", Status: "published"}, isField("slug")},
		{"unknown model", provider.NewObject{Type: "nosuch", Title: "X", Slug: "x", Status: "published"}, isNotFound("content type")},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			before := r.writes()
			_, err := r.client.Create(ctx, tc.n)
			if !tc.check(err) {
				t.Fatalf("err = %v", err)
			}
			if r.writes() != before {
				t.Error("a write was sent")
			}
		})
	}
	t.Run("model without a slug field", func(t *testing.T) {
		o, err := r.client.Create(ctx, provider.NewObject{Type: "pages", Title: "Contact", Slug: "contact", Status: "published", Fields: json.RawMessage(`{"content":"c"}`)})
		if err != nil || o.Slug != "" || o.Title != "Contact" {
			t.Fatalf("%+v %v", o, err)
		}
	})
	t.Run("read-only key", func(t *testing.T) {
		ro := newRig(t, func(e env) { e[EnvAPIKey] = cockpittest.DemoROKey })
		n := len(ro.fake.Items("posts"))
		_, err := ro.client.Create(ctx, provider.NewObject{Type: "posts", Title: "No", Slug: "no", Status: "published"})
		if !errors.Is(err, provider.ErrPermission) {
			t.Fatalf("err = %v", err)
		}
		if len(ro.fake.Items("posts")) != n {
			t.Error("created")
		}
	})
	t.Run("a model with no item is checked the same way", func(t *testing.T) {
		empty := newRig(t, nil, cockpittest.WithoutSeed())
		_, err := empty.client.Create(ctx, provider.NewObject{Type: "posts", Title: "X", Slug: "x", Status: "published", Fields: json.RawMessage(`{"colour":"red"}`)})
		var fe *provider.FieldError
		if !errors.As(err, &fe) || !strings.Contains(fe.Problem, "no field colour") || empty.writes() != 0 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("answer lost but created", func(t *testing.T) {
		r.fake.DropAnswerTo(http.MethodPost, "/content/item/posts")
		o, err := r.client.Create(ctx, provider.NewObject{Type: "posts", Title: "Lost", Slug: "lost", Status: "published"})
		if err != nil || o.Slug != "lost" {
			t.Fatalf("%+v %v", o, err)
		}
	})
}

func TestUpdate(t *testing.T) {
	ctx := providertest.Context(t)
	r := newRig(t, nil)
	id := "6b0000000000000000000001"
	title := "Hello again"
	o, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: id, Title: &title, Fields: json.RawMessage(`{"views":121,"tags":null}`)})
	if err != nil {
		t.Fatal(err)
	}
	// Cockpit echoes only the sent fields; the adapter returns the whole item.
	if o.Title != title || o.Slug != "hello-world" || string(o.Fields) != `{"body":"<p>The first post.</p>","featured":true,"views":121}` {
		t.Errorf("updated %+v %s", o, o.Fields)
	}
	stored, _ := r.fake.Item("posts", id)
	if stored["tags"] != nil || stored["views"] != 121.0 {
		t.Errorf("stored %v", stored)
	}
	var post *cockpittest.Request
	for _, req := range r.fake.Seen() {
		if req.Method == http.MethodPost {
			post = &req
		}
	}
	var body struct {
		Data map[string]any `json:"data"`
	}
	_ = json.Unmarshal([]byte(post.Body), &body)
	if body.Data["_id"] != id || len(body.Data) != 4 {
		t.Errorf("sent %s", post.Body)
	}

	refusals := []struct {
		name  string
		p     provider.Patch
		check func(error) bool
	}{
		{"expected_version", provider.Patch{Type: "posts", ID: id, Title: &title, ExpectedVersion: new(int64)}, isField("expected_version")},
		{"to draft", provider.Patch{Type: "posts", ID: id, Status: ptr("draft")}, isField("status")},
		{"unknown field", provider.Patch{Type: "posts", ID: id, Fields: json.RawMessage(`{"colour":"red"}`)}, isField("fields")},
		{"slug on a model without slugs", provider.Patch{Type: "pages", ID: "6b0000000000000000000021", Slug: ptr("about")}, isField("slug")},
		{"slug taken", provider.Patch{Type: "posts", ID: id, Slug: ptr("release-notes")}, isField("slug")},
		{"missing id", provider.Patch{Type: "posts", ID: "6b00000000000000000000ff", Title: &title}, isNotFound("object")},
		{"unpublished id", provider.Patch{Type: "posts", ID: "6b0000000000000000000005", Title: &title}, isNotFound("object")},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			before := r.writes()
			_, err := r.client.Update(ctx, tc.p)
			if !tc.check(err) {
				t.Fatalf("err = %v", err)
			}
			if r.writes() != before {
				t.Error("a write was sent")
			}
		})
	}
	t.Run("nested merge", func(t *testing.T) {
		r.fake.PutItem("posts", cockpittest.Item{"_id": "6b00000000000000000000aa", "title": "N", "slug": "n", "body": map[string]any{"a": 1.0, "b": 2.0},
			"featured": false, "tags": nil, "views": 0.0, "_state": 1.0, "_created": 1.0, "_modified": 1.0})
		o, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: "6b00000000000000000000aa", Fields: json.RawMessage(`{"body":{"b":null,"c":3}}`)})
		if err != nil || !strings.Contains(string(o.Fields), `"body":{"a":1,"c":3}`) {
			t.Fatalf("%s %v", o.Fields, err)
		}
	})
	t.Run("published is a no-op", func(t *testing.T) {
		before := r.methods(http.MethodPost)
		o, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: id, Status: ptr("published")})
		if err != nil || o.Status != "published" || r.methods(http.MethodPost) != before {
			t.Fatalf("%+v %v", o, err)
		}
	})
	t.Run("read-only key", func(t *testing.T) {
		ro := newRig(t, func(e env) { e[EnvAPIKey] = cockpittest.DemoROKey })
		_, err := ro.client.Update(ctx, provider.Patch{Type: "posts", ID: id, Title: &title})
		if !errors.Is(err, provider.ErrPermission) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("200 without a write is not a success", func(t *testing.T) {
		// As for an id that does not exist: an echo, nothing stored.
		r.fake.FailNextRequest(http.MethodPost, "/content/item/posts", 200, nil, `{"title":"Ghost","_id":"`+id+`","_modified":1,"_mby":null}`)
		_, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: id, Title: ptr("Ghost")})
		if !errors.Is(err, provider.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "title") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("item gone between read and write", func(t *testing.T) {
		gone := r.fake.PutItem("posts", cockpittest.Item{"title": "G", "slug": "g", "_state": 1.0})
		// The write lands on a deleted item: Cockpit answers 200, the read-back 404s.
		r.fake.FailNextRequest(http.MethodPost, "/content/item/posts", 200, nil, `{"title":"x","_id":"`+gone+`"}`)
		r.fake.FailNextRequest(http.MethodGet, "/content/item/posts/"+gone, 200, nil, `{"title":"G","slug":"g","_state":1,"_id":"`+gone+`"}`)
		r.fake.FailNextRequest(http.MethodGet, "/content/item/posts/"+gone, 404, map[string]string{"Content-Type": "text/html"}, "")
		_, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: gone, Title: ptr("x")})
		if !isNotFound("object")(err) {
			t.Fatalf("err = %v", err)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestDelete(t *testing.T) {
	ctx := providertest.Context(t)
	r := newRig(t, nil)
	o, err := r.client.Delete(ctx, "posts", "6b0000000000000000000002")
	if err != nil || o.Slug != "second-thoughts" {
		t.Fatalf("%+v %v", o, err)
	}
	if _, ok := r.fake.Item("posts", "6b0000000000000000000002"); ok {
		t.Error("still stored")
	}
	t.Run("missing id: no DELETE, not found", func(t *testing.T) {
		before := r.methods(http.MethodDelete)
		_, err := r.client.Delete(ctx, "posts", "6b0000000000000000000002")
		if !isNotFound("object")(err) || r.methods(http.MethodDelete) != before {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("singleton", func(t *testing.T) {
		_, err := r.client.Delete(ctx, "settings", "6b0000000000000000000031")
		if !errors.Is(err, provider.ErrUnsupported) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("success that did not delete", func(t *testing.T) {
		r.fake.FailNextRequest(http.MethodDelete, "", 200, nil, `{"success":true}`)
		_, err := r.client.Delete(ctx, "posts", "6b0000000000000000000003")
		if !errors.Is(err, provider.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "still there") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("read-only key", func(t *testing.T) {
		ro := newRig(t, func(e env) { e[EnvAPIKey] = cockpittest.DemoROKey })
		if _, err := ro.client.Delete(ctx, "posts", "6b0000000000000000000003"); !errors.Is(err, provider.ErrPermission) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("answer lost but deleted", func(t *testing.T) {
		r.fake.DropAnswerTo(http.MethodDelete, "")
		o, err := r.client.Delete(ctx, "posts", "6b0000000000000000000003")
		if err != nil || o.Slug != "release-notes" {
			t.Fatalf("%+v %v", o, err)
		}
	})
}

func TestErrorStatuses(t *testing.T) {
	ctx := providertest.Context(t)
	tests := []struct {
		name string
		key  string
		fail func(*cockpittest.Server)
		kind error
	}{
		{"bad key is 412", "API-" + strings.Repeat("9", 40), nil, provider.ErrUnauthorized},
		{"unknown user key is 412", "USR-" + strings.Repeat("9", 40), nil, provider.ErrUnauthorized},
		{"no role is 403", cockpittest.DemoNoRoleKey, nil, provider.ErrPermission},
		{"origin refused", "", func(s *cockpittest.Server) { s.FailNext(412, nil, `{"error":"Not allowed"}`) }, provider.ErrPermission},
		{"rate limit", "", func(s *cockpittest.Server) {
			for range 3 {
				s.FailNext(429, nil, `{"error":"Rate limit exceeded"}`)
			}
		}, provider.ErrRateLimited},
		{"system error", "", func(s *cockpittest.Server) { s.FailNext(500, nil, `{"error":"500","message":"system error"}`) }, provider.ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, func(e env) {
				if tc.key != "" {
					e[EnvAPIKey] = tc.key
				}
			})
			if tc.fail != nil {
				tc.fail(r.fake)
			}
			_, err := r.client.List(ctx, provider.ListQuery{Type: "posts"})
			var ue *provider.UpstreamError
			if !errors.As(err, &ue) || !errors.Is(err, tc.kind) || ue.Provider != "cockpit" {
				t.Fatalf("err = %#v", err)
			}
		})
	}
}

func TestRetriesAndLimits(t *testing.T) {
	ctx := providertest.Context(t)
	t.Run("5xx on a GET is retried", func(t *testing.T) {
		r := newRig(t, nil)
		r.fake.FailNext(503, nil, "")
		p, err := r.client.List(ctx, provider.ListQuery{Type: "posts"})
		if err != nil || p.Total != 4 || r.fake.Requests("/api/content/items/posts") != 2 {
			t.Fatalf("%v %v %d", p, err, r.fake.Requests("/api/content/items/posts"))
		}
	})
	t.Run("a POST is never retried", func(t *testing.T) {
		r := newRig(t, nil)
		r.fake.FailNextRequest(http.MethodPost, "", 503, map[string]string{"Retry-After": "0"}, "")
		_, err := r.client.Create(ctx, provider.NewObject{Type: "posts", Title: "Once", Slug: "once", Status: "published"})
		if !errors.Is(err, provider.ErrUnavailable) || r.methods(http.MethodPost) != 1 {
			t.Fatalf("%v, %d POSTs", err, r.methods(http.MethodPost))
		}
	})
	t.Run("429 honours Retry-After", func(t *testing.T) {
		r := newRig(t, nil)
		r.fake.FailNext(429, map[string]string{"Retry-After": "3"}, `{"error":"Rate limit exceeded"}`)
		if _, err := r.client.List(ctx, provider.ListQuery{Type: "posts"}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.sleeps.All(), []time.Duration{3 * time.Second}) {
			t.Errorf("sleeps %v", r.sleeps.All())
		}
	})
	t.Run("429 past the deadline", func(t *testing.T) {
		r := newRig(t, nil)
		r.fake.FailNext(429, map[string]string{"Retry-After": "60"}, `{"error":"Rate limit exceeded"}`)
		short, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := r.client.List(short, provider.ListQuery{Type: "posts"})
		var ue *provider.UpstreamError
		if !errors.As(err, &ue) || !errors.Is(err, provider.ErrRateLimited) || ue.RetryAfter != time.Minute || len(r.sleeps.All()) != 0 || r.fake.Requests("/api/content/items/posts") != 1 {
			t.Fatalf("%#v sleeps %v", err, r.sleeps.All())
		}
	})
	t.Run("body over the cap", func(t *testing.T) {
		r := newRig(t, nil)
		r.fake.FailNext(200, nil, `[`+strings.Repeat(`{"title":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},`, 100000)+`{}]`)
		_, err := r.client.List(ctx, provider.ListQuery{Type: "posts"})
		if !errors.Is(err, provider.ErrUnavailable) || !strings.Contains(err.Error(), "too large") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cross-host redirect refused", func(t *testing.T) {
		var mu sync.Mutex
		var keys []string
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			mu.Lock()
			keys = append(keys, req.Header.Get("api-key"))
			mu.Unlock()
		}))
		defer other.Close()
		u, _ := url.Parse(other.URL)
		r := newRig(t, nil)
		r.fake.FailNextRequest(http.MethodDelete, "", http.StatusTemporaryRedirect, map[string]string{"Location": "http://localhost:" + u.Port() + "/steal"}, "")
		_, err := r.client.Delete(ctx, "posts", "6b0000000000000000000001")
		if err == nil {
			t.Fatal("redirect followed")
		}
		if _, ok := r.fake.Item("posts", "6b0000000000000000000001"); !ok {
			t.Error("deleted")
		}
		mu.Lock()
		defer mu.Unlock()
		if len(keys) != 0 {
			t.Errorf("the other host got %d requests", len(keys))
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		r := newRig(t, nil)
		c, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := r.client.Get(c, "posts", provider.Ref{ID: "x"}); !errors.Is(err, provider.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestCanary(t *testing.T) {
	ctx := providertest.Context(t)
	r := newRig(t, nil)
	secret := cockpittest.DemoRWKey
	other := "USR-" + strings.Repeat("ab", 20)
	planted := "leak " + secret + " " + other + " " + url.QueryEscape(secret)
	bodies := []struct {
		status int
		body   string
	}{
		{412, `{"error":"` + planted + `"}`},
		{403, `{"error":"` + planted + `"}`},
		{400, `{"error":"<filter> ` + planted + `"}`},
		{404, `{"error":"Model ` + planted + ` not found"}`},
		{500, `{"error":"500","message":"` + planted + `"}`},
		{502, planted},
		{200, planted},
		{200, `{"data":"` + planted + `"}`},
	}
	check := func(what, s string) {
		t.Helper()
		if strings.Contains(s, secret) || strings.Contains(s, other) {
			t.Errorf("%s carries a key: %s", what, s)
		}
	}
	for _, b := range bodies {
		for name, call := range map[string]func() error{
			"list": func() error { _, err := r.client.List(ctx, provider.ListQuery{Type: "posts"}); return err },
			"get": func() error {
				_, err := r.client.Get(ctx, "posts", provider.Ref{ID: "6b0000000000000000000001"})
				return err
			},
			"create": func() error {
				_, err := r.client.Create(ctx, provider.NewObject{Type: "posts", Title: "C", Slug: "c", Status: "published"})
				return err
			},
		} {
			for range 3 {
				r.fake.FailNext(b.status, nil, b.body)
			}
			err := call()
			if err != nil {
				check(name, err.Error())
				check(name, fmt.Sprintf("%#v", err))
			}
			for range 10 { // drain leftovers
				if _, err := r.client.Types(ctx); err == nil {
					break
				}
			}
		}
	}
	r.fake.FailNextRequest("", "/system/healthcheck", 500, nil, `{"status":"error","message":"`+planted+`"}`)
	d, _ := r.client.Describe(ctx)
	b, _ := json.Marshal(d)
	check("description", string(b))
	r.fake.FailNextRequest("", "/content/items/posts", 500, nil, `{"error":"`+planted+`"}`)
	a, _ := r.client.CheckAccess(ctx, provider.ScopeOps([]auth.Scope{{Action: auth.ContentRead, Type: "posts"}}))
	b, _ = json.Marshal(a)
	check("access", string(b))
	check("logs", r.logs.String())
}

func TestDescribe(t *testing.T) {
	ctx := providertest.Context(t)
	t.Run("custom key", func(t *testing.T) {
		r := newRig(t, func(e env) { e[EnvModels] = "posts,authors,nosuch" })
		d, err := r.client.Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cr := d.Credentials[0]
		if !d.Reachable || cr.Kind != "cockpit_api_key" || cr.Verified != provider.VerifiedOK || cr.Source != "env_file" ||
			!slices.Equal(cr.Grants, []string{"content:read:posts", "content:read:authors"}) || cr.Masked != "API-…"+cockpittest.DemoRWKey[len(cockpittest.DemoRWKey)-4:] {
			t.Errorf("description %+v", d)
		}
		if !strings.Contains(d.Details["key_kind"].(string), "custom key") || d.Details["models"].(map[string]string)["nosuch"] != "no such model" {
			t.Errorf("details %v", d.Details)
		}
		if !slices.ContainsFunc(d.Problems, func(p string) bool { return strings.Contains(p, "nosuch") }) {
			t.Errorf("problems %v", d.Problems)
		}
		for _, s := range []string{"Settings > API", "COCKPIT_API_KEY", "without a restart", "env file"} {
			if !strings.Contains(d.RotateHint, s) {
				t.Errorf("RotateHint lacks %q", s)
			}
		}
	})
	t.Run("user key", func(t *testing.T) {
		r := newRig(t, func(e env) { e[EnvAPIKey] = cockpittest.DemoUserKey })
		d, _ := r.client.Describe(ctx)
		if d.Credentials[0].Kind != "cockpit_user_key" || !strings.Contains(d.Details["key_kind"].(string), "user key") {
			t.Errorf("%+v", d)
		}
	})
	t.Run("rejected key", func(t *testing.T) {
		r := newRig(t, func(e env) { e[EnvAPIKey] = "API-" + strings.Repeat("9", 40) })
		d, _ := r.client.Describe(ctx)
		if !d.Reachable || d.Credentials[0].Verified != provider.VerifiedRejected {
			t.Errorf("%+v", d)
		}
	})
	t.Run("no models", func(t *testing.T) {
		r := newRig(t, func(e env) { delete(e, EnvModels) })
		d, _ := r.client.Describe(ctx)
		if d.Credentials[0].Verified != provider.VerifiedOK || !slices.ContainsFunc(d.Problems, func(p string) bool { return strings.Contains(p, EnvModels) }) {
			t.Errorf("%+v", d)
		}
		bad := newRig(t, func(e env) { delete(e, EnvModels); e[EnvAPIKey] = "API-" + strings.Repeat("9", 40) })
		if d, _ := bad.client.Describe(ctx); d.Credentials[0].Verified != provider.VerifiedRejected {
			t.Errorf("%+v", d)
		}
	})
	t.Run("unhealthy", func(t *testing.T) {
		r := newRig(t, nil)
		r.fake.SetUnhealthy(true)
		d, _ := r.client.Describe(ctx)
		if !slices.ContainsFunc(d.Problems, func(p string) bool { return strings.Contains(p, "healthcheck answered 500") }) {
			t.Errorf("%+v", d)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		r := newRig(t, func(e env) { e[EnvURL] = "http://127.0.0.1:1" })
		d, _ := r.client.Describe(ctx)
		if d.Reachable || d.Credentials[0].Verified != provider.VerifiedUnreachable {
			t.Errorf("%+v", d)
		}
	})
}

func TestCheckAccess(t *testing.T) {
	ctx := providertest.Context(t)
	ops := []auth.Scope{
		{Action: auth.ContentRead}, {Action: auth.ContentRead, Type: "posts"}, {Action: auth.ContentWrite, Type: "posts"},
		{Action: auth.ContentDelete, Type: "posts"}, {Action: auth.ContentDelete, Type: "settings"}, {Action: auth.ContentRead, Type: "nosuch"},
		{Action: auth.CredentialsRead}, {Action: auth.Admin},
	}
	type want struct{ allowed, known bool }
	tests := []struct {
		name  string
		edit  func(env)
		wants []want
	}{
		{"read-write key", nil, []want{{true, true}, {true, true}, {false, false}, {true, true}, {false, true}, {false, true}, {false, true}, {false, true}}},
		{"read-only key", func(e env) { e[EnvAPIKey] = cockpittest.DemoROKey },
			[]want{{true, true}, {true, true}, {false, true}, {false, true}, {false, true}, {false, true}, {false, true}, {false, true}}},
		{"no role", func(e env) { e[EnvAPIKey] = cockpittest.DemoNoRoleKey },
			[]want{{false, true}, {false, true}, {false, true}, {false, true}, {false, true}, {false, true}, {false, true}, {false, true}}},
		{"rejected key", func(e env) { e[EnvAPIKey] = "API-" + strings.Repeat("9", 40) },
			[]want{{false, true}, {false, true}, {false, true}, {false, true}, {false, true}, {false, true}, {false, true}, {false, true}}},
		{"no models", func(e env) { delete(e, EnvModels) },
			[]want{{false, false}, {true, true}, {false, false}, {true, true}, {false, true}, {false, true}, {false, true}, {false, true}}},
		{"unreachable", func(e env) { e[EnvURL] = "http://127.0.0.1:1" },
			[]want{{false, false}, {false, false}, {false, false}, {false, false}, {false, false}, {false, false}, {false, true}, {false, true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.edit)
			before, _ := json.Marshal(map[string]any{"p": r.fake.Items("posts"), "a": r.fake.Items("authors"), "s": r.fake.Items("settings")})
			got, err := r.client.CheckAccess(ctx, provider.ScopeOps(ops))
			if err != nil || len(got) != len(ops) {
				t.Fatal(got, err)
			}
			for i, a := range got {
				if a.Operation != ops[i].String() || a.Allowed != tc.wants[i].allowed || a.Known != tc.wants[i].known || a.Reason == "" {
					t.Errorf("%s: %+v, want %+v", ops[i], a, tc.wants[i])
				}
			}
			if tc.name == "read-write key" && !strings.Contains(got[2].Reason, "create on posts: unknown until tried") {
				t.Errorf("write reason %q", got[2].Reason)
			}
			after, _ := json.Marshal(map[string]any{"p": r.fake.Items("posts"), "a": r.fake.Items("authors"), "s": r.fake.Items("settings")})
			if !bytes.Equal(before, after) {
				t.Error("CheckAccess changed content")
			}
		})
	}
}

func TestNameAndSecrets(t *testing.T) {
	r := newRig(t, nil)
	if r.client.Name() != "cockpit" || !slices.Equal(r.client.Secrets(), []string{cockpittest.DemoRWKey}) {
		t.Errorf("%s %v", r.client.Name(), r.client.Secrets())
	}
}
