package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/provider"
)

func contentType(name string, fields ...string) provider.ContentType {
	return provider.ContentType{Name: name, Fields: fields}
}

func listAll(typ, status string) provider.ListQuery {
	return provider.ListQuery{Type: typ, Status: status, Limit: 100}
}

func ptr[T any](v T) *T { return &v }

// newPostsStore is a store with a "posts" type (fields body, author, tags,
// views) and nothing in it.
func newPostsStore(t *testing.T) (*Store, *testClock) {
	t.Helper()
	s, clock := newTestStore(t)
	if err := s.CreateType(t.Context(), provider.ContentType{Name: "posts", Description: "Blog posts", Fields: []string{"body", "author", "tags", "views"}}); err != nil {
		t.Fatal(err)
	}
	return s, clock
}

func mustCreate(t *testing.T, s *Store, n provider.NewObject) provider.Object {
	t.Helper()
	if n.Type == "" {
		n.Type = "posts"
	}
	if n.Status == "" {
		n.Status = provider.StatusDraft
	}
	if n.Slug == "" {
		n.Slug = provider.Slugify(n.Title)
	}
	obj, err := s.Create(t.Context(), n)
	if err != nil {
		t.Fatalf("creating %q: %v", n.Title, err)
	}
	return obj
}

// wantFieldError checks that err is a *provider.FieldError naming field,
// whose text contains contains.
func wantFieldError(t *testing.T, err error, field, contains string) {
	t.Helper()
	var fe *provider.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error = %v (%T), want a FieldError on %q", err, err, field)
	}
	if fe.Field != field || !strings.Contains(fe.Error(), contains) {
		t.Errorf("FieldError = %+v, want field %q containing %q", fe, field, contains)
	}
	if fe.Fix == "" {
		t.Errorf("FieldError on %q has no fix", field)
	}
}

func wantNotFound(t *testing.T, err error, what, name string) {
	t.Helper()
	var nf *provider.NotFoundError
	if !errors.As(err, &nf) || nf.What != what || nf.Name != name || !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("error = %v, want %s %q not found", err, what, name)
	}
}

func fieldsOf(t *testing.T, o provider.Object) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(o.Fields, &m); err != nil {
		t.Fatalf("fields of %s: %v", o.ID, err)
	}
	return m
}

func TestCreateAndGet(t *testing.T) {
	s, clock := newPostsStore(t)
	ctx := t.Context()
	created := mustCreate(t, s, provider.NewObject{Title: "Hello, World!", Status: provider.StatusPublished,
		Fields: json.RawMessage(`{ "body": "hi", "tags": ["a", "b"], "views": 3 }`)})

	if !strings.HasPrefix(created.ID, "obj_") || len(created.ID) != 20 || strings.ToLower(created.ID) != created.ID {
		t.Errorf("id = %q", created.ID)
	}
	want := provider.Object{ID: created.ID, Type: "posts", Slug: "hello-world", Title: "Hello, World!", Status: "published", Version: 1,
		Fields: json.RawMessage(`{"body":"hi","tags":["a","b"],"views":3}`), CreatedAt: clock.Now(), ModifiedAt: clock.Now()}
	if fmt.Sprint(created) != fmt.Sprint(want) {
		t.Errorf("created\n got %+v\nwant %+v", created, want)
	}
	if created.CreatedAt.Location() != time.UTC {
		t.Errorf("times are in %v, want UTC", created.CreatedAt.Location())
	}
	for _, ref := range []provider.Ref{{ID: created.ID}, {Slug: "hello-world"}} {
		got, err := s.Get(ctx, "posts", ref)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(created) {
			t.Errorf("Get(%+v) = %+v, %v", ref, got, err)
		}
	}
	if id := mustCreate(t, s, provider.NewObject{Title: "Other"}).ID; id == created.ID {
		t.Error("two objects got the same id")
	}
}

