package audit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// lines returns the lines of the file at path.
func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

var digestShape = regexp.MustCompile(`^\[\d+ bytes sha256:[0-9a-f]{12}\]$`)

// TestRecordSizeIsBounded: whatever a caller puts in a record, its line
// stays under 4 KiB, and each long string becomes its length and digest,
// the same for the same value.
func TestRecordSizeIsBounded(t *testing.T) {
	const lineBound = 4 << 10 // MaxRecordBytes
	every := func(s string) Record {
		return Record{Principal: s, Provider: s, Tool: s, Target: s, Outcome: s, RotationID: s, Detail: s, Remote: s}
	}
	tests := []struct {
		name   string
		rec    Record
		capped int // how many fields must be replaced by a digest
	}{
		{"180 KB tool argument in the target", Record{Tool: "content_create", Outcome: "ok", Target: "posts/" + strings.Repeat("a", 180<<10)}, 1},
		{"1 MB of NULs in the detail", Record{Tool: "http", Outcome: "denied", Detail: strings.Repeat("\x00", 1<<20)}, 1},
		{"every field long, escaped six-fold", every(strings.Repeat("<", 300)), 8},
		{"short in bytes, long as JSON", every(strings.Repeat("\x01", 43)), 8},
		{"invalid UTF-8", every(strings.Repeat("\xff", 200)), 8},
		{"line separators", every(strings.Repeat("\u2028", 100)), 8},
		{"at the limit stays", every(strings.Repeat("a", FieldLimit)), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			l, err := Open(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Write(tc.rec); err != nil {
				t.Fatal(err)
			}
			l.Close()
			got := lines(t, path)
			if len(got) != 1 {
				t.Fatalf("%d lines, want 1", len(got))
			}
			line := got[0]
			if len(line)+1 > lineBound {
				t.Fatalf("line is %d bytes, over %d", len(line)+1, lineBound)
			}
			var r Record
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			capped := 0
			for _, s := range []string{r.Principal, r.Provider, r.Tool, r.Target, r.Outcome, r.RotationID, r.Detail, r.Remote} {
				if digestShape.MatchString(s) {
					capped++
				}
			}
			if capped != tc.capped {
				t.Errorf("%d fields capped, want %d: %.300s", capped, tc.capped, line)
			}
		})
	}
}

// TestBoundIdentifiesValues: the digest of a capped value matches the
// digest of the same value built apart (so a reader can match a value they
// already have), and differs for a value of the same length that differs in
// one byte.
func TestBoundIdentifiesValues(t *testing.T) {
	a := strings.Repeat("a", 512)
	same := strings.Repeat("a", 511) + "a"
	other := strings.Repeat("a", 511) + "b"
	for _, v := range []string{a, same, other} {
		if got := bound(v); !strings.HasPrefix(got, "[512 bytes sha256:") {
			t.Fatalf("bound(%.10s...) = %.40s, want a digest", v, got)
		}
	}
	if bound(a) != bound(same) {
		t.Errorf("equal values, different digests: %s %s", bound(a), bound(same))
	}
	if bound(a) == bound(other) {
		t.Errorf("different values, same digest: %s", bound(a))
	}
}

// TestOpenWithoutRedactorMasksCredentials: a journal opened with no
// redactor (the token CLI did so) still masks anything shaped like a key.
func TestOpenWithoutRedactorMasksCredentials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"kg_pat_AbCdEfGhIjKl_" + strings.Repeat("Z", 38), "cos_live0123456789abcdef", "csk_0123456789abcdef0123"}
	if err := l.Write(Record{Tool: "token revoke", Outcome: OutcomeAttempt, Target: secrets[0], Detail: secrets[1], Provider: secrets[2]}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	raw := strings.Join(lines(t, path), "\n")
	for _, s := range secrets {
		if strings.Contains(raw, s) {
			t.Errorf("%s reached the journal: %s", s[:4], raw)
		}
	}
	if !strings.Contains(raw, "[REDACTED:") {
		t.Errorf("nothing masked: %s", raw)
	}
}
