package provider

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// outsideNotes matches a citation of the reference notes kept outside the
// repository (spelled so that this file does not match itself).
var outsideNotes = regexp.MustCompile(`(\.\./)?shared` + `/reference|\b(providers|mcp-http|mcp-go|peers)` + `\.md`)

// docCitation matches a citation of a provider's facts document.
var docCitation = regexp.MustCompile(`docs/providers/[a-z]+\.md`)

// TestCommentsCiteOnlyTheRepository: every comment under provider/ cites
// facts from files in the repository (docs/providers/<name>.md, which
// must exist), never the notes outside it.
func TestCommentsCiteOnlyTheRepository(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			_, comment, ok := strings.Cut(line, "//")
			if !ok {
				continue
			}
			cited := docCitation.ReplaceAllStringFunc(comment, func(doc string) string {
				if _, err := os.Stat(filepath.Join("..", doc)); err != nil {
					t.Errorf("%s:%d cites %s, which does not exist", path, i+1, doc)
				}
				return ""
			})
			if outsideNotes.MatchString(cited) {
				t.Errorf("%s:%d cites notes outside the repository: %s", path, i+1, strings.TrimSpace(comment))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
