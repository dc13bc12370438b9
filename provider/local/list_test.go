package local

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/provider"
)

// newLibrary is a store with a "books" type (any field) holding five books,
// created a day apart from 2026-01-01T10:00Z, and a "films" type holding
// one object that no books query may return.
func newLibrary(t *testing.T) *Store {
	t.Helper()
	s, clock := newTestStore(t)
	ctx := t.Context()
	for _, typ := range []string{"books", "films"} {
		if err := s.CreateType(ctx, contentType(typ)); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate(t, s, provider.NewObject{Type: "films", Title: "Alien", Fields: json.RawMessage(`{"author":"scott","year":1979}`)})
	clock.mu.Lock()
	clock.t = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	clock.mu.Unlock()
	books := []struct{ title, status, fields string }{
		{"Dune", "published", `{"author":"herbert","year":1965,"featured":true,"meta":{"rating":4.5,"lang":"en"},"tags":["scifi"]}`},
		{"Emma", "draft", `{"author":"austen","year":1815,"featured":false,"meta":{"rating":4.1,"lang":"en"}}`},
		{"Solaris", "published", `{"author":"lem","year":1961,"featured":true,"meta":{"rating":4.3,"lang":"pl"}}`},
		{"Beloved", "published", `{"author":"morrison","year":1987,"featured":false,"meta":{"rating":4.4,"lang":"en"}}`},
		{"Carrie", "draft", `{"author":"king","year":"1974"}`},
	}
	for _, b := range books {
		mustCreate(t, s, provider.NewObject{Type: "books", Title: b.title, Status: b.status, Fields: json.RawMessage(b.fields)})
		clock.Add(24 * time.Hour)
	}
	return s
}

func titles(objs []provider.Object) string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Title
	}
	return strings.Join(out, ",")
}

