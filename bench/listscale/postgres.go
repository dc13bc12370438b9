package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/keygate/keygate/provider/local"
)

// pgDatabases are the databases made for the sizes, dropped by dropPG.
var (
	pgAdmin     string
	pgDatabases []string
	pgWatch     *sql.DB // finds the server processes of the store measured
)

// makePGStore makes a store of n posts in a new database on the server
// admin names: keygate's Open and Seed, then the posts in one INSERT of the
// same rows fill makes for SQLite. The field indexes are dropped before the
// INSERT and made again by the next Open (which makes a type's missing
// field indexes), then VACUUM ANALYZE does what autovacuum would after a
// bulk load: statistics for the planner and a visibility map for
// index-only counts.
func makePGStore(ctx context.Context, admin string, n int) (*local.Store, time.Duration, error) {
	t0 := time.Now()
	u, err := url.Parse(admin)
	if err != nil {
		return nil, 0, fmt.Errorf("--store: %w", err)
	}
	name := fmt.Sprintf("keygate_listscale_%d", n)
	adb, err := sql.Open("pgx", admin)
	if err != nil {
		return nil, 0, err
	}
	defer adb.Close()
	// The name is the program's own, never input.
	if _, err := adb.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return nil, 0, fmt.Errorf("dropping %s: %w", name, err)
	}
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, 0, fmt.Errorf("creating %s (the --store user needs CREATEDB): %w", name, err)
	}
	pgAdmin, pgDatabases = admin, append(pgDatabases, name)
	u.Path = "/" + name
	target := u.String()

	s, err := local.Open(ctx, target, local.Options{})
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
	db, err := sql.Open("pgx", target)
	if err != nil {
		return nil, 0, err
	}
	defer db.Close()
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for _, q := range []string{
		`DO $$ DECLARE i record; BEGIN
			FOR i IN SELECT indexname FROM pg_indexes WHERE tablename = 'objects' AND indexname LIKE 'objects:%' LOOP
				EXECUTE format('DROP INDEX %I', i.indexname);
			END LOOP; END $$`,
		fmt.Sprintf(`INSERT INTO objects (id, type, slug, title, status, version, fields, created_at, modified_at)
		SELECT 'obj_' || lpad(i::text, 16, '0'), 'posts', 'post-' || i, 'Post ' || i,
			CASE WHEN i %% 3 = 0 THEN 'published' ELSE 'draft' END, 1,
			jsonb_build_object('author', 'a' || (i %% 50), 'views', i, 'tags', jsonb_build_array('t' || (i %% 7)),
				'body', 'A short body for post ' || i || ', long enough to look like the start of an article.'),
			%d + i::bigint * 1000000000, %d + i::bigint * 1000000000
		FROM generate_series(0, %d) AS i`, base, base, n-3-1),
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return nil, 0, fmt.Errorf("adding %d posts (the objects table may have changed): %w", n-3, err)
		}
	}
	if s, err = local.Open(ctx, target, local.Options{}); err != nil {
		return nil, 0, err
	}
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE objects"); err != nil {
		_ = s.Close()
		return nil, 0, err
	}
	took := time.Since(t0)
	if err := watchServer(admin); err != nil {
		_ = s.Close()
		return nil, 0, err
	}
	return s, took, nil
}

// watchServer sets serverCPU and beforeRound to the server processes of
// the connections to the databases made (through the server admin names,
// which must be on this machine).
func watchServer(admin string) error {
	if pgWatch != nil {
		return nil
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	pgWatch = db
	var pids []int
	beforeRound = func() {
		rows, err := db.Query(`SELECT pid FROM pg_stat_activity
			WHERE datname LIKE 'keygate\_listscale\_%' AND backend_type = 'client backend'`)
		if err != nil {
			return
		}
		defer rows.Close()
		pids = pids[:0]
		for rows.Next() {
			var pid int
			if rows.Scan(&pid) == nil {
				pids = append(pids, pid)
			}
		}
	}
	serverCPU = func() (time.Duration, bool) {
		var sum time.Duration
		for _, pid := range pids {
			t, ok := procCPU(pid)
			if !ok {
				return 0, false
			}
			sum += t
		}
		return sum, len(pids) > 0
	}
	return nil
}

// dropPG drops the databases makePGStore made.
func dropPG() {
	if pgWatch != nil {
		pgWatch.Close()
	}
	if len(pgDatabases) == 0 {
		return
	}
	adb, err := sql.Open("pgx", pgAdmin)
	if err != nil {
		return
	}
	defer adb.Close()
	for _, name := range pgDatabases {
		if _, err := adb.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "listscale: dropping %s: %v\n", name, err)
		}
	}
}
