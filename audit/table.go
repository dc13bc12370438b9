package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/keygate/keygate/internal/pgmigrate"
)

// TableName is the Postgres table of the journal.
const TableName = "keygate_audit"

// tableSchema is the journal table's migrations (internal/pgmigrate,
// component "audit"). Only ever append. The record is the JSON the file
// would hold; the columns beside it are what readers filter on.
var tableSchema = []string{
	`CREATE TABLE keygate_audit (
		id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- insertion order; pruning deletes the lowest
		at        TIMESTAMPTZ NOT NULL, -- Record.Time: for a coalesced refusal, the first
		last_at   TIMESTAMPTZ NOT NULL, -- the latest time the record stands for: Last, else Time (Filter.Since)
		tool      TEXT NOT NULL,
		principal TEXT NOT NULL,
		outcome   TEXT NOT NULL,
		record    JSONB NOT NULL
	);
	CREATE INDEX keygate_audit_last_at ON keygate_audit (last_at);
	CREATE INDEX keygate_audit_tool ON keygate_audit (tool, id);
	CREATE INDEX keygate_audit_principal ON keygate_audit (principal, id);
	CREATE INDEX keygate_audit_outcome ON keygate_audit (outcome, id);`,
}

// pruneLock is the advisory lock a replica holds while it prunes
// ("kgaudprn"), so that replicas take turns rather than delete the same
// rows.
const pruneLock = 0x6b67617564707266

const insertBatch = 500 // rows per INSERT, at most

// pruneBatch is how many rows one DELETE removes at most: a prune is a
// series of short transactions, never one long one.
var pruneBatch = 5000 // a variable for tests

// Table appends records to the journal table in Postgres, which keygate's
// replicas share: each replica opens its own Table on the same database.
// It bounds records as Log does and coalesces refusals per process. A
// Write returns once its record is committed; refusals and concurrent
// Writes are inserted in batches by one goroutine, from a queue bounded by
// Options.MaxQueued. The table is kept to Options.MaxRows by deleting the
// oldest rows in batches. It is safe for concurrent use.
type Table struct {
	journal
	*tableSink
}