func TestListFilters(t *testing.T) {
	s := newLibrary(t)
	cond := func(path string, op provider.Op, v any) []provider.Condition {
		return []provider.Condition{{Path: path, Op: op, Value: v}}
	}
	tests := []struct {
		name   string
		status string
		filter []provider.Condition
		want   string // titles, in the default order (newest first)
	}{
		{"everything", "", nil, "Carrie,Beloved,Solaris,Emma,Dune"},
		{"status published", "published", nil, "Beloved,Solaris,Dune"},
		{"status draft", "draft", nil, "Carrie,Emma"},
		{"$eq built-in", "", cond("title", provider.OpEq, "Emma"), "Emma"},
		{"$eq field", "", cond("fields.author", provider.OpEq, "lem"), "Solaris"},
		{"$ne field leaves out missing", "", cond("fields.featured", provider.OpNe, true), "Beloved,Emma"},
		{"$eq bool true", "", cond("fields.featured", provider.OpEq, true), "Solaris,Dune"},
		{"$eq bool false", "", cond("fields.featured", provider.OpEq, false), "Beloved,Emma"},
		{"$gt number", "", cond("fields.year", provider.OpGt, 1961.0), "Beloved,Dune"},
		{"$gte number", "", cond("fields.year", provider.OpGte, 1961.0), "Beloved,Solaris,Dune"},
		{"$lt number", "", cond("fields.year", provider.OpLt, 1961.0), "Emma"},
		{"$lte number", "", cond("fields.year", provider.OpLte, 1961.0), "Solaris,Emma"},
		{"$ne number leaves out other kinds", "", cond("fields.year", provider.OpNe, 1965.0), "Beloved,Solaris,Emma"},
		{"$gt string compares text only", "", cond("fields.author", provider.OpGt, "l"), "Beloved,Solaris"},
		{"number does not match string", "", cond("fields.year", provider.OpEq, 1974.0), ""},
		{"string does not match number", "", cond("fields.year", provider.OpEq, "1974"), "Carrie"},
		{"json.Number", "", cond("fields.year", provider.OpEq, json.Number("1965")), "Dune"},
		{"int", "", cond("fields.year", provider.OpEq, 1815), "Emma"},
		{"nested path", "", cond("fields.meta.lang", provider.OpEq, "pl"), "Solaris"},
		{"nested number", "", cond("fields.meta.rating", provider.OpGte, 4.4), "Beloved,Dune"},
		{"$in strings", "", cond("fields.author", provider.OpIn, []any{"lem", "king", "nobody"}), "Carrie,Solaris"},
		{"$in mixed", "", cond("fields.year", provider.OpIn, []any{1965.0, "1974"}), "Carrie,Dune"},
		{"$in built-in", "", cond("slug", provider.OpIn, []any{"dune", "emma"}), "Emma,Dune"},
		{"version", "", cond("version", provider.OpEq, 1.0), "Carrie,Beloved,Solaris,Emma,Dune"},
		{"missing field", "", cond("fields.nothing", provider.OpEq, "x"), ""},
		{"array element is not reachable", "", cond("fields.tags", provider.OpEq, "scifi"), ""},
		{"created_at $gte RFC 3339", "", cond("created_at", provider.OpGte, "2026-01-03T10:00:00Z"), "Carrie,Beloved,Solaris"},
		{"created_at $gt RFC 3339 with offset", "", cond("created_at", provider.OpGt, "2026-01-03T11:00:00+01:00"), "Carrie,Beloved"},
		{"created_at $lt date", "", cond("created_at", provider.OpLt, "2026-01-03"), "Emma,Dune"},
		{"modified_at $eq exact", "", cond("modified_at", provider.OpEq, "2026-01-02T10:00:00Z"), "Emma"},
		// Issue 12: times beyond what Unix nanoseconds hold used to wrap
		// round and match everything.
		{"created_at $gt the year 9999 matches nothing", "", cond("created_at", provider.OpGt, "9999-12-31T23:59:59Z"), ""},
		{"created_at $lt the year 9999 matches everything", "", cond("created_at", provider.OpLt, "9999-12-31T23:59:59Z"), "Carrie,Beloved,Solaris,Emma,Dune"},
		{"created_at $lt the year 1 matches nothing", "", cond("created_at", provider.OpLt, "0001-01-01"), ""},
		{"created_at $in", "", cond("created_at", provider.OpIn, []any{"2026-01-01T10:00:00Z", "2026-01-05T10:00:00Z"}), "Carrie,Dune"},
		{"status and filters", "published", []provider.Condition{
			{Path: "fields.meta.lang", Op: provider.OpEq, Value: "en"},
			{Path: "fields.year", Op: provider.OpLt, Value: 1980.0},
		}, "Dune"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.List(t.Context(), provider.ListQuery{Type: "books", Status: tc.status, Filter: tc.filter, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if got := titles(page.Objects); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if page.Total != len(page.Objects) || page.NextCursor != "" {
				t.Errorf("total %d, next %q for a single page of %d", page.Total, page.NextCursor, len(page.Objects))
			}
		})
	}
}

func TestListRejects(t *testing.T) {
	s := newLibrary(t)
	tests := []struct {
		name     string
		q        provider.ListQuery
		field    string
		contains string
	}{
		{"bad time", provider.ListQuery{Filter: []provider.Condition{{Path: "created_at", Op: provider.OpGt, Value: "last tuesday"}}}, "filter", "RFC 3339"},
		{"number for a time", provider.ListQuery{Filter: []provider.Condition{{Path: "modified_at", Op: provider.OpGt, Value: 5.0}}}, "filter", "RFC 3339"},
		{"bad time in $in", provider.ListQuery{Filter: []provider.Condition{{Path: "created_at", Op: provider.OpIn, Value: []any{"2026-01-01", "soon"}}}}, "filter", "RFC 3339"},
		{"unknown path", provider.ListQuery{Filter: []provider.Condition{{Path: "author", Op: provider.OpEq, Value: "x"}}}, "filter", "cannot use"},
		{"quote in path", provider.ListQuery{Filter: []provider.Condition{{Path: `fields.a"b`, Op: provider.OpEq, Value: "x"}}}, "filter", "cannot use"},
		{"empty segment", provider.ListQuery{Filter: []provider.Condition{{Path: "fields..a", Op: provider.OpEq, Value: "x"}}}, "filter", "cannot use"},
		{"unknown operator", provider.ListQuery{Filter: []provider.Condition{{Path: "title", Op: "$regex", Value: "x"}}}, "filter", "unknown operator"},
		{"$in without a list", provider.ListQuery{Filter: []provider.Condition{{Path: "title", Op: provider.OpIn, Value: "x"}}}, "filter", "$in"},
		{"$in with an empty list", provider.ListQuery{Filter: []provider.Condition{{Path: "title", Op: provider.OpIn, Value: []any{}}}}, "filter", "$in"},
		{"object value", provider.ListQuery{Filter: []provider.Condition{{Path: "title", Op: provider.OpEq, Value: map[string]any{}}}}, "filter", "string, number or boolean"},
		{"bad sort", provider.ListQuery{Sort: []provider.SortKey{{Path: "fields.a;drop"}}}, "sort", "cannot use"},
		{"bad cursor", provider.ListQuery{Cursor: "abc"}, "cursor", "not a cursor"},
		{"negative cursor", provider.ListQuery{Cursor: "-3"}, "cursor", "not a cursor"},
		{"offset cursor of an older keygate", provider.ListQuery{Cursor: "20"}, "cursor", "page offset from an older keygate"},
		{"prefix only", provider.ListQuery{Cursor: cursorPrefix}, "cursor", "not a cursor"},
		{"not base64", provider.ListQuery{Cursor: cursorPrefix + "!!!!"}, "cursor", "not a cursor"},
		{"too long", provider.ListQuery{Cursor: cursorPrefix + strings.Repeat("A", maxCursorLen)}, "cursor", "not a cursor"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Type = "books"
			_, err := s.List(t.Context(), tc.q)
			wantFieldError(t, err, tc.field, tc.contains)
		})
	}
	t.Run("unknown type", func(t *testing.T) {
		_, err := s.List(t.Context(), provider.ListQuery{Type: "nope"})
		wantNotFound(t, err, "content type", "nope")
	})
}

