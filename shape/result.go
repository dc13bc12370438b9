package shape

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
)

// Problem is the structured form of an error the model can act on.
type Problem struct {
	Field   string `json:"field,omitempty"`
	Problem string `json:"problem"`
	Fix     string `json:"fix,omitempty"`
}

// Error is an isError result naming the field and the fix, both as
// text and as structured content. Each part is kept on one line, through
// the sanitiser, and the text cannot start like a fence line: parts may
// carry a provider's words.
func Error(field, problem, fix string) *mcp.CallToolResult {
	field, problem, fix = LineStart(OneLine(field)), LineStart(OneLine(problem)), OneLine(fix)
	var b strings.Builder
	if field != "" {
		b.WriteString(field + ": ")
	}
	b.WriteString(problem)
	if fix != "" {
		b.WriteString(". Fix: " + fix)
	}
	res := mcp.NewToolResultStructured(map[string]any{"error": Problem{Field: field, Problem: problem, Fix: fix}}, b.String())
	res.IsError = true
	return res
}

// OK returns v as structured content with a compact text rendering.
func OK(v any, text string) *mcp.CallToolResult {
	return mcp.NewToolResultStructured(v, text)
}

// Redact runs the redaction pass over every text and the structured
// content of a result. Values in allow were revealed on purpose (a new key's
// one showing) and are kept.
func Redact(r *auth.Redactor, res *mcp.CallToolResult, allow []string) {
	pass := func(s string) string {
		if len(allow) == 0 {
			return r.Redact(s)
		}
		// Shield the revealed values from the pass, then put them back.
		for i, v := range allow {
			s = strings.ReplaceAll(s, v, fmt.Sprintf("\x00reveal%d\x00", i))
		}
		s = r.Redact(s)
		for i, v := range allow {
			s = strings.ReplaceAll(s, fmt.Sprintf("\x00reveal%d\x00", i), v)
		}
		return s
	}
	for i, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			tc.Text = pass(tc.Text)
			res.Content[i] = tc
		}
	}
	if res.StructuredContent != nil {
		// A handler that already encoded its result (content_get) hands
		// over the JSON, which need not be encoded again.
		b, ok := res.StructuredContent.(json.RawMessage)
		if !ok {
			var err error
			if b, err = json.Marshal(res.StructuredContent); err != nil {
				res.StructuredContent = nil
				return
			}
		}
		in := string(b)
		out := pass(in)
		switch {
		case out == in:
			// Nothing to mask, the usual case: keep the JSON as it is.
			res.StructuredContent = json.RawMessage(b)
		case !json.Valid([]byte(out)):
			// A secret straddled JSON escaping; drop the structured copy
			// rather than send something broken. The text stays.
			res.StructuredContent = nil
		default:
			res.StructuredContent = json.RawMessage(out)
		}
	}
}

// ProtocolReserve is kept back from a budget for what the MCP server adds
// to a result after the tool returns it: its _meta (the server's name and
// version) and the resultType.
const ProtocolReserve = 160

// ResultSize is the size of res as the tool returns it: the JSON of its
// text contents and of its structured content, with the keys around them.
func ResultSize(res *mcp.CallToolResult) int {
	n := len(`{"content":[],"structuredContent":}`)
	for i, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			n += len(`{"type":"text","text":}`) + EncodedLen(tc.Text)
		}
		if i > 0 {
			n++
		}
	}
	switch s := res.StructuredContent.(type) {
	case nil:
	case json.RawMessage:
		n += len(s)
	default:
		n += EncodedLen(s)
	}
	if res.IsError {
		n += len(`,"isError":true`)
	}
	return n
}

// FitResult returns the result build makes with as much room for data as
// lets the whole result, text and structured content together, fit in
// budget bytes (max_bytes bounds what the client receives). Both carry the
// data, so build first gets half the budget less an envelope, and less
// again while the result is over; when no room is small enough the answer
// is an error naming max_bytes. An error result from build is returned as
// it is.
func FitResult(budget int, build func(room int) *mcp.CallToolResult) *mcp.CallToolResult {
	room := budget/2 - EnvelopeBytes/2
	for range 8 {
		res := build(room)
		size := ResultSize(res) + ProtocolReserve
		if res.IsError || size <= budget {
			return res
		}
		room -= (size-budget)/2 + 64
		if room <= 0 {
			// What is left (a page's first item, an object's attributes,
			// the notices) does not shrink: say so rather than send more.
			return Error("max_bytes", fmt.Sprintf("even the smallest answer is %d bytes, over max_bytes %d", size, budget),
				"raise max_bytes, or ask for less (fields, a smaller limit)")
		}
	}
	return Error("max_bytes", fmt.Sprintf("the answer does not fit in max_bytes %d", budget), "raise max_bytes, or ask for less (fields, a smaller limit)")
}

// Unmatched returns the paths that matched nothing in any of objects (each
// a projection, keyed by path), in the order asked; nil when every path
// matched something, or there are no objects to match.
func Unmatched(paths []string, objects []map[string]any) []string {
	if len(objects) == 0 {
		return nil
	}
	var out []string
	for _, p := range paths {
		found := false
		for _, o := range objects {
			if _, found = o[p]; found {
				break
			}
		}
		if !found && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
