package tools

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/keygate/keygate/provider"
)

func TestContentLifecycle(t *testing.T) {
	e := newEnv(t)

	types := mustOK(t, e.call("content_types", nil))
	if get(types.Structured, "types", 0, "name") != "posts" || get(types.Structured, "types", 0, "count") != 3.0 {
		t.Fatalf("content_types = %s", types.Text)
	}

	created := mustOK(t, e.call("content_create", map[string]any{"type": "posts", "title": "Hello, World!",
		"fields": map[string]any{"body": "hi", "author": "ada", "tags": []any{"a", "b"}}}))
	id := get(created.Structured, "object", "id").(string)
	if slug := get(created.Structured, "object", "slug"); slug != "hello-world" {
		t.Errorf("derived slug = %v", slug)
	}
	if st := get(created.Structured, "object", "status"); st != "draft" {
		t.Errorf("default status = %v", st)
	}

	byID := mustOK(t, e.call("content_get", map[string]any{"type": "posts", "id": id}))
	bySlug := mustOK(t, e.call("content_get", map[string]any{"type": "posts", "slug": "hello-world"}))
	if get(byID.Structured, "object", "id") != get(bySlug.Structured, "object", "id") {
		t.Error("get by id and by slug differ")
	}
	proj := mustOK(t, e.call("content_get", map[string]any{"type": "posts", "id": id, "fields": []any{"title", "fields.tags.#"}}))
	if get(proj.Structured, "object", "fields.tags.#") != 2.0 || get(proj.Structured, "object", "title") != "Hello, World!" {
		t.Errorf("projection = %v", proj.Structured)
	}

	updated := mustOK(t, e.call("content_update", map[string]any{"type": "posts", "id": id, "status": "published",
		"fields": map[string]any{"author": nil, "views": 7}, "expected_version": 1}))
	obj := get(updated.Structured, "object").(map[string]any)
	if obj["version"] != 2.0 || obj["status"] != "published" || get(obj, "fields", "author") != nil || get(obj, "fields", "views") != 7.0 || get(obj, "fields", "body") != "hi" {
		t.Errorf("update = %v", obj)
	}
	stale := e.call("content_update", map[string]any{"type": "posts", "id": id, "title": "x", "expected_version": 1})
	mustFail(t, stale, "expected_version", "version 2")
	if get(stale.Structured, "current_version") != 2.0 {
		t.Errorf("stale answer lacks current_version: %v", stale.Structured)
	}

	list := mustOK(t, e.call("content_list", map[string]any{"type": "posts", "filter": map[string]any{"status": "published"}}))
	if get(list.Structured, "total") != 3.0 {
		t.Errorf("published total = %v (%s)", get(list.Structured, "total"), list.Text)
	}
	first := get(list.Structured, "objects", 0).(map[string]any)
	if len(first) != 5 || first["id"] == nil || first["modified_at"] == nil {
		t.Errorf("default projection = %v", first)
	}

	dry := mustOK(t, e.call("content_delete", map[string]any{"type": "posts", "id": id, "dry_run": true}))
	if get(dry.Structured, "dry_run") != true {
		t.Errorf("dry run = %s", dry.Text)
	}
	mustOK(t, e.call("content_get", map[string]any{"type": "posts", "id": id}))
	// This client cannot show prompts, so confirm is required.
	mustFail(t, e.call("content_delete", map[string]any{"type": "posts", "id": id}), "confirm", "confirm")
	mustOK(t, e.call("content_get", map[string]any{"type": "posts", "id": id}))
	mustOK(t, e.call("content_delete", map[string]any{"type": "posts", "id": id, "confirm": true}))
	mustFail(t, e.call("content_get", map[string]any{"type": "posts", "id": id}), "id", "no posts object")
}

func TestContentBadInput(t *testing.T) {
	e := newEnv(t)
	mustOK(t, e.call("content_create", map[string]any{"type": "posts", "title": "Taken", "fields": map[string]any{}}))
	tests := []struct {
		name     string
		tool     string
		args     map[string]any
		field    string
		contains string
	}{
		{"unknown type", "content_list", map[string]any{"type": "nope"}, "type", "does not exist"},
		{"unknown id", "content_get", map[string]any{"type": "posts", "id": "obj_doesnotexist"}, "id", "no posts object"},
		{"id and slug", "content_get", map[string]any{"type": "posts", "id": "a", "slug": "b"}, "id", "exactly one"},
		{"neither id nor slug", "content_get", map[string]any{"type": "posts"}, "id", "exactly one"},
		{"duplicate slug", "content_create", map[string]any{"type": "posts", "title": "Taken", "fields": map[string]any{}}, "slug", "already used"},
		{"unknown field", "content_create", map[string]any{"type": "posts", "title": "X", "fields": map[string]any{"colour": "red"}}, "fields", "colour"},
		{"underivable slug", "content_create", map[string]any{"type": "posts", "title": "!!!", "fields": map[string]any{}}, "slug", "cannot be derived"},
		{"nothing to update", "content_update", map[string]any{"type": "posts", "id": "obj_x"}, "", "nothing to update"},
		{"bad filter key", "content_list", map[string]any{"type": "posts", "filter": map[string]any{"fields.a b": 1}}, "filter", "cannot filter"},
		{"bad operator", "content_list", map[string]any{"type": "posts", "filter": map[string]any{"title": map[string]any{"$regex": "x"}}}, "filter", "unknown operator"},
		{"list without $in", "content_list", map[string]any{"type": "posts", "filter": map[string]any{"title": []any{"a"}}}, "filter", "$in"},
		{"bad sort", "content_list", map[string]any{"type": "posts", "sort": "-fields.a;drop"}, "sort", "cannot sort"},
		{"bad cursor", "content_list", map[string]any{"type": "posts", "cursor": "garbage"}, "cursor", "not a cursor"},
		{"bad projection", "content_list", map[string]any{"type": "posts", "fields": []any{"a b"}}, "fields[0]", "not a field path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mustFail(t, e.call(tc.tool, tc.args), tc.field, tc.contains)
		})
	}
}