func TestGetErrors(t *testing.T) {
	s, _ := newPostsStore(t)
	ctx := t.Context()
	_, err := s.Get(ctx, "nope", provider.Ref{ID: "obj_x"})
	wantNotFound(t, err, "content type", "nope")
	_, err = s.Get(ctx, "posts", provider.Ref{ID: "obj_missing"})
	wantNotFound(t, err, "object", "obj_missing")
	_, err = s.Get(ctx, "posts", provider.Ref{Slug: "missing"})
	wantNotFound(t, err, "object", "missing")
	_, err = s.Get(ctx, "posts", provider.Ref{ID: "a", Slug: "b"})
	wantFieldError(t, err, "id", "exactly one")
	_, err = s.Get(ctx, "posts", provider.Ref{})
	wantFieldError(t, err, "id", "exactly one")
}

func TestCreateRejects(t *testing.T) {
	s, _ := newPostsStore(t)
	ctx := t.Context()
	mustCreate(t, s, provider.NewObject{Title: "Taken", Slug: "taken"})
	if err := s.CreateType(ctx, contentType("notes")); err != nil {
		t.Fatal(err)
	}
	good := provider.NewObject{Type: "posts", Title: "T", Slug: "t", Status: provider.StatusDraft, Fields: json.RawMessage(`{}`)}
	with := func(f func(*provider.NewObject)) provider.NewObject { n := good; f(&n); return n }
	tests := []struct {
		name     string
		in       provider.NewObject
		field    string
		contains string
	}{
		{"blank title", with(func(n *provider.NewObject) { n.Title = "  " }), "title", "blank"},
		{"bad slug", with(func(n *provider.NewObject) { n.Slug = "../etc" }), "slug", "hyphens"},
		{"upper-case slug", with(func(n *provider.NewObject) { n.Slug = "Hello" }), "slug", "lower-case"},
		{"long slug", with(func(n *provider.NewObject) { n.Slug = strings.Repeat("a", 129) }), "slug", "128"},
		{"bad status", with(func(n *provider.NewObject) { n.Status = "live" }), "status", "draft or published"},
		{"fields an array", with(func(n *provider.NewObject) { n.Fields = json.RawMessage(`[1]`) }), "fields", "JSON object"},
		{"fields null", with(func(n *provider.NewObject) { n.Fields = json.RawMessage(`null`) }), "fields", "JSON object"},
		{"fields not JSON", with(func(n *provider.NewObject) { n.Fields = json.RawMessage(`{"a":`) }), "fields", "JSON object"},
		{"unknown field", with(func(n *provider.NewObject) { n.Fields = json.RawMessage(`{"body":"x","colour":"red"}`) }), "fields", `unknown field "colour" for type posts`},
		{"unknown fields", with(func(n *provider.NewObject) { n.Fields = json.RawMessage(`{"b":1,"a":2}`) }), "fields", `unknown fields "a", "b"`},
		{"duplicate slug", with(func(n *provider.NewObject) { n.Slug = "taken" }), "slug", `slug "taken" is already used by another posts object`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Create(ctx, tc.in)
			wantFieldError(t, err, tc.field, tc.contains)
		})
	}
	t.Run("unknown type", func(t *testing.T) {
		_, err := s.Create(ctx, with(func(n *provider.NewObject) { n.Type = "nope" }))
		wantNotFound(t, err, "content type", "nope")
	})
	t.Run("same slug in another type", func(t *testing.T) {
		mustCreate(t, s, provider.NewObject{Type: "notes", Title: "Taken", Slug: "taken"})
	})
	t.Run("type without field list takes any field", func(t *testing.T) {
		mustCreate(t, s, provider.NewObject{Type: "notes", Title: "Any", Fields: json.RawMessage(`{"colour":"red"}`)})
	})
	t.Run("nil fields", func(t *testing.T) {
		if o := mustCreate(t, s, provider.NewObject{Title: "No fields"}); string(o.Fields) != "{}" {
			t.Errorf("fields = %s", o.Fields)
		}
	})
	if types, _ := s.Types(ctx); types[1].Count != 2 {
		t.Errorf("rejected creates left objects behind: %+v", types)
	}
}

