package local

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/testtier"
	"github.com/keygate/keygate/provider"
)

// jsonPool holds JSON values of every kind, including values ORDER BY ranks
// equal across kinds (2 and 2.0; 0, -0.0 and false; 1 and true; the string
// "[1]" and the array [1]). "" stands for a missing field.
var jsonPool = []string{"", "", "null", "-1", "0", "1", "2", "3", "0.5", "2.0", "-0.0", "1e300", "9007199254740993",
	`""`, `"a"`, `"b"`, `"B"`, `"10"`, `"9"`, `"[1]"`, `"é"`, "true", "false", "[1]", `["a"]`, `{"k":1}`}

var titlePool = []string{"Alpha", "Beta", "alpha", "Gamma", "Beta"}

// mixedFields draws the fields of one object of type "mix": a, b and n.x
// from jsonPool.
func mixedFields(r *rand.Rand) json.RawMessage {
	var parts []string
	for _, name := range []string{"a", "b"} {
		if v := jsonPool[r.IntN(len(jsonPool))]; v != "" {
			parts = append(parts, fmt.Sprintf("%q:%s", name, v))
		}
	}
	if v := jsonPool[r.IntN(len(jsonPool))]; v != "" {
		parts = append(parts, `"n":{"x":`+v+`}`)
	}
	return json.RawMessage("{" + strings.Join(parts, ",") + "}")
}

// newMixedStore is a store with a type "mix" (fields a, b and n, so a and b
// are indexed and n.x is not) holding n objects of random values, with
// duplicate titles, times and values, some of them updated.
func newMixedStore(t *testing.T, r *rand.Rand, n int) (*Store, *testClock) {
	t.Helper()
	s, clock := newTestStore(t)
	fillMixed(t, s, clock, r, n)
	return s, clock
}

// fillMixed makes newMixedStore's type and objects in s.
func fillMixed(t *testing.T, s *Store, clock *testClock, r *rand.Rand, n int) {
	t.Helper()
	if err := s.CreateType(t.Context(), contentType("mix", "a", "b", "n")); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range n {
		ids = append(ids, createMixed(t, s, clock, r, fmt.Sprintf("o-%d", i)).ID)
	}
	for range n / 4 {
		if r.IntN(2) == 0 {
			clock.Add(time.Second)
		}
		title := titlePool[r.IntN(len(titlePool))]
		if _, err := s.Update(t.Context(), provider.Patch{Type: "mix", ID: ids[r.IntN(len(ids))], Title: &title, Fields: mixedFields(r)}); err != nil {
			t.Fatal(err)
		}
	}
}

func createMixed(t *testing.T, s *Store, clock *testClock, r *rand.Rand, slug string) provider.Object {
	t.Helper()
	if r.IntN(3) == 0 {
		clock.Add(time.Second)
	}
	return mustCreate(t, s, provider.NewObject{Type: "mix", Slug: slug, Title: titlePool[r.IntN(len(titlePool))],
		Status: []string{"draft", "published"}[r.IntN(2)], Fields: mixedFields(r)})
}

var sortPaths = []string{"fields.a", "fields.b", "fields.n.x", "title", "status", "version", "created_at", "modified_at", "slug", "id"}

// mixedFilters mixes filters List can count from an index with ones it
// cannot.
var mixedFilters = [][]provider.Condition{
	nil,
	{{Path: "status", Op: provider.OpEq, Value: "published"}},
	{{Path: "fields.a", Op: provider.OpGt, Value: 0.0}},
	{{Path: "fields.b", Op: provider.OpIn, Value: []any{"a", "b", "10"}}},
	{{Path: "fields.a", Op: provider.OpIn, Value: []any{1.0, "a", true}}},
	{{Path: "fields.n.x", Op: provider.OpNe, Value: 1.0}},
	{{Path: "title", Op: provider.OpGte, Value: "B"}},
	{{Path: "fields.b", Op: provider.OpLt, Value: "b"}, {Path: "status", Op: provider.OpEq, Value: "draft"}},
}

// randomSort draws n sort keys with the directions in the bits of dirs.
func randomSort(r *rand.Rand, n int, dirs int) []provider.SortKey {
	keys := make([]provider.SortKey, n)
	for i := range keys {
		keys[i] = provider.SortKey{Path: sortPaths[r.IntN(len(sortPaths))], Desc: dirs&(1<<i) != 0}
	}
	return keys
}

