package local

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/internal/pgtest"
	"github.com/keygate/keygate/provider"
)

// The tests in this file are about Postgres itself: they open their own
// databases on the KEYGATE_TEST_POSTGRES server (and skip without one),
// whichever store KEYGATE_TEST_STORE picks for the rest.

// rawDB is a plain connection to dsn, for what the store does not do.
func rawDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// withPassword returns dsn with the password pw.
func withPassword(t *testing.T, dsn, pw string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), pw)
	return u.String()
}

func canary() string { return "canary-" + rand.Text() }

func TestRebind(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SELECT ?, ?", "SELECT $1, $2"},
		{"?1 = ?2 OR ?1 = ''", "$1 = $2 OR $1 = ''"},
		{"?2 AND ?", "$2 AND $3"}, // a bare ? follows the largest number so far, as in SQLite
		{"? ?3 ?", "$1 $3 $4"},
		{"x = ?10", "x = $10"},
		{`'?' "a?b" ?`, `'?' "a?b" $1`},
		{"'it''s ?' ?", "'it''s ?' $1"},
		{"-- what?\n?", "-- what?\n$1"},
		{`CREATE INDEX "objects:t:f" ON objects (type)`, `CREATE INDEX "objects:t:f" ON objects (type)`},
		{"'unterminated ?", "'unterminated ?"},
	}
	for _, tc := range tests {
		if got := rebind(tc.in); got != tc.want {
			t.Errorf("rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	d := &dialect{pg: true}
	for range 2 * maxBoundStatements {
		d.bind(fmt.Sprintf("SELECT %d, ?", mrand.Int()))
	}
	if n := len(d.bound); n > maxBoundStatements {
		t.Errorf("%d statements cached, more than %d", n, maxBoundStatements)
	}
}

func TestMaskURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://user:s3cret@db.example:5432/kg?sslmode=require", "postgres://user:***@db.example:5432/kg?sslmode=require"},
		{"postgresql://user@db/kg", "postgresql://user@db/kg"},
		{"postgres://db/kg?user=u&password=s3cret", "postgres://db/kg?password=***&user=u"},
		{"postgres://u:p%40ss@db/kg", "postgres://u:***@db/kg"},
		{"postgres://u:s3cret@db:bad port/kg", "(a Postgres URL that cannot be parsed, not shown: it may hold a password)"},
	}
	for _, tc := range tests {
		if got := maskURL(tc.in); got != tc.want {
			t.Errorf("maskURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestMergePatchIsJSONPatch checks the merge patch Postgres updates use
// against SQLite's json_patch.
func TestMergePatchIsJSONPatch(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "keygate.db"), Options{})
	tests := []struct{ target, patch string }{
		{`{"a":1,"b":2}`, `{"a":null,"c":3}`},
		{`{"a":{"x":1,"y":2}}`, `{"a":{"x":null,"z":[1,{"k":null}]}}`},
		{`{"a":[1,2]}`, `{"a":{"b":1}}`},
		{`{"a":{"b":1}}`, `{"a":"text"}`},
		{`{}`, `{"n":{"m":{"o":null,"p":true}}}`},
		{`{"a":1}`, `{}`},
	}
	for _, tc := range tests {
		got, err := mergePatch(json.RawMessage(tc.target), json.RawMessage(tc.patch))
		if err != nil {
			t.Fatal(err)
		}
		var want string
		if err := s.ro.QueryRowContext(t.Context(), `SELECT json_patch(?, ?)`, tc.target, tc.patch).Scan(&want); err != nil {
			t.Fatal(err)
		}
		var g, w any
		_ = json.Unmarshal([]byte(got), &g)
		_ = json.Unmarshal([]byte(want), &w)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("merge %s into %s: got %s, json_patch gives %s", tc.patch, tc.target, got, want)
		}
	}
}

func TestPostgresOpenCreatesOnce(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := t.Context()
	// Two replicas start together on an empty database: one of them
	// creates the store.
	stores := make([]*Store, 4)
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(ctx, dsn, Options{}) })
	}
	wg.Wait()
	created := 0
	for i, s := range stores {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		defer s.Close()
		if s.Created() {
			created++
			if err := s.Seed(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if created != 1 {
		t.Fatalf("%d of %d replicas created the store, want 1", created, len(stores))
	}
	s := openTestStore(t, dsn, Options{})
	if s.Created() {
		t.Error("Created() = true when reopening")
	}
	types, err := s.Types(ctx)
	if err != nil || len(types) != 1 || types[0].Count != 3 {
		t.Errorf("after reopening, types = %+v, %v", types, err)
	}
}

func TestPostgresOpenRefusesNewerSchema(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	openTestStore(t, dsn, Options{}).Close()
	if _, err := rawDB(t, dsn).Exec(`UPDATE keygate_schema SET version = 99 WHERE component = 'store'`); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), dsn, Options{})
	if err == nil || !strings.Contains(err.Error(), "version 99") || !strings.Contains(err.Error(), "upgrade keygate") {
		t.Fatalf("Open of a newer store: %v", err)
	}
}

