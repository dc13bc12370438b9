package cencori

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/cencori/cencoritest"
	"github.com/keygate/keygate/provider/internal/providertest"
)

func TestTypes(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	types, err := f.c.Types(t.Context())
	if err != nil || len(types) != 1 || types[0].Name != "memories" || types[0].Count != -1 || !strings.Contains(types[0].Description, "query") {
		t.Fatalf("%+v %v", types, err)
	}
	if f.fake.Requests("/v1/memory/list") != 1 {
		t.Errorf("Types checked memory with %d requests, want 1", f.fake.Requests("/v1/memory/list"))
	}
	// Any failure but the gating is left to the calls that follow.
	for range 3 {
		f.fake.FailNextOn("GET", "/v1/memory/list", 503, nil, `{"error":"x"}`)
	}
	if types, err := f.c.Types(t.Context()); err != nil || len(types) != 1 {
		t.Fatalf("with the check failing: %+v %v", types, err)
	}
}

func TestListPagesNewestFirst(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	ctx := t.Context()
	var made []string
	for i := range 5 {
		o, err := f.c.Create(ctx, provider.NewObject{Type: "memories", Title: fmt.Sprintf("note %d", i), Fields: json.RawMessage(`{"userId":"pager"}`)})
		if err != nil {
			t.Fatal(err)
		}
		made = append([]string{o.ID}, made...)
	}
	q := provider.ListQuery{Type: "memories", Limit: 2, Filter: []provider.Condition{providertest.Eq("fields.userId", "pager")}}
	var got []string
	for page := 0; ; page++ {
		p, err := f.c.List(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != -1 {
			t.Errorf("page %d: Total %d, want -1 (unknown) on a paged list", page, p.Total)
		}
		for _, o := range p.Objects {
			got = append(got, o.ID)
			if o.Status != "published" || o.Slug != o.ID || o.Type != "memories" || o.CreatedAt.IsZero() || !o.ModifiedAt.Equal(o.CreatedAt) {
				t.Errorf("object %+v", o)
			}
		}
		if p.NextCursor == "" {
			break
		}
		q.Cursor = p.NextCursor
	}
	if strings.Join(got, ",") != strings.Join(made, ",") {
		t.Errorf("listed %v, want %v", got, made)
	}
	// One page that holds everything knows its total.
	p, err := f.c.List(ctx, provider.ListQuery{Type: "memories", Limit: 10})
	if err != nil || p.Total != 3 || len(p.Objects) != 3 || p.NextCursor != "" {
		t.Fatalf("seeded list: %+v %v", p, err)
	}
	if p.Objects[0].Title != "The launch of the docs site is planned for the first week of March." {
		t.Errorf("title %q", p.Objects[0].Title)
	}
	// Namespace narrows.
	p, err = f.c.List(ctx, provider.ListQuery{Type: "memories", Limit: 10, Filter: []provider.Condition{providertest.Eq("fields.namespace", "projects")}})
	if err != nil || len(p.Objects) != 1 || providertest.FieldsOf(t, p.Objects[0])["namespace"] != "projects" {
		t.Fatalf("namespace: %+v %v", p, err)
	}
	// No memory is a draft.
	p, err = f.c.List(ctx, provider.ListQuery{Type: "memories", Limit: 10, Status: "draft"})
	if err != nil || len(p.Objects) != 0 || p.Total != 0 {
		t.Fatalf("drafts: %+v %v", p, err)
	}
	p, err = f.c.List(ctx, provider.ListQuery{Type: "memories", Limit: 10, Sort: []provider.SortKey{{Path: "created_at", Desc: true}}})
	if err != nil || len(p.Objects) != 3 {
		t.Fatalf("-created_at: %+v %v", p, err)
	}
}

func TestListQueryIsSemanticSearch(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	for _, path := range []string{"fields.query", "query"} {
		p, err := f.c.List(t.Context(), provider.ListQuery{Type: "memories", Limit: 5, Filter: []provider.Condition{providertest.Eq(path, "keygate MCP server")}})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Objects) != 1 || p.NextCursor != "" || p.Total != 1 {
			t.Fatalf("%s: %+v", path, p)
		}
		fl := providertest.FieldsOf(t, p.Objects[0])
		if fl["score"] == nil || !strings.Contains(fl["content"].(string), "MCP server") {
			t.Errorf("hit fields %v", fl)
		}
	}
	if f.fake.Requests("/v1/memory/search") != 2 || f.fake.Requests("/v1/memory/list") != 0 {
		t.Errorf("search %d list %d", f.fake.Requests("/v1/memory/search"), f.fake.Requests("/v1/memory/list"))
	}
	_, err := f.c.List(t.Context(), provider.ListQuery{Type: "memories", Limit: 5, Cursor: "x", Filter: []provider.Condition{providertest.Eq("query", "x")}})
	providertest.WantFieldError(t, err, "cursor")
}