// unpaged returns the ids q matches, in q's order, from one query without
// a limit or a position.
func unpaged(t *testing.T, s *Store, q provider.ListQuery) []string {
	t.Helper()
	declared, err := typeFields(t.Context(), s.ro, q.Type)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := buildList(s.d, q, declared)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.ro.QueryContext(t.Context(), "SELECT id FROM objects WHERE "+sp.where+" ORDER BY "+sp.orderBy(0, false), sp.args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

var plans = []struct {
	name string
	plan listPlan
}{{"auto", planAuto}, {"ordered", planOrdered}, {"seek", planSeek}, {"scan", planScan}, {"probe", planProbe}}

// budgets are cursor length limits: the default, and 1, which turns every
// cursor into an anchor cursor.
var budgets = []int{0, 1}

// TestListKeysetMatchesUnpaged pages through random data (mixed JSON kinds,
// NULLs, missing fields, duplicate sort values) with every number of sort
// keys up to three in every combination of directions, under every plan and
// both cursor kinds, and checks that the pages put together are exactly the
// unpaged query: nothing skipped, nothing repeated, same order.
func TestListKeysetMatchesUnpaged(t *testing.T) {
	for seed := range uint64(testtier.Pick(1, 3)) {
		r := rand.New(rand.NewPCG(seed, 7))
		s, _ := newMixedStore(t, r, testtier.Pick(20, 48))
		for nkeys := 1; nkeys <= 3; nkeys++ {
			for dirs := range 1 << nkeys {
				q := provider.ListQuery{Type: "mix", Sort: randomSort(r, nkeys, dirs), Filter: mixedFilters[r.IntN(len(mixedFilters))],
					Limit: []int{1, 2, 3, 5}[r.IntN(4)]}
				want := unpaged(t, s, q)
				for _, p := range plans {
					for _, budget := range budgets {
						name := fmt.Sprintf("seed %d, sort %v, filter %v, limit %d, plan %s, cursor budget %d", seed, q.Sort, q.Filter, q.Limit, p.name, budget)
						got := pageAll(t, s, q, listOptions{plan: p.plan, maxCursorLen: budget}, len(want), name)
						if !slices.Equal(got, want) {
							t.Fatalf("%s:\n paged %v\n want  %v", name, got, want)
						}
					}
				}
			}
		}
	}
}

// pageAll pages through q and returns the ids in page order, checking the
// total of every page on the way.
func pageAll(t *testing.T, s *Store, q provider.ListQuery, opts listOptions, matches int, name string) []string {
	t.Helper()
	var got []string
	for pages := 0; ; pages++ {
		if pages > matches+1 {
			t.Fatalf("%s: paging does not end", name)
		}
		page, err := s.list(t.Context(), q, opts)
		if err != nil {
			t.Fatalf("%s: page %d: %v", name, pages+1, err)
		}
		if len(page.Objects) > q.Limit || page.NextCursor != "" && len(page.Objects) != q.Limit {
			t.Fatalf("%s: page %d has %d objects, limit %d, next %q", name, pages+1, len(page.Objects), q.Limit, page.NextCursor)
		}
		if page.TotalAtLeast && page.Total > matches || !page.TotalAtLeast && page.Total != matches {
			t.Fatalf("%s: page %d: total %d (at least: %v), want %d", name, pages+1, page.Total, page.TotalAtLeast, matches)
		}
		for _, o := range page.Objects {
			got = append(got, o.ID)
		}
		if page.NextCursor == "" {
			return got
		}
		q.Cursor = page.NextCursor
	}
}

// TestListKeysetWritesBetweenPages inserts and deletes objects between
// pages, the last object of the page just read included, and checks that
// every object present throughout is returned exactly once and in order,
// and that no object is returned twice.
func TestListKeysetWritesBetweenPages(t *testing.T) {
	sorts := [][]provider.SortKey{
		nil,
		{{Path: "fields.a"}},
		{{Path: "fields.a", Desc: true}},
		{{Path: "fields.b", Desc: true}, {Path: "fields.a"}},
		{{Path: "title"}, {Path: "fields.n.x", Desc: true}},
		{{Path: "created_at", Desc: true}},
	}
	for seed := range uint64(testtier.Pick(1, 8)) {
		r := rand.New(rand.NewPCG(seed, 11))
		s, clock := newMixedStore(t, r, 40)
		next := 0
		for _, sort := range sorts {
			for _, p := range plans {
				for _, budget := range budgets {
					q := provider.ListQuery{Type: "mix", Sort: sort, Filter: mixedFilters[r.IntN(len(mixedFilters))], Limit: 3}
					name := fmt.Sprintf("seed %d, sort %v, filter %v, plan %s, cursor budget %d", seed, sort, q.Filter, p.name, budget)
					before := unpaged(t, s, q)
					present := map[string]bool{} // in the store at the start, not deleted since
					for _, id := range before {
						present[id] = true
					}
					inserted := map[string]bool{}
					seen := map[string]bool{}
					var got []string
					for pages := 0; ; pages++ {
						if pages > 3*len(before)+10 {
							t.Fatalf("%s: paging does not end", name)
						}
						page, err := s.list(t.Context(), q, listOptions{plan: p.plan, maxCursorLen: budget})
						if err != nil {
							t.Fatalf("%s: page %d: %v", name, pages+1, err)
						}
						for _, o := range page.Objects {
							if seen[o.ID] {
								t.Fatalf("%s: %s returned twice", name, o.ID)
							}
							seen[o.ID] = true
							got = append(got, o.ID)
						}
						if page.NextCursor == "" {
							break
						}
						q.Cursor = page.NextCursor
						// Write between pages: delete the page's last object
						// (what a cursor resumes after), another object seen or
						// not, and insert one. The object after the last is
						// spared: an anchor cursor falls back on it, and with
						// both gone refuses (TestListAnchorCursor).
						last := page.Objects[len(page.Objects)-1].ID
						order := unpaged(t, s, provider.ListQuery{Type: "mix", Sort: sort, Filter: q.Filter})
						spared := order[slices.Index(order, last)+1]
						victims := []string{last}
						all := unpaged(t, s, provider.ListQuery{Type: "mix"})
						if v := all[r.IntN(len(all))]; v != spared {
							victims = append(victims, v)
						}
						for _, id := range victims {
							if _, err := s.Delete(t.Context(), "mix", id); err != nil && !errors.Is(err, provider.ErrNotFound) {
								t.Fatal(err)
							}
							delete(present, id)
						}
						next++
						inserted[createMixed(t, s, clock, r, fmt.Sprintf("w-%d", next)).ID] = true
					}
					for id := range present {
						if !seen[id] {
							t.Errorf("%s: %s, present throughout, was skipped", name, id)
						}
					}
					for _, id := range got {
						if !slices.Contains(before, id) && !inserted[id] {
							t.Errorf("%s: returned %s, which never matched", name, id)
						}
					}
					// The objects present throughout keep their order.
					keep := func(ids []string) []string {
						return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !present[id] })
					}
					if after := keep(unpaged(t, s, provider.ListQuery{Type: "mix", Sort: sort, Filter: q.Filter})); !slices.Equal(keep(got), after) {
						t.Errorf("%s: order changed:\n got  %v\n want %v", name, keep(got), after)
					}
				}
			}
		}
	}
}