// TestPostgresOpenErrors opens bad and unreachable URLs holding a canary
// password: it must never be shown.
func TestPostgresOpenErrors(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	pw := canary()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	tests := []struct {
		name, url   string
		unavailable bool
		shows       string
	}{
		{"unreachable", "postgres://keygate:" + pw + "@" + closed + "/kg?sslmode=disable", true, "postgres://keygate:***@" + closed + "/kg"},
		{"unreachable, password as a parameter", "postgresql://" + closed + "/kg?sslmode=disable&user=keygate&password=" + pw, true, "password=***"},
		{"not a URL", "postgres://keygate:" + pw + "@127.0.0.1:notaport/kg", false, "cannot be parsed"},
		{"bad parameter", "postgres://keygate:" + pw + "@127.0.0.1/kg?sslmode=sometimes", false, "postgres://keygate:***@127.0.0.1/kg"},
		{"no such database", withPassword(t, pgtest.WithDatabase(t, dsn, "kg_missing_db"), pw), false, "postgres://keygate:***@"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.url, Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			if strings.Contains(msg, pw) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), pw) {
				t.Fatalf("the error shows the password: %s", msg)
			}
			if !strings.HasPrefix(msg, "opening store") || !strings.Contains(msg, tc.shows) {
				t.Errorf("error %q does not start with context or lacks %q", msg, tc.shows)
			}
			if errors.Is(err, provider.ErrUnavailable) != tc.unavailable {
				t.Errorf("errors.Is(ErrUnavailable) = %v, want %v: %s", !tc.unavailable, tc.unavailable, msg)
			}
		})
	}
	s := openTestStore(t, withPassword(t, dsn, pw), Options{})
	for _, shown := range []string{s.String(), fmt.Sprint(s), fmt.Sprintf("%+v", s), fmt.Sprintf("%v", *s.pg)} {
		if strings.Contains(shown, pw) || !strings.Contains(shown, ":***@") {
			t.Errorf("the store shows as %q", shown)
		}
	}
}

