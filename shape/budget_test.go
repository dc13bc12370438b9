package shape

import (
	"fmt"
	"strings"
	"testing"
)

func TestFit(t *testing.T) {
	tests := []struct {
		name   string
		v      any
		budget int
		ok     bool
	}{
		{"already fits", map[string]any{"a": "b"}, 100, true},
		{"long string", map[string]any{"a": strings.Repeat("x", 10000)}, 1000, true},
		{"long array", map[string]any{"a": make([]any, 10000)}, 1000, true},
		{"too many keys", manyKeys(500), 1000, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, ok := Fit(tc.v, tc.budget)
			if ok != tc.ok {
				t.Fatalf("ok = %v", ok)
			}
			if ok && EncodedLen(out) > tc.budget {
				t.Errorf("%d bytes over budget %d", EncodedLen(out), tc.budget)
			}
		})
	}
}

func manyKeys(n int) map[string]any {
	m := map[string]any{}
	for i := range n {
		m[fmt.Sprintf("key-%04d", i)] = i
	}
	return m
}
