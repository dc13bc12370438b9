package cockpit

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keygate/keygate/provider/cockpit/cockpittest"
)

const factsDoc = "../../docs/providers/cockpit.md"

// The reference notes outside the repository, spelled so that a search
// for citations of them does not find this file.
const (
	notesFile = "providers" + ".md"
	notesDir  = "shared" + "/reference"
)

// TestWireFactsAreDocumented keeps every wire assumption traceable: each
// fact id a comment or a transcript cites is a row of
// docs/providers/cockpit.md, and no comment cites notes outside the
// repository.
func TestWireFactsAreDocumented(t *testing.T) {
	doc, err := os.ReadFile(factsDoc)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\| ([AQRWSJMK]\d+) \|`).FindAllStringSubmatch(string(doc), -1) {
		rows[m[1]] = true
	}
	if len(rows) < 50 {
		t.Fatalf("only %d facts in %s", len(rows), factsDoc)
	}
	cited := regexp.MustCompile(`\b([AQRWSJMK]\d+)\b`)
	rangeRef := regexp.MustCompile(`\b([AQRWSJMK])(\d+)-[AQRWSJMK]?(\d+)\b`)
	files, _ := filepath.Glob("*.go")
	more, _ := filepath.Glob("cockpittest/*.go")
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			comment, ok := strings.CutPrefix(strings.TrimSpace(line), "//")
			if !ok {
				if _, c, found := strings.Cut(line, "// "); found {
					comment, ok = c, true
				}
			}
			if !ok {
				continue
			}
			if strings.Contains(comment, notesFile) && !strings.Contains(comment, "docs/providers/cockpit.md") || strings.Contains(comment, notesDir) {
				t.Errorf("%s:%d cites notes outside the repository: %s", f, i+1, comment)
			}
			if !strings.Contains(comment, "docs") && !regexp.MustCompile(`\([AQRWSJMK]\d`).MatchString(comment) {
				continue
			}
			comment = rangeRef.ReplaceAllString(comment, "$1$2")
			for _, m := range cited.FindAllStringSubmatch(comment, -1) {
				if !rows[m[1]] {
					t.Errorf("%s:%d cites %s, which %s does not have", f, i+1, m[1], factsDoc)
				}
			}
		}
	}
	all, err := cockpittest.LoadTranscripts("testdata/transcripts")
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range all {
		for _, id := range tr.Facts {
			if !rows[id] {
				t.Errorf("%s names fact %s, which %s does not have", tr.File, id, factsDoc)
			}
		}
		if !strings.Contains(string(doc), tr.File) {
			t.Errorf("%s does not cite %s", factsDoc, tr.File)
		}
	}
}
