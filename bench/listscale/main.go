// Command listscale measures how the embedded store's listing cost grows
// with its size, through the store API (local.Store.List, what content_list
// calls): the first page of filtered, sorted listings on stores of 1,000 to
// 1,000,000 posts, and page 1,000 against the first page at 100,000. Each
// figure is the median of --runs calls, the queries taking turns.
//
//	go run ./bench/listscale [--sizes 1000,10000,100000,1000000] [--runs 31] [--deep-size 100000] [--page 1000]
//	go run ./bench/listscale --store postgres://user@host/db ...
//
// Every store is made first and they are measured together, the calls
// taking turns across sizes. Each store is made by keygate's own Open and
// Seed, then filled in one SQL
// transaction shaped like bench/scale's posts: author a0..a49 (2 % each),
// views = i, one in three published, tags and a short body, one second
// apart. The program uses only what the store API had before keyset paging
// too, so it builds against older trees to measure them the same way. An
// older store's cursor is the page offset in decimal; page 1,000 is then
// reached with the cursor "19980" instead of by paging 999 times.
//
// With --store postgres://... the stores are Postgres databases
// (postgres.go): one per size, created on that server and dropped after.
// The work then happens in the server, so only wall times are reported.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite"

	"github.com/keygate/keygate/bench/internal/benchkit"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
)

const limit = 20

// query is one listing measured.
type query struct {
	name string
	q    func(objects int) provider.ListQuery
}

var (
	byAuthor = []provider.Condition{{Path: "fields.author", Op: provider.OpEq, Value: "a7"}}
	byViews  = []provider.SortKey{{Path: "fields.views", Desc: true}}
)

var queries = []query{
	{"filter fields.author = a7, sort -fields.views", func(int) provider.ListQuery {
		return provider.ListQuery{Type: "posts", Filter: byAuthor, Sort: byViews}
	}},
	{"filter fields.views >= n/2, sort -fields.views", func(n int) provider.ListQuery {
		return provider.ListQuery{Type: "posts", Sort: byViews,
			Filter: []provider.Condition{{Path: "fields.views", Op: provider.OpGte, Value: n / 2}}}
	}},
	{"filter fields.author = a7, newest first", func(int) provider.ListQuery {
		return provider.ListQuery{Type: "posts", Filter: byAuthor}
	}},
	{"status published, sort title", func(int) provider.ListQuery {
		return provider.ListQuery{Type: "posts", Status: "published", Sort: []provider.SortKey{{Path: "title"}}}
	}},
	{"no filter, newest first", func(int) provider.ListQuery {
		return provider.ListQuery{Type: "posts"}
	}},
}

// deepQueries are the listings with enough matches for page 1,000.
var deepQueries = []int{1, 4}

func main() {
	sizes := flag.String("sizes", "1000,10000,100000,1000000", "store sizes (posts), comma-separated")
	runs := flag.Int("runs", 31, "measured calls per query and size")
	deepSize := flag.Int("deep-size", 100_000, "store size for the deep page comparison (0: skip)")
	deepPage := flag.Int("page", 1000, "the deep page")
	dir := flag.String("dir", "", "where to make the stores (default: a new temporary directory, removed after)")
	store := flag.String("store", "", "measure Postgres instead of SQLite: a postgres:// URL whose user may create databases; one database per size is created and dropped")
	keep := flag.Bool("keep", false, "with --store: leave the databases made, for inspection")
	flag.Parse()
	if *store != "" {
		if !strings.HasPrefix(*store, "postgres://") && !strings.HasPrefix(*store, "postgresql://") {
			fmt.Fprintln(os.Stderr, "listscale: --store takes a postgres:// URL")
			os.Exit(2)
		}
		makeStore = func(ctx context.Context, _ string, n int) (*local.Store, time.Duration, error) {
			return makePGStore(ctx, *store, n)
		}
		serverSide = true
	}
	err := run(*sizes, *runs, *deepSize, *deepPage, *dir)
	if !*keep {
		dropPG()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "listscale:", err)
		os.Exit(1)
	}
}

