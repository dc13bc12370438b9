// Package local is keygate's own store: content and keygate's own keys, in
// one SQLite file through the pure-Go modernc.org/sqlite driver, or in a
// Postgres database that several keygate replicas share (through the pgx
// driver). The logic is written once; a dialect value holds what differs
// (dialect.go, postgres.go; docs/providers/local.md describes both).
//
// On SQLite the store keeps two connection pools on the same file. Writes
// go through a single connection, so they queue in Go instead of
// contending for SQLite's write lock, and every write transaction starts
// with BEGIN IMMEDIATE so it never has to upgrade a read lock (the source
// of SQLITE_BUSY under WAL). Reads use a separate pool of query-only
// connections that WAL lets run beside the writer.
//
// On Postgres write transactions run at SERIALIZABLE and are retried when
// Postgres aborts one for a conflict with another writer, so every check a
// transaction makes before it writes still holds with many writers on many
// replicas. Reads run at REPEATABLE READ, READ ONLY.
package local

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"

	"github.com/keygate/keygate/provider"
)

// Options configures a Store.
type Options struct {
	// Now is the clock for every timestamp the store writes or compares, so
	// tests can move time. Nil means time.Now.
	Now func() time.Time
}

// Store is the local provider. It is safe for concurrent use.
type Store struct {
	d *dialect
	// rwDB takes writes, roDB reads; rw and ro run statements on them in
	// the store's dialect.
	rwDB, roDB *sql.DB
	rw, ro     querier
	now        func() time.Time
	created    bool
	// readOnly is set by OpenReadOnly: one pool serves as rw and ro, and
	// on Postgres write transactions begin READ ONLY.
	readOnly bool

	// Get's statements on the read pool, prepared once rather than parsed
	// on every call.
	getByID, getBySlug lazyStmt
	// LiveGrant's statement (grants.go), checked on every OAuth request.
	liveGrant lazyStmt

	// listKey signs list cursors (cursor.go), read on first use.
	listKey atomic.Pointer[[]byte]

	// retries counts Postgres write transactions run again after a
	// conflict.
	retries atomic.Uint64
	// pg is how to reach Postgres (nil for SQLite): WatchKeys opens its own
	// connection with it.
	pg *pgTarget
}

// Open opens the store named by target and brings its schema up to date.
// A target starting with postgres:// or postgresql:// is a Postgres
// database (postgres.go); anything else is the path of a SQLite file,
// created (with its directory, mode 0700) when missing.
func Open(ctx context.Context, target string, opts Options) (*Store, error) {
	if isPostgresURL(target) {
		return openPostgres(ctx, target, opts)
	}
	return openSQLite(ctx, target, opts)
}

func newStore(d *dialect, opts Options) *Store {
	s := &Store{d: d, now: opts.Now,
		getByID: lazyStmt{query: getObjectSQL("o.id = ?")}, getBySlug: lazyStmt{query: getObjectSQL("o.slug = ?")},
		liveGrant: lazyStmt{query: liveGrantSQL}}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// setPools installs the store's two pools.
func (s *Store) setPools(rw, ro *sql.DB) {
	s.rwDB, s.roDB = rw, ro
	s.rw, s.ro = querier{raw: rw, d: s.d}, querier{raw: ro, d: s.d}
}

func openSQLite(ctx context.Context, path string, opts Options) (*Store, error) {
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

	s := newStore(sqliteDialect, opts)
	rw, err := openPool(abs, 1,
		"busy_timeout(5000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)")
	if err != nil {
		return nil, err
	}
	empty, err := migrate(ctx, rw)
	if err != nil {
		rw.Close()
		return nil, err
	}
	// Readers are query-only, so a bug can never write through them.
	ro, err := openPool(abs, max(4, runtime.NumCPU()),
		"busy_timeout(5000)", "foreign_keys(1)", "query_only(1)")
	if err != nil {
		rw.Close()
		return nil, err
	}
	s.setPools(rw, ro)
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
	if s.roDB != nil && s.roDB != s.rwDB {
		errs = append(errs, s.roDB.Close())
	}
	errs = append(errs, s.rwDB.Close())
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

func (l *lazyStmt) get(ctx context.Context, d *dialect, db *sql.DB) (*sql.Stmt, error) {
	if st := l.stmt.Load(); st != nil {
		return st, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.stmt.Load(); st != nil {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, d.bind(l.query))
	if err != nil {
		return nil, d.fail(err)
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

// Bounds of a Postgres write transaction's retries: attempts, and the
// backoff before the second attempt, doubled before each next one up to
// maxTxBackoff, and jittered so that the writers that collided do not
// collide again.
const (
	maxTxAttempts  = 10
	firstTxBackoff = time.Millisecond
	maxTxBackoff   = 250 * time.Millisecond
)

// inWriteTx runs fn in a write transaction. fn must use only tx. On SQLite
// it runs on the single writer connection, which tx holds. On Postgres it
// runs at SERIALIZABLE and is run again when Postgres aborts it for a
// conflict with a concurrent transaction (a serialization failure or a
// deadlock), up to maxTxAttempts times; fn must therefore set what it
// returns afresh on each call.
func (s *Store) inWriteTx(ctx context.Context, fn func(tx querier) error) error {
	if !s.d.pg {
		return inTx(ctx, s.d, s.rwDB, nil, fn)
	}
	opts := &sql.TxOptions{Isolation: sql.LevelSerializable, ReadOnly: s.readOnly}
	wait := firstTxBackoff
	for attempt := 1; ; attempt++ {
		err := inTx(ctx, s.d, s.rwDB, opts, fn)
		if err == nil || !retryable(err) {
			return err
		}
		if attempt == maxTxAttempts {
			return &busyError{attempts: attempt, cause: err}
		}
		s.retries.Add(1)
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting to retry after a concurrent change: %w", ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, maxTxBackoff)
	}
}

// busyError is a Postgres write transaction that concurrent writers undid
// maxTxAttempts times. Nothing was written; it matches
// provider.ErrUnavailable, since trying again shortly is the fix.
type busyError struct {
	attempts int
	cause    error
}

func (e *busyError) Error() string {
	return fmt.Sprintf("the store is busy: concurrent changes to the same keys or objects undid this change %d times, and nothing was saved; retry shortly (%v)",
		e.attempts, e.cause)
}

func (e *busyError) Unwrap() []error { return []error{provider.ErrUnavailable, e.cause} }

// inReadTx runs fn in a read transaction, so the queries in it see one
// snapshot of the store.
func (s *Store) inReadTx(ctx context.Context, fn func(tx querier) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.d.pg {
		opts.Isolation = sql.LevelRepeatableRead
	}
	return inTx(ctx, s.d, s.roDB, opts, fn)
}

func inTx(ctx context.Context, d *dialect, db *sql.DB, opts *sql.TxOptions, fn func(tx querier) error) error {
	tx, err := db.BeginTx(ctx, opts)
	// BEGIN is the first statement on a connection taken from the pool:
	// if that connection had died, another is tried (staleTries).
	for try := 1; d.pg && try < staleTries && staleConn(err); try++ {
		tx, err = db.BeginTx(ctx, opts)
	}
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", d.fail(err))
	}
	if err := fn(querier{raw: tx, d: d}); err != nil {
		_ = tx.Rollback() // fn's error says what went wrong; a rollback error adds nothing.
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing transaction: %w", d.failCommit(err))
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
