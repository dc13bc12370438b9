package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/rotation"
	"github.com/keygate/keygate/rotation/pgjournal"
)

// What replicas share besides the store (README, "Teams: Postgres and
// replicas"): with a postgres:// store, the rotation journals and locks
// (rotation/pgjournal) and, unless --audit-file says otherwise, the audit
// journal (audit.OpenTable) live in the same database, on one connection
// pool of their own. Pending secrets stay 0600 files in --data-dir: the
// database never holds a secret.

// openShared opens the shared pool and the rotation journals when the
// store is Postgres; with SQLite it does nothing.
func (a *App) openShared(ctx context.Context) error {
	if !a.cfg.Postgres() {
		return nil
	}
	// Whatever a driver error or a log line might quote, the password
	// never leaves.
	for _, pw := range a.cfg.StorePasswords() {
		a.redactor.Add(pw)
	}
	db, err := openPool(a.cfg)
	if err != nil {
		return err
	}
	a.db = db
	js, err := pgjournal.Open(ctx, db, pgjournal.Options{})
	if err != nil {
		return fmt.Errorf("%s: rotation journals: %w", a.cfg.StoreName(), err)
	}
	a.journals = js
	a.health = &readiness{db: db, now: time.Now}
	return nil
}

// Bounds of the pool the rotation journals, the audit table and the health
// check share: each rotation lock holds a connection while it runs
// (pgjournal's MaxHeld), the audit table inserts on one, the health check
// pings on one.
const (
	poolConns      = pgjournal.DefaultMaxHeld + 4
	connectTimeout = 5 * time.Second
)

// openPool opens a bounded pool on the Postgres store: a flood of health
// checks or rotations takes a few connections, never the server's all.
func openPool(cfg config.Config) (*sql.DB, error) {
	pc, err := pgx.ParseConfig(cfg.Store)
	if err != nil {
		// pgx's text would quote the URL.
		return nil, fmt.Errorf("%s: cannot read the Postgres URL", cfg.StoreName())
	}
	if pc.ConnectTimeout == 0 {
		pc.ConnectTimeout = connectTimeout
	}
	db := stdlib.OpenDB(*pc)
	db.SetMaxOpenConns(poolConns)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// sharedJournals is the rotation.Journals every engine uses: Postgres's
// with a Postgres store, else nil (files in the rotation directory).
func (a *App) sharedJournals() rotation.Journals {
	if a.journals == nil {
		return nil
	}
	return a.journals
}

// auditJournal is where audit records go: a file, or the Postgres
// store's audit table.
type auditJournal interface {
	Write(audit.Record) error
	WriteRefusal(audit.Record) error
	Close() error
}

// openAudit opens the audit file, or, with a Postgres store and no
// --audit-file, the store's audit table, which every replica appends to.
func (a *App) openAudit(ctx context.Context) (auditJournal, error) {
	opts := audit.Options{Redact: a.redactor.Redact,
		OnError: func(err error) { a.logger.Error("cannot write the audit journal", "err", err) }}
	if a.cfg.AuditFile == "" && a.db != nil {
		t, err := audit.OpenTable(ctx, a.db, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.cfg.StoreName(), err)
		}
		return t, nil
	}
	return audit.OpenWith(a.cfg.AuditFile, opts)
}

// watchKeys drops every cached verification when another replica (or this
// one) revokes, rotates or retires a key or revokes a grant, so a key
// revoked anywhere is refused here at once rather than after the cache's
// second. The store calls back with nil whenever it may have missed a
// change, which drops the cache too. With SQLite it returns at once.
func (a *App) watchKeys(ctx context.Context) {
	a.store.WatchKeys(ctx, func([]string) { a.verifier.Invalidate() })
}

// readiness answers /healthz from one ping at a time, at most one a
// second: health checks come from anyone, and each must not cost a
// database connection.
type readiness struct {
	db  *sql.DB
	now func() time.Time

	mu     sync.Mutex
	at     time.Time
	last   error
	flight chan struct{} // closed when the ping in flight ends
}

// readyFor is how long a ping's answer is reused; pingTimeout bounds a
// ping, so a database that drops packets costs no more than that.
const (
	readyFor    = time.Second
	pingTimeout = 2 * time.Second
)

// check returns the last ping's answer when it is recent, else waits for
// a ping (one, however many ask) or for ctx.
func (r *readiness) check(ctx context.Context) error {
	r.mu.Lock()
	if !r.at.IsZero() && r.now().Sub(r.at) < readyFor {
		err := r.last
		r.mu.Unlock()
		return err
	}
	if r.flight == nil {
		r.flight = make(chan struct{})
		go r.ping(r.flight)
	}
	flight := r.flight
	r.mu.Unlock()
	select {
	case <-flight:
	case <-ctx.Done():
		return ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

func (r *readiness) ping(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	err := r.db.PingContext(ctx)
	r.mu.Lock()
	r.at, r.last, r.flight = r.now(), err, nil
	r.mu.Unlock()
	close(done)
}

// ready reports whether the store can be reached, for /healthz.
func (a *App) ready(ctx context.Context) error {
	if a.health == nil {
		return nil
	}
	return a.health.check(ctx)
}

// Journal is an audit journal a command opens for itself (keygate token):
// Close closes what it opened.
type Journal interface {
	Write(audit.Record) error
	Close() error
}

// OpenJournal opens cfg's audit journal for a command that runs once: the
// file, or, with a Postgres store and no --audit-file, the store's audit
// table on a connection of its own.
func OpenJournal(ctx context.Context, cfg config.Config, redact func(string) string) (Journal, error) {
	if cfg.AuditFile != "" || !cfg.Postgres() {
		return audit.Open(cfg.AuditFile, redact)
	}
	db, err := sql.Open("pgx", cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.StoreName(), err)
	}
	t, err := audit.OpenTable(ctx, db, audit.Options{Redact: redact})
	if err != nil {
		_ = db.Close() // the open error says what failed
		return nil, fmt.Errorf("%s: %w", cfg.StoreName(), err)
	}
	return &tableJournal{Table: t, db: db}, nil
}

// tableJournal is the audit table and the connection pool it was opened
// on.
type tableJournal struct {
	*audit.Table
	db *sql.DB
}

func (j *tableJournal) Close() error { return errors.Join(j.Table.Close(), j.db.Close()) }

// ReadJournal calls fn for each record of cfg's audit journal that
// matches o, oldest first: the file (and its rotated parts), or the
// Postgres store's audit table.
func ReadJournal(ctx context.Context, cfg config.Config, o audit.ReadOptions, fn func(audit.Record) error) error {
	if cfg.AuditFile != "" || !cfg.Postgres() {
		return audit.ReadWith(cfg.AuditFile, o, fn)
	}
	db, err := sql.Open("pgx", cfg.Store)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.StoreName(), err)
	}
	defer db.Close()
	if err := audit.ReadTable(ctx, db, o, fn); err != nil {
		return fmt.Errorf("%s: %w", cfg.StoreName(), err)
	}
	return nil
}