// OpenTable brings the journal table's schema up to date and opens it for
// appending. db is opened with the pgx driver ("pgx"); the Table does not
// close it.
func OpenTable(ctx context.Context, db *sql.DB, o Options) (*Table, error) {
	if _, err := pgmigrate.Apply(ctx, db, "audit", tableSchema); err != nil {
		return nil, fmt.Errorf("audit journal table: %w", scrub(err))
	}
	s := &tableSink{
		db: db, maxRows: o.MaxRows, pruneEvery: o.PruneEvery, maxQueued: o.MaxQueued, timeout: o.Timeout,
		wake: make(chan struct{}, 1), exited: make(chan struct{}),
	}
	if s.maxRows <= 0 {
		s.maxRows = DefaultMaxRows
	}
	if s.pruneEvery <= 0 {
		s.pruneEvery = max(1, s.maxRows/100)
	}
	if s.maxQueued <= 0 {
		s.maxQueued = DefaultMaxQueued
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	t := &Table{tableSink: s}
	t.journal.start(s, o)
	s.onError = t.journal.onError
	s.unpruned = s.pruneEvery // prune once at start: MaxRows may have been lowered
	go s.run()
	return t, nil
}

// TableStats counts what a Table did since it was opened.
type TableStats struct {
	Written   uint64 // records committed to the table
	Dropped   uint64 // refusal records lost: the queue was full, or the database did not take them
	WriteErrs uint64 // records of Write that failed (their callers were told)
	Pruned    uint64 // rows this process deleted to keep the table within MaxRows
	Queued    int    // records waiting for the database or being inserted now: at most MaxQueued
}

// tableSink is the queue in front of the table and the goroutine that
// empties it: the Table's sink.
type tableSink struct {
	db         *sql.DB
	maxRows    int64
	pruneEvery int64
	maxQueued  int
	timeout    time.Duration
	onError    func(error)

	queueMu sync.Mutex // guards what follows; taken after journal.mu
	queue   []queued   // oldest first
	records int        // records queued or being inserted: at most maxQueued
	stopped bool       // close was called

	wake   chan struct{} // tells run that the queue has grown or stopped
	exited chan struct{} // closed when run returns

	// Owned by run.
	unpruned   int64 // rows inserted since the last prune
	lost       int   // refusal records lost since the last barrier
	lastLoss   error // why the last of them was lost
	abandoning error // after close, the database failed: the rest is not tried

	written, dropped, writeErrs, pruned atomic.Uint64
}

// queued is a record waiting for the database, or a barrier.
type queued struct {
	rec   Record
	reply chan error // a Write's, told the outcome; nil for a refusal
	// barrier is a flush(true) waiting for everything queued before it.
	barrier bool
}

var errClosed = errors.New("audit journal table: closed")

// Stats reports what the Table did since it was opened.
func (s *tableSink) Stats() TableStats {
	s.queueMu.Lock()
	queued := s.records
	s.queueMu.Unlock()
	return TableStats{Written: s.written.Load(), Dropped: s.dropped.Load(), WriteErrs: s.writeErrs.Load(),
		Pruned: s.pruned.Load(), Queued: queued}
}

// append queues recs. Durable records are waited for until committed; a
// durable batch that does not fit in the queue is refused whole. Refusals
// that do not fit are dropped and counted: memory does not grow while the
// database is slow or down.
func (s *tableSink) append(recs []Record, durable bool) error {
	var reply chan error
	if durable {
		reply = make(chan error, len(recs))
	}
	s.queueMu.Lock()
	if s.stopped {
		s.queueMu.Unlock()
		return errClosed
	}
	var err error
	if room := s.maxQueued - s.records; len(recs) > room {
		if durable {
			s.queueMu.Unlock()
			s.writeErrs.Add(uint64(len(recs)))
			return fmt.Errorf("audit journal table: %d records are already waiting for the database, the most keygate holds (Options.MaxQueued): the database is slow or down", s.records)
		}
		room = max(room, 0)
		s.dropped.Add(uint64(len(recs) - room))
		err = fmt.Errorf("audit journal table: dropped %d refusal records: %d are already waiting for the database, the most keygate holds (Options.MaxQueued): the database is slow or down", len(recs)-room, s.records)
		recs = recs[:room]
	}
	for _, r := range recs {
		s.queue = append(s.queue, queued{rec: r, reply: reply})
	}
	s.records += len(recs)
	s.queueMu.Unlock()
	s.poke()
	if !durable {
		return err
	}
	for range recs {
		err = errors.Join(err, <-reply)
	}
	return err
}

// poke wakes run without waiting.
func (s *tableSink) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// flush waits, with wait, until everything queued before it has been
// inserted or lost, and reports refusal records lost since the previous
// flush. Without wait there is nothing to do: run inserts continuously.
func (s *tableSink) flush(wait bool) error {
	if !wait {
		return nil
	}
	reply := make(chan error, 1)
	s.queueMu.Lock()
	if s.stopped {
		s.queueMu.Unlock()
		return nil
	}
	s.queue = append(s.queue, queued{barrier: true, reply: reply})
	s.queueMu.Unlock()
	s.poke()
	return <-reply
}

// follow has nothing to catch up with: replicas share the table.
func (s *tableSink) follow() error { return nil }

// close inserts what is queued and stops run. Once the database fails,
// the rest is dropped rather than tried, so close does not wait a Timeout
// per batch.
func (s *tableSink) close() error {
	reply := make(chan error, 1)
	s.queueMu.Lock()
	if s.stopped {
		s.queueMu.Unlock()
		return nil
	}
	s.queue = append(s.queue, queued{barrier: true, reply: reply})
	s.stopped = true
	s.queueMu.Unlock()
	s.poke()
	err := <-reply
	<-s.exited
	return err
}

// run inserts the queue, batch by batch, and prunes, until close.
func (s *tableSink) run() {
	defer close(s.exited)
	s.pruneIfDue()
	for {
		batch, stopped := s.next()
		if len(batch) == 0 {
			if stopped {
				return
			}
			<-s.wake
			continue
		}
		if batch[0].barrier {
			batch[0].reply <- s.lossReport()
			continue
		}
		if s.insertBatch(batch) {
			s.pruneIfDue()
		}
	}
}

// pruneIfDue prunes once PruneEvery rows were inserted since the last
// prune. It runs only while inserts succeed: a database that is down gets
// no prunes to refuse besides the inserts. A prune that fails is tried
// again after the next batch.
func (s *tableSink) pruneIfDue() {
	if s.unpruned < s.pruneEvery {
		return
	}
	if err := s.prune(); err != nil {
		s.onError(err)
	}
}

// next takes from the head of the queue a barrier, or up to insertBatch
// records. They still count against maxQueued until insertBatch is done
// with them.
func (s *tableSink) next() ([]queued, bool) {
	s.queueMu.Lock()
	defer s.queueMu.Unlock()
	n := 0
	if len(s.queue) > 0 && s.queue[0].barrier {
		n = 1
	} else {
		for n < len(s.queue) && n < insertBatch && !s.queue[n].barrier {
			n++
		}
	}
	batch := make([]queued, n)
	copy(batch, s.queue)
	clear(s.queue[:n]) // let the records go
	s.queue = s.queue[n:]
	if len(s.queue) == 0 {
		s.queue = nil // drop the backing array a burst grew
	}
	return batch, s.stopped
}

// insertBatch inserts batch in one transaction and tells each Write its
// outcome. A record that cannot be encoded fails alone. Refusals the
// database did not take are counted as lost. It reports whether the
// database took the batch.
func (s *tableSink) insertBatch(batch []queued) bool {
	rows := make([]tableRow, 0, len(batch))
	errs := make([]error, len(batch))
	for i, q := range batch {
		row, err := encodeRow(q.rec)
		if err != nil {
			errs[i] = err
			continue
		}
		rows = append(rows, row)
	}
	err := s.abandoning
	if err == nil && len(rows) > 0 {
		err = s.insert(rows)
	}
	s.queueMu.Lock()
	s.records -= len(batch)
	if err != nil && s.stopped && s.abandoning == nil {
		s.abandoning = err
	}
	s.queueMu.Unlock()
	lost := 0
	var lastErr error
	for i, q := range batch {
		if errs[i] == nil {
			errs[i] = err
		}
		if q.reply != nil {
			if errs[i] != nil {
				s.writeErrs.Add(1)
			}
			q.reply <- errs[i]
		} else if errs[i] != nil {
			lost++
			lastErr = errs[i]
		}
	}
	if lost > 0 {
		s.dropped.Add(uint64(lost))
		s.lost += lost
		s.lastLoss = lastErr
		s.onError(fmt.Errorf("audit journal table: %d refusal records lost: %w", lost, lastErr))
	}
	if err != nil || len(rows) == 0 {
		return false
	}
	s.written.Add(uint64(len(rows)))
	s.unpruned += int64(len(rows))
	return true
}

// lossReport says how many refusal records were lost since the last one.
func (s *tableSink) lossReport() error {
	if s.lost == 0 {
		return nil
	}
	err := fmt.Errorf("audit journal table: %d refusal records lost since the last flush; the last failure: %w", s.lost, s.lastLoss)
	s.lost, s.lastLoss = 0, nil
	return err
}

// insertSQL inserts a batch as six arrays, whatever its size, in one
// statement and so one round trip. Its commit waits for the WAL flush even
// where synchronous_commit is off, without weakening a stricter setting: a
// Write's record must survive a crash once Write returns. set_config's
// local value lasts until the statement's own transaction commits.
const insertSQL = `WITH durable AS (
		SELECT set_config('synchronous_commit', CASE current_setting('synchronous_commit')
			WHEN 'off' THEN 'on' ELSE current_setting('synchronous_commit') END, true)
	)
	INSERT INTO keygate_audit (at, last_at, tool, principal, outcome, record)
	SELECT r.at, r.last_at, r.tool, r.principal, r.outcome, r.record::jsonb
	FROM durable, unnest($1::timestamptz[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[])
		AS r(at, last_at, tool, principal, outcome, record)`

// tableRow is a record as the table holds it.
type tableRow struct {
	at, last                      time.Time
	tool, principal, outcome, doc string
}

// encodeRow renders r for the table. A time encoding/json cannot write
// (past year 9999) fails the record, as it fails a line of the file.
func encodeRow(r Record) (tableRow, error) {
	r = forPostgres(r)
	b, err := json.Marshal(r)
	if err != nil {
		return tableRow{}, fmt.Errorf("audit journal table: encoding record: %w", err)
	}
	return tableRow{at: r.Time, last: latest(r), tool: r.Tool, principal: r.Principal, outcome: r.Outcome, doc: string(b)}, nil
}

// insert writes rows in one transaction.
func (s *tableSink) insert(rows []tableRow) error {
	n := len(rows)
	at, last := make([]time.Time, n), make([]time.Time, n)
	tool, principal, outcome, doc := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, r := range rows {
		at[i], last[i], tool[i], principal[i], outcome[i], doc[i] = r.at, r.last, r.tool, r.principal, r.outcome, r.doc
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, insertSQL, at, last, tool, principal, outcome, doc); err != nil {
		return fmt.Errorf("audit journal table: inserting %d records: %w", n, scrub(err))
	}
	return nil
}

// inTx runs fn in a transaction and commits it.
func inTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // err says what failed
		return err
	}
	return tx.Commit()
}

