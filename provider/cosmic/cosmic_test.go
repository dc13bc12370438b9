package cosmic

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
	"github.com/keygate/keygate/provider/cosmic/cosmictest"
	"github.com/keygate/keygate/provider/internal/providertest"
	"github.com/keygate/keygate/tools"
)

var (
	_ tools.ContentStore = (*Client)(nil)
	_ tools.Inspector    = (*Client)(nil)
)

type env = providertest.Env

// fakeEnv is the environment that points at fake.
func fakeEnv(fake *cosmictest.Server) env {
	return env{
		EnvBucketSlug: fake.Bucket(), EnvReadKey: fake.ReadKey(), EnvWriteKey: fake.WriteKey(),
		EnvPAT: fake.PAT(), EnvAgentKey: fake.AgentKey(), EnvAPIURL: fake.APIURL(), EnvDAPIURL: fake.DAPIURL(),
	}
}

// rig is a client wired to a fresh fake on loopback; the client's retries
// do not wait, and are recorded.
type rig struct {
	fake   *cosmictest.Server
	client *Client
	sleeps *providertest.Sleeps
	logs   *providertest.Log
}

// newRig starts a fake and a client configured against it; edit changes the
// environment before LoadConfig.
func newRig(t *testing.T, edit func(env), opts ...cosmictest.Option) *rig {
	t.Helper()
	return newRigVia(t, edit, nil, opts...)
}

