package audit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadSurvivesHugeAndGarbageLines: a 2 MB record, garbage, a torn
// line and a blank one hide none of the records after them; the bad lines
// are reported with their numbers once everything has been read.
func TestReadSurvivesHugeAndGarbageLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	huge := strings.Repeat("x", 2<<20)
	content := `{"tool":"first","outcome":"ok"}` + "\n" +
		`{"tool":"huge","outcome":"ok","target":"` + huge + `"}` + "\n" +
		"garbage\x00\xff\n" +
		`{"tool":"y","out` + "\n" +
		"\n" +
		`{"tool":"last","outcome":"ok"}` // no newline: the end of the file ends it
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	var tools []string
	err := Read(path, Filter{}, func(r Record) error {
		tools = append(tools, r.Tool)
		if r.Tool == "huge" && r.Target != huge {
			t.Error("the huge record lost its target")
		}
		return nil
	})
	if got := strings.Join(tools, " "); got != "first huge last" {
		t.Errorf("read %q, want every record", got)
	}
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "line 4") || strings.Contains(err.Error(), "line 5") {
		t.Errorf("error %v, want lines 3 and 4 reported", err)
	}

	var skipped []SkippedLine
	tools = nil
	if err := ReadWith(path, ReadOptions{Skipped: func(s SkippedLine) { skipped = append(skipped, s) }}, func(r Record) error {
		tools = append(tools, r.Tool)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(tools) != 3 || len(skipped) != 2 || skipped[0].Line != 3 || skipped[1].Line != 4 || skipped[0].File != path {
		t.Errorf("read %v, skipped %+v", tools, skipped)
	}
}

// TestReadSkipsOverlongLinesWithoutHoldingThem: past maxLine a line is
// counted, reported and dropped, and the next line still reads.
func TestReadSkipsOverlongLinesWithoutHoldingThem(t *testing.T) {
	defer func(old int) { maxLine = old }(maxLine)
	maxLine = 1 << 10
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	content := `{"tool":"` + strings.Repeat("x", 300<<10) + `","outcome":"ok"}` + "\n" + `{"tool":"after","outcome":"ok"}` + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	var tools []string
	err := Read(path, Filter{}, func(r Record) error { tools = append(tools, r.Tool); return nil })
	var s SkippedLine
	if !errors.As(err, &s) || s.Line != 1 || !strings.Contains(s.Reason, "over 1024") {
		t.Errorf("error %v, want line 1 reported as over the limit", err)
	}
	if len(tools) != 1 || tools[0] != "after" {
		t.Errorf("read %v", tools)
	}
}

// TestReadRotatedOldestFirst reads path.3, path.2, path.1, then path, and
// leaves other files beside the journal alone.
func TestReadRotatedOldestFirst(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	for name, tool := range map[string]string{
		"audit.jsonl.3": "oldest", "audit.jsonl.2": "older", "audit.jsonl.1": "newer", "audit.jsonl": "current",
		"audit.jsonl.bak": "backup", "audit.jsonl.01": "padded", ".audit.jsonl.new-123": "temporary", "other.jsonl.1": "other",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(`{"tool":"`+tool+`","outcome":"ok"}`+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		rotated bool
		want    string
	}{{true, "oldest older newer current"}, {false, "current"}} {
		var tools []string
		if err := ReadWith(path, ReadOptions{Rotated: tc.rotated}, func(r Record) error { tools = append(tools, r.Tool); return nil }); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(tools, " "); got != tc.want {
			t.Errorf("rotated=%v: read %q, want %q", tc.rotated, got, tc.want)
		}
	}
}