func TestCreateType(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := t.Context()
	if err := s.CreateType(ctx, provider.ContentType{Name: "case-studies", Description: "Customer stories", Fields: []string{"client", "body"}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		in       provider.ContentType
		field    string
		contains string
	}{
		{"duplicate", contentType("case-studies"), "type", "already exists"},
		{"upper case", contentType("Posts"), "type", "lower-case"},
		{"path", contentType("../x"), "type", "lower-case"},
		{"bad field name", contentType("x", "a.b"), "fields", "field 1"},
		{"duplicate field", contentType("x", "a", "a"), "fields", "field 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantFieldError(t, s.CreateType(ctx, tc.in), tc.field, tc.contains)
		})
	}
	if err := s.CreateType(ctx, contentType("about")); err != nil {
		t.Fatal(err)
	}
	types, err := s.Types(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(types) != 2 || types[0].Name != "about" || types[0].Fields != nil ||
		types[1].Name != "case-studies" || types[1].Description != "Customer stories" || strings.Join(types[1].Fields, ",") != "client,body" {
		t.Errorf("types = %+v", types)
	}
}

func TestUpdate(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		name       string
		patch      provider.Patch
		wantFields map[string]any
		check      func(t *testing.T, o provider.Object)
	}{
		{
			name:       "merge fields, null removes",
			patch:      provider.Patch{Fields: json.RawMessage(`{"author":null,"views":7,"tags":["x"]}`)},
			wantFields: map[string]any{"body": "hi", "views": 7.0, "tags": []any{"x"}},
		},
		{
			name:       "null for a field the type does not list",
			patch:      provider.Patch{Fields: json.RawMessage(`{"colour":null}`)},
			wantFields: map[string]any{"body": "hi", "author": "ada"},
		},
		{
			name:       "attributes only",
			patch:      provider.Patch{Title: ptr("New title"), Slug: ptr("new-slug"), Status: ptr("published")},
			wantFields: map[string]any{"body": "hi", "author": "ada"},
			check: func(t *testing.T, o provider.Object) {
				if o.Title != "New title" || o.Slug != "new-slug" || o.Status != "published" {
					t.Errorf("attributes = %q %q %q", o.Title, o.Slug, o.Status)
				}
			},
		},
		{
			name:       "matching expected version",
			patch:      provider.Patch{Title: ptr("Checked"), ExpectedVersion: ptr(int64(1))},
			wantFields: map[string]any{"body": "hi", "author": "ada"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, clock := newPostsStore(t)
			orig := mustCreate(t, s, provider.NewObject{Title: "Hello", Fields: json.RawMessage(`{"body":"hi","author":"ada"}`)})
			clock.Add(time.Hour)
			tc.patch.Type, tc.patch.ID = "posts", orig.ID
			got, err := s.Update(ctx, tc.patch)
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != 2 || !got.ModifiedAt.Equal(clock.Now()) || !got.CreatedAt.Equal(orig.CreatedAt) {
				t.Errorf("version %d, modified %v, created %v", got.Version, got.ModifiedAt, got.CreatedAt)
			}
			if fmt.Sprint(fieldsOf(t, got)) != fmt.Sprint(tc.wantFields) {
				t.Errorf("fields = %s, want %v", got.Fields, tc.wantFields)
			}
			if tc.check != nil {
				tc.check(t, got)
			}
			if stored, _ := s.Get(ctx, "posts", provider.Ref{ID: orig.ID}); fmt.Sprint(stored) != fmt.Sprint(got) {
				t.Errorf("Update returned %+v but stored %+v", got, stored)
			}
		})
	}
}