// TestPostgresSecretNeverStored looks for every token and its secret in
// every row of every table.
func TestPostgresSecretNeverStored(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	clock := newClock()
	s := openTestStore(t, dsn, Options{Now: clock.Now})
	var secrets []string
	for range 3 {
		tok, key := mint(t, s, clock, "k", "admin")
		if _, err := s.Verify(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		issued := rotate(t, s, key.ID, 0)
		for _, tk := range []string{tok, issued.Secret.Reveal()} {
			secrets = append(secrets, tk, secretPart(tk))
		}
	}
	db := rawDB(t, dsn)
	rows, err := db.Query(`SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	if !slices.Contains(tables, "keys") {
		t.Fatalf("tables %v", tables)
	}
	for _, table := range tables {
		rows, err := db.Query(`SELECT t::text FROM "` + table + `" t`) // names from pg_tables
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var text string
			if err := rows.Scan(&text); err != nil {
				t.Fatal(err)
			}
			for _, sec := range secrets {
				if strings.Contains(text, sec) {
					t.Errorf("table %s holds a secret", table)
				}
			}
		}
		rows.Close()
	}
}

// TestPostgresOpenMakesMissingFieldIndexes: a type whose field index is
// missing gets it when a replica opens the store; names too long for
// Postgres are hashed, not cut.
func TestPostgresOpenMakesMissingFieldIndexes(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := t.Context()
	s := openTestStore(t, dsn, Options{})
	long := strings.Repeat("l", 60)
	if err := s.CreateType(ctx, contentType("notes", "author", "Rank", "rank", long+"1", long+"2")); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, dsn)
	if _, err := db.Exec(`DROP INDEX "objects:notes:author"`); err != nil {
		t.Fatal(err)
	}
	openTestStore(t, dsn, Options{})
	var got []string
	rows, err := db.Query(`SELECT indexname FROM pg_indexes WHERE tablename = 'objects' AND indexname LIKE 'objects:%' ORDER BY indexname`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		got = append(got, name)
	}
	rows.Close()
	want := []string{"objects:notes:Rank", "objects:notes:author", "objects:notes:rank",
		pgFieldIndexName("notes", long+"1"), pgFieldIndexName("notes", long+"2")}
	slices.Sort(want)
	if !slices.Equal(got, want) || want[0] == want[1] {
		t.Errorf("field indexes %q, want %q", got, want)
	}
}

// pgIdent is name as EXPLAIN prints it.
func pgIdent(name string) string {
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return `"` + name + `"`
		}
	}
	return name
}

// pgListPlans lists q and returns the plan of every statement List ran on
// objects, planned with sequential scans, bitmap scans and (unless sorts)
// sorts priced out: what remains shows whether an index can serve the
// statement, whatever a tiny table's statistics would make the planner
// prefer.
func pgListPlans(t *testing.T, s *Store, q provider.ListQuery, opts listOptions, sorts bool) ([]string, string) {
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
	tx, err := s.roDB.BeginTx(t.Context(), &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	settings := []string{"enable_seqscan", "enable_bitmapscan"}
	if !sorts {
		settings = append(settings, "enable_sort", "enable_incremental_sort")
	}
	for _, name := range settings {
		if _, err := tx.Exec("SET LOCAL " + name + " = off"); err != nil {
			t.Fatal(err)
		}
	}
	var plans []string
	for _, st := range stmts {
		rows, err := tx.QueryContext(t.Context(), "EXPLAIN (COSTS OFF) "+s.d.bind(st.query), st.args...)
		if err != nil {
			t.Fatalf("%v: %s", err, st.query)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, strings.TrimSpace(line))
		}
		rows.Close()
		plans = append(plans, strings.Join(plan, "; "))
	}
	return plans, page.NextCursor
}

// TestPostgresListUsesIndexes is TestListUsesIndexes on Postgres: every
// statement of the common listings, first pages and later ones, reads an
// index, in order unless it sorts, and the count and the page read the
// index each should.
func TestPostgresListUsesIndexes(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	clock := newClock()
	s := openTestStore(t, dsn, Options{Now: clock.Now})
	if err := s.CreateType(t.Context(), provider.ContentType{Name: "posts", Fields: []string{"body", "author", "tags", "views"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		clock.Add(1e9)
		mustCreate(t, s, provider.NewObject{Title: fmt.Sprintf("Post %02d", i), Status: []string{"draft", "published"}[i%2],
			Fields: json.RawMessage(fmt.Sprintf(`{"author":"a%d","views":%d}`, i%2, i))})
	}
	// Enough other posts, and statistics, for the planner to weigh the
	// indexes as it would on a real store.
	if _, err := s.rw.ExecContext(t.Context(), `
		INSERT INTO objects (id, type, slug, title, status, version, fields, created_at, modified_at)
		SELECT 'obj_filler' || i, 'posts', 'filler-' || i, 'Filler ' || i, CASE WHEN i % 3 = 0 THEN 'published' ELSE 'draft' END, 1,
			jsonb_build_object('author', 'z' || (i % 50), 'views', 1000 + i), i, i
		FROM generate_series(1, 5000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.rw.ExecContext(t.Context(), `ANALYZE objects`); err != nil {
		t.Fatal(err)
	}
	views := pgFieldIndexName("posts", "views")
	author := pgFieldIndexName("posts", "author")
	byAuthor := []provider.Condition{{Path: "fields.author", Op: provider.OpEq, Value: "a1"}}
	byViews := []provider.SortKey{{Path: "fields.views", Desc: true}}
	tests := []struct {
		name        string
		q           provider.ListQuery
		cap         int
		count, page string // "" for any index
		sorts       bool
	}{
		{"default", provider.ListQuery{Type: "posts"}, 0, "", "objects_type_modified", false},
		{"by status", provider.ListQuery{Type: "posts", Status: "published"}, 0, "objects_type_status_modified", "objects_type_status_modified", false},
		{"by created_at", provider.ListQuery{Type: "posts", Sort: []provider.SortKey{{Path: "created_at"}}}, 0, "", "objects_type_created_modified", false},
		{"by title", provider.ListQuery{Type: "posts", Sort: []provider.SortKey{{Path: "title", Desc: true}}}, 0, "", "objects_type_title", false},
		{"by field", provider.ListQuery{Type: "posts", Sort: byViews}, 0, "", views, false},
		{"by field ascending", provider.ListQuery{Type: "posts", Sort: []provider.SortKey{{Path: "fields.views"}}}, 0, "", views, false},
		{"field range sorted by it", provider.ListQuery{Type: "posts", Sort: byViews,
			Filter: []provider.Condition{{Path: "fields.views", Op: provider.OpGte, Value: 3}}}, 0, views, views, false},
		{"field filter, many matches, sorted by another field", provider.ListQuery{Type: "posts", Filter: byAuthor, Sort: byViews}, 1, author, views, false},
		{"status, many matches, sorted by a field", provider.ListQuery{Type: "posts", Status: "published", Sort: byViews}, 1, "objects_type_status_modified", views, false},
		{"field filter, many matches, newest first", provider.ListQuery{Type: "posts", Filter: byAuthor}, 1, author, author, false},
		{"field filter, few matches, newest first", provider.ListQuery{Type: "posts", Filter: byAuthor}, 0, author, author, false},
		{"sorted by status", provider.ListQuery{Type: "posts", Sort: []provider.SortKey{{Path: "status"}}}, 0, "", "objects_type_status_modified", false},
		{"field filter, few matches, sorted by another field", provider.ListQuery{Type: "posts", Filter: byAuthor, Sort: byViews}, 0, author, author, true},
		{"slug", provider.ListQuery{Type: "posts", Filter: []provider.Condition{{Path: "slug", Op: provider.OpIn, Value: []any{"post-03", "post-04", "post-05"}}}}, 0,
			"objects_type_slug", "objects_type_slug", true},
	}
	uses := func(plan, index string) bool {
		scan := strings.Contains(plan, "Index Scan using ") || strings.Contains(plan, "Index Scan Backward using ") || strings.Contains(plan, "Index Only Scan")
		return scan && (index == "" || strings.Contains(plan, " using "+pgIdent(index)+" on "))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.Limit = 2
			for page := 1; page <= 3; page++ {
				plans, next := pgListPlans(t, s, q, listOptions{totalCap: tc.cap}, tc.sorts)
				t.Logf("page %d: %q", page, plans)
				if len(plans) < 2 || !uses(plans[0], tc.count) {
					t.Fatalf("page %d: the count's plan %q does not read the index %s", page, plans[0], tc.count)
				}
				found := false
				for i, p := range plans[1:] {
					found = found || uses(p, tc.page)
					if !uses(p, "") || strings.Contains(p, "Seq Scan") || !tc.sorts && strings.Contains(p, "Sort") {
						t.Errorf("page %d, statement %d: plan %q does not read an index in order", page, i+1, p)
					}
				}
				if !found {
					t.Errorf("page %d: no plan reads %s: %q", page, tc.page, plans[1:])
				}
				if next == "" {
					break
				}
				q.Cursor = next
			}
		})
	}
}

// TestListSameOnBothStores fills a SQLite store and a Postgres store with
// the same objects (mixed JSON kinds, NULLs, missing fields, ties) and
// checks that every listing gives the same objects in the same order with
// the same total on both, for random sorts and filters, built-in
// attributes compared with values of other types included.
func TestListSameOnBothStores(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	var stores []*Store
	for _, target := range []string{filepath.Join(t.TempDir(), "keygate.db"), dsn} {
		clock := newClock()
		s := openTestStore(t, target, Options{Now: clock.Now})
		fillMixed(t, s, clock, mrand.New(mrand.NewPCG(7, 7)), 80)
		// Ids are random; ties are broken by id, so both stores get the
		// same ones.
		if _, err := s.rw.ExecContext(t.Context(), `UPDATE objects SET id = 'obj_' || slug`); err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	odd := [][]provider.Condition{
		{{Path: "title", Op: provider.OpGt, Value: 5.0}},
		{{Path: "title", Op: provider.OpIn, Value: []any{"Beta", 1.5, true}}},
		{{Path: "version", Op: provider.OpLt, Value: "abc"}},
		{{Path: "version", Op: provider.OpEq, Value: " 1"}},
		{{Path: "version", Op: provider.OpGte, Value: "1.5"}},
		{{Path: "version", Op: provider.OpIn, Value: []any{"x", 2.0, "1e0"}}},
		{{Path: "version", Op: provider.OpNe, Value: "x"}},
		{{Path: "version", Op: provider.OpGt, Value: "x"}},
		{{Path: "status", Op: provider.OpEq, Value: 1.0}},
		{{Path: "fields.a", Op: provider.OpEq, Value: true}},
		{{Path: "fields.a", Op: provider.OpLte, Value: 1}},
		{{Path: "fields.b", Op: provider.OpGte, Value: "B"}},
		{{Path: "fields.n.x", Op: provider.OpIn, Value: []any{2.0, "a", false}}},
	}
	r := mrand.New(mrand.NewPCG(3, 3))
	for i := range 200 {
		filters := append(slices.Clone(mixedFilters), odd...)
		q := provider.ListQuery{Type: "mix", Sort: randomSort(r, 1+r.IntN(3), r.IntN(8)), Filter: filters[r.IntN(len(filters))], Limit: 7}
		if i < len(filters) {
			q.Filter = filters[i]
		}
		var got [2][]string
		var totals [2]string
		for j, s := range stores {
			q := q
			for page := 0; ; page++ {
				p, err := s.List(t.Context(), q)
				if err != nil {
					t.Fatalf("%v on store %d: %v", q, j, err)
				}
				if page == 0 {
					totals[j] = fmt.Sprint(p.Total, p.TotalAtLeast)
				}
				for _, o := range p.Objects {
					got[j] = append(got[j], o.ID)
				}
				if p.NextCursor == "" {
					break
				}
				q.Cursor = p.NextCursor
			}
		}
		if !slices.Equal(got[0], got[1]) || totals[0] != totals[1] {
			t.Errorf("sort %v, filter %v:\n SQLite   %v (total %s)\n Postgres %v (total %s)", q.Sort, q.Filter, got[0], totals[0], got[1], totals[1])
		}
	}
}

// twoReplicas opens two stores on one new database, as two keygate
// replicas would.
func twoReplicas(t *testing.T) (a, b *Store, clock *testClock) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	clock = newClock()
	return openTestStore(t, dsn, Options{Now: clock.Now}), openTestStore(t, dsn, Options{Now: clock.Now}), clock
}

// race runs n calls of f at once, alternating between the replicas.
func race(n int, replicas []*Store, f func(i int, s *Store) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f(i, replicas[i%len(replicas)])
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// TestReplicasRaceRotations rotates one key from many callers on two
// replicas at once: exactly one successor.
func TestReplicasRaceRotations(t *testing.T) {
	a, b, clock := twoReplicas(t)
	_, key := mint(t, a, clock, "k", "admin")
	var won atomic.Value
	errs := race(8, []*Store{a, b}, func(i int, s *Store) error {
		issued, err := s.RotateKey(t.Context(), key.ID, fmt.Sprintf("rot-%d", i))
		if err == nil {
			won.Store(issued.Key.ID)
		}
		return err
	})
	wins := 0
	for _, err := range errs {
		var fe *provider.FieldError
		switch {
		case err == nil:
			wins++
		case errors.As(err, &fe) && strings.Contains(fe.Problem, "has already been rotated"):
		default:
			t.Errorf("rotation failed otherwise: %v", err)
		}
	}
	t.Logf("transactions retried: %d", a.retries.Load()+b.retries.Load())
	if wins != 1 {
		t.Fatalf("%d rotations succeeded, want 1", wins)
	}
	old, err := b.GetKey(t.Context(), key.ID)
	if err != nil || old.RotatedTo != won.Load() {
		t.Errorf("old key rotated to %q, %v; want %v", old.RotatedTo, err, won.Load())
	}
	if keys, err := a.ListKeys(t.Context()); err != nil || len(keys) != 2 {
		t.Errorf("%d keys, %v; want the key and one successor", len(keys), err)
	}
}

// TestReplicasRaceCreatesUnderTheCap creates children of one key from many
// callers on two replicas at once, each until refused: the cap on live
// keys below a key holds exactly.
func TestReplicasRaceCreatesUnderTheCap(t *testing.T) {
	a, b, clock := twoReplicas(t)
	parent, err := a.CreateKey(t.Context(), provider.NewKey{Name: "parent", Scopes: scopes(t, "content:read", "credentials:write"),
		ExpiresAt: clock.Now().Add(day)})
	if err != nil {
		t.Fatal(err)
	}
	const maxBelow = 64
	var made, busy atomic.Int32
	errs := race(8, []*Store{a, b}, func(i int, s *Store) error {
		for n := 0; ; n++ {
			_, err := s.CreateKey(t.Context(), provider.NewKey{Name: fmt.Sprintf("child-%d-%d", i, n), Scopes: scopes(t, "content:read"),
				ExpiresAt: clock.Now().Add(day), CreatedBy: parent.Key.ID, MaxDescendants: maxBelow})
			var fe *provider.FieldError
			var be *busyError
			switch {
			case err == nil:
				made.Add(1)
			case errors.As(err, &fe) && strings.Contains(fe.Problem, "live keys below it"):
				return nil
			case errors.As(err, &be) && errors.Is(err, provider.ErrUnavailable):
				// Undone by the others every time: nothing was made, and
				// the caller is told to retry, as this one does.
				busy.Add(1)
			default:
				return err
			}
		}
	})
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	t.Logf("transactions retried: %d; gave up: %d", a.retries.Load()+b.retries.Load(), busy.Load())
	n, err := b.LiveDescendants(t.Context(), parent.Key.ID)
	if err != nil || n != maxBelow || made.Load() != maxBelow {
		t.Errorf("%d keys made, %d live below the parent (%v); want %d", made.Load(), n, err, maxBelow)
	}
}

// TestReplicasRaceRefreshTokens exchanges one refresh token from many
// callers on two replicas at once: one exchange succeeds, the replays are
// detected and the grant is revoked.
func TestReplicasRaceRefreshTokens(t *testing.T) {
	a, b, clock := twoReplicas(t)
	_, k := mint(t, a, clock, "alice", "content:read")
	g := newGrant(t, a, clock, k.ID, "content:read")
	if err := a.AddRefreshToken(t.Context(), g.ID, hashOf("rt")); err != nil {
		t.Fatal(err)
	}
	errs := race(8, []*Store{a, b}, func(i int, s *Store) error {
		_, err := s.RotateRefreshToken(t.Context(), hashOf("rt"), hashOf(fmt.Sprint("next-", i)))
		return err
	})
	wins, reused := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, ErrRefreshTokenReused):
			reused++
		case errors.Is(err, provider.ErrNotFound): // the grant's tokens were deleted by then
		default:
			t.Errorf("exchange failed otherwise: %v", err)
		}
	}
	t.Logf("transactions retried: %d", a.retries.Load()+b.retries.Load())
	if wins != 1 || reused == 0 {
		t.Errorf("%d exchanges succeeded and %d replays were detected; want 1 and at least 1", wins, reused)
	}
	got, err := b.GetGrant(t.Context(), g.ID)
	if err != nil || got.RevokedReason != GrantRevokedReuse {
		t.Errorf("grant = %+v, %v; want revoked for reuse", got, err)
	}
}

