package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/pgtest"
)

// storeEnv picks the database the tests run on: unset for SQLite, or
// "postgres" for a fresh database per test on the server internal/pgtest
// names (KEYGATE_TEST_POSTGRES). The same tests run on both.
const storeEnv = "KEYGATE_TEST_STORE"

// onPostgres reports whether the tests run on Postgres.
func onPostgres() bool { return os.Getenv(storeEnv) == "postgres" }

// skipOnPostgres skips a test of SQLite's own behaviour when the tests run
// on Postgres; why names the property and its Postgres counterpart.
func skipOnPostgres(t testing.TB, why string) {
	t.Helper()
	if onPostgres() {
		t.Skip("SQLite only: " + why)
	}
}

// testTarget returns where a test's store lives: a new SQLite file, or a
// new Postgres database.
func testTarget(t testing.TB) string {
	t.Helper()
	if onPostgres() {
		return pgtest.NewDatabase(t)
	}
	return filepath.Join(t.TempDir(), "keygate.db")
}

// openTestStore opens a store at target, closed when the test ends.
func openTestStore(t testing.TB, target string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), target, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testClock is a settable clock, safe for the concurrency tests.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock { return &testClock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestStore opens a fresh store (testTarget).
func newTestStore(t *testing.T) (*Store, *testClock) {
	t.Helper()
	clock := newClock()
	return openTestStore(t, testTarget(t), Options{Now: clock.Now}), clock
}

func userVersion(t *testing.T, db querier) int {
	t.Helper()
	var v int
	if err := db.QueryRowContext(context.Background(), "PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOpenCreatesAndReopens(t *testing.T) {
	skipOnPostgres(t, "file modes, WAL and user_version; TestPostgresOpenCreatesOnce covers creation and reopening")
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "data", "keygate")
	path := filepath.Join(dir, "keygate.db")

	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Created() {
		t.Error("Created() = false for a new store")
	}
	if v := userVersion(t, s.ro); v != len(migrations) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
	var mode string
	if err := s.ro.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	// A write makes SQLite create the -wal file, which must be private too.
	if err := s.CreateType(ctx, contentType("notes")); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{dir: 0o700, path: 0o600, path + "-wal": 0o600} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(name), got, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Created() {
		t.Error("Created() = true when reopening")
	}
	types, err := s.Types(ctx)
	if err != nil || len(types) != 1 || types[0].Name != "notes" {
		t.Errorf("after reopening, types = %v, %v", types, err)
	}
}

func TestOpenEmptyFileIsNew(t *testing.T) {
	skipOnPostgres(t, "an empty file; TestPostgresOpenCreatesOnce covers an empty database")
	// A first run that died between creating the file and migrating it.
	path := filepath.Join(t.TempDir(), "keygate.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Created() {
		t.Error("Created() = false for a store without schema")
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	skipOnPostgres(t, "user_version; TestPostgresOpenRefusesNewerSchema covers keygate_schema")
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keygate.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.rw.ExecContext(ctx, "PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, err = Open(ctx, path, Options{})
	if err == nil || !strings.Contains(err.Error(), "schema version 99") || !strings.Contains(err.Error(), "upgrade keygate") {
		t.Fatalf("Open of a newer store: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	skipOnPostgres(t, "paths and corrupt files; TestPostgresOpenErrors covers bad and unreachable URLs")
	dir := t.TempDir()
	notDB := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{"empty path", ""},
		{"not a database", notDB},
		{"parent is a file", filepath.Join(blocker, "keygate.db")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.path, Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.HasPrefix(err.Error(), "opening store") {
				t.Errorf("error lacks context: %v", err)
			}
		})
	}
}

func TestOpenPathWithURICharacters(t *testing.T) {
	skipOnPostgres(t, "file paths")
	dir := filepath.Join(t.TempDir(), "a ?b#c%20d")
	path := filepath.Join(dir, "keygate.db")
	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("store not at the given path: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "keygate.db") {
			t.Errorf("unexpected file %q: the path was misread as a URI", e.Name())
		}
	}
}

func TestSeed(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := t.Context()
	if err := s.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	types, err := s.Types(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(types) != 1 || types[0].Name != "posts" || types[0].Count != 3 || len(types[0].Fields) != 4 || types[0].Description == "" {
		t.Fatalf("types after seed = %+v", types)
	}
	for status, want := range map[string]int{"published": 2, "draft": 1, "": 3} {
		page, err := s.List(ctx, listAll("posts", status))
		if err != nil || page.Total != want {
			t.Errorf("status %q: total %d, %v; want %d", status, page.Total, err, want)
		}
	}
	if err := s.Seed(ctx); err == nil {
		t.Error("seeding twice succeeded")
	}
	if types, _ := s.Types(ctx); types[0].Count != 3 {
		t.Errorf("a failed second seed left %d posts", types[0].Count)
	}
}

func TestClosedStoreFailsWithContext(t *testing.T) {
	s, _ := newTestStore(t)
	s.Close()
	if _, err := s.Types(context.Background()); err == nil || !strings.Contains(err.Error(), "listing content types") {
		t.Errorf("Types on a closed store: %v", err)
	}
}