func TestListRefusals(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	cases := []struct {
		name  string
		q     provider.ListQuery
		field string
	}{
		{"unknown path", provider.ListQuery{Filter: []provider.Condition{providertest.Eq("fields.author", "x")}}, "filter"},
		{"built-in path", provider.ListQuery{Filter: []provider.Condition{providertest.Eq("title", "x")}}, "filter"},
		{"operator", provider.ListQuery{Filter: []provider.Condition{{Path: "fields.namespace", Op: provider.OpNe, Value: "x"}}}, "filter"},
		{"number", provider.ListQuery{Filter: []provider.Condition{providertest.Eq("fields.query", 3.0)}}, "filter"},
		{"both ids", provider.ListQuery{Filter: []provider.Condition{providertest.Eq("fields.sessionId", "s"), providertest.Eq("fields.userId", "u")}}, "filter"},
		{"bad scope", provider.ListQuery{Filter: []provider.Condition{providertest.Eq("fields.scope", "org")}}, "filter"},
		{"session scope without id", provider.ListQuery{Filter: []provider.Condition{providertest.Eq("fields.scope", "session")}}, "filter"},
		{"sort by title", provider.ListQuery{Sort: []provider.SortKey{{Path: "title"}}}, "sort"},
		{"oldest first", provider.ListQuery{Sort: []provider.SortKey{{Path: "created_at"}}}, "sort"},
		{"sorted search", provider.ListQuery{Filter: []provider.Condition{providertest.Eq("query", "x")}, Sort: []provider.SortKey{{Path: "created_at", Desc: true}}}, "sort"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Type, tc.q.Limit = "memories", 10
			_, err := f.c.List(t.Context(), tc.q)
			providertest.WantFieldError(t, err, tc.field)
		})
	}
	_, err := f.c.List(t.Context(), provider.ListQuery{Type: "posts", Limit: 1})
	providertest.WantNotFound(t, err, "content type")
	if f.fake.TotalRequests() != 0 {
		t.Errorf("refusals made %d requests", f.fake.TotalRequests())
	}
}

func TestGet(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	ctx := t.Context()
	o, err := f.c.Get(ctx, "memories", provider.Ref{ID: cencoritest.SeedMemory2})
	if err != nil || o.ID != cencoritest.SeedMemory2 || !strings.HasPrefix(o.Title, "keygate is an MCP server") {
		t.Fatalf("%+v %v", o, err)
	}
	fl := providertest.FieldsOf(t, o)
	if fl["scope"] != "user" || fl["scopeKey"] != "keygate" || fl["namespace"] != nil || fl["metadata"].(map[string]any)["source"] != "seed" {
		t.Errorf("fields %v", fl)
	}
	if _, has := fl["id"]; has {
		t.Error("id kept in fields")
	}
	bySlug, err := f.c.Get(ctx, "memories", provider.Ref{Slug: cencoritest.SeedMemory2})
	if err != nil || bySlug.ID != o.ID {
		t.Fatalf("by slug: %v", err)
	}
	_, err = f.c.Get(ctx, "memories", provider.Ref{ID: "mem_nope"})
	providertest.WantNotFound(t, err, "object")
	before := f.fake.TotalRequests()
	for _, bad := range []string{"../metrics", "a/b", "", strings.Repeat("x", 200)} {
		_, err = f.c.Get(ctx, "memories", provider.Ref{ID: bad})
		providertest.WantNotFound(t, err, "object")
	}
	if f.fake.TotalRequests() != before {
		t.Error("a malformed id was sent")
	}
	_, err = f.c.Get(ctx, "posts", provider.Ref{ID: cencoritest.SeedMemory2})
	providertest.WantNotFound(t, err, "content type")
}

