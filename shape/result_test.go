package shape

import (
	"encoding/json"
	"slices"
	"strings"
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

// TestResultSize: ResultSize is the length of the result's JSON.
func TestResultSize(t *testing.T) {
	tests := []struct {
		name string
		res  *mcp.CallToolResult
	}{
		{"text and structured", OK(map[string]any{"a": "b<c>", "n": 1}, "line one\nline \"two\" <&>")},
		{"encoded structured", &mcp.CallToolResult{Content: []mcp.Content{mcp.TextContent{Type: "text", Text: "x"}}, StructuredContent: json.RawMessage(`{"k":[1,2]}`)}},
		{"error", Error("field", "is wrong\u2028", "fix it")},
		{"text only", mcp.NewToolResultText("plain")},
		{"two texts", &mcp.CallToolResult{Content: []mcp.Content{mcp.TextContent{Type: "text", Text: "a"}, mcp.TextContent{Type: "text", Text: "é"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.res)
			if err != nil {
				t.Fatal(err)
			}
			got := ResultSize(tc.res)
			if tc.res.StructuredContent == nil {
				got -= len(`,"structuredContent":`) // counted whether or not it is there
			}
			if got != len(b) {
				t.Errorf("ResultSize = %d, JSON is %d bytes: %s", got, len(b), b)
			}
		})
	}
}

// TestFitResult: the result fits the budget whole, text and structured
// content together, with room to spare for what the server adds; when even
// the smallest does not fit, the answer is an error naming max_bytes.
func TestFitResult(t *testing.T) {
	data := strings.Repeat("0123456789", 100_000)
	build := func(fixed int) func(room int) *mcp.CallToolResult {
		return func(room int) *mcp.CallToolResult {
			n := max(fixed, min(room, len(data)))
			return OK(map[string]any{"data": data[:n]}, "--- data ---\n"+data[:n])
		}
	}
	for _, budget := range []int{MinMaxBytes, 4096, DefaultMaxBytes, MaxMaxBytes} {
		res := FitResult(budget, build(0))
		if res.IsError {
			t.Fatalf("budget %d: %v", budget, res.Content)
		}
		if n := ResultSize(res) + ProtocolReserve; n > budget || n < budget/2 {
			t.Errorf("budget %d: result of %d bytes", budget, n)
		}
	}
	res := FitResult(MinMaxBytes, build(MinMaxBytes)) // never smaller than the budget
	if !res.IsError || !strings.Contains(res.Content[0].(mcp.TextContent).Text, "max_bytes") {
		t.Errorf("an answer that cannot fit: %v", res.Content)
	}
}

func TestUnmatched(t *testing.T) {
	objects := []map[string]any{{"id": "a", "fields.author": "ada"}, {"id": "b", "fields.tags.#": 2}}
	tests := []struct {
		name    string
		paths   []string
		objects []map[string]any
		want    []string
	}{
		{"all matched somewhere", []string{"id", "fields.author", "fields.tags.#"}, objects, nil},
		{"one matched nowhere", []string{"id", "fields.nope"}, objects, []string{"fields.nope"}},
		{"asked twice, named once", []string{"x", "x", "id"}, objects, []string{"x"}},
		{"no objects: nothing to say", []string{"fields.nope"}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Unmatched(tc.paths, tc.objects); !slices.Equal(got, tc.want) {
				t.Errorf("Unmatched = %v, want %v", got, tc.want)
			}
		})
	}
}
