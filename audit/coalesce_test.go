package audit

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// records parses every line of the journal at path.
func records(t *testing.T, path string) []Record {
	t.Helper()
	var out []Record
	for _, l := range lines(t, path) {
		var r Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

func denied(reason, remote string) Record {
	return Record{Tool: "http", Outcome: OutcomeDenied, Detail: reason, Remote: remote}
}

// TestRefusalsCoalesce: 1,000 identical refusals from one host, on many
// ports, are one record with a count of 1,000 and their first and last
// times, written when the window closes; a different reason or host is
// another record; a refusal after the window starts a new one; Close
// writes what is held.
func TestRefusalsCoalesce(t *testing.T) {
	start := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: start}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenWith(path, Options{Now: clock.Now, Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if err := l.WriteRefusal(denied("invalid_token", fmt.Sprintf("127.0.0.1:%d", 20000+i))); err != nil {
			t.Fatal(err)
		}
		clock.Advance(10 * time.Millisecond)
	}
	for range 5 {
		if err := l.WriteRefusal(denied("missing_token", "[::1]:5555")); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.flushDue(); err != nil {
		t.Fatal(err)
	}
	if got := lines(t, path); len(got) != 0 {
		t.Fatalf("refusals written before their window closed: %q", got)
	}

	clock.Advance(time.Minute)
	if err := l.flushDue(); err != nil {
		t.Fatal(err)
	}
	got := records(t, path)
	want := []struct {
		detail, remote string
		count          int
		first, last    time.Time
	}{
		{"invalid_token", "127.0.0.1", 1000, start, start.Add(9990 * time.Millisecond)},
		{"missing_token", "::1", 5, start.Add(10 * time.Second), start.Add(10 * time.Second)},
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Detail != w.detail || g.Remote != w.remote || g.Count != w.count || !g.Time.Equal(w.first) || !g.Last.Equal(w.last) || g.Tool != "http" || g.Outcome != OutcomeDenied {
			t.Errorf("record %d = %+v, want %s from %s ×%d, %s to %s", i, g, w.detail, w.remote, w.count, w.first, w.last)
		}
	}

	// The window also closes at the next identical refusal, without the
	// background flush.
	if err := l.WriteRefusal(denied("invalid_token", "127.0.0.1:1")); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	if err := l.WriteRefusal(denied("invalid_token", "127.0.0.1:2")); err != nil {
		t.Fatal(err)
	}
	if got := records(t, path); len(got) != 3 || got[2].Count != 1 || !got[2].Last.IsZero() {
		t.Fatalf("after a second window: %+v", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := records(t, path); len(got) != 4 || got[3].Count != 1 {
		t.Fatalf("Close did not write the refusal held: %+v", got)
	}
	if err := l.WriteRefusal(denied("invalid_token", "127.0.0.1:3")); err == nil {
		t.Error("a closed journal took a refusal")
	}
}

// TestRefusalsHeldAreBounded: an attacker who varies the client address
// or the reason cannot make the journal hold more than MaxPending kinds of
// refusal in memory; every refusal is still accounted for.
func TestRefusalsHeldAreBounded(t *testing.T) {
	const maxPending, n = 8, 1000
	tests := []struct {
		name string
		rec  func(i int) Record
	}{
		{"varying host", func(i int) Record { return denied("invalid_token", fmt.Sprintf("127.0.%d.%d:80", i/256, i%256)) }},
		{"varying reason", func(i int) Record { return denied(fmt.Sprintf("reason-%d", i), "127.0.0.1:80") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			l, err := OpenWith(path, Options{Now: clock.Now, Window: time.Hour, MaxPending: maxPending})
			if err != nil {
				t.Fatal(err)
			}
			most := 0
			for i := range n {
				if err := l.WriteRefusal(tc.rec(i)); err != nil {
					t.Fatal(err)
				}
				l.mu.Lock()
				most = max(most, len(l.pending), len(l.order))
				l.mu.Unlock()
			}
			if most > maxPending {
				t.Errorf("held %d kinds of refusal, cap %d", most, maxPending)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			sum := 0
			for _, r := range records(t, path) {
				sum += r.Count
			}
			if sum != n {
				t.Errorf("journal accounts for %d refusals, want %d", sum, n)
			}
		})
	}
}

// TestRefusalIsCleaned: a refusal is redacted and capped like any record.
func TestRefusalIsCleaned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := "kg_pat_AbCdEfGhIjKl_" + strings.Repeat("Z", 38)
	long := strings.Repeat("\x00", 1<<20)
	for range 3 {
		if err := l.WriteRefusal(Record{Tool: "http", Outcome: OutcomeDenied, Detail: tok, Target: long, Remote: "127.0.0.1:9"}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	got := lines(t, path)
	if len(got) != 1 || len(got[0]) > MaxRecordBytes {
		t.Fatalf("lines: %d, first %d bytes", len(got), len(got[0]))
	}
	r := records(t, path)[0]
	if strings.Contains(r.Detail, tok) || !digestShape.MatchString(r.Target) || r.Count != 3 {
		t.Errorf("refusal not cleaned: %+v", r)
	}
}

// Flush writes held refusals before their window closes, for a reader that
// must see them now.
func TestFlushWritesHeldRefusals(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenWith(path, Options{Now: clock.Now, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for range 3 {
		if err := l.WriteRefusal(denied("invalid_token", "127.0.0.1:9")); err != nil {
			t.Fatal(err)
		}
	}
	if got := lines(t, path); len(got) != 0 {
		t.Fatalf("written before Flush: %q", got)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := records(t, path); len(got) != 1 || got[0].Count != 3 {
		t.Fatalf("after Flush: %+v", got)
	}
}
