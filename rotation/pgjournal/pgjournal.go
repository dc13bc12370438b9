// Package pgjournal keeps the rotation engine's journals and locks in
// Postgres, so keygate replicas sharing one database see each other's
// unfinished rotations and never rotate one key at the same time
// (docs/rotation-replicas.md).
//
// A slot's lock is a session-level advisory lock on a connection held for
// the whole rotation, keyed on a hash of the engine's name and the slot;
// the slot's journal is a row of rotation_journal, read and written only
// through that same connection. If the connection dies, the lock is
// released with the session and the next journal write fails: the
// rotation stops instead of racing the replica that may then settle it.
// Secrets never reach the database: the pending secret stays in a 0600
// file in the replica's rotation directory.
package pgjournal

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/keygate/keygate/internal/pgmigrate"
	"github.com/keygate/keygate/rotation"
)

// Component names this package's schema in keygate_schema.
const Component = "rotation"

// migrations are the rotation schema's versions; only ever append.
var migrations = []string{
	// A row per unfinished rotation: its journal, which never holds a
	// secret, and the replica whose rotation directory has its pending
	// file. The other columns repeat the journal's, for operators.
	`CREATE TABLE rotation_journal (
		engine      TEXT NOT NULL,
		slot        TEXT NOT NULL,
		rotation_id TEXT NOT NULL,
		step        TEXT NOT NULL,
		replica     TEXT NOT NULL,
		journal     JSONB NOT NULL,
		updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
		PRIMARY KEY (engine, slot)
	)`,
	// A rotation settled by a replica other than the one whose pending
	// file it had: that replica drops the file instead of acting on it.
	`CREATE TABLE rotation_settled (
		rotation_id TEXT PRIMARY KEY,
		engine      TEXT NOT NULL,
		slot        TEXT NOT NULL,
		replica     TEXT NOT NULL,
		settled_by  TEXT NOT NULL,
		action      TEXT NOT NULL,
		kept_key_id TEXT NOT NULL,
		settled_at  TIMESTAMPTZ NOT NULL DEFAULT now()
	)`,
}

// Defaults of Options.
const (
	DefaultLockWait  = 5 * time.Second
	DefaultMaxHeld   = 16
	DefaultOpTimeout = 10 * time.Second
)

// Options bound what the journals may make the database and the caller
// hold. Zero values take the defaults.
type Options struct {
	// LockWait is how long Lock waits for a slot another rotation holds,
	// and for a free connection, before refusing with ErrInProgress.
	LockWait time.Duration
	// MaxHeld is how many locks (each a held connection) this process
	// holds or waits for at once; more rotations in flight are refused
	// with ErrInProgress after LockWait.
	MaxHeld int
	// OpTimeout bounds each journal read or write. A write that runs out
	// of time ends the session, and with it the lock.
	OpTimeout time.Duration
}

// Journals is a rotation.Journals in one Postgres database. Each replica
// opens its own on the shared database; it is safe for concurrent use.
type Journals struct {
	db   *sql.DB
	opts Options
	// schema is where the tables are: part of every lock key, so keygate
	// installations in different schemas of one database never block
	// each other.
	schema string
	// held has a token per lock held or being taken: it bounds the
	// connections rotations hold.
	held chan struct{}
}

var _ rotation.Journals = (*Journals)(nil)

