// Package local is keygate's embedded provider: content and keygate's own
// keys in one SQLite file, through the pure-Go modernc.org/sqlite driver.
//
// The store keeps two connection pools on the same file. Writes go through a
// single connection, so they queue in Go instead of contending for SQLite's
// write lock, and every write transaction starts with BEGIN IMMEDIATE so it
// never has to upgrade a read lock (the source of SQLITE_BUSY under WAL).
// Reads use a separate pool of query-only connections that WAL lets run
// beside the writer.
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
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
)

// Options configures a Store.
type Options struct {
	// Now is the clock for every timestamp the store writes or compares, so
	// tests can move time. Nil means time.Now.
	Now func() time.Time
}

// Store is the local provider. It is safe for concurrent use.
type Store struct {
	rw      *sql.DB
	ro      *sql.DB
	now     func() time.Time
	created bool

	// Get's statements on the read pool, prepared once rather than parsed
	// on every call.
	getByID, getBySlug lazyStmt
	// LiveGrant's statement (grants.go), checked on every OAuth request.
	liveGrant lazyStmt

	// listKey signs list cursors (cursor.go), read on first use.
	listKey atomic.Pointer[[]byte]
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Open opens the store at path, creating it (and its directory, mode 0700)
// when missing, and brings its schema up to date.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("opening store: no path given")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("opening store: resolving path: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("opening store: creating directory: %w", err)
	}
	newFile, err := createFile(abs)
	if err != nil {
		return nil, err
	}

	s := &Store{now: opts.Now,
		getByID: lazyStmt{query: getObjectSQL("o.id = ?")}, getBySlug: lazyStmt{query: getObjectSQL("o.slug = ?")},
		liveGrant: lazyStmt{query: liveGrantSQL}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rw, err = openPool(abs, 1,
		"busy_timeout(5000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"); err != nil {
		return nil, err
	}
	empty, err := migrate(ctx, s.rw)
	if err != nil {
		s.rw.Close()
		return nil, err
	}
	// Readers are query-only, so a bug can never write through them.
	if s.ro, err = openPool(abs, max(4, runtime.NumCPU()),
		"busy_timeout(5000)", "foreign_keys(1)", "query_only(1)"); err != nil {
		s.rw.Close()
		return nil, err
	}
	// The read pool connects on first use: the writer has already opened
	// and migrated the file, and a cold start should not pay twice.
	// A file that existed but held no schema (a first run that died before
	// migrating) is still a new store and still needs its first-run setup.
	s.created = newFile || empty
	return s, nil
}

// createFile creates the store file with mode 0600 before SQLite sees it, so
// it is never world-readable, not even for a moment. It reports whether the
// file is new.
func createFile(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("opening store: creating file: %w", err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("opening store: creating file: %w", err)
	}
	return true, nil
}

// openPool opens a pool on path with the given pragmas, run on every new
// connection. Write transactions begin IMMEDIATE (_txlock), taking the write
// lock up front under busy_timeout rather than failing when they upgrade.
func openPool(path string, conns int, pragmas ...string) (*sql.DB, error) {
	q := url.Values{"_pragma": pragmas, "_txlock": {"immediate"}}
	// The path is escaped so that "?", "#" or "%" in a directory name cannot
	// be read as part of the URI.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db, nil
}

// Created reports whether Open made a new store, which then needs seeding and
// a first admin key.
func (s *Store) Created() bool { return s.created }

// Close closes the store.
func (s *Store) Close() error {
	var errs []error
	errs = append(errs, s.getByID.close(), s.getBySlug.close(), s.liveGrant.close())
	if s.ro != nil {
		errs = append(errs, s.ro.Close())
	}
	errs = append(errs, s.rw.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("closing store: %w", err)
	}
	return nil
}

// lazyStmt is a statement prepared on first use: preparing at Open would
// connect the read pool, which a cold start should not pay for. A failed
// prepare is not kept, so the next call tries again.
type lazyStmt struct {
	query string
	mu    sync.Mutex
	stmt  atomic.Pointer[sql.Stmt]
}

func (l *lazyStmt) get(ctx context.Context, db *sql.DB) (*sql.Stmt, error) {
	if st := l.stmt.Load(); st != nil {
		return st, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.stmt.Load(); st != nil {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, l.query)
	if err != nil {
		return nil, err
	}
	l.stmt.Store(st)
	return st, nil
}

func (l *lazyStmt) close() error {
	if st := l.stmt.Swap(nil); st != nil {
		return st.Close()
	}
	return nil
}

// inWriteTx runs fn in a write transaction on the single writer connection.
// fn must use only tx: the pool has one connection, which tx holds.
func (s *Store) inWriteTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return inTx(ctx, s.rw, nil, fn)
}

// inReadTx runs fn in a read transaction, so the queries in it see one
// snapshot of the store.
func (s *Store) inReadTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return inTx(ctx, s.ro, &sql.TxOptions{ReadOnly: true}, fn)
}

func inTx(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // fn's error says what went wrong; a rollback error adds nothing.
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing transaction: %w", err)
	}
	return nil
}

// Timestamps are stored as INTEGER Unix nanoseconds in UTC: they sort and
// compare as numbers, whatever the zone they were made in.

func toNanos(t time.Time) int64 { return t.UTC().UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func fromNullNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromNanos(n.Int64)
}

// nowNanos reads the clock once, in the precision the store keeps.
func (s *Store) nowNanos() (time.Time, int64) {
	n := toNanos(s.now())
	return fromNanos(n), n
}

// isConstraint reports whether err is the SQLite constraint violation code
// (an extended result code such as SQLITE_CONSTRAINT_UNIQUE).
func isConstraint(err error, code int) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == code
}