func TestUpdateRejects(t *testing.T) {
	s, _ := newPostsStore(t)
	ctx := t.Context()
	obj := mustCreate(t, s, provider.NewObject{Title: "Mine", Fields: json.RawMessage(`{"body":"x"}`)})
	mustCreate(t, s, provider.NewObject{Title: "Taken"})
	if _, err := s.Update(ctx, provider.Patch{Type: "posts", ID: obj.ID, Title: ptr("v2")}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		patch    provider.Patch
		field    string
		contains string
	}{
		{"duplicate slug", provider.Patch{Slug: ptr("taken")}, "slug", `slug "taken" is already used`},
		{"unknown field", provider.Patch{Fields: json.RawMessage(`{"colour":"red"}`)}, "fields", `"colour"`},
		{"fields not an object", provider.Patch{Fields: json.RawMessage(`"x"`)}, "fields", "JSON object"},
		{"blank title", provider.Patch{Title: ptr(" ")}, "title", "blank"},
		{"bad slug", provider.Patch{Slug: ptr("a--b")}, "slug", "hyphens"},
		{"bad status", provider.Patch{Status: ptr("archived")}, "status", "draft or published"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.patch.Type, tc.patch.ID = "posts", obj.ID
			_, err := s.Update(ctx, tc.patch)
			wantFieldError(t, err, tc.field, tc.contains)
		})
	}
	t.Run("stale version", func(t *testing.T) {
		_, err := s.Update(ctx, provider.Patch{Type: "posts", ID: obj.ID, Title: ptr("x"), ExpectedVersion: ptr(int64(1))})
		var vc *provider.VersionConflictError
		if !errors.As(err, &vc) || vc.Expected != 1 || vc.Current != 2 {
			t.Fatalf("error = %v, want a version conflict 1 vs 2", err)
		}
	})
	t.Run("unknown object", func(t *testing.T) {
		_, err := s.Update(ctx, provider.Patch{Type: "posts", ID: "obj_missing", Title: ptr("x")})
		wantNotFound(t, err, "object", "obj_missing")
	})
	t.Run("unknown type", func(t *testing.T) {
		_, err := s.Update(ctx, provider.Patch{Type: "nope", ID: obj.ID, Title: ptr("x")})
		wantNotFound(t, err, "content type", "nope")
	})
	// No rejected update may have changed anything.
	if got, _ := s.Get(ctx, "posts", provider.Ref{ID: obj.ID}); got.Version != 2 || got.Title != "v2" || got.Slug != "mine" || string(got.Fields) != `{"body":"x"}` {
		t.Errorf("after rejected updates: %+v", got)
	}
}

func TestDelete(t *testing.T) {
	s, _ := newPostsStore(t)
	ctx := t.Context()
	obj := mustCreate(t, s, provider.NewObject{Title: "Doomed", Fields: json.RawMessage(`{"body":"bye"}`)})

	_, err := s.Delete(ctx, "nope", obj.ID)
	wantNotFound(t, err, "content type", "nope")
	got, err := s.Delete(ctx, "posts", obj.ID)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(obj) {
		t.Fatalf("Delete = %+v, %v; want %+v", got, err, obj)
	}
	_, err = s.Get(ctx, "posts", provider.Ref{ID: obj.ID})
	wantNotFound(t, err, "object", obj.ID)
	_, err = s.Delete(ctx, "posts", obj.ID)
	wantNotFound(t, err, "object", obj.ID)
	// The slug is free again.
	mustCreate(t, s, provider.NewObject{Title: "Doomed"})
}

// TestConcurrentWrites races creates and versioned updates of one object:
// each version must be won by exactly one update, and no writer may see
// SQLITE_BUSY or any other error.
func TestConcurrentWrites(t *testing.T) {
	s, _ := newPostsStore(t)
	ctx := t.Context()
	shared := mustCreate(t, s, provider.NewObject{Title: "Shared", Fields: json.RawMessage(`{"views":0}`)})

	const workers, rounds = 8, 25
	var mu sync.Mutex
	won := map[int64]int{} // version produced -> number of winners
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*3)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				if _, err := s.Create(ctx, provider.NewObject{Type: "posts", Title: "x", Slug: fmt.Sprintf("w%d-r%d", w, r),
					Status: provider.StatusDraft, Fields: json.RawMessage(`{}`)}); err != nil {
					errs <- fmt.Errorf("create: %w", err)
				}
				cur, err := s.Get(ctx, "posts", provider.Ref{ID: shared.ID})
				if err != nil {
					errs <- fmt.Errorf("get: %w", err)
					continue
				}
				got, err := s.Update(ctx, provider.Patch{Type: "posts", ID: shared.ID, ExpectedVersion: ptr(cur.Version),
					Fields: json.RawMessage(fmt.Sprintf(`{"views":%d}`, cur.Version))})
				var vc *provider.VersionConflictError
				switch {
				case errors.As(err, &vc):
				case err != nil:
					errs <- fmt.Errorf("update: %w", err)
				default:
					mu.Lock()
					won[got.Version]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	final, err := s.Get(ctx, "posts", provider.Ref{ID: shared.ID})
	if err != nil {
		t.Fatal(err)
	}
	if int(final.Version-1) != len(won) {
		t.Errorf("final version %d after %d winning updates", final.Version, len(won))
	}
	for v := int64(2); v <= final.Version; v++ {
		if won[v] != 1 {
			t.Errorf("version %d was produced by %d updates, want 1", v, won[v])
		}
	}
	if page, _ := s.List(ctx, listAll("posts", "")); page.Total != 1+workers*rounds {
		t.Errorf("%d objects, want %d", page.Total, 1+workers*rounds)
	}
}

