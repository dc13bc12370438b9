package audit

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/keygate/keygate/internal/pgtest"
)

// The tests in this file are about what the journal does, not where it
// keeps records: each runs against the file (Log) and the Postgres table
// (Table). The table's side skips without KEYGATE_TEST_POSTGRES.

// journalUnderTest is what Log and Table both offer.
type journalUnderTest interface {
	Write(Record) error
	WriteRefusal(Record) error
	Flush() error
	Close() error
	flushDue() error
	held() int
}

// held is how many kinds of refusal the journal holds in memory.
func (j *journal) held() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return max(len(j.pending), len(j.order))
}

// subject is one journal opened for a test, with what the test needs to
// look behind it.
type subject struct {
	j journalUnderTest
	// settle waits until what was written is readable: the table inserts
	// in the background.
	settle func() error
	read   func(ReadOptions, func(Record) error) error
	// stored is every record as kept: a line of the file, a row's JSONB
	// as Postgres prints it.
	stored func() []string
}

type backend struct {
	name string
	open func(t *testing.T, o Options) *subject
}

var backends = []backend{
	{"file", func(t *testing.T, o Options) *subject {
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		l, err := OpenWith(path, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return &subject{
			j:      l,
			settle: func() error { return nil },
			read: func(ro ReadOptions, fn func(Record) error) error {
				ro.Rotated = true
				return ReadWith(path, ro, fn)
			},
			stored: func() []string { return lines(t, path) },
		}
	}},
	{"table", func(t *testing.T, o Options) *subject {
		db := openDB(t, pgtest.NewDatabase(t))
		tb, err := OpenTable(t.Context(), db, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tb.Close() })
		return &subject{
			j:      tb,
			settle: func() error { return tb.tableSink.flush(true) },
			read: func(ro ReadOptions, fn func(Record) error) error {
				return ReadTable(t.Context(), db, ro, fn)
			},
			stored: func() []string { return column(t, db, `SELECT record::text FROM keygate_audit ORDER BY id`) },
		}
	}},
}