func run(sizeList string, runs, deepSize, deepPage int, dir string) (err error) {
	var sizes []int
	for f := range strings.SplitSeq(sizeList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1000 {
			return fmt.Errorf("--sizes: %q is not a size of at least 1000", f)
		}
		sizes = append(sizes, n)
	}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "keygate-listscale-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	ctx := context.Background()

	what := "SQLite"
	if serverSide {
		what = "Postgres"
	}
	fmt.Printf("## Store listing cost by size (%s, store API, limit %d, median of %d calls)\n\n", what, limit, runs)
	medians := map[int][]sample{}
	var deepOut string
	totals := map[int][]string{}
	// Every store is made first, then measured with the others, the calls
	// taking turns across sizes too: a machine whose load drifts then
	// weighs on every size alike.
	stores := map[int]*local.Store{}
	// The stores were written, so a failed close is reported.
	defer func() {
		for n, s := range stores {
			if cerr := s.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("%d posts: closing: %w", n, cerr))
			}
		}
	}()
	var lists []func() (provider.Page, error)
	for _, n := range sizes {
		s, took, err := makeStore(ctx, filepath.Join(dir, fmt.Sprintf("posts-%d.db", n)), n)
		if err != nil {
			return err
		}
		stores[n] = s
		fmt.Fprintf(os.Stderr, "listscale: %d posts made in %.1f s\n", n, took.Seconds())
		for _, q := range queries {
			lq := q.q(n)
			lq.Limit = limit
			lists = append(lists, func() (provider.Page, error) { return s.List(ctx, lq) })
		}
	}
	meds, pages, err := measure(lists, runs)
	if err != nil {
		return err
	}
	for i, n := range sizes {
		medians[n] = meds[i*len(queries) : (i+1)*len(queries)]
		for _, p := range pages[i*len(queries) : (i+1)*len(queries)] {
			totals[n] = append(totals[n], total(p))
		}
	}
	if s, ok := stores[deepSize]; ok {
		if deepOut, err = deep(ctx, s, deepSize, runs, deepPage); err != nil {
			return err
		}
	}

	fmt.Printf("### First page: %s (total reported)\n\n| query | %s |\n| --- |%s\n", units(), header(sizes), strings.Repeat(" --- |", len(sizes)))
	for i, q := range queries {
		row := "| " + q.name + " |"
		for _, n := range sizes {
			row += fmt.Sprintf(" %s (%s) |", medians[n][i], totals[n][i])
		}
		fmt.Println(row)
	}
	fmt.Println()
	for i, q := range queries {
		for _, n := range sizes[1:] {
			a, b := medians[n][i], medians[sizes[0]][i]
			fmt.Printf("RESULT first page at %d / %d posts, %s: %s\n", n, sizes[0], q.name, ratios(a, b))
		}
	}
	fmt.Println("(goal: at most 2x from 1,000 to 100,000 posts)")
	fmt.Print("\n" + deepOut)
	return nil
}

func header(sizes []int) string {
	var parts []string
	for _, n := range sizes {
		parts = append(parts, fmt.Sprintf("%d posts", n))
	}
	return strings.Join(parts, " | ")
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// units names what a cell holds.
func units() string {
	if serverSide {
		return "wall ms / CPU ms of the calling thread and the database's Postgres server processes"
	}
	return "wall ms / thread CPU ms"
}

// ratios is a/b in wall time and in CPU time.
func ratios(a, b sample) string {
	return fmt.Sprintf("wall %.2fx, CPU %.2fx", ratio(a.wall, b.wall), ratio(a.cpu, b.cpu))
}

// With --store, serverCPU returns the CPU time used so far by the server
// processes of the store's connections, and beforeRound finds them again
// before each round of calls (outside the measured time).
var (
	serverCPU   func() (time.Duration, bool)
	beforeRound func()
)

// cpuNow is the calling thread's CPU time, plus the server's with --store.
func cpuNow() (time.Duration, bool) {
	t, ok := threadCPU()
	if serverCPU != nil {
		s, sok := serverCPU()
		t, ok = t+s, ok && sok
	}
	return t, ok
}

// total renders a page's total, "+" marking a lower bound (Page.TotalAtLeast,
// read by name so that the program builds against trees without it).
func total(p provider.Page) string {
	s := strconv.Itoa(p.Total)
	if f := reflect.ValueOf(p).FieldByName("TotalAtLeast"); f.IsValid() && f.Bool() {
		s += "+"
	}
	return s
}

// sample is the medians of one listing: wall time, and the CPU time of the
// thread that ran the call (SQLite runs in the calling goroutine, which is
// locked to its thread while measured), with --store plus that of the
// Postgres server processes that answered it.
type sample struct {
	wall, cpu time.Duration
}

func (s sample) String() string {
	if s.cpu <= 0 {
		return benchkit.Ms(s.wall)
	}
	return benchkit.Ms(s.wall) + " / " + benchkit.Ms(s.cpu)
}

// measure calls each list runs times after two warm-up rounds, the lists
// taking turns, and returns each one's medians and its first page.
func measure(lists []func() (provider.Page, error), runs int) ([]sample, []provider.Page, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	wall := make([][]time.Duration, len(lists))
	cpu := make([][]time.Duration, len(lists))
	first := make([]provider.Page, len(lists))
	for round := range runs + 2 {
		if beforeRound != nil {
			beforeRound()
		}
		for i, list := range lists {
			c0, cok := cpuNow()
			t0 := time.Now()
			page, err := list()
			d := time.Since(t0)
			c1, cok1 := cpuNow()
			if err != nil {
				return nil, nil, err
			}
			if len(page.Objects) == 0 {
				return nil, nil, fmt.Errorf("list %d returned no objects", i)
			}
			if round == 0 {
				first[i] = page
			}
			if round >= 2 {
				wall[i] = append(wall[i], d)
				if cok && cok1 {
					cpu[i] = append(cpu[i], c1-c0)
				}
			}
		}
	}
	out := make([]sample, len(lists))
	for i := range lists {
		out[i] = sample{wall: benchkit.Summarize(wall[i]).P50, cpu: benchkit.Summarize(cpu[i]).P50}
	}
	return out, first, nil
}

// deep compares page pageNo with the first page of the deep queries.
func deep(ctx context.Context, s *local.Store, n, runs, pageNo int) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "### Page %d against the first page, %d posts: %s\n\n| query | first page | page %d | ratio | reached by |\n| --- | --- | --- | --- | --- |\n", pageNo, n, units(), pageNo)
	var results []string
	for _, qi := range deepQueries {
		q := queries[qi].q(n)
		q.Limit = limit
		cursor, how, err := cursorOf(ctx, s, q, pageNo)
		if err != nil {
			return "", fmt.Errorf("%s: reaching page %d: %w", queries[qi].name, pageNo, err)
		}
		deepQ := q
		deepQ.Cursor = cursor
		meds, _, err := measure([]func() (provider.Page, error){
			func() (provider.Page, error) { return s.List(ctx, q) },
			func() (provider.Page, error) { return s.List(ctx, deepQ) },
		}, runs)
		if err != nil {
			return "", err
		}
		r := ratios(meds[1], meds[0])
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", queries[qi].name, meds[0], meds[1], r, how)
		results = append(results, fmt.Sprintf("RESULT page %d / first page at %d posts, %s: %s (goal <= 2)", pageNo, n, queries[qi].name, r))
	}
	b.WriteString("\n" + strings.Join(results, "\n") + "\n")
	return b.String(), nil
}

