package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestRotationKeepsSizeFilesAndRecords: past MaxBytes the journal moves to
// path.1 (and .1 to .2, ...), Keep rotated files stay, every file is mode
// 0600 and within MaxBytes plus one write, and the records kept are
// consecutive up to the last one written: none lost on the way. A second
// writer that opened the journal before a rotation (the token CLI) loses
// nothing either.
func TestRotationKeepsSizeFilesAndRecords(t *testing.T) {
	const maxBytes, keep, n = 2048, 3, 300
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l, err := OpenWith(path, Options{MaxBytes: maxBytes, Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	var cli *Log
	for i := range n {
		if err := l.Write(Record{Tool: "content_update", Outcome: OutcomeOK, Target: fmt.Sprintf("posts/seq-%04d", i)}); err != nil {
			t.Fatal(err)
		}
		if i == n-60 { // the CLI opens the journal, l rotates it, the CLI writes
			if cli, err = Open(path, nil); err != nil {
				t.Fatal(err)
			}
		}
		if i == n-20 {
			if err := cli.Write(Record{Tool: "token create", Outcome: OutcomeOK, Target: "from the CLI"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := cli.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	for i := 0; i <= keep+1; i++ {
		name := path
		if i > 0 {
			name = RotatedName(path, i)
		}
		fi, err := os.Stat(name)
		if i == keep+1 {
			if err == nil {
				t.Errorf("%s kept beyond Keep=%d", name, keep)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", name, fi.Mode().Perm())
		}
		if fi.Size() > maxBytes+MaxRecordBytes {
			t.Errorf("%s is %d bytes, over %d", name, fi.Size(), maxBytes+MaxRecordBytes)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != keep+1 {
		t.Errorf("%d files in the directory, want %d", len(entries), keep+1)
	}

	var seq []int
	fromCLI := 0
	if err := ReadWith(path, ReadOptions{Rotated: true}, func(r Record) error {
		if r.Target == "from the CLI" {
			fromCLI++
			return nil
		}
		i, err := strconv.Atoi(strings.TrimPrefix(r.Target, "posts/seq-"))
		seq = append(seq, i)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(seq) < keep*maxBytes/200 || seq[len(seq)-1] != n-1 {
		t.Fatalf("kept %d records, the last %d", len(seq), seq[len(seq)-1])
	}
	for i := 1; i < len(seq); i++ {
		if seq[i] != seq[i-1]+1 {
			t.Fatalf("record %d follows %d: a record was lost", seq[i], seq[i-1])
		}
	}
	if fromCLI != 1 {
		t.Errorf("the second writer's record is there %d times, want once", fromCLI)
	}
}

// TestRotationFailureRefusesTheWrite: a journal that cannot be rotated is
// not written past its limit, so a credential operation is refused rather
// than the file growing without bound.
func TestRotationFailureRefusesTheWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l, err := OpenWith(path, Options{MaxBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Write(Record{Tool: "t", Outcome: OutcomeOK, Target: strings.Repeat("a", 120)}); err != nil {
		t.Fatal(err)
	}
	// A directory where path.1 must go cannot be replaced by a link.
	if err := os.Mkdir(RotatedName(path, DefaultKeep), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(RotatedName(path, DefaultKeep), "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(RotatedName(path, DefaultKeep-1), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(Record{Tool: "credentials_create", Outcome: OutcomeAttempt}); err == nil || !strings.Contains(err.Error(), "rotating") {
		t.Errorf("write past the limit with rotation failing: %v", err)
	}
	if got := lines(t, path); len(got) != 1 {
		t.Errorf("%d lines, want the first only", len(got))
	}
}

// TestFollowsRotationByAnotherProcess: when another writer rotates the
// journal, this one moves to the new file at its next background flush
// instead of appending to the rotated one.
func TestFollowsRotationByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	server, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	other, err := OpenWith(path, Options{MaxBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"one", "two"} { // the second write rotates
		if err := other.Write(Record{Tool: "token create", Outcome: OutcomeOK, Target: target}); err != nil {
			t.Fatal(err)
		}
	}
	other.Close()
	if err := server.flushDue(); err != nil {
		t.Fatal(err)
	}
	if err := server.Write(Record{Tool: "content_create", Outcome: OutcomeOK, Target: "after"}); err != nil {
		t.Fatal(err)
	}
	if got := lines(t, path); len(got) != 2 || !strings.Contains(got[1], `"after"`) {
		t.Errorf("current journal: %q", got)
	}
}