// openDB opens dsn with the pgx driver, closed when the test ends.
func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// column runs q and returns its one text column.
func column(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// readAll reads every record that matches ro.
func (s *subject) readAll(t *testing.T, ro ReadOptions) []Record {
	t.Helper()
	var out []Record
	if err := s.read(ro, func(r Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func forEachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

// TestBackendsBoundRecords: whatever a caller puts in a record, it is kept
// in under MaxRecordBytes, and each long string becomes its length and
// digest. (The file's own TestRecordSizeIsBounded checks lines.)
func TestBackendsBoundRecords(t *testing.T) {
	every := func(s string) Record {
		return Record{Principal: s, Provider: s, Tool: s, Target: s, Outcome: s, RotationID: s, Detail: s, Remote: s}
	}
	tests := []struct {
		name   string
		rec    Record
		capped int
	}{
		{"180 KB tool argument in the target", Record{Tool: "content_create", Outcome: "ok", Target: "posts/" + strings.Repeat("a", 180<<10)}, 1},
		{"1 MB of NULs in the detail", Record{Tool: "http", Outcome: "denied", Detail: strings.Repeat("\x00", 1<<20)}, 1},
		{"every field long, escaped six-fold", every(strings.Repeat("<", 300)), 8},
		{"short in bytes, long as JSON", every(strings.Repeat("\x01", 43)), 8},
		{"invalid UTF-8", every(strings.Repeat("\xff", 200)), 8},
		{"at the limit stays", every(strings.Repeat("a", FieldLimit)), 0},
	}
	forEachBackend(t, func(t *testing.T, b backend) {
		s := b.open(t, Options{})
		for _, tc := range tests {
			if err := s.j.Write(tc.rec); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		if err := s.settle(); err != nil {
			t.Fatal(err)
		}
		stored := s.stored()
		if len(stored) != len(tests) {
			t.Fatalf("%d records kept, want %d", len(stored), len(tests))
		}
		for i, tc := range tests {
			if len(stored[i]) >= MaxRecordBytes {
				t.Errorf("%s: kept in %d bytes, over %d", tc.name, len(stored[i]), MaxRecordBytes)
			}
			var r Record
			if err := json.Unmarshal([]byte(stored[i]), &r); err != nil {
				t.Fatal(err)
			}
			capped := 0
			for _, f := range r.stringFields() {
				if digestShape.MatchString(*f) {
					capped++
				}
			}
			if capped != tc.capped {
				t.Errorf("%s: %d fields capped, want %d: %.300s", tc.name, capped, tc.capped, stored[i])
			}
		}
	})
}

// TestBackendsMaskCredentials: a journal opened without a redactor masks
// anything shaped like a key, in Write and WriteRefusal alike.
func TestBackendsMaskCredentials(t *testing.T) {
	secrets := []string{"kg_pat_AbCdEfGhIjKl_" + strings.Repeat("Z", 38), "cos_live0123456789abcdef", "csk_0123456789abcdef0123"}
	forEachBackend(t, func(t *testing.T, b backend) {
		s := b.open(t, Options{})
		if err := s.j.Write(Record{Tool: "token revoke", Outcome: OutcomeAttempt, Target: secrets[0], Detail: secrets[1], Provider: secrets[2]}); err != nil {
			t.Fatal(err)
		}
		if err := s.j.WriteRefusal(Record{Tool: "http", Outcome: OutcomeDenied, Detail: secrets[0], Principal: secrets[1], Remote: "127.0.0.1:1"}); err != nil {
			t.Fatal(err)
		}
		if err := s.j.Close(); err != nil {
			t.Fatal(err)
		}
		raw := strings.Join(s.stored(), "\n")
		for _, secret := range secrets {
			if strings.Contains(raw, secret) {
				t.Errorf("%s reached the journal: %s", secret[:4], raw)
			}
		}
		if strings.Count(raw, "[REDACTED:") < 5 {
			t.Errorf("not everything masked: %s", raw)
		}
	})
}

// TestBackendsCoalesceRefusals: identical refusals within the window are
// one record with a count and first and last times, written once the
// window has closed, and not before; another reason or host is another
// record.
func TestBackendsCoalesceRefusals(t *testing.T) {
	start := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := &fakeClock{t: start}
		s := b.open(t, Options{Now: clock.Now, Window: time.Minute})
		for i := range 300 {
			if err := s.j.WriteRefusal(denied("invalid_token", fmt.Sprintf("127.0.0.1:%d", 20000+i))); err != nil {
				t.Fatal(err)
			}
			clock.Advance(10 * time.Millisecond)
		}
		for range 5 {
			if err := s.j.WriteRefusal(denied("missing_token", "[::1]:5555")); err != nil {
				t.Fatal(err)
			}
		}
		tick := func() {
			t.Helper()
			if err := s.j.flushDue(); err != nil {
				t.Fatal(err)
			}
			if err := s.settle(); err != nil {
				t.Fatal(err)
			}
		}
		tick()
		if got := s.readAll(t, ReadOptions{}); len(got) != 0 {
			t.Fatalf("refusals written before their window closed: %+v", got)
		}
		clock.Advance(time.Minute)
		tick()
		got := s.readAll(t, ReadOptions{})
		want := []Record{
			{Time: start, Tool: "http", Outcome: OutcomeDenied, Detail: "invalid_token", Remote: "127.0.0.1", Count: 300, Last: start.Add(2990 * time.Millisecond)},
			{Time: start.Add(3 * time.Second), Tool: "http", Outcome: OutcomeDenied, Detail: "missing_token", Remote: "::1", Count: 5, Last: start.Add(3 * time.Second)},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("read %+v\nwant %+v", got, want)
		}
		// The next identical refusal after the window starts a new record,
		// and Close writes it.
		if err := s.j.WriteRefusal(denied("invalid_token", "127.0.0.1:1")); err != nil {
			t.Fatal(err)
		}
		if err := s.j.Close(); err != nil {
			t.Fatal(err)
		}
		if got := s.readAll(t, ReadOptions{}); len(got) != 3 || got[2].Count != 1 || !got[2].Last.IsZero() {
			t.Fatalf("after Close: %+v", got)
		}
		if err := s.j.WriteRefusal(denied("invalid_token", "127.0.0.1:3")); err == nil {
			t.Error("a closed journal took a refusal")
		}
		if err := s.j.Write(Record{Tool: "credentials_create", Outcome: OutcomeAttempt}); err == nil {
			t.Error("a closed journal took a record")
		}
	})
}

// TestBackendsRefusalsHeldAreBounded: varying the host cannot make the
// journal hold more than MaxPending kinds of refusal, and every refusal is
// accounted for.
func TestBackendsRefusalsHeldAreBounded(t *testing.T) {
	const maxPending, n = 8, 500
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := &fakeClock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
		s := b.open(t, Options{Now: clock.Now, Window: time.Hour, MaxPending: maxPending})
		most := 0
		for i := range n {
			if err := s.j.WriteRefusal(denied("invalid_token", fmt.Sprintf("127.0.%d.%d:80", i/256, i%256))); err != nil {
				t.Fatal(err)
			}
			most = max(most, s.j.held())
		}
		if most > maxPending {
			t.Errorf("held %d kinds of refusal, cap %d", most, maxPending)
		}
		if err := s.j.Close(); err != nil {
			t.Fatal(err)
		}
		sum := 0
		for _, r := range s.readAll(t, ReadOptions{}) {
			sum += r.Count
		}
		if sum != n {
			t.Errorf("journal accounts for %d refusals, want %d", sum, n)
		}
	})
}

// TestBackendsFlushWritesHeldRefusals: Flush makes held refusals readable
// before their window closes.
func TestBackendsFlushWritesHeldRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := &fakeClock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
		s := b.open(t, Options{Now: clock.Now, Window: time.Hour})
		for range 3 {
			if err := s.j.WriteRefusal(denied("invalid_token", "127.0.0.1:9")); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.settle(); err != nil {
			t.Fatal(err)
		}
		if got := s.readAll(t, ReadOptions{}); len(got) != 0 {
			t.Fatalf("written before Flush: %+v", got)
		}
		if err := s.j.Flush(); err != nil {
			t.Fatal(err)
		}
		if got := s.readAll(t, ReadOptions{}); len(got) != 1 || got[0].Count != 3 {
			t.Fatalf("after Flush: %+v", got)
		}
	})
}