// newRigVia is newRig with the fake behind wrap (nil: none), for tests
// that act between two requests of one operation.
func newRigVia(t *testing.T, edit func(env), wrap func(*cosmictest.Server, http.Handler) http.Handler, opts ...cosmictest.Option) *rig {
	t.Helper()
	fake := cosmictest.New(opts...)
	var h http.Handler = fake
	if wrap != nil {
		h = wrap(fake, fake)
	}
	ts := httptest.NewServer(h)
	fake.SetBaseURL(ts.URL)
	t.Cleanup(ts.Close)
	e := fakeEnv(fake)
	if edit != nil {
		edit(e)
	}
	cfg, configured, err := LoadConfig(e.Get)
	if err != nil || !configured {
		t.Fatalf("LoadConfig: configured=%v err=%v", configured, err)
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

func TestLoadConfig(t *testing.T) {
	good := env{EnvBucketSlug: "my-bucket", EnvReadKey: "readkey0123456789abcdef", EnvWriteKey: "writekey0123456789abcdef",
		EnvPAT: "cos_abcdefgh12345678", EnvAgentKey: "agk_abcdefgh12345678"}
	with := good.With
	cpk := "cpk_" + strings.Repeat("ab", 24)
	tests := []struct {
		name    string
		env     env
		wantVar string // "" means no error
		secret  string // must not appear in the error
	}{
		{"complete", good, "", ""},
		{"missing slug", good.Without(EnvBucketSlug), EnvBucketSlug, ""},
		{"bad slug", with(EnvBucketSlug, "a/b"), EnvBucketSlug, ""},
		{"CRLF in read key", with(EnvReadKey, "readkey0123\r\n456789"), EnvReadKey, "readkey0123"},
		{"space in write key", with(EnvWriteKey, "writekey 0123456789"), EnvWriteKey, "writekey"},
		{"NUL in PAT", with(EnvPAT, "cos_abc\x00defgh12345678"), EnvPAT, "cos_abc"},
		{"Cencori key as write key", with(EnvWriteKey, cpk), EnvWriteKey, cpk},
		{"PAT as read key", with(EnvReadKey, "cos_abcdefgh99999999"), EnvReadKey, "cos_abcdefgh99999999"},
		{"agent key as PAT", with(EnvPAT, "agk_abcdefgh12345678"), EnvPAT, "agk_abcdefgh12345678"},
		{"garbage PAT", with(EnvPAT, "notapat-12345678"), EnvPAT, "notapat-12345678"},
		{"garbage agent key", with(EnvAgentKey, "agent-12345678"), EnvAgentKey, "agent-12345678"},
		{"short read key", with(EnvReadKey, "abc"), EnvReadKey, ""},
		{"ftp API URL", with(EnvAPIURL, "ftp://api.example.com/v3"), EnvAPIURL, ""},
		{"API URL with userinfo", with(EnvAPIURL, "https://u:p@api.example.com/v3"), EnvAPIURL, "u:p"},
		{"API URL with query", with(EnvAPIURL, "https://api.example.com/v3?x=1"), EnvAPIURL, ""},
		{"plain http to a remote host", with(EnvDAPIURL, "http://dapi.example.com/v3"), EnvDAPIURL, ""},
		{"plain http to loopback", with(EnvAPIURL, "http://127.0.0.1:9/api/v3/"), "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, configured, err := LoadConfig(tc.env.Get)
			if !configured {
				t.Fatal("configured = false")
			}
			providertest.WantConfigError(t, err, tc.wantVar, tc.secret)
		})
	}

	t.Run("nothing set", func(t *testing.T) {
		_, configured, err := LoadConfig(env{EnvBucketSlug: "b"}.Get)
		if configured || err != nil {
			t.Fatalf("configured=%v err=%v", configured, err)
		}
	})
	t.Run("defaults and sources", func(t *testing.T) {
		cfg, _, err := LoadConfig(good.Get)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.APIURL != DefaultAPIURL || cfg.DAPIURL != DefaultDAPIURL {
			t.Errorf("urls = %s %s", cfg.APIURL, cfg.DAPIURL)
		}
		if cfg.WriteKey.Source != auth.SourceEnv || cfg.WriteKey.Var != EnvWriteKey {
			t.Errorf("write key source = %+v", cfg.WriteKey)
		}
		if s := fmtAll(cfg); strings.Contains(s, "writekey0123456789abcdef") {
			t.Errorf("config prints a secret: %s", s)
		}
	})
	t.Run("PAT alone needs no bucket", func(t *testing.T) {
		_, configured, err := LoadConfig(env{EnvPAT: "cos_abcdefgh12345678"}.Get)
		if !configured || err != nil {
			t.Fatalf("configured=%v err=%v", configured, err)
		}
	})
}

func fmtAll(v any) string {
	b, _ := json.Marshal(v)
	return string(b) + " " + strings.ReplaceAll(strings.TrimSpace(fmtV(v)), "\n", " ")
}

func fmtV(v any) string { return fmt.Sprintf("%+v %#v", v, v) }

func TestNameAndSecrets(t *testing.T) {
	r := newRig(t, nil)
	if r.client.Name() != "cosmic" {
		t.Errorf("Name = %s", r.client.Name())
	}
	got := r.client.Secrets()
	for _, want := range []string{r.fake.ReadKey(), r.fake.WriteKey(), r.fake.PAT(), r.fake.AgentKey()} {
		if !slices.Contains(got, want) {
			t.Errorf("Secrets lacks a configured key")
		}
	}
}

func TestTypes(t *testing.T) {
	r := newRig(t, nil)
	types, err := r.client.Types(providertest.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, ct := range types {
		counts[ct.Name] = ct.Count
	}
	if counts["posts"] != 5 || counts["authors"] != 2 || counts["pages"] != 0 || len(types) != 3 {
		t.Errorf("counts = %v", counts)
	}
	if types[0].Name != "posts" || !slices.Equal(types[0].Fields, []string{"body", "author", "tags", "views"}) || types[0].Description != "Posts" {
		t.Errorf("posts = %+v", types[0])
	}

	empty := newRig(t, nil, cosmictest.WithoutSeed())
	types, err = empty.client.Types(providertest.Context(t))
	if err != nil || len(types) != 0 || types == nil {
		t.Errorf("empty bucket: %v %v", types, err)
	}
}

func ids(p provider.Page) []string {
	var out []string
	for _, o := range p.Objects {
		out = append(out, o.Slug)
	}
	return out
}

func TestList(t *testing.T) {
	r := newRig(t, nil)
	ctx := providertest.Context(t)
	f := func(path string, op provider.Op, v any) provider.Condition {
		return provider.Condition{Path: path, Op: op, Value: v}
	}
	tests := []struct {
		name  string
		q     provider.ListQuery
		want  []string
		total int
	}{
		{"all, newest modified first", provider.ListQuery{Type: "posts"}, []string{"weekly-digest", "release-notes", "second-thoughts", "draft-ideas", "hello-world"}, 5},
		{"published", provider.ListQuery{Type: "posts", Status: "published"}, []string{"release-notes", "second-thoughts", "hello-world"}, 3},
		{"drafts", provider.ListQuery{Type: "posts", Status: "draft"}, []string{"weekly-digest", "draft-ideas"}, 2},
		{"field eq", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("fields.author", provider.OpEq, "ada")}}, []string{"draft-ideas", "hello-world"}, 2},
		{"array field in", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("fields.tags", provider.OpIn, []any{"digest", "opinion"})}}, []string{"weekly-digest", "second-thoughts"}, 2},
		{"range on one path", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("fields.views", provider.OpGt, 10.0), f("fields.views", provider.OpLt, 200.0)}}, []string{"second-thoughts", "hello-world"}, 2},
		{"status condition", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("status", provider.OpNe, "published")}}, []string{"weekly-digest", "draft-ideas"}, 2},
		{"status contradiction", provider.ListQuery{Type: "posts", Status: "draft", Filter: []provider.Condition{f("status", provider.OpEq, "published")}}, nil, 0},
		{"slug", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("slug", provider.OpEq, "release-notes")}}, []string{"release-notes"}, 1},
		{"created_at range", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("created_at", provider.OpGte, "2026-01-06")}, Sort: []provider.SortKey{{Path: "created_at"}}}, []string{"draft-ideas", "release-notes", "weekly-digest"}, 3},
		{"empty type is an empty page, not an error", provider.ListQuery{Type: "pages"}, nil, 0},
		{"no match", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("fields.author", provider.OpEq, "nobody")}}, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := r.client.List(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(p), tc.want) || p.Total != tc.total || p.NextCursor != "" {
				t.Errorf("got %v total %d next %q; want %v total %d", ids(p), p.Total, p.NextCursor, tc.want, tc.total)
			}
			if p.Objects == nil {
				t.Error("Objects is nil")
			}
		})
	}

	t.Run("paging", func(t *testing.T) {
		var got []string
		cursor := ""
		for range 5 {
			p, err := r.client.List(ctx, provider.ListQuery{Type: "posts", Limit: 2, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ids(p)...)
			if p.Total != 5 {
				t.Errorf("total = %d", p.Total)
			}
			if cursor = p.NextCursor; cursor == "" {
				break
			}
		}
		if len(got) != 5 {
			t.Errorf("paged through %v", got)
		}
	})

	t.Run("object mapping", func(t *testing.T) {
		p, err := r.client.List(ctx, provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("slug", provider.OpEq, "hello-world")}})
		if err != nil || len(p.Objects) != 1 {
			t.Fatal(err, p)
		}
		o := p.Objects[0]
		if o.ID != "65a000000000000000000001" || o.Type != "posts" || o.Title != "Hello, world" || o.Status != "published" || o.Version != 0 {
			t.Errorf("object = %+v", o)
		}
		if !o.CreatedAt.Equal(time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC)) || !o.ModifiedAt.Equal(time.Date(2026, 1, 3, 9, 0, 0, 0, time.UTC)) {
			t.Errorf("times = %v %v", o.CreatedAt, o.ModifiedAt)
		}
		var fields map[string]any
		if err := json.Unmarshal(o.Fields, &fields); err != nil || fields["author"] != "ada" || fields["views"] != 120.0 {
			t.Errorf("fields = %s", o.Fields)
		}
	})

	t.Run("wire", func(t *testing.T) {
		before := len(r.fake.Seen())
		_, err := r.client.List(ctx, provider.ListQuery{Type: "posts", Status: "published", Limit: 3, Cursor: "1",
			Filter: []provider.Condition{f("fields.author", provider.OpEq, "ada"), f("title", provider.OpNe, "x")}})
		if err != nil {
			t.Fatal(err)
		}
		req := r.fake.Seen()[before]
		q := req.Query
		if q.Get("read_key") != r.fake.ReadKey() || req.Header.Get("Authorization") != "" {
			t.Errorf("read key not sent as read_key only: %v", q)
		}
		var query map[string]any
		if err := json.Unmarshal([]byte(q.Get("query")), &query); err != nil {
			t.Fatal(err)
		}
		if query["type"] != "posts" || query["metadata.author"] != "ada" || query["title"].(map[string]any)["$ne"] != "x" {
			t.Errorf("query = %v", query)
		}
		if q.Get("limit") != "3" || q.Get("skip") != "1" || q.Get("status") != "published" || q.Get("sort") != "-modified_at" {
			t.Errorf("params = %v", q)
		}
		if !strings.Contains(q.Get("props"), "metadata") {
			t.Errorf("props = %s", q.Get("props"))
		}
	})

	refusals := []struct {
		name, field string
		q           provider.ListQuery
	}{
		{"version filter", "filter", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("version", provider.OpEq, 1.0)}}},
		{"version sort", "sort", provider.ListQuery{Type: "posts", Sort: []provider.SortKey{{Path: "version"}}}},
		{"title sort", "sort", provider.ListQuery{Type: "posts", Sort: []provider.SortKey{{Path: "title"}}}},
		{"two sort keys", "sort", provider.ListQuery{Type: "posts", Sort: []provider.SortKey{{Path: "created_at"}, {Path: "modified_at"}}}},
		{"status range", "filter", provider.ListQuery{Type: "posts", Filter: []provider.Condition{f("status", provider.OpGt, "a")}}},
		{"bad cursor", "cursor", provider.ListQuery{Type: "posts", Cursor: "x"}},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			before := len(r.fake.Seen())
			_, err := r.client.List(ctx, tc.q)
			var fe *provider.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("err = %v, want FieldError on %s", err, tc.field)
			}
			if len(r.fake.Seen()) != before {
				t.Error("a refused query reached Cosmic")
			}
		})
	}

	t.Run("unknown type", func(t *testing.T) {
		_, err := r.client.List(ctx, provider.ListQuery{Type: "nosuch"})
		var nf *provider.NotFoundError
		if !errors.As(err, &nf) || nf.What != "content type" || nf.Name != "nosuch" {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestGet(t *testing.T) {
	r := newRig(t, nil)
	ctx := providertest.Context(t)
	tests := []struct {
		name     string
		typ      string
		ref      provider.Ref
		wantSlug string
		notFound string // "object", "content type" or ""
	}{
		{"by id", "posts", provider.Ref{ID: "65a000000000000000000002"}, "second-thoughts", ""},
		{"draft by id", "posts", provider.Ref{ID: "65a000000000000000000003"}, "draft-ideas", ""},
		{"by slug", "posts", provider.Ref{Slug: "weekly-digest"}, "weekly-digest", ""},
		{"missing id", "posts", provider.Ref{ID: "65a0000000000000000000ff"}, "", "object"},
		{"id of another type", "posts", provider.Ref{ID: "65a000000000000000000011"}, "", "object"},
		{"missing slug", "posts", provider.Ref{Slug: "nope"}, "", "object"},
		{"slug in unknown type", "nosuch", provider.Ref{Slug: "x"}, "", "content type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := r.client.Get(ctx, tc.typ, tc.ref)
			if tc.notFound != "" {
				var nf *provider.NotFoundError
				if !errors.As(err, &nf) || nf.What != tc.notFound {
					t.Fatalf("err = %v, want not found %s", err, tc.notFound)
				}
				return
			}
			if err != nil || o.Slug != tc.wantSlug || o.Type != tc.typ {
				t.Fatalf("got %+v, %v", o, err)
			}
		})
	}
	_, err := r.client.Get(ctx, "posts", provider.Ref{ID: "a", Slug: "b"})
	var fe *provider.FieldError
	if !errors.As(err, &fe) {
		t.Errorf("both id and slug: %v", err)
	}
}

func TestCreate(t *testing.T) {
	r := newRig(t, nil)
	ctx := providertest.Context(t)
	o, err := r.client.Create(ctx, provider.NewObject{Type: "posts", Title: "Fresh", Slug: "fresh", Status: "draft",
		Fields: json.RawMessage(`{"body":"<p>hi</p>","views":3}`)})
	if err != nil {
		t.Fatal(err)
	}
	if o.ID == "" || o.Slug != "fresh" || o.Status != "draft" || o.Type != "posts" || o.CreatedAt.IsZero() {
		t.Errorf("created %+v", o)
	}
	stored, ok := r.fake.Object(o.ID)
	if !ok || stored.Metadata["body"] != "<p>hi</p>" || stored.Title != "Fresh" {
		t.Errorf("stored %+v", stored)
	}
	var post *cosmictest.Request
	for _, req := range r.fake.Seen() {
		if req.Method == http.MethodPost {
			post = &req
		}
	}
	if post == nil || post.Header.Get("Authorization") != "Bearer "+r.fake.WriteKey() || post.Query.Get("read_key") != "" {
		t.Fatalf("POST credentials wrong: %+v", post)
	}
	var body map[string]any
	_ = json.Unmarshal([]byte(post.Body), &body)
	if body["type"] != "posts" || body["status"] != "draft" || body["metadata"].(map[string]any)["views"] != 3.0 {
		t.Errorf("body = %s", post.Body)
	}

	errs := []struct {
		name  string
		n     provider.NewObject
		check func(error) bool
	}{
		{"duplicate slug", provider.NewObject{Type: "posts", Title: "Again", Slug: "hello-world", Status: "draft", Fields: json.RawMessage(`{}`)},
			func(err error) bool { var fe *provider.FieldError; return errors.As(err, &fe) && fe.Field == "slug" }},
		{"unknown type", provider.NewObject{Type: "nosuch", Title: "X", Slug: "x", Status: "draft", Fields: json.RawMessage(`{}`)},
			func(err error) bool {
				var nf *provider.NotFoundError
				return errors.As(err, &nf) && nf.What == "content type"
			}},
		{"metafield validation", provider.NewObject{Type: "authors", Title: "Nobody", Slug: "nobody", Status: "draft", Fields: json.RawMessage(`{"bio":"x"}`)},
			func(err error) bool {
				var fe *provider.FieldError
				return errors.As(err, &fe) && fe.Field == "fields" && strings.Contains(fe.Problem, "email")
			}},
		{"fields not an object", provider.NewObject{Type: "posts", Title: "X", Slug: "x", Status: "draft", Fields: json.RawMessage(`[1]`)},
			func(err error) bool { var fe *provider.FieldError; return errors.As(err, &fe) && fe.Field == "fields" }},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			n := len(r.fake.Objects(""))
			_, err := r.client.Create(ctx, tc.n)
			if !tc.check(err) {
				t.Fatalf("err = %v", err)
			}
			if len(r.fake.Objects("")) != n {
				t.Error("an object was created")
			}
		})
	}

	t.Run("no write key", func(t *testing.T) {
		ro := newRig(t, func(e env) { delete(e, EnvWriteKey) })
		_, err := ro.client.Create(ctx, provider.NewObject{Type: "posts", Title: "X", Slug: "x", Status: "draft"})
		if !errors.Is(err, provider.ErrPermission) || !strings.Contains(err.Error(), EnvWriteKey) {
			t.Fatalf("err = %v", err)
		}
		for _, req := range ro.fake.Seen() {
			if req.Method != http.MethodGet {
				t.Errorf("a %s was sent without a write key", req.Method)
			}
		}
	})

	t.Run("answer lost but created", func(t *testing.T) {
		r.fake.DropAnswerTo(http.MethodPost, "/objects")
		o, err := r.client.Create(ctx, provider.NewObject{Type: "posts", Title: "Lost", Slug: "lost", Status: "published", Fields: json.RawMessage(`{}`)})
		if err != nil || o.Slug != "lost" || o.ID == "" {
			t.Fatalf("got %+v, %v", o, err)
		}
	})
}

