package pgmigrate_test

import (
	"database/sql"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/internal/pgmigrate"
	"github.com/keygate/keygate/internal/pgtest"
)

func TestApply(t *testing.T) {
	db, err := sql.Open("pgx", pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	v1 := []string{`CREATE TABLE a (id INTEGER PRIMARY KEY)`}
	v2 := append(v1, `ALTER TABLE a ADD COLUMN n INTEGER NOT NULL DEFAULT 0`)

	// Three replicas start at once: each step runs once.
	var wg sync.WaitGroup
	empties := make(chan bool, 3)
	for range 3 {
		wg.Go(func() {
			empty, err := pgmigrate.Apply(ctx, db, "test", v1)
			if err != nil {
				t.Error(err)
			}
			empties <- empty
		})
	}
	wg.Wait()
	close(empties)
	n := 0
	for e := range empties {
		if e {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d replicas saw an empty schema, want 1", n)
	}
	if empty, err := pgmigrate.Apply(ctx, db, "test", v2); err != nil || empty {
		t.Fatalf("upgrade: empty=%v err=%v", empty, err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO a (id, n) VALUES (1, 2)`); err != nil {
		t.Fatalf("the second step did not run: %v", err)
	}
	// Another component keeps its own version.
	if empty, err := pgmigrate.Apply(ctx, db, "other", []string{`CREATE TABLE b (id INTEGER)`}); err != nil || !empty {
		t.Fatalf("other component: empty=%v err=%v", empty, err)
	}
	// An older keygate refuses a newer schema.
	_, err = pgmigrate.Apply(ctx, db, "test", v1)
	if err == nil || !strings.Contains(err.Error(), "upgrade keygate") {
		t.Fatalf("older keygate: %v", err)
	}
	// A failing step leaves the version where it was.
	bad := append(v2, `CREATE TABLE a (id INTEGER)`)
	if _, err := pgmigrate.Apply(ctx, db, "test", bad); err == nil || !strings.Contains(err.Error(), "migration 3") {
		t.Fatalf("bad step: %v", err)
	}
	var version int
	if err := db.QueryRowContext(ctx, `SELECT version FROM keygate_schema WHERE component = 'test'`).Scan(&version); err != nil || version != 2 {
		t.Fatalf("version %d, %v; want 2", version, err)
	}
}
