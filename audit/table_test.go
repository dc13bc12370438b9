package audit

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/internal/pgtest"
)

// openTable opens a Table on db, closed when the test ends.
func openTable(t *testing.T, db *sql.DB, o Options) *Table {
	t.Helper()
	tb, err := OpenTable(t.Context(), db, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close() })
	return tb
}

// count is the number of rows in the journal table.
func count(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM keygate_audit`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// exec runs q on db or fails the test.
func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// readTable reads every record of the table that matches f.
func readTable(t *testing.T, db *sql.DB, f Filter) []Record {
	t.Helper()
	var out []Record
	if err := ReadTable(t.Context(), db, ReadOptions{Filter: f}, func(r Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTableWriteIsCommittedWhenItReturns: a record Write reported as
// written is in the table for any other connection (another replica, a
// reader) at once: a credential operation's attempt is durable before the
// operation runs.
func TestTableWriteIsCommittedWhenItReturns(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	tb := openTable(t, openDB(t, dsn), Options{})
	other := openDB(t, dsn)
	for i := range 50 {
		if err := tb.Write(Record{Tool: "credentials_rotate", Outcome: OutcomeAttempt, Target: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if n := count(t, other); n != i+1 {
			t.Fatalf("after %d writes another connection sees %d rows", i+1, n)
		}
	}
}

// TestTableTwoReplicasInterleave: two replicas, each with its own pool and
// several writers, write one trail: every record once, each writer's in
// its order. Refusals are coalesced per replica, so the same refusal seen
// by both is two records whose counts add up.
func TestTableTwoReplicasInterleave(t *testing.T) {
	const writers, n, refusals = 3, 100, 40
	dsn := pgtest.NewDatabase(t)
	replicas := []*Table{
		openTable(t, openDB(t, dsn), Options{Window: time.Hour}),
		openTable(t, openDB(t, dsn), Options{Window: time.Hour}),
	}
	var wg sync.WaitGroup
	for ri, tb := range replicas {
		for w := range writers {
			wg.Go(func() {
				for i := range n {
					if err := tb.Write(Record{Tool: "content_update", Outcome: OutcomeOK, Target: fmt.Sprintf("r%d-w%d-%03d", ri, w, i)}); err != nil {
						t.Error(err)
						return
					}
					if i < refusals {
						if err := tb.WriteRefusal(denied("invalid_token", "127.0.0.1:1")); err != nil {
							t.Error(err)
							return
						}
					}
				}
			})
		}
	}
	wg.Wait()
	for _, tb := range replicas {
		if err := tb.Close(); err != nil {
			t.Fatal(err)
		}
	}
	last := map[string]int{} // writer -> last sequence number read
	seen := map[string]bool{}
	refused, refusalRecords := 0, 0
	for _, r := range readTable(t, openDB(t, dsn), Filter{}) {
		if r.Tool == "http" {
			refused += r.Count
			refusalRecords++
			continue
		}
		if seen[r.Target] {
			t.Fatalf("%s read twice", r.Target)
		}
		seen[r.Target] = true
		cut := strings.LastIndexByte(r.Target, '-')
		writer := r.Target[:cut]
		i, err := strconv.Atoi(r.Target[cut+1:])
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := last[writer]; ok && i != prev+1 {
			t.Fatalf("%s follows %s-%03d", r.Target, writer, prev)
		}
		last[writer] = i
	}
	if len(seen) != 2*writers*n {
		t.Errorf("%d records, want %d", len(seen), 2*writers*n)
	}
	if refused != 2*writers*refusals || refusalRecords != 2 {
		t.Errorf("%d refusals in %d records, want %d in 2 (one per replica)", refused, refusalRecords, 2*writers*refusals)
	}
}

// TestTableRowBound: the table never keeps more than MaxRows plus what the
// replicas inserted since their last prune, keeps the newest rows, and
// prunes in batches rather than per insert.
func TestTableRowBound(t *testing.T) {
	defer func(old int) { pruneBatch = old }(pruneBatch)
	pruneBatch = 7

	t.Run("one writer", func(t *testing.T) {
		const maxRows, every, n = 40, 10, 200
		db := openDB(t, pgtest.NewDatabase(t))
		tb := openTable(t, db, Options{MaxRows: maxRows, PruneEvery: every})
		for i := range n + every/2 {
			if err := tb.Write(Record{Tool: "content_update", Outcome: OutcomeOK, Target: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
			if i == n-1 {
				// One writer, one row per insert: the prune after the
				// n-th row leaves exactly maxRows. A Write returns once
				// its row is in; the prune follows it, before the sink
				// takes the next thing queued, such as Flush's barrier.
				if err := tb.Flush(); err != nil {
					t.Fatal(err)
				}
				if got := count(t, db); got != maxRows {
					t.Fatalf("after %d rows the table has %d, want %d", n, got, maxRows)
				}
			}
		}
		if err := tb.Flush(); err != nil {
			t.Fatal(err)
		}
		if got := count(t, db); got != maxRows+every/2 {
			t.Errorf("%d rows after %d more inserts, want %d: a prune per insert?", got, every/2, maxRows+every/2)
		}
		recs := readTable(t, db, Filter{})
		for i, r := range recs {
			if want := fmt.Sprint(n + every/2 - len(recs) + i); r.Target != want {
				t.Fatalf("row %d is record %s, want %s: the newest are kept", i, r.Target, want)
			}
		}
		if st := tb.Stats(); st.Pruned != uint64(n-maxRows) || st.Written != n+every/2 {
			t.Errorf("stats %+v, want %d pruned", st, n-maxRows)
		}
	})

	t.Run("two replicas flooding", func(t *testing.T) {
		const maxRows, every, writers, n = 200, 50, 4, 300
		dsn := pgtest.NewDatabase(t)
		db := openDB(t, dsn)
		replicas := []*Table{
			openTable(t, openDB(t, dsn), Options{MaxRows: maxRows, PruneEvery: every}),
			openTable(t, openDB(t, dsn), Options{MaxRows: maxRows, PruneEvery: every}),
		}
		// Each replica's last prune left at most maxRows; since then each
		// inserted less than every, plus a batch of at most writers rows,
		// plus a batch or two while the other held the prune lock.
		const bound = maxRows + 2*(every+3*writers)
		most := 0
		var mu sync.Mutex
		var wg sync.WaitGroup
		for ri, tb := range replicas {
			for w := range writers {
				wg.Go(func() {
					for i := range n {
						if err := tb.Write(Record{Tool: "content_update", Outcome: OutcomeOK, Target: fmt.Sprint(i)}); err != nil {
							t.Error(err)
							return
						}
						if ri == 0 && w == 0 && i%25 == 0 {
							c := count(t, db)
							mu.Lock()
							most = max(most, c)
							mu.Unlock()
						}
					}
				})
			}
		}
		wg.Wait()
		final := count(t, db)
		if most > bound || final > bound {
			t.Errorf("the table held %d rows during the flood and %d after, bound %d", most, final, bound)
		}
		var written, pruned uint64
		for _, tb := range replicas {
			st := tb.Stats()
			written += st.Written
			pruned += st.Pruned
		}
		if written != 2*writers*n || written-pruned != uint64(final) {
			t.Errorf("written %d, pruned %d, left %d: rows unaccounted for", written, pruned, final)
		}
	})
}

// withPassword returns dsn with password set.
func withPassword(t *testing.T, dsn, password string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(u.User.Username(), password)
		return u.String()
	}
	return dsn + " password=" + password
}

// TestTableDatabaseOutage: when the connections are killed, or the
// database stops taking connections, writes fail with a clear error that
// never holds the connection string's password, refusals lost are
// counted, and writes resume when the database is back. Every write
// reported as done is in the table.
func TestTableDatabaseOutage(t *testing.T) {
	const canary = "CANARYpw123" // the test server trusts loopback, so any password connects
	dsn := withPassword(t, pgtest.NewDatabase(t), canary)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	admin := openDB(t, pgtest.Admin(t))
	terminate := func() {
		exec(t, admin, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, cfg.Database)
	}
	db := openDB(t, dsn)
	var mu sync.Mutex
	var messages []string // every error the table returned or logged
	note := func(err error) {
		if err != nil {
			mu.Lock()
			messages = append(messages, err.Error())
			mu.Unlock()
		}
	}
	tb := openTable(t, db, Options{OnError: note, Window: time.Hour, MaxPending: 2, Timeout: 20 * time.Second})
	var done []string // targets Write reported as written
	write := func(target string) error {
		err := tb.Write(Record{Tool: "credentials_rotate", Outcome: OutcomeAttempt, Target: target})
		note(err)
		if err == nil {
			done = append(done, target)
		}
		return err
	}
	if err := write("before"); err != nil {
		t.Fatal(err)
	}

	// The connections die, the server stays: the pool opens new ones.
	terminate()
	if err := write("after-terminate"); err != nil {
		if err := write("after-terminate, again"); err != nil {
			t.Fatalf("writes did not resume after the connections were killed: %v", err)
		}
	}

	// The database goes away.
	exec(t, admin, `ALTER DATABASE `+cfg.Database+` ALLOW_CONNECTIONS false`)
	terminate()
	var refused error
	for i := range 3 { // the pool may hold dead connections before it has to connect
		refused = write(fmt.Sprintf("during-%d", i))
		if refused == nil {
			t.Fatal("a write succeeded while the database took no connections")
		}
		if strings.Contains(refused.Error(), "not currently accepting connections") {
			break
		}
	}
	if !strings.Contains(refused.Error(), "audit journal table: inserting 1 records") || !strings.Contains(refused.Error(), "not currently accepting connections") {
		t.Errorf("unclear error: %v", refused)
	}
	for i := range 3 { // MaxPending 2: the third writes out the first two
		note(tb.WriteRefusal(denied("invalid_token", fmt.Sprintf("127.0.0.%d:1", i+1))))
	}
	if err := tb.Flush(); err == nil || !strings.Contains(err.Error(), "refusal records lost") {
		t.Errorf("Flush during the outage: %v", err)
	} else {
		note(err)
	}
	note(ReadTable(t.Context(), db, ReadOptions{}, func(Record) error { return nil }))
	if st := tb.Stats(); st.Dropped != 3 || st.WriteErrs == 0 {
		t.Errorf("stats %+v: lost refusals and failed writes not counted", st)
	}

	// It comes back.
	exec(t, admin, `ALTER DATABASE `+cfg.Database+` ALLOW_CONNECTIONS true`)
	if err := write("after"); err != nil {
		t.Fatalf("writes did not resume: %v", err)
	}
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range readTable(t, db, Filter{Tool: "credentials_rotate"}) {
		got = append(got, r.Target)
	}
	if strings.Join(got, "|") != strings.Join(done, "|") {
		t.Errorf("table holds %q, writes reported done %q", got, done)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(messages) < 3 {
		t.Errorf("only %d errors seen: %q", len(messages), messages)
	}
	for _, m := range messages {
		if strings.Contains(m, canary) {
			t.Errorf("the password reached an error: %s", m)
		}
	}
}

// TestTableQueueIsBounded: while the database does not answer (the table
// is locked), the records held wait in a queue of at most MaxQueued;
// refusals past it are dropped and counted, a Write past it fails at once,
// and every refusal is accounted for once the database answers again.
func TestTableQueueIsBounded(t *testing.T) {
	const maxQueued, maxPending, n = 64, 8, 400
	dsn := pgtest.NewDatabase(t)
	db := openDB(t, dsn)
	tb := openTable(t, db, Options{MaxQueued: maxQueued, MaxPending: maxPending, Window: time.Hour, Timeout: time.Minute})
	lock, err := openDB(t, dsn).BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(t.Context(), `LOCK TABLE keygate_audit IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	dropErrs := 0
	for i := range n {
		if err := tb.WriteRefusal(denied("invalid_token", fmt.Sprintf("127.0.%d.%d:80", i/256, i%256))); err != nil {
			if !strings.Contains(err.Error(), "dropped") {
				t.Fatal(err)
			}
			dropErrs++
		}
		if q := tb.Stats().Queued; q > maxQueued {
			t.Fatalf("%d records queued, cap %d", q, maxQueued)
		}
	}
	err = tb.Write(Record{Tool: "credentials_create", Outcome: OutcomeAttempt})
	if err == nil || !strings.Contains(err.Error(), "already waiting for the database") {
		t.Errorf("Write with the queue full: %v", err)
	}
	st := tb.Stats()
	if dropErrs == 0 || st.Dropped < n-maxQueued-maxPending {
		t.Errorf("%d drop errors, stats %+v", dropErrs, st)
	}
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	// Wait for the queue to be inserted, then write the refusals held.
	if err := tb.tableSink.flush(true); err != nil {
		t.Fatal(err)
	}
	if err := tb.Flush(); err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, r := range readTable(t, db, Filter{}) {
		sum += r.Count
	}
	if dropped := int(tb.Stats().Dropped); sum+dropped != n {
		t.Errorf("%d refusals in the table and %d dropped, want %d in all", sum, dropped, n)
	}
	if err := tb.Write(Record{Tool: "credentials_create", Outcome: OutcomeAttempt}); err != nil {
		t.Errorf("Write once the database answers: %v", err)
	}
}