// filterCases are records and filters for the reader, with times down to
// the nanosecond around Since (Postgres keeps microseconds) and a
// coalesced refusal that matches Since by its last time only.
func filterCases() ([]Record, []Record, []struct {
	name string
	f    Filter
	want []string // targets
}) {
	base := time.Date(2026, 11, 22, 12, 0, 0, 123456789, time.UTC)
	writes := []Record{
		{Time: base, Principal: "abc", Tool: "content_create", Target: "base", Outcome: OutcomeOK},
		{Time: base.Add(time.Nanosecond), Principal: "abc", Tool: "credentials_rotate", Target: "base+1ns", Outcome: OutcomeAttempt},
		{Time: base.Add(time.Microsecond), Principal: "abc", Tool: "content_create", Target: "base+1us", Outcome: OutcomeOK},
		{Time: base.Add(time.Hour), Principal: "def", Tool: "content_update", Target: "base+1h", Outcome: OutcomeError},
	}
	refusals := []Record{ // written one after the other at base-1h, base-1h+30m
		{Tool: "http", Outcome: OutcomeDenied, Detail: "invalid_token", Target: "refusal", Remote: "127.0.0.1:1"},
	}
	cases := []struct {
		name string
		f    Filter
		want []string
	}{
		{"all", Filter{}, []string{"refusal", "base", "base+1ns", "base+1us", "base+1h"}},
		{"by tool", Filter{Tool: "content_create"}, []string{"base", "base+1us"}},
		{"by tool, none", Filter{Tool: "content_delete"}, nil},
		{"since, to the nanosecond", Filter{Since: base.Add(time.Nanosecond)}, []string{"base+1ns", "base+1us", "base+1h"}},
		{"since the first", Filter{Since: base}, []string{"base", "base+1ns", "base+1us", "base+1h"}},
		{"since, by the last refusal", Filter{Since: base.Add(-45 * time.Minute)}, []string{"refusal", "base", "base+1ns", "base+1us", "base+1h"}},
		{"since, after the last refusal", Filter{Since: base.Add(-15 * time.Minute)}, []string{"base", "base+1ns", "base+1us", "base+1h"}},
		{"since and tool", Filter{Since: base.Add(time.Nanosecond), Tool: "content_create"}, []string{"base+1us"}},
	}
	return writes, refusals, cases
}

// TestBackendsReadFilters: the reader selects by tool and by time, a
// coalesced refusal by its last time too, and keeps the order of writing.
// Both readers return the very same records.
func TestBackendsReadFilters(t *testing.T) {
	writes, refusals, cases := filterCases()
	results := map[string][][]Record{}
	forEachBackend(t, func(t *testing.T, b backend) {
		first := writes[0].Time.Add(-time.Hour)
		clock := &fakeClock{t: first}
		s := b.open(t, Options{Now: clock.Now, Window: time.Hour})
		for _, r := range refusals {
			if err := s.j.WriteRefusal(r); err != nil {
				t.Fatal(err)
			}
			clock.Advance(30 * time.Minute)
			if err := s.j.WriteRefusal(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.j.Flush(); err != nil {
			t.Fatal(err)
		}
		for _, r := range writes {
			if err := s.j.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range cases {
			got := s.readAll(t, ReadOptions{Filter: tc.f})
			var targets []string
			for _, r := range got {
				targets = append(targets, r.Target)
			}
			if !reflect.DeepEqual(targets, tc.want) {
				t.Errorf("%s: read %q, want %q", tc.name, targets, tc.want)
			}
			results[b.name] = append(results[b.name], got)
		}
	})
	if file, table := results["file"], results["table"]; table != nil {
		for i, tc := range cases {
			if !reflect.DeepEqual(file[i], table[i]) {
				t.Errorf("%s: the table reads otherwise than the file:\nfile  %+v\ntable %+v", tc.name, file[i], table[i])
			}
		}
	}
}