func TestUpdate(t *testing.T) {
	r := newRig(t, nil)
	ctx := providertest.Context(t)
	id := "65a000000000000000000001"
	title := "Hello again"
	o, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: id, Title: &title,
		Fields: json.RawMessage(`{"author":"grace","extra":{"a":1}}`)})
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	_ = json.Unmarshal(o.Fields, &fields)
	if o.Title != title || fields["author"] != "grace" || fields["body"] != "<p>The first post.</p>" || fields["views"] != 120.0 {
		t.Errorf("updated %+v", o)
	}
	stored, _ := r.fake.Object(id)
	if stored.Metadata["author"] != "grace" || stored.Metadata["tags"] == nil || stored.Slug != "hello-world" {
		t.Errorf("stored %+v", stored)
	}
	if body := lastPatch(t, r); !jsonEqual(body, map[string]any{"title": title, "metadata": map[string]any{"author": "grace", "extra": map[string]any{"a": 1}}}) {
		t.Errorf("PATCH body %v", body)
	}

	t.Run("a value is replaced whole", func(t *testing.T) {
		o, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: id, Fields: json.RawMessage(`{"extra":{"b":2}}`)})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(o.Fields), `"extra":{"b":2}`) {
			t.Errorf("fields = %s", o.Fields)
		}
	})

	t.Run("empty fields sends nothing", func(t *testing.T) {
		before := len(r.fake.Seen())
		o, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: id, Fields: json.RawMessage(`{}`)})
		if err != nil || o.ID != id {
			t.Fatalf("%+v %v", o, err)
		}
		for _, req := range r.fake.Seen()[before:] {
			if req.Method != http.MethodGet {
				t.Errorf("a %s was sent", req.Method)
			}
		}
	})

	t.Run("expected_version refused without a write", func(t *testing.T) {
		v := int64(1)
		before := len(r.fake.Seen())
		_, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: id, Title: &title, ExpectedVersion: &v})
		var fe *provider.FieldError
		if !errors.As(err, &fe) || fe.Field != "expected_version" || !strings.Contains(fe.Problem, "no object versions") {
			t.Fatalf("err = %v", err)
		}
		if len(r.fake.Seen()) != before {
			t.Error("requests were sent")
		}
	})

	t.Run("missing object", func(t *testing.T) {
		_, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: "65a0000000000000000000ff", Title: &title})
		var nf *provider.NotFoundError
		if !errors.As(err, &nf) || nf.What != "object" {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("slug taken", func(t *testing.T) {
		slug := "release-notes"
		_, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: id, Slug: &slug})
		var fe *provider.FieldError
		if !errors.As(err, &fe) || fe.Field != "slug" {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("status", func(t *testing.T) {
		st := "draft"
		o, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: id, Status: &st})
		if err != nil || o.Status != "draft" {
			t.Fatalf("%+v %v", o, err)
		}
	})

	t.Run("answer lost but applied", func(t *testing.T) {
		nt := "Lost answer"
		r.fake.DropAnswerTo(http.MethodPatch, "/objects/"+id)
		o, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: id, Title: &nt})
		if err != nil || o.Title != nt {
			t.Fatalf("%+v %v", o, err)
		}
	})

	t.Run("a failed PATCH is reported, not retried", func(t *testing.T) {
		nt := "Never stored"
		r.fake.FailNextRequest(http.MethodPatch, "/objects/"+id, http.StatusBadGateway, nil, "")
		_, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: id, Title: &nt})
		if !errors.Is(err, provider.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
		if r.fake.Requests(r.fake.BucketPath("/objects/"+id)) == 0 {
			t.Fatal("no request")
		}
		stored, _ := r.fake.Object(id)
		if stored.Title == nt {
			t.Error("title changed")
		}
	})
}

