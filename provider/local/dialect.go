package local

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keygate/keygate/provider"
)

// dialect is what differs between the store's two databases, SQLite and
// Postgres. The store's logic (checks inside transactions, lineage walks,
// grants, keyset listing) is written once; its SQL is written for SQLite,
// with "?" and "?NNN" placeholders, and a dialect value supplies the few
// statements and fragments that must differ (docs/providers/local.md,
// "Postgres").
type dialect struct {
	pg bool
	// redact removes the connection password from a text (Postgres only;
	// nil otherwise).
	redact func(string) string

	bindMu sync.Mutex
	bound  map[string]string // SQLite text -> Postgres text
}

var sqliteDialect = &dialect{}

// maxBoundStatements bounds the cache of rebound statements. List builds
// its statements from the caller's filters and sorts, so their number is
// open-ended: a full cache starts again rather than grow.
const maxBoundStatements = 2048

// bind returns query with its placeholders in the dialect's syntax: as it
// is for SQLite, with "?" and "?NNN" turned into "$n" for Postgres. Each
// statement text is rebound once and cached. Only the placeholders move:
// no value is ever written into the text.
func (d *dialect) bind(query string) string {
	if !d.pg {
		return query
	}
	d.bindMu.Lock()
	q, ok := d.bound[query]
	d.bindMu.Unlock()
	if ok {
		return q
	}
	q = rebind(query)
	d.bindMu.Lock()
	if d.bound == nil || len(d.bound) >= maxBoundStatements {
		d.bound = make(map[string]string)
	}
	d.bound[query] = q
	d.bindMu.Unlock()
	return q
}

