package tools

import (
	"os"
	"strings"
	"testing"
)

const (
	readmeToolsStart = "<!-- tools:start (generated from the tool definitions: UPDATE_README=true go test ./tools -run TestREADMEToolTable) -->\n"
	readmeToolsEnd   = "<!-- tools:end -->\n"
)

// TestREADMEToolTableIsCurrent keeps the README's tool table equal to the
// definitions. UPDATE_README=true rewrites it.
func TestREADMEToolTableIsCurrent(t *testing.T) {
	const path = "../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start, end := strings.Index(readme, readmeToolsStart), strings.Index(readme, readmeToolsEnd)
	if start < 0 || end < start {
		t.Fatalf("README.md lacks the markers %q ... %q", readmeToolsStart, readmeToolsEnd)
	}
	want := MarkdownTable(All(&Deps{}))
	got := readme[start+len(readmeToolsStart) : end]
	if got == want {
		return
	}
	if os.Getenv("UPDATE_README") == "true" {
		readme = readme[:start+len(readmeToolsStart)] + want + readme[end:]
		if err := os.WriteFile(path, []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's tool table is stale; run UPDATE_README=true go test ./tools -run TestREADMEToolTable\n--- want\n%s", want)
}