func TestSchemaValidationRejectsBadArguments(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		args map[string]any
	}{
		{"missing required type", map[string]any{"title": "x", "fields": map[string]any{}}},
		{"missing required title", map[string]any{"type": "posts", "fields": map[string]any{}}},
		{"wrong type", map[string]any{"type": "posts", "title": 5, "fields": map[string]any{}}},
		{"unknown argument", map[string]any{"type": "posts", "title": "x", "fields": map[string]any{}, "colour": "red"}},
		{"bad status", map[string]any{"type": "posts", "title": "x", "fields": map[string]any{}, "status": "live"}},
		{"path traversal type", map[string]any{"type": "../etc", "title": "x", "fields": map[string]any{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := e.callErr("content_create", tc.args)
			if err == nil && !r.IsError {
				t.Fatalf("accepted: %s", r.Text)
			}
		})
	}
}

func TestContentListPaging(t *testing.T) {
	e := newEnv(t)
	for i := range 7 {
		mustOK(t, e.call("content_create", map[string]any{"type": "posts", "title": fmt.Sprintf("Page item %d", i),
			"fields": map[string]any{"author": "pager", "body": fmt.Sprint(i)}}))
	}
	filter := map[string]any{"fields.author": "pager"}
	seen := map[string]bool{}
	cursor := ""
	for page := 0; ; page++ {
		args := map[string]any{"type": "posts", "filter": filter, "limit": 3, "sort": "title"}
		if cursor != "" {
			args["cursor"] = cursor
		}
		r := mustOK(t, e.call("content_list", args))
		if get(r.Structured, "total") != 7.0 {
			t.Fatalf("total = %v", get(r.Structured, "total"))
		}
		for _, o := range get(r.Structured, "objects").([]any) {
			id := o.(map[string]any)["id"].(string)
			if seen[id] {
				t.Fatalf("object %s on two pages", id)
			}
			seen[id] = true
		}
		next, _ := get(r.Structured, "next_cursor").(string)
		if next == "" {
			break
		}
		if page > 5 {
			t.Fatal("paging does not end")
		}
		// A cursor belongs to its query.
		mustFail(t, e.call("content_list", map[string]any{"type": "posts", "limit": 3, "cursor": next}), "cursor", "different query")
		cursor = next
	}
	if len(seen) != 7 {
		t.Errorf("paged through %d objects, want 7", len(seen))
	}
	in := mustOK(t, e.call("content_list", map[string]any{"type": "posts", "filter": map[string]any{"fields.body": map[string]any{"$in": []any{"1", "2"}}}}))
	if get(in.Structured, "total") != 2.0 {
		t.Errorf("$in total = %v", get(in.Structured, "total"))
	}
	if !strings.Contains(in.Text, "2 of 2 posts") {
		t.Errorf("text rendering = %q", in.Text)
	}
}

func TestContentScopesNarrowedToType(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if err := e.store.CreateType(ctx, contentType("pages")); err != nil {
		t.Fatal(err)
	}
	writer, _ := e.mint("posts writer", "content:read:posts", "content:write:posts")
	e.actAs(writer)
	mustOK(t, e.call("content_create", map[string]any{"type": "posts", "title": "Mine", "fields": map[string]any{}}))
	mustFail(t, e.call("content_create", map[string]any{"type": "pages", "title": "Not mine", "fields": map[string]any{}}), "type", "insufficient_scope")
	mustFail(t, e.call("content_list", map[string]any{"type": "pages"}), "type", "insufficient_scope")
	types := mustOK(t, e.call("content_types", nil))
	if n := len(get(types.Structured, "types").([]any)); n != 1 {
		t.Errorf("narrowed key sees %d types, want 1", n)
	}
}

// TestContentListSaysWhenTheTotalIsALowerBound: past 1,000 matches keygate's
// store stops counting, and the answer says so in both renderings.
func TestContentListSaysWhenTheTotalIsALowerBound(t *testing.T) {
	e := newEnv(t)
	for i := range 1005 {
		if _, err := e.store.Create(t.Context(), provider.NewObject{Type: "posts", Title: fmt.Sprintf("bulk %d", i), Slug: fmt.Sprintf("bulk-%d", i), Status: "draft",
			Fields: json.RawMessage(`{"author":"bulk"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	r := mustOK(t, e.call("content_list", map[string]any{"type": "posts", "limit": 5}))
	if get(r.Structured, "total") != 1000.0 || get(r.Structured, "total_is_lower_bound") != true {
		t.Errorf("total = %v, lower bound = %v; want 1000 and true", get(r.Structured, "total"), get(r.Structured, "total_is_lower_bound"))
	}
	if !strings.Contains(r.Text, "5 of 1000+ posts") {
		t.Errorf("text rendering = %q", r.Text)
	}
	small := mustOK(t, e.call("content_list", map[string]any{"type": "posts", "filter": map[string]any{"slug": "bulk-7"}}))
	if _, ok := small.Structured["total_is_lower_bound"]; ok || get(small.Structured, "total") != 1.0 {
		t.Errorf("an exact total is marked as a bound: %v", small.Structured)
	}
}