// latest is the latest time r stands for: what Filter.Since compares.
func latest(r Record) time.Time {
	if r.Last.After(r.Time) {
		return r.Last
	}
	return r.Time
}

// forPostgres returns r as Postgres can hold it. Text cannot hold NUL, so
// each NUL becomes U+FFFD, as does each byte that is not UTF-8 (which
// encoding/json does too, so the columns match the record).
func forPostgres(r Record) Record {
	for _, s := range r.stringFields() {
		*s = pgText(*s)
	}
	return r
}

func pgText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == 0 || (r == utf8.RuneError && size == 1) {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// prune deletes the oldest rows past maxRows, pruneBatch rows per
// transaction. The rows kept are those with the maxRows highest ids: ids
// are never reused, so at most maxRows rows are left. A replica that finds
// another one pruning leaves it to it and tries again after its next
// batch.
func (s *tableSink) prune() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	var top sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT max(id) FROM keygate_audit`).Scan(&top)
	cancel()
	if err != nil {
		return fmt.Errorf("audit journal table: pruning: %w", scrub(err))
	}
	cutoff := top.Int64 - s.maxRows
	for cutoff > 0 {
		var got bool
		var n int64
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		err := inTx(ctx, s.db, func(tx *sql.Tx) error {
			if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(pruneLock)).Scan(&got); err != nil || !got {
				return err
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM keygate_audit WHERE id IN
				(SELECT id FROM keygate_audit WHERE id <= $1 ORDER BY id LIMIT $2)`, cutoff, pruneBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		cancel()
		if err != nil {
			return fmt.Errorf("audit journal table: pruning: %w", scrub(err))
		}
		if !got {
			return nil // another replica is at it
		}
		s.pruned.Add(uint64(n))
		if n < int64(pruneBatch) {
			break
		}
	}
	s.unpruned = 0
	return nil
}