// TestListAnchorCursor checks the cursor that names objects instead of
// carrying sort values too long for it: it resumes after the last object,
// or before the next one when the last was deleted, and refuses clearly
// when both are gone.
func TestListAnchorCursor(t *testing.T) {
	s, clock := newPostsStore(t)
	long := strings.Repeat("x", 400)
	var ids []string
	for i := range 6 {
		clock.Add(time.Second)
		ids = append(ids, mustCreate(t, s, provider.NewObject{Title: fmt.Sprintf("%s %d", long, i), Slug: fmt.Sprintf("long-%d", i)}).ID)
	}
	q := provider.ListQuery{Type: "posts", Sort: []provider.SortKey{{Path: "title"}}, Limit: 2}
	first, err := s.List(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.NextCursor) > maxCursorLen {
		t.Fatalf("cursor of %d characters, over the %d allowed", len(first.NextCursor), maxCursorLen)
	}
	q.Cursor = first.NextCursor
	resume := func() ([]string, error) {
		page, err := s.List(t.Context(), q)
		var got []string
		for _, o := range page.Objects {
			got = append(got, o.ID)
		}
		return got, err
	}
	if got, err := resume(); err != nil || !slices.Equal(got, ids[2:4]) {
		t.Fatalf("resumed at %v, %v; want %v", got, err, ids[2:4])
	}
	// Changing the last object (its version moves) or deleting it: resume
	// before the next one.
	if _, err := s.Update(t.Context(), provider.Patch{Type: "posts", ID: ids[1], Fields: json.RawMessage(`{"views":1}`)}); err != nil {
		t.Fatal(err)
	}
	if got, err := resume(); err != nil || !slices.Equal(got, ids[2:4]) {
		t.Fatalf("after the last object changed: resumed at %v, %v; want %v", got, err, ids[2:4])
	}
	if _, err := s.Delete(t.Context(), "posts", ids[1]); err != nil {
		t.Fatal(err)
	}
	if got, err := resume(); err != nil || !slices.Equal(got, ids[2:4]) {
		t.Fatalf("after the last object was deleted: resumed at %v, %v; want %v", got, err, ids[2:4])
	}
	if _, err := s.Delete(t.Context(), "posts", ids[2]); err != nil {
		t.Fatal(err)
	}
	_, err = resume()
	wantFieldError(t, err, "cursor", "can no longer be resumed")
}