func TestDelete(t *testing.T) {
	r := newRig(t, nil)
	ctx := providertest.Context(t)
	o, err := r.client.Delete(ctx, "posts", "65a000000000000000000002")
	if err != nil || o.Slug != "second-thoughts" {
		t.Fatalf("%+v %v", o, err)
	}
	if _, ok := r.fake.Object("65a000000000000000000002"); ok {
		t.Error("still stored")
	}
	for _, tc := range []struct{ name, typ, id string }{
		{"already gone", "posts", "65a000000000000000000002"},
		{"another type's id", "posts", "65a000000000000000000011"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := r.fake.BucketPath("/objects/" + tc.id)
			_, err := r.client.Delete(ctx, tc.typ, tc.id)
			var nf *provider.NotFoundError
			if !errors.As(err, &nf) || nf.What != "object" {
				t.Fatalf("err = %v", err)
			}
			for _, req := range r.fake.Seen() {
				if req.Method == http.MethodDelete && req.Path == path && tc.name != "already gone" {
					t.Error("DELETE sent")
				}
			}
		})
	}
	if _, ok := r.fake.Object("65a000000000000000000011"); !ok {
		t.Error("the author was deleted")
	}
	t.Run("answer lost but deleted", func(t *testing.T) {
		r.fake.DropAnswerTo(http.MethodDelete, "/objects/65a000000000000000000004")
		o, err := r.client.Delete(ctx, "posts", "65a000000000000000000004")
		if err != nil || o.Slug != "release-notes" {
			t.Fatalf("%+v %v", o, err)
		}
	})
	t.Run("200 Route not found is not a success", func(t *testing.T) {
		r.fake.FailNextRequest(http.MethodDelete, "", 200, nil, `{"message":"Route not found"}`)
		_, err := r.client.Delete(ctx, "posts", "65a000000000000000000001")
		if err == nil || !strings.Contains(err.Error(), "Route not found") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestErrorStatuses(t *testing.T) {
	r := newRig(t, nil)
	ctx := providertest.Context(t)
	tests := []struct {
		status int
		body   string
		kind   error
	}{
		{401, `{"status":401,"message":"Unauthorized"}`, provider.ErrUnauthorized},
		{403, `{"status":403,"message":"Forbidden"}`, provider.ErrPermission},
		{402, `{"status":402,"message":"Upgrade required"}`, provider.ErrPermission},
		{500, `{"status":500,"message":"boom"}`, provider.ErrUnavailable},
		{404, `{"status":404,"message":"bucket with slug: 'x' not found"}`, provider.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			r.fake.FailNext(tc.status, map[string]string{"X-Request-Id": "req-1"}, tc.body)
			_, err := r.client.List(ctx, provider.ListQuery{Type: "posts"})
			var ue *provider.UpstreamError
			if !errors.As(err, &ue) || !errors.Is(err, tc.kind) || ue.Status != tc.status || ue.RequestID != "req-1" || ue.Provider != "cosmic" {
				t.Fatalf("err = %#v", err)
			}
		})
	}

	t.Run("wrong read key", func(t *testing.T) {
		bad := newRig(t, func(e env) { e[EnvReadKey] = "wrongreadkey123456789" })
		_, err := bad.client.Get(ctx, "posts", provider.Ref{ID: "65a000000000000000000001"})
		if !errors.Is(err, provider.ErrUnauthorized) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("wrong write key", func(t *testing.T) {
		bad := newRig(t, func(e env) { e[EnvWriteKey] = "wrongwritekey123456789" })
		_, err := bad.client.Delete(ctx, "posts", "65a000000000000000000001")
		if !errors.Is(err, provider.ErrUnauthorized) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("unknown bucket", func(t *testing.T) {
		bad := newRig(t, func(e env) { e[EnvBucketSlug] = "other-bucket" })
		_, err := bad.client.List(ctx, provider.ListQuery{Type: "posts"})
		if !errors.Is(err, provider.ErrNotFound) || !strings.Contains(err.Error(), "bucket") {
			t.Fatalf("err = %v", err)
		}
		var nf *provider.NotFoundError
		if errors.As(err, &nf) {
			t.Error("a missing bucket passed for a missing object")
		}
	})
	t.Run("API URL pointing at dapi: Route not found", func(t *testing.T) {
		bad := newRig(t, func(e env) { e[EnvAPIURL] = e[EnvDAPIURL] })
		_, err := bad.client.List(ctx, provider.ListQuery{Type: "posts"})
		if !errors.Is(err, provider.ErrUnavailable) || !strings.Contains(err.Error(), "Route not found") || !strings.Contains(err.Error(), EnvAPIURL) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		c, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := r.client.List(c, provider.ListQuery{Type: "posts"})
		if !errors.Is(err, provider.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestRetries(t *testing.T) {
	ctx := providertest.Context(t)
	t.Run("5xx on a GET is retried", func(t *testing.T) {
		r := newRig(t, nil)
		r.fake.FailNext(http.StatusServiceUnavailable, nil, `{"status":503,"message":"busy"}`)
		p, err := r.client.List(ctx, provider.ListQuery{Type: "posts"})
		if err != nil || p.Total != 5 {
			t.Fatalf("%v %v", p, err)
		}
		if n := r.fake.Requests(r.fake.BucketPath("/objects")); n != 2 {
			t.Errorf("%d requests", n)
		}
	})
	t.Run("a POST is never retried", func(t *testing.T) {
		r := newRig(t, nil)
		r.fake.FailNextRequest(http.MethodPost, "/objects", http.StatusServiceUnavailable, map[string]string{"Retry-After": "0"}, `{"status":503,"message":"busy"}`)
		_, err := r.client.Create(ctx, provider.NewObject{Type: "posts", Title: "Once", Slug: "once", Status: "draft", Fields: json.RawMessage(`{}`)})
		if !errors.Is(err, provider.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
		posts := 0
		for _, req := range r.fake.Seen() {
			if req.Method == http.MethodPost {
				posts++
			}
		}
		if posts != 1 || len(r.sleeps.All()) != 0 {
			t.Errorf("%d POSTs, sleeps %v", posts, r.sleeps.All())
		}
	})
	t.Run("429 honours Retry-After", func(t *testing.T) {
		r := newRig(t, nil)
		r.fake.FailNext(http.StatusTooManyRequests, map[string]string{"Retry-After": "2"}, `{"status":429,"message":"Too many requests"}`)
		p, err := r.client.List(ctx, provider.ListQuery{Type: "posts"})
		if err != nil || p.Total != 5 {
			t.Fatalf("%v %v", p, err)
		}
		if !slices.Equal(r.sleeps.All(), []time.Duration{2 * time.Second}) {
			t.Errorf("sleeps = %v; the retry must wait Retry-After before the second request", r.sleeps.All())
		}
	})
	t.Run("429 past the deadline", func(t *testing.T) {
		r := newRig(t, nil)
		r.fake.FailNext(http.StatusTooManyRequests, map[string]string{"Retry-After": "30"}, `{"status":429,"message":"Too many requests"}`)
		short, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := r.client.List(short, provider.ListQuery{Type: "posts"})
		var ue *provider.UpstreamError
		if !errors.As(err, &ue) || !errors.Is(err, provider.ErrRateLimited) || ue.RetryAfter != 30*time.Second {
			t.Fatalf("err = %#v", err)
		}
		if n := r.fake.Requests(r.fake.BucketPath("/objects")); n != 1 || len(r.sleeps.All()) != 0 {
			t.Errorf("%d requests, sleeps %v", n, r.sleeps.All())
		}
	})
}

func TestResponseLimits(t *testing.T) {
	ctx := providertest.Context(t)
	t.Run("body over the cap", func(t *testing.T) {
		r := newRig(t, nil)
		r.fake.FailNext(200, nil, `{"objects":["`+strings.Repeat("x", 5<<20)+`"]}`)
		_, err := r.client.List(ctx, provider.ListQuery{Type: "posts"})
		if !errors.Is(err, provider.ErrUnavailable) || !strings.Contains(err.Error(), "too large") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cross-host redirect refused", func(t *testing.T) {
		var hits int
		var mu sync.Mutex
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			mu.Lock()
			hits++
			mu.Unlock()
		}))
		defer other.Close()
		u, _ := url.Parse(other.URL)
		elsewhere := "http://localhost:" + u.Port() + "/steal"
		r := newRig(t, nil)
		r.fake.FailNextRequest(http.MethodDelete, "", http.StatusFound, map[string]string{"Location": elsewhere}, "")
		_, err := r.client.Delete(ctx, "posts", "65a000000000000000000001")
		if err == nil {
			t.Fatal("redirect followed")
		}
		mu.Lock()
		defer mu.Unlock()
		if hits != 0 {
			t.Errorf("the other host got %d requests", hits)
		}
		if strings.Contains(err.Error(), r.fake.ReadKey()) {
			t.Error("error carries the read key")
		}
	})
}

// TestCanary plants the configured secrets and key-shaped strings in every
// kind of upstream answer and checks that no error or description returned
// by the adapter, and no log line, carries a configured secret.
func TestCanary(t *testing.T) {
	ctx := providertest.Context(t)
	r := newRig(t, nil)
	secrets := r.client.Secrets()
	planted := "leak " + strings.Join(secrets, " ") + " cos_OtherTokenABCDEFGH csk_" + strings.Repeat("ab", 24) + " " + url.QueryEscape(r.fake.ReadKey())
	bodies := []struct {
		status int
		body   string
	}{
		{401, `{"status":401,"message":"` + planted + `"}`},
		{400, `{"status":400,"message":"` + planted + `"}`},
		{429, `{"status":429,"message":"` + planted + `"}`},
		{500, `{"status":500,"message":"` + planted + `","code":"` + secrets[1] + `"}`},
		{502, planted},
		{200, `{"objects":"` + planted + `"}`},
		{200, `not json ` + planted},
	}
	check := func(what, s string) {
		t.Helper()
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Errorf("%s carries a configured secret: %s", what, s)
			}
		}
		if strings.Contains(s, "cos_OtherTokenABCDEFGH") || strings.Contains(s, "csk_abab") {
			t.Errorf("%s carries a key-shaped string: %s", what, s)
		}
	}
	for _, b := range bodies {
		calls := map[string]func() error{
			"list": func() error { _, err := r.client.List(ctx, provider.ListQuery{Type: "posts"}); return err },
			"create": func() error {
				_, err := r.client.Create(ctx, provider.NewObject{Type: "posts", Title: "C", Slug: "canary", Status: "draft"})
				return err
			},
		}
		for name, call := range calls {
			for range 3 { // enough failures for the retries too
				r.fake.FailNext(b.status, map[string]string{"X-Request-Id": secrets[0]}, b.body)
			}
			err := call()
			if err == nil {
				t.Errorf("%s with %d: no error", name, b.status)
				continue
			}
			check(name, err.Error())
			check(name+" (%#v)", fmt.Sprintf("%#v", err))
			drain(r)
		}
	}
	// Describe reads the agent status, whose body carries the bucket keys.
	d, err := r.client.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(d)
	check("description", string(b))
	// Failing dapi answers.
	r.fake.FailNextRequest("", "/users/get", 401, nil, `{"message":"`+planted+`","code":"unauthorized"}`)
	r.fake.FailNextRequest("", "/agents/status", 500, nil, `{"message":"`+planted+`"}`)
	d, _ = r.client.Describe(ctx)
	b, _ = json.Marshal(d)
	check("failing description", string(b))
	access, _ := r.client.CheckAccess(ctx, provider.ScopeOps([]auth.Scope{{Action: auth.ContentRead}, {Action: auth.ContentWrite}}))
	b, _ = json.Marshal(access)
	check("access", string(b))
	check("logs", r.logs.String())
}

// drain removes queued failures by issuing harmless reads until one
// succeeds.
func drain(r *rig) {
	for range 10 {
		if _, err := r.client.Types(context.Background()); err == nil {
			return
		}
	}
}

func TestDescribe(t *testing.T) {
	ctx := providertest.Context(t)
	t.Run("every credential", func(t *testing.T) {
		r := newRig(t, nil)
		d, err := r.client.Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Reachable || d.Provider != "cosmic" || d.Owner != "Ada Lovelace <ada@example.com>" {
			t.Errorf("description %+v", d)
		}
		want := map[string]string{EnvReadKey: "ok", EnvWriteKey: "ok", EnvPAT: "ok", EnvAgentKey: "ok"}
		for _, cr := range d.Credentials {
			if want[cr.Name] != cr.Verified {
				t.Errorf("%s verified %s (%s)", cr.Name, cr.Verified, cr.Detail)
			}
			if cr.Source != "env" || !strings.Contains(cr.Masked, "…") {
				t.Errorf("%s masked %q source %q", cr.Name, cr.Masked, cr.Source)
			}
			delete(want, cr.Name)
		}
		if len(want) != 0 {
			t.Errorf("missing credentials %v", want)
		}
		agent, _ := d.Details["agent"].(map[string]any)
		if agent["claim_status"] != "unclaimed" || agent["limits"] == nil {
			t.Errorf("agent details %v", d.Details)
		}
		if d.Details["read_works"] != true {
			t.Errorf("read_works = %v", d.Details["read_works"])
		}
		if !slices.ContainsFunc(d.Problems, func(p string) bool { return strings.Contains(p, "unclaimed") }) {
			t.Errorf("problems %v", d.Problems)
		}
		for _, s := range []string{"Bucket Settings > API Access", "Account Settings > API Tokens", "without a restart", "env file"} {
			if !strings.Contains(d.RotateHint, s) {
				t.Errorf("RotateHint lacks %q", s)
			}
		}
	})
	t.Run("rejected PAT and no write key", func(t *testing.T) {
		r := newRig(t, func(e env) { e[EnvPAT] = "cos_revokedToken123456"; delete(e, EnvWriteKey) })
		d, err := r.client.Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, cr := range d.Credentials {
			if cr.Name == EnvPAT && cr.Verified != provider.VerifiedRejected {
				t.Errorf("PAT verified %s", cr.Verified)
			}
		}
		if d.Owner != "agent project 6a0000000000000000000042" {
			t.Errorf("owner %q", d.Owner)
		}
		joined := strings.Join(d.Problems, "\n")
		if !strings.Contains(joined, EnvWriteKey+" is not set") || !strings.Contains(joined, EnvPAT+" was rejected") {
			t.Errorf("problems %v", d.Problems)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		r := newRig(t, func(e env) { e[EnvAPIURL] = "http://127.0.0.1:1/v3"; e[EnvDAPIURL] = "http://127.0.0.1:1/v3" })
		d, err := r.client.Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d.Reachable {
			t.Error("reachable")
		}
		for _, cr := range d.Credentials {
			if cr.Verified != provider.VerifiedUnreachable {
				t.Errorf("%s verified %s", cr.Name, cr.Verified)
			}
		}
	})
	t.Run("claimed agent", func(t *testing.T) {
		r := newRig(t, nil, cosmictest.WithAgentClaimed())
		d, _ := r.client.Describe(ctx)
		if agent, _ := d.Details["agent"].(map[string]any); agent["claim_status"] != "claimed" {
			t.Errorf("agent %v", d.Details["agent"])
		}
	})
}

func TestCheckAccess(t *testing.T) {
	ctx := providertest.Context(t)
	ops := []auth.Scope{
		{Action: auth.ContentRead}, {Action: auth.ContentRead, Type: "posts"}, {Action: auth.ContentRead, Type: "nosuch"},
		{Action: auth.ContentWrite}, {Action: auth.ContentDelete, Type: "posts"}, {Action: auth.CredentialsWrite}, {Action: auth.Admin},
	}
	type want struct{ allowed, known bool }
	tests := []struct {
		name  string
		edit  func(env)
		wants []want
	}{
		{"all keys", nil, []want{{true, true}, {true, true}, {false, true}, {true, true}, {true, true}, {false, true}, {false, true}}},
		{"read key only", func(e env) { delete(e, EnvWriteKey) }, []want{{true, true}, {true, true}, {false, true}, {false, true}, {false, true}, {false, true}, {false, true}}},
		{"bad keys", func(e env) { e[EnvReadKey] = "badreadkey123456789"; e[EnvWriteKey] = "badwritekey123456789" },
			[]want{{false, true}, {false, true}, {false, true}, {false, true}, {false, true}, {false, true}, {false, true}}},
		{"unreachable", func(e env) { e[EnvAPIURL] = "http://127.0.0.1:1/v3" },
			[]want{{false, false}, {false, false}, {false, false}, {false, false}, {false, false}, {false, true}, {false, true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.edit)
			got, err := r.client.CheckAccess(ctx, provider.ScopeOps(ops))
			if err != nil || len(got) != len(ops) {
				t.Fatal(got, err)
			}
			for i, a := range got {
				if a.Operation != ops[i].String() || a.Allowed != tc.wants[i].allowed || a.Known != tc.wants[i].known || a.Reason == "" {
					t.Errorf("%s: %+v, want %+v", ops[i], a, tc.wants[i])
				}
			}
			if tc.name == "read key only" && !strings.Contains(got[3].Reason, EnvWriteKey) {
				t.Errorf("reason %q", got[3].Reason)
			}
			for _, req := range r.fake.Seen() {
				if req.Method == http.MethodPost || req.Method == http.MethodDelete {
					t.Errorf("CheckAccess sent a %s", req.Method)
				}
			}
		})
	}
	t.Run("changes nothing", func(t *testing.T) {
		r := newRig(t, nil)
		before := r.fake.Objects("")
		if _, err := r.client.CheckAccess(ctx, provider.ScopeOps(ops)); err != nil {
			t.Fatal(err)
		}
		if after := r.fake.Objects(""); !jsonEqual(before, after) {
			t.Error("CheckAccess changed content")
		}
	})
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestNoBucket(t *testing.T) {
	cfg, _, err := LoadConfig(env{EnvPAT: "cos_abcdefgh12345678"}.Get)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.List(context.Background(), provider.ListQuery{Type: "posts"})
	if !errors.Is(err, provider.ErrUnsupported) || !strings.Contains(err.Error(), EnvBucketSlug) {
		t.Fatalf("err = %v", err)
	}
}