// TestTableKeepsWhatPostgresTextCannot: Postgres text holds neither NUL
// nor bytes that are not UTF-8; they become U+FFFD rather than fail the
// batch, and the indexed columns say what the record says.
func TestTableKeepsWhatPostgresTextCannot(t *testing.T) {
	db := openDB(t, pgtest.NewDatabase(t))
	tb := openTable(t, db, Options{Redact: func(s string) string { return s }})
	if err := tb.Write(Record{Tool: "to\xffol", Principal: "p\x00", Outcome: "ok\xc3", Detail: "a\x00b\xff\xfe"}); err != nil {
		t.Fatal(err)
	}
	got := readTable(t, db, Filter{Tool: "to\uFFFDol"})
	if len(got) != 1 || got[0].Principal != "p\uFFFD" || got[0].Outcome != "ok\uFFFD" || got[0].Detail != "a\uFFFDb\uFFFD\uFFFD" {
		t.Fatalf("read %#v", got)
	}
	rows := column(t, db, `SELECT concat_ws('|', tool = record->>'tool', principal = record->>'principal', outcome = record->>'outcome') FROM keygate_audit`)
	if len(rows) != 1 || rows[0] != "t|t|t" {
		t.Errorf("columns and record differ: %q", rows)
	}
}

// TestTableBadRecordFailsAlone: a record that cannot be encoded fails, as
// a line of the file would, without taking the records inserted with it
// down.
func TestTableBadRecordFailsAlone(t *testing.T) {
	db := openDB(t, pgtest.NewDatabase(t))
	var logged []error
	var mu sync.Mutex
	tb := openTable(t, db, Options{Window: time.Hour, OnError: func(err error) { mu.Lock(); logged = append(logged, err); mu.Unlock() }})
	for _, year := range []int{2026, 10000} {
		if err := tb.WriteRefusal(Record{Time: time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC), Tool: "http", Outcome: OutcomeDenied, Remote: fmt.Sprint(year)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.Flush(); err == nil || !strings.Contains(err.Error(), "encoding record") {
		t.Errorf("Flush: %v", err)
	}
	if got := readTable(t, db, Filter{}); len(got) != 1 || got[0].Remote != "2026" {
		t.Errorf("read %+v, want the good refusal", got)
	}
	if err := tb.Write(Record{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Tool: "t", Outcome: OutcomeOK}); err == nil {
		t.Error("a record past year 9999 was written")
	}
	mu.Lock()
	defer mu.Unlock()
	if st := tb.Stats(); st.Dropped != 1 || st.WriteErrs != 1 || len(logged) != 1 {
		t.Errorf("stats %+v, logged %v", st, logged)
	}
}

// TestReadTableSkipsRowsAndRefusesNewerSchema: a database without the
// table holds no records; rows that hold no record are reported by id and
// skipped like the file's bad lines; a schema from a newer keygate is
// refused.
func TestReadTableSkipsRowsAndRefusesNewerSchema(t *testing.T) {
	defer func(old int) { maxLine = old }(maxLine)
	maxLine = 1 << 10
	db := openDB(t, pgtest.NewDatabase(t))
	if got := readTable(t, db, Filter{}); len(got) != 0 {
		t.Fatalf("no table, read %+v", got)
	}
	tb := openTable(t, db, Options{})
	if err := tb.Write(Record{Tool: "first", Outcome: OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	insert := `INSERT INTO keygate_audit (at, last_at, tool, principal, outcome, record) VALUES (now(), now(), 'x', '', 'ok', $1::jsonb)`
	exec(t, db, insert, `{"time": 5}`)
	exec(t, db, insert, `{"tool": "huge", "target": "`+strings.Repeat("x", 2<<10)+`"}`)
	if err := tb.Write(Record{Tool: "last", Outcome: OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	var tools []string
	var skipped []SkippedLine
	err := ReadTable(t.Context(), db, ReadOptions{Skipped: func(s SkippedLine) { skipped = append(skipped, s) }}, func(r Record) error {
		tools = append(tools, r.Tool)
		return nil
	})
	if err != nil || strings.Join(tools, " ") != "first last" {
		t.Fatalf("read %q, %v", tools, err)
	}
	if len(skipped) != 2 || skipped[0].Line != 2 || skipped[1].Line != 3 || !strings.Contains(skipped[1].Reason, "over 1024") || skipped[0].File != "table keygate_audit" {
		t.Errorf("skipped %+v", skipped)
	}
	err = ReadTable(t.Context(), db, ReadOptions{}, func(Record) error { return nil })
	var s SkippedLine
	if !errors.As(err, &s) {
		t.Errorf("without Skipped, bad rows are the error: %v", err)
	}

	exec(t, db, `UPDATE keygate_schema SET version = 99 WHERE component = 'audit'`)
	if err := ReadTable(t.Context(), db, ReadOptions{}, func(Record) error { return nil }); err == nil || !strings.Contains(err.Error(), "upgrade keygate") {
		t.Errorf("newer schema, read: %v", err)
	}
	if _, err := OpenTable(t.Context(), db, Options{}); err == nil || !strings.Contains(err.Error(), "upgrade keygate") {
		t.Errorf("newer schema, open: %v", err)
	}
}

// TestScrubRemovesPasswords: a driver error that quotes the connection
// string loses the password, in either form, and keeps the rest.
func TestScrubRemovesPasswords(t *testing.T) {
	const canary = "CANARYpw123"
	tests := []struct{ in, want string }{
		{"cannot parse `postgres://keygate:" + canary + "@127.0.0.1:55432/kg`: bad", "cannot parse `postgres://keygate:xxxxx@127.0.0.1:55432/kg`: bad"},
		{"dial postgresql://:" + canary + "@host/db failed", "dial postgresql://:xxxxx@host/db failed"},
		{"cannot parse `host=127.0.0.1 user=keygate password=" + canary + " dbname=kg`", "cannot parse `host=127.0.0.1 user=keygate password=xxxxx dbname=kg`"},
		{"password='" + canary + " x' sslpassword=" + canary, "password=xxxxx sslpassword=xxxxx"},
		{"postgres://h/db?sslmode=disable&password=" + canary + "&x=1", "postgres://h/db?sslmode=disable&password=xxxxx&x=1"},
	}
	for _, tc := range tests {
		got := scrub(fmt.Errorf("audit journal table: %w", errors.New(tc.in)))
		if got.Error() != "audit journal table: "+tc.want {
			t.Errorf("scrub(%q) = %q", tc.in, got)
		}
	}
	plain := fmt.Errorf("wrapped: %w", sql.ErrNoRows)
	if got := scrub(plain); !errors.Is(got, sql.ErrNoRows) {
		t.Errorf("an error with no password lost its chain: %v", got)
	}
}

// TestTableInsertIsDurableWhereCommitsAreNot: where the database runs with
// synchronous_commit off, the insert turns it on for its own transaction,
// so its commit waits for the WAL flush; a stricter setting is kept.
func TestTableInsertIsDurableWhereCommitsAreNot(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	openTable(t, openDB(t, dsn), Options{}).Close() // the schema
	row, err := encodeRow(Record{Time: time.Now(), Tool: "t", Outcome: OutcomeOK})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ setting, want string }{{"off", "on"}, {"local", "local"}, {"remote_apply", "remote_apply"}} {
		admin := openDB(t, pgtest.Admin(t))
		exec(t, admin, `ALTER DATABASE `+cfg.Database+` SET synchronous_commit = `+tc.setting)
		db := openDB(t, dsn) // new sessions take the setting
		tx, err := db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var before, after string
		if err := tx.QueryRowContext(t.Context(), `SHOW synchronous_commit`).Scan(&before); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(t.Context(), insertSQL, []time.Time{row.at}, []time.Time{row.last}, []string{row.tool}, []string{row.principal}, []string{row.outcome}, []string{row.doc}); err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRowContext(t.Context(), `SHOW synchronous_commit`).Scan(&after); err != nil {
			t.Fatal(err)
		}
		tx.Rollback()
		if before != tc.setting || after != tc.want {
			t.Errorf("synchronous_commit %s, after the insert %s; want %s", before, after, tc.want)
		}
	}
}