// watch runs s.WatchKeys until the test ends and returns what it reports.
func watch(t *testing.T, s *Store) <-chan []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan []string, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.WatchKeys(ctx, func(ids []string) { events <- ids })
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return events
}

// next returns the next event that is not nil, counting the nils before it.
func next(t *testing.T, events <-chan []string) ([]string, int) {
	t.Helper()
	nils := 0
	for {
		select {
		case ids := <-events:
			if ids != nil {
				return ids, nils
			}
			nils++
		case <-t.Context().Done():
			t.Fatal("no notification before the test's deadline")
		}
	}
}

// waitFor reads events until every id in want has been announced.
func waitFor(t *testing.T, events <-chan []string, want ...string) {
	t.Helper()
	missing := map[string]bool{}
	for _, id := range want {
		missing[id] = true
	}
	for len(missing) > 0 {
		ids, _ := next(t, events)
		for _, id := range ids {
			delete(missing, id)
		}
	}
}

// TestWatchKeys: what one replica changes, the other's watcher hears.
func TestWatchKeys(t *testing.T) {
	a, b, clock := twoReplicas(t)
	ctx := t.Context()
	events := watch(t, a)
	if ids := <-events; ids != nil {
		t.Fatalf("first report %v, want nil (listening: anything may have changed)", ids)
	}
	_, parent := mint(t, b, clock, "parent", "admin")
	child, err := b.CreateKey(ctx, provider.NewKey{Name: "child", Scopes: scopes(t, "content:read"), ExpiresAt: clock.Now().Add(day), CreatedBy: parent.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := b.RevokeKey(ctx, parent.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, parent.ID, child.Key.ID)

	_, k := mint(t, b, clock, "rotated", "content:read")
	// A rotation refused changes nothing and announces nothing; the next
	// announcement is the rotation that works.
	if _, err := b.RotateKey(ctx, parent.ID, "rot-refused"); err == nil {
		t.Fatal("rotating a revoked key succeeded")
	}
	next1 := rotate(t, b, k.ID, 0)
	if ids, _ := next(t, events); !slices.Equal(ids, []string{k.ID}) {
		t.Fatalf("after a rotation: %v, want [%s]", ids, k.ID)
	}
	if err := b.RotationBackend().Discard(ctx, next1.Key.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, next1.Key.ID, k.ID)
	if _, err := b.RetireKey(ctx, k.ID, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, k.ID)

	_, approver := mint(t, b, clock, "approver", "content:read")
	g := newGrant(t, b, clock, approver.ID, "content:read")
	if _, _, err := b.RevokeGrant(ctx, g.ID, GrantRevokedByUser); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, g.ID)
}

// TestWatchKeysReconnects cuts the watcher's connection: it reports nil
// while it cannot listen, and hears changes again once it can.
func TestWatchKeysReconnects(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	proxy, through := pgtest.NewProxy(t, dsn)
	clock := newClock()
	a := openTestStore(t, through, Options{Now: clock.Now})
	b := openTestStore(t, dsn, Options{Now: clock.Now})
	events := watch(t, a)
	if ids := <-events; ids != nil {
		t.Fatalf("first report %v, want nil", ids)
	}
	proxy.Cut()
	// Lost the connection, then at least one failed attempt to get it back.
	for range 2 {
		if ids := <-events; ids != nil {
			t.Fatalf("after the cut: %v, want nil", ids)
		}
	}
	_, lost := mint(t, b, clock, "lost", "admin")
	if _, _, _, err := b.RevokeKey(t.Context(), lost.ID); err != nil { // announced while no one listens
		t.Fatal(err)
	}
	proxy.Restore()
	_, k := mint(t, b, clock, "heard", "admin")
	// The watcher's reconnection is seen as a nil; keep revoking until it
	// hears one, which proves it listens again.
	for {
		if _, _, _, err := b.RevokeKey(t.Context(), k.ID); err != nil {
			t.Fatal(err)
		}
		select {
		case ids := <-events:
			if slices.Contains(ids, k.ID) {
				return
			}
			if ids != nil && !slices.Contains(ids, k.ID) {
				t.Fatalf("heard %v", ids)
			}
		case <-t.Context().Done():
			t.Fatal("the watcher never listened again")
		}
		// A key that was revoked before announces nothing new, so a new
		// one is revoked each time.
		_, k = mint(t, b, clock, "heard", "admin")
	}
}

func TestWatchKeysOnSQLiteReturns(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "keygate.db"), Options{})
	called := false
	s.WatchKeys(t.Context(), func([]string) { called = true })
	if called {
		t.Error("WatchKeys on SQLite reported a change")
	}
}