// TestListCursorIntegrity checks that a cursor is good only for its store,
// type and sort, that any altered byte is refused, and that even a cursor
// signed with the store's key carries values only as SQL arguments.
func TestListCursorIntegrity(t *testing.T) {
	s := newLibrary(t)
	ctx := t.Context()
	q := provider.ListQuery{Type: "books", Sort: []provider.SortKey{{Path: "title"}}, Limit: 2}
	page, err := s.List(ctx, q)
	if err != nil || page.NextCursor == "" {
		t.Fatalf("page = %+v, %v", page, err)
	}
	c := page.NextCursor
	with := func(change func(*provider.ListQuery)) error {
		q2 := q
		q2.Cursor = c
		change(&q2)
		_, err := s.List(ctx, q2)
		return err
	}
	if err := with(func(*provider.ListQuery) {}); err != nil {
		t.Fatalf("own cursor: %v", err)
	}
	// The filter may change: a position in the order means the same thing.
	if err := with(func(q *provider.ListQuery) { q.Status = "published" }); err != nil {
		t.Errorf("cursor with another filter: %v", err)
	}
	for name, change := range map[string]func(*provider.ListQuery){
		"another type":      func(q *provider.ListQuery) { q.Type = "films" },
		"another sort":      func(q *provider.ListQuery) { q.Sort = []provider.SortKey{{Path: "slug"}} },
		"another direction": func(q *provider.ListQuery) { q.Sort = []provider.SortKey{{Path: "title", Desc: true}} },
		"the default sort":  func(q *provider.ListQuery) { q.Sort = nil },
	} {
		wantFieldError(t, with(change), "cursor", "not a cursor from this store")
		_ = name
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(c, cursorPrefix))
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		for _, bit := range []byte{1, 0x80} {
			altered := slices.Clone(raw)
			altered[i] ^= bit
			q2 := q
			q2.Cursor = cursorPrefix + base64.RawURLEncoding.EncodeToString(altered)
			_, err := s.List(ctx, q2)
			wantFieldError(t, err, "cursor", "not a cursor from this store")
		}
	}
	// Another store's cursor for the same type and sort.
	other := newLibrary(t)
	q2 := q
	q2.Cursor = c
	_, err = other.List(ctx, q2)
	wantFieldError(t, err, "cursor", "not a cursor from this store")

	// A cursor signed with the store's own key whose value is SQL is only a
	// position: titles after it.
	declared, _ := typeFields(ctx, s.ro, "books")
	sp, err := buildList(s.d, q, declared)
	if err != nil {
		t.Fatal(err)
	}
	key, err := s.cursorKey(ctx, s.ro)
	if err != nil {
		t.Fatal(err)
	}
	evil := listRow{keys: []any{"Dune'); DROP TABLE objects; --", int64(0), "obj_"}}
	q2.Cursor = encodeCursor(key, sp, evil, listRow{}, maxCursorLen)
	got, err := s.List(ctx, q2)
	if err != nil || titles(got.Objects) != "Emma,Solaris" {
		t.Errorf("after a title holding SQL: %q, %v", titles(got.Objects), err)
	}
	if all, err := s.List(ctx, provider.ListQuery{Type: "books", Limit: 100}); err != nil || len(all.Objects) != 5 {
		t.Errorf("books after the SQL cursor: %d, %v", len(all.Objects), err)
	}
}

