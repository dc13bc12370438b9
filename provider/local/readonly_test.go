package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/internal/pgtest"
	"github.com/keygate/keygate/provider"
)

// TestOpenReadOnlyWritesNothing: a store opened read-only answers reads and
// verifies tokens, but its file does not change: not the last use Verify
// records, not a write asked for outright.
func TestOpenReadOnlyWritesNothing(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keygate.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	issued, err := s.CreateKey(ctx, provider.NewKey{Name: "k", Scopes: auth.Scopes{{Action: auth.Admin}}, ExpiresAt: s.now().Add(day)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	ro, err := OpenReadOnly(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ro.Verify(ctx, issued.Secret.Reveal())
	if err != nil || p.KeyID != issued.Key.ID {
		t.Fatalf("Verify: %+v %v", p, err)
	}
	keys, err := ro.ListKeys(ctx)
	if err != nil || len(keys) != 1 || !keys[0].LastUsedAt.IsZero() {
		t.Fatalf("ListKeys after Verify: %+v %v", keys, err)
	}
	if _, err := ro.CreateKey(ctx, provider.NewKey{Name: "x", Scopes: auth.Scopes{{Action: auth.Admin}}, ExpiresAt: s.now().Add(day)}); err == nil {
		t.Error("a read-only store created a key")
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the store file changed while open read-only")
	}
}

func TestOpenReadOnlyRefuses(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	missing := filepath.Join(dir, "sub", "keygate.db")
	if _, err := OpenReadOnly(ctx, missing, Options{}); !errors.Is(err, ErrNoStore) {
		t.Errorf("missing store: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenReadOnly of a missing store made its directory: %v", err)
	}

	for _, version := range []int{SchemaVersion() - 1, SchemaVersion() + 1} {
		path := filepath.Join(dir, "v.db")
		os.Remove(path)
		s, err := Open(ctx, path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.rwDB.Exec(fmt.Sprintf("PRAGMA user_version = %d", version)); err != nil {
			t.Fatal(err)
		}
		s.Close()
		var se *SchemaError
		if _, err := OpenReadOnly(ctx, path, Options{}); !errors.As(err, &se) || se.Have != version || se.Want != SchemaVersion() {
			t.Errorf("schema %d: %v", version, err)
		}
	}
}

// pgSnapshot is the text of every row keygate keeps in the Postgres
// database dsn, to compare before and after.
func pgSnapshot(t *testing.T, dsn string) string {
	t.Helper()
	var out string
	err := rawDB(t, dsn).QueryRow(`SELECT
		(SELECT coalesce(string_agg(k::text, E'\n' ORDER BY k.id), '') FROM keys k) || E'\n' ||
		(SELECT coalesce(string_agg(o::text, E'\n' ORDER BY o.id), '') FROM objects o) || E'\n' ||
		(SELECT coalesce(string_agg(v::text, E'\n' ORDER BY v.component), '') FROM keygate_schema v)`).Scan(&out)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOpenReadOnlyPostgresWritesNothing: on Postgres too, a store opened
// read-only answers reads and verifies tokens but writes nothing: not the
// last use Verify records, not a write asked for outright, even when the
// URL asks for read-write transactions.
func TestOpenReadOnlyPostgresWritesNothing(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.NewDatabase(t)
	s, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	issued, err := s.CreateKey(ctx, provider.NewKey{Name: "k", Scopes: auth.Scopes{{Action: auth.Admin}}, ExpiresAt: s.now().Add(day)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := pgSnapshot(t, dsn)

	asksWrite := dsn + "&default_transaction_read_only=off"
	ro, err := OpenReadOnly(ctx, asksWrite, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ro.SchemaVersion(), len(pgMigrations); got != want {
		t.Errorf("SchemaVersion() = %d, want %d", got, want)
	}
	p, err := ro.Verify(ctx, issued.Secret.Reveal())
	if err != nil || p.KeyID != issued.Key.ID {
		t.Fatalf("Verify: %+v %v", p, err)
	}
	keys, err := ro.ListKeys(ctx)
	if err != nil || len(keys) != 1 || !keys[0].LastUsedAt.IsZero() {
		t.Fatalf("ListKeys after Verify: %+v %v", keys, err)
	}
	_, err = ro.CreateKey(ctx, provider.NewKey{Name: "x", Scopes: auth.Scopes{{Action: auth.Admin}}, ExpiresAt: s.now().Add(day)})
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("CreateKey on a read-only store: %v, want a read-only refusal", err)
	}
	if _, _, _, err := ro.RevokeKey(ctx, issued.Key.ID); err == nil {
		t.Error("a read-only store revoked a key")
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if after := pgSnapshot(t, dsn); after != before {
		t.Errorf("the database changed while open read-only:\nbefore %s\nafter  %s", before, after)
	}
}

func TestOpenReadOnlyPostgresRefuses(t *testing.T) {
	ctx := t.Context()
	pw := canary()

	empty := pgtest.NewDatabase(t)
	if _, err := OpenReadOnly(ctx, empty, Options{}); !errors.Is(err, ErrNoStore) {
		t.Errorf("empty database: %v, want ErrNoStore", err)
	}
	var tables int
	if err := rawDB(t, empty).QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()`).Scan(&tables); err != nil || tables != 0 {
		t.Errorf("OpenReadOnly of an empty database made %d tables (%v)", tables, err)
	}
	if _, err := rawDB(t, empty).Exec(`CREATE TABLE keygate_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
		INSERT INTO keygate_schema VALUES ('audit', 1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReadOnly(ctx, empty, Options{}); !errors.Is(err, ErrNoStore) {
		t.Errorf("database with another component's schema only: %v, want ErrNoStore", err)
	}

	dsn := pgtest.NewDatabase(t)
	openTestStore(t, dsn, Options{}).Close()
	for _, version := range []int{len(pgMigrations) - 1, len(pgMigrations) + 1} {
		if _, err := rawDB(t, dsn).Exec(`UPDATE keygate_schema SET version = $1 WHERE component = 'store'`, version); err != nil {
			t.Fatal(err)
		}
		var se *SchemaError
		if _, err := OpenReadOnly(ctx, dsn, Options{}); !errors.As(err, &se) || se.Have != version || se.Want != len(pgMigrations) {
			t.Errorf("schema %d: %v", version, err)
		}
	}

	missing := withPassword(t, pgtest.WithDatabase(t, dsn, "kg_missing_db"), pw)
	_, err := OpenReadOnly(ctx, missing, Options{})
	if err == nil || errors.Is(err, ErrNoStore) || strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, err), pw) ||
		!strings.Contains(err.Error(), "postgres://keygate:***@") {
		t.Errorf("no such database: %v, want an error naming the database with its password masked", err)
	}
}