// TestPostgresUnavailable takes the database away: every call fails with
// provider.ErrUnavailable, saying so, without the password; with the
// database back, calls work at once.
func TestPostgresUnavailable(t *testing.T) {
	pw := canary()
	proxy, through := pgtest.NewProxy(t, withPassword(t, pgtest.NewDatabase(t), pw))
	clock := newClock()
	s := openTestStore(t, through, Options{Now: clock.Now})
	tok, key := mint(t, s, clock, "k", "admin")
	if _, err := s.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateType(t.Context(), contentType("notes")); err != nil {
		t.Fatal(err)
	}
	obj := mustCreate(t, s, provider.NewObject{Type: "notes", Title: "Kept"})
	// In this order: RevokeKey last, since it ends the key the others use.
	calls := []struct {
		name string
		call func() error
	}{
		{"GetKey", func() error { _, err := s.GetKey(t.Context(), key.ID); return err }},
		{"Verify", func() error { _, err := s.Verify(t.Context(), tok); return err }},
		{"Get", func() error { _, err := s.Get(t.Context(), "notes", provider.Ref{ID: obj.ID}); return err }},
		{"List", func() error { _, err := s.List(t.Context(), provider.ListQuery{Type: "notes"}); return err }},
		{"LiveGrant", func() error { _, err := s.LiveGrant(t.Context(), "gr_x"); return err }},
		{"CreateKey", func() error {
			_, err := s.CreateKey(t.Context(), provider.NewKey{Name: "n", Scopes: scopes(t, "content:read"), ExpiresAt: clock.Now().Add(day)})
			return err
		}},
		{"RevokeKey", func() error { _, _, _, err := s.RevokeKey(t.Context(), key.ID); return err }},
	}
	proxy.Cut()
	for _, c := range calls {
		name, err := c.name, c.call()
		if !errors.Is(err, provider.ErrUnavailable) || errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("%s with the database gone: %v, want ErrUnavailable", name, err)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, pw) || !strings.Contains(msg, "database is unreachable") || !strings.Contains(msg, "keygate keeps reconnecting") {
			t.Errorf("%s: %q", name, msg)
		}
	}
	proxy.Restore()
	for _, c := range calls {
		if err := c.call(); err != nil && !(c.name == "LiveGrant" && errors.Is(err, provider.ErrNotFound)) {
			t.Errorf("%s with the database back: %v", c.name, err)
		}
	}
}