func TestCreate(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	ctx := t.Context()
	o, err := f.c.Create(ctx, provider.NewObject{Type: "memories", Title: "Contact preference", Slug: "contact-preference", Status: "draft",
		Fields: json.RawMessage(`{"content":"Reach the user at someone@example.com","importance":0.9,"metadata":{"topic":"contact"},"namespace":"people","expiresAt":"2099-01-01T00:00:00Z"}`)})
	if err != nil {
		t.Fatal(err)
	}
	fl := providertest.FieldsOf(t, o)
	// The write's answer redacts the content; the read-back has the real text.
	if fl["content"] != "Reach the user at someone@example.com" || fl["importance"] != 0.9 || fl["namespace"] != "people" || fl["scopeKey"] != "keygate" {
		t.Errorf("fields %v", fl)
	}
	meta := fl["metadata"].(map[string]any)
	if meta["topic"] != "contact" || meta["title"] != "Contact preference" || o.Title != "Contact preference" {
		t.Errorf("metadata %v title %q", meta, o.Title)
	}
	if o.Status != "published" || o.Slug != o.ID {
		t.Errorf("status %s slug %s", o.Status, o.Slug)
	}
	if f.fake.Requests("/v1/memory/write") != 1 || f.fake.Requests("/v1/memory/"+o.ID) != 1 {
		t.Errorf("write %d read-back %d", f.fake.Requests("/v1/memory/write"), f.fake.Requests("/v1/memory/"+o.ID))
	}
	// Title only: the title is the content, and no metadata is invented
	// (what is stored is only what Cencori's write adds).
	o, err = f.c.Create(ctx, provider.NewObject{Type: "memories", Title: "Prefers tea", Fields: json.RawMessage(`{"userId":"u-1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := f.fake.Memory(o.ID)
	if m.Content != "Prefers tea" || m.Metadata["title"] != nil || len(m.Metadata) != 4 || m.Scope != "user" || m.ScopeKey != "u-1" || o.Title != "Prefers tea" {
		t.Errorf("stored %+v, title %q", m, o.Title)
	}
}

func TestCreateRefusals(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	cases := []struct {
		fields string
		field  string
	}{
		{`{"author":"x"}`, "fields.author"},
		{`{"content":3}`, "fields.content"},
		{`{"importance":2}`, "fields.importance"},
		{`{"importance":"high"}`, "fields.importance"},
		{`{"expiresAt":"2001-01-01T00:00:00Z"}`, "fields.expiresAt"},
		{`{"expiresAt":"tomorrow"}`, "fields.expiresAt"},
		{`{"metadata":[1]}`, "fields.metadata"},
		{`{"userId":"u","sessionId":"s"}`, "fields.sessionId"},
		{`{"scope":"org"}`, "fields.scope"},
		{`{"scope":"session"}`, "fields.sessionId"},
		{`[1]`, "fields"},
	}
	for _, tc := range cases {
		t.Run(tc.fields, func(t *testing.T) {
			_, err := f.c.Create(t.Context(), provider.NewObject{Type: "memories", Title: "x", Fields: json.RawMessage(tc.fields)})
			providertest.WantFieldError(t, err, tc.field)
		})
	}
	_, err := f.c.Create(t.Context(), provider.NewObject{Type: "memories", Title: " ", Fields: json.RawMessage(`{}`)})
	providertest.WantFieldError(t, err, "fields.content")
	if f.fake.TotalRequests() != 0 {
		t.Errorf("refusals made %d requests", f.fake.TotalRequests())
	}
	// What only the server catches comes back naming the field.
	f.fake.FailNextOn("POST", "/v1/memory/write", 400, nil, `{"error":"bad_request","message":"content is too long"}`)
	_, err = f.c.Create(t.Context(), provider.NewObject{Type: "memories", Title: "x", Fields: json.RawMessage(`{}`)})
	providertest.WantFieldError(t, err, "fields.content")
	_, err = f.c.Create(t.Context(), provider.NewObject{Type: "posts", Title: "x"})
	providertest.WantNotFound(t, err, "content type")
}

func TestCreateLostAnswerIsFoundNotRepeated(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	f.fake.DropNextResponseOn("POST", "/v1/memory/write")
	o, err := f.c.Create(t.Context(), provider.NewObject{Type: "memories", Title: "survives a lost answer", Fields: json.RawMessage(`{"metadata":{"k":"v"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range f.fake.Memories(cencoritest.DemoProject) {
		if m.Content == "survives a lost answer" {
			n++
			if m.ID != o.ID {
				t.Errorf("returned %s, stored %s", o.ID, m.ID)
			}
		}
	}
	if n != 1 || f.fake.Requests("/v1/memory/write") != 1 {
		t.Errorf("stored %d times, %d writes sent", n, f.fake.Requests("/v1/memory/write"))
	}
}

func TestCreateFailuresAreNotRetried(t *testing.T) {
	cases := []struct {
		status  int
		kind    error
		readBck int
	}{
		{http.StatusServiceUnavailable, provider.ErrUnavailable, 0},
		// A 500 or 504 may come after the work was done: the read-back
		// does not find it, so the outcome stays unknown.
		{http.StatusInternalServerError, provider.ErrOutcomeUnknown, 1},
		{http.StatusGatewayTimeout, provider.ErrOutcomeUnknown, 1},
		{http.StatusTooManyRequests, provider.ErrRateLimited, 0},
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			f := newFixture(t, cencoritest.DemoSecretKey)
			f.fake.FailNextOn("POST", "/v1/memory/write", tc.status, map[string]string{"Retry-After": "1"}, `{"error":"internal_error"}`)
			_, err := f.c.Create(t.Context(), provider.NewObject{Type: "memories", Title: "once only", Fields: json.RawMessage(`{}`)})
			providertest.WantKind(t, err, tc.kind)
			// An unknown outcome must not also read as "unavailable",
			// which tools/errors.go would report first.
			if errors.Is(tc.kind, provider.ErrOutcomeUnknown) && errors.Is(err, provider.ErrUnavailable) {
				t.Errorf("%v matches ErrUnavailable too", err)
			}
			if f.fake.Requests("/v1/memory/write") != 1 || f.fake.Requests("/v1/memory/list") != tc.readBck {
				t.Errorf("writes %d, read-backs %d", f.fake.Requests("/v1/memory/write"), f.fake.Requests("/v1/memory/list"))
			}
			if len(f.fake.Memories(cencoritest.DemoProject)) != 3 {
				t.Error("something was stored")
			}
		})
	}
}

func TestUpdateIsUnsupported(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	title := "new"
	_, err := f.c.Update(t.Context(), provider.Patch{Type: "memories", ID: cencoritest.SeedMemory1, Title: &title})
	if !errors.Is(err, provider.ErrUnsupported) || !strings.Contains(err.Error(), "immutable") || !strings.Contains(err.Error(), "delete") || !strings.Contains(err.Error(), "create") {
		t.Fatalf("%v", err)
	}
	if f.fake.TotalRequests() != 0 {
		t.Error("Update made a request")
	}
}

func TestDelete(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	ctx := t.Context()
	o, err := f.c.Delete(ctx, "memories", cencoritest.SeedMemory1)
	if err != nil || o.ID != cencoritest.SeedMemory1 || o.Title == "" {
		t.Fatalf("%+v %v", o, err)
	}
	if _, ok := f.fake.Memory(cencoritest.SeedMemory1); ok {
		t.Error("still stored")
	}
	_, err = f.c.Delete(ctx, "memories", cencoritest.SeedMemory1)
	providertest.WantNotFound(t, err, "object")
	// A lost answer is settled by reading again: gone means deleted.
	f.fake.DropNextResponseOn("DELETE", "/v1/memory/"+cencoritest.SeedMemory2)
	o, err = f.c.Delete(ctx, "memories", cencoritest.SeedMemory2)
	if err != nil || o.ID != cencoritest.SeedMemory2 {
		t.Fatalf("lost answer: %+v %v", o, err)
	}
	if f.fake.Requests("/v1/memory/"+cencoritest.SeedMemory2) != 3 {
		t.Errorf("requests %d, want get, delete, get", f.fake.Requests("/v1/memory/"+cencoritest.SeedMemory2))
	}
	// A 500 that did not delete: the read-back finds it, so the delete failed.
	f.fake.FailNextOn("DELETE", "/v1/memory/"+cencoritest.SeedMemory3, 500, nil, `{"error":"internal_error"}`)
	_, err = f.c.Delete(ctx, "memories", cencoritest.SeedMemory3)
	providertest.WantKind(t, err, provider.ErrUnavailable)
	if _, ok := f.fake.Memory(cencoritest.SeedMemory3); !ok {
		t.Error("deleted after all")
	}
}
