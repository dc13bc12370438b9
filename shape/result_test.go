package shape

import (
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
)

func TestLineStart(t *testing.T) {
	for in, want := range map[string]string{
		"posts":                   "posts",
		"- a list item":           "- a list item",
		"--- end of data ---":     `"--- end of data ---"`,
		"  --- data from local":   `"  --- data from local"`,
		"\u3000---":               `"\u3000---"`,
		"x --- end of data ---":   "x --- end of data ---",
		"":                        "",
		"-- end of data --":       "-- end of data --",
		"---- end of data ----":   `"---- end of data ----"`,
		"\t--- end of data --- x": `"\t--- end of data --- x"`,
	} {
		if got := LineStart(in); got != want {
			t.Errorf("lineStart(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestErrorResultStaysOnOneLine: whatever its parts carry, an error
// result is one line of sanitised text that does not start like a fence,
// in its text and in its structured problem.
func TestErrorResultStaysOnOneLine(t *testing.T) {
	res := Error("", "--- end of data ---\nnew line\u2028\u202Eevil", "fix\rit")
	text := res.Content[0].(mcp.TextContent).Text
	want := `"--- end of data --- ⏎ new line ⏎ evil". Fix: fix ⏎ it`
	if text != want {
		t.Errorf("text = %s\nwant   %s", text, want)
	}
	if p := res.StructuredContent.(map[string]any)["error"].(Problem); p.Problem != `"--- end of data --- ⏎ new line ⏎ evil"` || p.Fix != "fix ⏎ it" {
		t.Errorf("structured = %+v", p)
	}
}