func TestListSort(t *testing.T) {
	s := newLibrary(t)
	tests := []struct {
		name string
		sort []provider.SortKey
		want string
	}{
		{"default newest modified first", nil, "Carrie,Beloved,Solaris,Emma,Dune"},
		{"title", []provider.SortKey{{Path: "title"}}, "Beloved,Carrie,Dune,Emma,Solaris"},
		{"title descending", []provider.SortKey{{Path: "title", Desc: true}}, "Solaris,Emma,Dune,Carrie,Beloved"},
		{"created_at", []provider.SortKey{{Path: "created_at"}}, "Dune,Emma,Solaris,Beloved,Carrie"},
		{"field", []provider.SortKey{{Path: "fields.author"}}, "Emma,Dune,Carrie,Solaris,Beloved"},
		{"nested field descending", []provider.SortKey{{Path: "fields.meta.rating", Desc: true}}, "Dune,Beloved,Solaris,Emma,Carrie"},
		{"two keys", []provider.SortKey{{Path: "status"}, {Path: "title", Desc: true}}, "Emma,Carrie,Solaris,Dune,Beloved"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.List(t.Context(), provider.ListQuery{Type: "books", Sort: tc.sort})
			if err != nil {
				t.Fatal(err)
			}
			if got := titles(page.Objects); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestListPaging(t *testing.T) {
	s, clock := newPostsStore(t)
	ctx := t.Context()
	var want []string
	for i := range 11 {
		// Every third object shares a timestamp, so only the id tie-breaker
		// keeps the order total.
		if i%3 == 0 {
			clock.Add(time.Second)
		}
		o := mustCreate(t, s, provider.NewObject{Title: fmt.Sprintf("Item %02d", i), Fields: json.RawMessage(`{"author":"pager"}`)})
		want = append(want, o.ID)
	}
	mustCreate(t, s, provider.NewObject{Title: "Not paged", Fields: json.RawMessage(`{"author":"other"}`)})

	for _, sort := range [][]provider.SortKey{nil, {{Path: "title"}}, {{Path: "fields.author", Desc: true}}} {
		t.Run(fmt.Sprint(sort), func(t *testing.T) {
			var got []string
			cursor := ""
			for pages := 1; ; pages++ {
				page, err := s.List(ctx, provider.ListQuery{Type: "posts", Sort: sort, Limit: 3, Cursor: cursor,
					Filter: []provider.Condition{{Path: "fields.author", Op: provider.OpEq, Value: "pager"}}})
				if err != nil {
					t.Fatal(err)
				}
				if page.Total != 11 {
					t.Fatalf("page %d: total %d, want 11", pages, page.Total)
				}
				if len(page.Objects) > 3 {
					t.Fatalf("page %d has %d objects, limit 3", pages, len(page.Objects))
				}
				for _, o := range page.Objects {
					got = append(got, o.ID)
				}
				if page.NextCursor == "" {
					if pages != 4 {
						t.Errorf("%d pages, want 4", pages)
					}
					break
				}
				if pages > 4 {
					t.Fatal("paging does not end")
				}
				cursor = page.NextCursor
			}
			slices.Sort(got)
			wantSorted := slices.Sorted(slices.Values(want))
			if !slices.Equal(got, wantSorted) {
				t.Errorf("paged through %d ids with duplicates or gaps:\n got %v\nwant %v", len(got), got, wantSorted)
			}
		})
	}

	t.Run("default limit", func(t *testing.T) {
		for i := range 10 {
			mustCreate(t, s, provider.NewObject{Title: fmt.Sprintf("Filler %d", i)})
		}
		page, err := s.List(ctx, provider.ListQuery{Type: "posts"})
		if err != nil || len(page.Objects) != defaultLimit || !strings.HasPrefix(page.NextCursor, cursorPrefix) {
			t.Errorf("%d objects, next %q, %v", len(page.Objects), page.NextCursor, err)
		}
		rest, err := s.List(ctx, provider.ListQuery{Type: "posts", Cursor: page.NextCursor})
		if err != nil || len(rest.Objects) != 2 || rest.NextCursor != "" || rest.Total != 22 {
			t.Errorf("second page: %d objects, total %d, next %q, %v", len(rest.Objects), rest.Total, rest.NextCursor, err)
		}
	})
}

// TestListUsesIndexes checks the query plans of every statement List runs
// for the common listings, first pages and later ones: a scan of all
// objects, or a sort of all matches, would make them slow on a large store.
// The tiny store does not matter: without ANALYZE statistics SQLite plans
// the same whatever the table holds.
func TestListUsesIndexes(t *testing.T) {
	skipOnPostgres(t, "EXPLAIN QUERY PLAN; TestPostgresListUsesIndexes covers Postgres")
	s, clock := newPostsStore(t)
	for i := range 12 {
		clock.Add(time.Second)
		mustCreate(t, s, provider.NewObject{Title: fmt.Sprintf("Post %02d", i), Status: []string{"draft", "published"}[i%2],
			Fields: json.RawMessage(fmt.Sprintf(`{"author":"a%d","views":%d}`, i%2, i))})
	}
	views := fieldIndexName("posts", "views")
	author := fieldIndexName("posts", "author")
	byAuthor := []provider.Condition{{Path: "fields.author", Op: provider.OpEq, Value: "a1"}}
	byViews := []provider.SortKey{{Path: "fields.views", Desc: true}}
	tests := []struct {
		name string
		q    provider.ListQuery
		cap  int // totalCap; 1 makes every filter "many matches"
		// count: the index the count must search ("" for any index);
		// page: the index one statement of each page must search. Every
		// statement must search an index, and, unless sorts, read it in
		// order rather than sort.
		count, page string
		sorts       bool
	}{
		{"default", provider.ListQuery{Type: "posts"}, 0, "", "objects_type_modified", false},
		{"by status", provider.ListQuery{Type: "posts", Status: "published"}, 0, "objects_type_status_modified", "objects_type_status_modified", false},
		{"by created_at", provider.ListQuery{Type: "posts", Sort: []provider.SortKey{{Path: "created_at"}}}, 0, "", "objects_type_created_modified", false},
		{"by title", provider.ListQuery{Type: "posts", Sort: []provider.SortKey{{Path: "title", Desc: true}}}, 0, "", "objects_type_title", false},
		{"by field", provider.ListQuery{Type: "posts", Sort: byViews}, 0, "", views, false},
		{"field range sorted by it", provider.ListQuery{Type: "posts", Sort: byViews,
			Filter: []provider.Condition{{Path: "fields.views", Op: provider.OpGte, Value: 3}}}, 0, views, views, false},
		{"field filter, many matches, sorted by another field", provider.ListQuery{Type: "posts", Filter: byAuthor, Sort: byViews}, 1, author, views, false},
		{"status, many matches, sorted by a field", provider.ListQuery{Type: "posts", Status: "published", Sort: byViews}, 1, "objects_type_status_modified", views, false},
		{"field filter, many matches, newest first", provider.ListQuery{Type: "posts", Filter: byAuthor}, 1, author, author, false},
		{"field filter, few matches, newest first", provider.ListQuery{Type: "posts", Filter: byAuthor}, 0, author, author, false},
		{"sorted by status", provider.ListQuery{Type: "posts", Sort: []provider.SortKey{{Path: "status"}}}, 0, "", "objects_type_status_modified", false},
		{"field filter, few matches, sorted by another field", provider.ListQuery{Type: "posts", Filter: byAuthor, Sort: byViews}, 0, author, author, true},
		{"slug", provider.ListQuery{Type: "posts", Filter: []provider.Condition{{Path: "slug", Op: provider.OpIn, Value: []any{"post-03", "post-04", "post-05"}}}}, 0,
			"sqlite_autoindex_objects_2", "sqlite_autoindex_objects_2", true},
	}
	searches := func(plan, index string) bool {
		// The listing's own table is named o.
		search := strings.Contains(plan, "SEARCH objects USING ") || strings.Contains(plan, "SEARCH o USING ")
		return search && (index == "" || strings.Contains(plan, "INDEX "+index+" ") || strings.HasSuffix(plan, "INDEX "+index))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.Limit = 2
			for page := 1; page <= 3; page++ {
				plans, next := listPlans(t, s, q, listOptions{totalCap: tc.cap})
				t.Logf("page %d: %q", page, plans)
				if len(plans) < 2 || !searches(plans[0], tc.count) || !strings.Contains(plans[0], "COVERING INDEX") {
					t.Fatalf("page %d: the count's plan %q does not search the index %s alone", page, plans[0], tc.count)
				}
				found := false
				for i, p := range plans[1:] {
					found = found || searches(p, tc.page)
					if !searches(p, "") || !tc.sorts && strings.Contains(p, "TEMP B-TREE") {
						t.Errorf("page %d, statement %d: plan %q does not read an index in order", page, i+1, p)
					}
					// A probe of the filter must be one lookup in its index.
					if _, probe, ok := strings.Cut(p, " EXISTS USING "); ok && (!strings.HasPrefix(probe, "COVERING INDEX") || !strings.Contains(probe, " AND id=?")) {
						t.Errorf("page %d, statement %d: the filter is not probed by a lookup in an index alone: %q", page, i+1, p)
					}
				}
				if !found {
					t.Errorf("page %d: no plan searches %s: %q", page, tc.page, plans[1:])
				}
				if next == "" {
					break
				}
				q.Cursor = next
			}
		})
	}
}

// listPlans lists q with opts and returns the query plan of every
// statement List ran on objects, and the page's next cursor.
func listPlans(t *testing.T, s *Store, q provider.ListQuery, opts listOptions) ([]string, string) {
	t.Helper()
	type stmt struct {
		query string
		args  []any
	}
	var stmts []stmt
	opts.trace = func(query string, args []any) { stmts = append(stmts, stmt{query, args}) }
	page, err := s.list(t.Context(), q, opts)
	if err != nil {
		t.Fatal(err)
	}
	var plans []string
	for _, st := range stmts {
		rows, err := s.ro.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+st.query, st.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		plans = append(plans, strings.Join(plan, "; "))
	}
	return plans, page.NextCursor
}

// BenchmarkList lists a filtered, sorted page from 100,000 objects.
func BenchmarkList(b *testing.B) {
	clock := newClock()
	s := openTestStore(b, testTarget(b), Options{Now: clock.Now})
	ctx := b.Context()
	if err := s.Seed(ctx); err != nil {
		b.Fatal(err)
	}
	err := s.inWriteTx(ctx, func(tx querier) error {
		for i := range 100_000 {
			status := provider.StatusDraft
			if i%3 == 0 {
				status = provider.StatusPublished
			}
			n := provider.NewObject{Type: "posts", Title: fmt.Sprintf("Post %d", i), Slug: fmt.Sprintf("post-%d", i), Status: status,
				Fields: json.RawMessage(fmt.Sprintf(`{"author":"a%d","views":%d}`, i%50, i))}
			if _, err := insertObject(ctx, tx, n, int64(i)*int64(time.Second)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// The published page at offset 5,000, reached the only way there is:
	// by paging.
	deep := provider.ListQuery{Type: "posts", Status: "published", Limit: 100}
	for range 50 {
		page, err := s.List(ctx, deep)
		if err != nil {
			b.Fatal(err)
		}
		deep.Cursor = page.NextCursor
	}
	deep.Limit = 20
	queries := map[string]provider.ListQuery{
		"default":          {Type: "posts", Limit: 20},
		"status":           deep,
		"field filter":     {Type: "posts", Limit: 20, Filter: []provider.Condition{{Path: "fields.author", Op: provider.OpEq, Value: "a7"}}},
		"field sort+range": {Type: "posts", Limit: 20, Sort: []provider.SortKey{{Path: "fields.views", Desc: true}}, Filter: []provider.Condition{{Path: "fields.views", Op: provider.OpGt, Value: 50000.0}}},
	}
	for name, q := range queries {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.List(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