// cursorOf returns the cursor of page pageNo of q: by paging, or, for a
// store whose cursor is the decimal offset, by computing it.
func cursorOf(ctx context.Context, s *local.Store, q provider.ListQuery, pageNo int) (string, string, error) {
	page, err := s.List(ctx, q)
	if err != nil {
		return "", "", err
	}
	if page.NextCursor == strconv.Itoa(q.Limit) {
		return strconv.Itoa((pageNo - 1) * q.Limit), "offset cursor", nil
	}
	for p := 2; p <= pageNo; p++ {
		if page.NextCursor == "" {
			return "", "", fmt.Errorf("the listing ends at page %d", p-1)
		}
		q.Cursor = page.NextCursor
		if page, err = s.List(ctx, q); err != nil {
			return "", "", err
		}
	}
	return q.Cursor, fmt.Sprintf("paging %d times", pageNo-1), nil
}

// makeStore makes a store of n posts (the seeded three and n-3 more):
// makeSQLiteStore, or makePGStore with --store.
var makeStore = makeSQLiteStore

// serverSide is set when the store's work happens in another process, so
// the calling thread's CPU time says nothing.
var serverSide bool

func makeSQLiteStore(ctx context.Context, path string, n int) (*local.Store, time.Duration, error) {
	t0 := time.Now()
	s, err := local.Open(ctx, path, local.Options{})
	if err != nil {
		return nil, 0, err
	}
	if err := s.Seed(ctx); err != nil {
		_ = s.Close()
		return nil, 0, err
	}
	if err := s.Close(); err != nil {
		return nil, 0, err
	}
	if err := fill(path, n-3); err != nil {
		return nil, 0, err
	}
	s, err = local.Open(ctx, path, local.Options{})
	return s, time.Since(t0), err
}

// fill adds n posts in one transaction, with the same columns as
// provider/local's INSERT, older than the seeded posts.
func fill(path string, n int) error {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	if _, err = db.Exec(`
		WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1)
		INSERT INTO objects (id, type, slug, title, status, version, fields, created_at, modified_at)
		SELECT printf('obj_%016d', i), 'posts', printf('post-%d', i), printf('Post %d', i),
			CASE WHEN i % 3 = 0 THEN 'published' ELSE 'draft' END, 1,
			json_object('author', printf('a%d', i % 50), 'views', i, 'tags', json_array('t' || (i % 7)),
				'body', 'A short body for post ' || i || ', long enough to look like the start of an article.'),
			? + i * 1000000000, ? + i * 1000000000
		FROM n`, n, base, base); err != nil {
		return fmt.Errorf("adding %d posts (the objects table may have changed): %w", n, err)
	}
	_, err = db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}