// Open applies the rotation schema to db (opened with the "pgx" driver)
// and returns its journals. db stays the caller's to close, after every
// lock is released.
func Open(ctx context.Context, db *sql.DB, opts Options) (*Journals, error) {
	if opts.LockWait <= 0 {
		opts.LockWait = DefaultLockWait
	}
	if opts.MaxHeld <= 0 {
		opts.MaxHeld = DefaultMaxHeld
	}
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = DefaultOpTimeout
	}
	if _, err := pgmigrate.Apply(ctx, db, Component, migrations); err != nil {
		return nil, err
	}
	var schema string
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(current_schema(), '')`).Scan(&schema); err != nil {
		return nil, fmt.Errorf("opening rotation journals: %w", err)
	}
	return &Journals{db: db, opts: opts, schema: schema, held: make(chan struct{}, opts.MaxHeld)}, nil
}

// LockKey is the advisory lock key of engine's slot: a hash of the schema,
// the engine's name and the slot, so any slot name fits Postgres's bigint
// key. The "keygate-rotation" prefix keeps it apart from other users of
// advisory locks in the database.
func (js *Journals) LockKey(engine, slot string) int64 {
	h := fnv.New64a()
	h.Write([]byte("keygate-rotation\x00" + js.schema + "\x00" + engine + "\x00" + slot))
	return int64(h.Sum64())
}

// Lock takes the slot's advisory lock on a connection of its own, which it
// keeps until Release.
func (js *Journals) Lock(ctx context.Context, engine, slot string) (rotation.JournalLock, error) {
	// One deadline for the whole wait: a place, a connection, the lock.
	deadline := time.Now().Add(js.opts.LockWait)
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	select {
	case js.held <- struct{}{}:
	case <-wctx.Done():
		return nil, fmt.Errorf("rotating %s: %w (%d rotations in flight on this replica hold database connections for their locks); try again",
			slot, rotation.ErrInProgress, js.opts.MaxHeld)
	}
	conn, err := js.db.Conn(wctx)
	if err != nil {
		<-js.held
		if wctx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("rotating %s: %w (no free database connection within %s); try again", slot, rotation.ErrInProgress, js.opts.LockWait)
		}
		return nil, fmt.Errorf("taking rotation lock: connecting to the database: %w", err)
	}
	l := &lock{js: js, conn: conn, engine: engine, slot: slot, key: js.LockKey(engine, slot)}
	if err := l.take(ctx, time.Until(deadline)); err != nil {
		l.discard()
		return nil, err
	}
	return l, nil
}

// lockNotAvailable is Postgres's SQLSTATE when lock_timeout ran out.
const lockNotAvailable = "55P03"

// take waits for the advisory lock. The wait is bounded on the server by
// lock_timeout, set for this transaction only, so a refused wait leaves
// nothing behind; a session-level advisory lock outlives the transaction
// it was taken in.
func (l *lock) take(ctx context.Context, wait time.Duration) error {
	// The server's timeout fires first; the context only guards against a
	// server that does not answer.
	tctx, cancel := context.WithTimeout(ctx, wait+l.js.opts.OpTimeout)
	defer cancel()
	tx, err := l.conn.BeginTx(tctx, nil)
	if err != nil {
		return fmt.Errorf("taking rotation lock: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
	if _, err := tx.ExecContext(tctx, `SELECT set_config('lock_timeout', $1, true)`, fmt.Sprintf("%dms", max(1, wait.Milliseconds()))); err != nil {
		return fmt.Errorf("taking rotation lock: %w", err)
	}
	_, err = tx.ExecContext(tctx, `SELECT pg_advisory_lock($1)`, l.key)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == lockNotAvailable {
		return fmt.Errorf("rotating %s: %w (another replica or call held its lock for %s); try again when it has finished", l.slot, rotation.ErrInProgress, l.js.opts.LockWait)
	}
	if err != nil {
		return fmt.Errorf("taking rotation lock: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("taking rotation lock: %w", err)
	}
	return nil
}

// Slots lists engine's slots that have a journal, this replica's or any
// other's.
func (js *Journals) Slots(ctx context.Context, engine string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, js.opts.OpTimeout)
	defer cancel()
	rows, err := js.db.QueryContext(ctx, `SELECT slot FROM rotation_journal WHERE engine = $1 ORDER BY slot`, engine)
	if err != nil {
		return nil, fmt.Errorf("listing rotation journals: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("listing rotation journals: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing rotation journals: %w", err)
	}
	return out, nil
}

// lock is a held advisory lock and the connection whose session holds it.
type lock struct {
	js           *Journals
	conn         *sql.Conn
	engine, slot string
	key          int64

	mu sync.Mutex
	// lost is the first failure on conn: from then on the session, and
	// with it the lock, may be gone, so every later call fails.
	lost     error
	released bool
}

// do runs fn on the lock's connection, bounded by OpTimeout and not cut
// short by the caller's cancellation: a query cancelled half-way ends the
// session, and the rotation should stop at a step, not in one. what, if
// not "", prefixes the error (the engine names its writes itself).
func (l *lock) do(ctx context.Context, what string, fn func(ctx context.Context, conn *sql.Conn) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	switch {
	case l.released:
		err = errors.New("the rotation lock was released")
	case l.lost != nil:
		err = fmt.Errorf("%w: an earlier statement on its database session failed (%w)", rotation.ErrLockLost, l.lost)
	default:
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.js.opts.OpTimeout)
		defer cancel()
		if ferr := fn(ctx, l.conn); ferr != nil {
			// Whatever failed, the session may be gone: a journal
			// written after this could race a replica settling the
			// rotation.
			l.lost = ferr
			err = fmt.Errorf("%w: its database session failed (%w)", rotation.ErrLockLost, ferr)
		}
	}
	if err != nil && what != "" {
		return fmt.Errorf("%s: %w", what, err)
	}
	return err
}

func (l *lock) where() string {
	return fmt.Sprintf("in table rotation_journal (engine %s, slot %s)", l.engine, l.slot)
}

func (l *lock) Load(ctx context.Context) (*rotation.JournalRecord, error) {
	var rec *rotation.JournalRecord
	err := l.do(ctx, "reading rotation journal", func(ctx context.Context, conn *sql.Conn) error {
		var r rotation.JournalRecord
		var step string
		err := conn.QueryRowContext(ctx, `SELECT rotation_id, step, replica, journal::text FROM rotation_journal WHERE engine = $1 AND slot = $2`,
			l.engine, l.slot).Scan(&r.RotationID, &step, &r.Replica, &r.Data)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		r.Step, r.Where = rotation.Step(step), l.where()
		rec = &r
		return nil
	})
	return rec, err
}

func (l *lock) Save(ctx context.Context, r rotation.JournalRecord) error {
	return l.do(ctx, "", func(ctx context.Context, conn *sql.Conn) error {
		_, err := conn.ExecContext(ctx, `INSERT INTO rotation_journal (engine, slot, rotation_id, step, replica, journal)
			VALUES ($1, $2, $3, $4, $5, $6::jsonb)
			ON CONFLICT (engine, slot) DO UPDATE SET rotation_id = EXCLUDED.rotation_id, step = EXCLUDED.step,
				replica = EXCLUDED.replica, journal = EXCLUDED.journal, updated_at = now()`,
			l.engine, l.slot, r.RotationID, string(r.Step), r.Replica, string(r.Data))
		return err
	})
}

func (l *lock) Remove(ctx context.Context, s *rotation.Settlement) error {
	return l.do(ctx, "", func(ctx context.Context, conn *sql.Conn) error {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
		if _, err := tx.ExecContext(ctx, `DELETE FROM rotation_journal WHERE engine = $1 AND slot = $2`, l.engine, l.slot); err != nil {
			return err
		}
		if s != nil {
			if _, err := tx.ExecContext(ctx, `INSERT INTO rotation_settled (rotation_id, engine, slot, replica, settled_by, action, kept_key_id)
				VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (rotation_id) DO NOTHING`,
				s.RotationID, l.engine, l.slot, s.Replica, s.By, string(s.Action), s.KeptKeyID); err != nil {
				return err
			}
		}
		return tx.Commit()
	})
}

// Settlements lists the rotations of engine that ran on replica and were
// settled by another replica. There is one only per rotation a replica
// abandoned with its lock free, and that replica deletes it when it next
// recovers.
func (js *Journals) Settlements(ctx context.Context, engine, replica string) ([]rotation.Settlement, error) {
	ctx, cancel := context.WithTimeout(ctx, js.opts.OpTimeout)
	defer cancel()
	rows, err := js.db.QueryContext(ctx, `SELECT rotation_id, slot, settled_by, action, kept_key_id FROM rotation_settled
		WHERE engine = $1 AND replica = $2 ORDER BY settled_at`, engine, replica)
	if err != nil {
		return nil, fmt.Errorf("listing rotation settlements: %w", err)
	}
	defer rows.Close()
	var out []rotation.Settlement
	for rows.Next() {
		s := rotation.Settlement{Engine: engine, Replica: replica}
		var action string
		if err := rows.Scan(&s.RotationID, &s.Slot, &s.By, &action, &s.KeptKeyID); err != nil {
			return nil, fmt.Errorf("listing rotation settlements: %w", err)
		}
		s.Action = rotation.Action(action)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing rotation settlements: %w", err)
	}
	return out, nil
}

// Forget deletes the settlement of rotation rid.
func (js *Journals) Forget(ctx context.Context, rid string) error {
	ctx, cancel := context.WithTimeout(ctx, js.opts.OpTimeout)
	defer cancel()
	if _, err := js.db.ExecContext(ctx, `DELETE FROM rotation_settled WHERE rotation_id = $1`, rid); err != nil {
		return fmt.Errorf("deleting rotation settlement: %w", err)
	}
	return nil
}

// Release unlocks and returns the connection to the pool. A connection
// whose unlock is in doubt is closed instead: a pooled session still
// holding the lock would keep the slot locked for good.
func (l *lock) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return
	}
	l.released = true
	if l.lost == nil {
		ctx, cancel := context.WithTimeout(context.Background(), l.js.opts.OpTimeout)
		defer cancel()
		var unlocked bool
		if err := l.conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock($1)`, l.key).Scan(&unlocked); err == nil && unlocked {
			_ = l.conn.Close() // back to the pool, unlocked
			<-l.js.held
			return
		}
	}
	l.discard()
}

// discard closes the lock's connection, ending its session and so every
// lock it holds, and frees its place.
func (l *lock) discard() {
	// driver.ErrBadConn makes database/sql close the connection rather
	// than pool it.
	_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = l.conn.Close()
	<-l.js.held
}
