package local

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/keygate/keygate/internal/pgmigrate"
)

// ErrNoStore is OpenReadOnly's answer when there is no store file.
var ErrNoStore = errors.New("no store")

// SchemaError says that a store's schema is not the one this keygate
// reads: older ones are brought up to date by the next Open, newer ones
// need a newer keygate.
type SchemaError struct {
	Have, Want int
}

func (e *SchemaError) Error() string {
	if e.Have > e.Want {
		return fmt.Sprintf("the store has schema version %d but this keygate knows only up to %d; upgrade keygate", e.Have, e.Want)
	}
	return fmt.Sprintf("the store has schema version %d; this keygate migrates it to %d when it next opens it to serve", e.Have, e.Want)
}

// SchemaVersion is the schema version Open brings a SQLite store to
// (Store.SchemaVersion is that of an open store, SQLite or Postgres).
func SchemaVersion() int { return len(migrations) }

// OpenReadOnly opens an existing store to look at it (keygate doctor). It
// creates nothing, migrates nothing and writes nothing, even the record of
// a key's last use that Verify keeps (Verify drops that failure by
// design). A missing store is ErrNoStore; a store at another schema
// version is a *SchemaError. target is what Open takes: a SQLite path, or
// a postgres:// URL (openPostgresReadOnly).
//
// On SQLite its one pool is opened read-only (mode=ro) and query-only.
// SQLite may create the empty -wal and -shm files it needs to read a WAL
// database; the data is untouched.
func OpenReadOnly(ctx context.Context, target string, opts Options) (*Store, error) {
	if isPostgresURL(target) {
		return openPostgresReadOnly(ctx, target, opts)
	}
	abs, err := filepath.Abs(target)
	if err != nil {
		return nil, fmt.Errorf("opening store read-only: resolving path: %w", err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, ErrNoStore
	case err != nil:
		return nil, fmt.Errorf("opening store read-only: %w", err)
	case fi.IsDir():
		return nil, fmt.Errorf("opening store read-only: %s is a directory", abs)
	}
	q := url.Values{"mode": {"ro"}, "_pragma": {"busy_timeout(5000)", "foreign_keys(1)", "query_only(1)"}}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: abs}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("opening store read-only: %w", err)
	}
	db.SetMaxOpenConns(2)
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		_ = db.Close() // only read
		return nil, fmt.Errorf("opening store read-only: reading schema version: %w", err)
	}
	if version != len(migrations) {
		_ = db.Close() // only read
		return nil, &SchemaError{Have: version, Want: len(migrations)}
	}
	s := newStore(sqliteDialect, opts)
	s.readOnly = true
	s.setPools(db, db)
	return s, nil
}

// openPostgresReadOnly is OpenReadOnly on Postgres. Its one pool's
// connections start with default_transaction_read_only on, and its write
// transactions begin READ ONLY (inWriteTx), so Postgres refuses any write
// whatever the URL sets. It needs only SELECT on the store's tables. A
// database with no keygate store schema in it (no keygate_schema row for
// the store) is ErrNoStore.
func openPostgresReadOnly(ctx context.Context, target string, opts Options) (*Store, error) {
	t, err := parsePGTarget(target)
	if err != nil {
		return nil, err
	}
	s := newStore(&dialect{pg: true, redact: t.redact}, opts)
	s.pg, s.readOnly = t, true
	db := stdlib.OpenDB(*t.connConfig("keygate doctor", true))
	db.SetMaxOpenConns(2)
	s.setPools(db, db)
	version, found, err := pgmigrate.Version(ctx, db, pgComponent)
	switch {
	case err != nil:
		_ = s.Close() // only read
		return nil, t.openError("reading the schema version", err)
	case !found:
		_ = s.Close() // only read
		return nil, ErrNoStore
	case version != len(pgMigrations):
		_ = s.Close() // only read
		return nil, &SchemaError{Have: version, Want: len(pgMigrations)}
	}
	return s, nil
}

// SchemaVersion is the schema version of this store's kind that this
// keygate reads and writes: the SQLite one or the Postgres one.
func (s *Store) SchemaVersion() int {
	if s.d.pg {
		return len(pgMigrations)
	}
	return len(migrations)
}
