package tools

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
)

func TestDecodedJSON(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want bool
	}{
		{"decoder output", map[string]any{"a": []any{"x", 1.5, true, nil, json.Number("2"), map[string]any{}}}, true},
		{"a Go slice", map[string]any{"fields": []string{"a"}}, false},
		{"a Go int", map[string]any{"limit": 3}, false},
		{"NaN", map[string]any{"n": math.NaN()}, false},
		{"infinity", []any{math.Inf(1)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := decodedJSON(tc.v); got != tc.want {
				t.Errorf("decodedJSON = %v, want %v", got, tc.want)
			}
		})
	}
}

// Arguments as a JSON decoder gives them and as a Go caller might build
// them are judged alike.
func TestArgValidatorTakesBothForms(t *testing.T) {
	e := newEnv(t)
	v, err := newArgValidator(Select(All(e.deps), Options{}))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args map[string]any
		ok   bool
	}{
		{"decoded, valid", map[string]any{"type": "posts", "limit": 5.0, "fields": []any{"title"}}, true},
		{"Go types, valid", map[string]any{"type": "posts", "limit": 5, "fields": []string{"title"}}, true},
		{"decoded, over the maximum", map[string]any{"type": "posts", "limit": 500.0}, false},
		{"Go types, over the maximum", map[string]any{"type": "posts", "limit": 500}, false},
		{"decoded, not an integer type", map[string]any{"type": "posts", "limit": "5"}, false},
		{"decoded, unknown argument", map[string]any{"type": "posts", "colour": "red"}, false},
		{"decoded, bad pattern", map[string]any{"type": "Posts!"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var req mcp.CallToolRequest
			req.Params.Name, req.Params.Arguments = "content_list", tc.args
			if r := v.check("content_list", req); (r == nil) != tc.ok {
				t.Errorf("check = %v, want ok %v", r, tc.ok)
			}
		})
	}
}