// rebind numbers placeholders as SQLite does: "?NNN" is parameter NNN, and
// a bare "?" is one more than the largest number used before it. Quoted
// strings, quoted identifiers and comments are copied unchanged.
func rebind(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	largest := 0
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(q) {
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			end := min(j+1, len(q))
			b.WriteString(q[i:end])
			i = end - 1
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			end := strings.IndexByte(q[i:], '\n')
			if end < 0 {
				end = len(q) - i
			}
			b.WriteString(q[i : i+end])
			i += end - 1
		case c == '?':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			n := largest + 1
			if j > i+1 {
				n, _ = strconv.Atoi(q[i+1 : j])
			}
			largest = max(largest, n)
			b.WriteString("$" + strconv.Itoa(n))
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// A constraint whose violation the store turns into an error the caller
// can fix.
type constraint int

const (
	typeNameTaken   constraint = iota // content_types' primary key
	objectSlugTaken                   // objects' UNIQUE (type, slug)
	rotationIDTaken                   // keys' unique rotation_id
)

// pgConstraints names the Postgres constraints (migration 1 of
// pgMigrations names each).
var pgConstraints = map[constraint]string{
	typeNameTaken:   "content_types_pkey",
	objectSlugTaken: "objects_type_slug",
	rotationIDTaken: "keys_rotation_id",
}

// violates reports whether err is a violation of c.
func (d *dialect) violates(err error, c constraint) bool {
	if !d.pg {
		if c == typeNameTaken {
			return isConstraint(err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
		}
		return isConstraint(err, sqlite3.SQLITE_CONSTRAINT_UNIQUE)
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == pgConstraints[c]
}

// retryable reports whether err ended a Postgres transaction that may
// simply be run again: a serialization failure or a deadlock.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// fail turns an error that says the database cannot be reached into one
// that matches provider.ErrUnavailable; other errors pass unchanged.
func (d *dialect) fail(err error) error {
	if err == nil || !d.pg {
		return err
	}
	var u *unavailableError
	var r *refusedError
	if errors.As(err, &u) || errors.As(err, &r) {
		return err
	}
	if lostDatabase(err) {
		return &unavailableError{cause: err, redact: d.redact}
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		// The server answered and refused: a changed password, a dropped
		// database. Not an outage to wait out, and not a text for callers.
		return &refusedError{cause: err, redact: d.redact}
	}
	return err
}

// refusedError is a connection Postgres refused (the login, or the
// database named). Its text for callers leaves out the database's address,
// user and name (provider.PublicError); the operator's log has them. Like
// unavailableError it keeps the driver's error as text only: the driver's
// connection error holds its configuration, password included.
type refusedError struct {
	cause  error
	redact func(string) string
}

func (e *refusedError) Error() string {
	cause := e.cause.Error()
	if e.redact != nil {
		cause = e.redact(cause)
	}
	return e.PublicText() + ": " + cause
}

// PublicText is what a caller is told.
func (e *refusedError) PublicText() string {
	return "the store's Postgres database refused keygate's connection (the operator's log says why)"
}

// failCommit is fail for a COMMIT: a commit whose answer was lost may or
// may not have been applied, and the error says so.
func (d *dialect) failCommit(err error) error {
	err = d.fail(err)
	var u *unavailableError
	if errors.As(err, &u) {
		return &unavailableError{cause: u.cause, redact: d.redact, commit: true}
	}
	return err
}

// lostDatabase reports whether err means Postgres could not be reached or
// the connection broke: a failed connection attempt, a broken socket, or
// the server shutting down, in recovery or out of connections.
func lostDatabase(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03", "53300":
			return true
		}
		return strings.HasPrefix(pe.Code, "08") // connection exception
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the caller gave up; that says nothing of the database
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// unavailableError is a store operation that failed because Postgres could
// not be reached. It matches provider.ErrUnavailable (and, for a commit,
// provider.ErrOutcomeUnknown). The driver's error is kept only as text, with
// the connection password removed, so nothing can dig the configuration out
// of it.
type unavailableError struct {
	cause  error
	redact func(string) string
	commit bool
}

func (e *unavailableError) Error() string {
	cause := e.cause.Error()
	if e.redact != nil {
		cause = e.redact(cause)
	}
	return e.PublicText() + ": " + cause
}

// PublicText is what a caller is told: the driver's text names the
// database's address, user and name, which stay in keygate's log
// (provider.PublicError).
func (e *unavailableError) PublicText() string {
	if e.commit {
		return "the store's Postgres database became unreachable while committing, so the change may or may not have been saved " +
			"(keygate keeps reconnecting; check before retrying)"
	}
	return "the store's Postgres database is unreachable (keygate keeps reconnecting; retry shortly)"
}

func (e *unavailableError) Unwrap() []error {
	if e.commit {
		return []error{provider.ErrUnavailable, provider.ErrOutcomeUnknown}
	}
	return []error{provider.ErrUnavailable}
}

// rawQuerier is what *sql.DB, *sql.Tx and *sql.Conn have in common.
type rawQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// querier runs the store's statements on a pool or in a transaction: it
// rebinds their placeholders for the dialect and reports a lost database
// as provider.ErrUnavailable.
type querier struct {
	raw rawQuerier
	d   *dialect
}

// staleTries bounds how often a statement run on a Postgres pool, outside
// a transaction, is tried: once, then again on another connection each
// time the one it ran on turns out to have died (after a restart of the
// server, every idle connection has), up to a pool's size. These
// statements are reads, or last-use stamps that write the same value
// again, so running one twice is harmless.
const staleTries = max(pgReadConns, pgWriteConns) + 1

// staleConn reports whether err is a connection that had died: the
// database was lost, but not when connecting, so another connection may
// work.
func staleConn(err error) bool {
	var ce *pgconn.ConnectError
	return lostDatabase(err) && !errors.As(err, &ce)
}

// onPool reports whether q runs on a Postgres pool rather than in a
// transaction.
func (q querier) onPool() bool {
	_, ok := q.raw.(*sql.DB)
	return ok && q.d.pg
}

func (q querier) tries() int {
	if q.onPool() {
		return staleTries
	}
	return 1
}

func (q querier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	query = q.d.bind(query)
	var res sql.Result
	var err error
	for range q.tries() {
		if res, err = q.raw.ExecContext(ctx, query, args...); !staleConn(err) {
			break
		}
	}
	return res, q.d.fail(err)
}

func (q querier) QueryContext(ctx context.Context, query string, args ...any) (*rows, error) {
	query = q.d.bind(query)
	var r *sql.Rows
	var err error
	for range q.tries() {
		if r, err = q.raw.QueryContext(ctx, query, args...); !staleConn(err) {
			break
		}
	}
	if err != nil {
		return nil, q.d.fail(err)
	}
	return &rows{Rows: r, d: q.d}, nil
}

func (q querier) QueryRowContext(ctx context.Context, query string, args ...any) *row {
	query = q.d.bind(query)
	return &row{d: q.d, tries: q.tries(), run: func() *sql.Row { return q.raw.QueryRowContext(ctx, query, args...) }}
}

// rows is *sql.Rows whose errors say when the database was lost.
type rows struct {
	*sql.Rows
	d *dialect
}

func (r *rows) Scan(dest ...any) error { return r.d.fail(r.Rows.Scan(dest...)) }
func (r *rows) Err() error             { return r.d.fail(r.Rows.Err()) }

// row is a *sql.Row, run when scanned, whose error says when the database
// was lost; it keeps sql.ErrNoRows as it is.
type row struct {
	d     *dialect
	tries int
	run   func() *sql.Row
}

func (r *row) Scan(dest ...any) error {
	var err error
	for range r.tries {
		if err = r.run().Scan(dest...); !staleConn(err) {
			break
		}
	}
	return r.d.fail(err)
}

// planned returns a listing statement's arguments so that Postgres plans
// the statement for these values each time it runs. pgx otherwise prepares
// a named statement, whose plan Postgres may make once for any values
// (a generic plan), and a field index is partial, on one type: a plan made
// for any type could not use it. As an unnamed statement, the listing is
// planned when its values are bound. Other statements keep their cached
// plans.
func (d *dialect) planned(args []any) []any {
	if !d.pg {
		return args
	}
	return append([]any{pgx.QueryExecModeCacheDescribe}, args...)
}

// notifyChannel is the Postgres channel on which every transaction that
// ends or changes a key or a grant announces its id (WatchKeys).
const notifyChannel = "keygate_keys"

// notify announces, on Postgres, that the keys or grants ids changed. The
// notifications are sent when tx commits, and not at all if it does not.
func (d *dialect) notify(ctx context.Context, tx querier, ids ...string) error {
	if !d.pg || len(ids) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify('`+notifyChannel+`', id) FROM unnest(CAST(? AS text[])) AS n(id)`, ids); err != nil {
		return fmt.Errorf("announcing the change to other replicas: %w", err)
	}
	return nil
}

// checkStorable refuses, on Postgres, a text it cannot store: one holding
// the character U+0000, or bytes that are not UTF-8. SQLite stores both.
func (d *dialect) checkStorable(field, s string) error {
	if !d.pg || (utf8.ValidString(s) && !strings.ContainsRune(s, 0)) {
		return nil
	}
	return &provider.FieldError{Field: field, Problem: "holds the character U+0000 or bytes that are not UTF-8, which this store (Postgres) cannot keep",
		Fix: "remove the character"}
}

// checkStorableJSON refuses, on Postgres, JSON holding the escape \u0000,
// which jsonb cannot keep. compact is valid JSON, so a raw U+0000 cannot be
// in it: only the escape.
func (d *dialect) checkStorableJSON(compact string) error {
	if !d.pg {
		return nil
	}
	for i := 0; i < len(compact); i++ {
		if compact[i] != '\\' {
			continue
		}
		if strings.HasPrefix(compact[i+1:], "u0000") {
			return &provider.FieldError{Field: "fields", Problem: `holds the character U+0000 (written \u0000), which this store (Postgres) cannot keep`,
				Fix: "remove the character from the text"}
		}
		i++ // the escaped character
	}
	return nil
}

// fieldsOut returns an object's stored fields as the store hands them out:
// compact JSON. SQLite keeps the text it was given, compacted; Postgres
// prints jsonb with spaces, which are removed.
func (d *dialect) fieldsOut(stored string) json.RawMessage {
	if !d.pg {
		return json.RawMessage(stored)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(stored)); err != nil {
		return json.RawMessage(stored)
	}
	return b.Bytes()
}
