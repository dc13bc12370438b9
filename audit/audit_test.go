package audit

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWriteAndRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit", "audit.jsonl")
	l, err := Open(path, func(s string) string { return strings.ReplaceAll(s, "SECRET", "[REDACTED]") })
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	recs := []Record{
		{Time: base, Principal: "abc", Tool: "content_create", Target: "posts/obj_1", Outcome: OutcomeOK},
		{Time: base.Add(time.Hour), Principal: "abc", Tool: "credentials_rotate", Target: "key SECRET", Outcome: OutcomeAttempt},
		{Time: base.Add(2 * time.Hour), Tool: "auth", Outcome: OutcomeDenied, Remote: "127.0.0.1:5"},
	}
	var wg sync.WaitGroup
	for _, r := range recs {
		if err := l.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	// Concurrent writers never interleave lines.
	for i := range 50 {
		wg.Go(func() {
			_ = l.Write(Record{Time: base.Add(3 * time.Hour), Tool: "content_update", Target: strings.Repeat("x", i*100), Outcome: OutcomeOK})
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v", fi.Mode().Perm())
	}
	tests := []struct {
		name string
		f    Filter
		want int
	}{
		{"all", Filter{}, 53},
		{"by tool", Filter{Tool: "credentials_rotate"}, 1},
		{"since", Filter{Since: base.Add(90 * time.Minute)}, 51},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			if err := Read(path, tc.f, func(r Record) error {
				n++
				if strings.Contains(r.Target, "SECRET") {
					t.Error("target not redacted")
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if n != tc.want {
				t.Errorf("read %d records, want %d", n, tc.want)
			}
		})
	}
}

func TestOpenRefusesLooseOrLinkedJournal(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose.jsonl")
	if err := os.WriteFile(loose, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(loose, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("loose journal: %v", err)
	}
	link := filepath.Join(dir, "link.jsonl")
	if err := os.Symlink(loose, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(link, nil); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("symlinked journal: %v", err)
	}
}

func TestReadReportsTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.jsonl")
	if err := os.WriteFile(path, []byte(`{"tool":"x","outcome":"ok"}`+"\n"+`{"tool":"y","out`), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Read(path, Filter{}, func(Record) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("torn line: %v", err)
	}
	if err := Read(filepath.Join(t.TempDir(), "none"), Filter{}, func(Record) error { return nil }); err != nil {
		t.Errorf("missing journal: %v", err)
	}
}

func TestWriteFailsWhenJournalUnwritable(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "a.jsonl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	l.f.Close() // the file is gone from under the log
	if err := l.Write(Record{Tool: "credentials_create", Outcome: OutcomeAttempt}); err == nil {
		t.Error("write to a closed journal succeeded")
	}
}