// TestListTotal checks when Total is exact and when it is a lower bound.
func TestListTotal(t *testing.T) {
	s, _ := newPostsStore(t)
	for i := range 7 {
		mustCreate(t, s, provider.NewObject{Title: fmt.Sprintf("Item %d", i), Fields: json.RawMessage(fmt.Sprintf(`{"author":"pager","views":%d,"body":{"n":%d}}`, i, i))})
	}
	mustCreate(t, s, provider.NewObject{Title: "Other", Fields: json.RawMessage(`{"author":"other"}`)})
	byAuthor := []provider.Condition{{Path: "fields.author", Op: provider.OpEq, Value: "pager"}}
	// body.n is a nested path, which no index holds: List does not count.
	nested := []provider.Condition{{Path: "fields.body.n", Op: provider.OpGte, Value: 0}}
	type want struct {
		total   int
		atLeast bool
	}
	tests := []struct {
		name   string
		filter []provider.Condition
		cap    int
		pages  []want
	}{
		{"counted, under the cap", byAuthor, 0, []want{{7, false}, {7, false}, {7, false}}},
		{"counted, over the cap", byAuthor, 5, []want{{5, true}, {5, true}, {5, true}}},
		{"counted, at the cap", byAuthor, 7, []want{{7, false}, {7, false}, {7, false}}},
		{"nothing matches", []provider.Condition{{Path: "fields.author", Op: provider.OpEq, Value: "nobody"}}, 0, []want{{0, false}}},
		{"not counted: what the pages show", nested, 0, []want{{4, true}, {4, true}, {1, true}}},
		{"not counted, one page", []provider.Condition{{Path: "fields.body.n", Op: provider.OpGte, Value: 5}}, 0, []want{{2, false}}},
		{"$ne is not counted", []provider.Condition{{Path: "fields.author", Op: provider.OpNe, Value: "other"}}, 0, []want{{4, true}, {4, true}, {1, true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := provider.ListQuery{Type: "posts", Filter: tc.filter, Limit: 3}
			for i, w := range tc.pages {
				page, err := s.list(t.Context(), q, listOptions{totalCap: tc.cap})
				if err != nil {
					t.Fatal(err)
				}
				if page.Total != w.total || page.TotalAtLeast != w.atLeast {
					t.Errorf("page %d: total %d, at least %v; want %d, %v", i+1, page.Total, page.TotalAtLeast, w.total, w.atLeast)
				}
				if (page.NextCursor == "") != (i == len(tc.pages)-1) {
					t.Fatalf("page %d of %d: next %q", i+1, len(tc.pages), page.NextCursor)
				}
				q.Cursor = page.NextCursor
			}
		})
	}
}

// TestMigrateIndexesExistingTypes opens a store written before keyset
// listing: its types get their field indexes and listings use them, and a
// cursor key is made.
func TestMigrateIndexesExistingTypes(t *testing.T) {
	skipOnPostgres(t, "SQLite's migrations 1-3; TestPostgresOpenMakesMissingFieldIndexes covers Postgres")
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keygate.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{migrations[0], migrations[1], migrations[2], "PRAGMA user_version = 3",
		`INSERT INTO content_types (name, fields, created_at) VALUES ('notes', '["author","Rank","rank"]', 0), ('free', '[]', 0)`,
		`INSERT INTO objects (id, type, slug, title, status, version, fields, created_at, modified_at) VALUES
			('obj_a', 'notes', 'a', 'A', 'draft', 1, '{"author":"x","Rank":2,"rank":1}', 1, 1),
			('obj_b', 'notes', 'b', 'B', 'draft', 1, '{"author":"x","Rank":1,"rank":2}', 2, 2),
			('obj_c', 'notes', 'c', 'C', 'draft', 1, '{"author":"y"}', 3, 3)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateType(ctx, contentType("later", "score")); err != nil {
		t.Fatal(err)
	}
	var indexes []string
	rows, err := s.ro.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'objects:%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		indexes = append(indexes, name)
	}
	rows.Close()
	if want := []string{"objects:later:score", "objects:notes:^rank", "objects:notes:author", "objects:notes:rank"}; !slices.Equal(indexes, want) {
		t.Errorf("field indexes %q, want %q", indexes, want)
	}
	if _, err := s.cursorKey(ctx, s.ro); err != nil {
		t.Fatal(err)
	}
	q := provider.ListQuery{Type: "notes", Filter: []provider.Condition{{Path: "fields.author", Op: provider.OpEq, Value: "x"}},
		Sort: []provider.SortKey{{Path: "fields.Rank"}}, Limit: 1}
	plans, next := listPlans(t, s, q, listOptions{})
	if !strings.Contains(plans[0], "COVERING INDEX objects:notes:author") {
		t.Errorf("count plan %q does not read the migrated index", plans[0])
	}
	q.Cursor = next
	page, err := s.List(ctx, q)
	if err != nil || len(page.Objects) != 1 || page.Objects[0].ID != "obj_a" || page.Total != 2 {
		t.Errorf("second page %+v, %v", page, err)
	}
}