// Get reads through a prepared statement on the read pool; it must still
// see every write at once, by id and by slug, and tell a missing type from
// a missing object.
func TestGetFollowsWrites(t *testing.T) {
	s, _ := newPostsStore(t)
	ctx := t.Context()
	obj := mustCreate(t, s, provider.NewObject{Title: "First", Slug: "first"})
	steps := []struct {
		name   string
		change func() error
		title  string // "" when the object must be gone
	}{
		{"created", func() error { return nil }, "First"},
		{"updated", func() error {
			_, err := s.Update(ctx, provider.Patch{Type: "posts", ID: obj.ID, Title: ptr("Second")})
			return err
		}, "Second"},
		{"updated again", func() error {
			_, err := s.Update(ctx, provider.Patch{Type: "posts", ID: obj.ID, Title: ptr("Third")})
			return err
		}, "Third"},
		{"deleted", func() error { _, err := s.Delete(ctx, "posts", obj.ID); return err }, ""},
	}
	for _, st := range steps {
		if err := st.change(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for _, ref := range []provider.Ref{{ID: obj.ID}, {Slug: "first"}} {
			got, err := s.Get(ctx, "posts", ref)
			if st.title == "" {
				wantNotFound(t, err, "object", ref.ID+ref.Slug)
				continue
			}
			if err != nil || got.Title != st.title || got.ID != obj.ID {
				t.Errorf("%s: Get(%+v) = %q, %v; want %q", st.name, ref, got.Title, err, st.title)
			}
		}
	}
	_, err := s.Get(ctx, "nope", provider.Ref{Slug: "first"})
	wantNotFound(t, err, "content type", "nope")
	if err := s.CreateType(ctx, contentType("empty")); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(ctx, "empty", provider.Ref{ID: obj.ID})
	wantNotFound(t, err, "object", obj.ID)
}

// TestTextPostgresCannotKeep: Postgres cannot store U+0000 in text or
// jsonb, so there such a title or field is refused by name; SQLite stores
// it as before.
func TestTextPostgresCannotKeep(t *testing.T) {
	s, clock := newPostsStore(t)
	ctx := t.Context()
	tests := []struct {
		field string
		do    func() error
	}{
		{"title", func() error {
			_, err := s.Create(ctx, provider.NewObject{Type: "posts", Title: "a\x00b", Slug: "nul-title", Status: provider.StatusDraft})
			return err
		}},
		{"fields", func() error {
			_, err := s.Create(ctx, provider.NewObject{Type: "posts", Title: "t", Slug: "nul-field", Status: provider.StatusDraft,
				Fields: json.RawMessage(`{"body":"a\u0000b"}`)})
			return err
		}},
		{"description", func() error { return s.CreateType(ctx, provider.ContentType{Name: "nul", Description: "a\x00"}) }},
		{"name", func() error {
			_, err := s.CreateKey(ctx, provider.NewKey{Name: "k\x00", Scopes: scopes(t, "content:read"), ExpiresAt: clock.Now().Add(day)})
			return err
		}},
	}
	for _, tc := range tests {
		err := tc.do()
		if onPostgres() {
			wantFieldError(t, err, tc.field, "U+0000")
		} else if err != nil {
			t.Errorf("%s with U+0000 on SQLite: %v", tc.field, err)
		}
	}
	// An escaped backslash followed by u0000 is no NUL.
	if _, err := s.Create(ctx, provider.NewObject{Type: "posts", Title: "t", Slug: "backslash", Status: provider.StatusDraft,
		Fields: json.RawMessage(`{"body":"a\\u0000b"}`)}); err != nil {
		t.Errorf("a backslash before u0000: %v", err)
	}
}
