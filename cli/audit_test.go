package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAuditCommandReadsAnyJournal: a 2 MB line, a line of garbage and a
// record full of terminal controls hide nothing that follows them; the
// rotated file is read first; every field prints on its own row with its
// controls spelled out.
func TestAuditCommandReadsAnyJournal(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	dir := filepath.Dir(in.store)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	line := func(tool, target, detail string) string {
		b, err := json.Marshal(map[string]any{"time": at, "principal": "abc", "tool": tool, "target": target, "outcome": "ok", "detail": detail})
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	older := line("rotated_older", "", "")
	current := line("first", "", "") +
		line("big", strings.Repeat("x", 2<<20), "") +
		"this line is not JSON\n" +
		line("hostile", hostileName, hostileName) +
		line("last", "", "")
	for name, content := range map[string]string{"audit.jsonl.1": older, "audit.jsonl": current} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	stdout, stderr, err := runCLI(t, in, "audit")
	if err != nil {
		t.Fatalf("keygate audit: %v\n%s", err, stderr)
	}
	checkNoControls(t, stdout)
	rows := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	var tools []string
	for _, r := range rows[1:] {
		if f := strings.Fields(r); len(f) > 3 {
			tools = append(tools, f[3])
		}
	}
	if got, want := strings.Join(tools, " "), "rotated_older first big hostile last"; got != want {
		t.Errorf("records printed: %s, want %s", got, want)
	}
	if len(rows) == 6 && (!strings.Contains(rows[4], hostileNameShown) || strings.Count(rows[4], hostileNameShown) != 2) {
		t.Errorf("hostile row does not show target and detail visibly: %.300s", rows[4])
	}
	if !strings.Contains(stderr, "line 3") {
		t.Errorf("the garbage line is not reported on stderr: %q", stderr)
	}
}
