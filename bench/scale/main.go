// Command scale measures content_list through keygate (the MCP tool, over
// stdio, the built binary) on an embedded store holding 100,000 posts: with
// a field filter, and the default first page, sequential calls, p50/p90.
//
//	go run ./bench/scale --keygate BIN [--objects 100000] [--n 30]
//
// The store is created by keygate's first run; the posts are then added in
// one SQL transaction with the same INSERT provider/local uses, shaped like
// provider/local's BenchmarkList data (author a0..a49, views = i, one in
// three published) plus a short body. Adding them through Store.Create
// would take ~25 s here (one write transaction per object).
package main

import (
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"time"

	_ "modernc.org/sqlite"

	"github.com/keygate/keygate/bench/internal/benchkit"
)

func main() {
	keygate := flag.String("keygate", "", "keygate binary (required)")
	objects := flag.Int("objects", 100_000, "posts in the store")
	n := flag.Int("n", 30, "measured calls per query")
	flag.Parse()
	if *keygate == "" {
		fmt.Fprintln(os.Stderr, "scale: --keygate is required")
		os.Exit(2)
	}
	if err := run(*keygate, *objects, *n); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func fill(store string, objects int) (time.Duration, error) {
	t0 := time.Now()
	dsn := "file:" + (&url.URL{Path: store}).EscapedPath() + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	// Timestamps from 2020 on, one second apart, older than the seeded
	// posts, so the newest page is the same either way.
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	_, err = db.Exec(`
		WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1)
		INSERT INTO objects (id, type, slug, title, status, version, fields, created_at, modified_at)
		SELECT printf('obj_%016d', i), 'posts', printf('post-%d', i), printf('Post %d', i),
			CASE WHEN i % 3 = 0 THEN 'published' ELSE 'draft' END, 1,
			json_object('author', printf('a%d', i % 50), 'views', i, 'tags', json_array('t' || (i % 7)),
				'body', 'A short body for post ' || i || ', long enough to look like the start of an article.'),
			? + i * 1000000000, ? + i * 1000000000
		FROM n`, objects, base, base)
	if err != nil {
		return 0, fmt.Errorf("adding %d posts (the objects table may have changed): %w", objects, err)
	}
	return time.Since(t0), nil
}

func run(keygate string, objects, n int) error {
	tmp, err := os.MkdirTemp("", "keygate-bench-scale-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	in, err := benchkit.NewInstance(tmp)
	if err != nil {
		return err
	}
	if err := in.Create(keygate); err != nil {
		return err
	}
	took, err := fill(in.Store, objects)
	if err != nil {
		return err
	}
	c, err := benchkit.StartStdio(keygate, in.Args(), benchkit.CleanEnv())
	if err != nil {
		return err
	}
	defer c.Close()

	queries := []struct {
		name string
		args map[string]any
	}{
		{"filter fields.author = a7 (limit 20)", map[string]any{"type": "posts", "filter": map[string]any{"fields.author": "a7"}}},
		{fmt.Sprintf("filter fields.views > %d (limit 20)", objects-1001), map[string]any{"type": "posts", "filter": map[string]any{"fields.views": map[string]any{"$gt": objects - 1001}}}},
		{"default first page (newest 20)", map[string]any{"type": "posts"}},
		{"status published (limit 20)", map[string]any{"type": "posts", "status": "published"}},
	}
	fmt.Printf("## Store scale: content_list through keygate on %d posts (stdio, sequential)\n\n", objects)
	fmt.Printf("%d posts added in %.1f s (one SQL transaction). %d measured calls per query after 2 warm-up.\n\n", objects, took.Seconds(), n)
	fmt.Println("| query | p50 ms | p90 ms | max ms | total reported |")
	fmt.Println("| --- | --- | --- | --- | --- |")
	var filterP50 time.Duration
	for qi, q := range queries {
		var lat []time.Duration
		total := -1.0
		for i := range n + 2 {
			t0 := time.Now()
			line, err := c.CallTool("content_list", q.args)
			d := time.Since(t0)
			if err != nil {
				return err
			}
			if !benchkit.ToolOK(line) {
				return fmt.Errorf("%s: %.400s", q.name, line)
			}
			if i == 0 {
				var r struct {
					Result struct {
						S struct {
							Total float64 `json:"total"`
							Count int     `json:"count"`
						} `json:"structuredContent"`
					} `json:"result"`
				}
				_ = json.Unmarshal(line, &r)
				total = r.Result.S.Total
				if r.Result.S.Count == 0 {
					return fmt.Errorf("%s returned no objects", q.name)
				}
			}
			if i >= 2 {
				lat = append(lat, d)
			}
		}
		s := benchkit.Summarize(lat)
		if qi == 0 {
			filterP50 = s.P50
		}
		fmt.Printf("| %s | %s | %s | %s | %.0f |\n", q.name, benchkit.Ms(s.P50), benchkit.Ms(s.P90), benchkit.Ms(s.Max), total)
	}
	fmt.Printf("\nRESULT content_list with a field filter on %d objects, p50: %s ms (no target set)\n", objects, benchkit.Ms(filterP50))
	return nil
}