// TestPostgresLostCommitIsAnError loses the answer to a COMMIT, before
// and after Postgres applies it: the call fails both times (never reports
// done what may be lost) and says the outcome is unknown.
func TestPostgresLostCommitIsAnError(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	proxy, through := pgtest.NewProxy(t, dsn)
	s := openTestStore(t, through, Options{})
	direct := openTestStore(t, dsn, Options{})
	for _, tc := range []struct {
		typ   string
		how   pgtest.CommitDrop
		saved bool
	}{{"dropped", pgtest.CommitBefore, false}, {"applied", pgtest.CommitAfter, true}} {
		fired := proxy.DropNextCommit(tc.how)
		err := s.CreateType(t.Context(), contentType(tc.typ))
		<-fired
		if !errors.Is(err, provider.ErrUnavailable) || !errors.Is(err, provider.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "may or may not have been saved") {
			t.Errorf("%s commit: %v, want an unknown outcome", tc.typ, err)
		}
		types, err := direct.Types(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		saved := slices.ContainsFunc(types, func(ct provider.ContentType) bool { return ct.Name == tc.typ })
		if saved != tc.saved {
			t.Errorf("%s commit: saved = %v, want %v", tc.typ, saved, tc.saved)
		}
	}
	if err := s.CreateType(t.Context(), contentType("after")); err != nil {
		t.Errorf("after the lost commits: %v", err)
	}
}

// TestPostgresRefusedConnection: once the database is gone (dropped, or
// the password changed), a store call fails with an error whose text for
// callers names neither the database nor its address or user, and which
// is not an outage to wait out.
func TestPostgresRefusedConnection(t *testing.T) {
	admin := pgtest.Admin(t)
	dsn := pgtest.NewDatabase(t)
	s := openTestStore(t, dsn, Options{})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
	_, err = s.ListKeys(t.Context())
	var pe provider.PublicError
	if !errors.As(err, &pe) {
		t.Fatalf("ListKeys on a dropped database: %v, want a provider.PublicError", err)
	}
	if text := pe.PublicText(); strings.Contains(text, name) || strings.Contains(text, u.Host) || strings.Contains(text, "keygate") && strings.Contains(text, "user=") {
		t.Errorf("the caller's text names the database: %q", text)
	}
	if errors.Is(err, provider.ErrUnavailable) {
		t.Errorf("a refused connection is reported as an outage: %v", err)
	}
}
