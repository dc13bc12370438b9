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
	"time"
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

// SchemaVersion is the schema version Open brings a store to.
func SchemaVersion() int { return len(migrations) }

// OpenReadOnly opens an existing store to look at it (keygate doctor). It
// creates nothing, migrates nothing and writes nothing: its one pool is
// opened read-only (SQLite's mode=ro) and query-only, so even the record
// of a key's last use that Verify keeps cannot be written (Verify drops
// that failure by design). SQLite may create the empty -wal and -shm
// files it needs to read a WAL database; the data is untouched. A missing
// file is ErrNoStore; a store at another schema version is a *SchemaError.
func OpenReadOnly(ctx context.Context, path string, opts Options) (*Store, error) {
	abs, err := filepath.Abs(path)
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
		db.Close()
		return nil, fmt.Errorf("opening store read-only: reading schema version: %w", err)
	}
	if version != len(migrations) {
		db.Close()
		return nil, &SchemaError{Have: version, Want: len(migrations)}
	}
	s := &Store{now: opts.Now, rw: db, ro: db,
		getByID: lazyStmt{query: getObjectSQL("o.id = ?")}, getBySlug: lazyStmt{query: getObjectSQL("o.slug = ?")},
		liveGrant: lazyStmt{query: liveGrantSQL}}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}
