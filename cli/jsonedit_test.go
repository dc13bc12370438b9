package cli

import (
	"strings"
	"testing"
)

// TestSetMember: a member is added or replaced in the file's own layout,
// and every other byte stays.
func TestSetMember(t *testing.T) {
	val := map[string]any{"command": "/k"}
	tests := []struct {
		name, src, want string
		jsonc           bool
	}{
		{"empty object", "{}", "{\n  \"s\": {\n    \"command\": \"/k\"\n  }\n}", false},
		{"empty object on lines", "{\n}\n", "{\n  \"s\": {\n    \"command\": \"/k\"\n  }\n}\n", false},
		{"after the last member, tabs", "{\n\t\"a\": 1\n}\n", "{\n\t\"a\": 1,\n\t\"s\": {\n\t\t\"command\": \"/k\"\n\t}\n}\n", false},
		{"one line stays one line", `{"a": 1}`, `{"a": 1, "s": {"command":"/k"}}`, false},
		{"replace", "{\n  \"s\": {\"old\": true},\n  \"b\": 2\n}", "{\n  \"s\": {\n    \"command\": \"/k\"\n  },\n  \"b\": 2\n}", false},
		{"CRLF", "{\r\n  \"a\": 1\r\n}\r\n", "{\r\n  \"a\": 1,\r\n  \"s\": {\r\n    \"command\": \"/k\"\r\n  }\r\n}\r\n", false},
		{"comment after the last value", "{\n  \"a\": 1 // one\n}", "{\n  \"a\": 1, // one\n  \"s\": {\n    \"command\": \"/k\"\n  }\n}", true},
		{"trailing comma kept", "{\n  \"a\": 1,\n}", "{\n  \"a\": 1,\n  \"s\": {\n    \"command\": \"/k\"\n  }\n}", true},
		{"// inside a string is not a comment", "{\n  \"u\": \"http://x\" /* c */\n}", "{\n  \"u\": \"http://x\", /* c */\n  \"s\": {\n    \"command\": \"/k\"\n  }\n}", true},
		{"paths keep <>&", "{}", "{\n  \"s\": {\n    \"command\": \"/k\"\n  }\n}", false},
	}
	for _, tc := range tests {
		doc, err := parseJSONDoc([]byte(tc.src), tc.jsonc)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := doc.setMember(doc.root, "s", val)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s:\n got %q, %v\nwant %q", tc.name, got, err, tc.want)
		}
		if _, err := parseJSONDoc(got, tc.jsonc); err != nil {
			t.Errorf("%s: the result does not parse: %v", tc.name, err)
		}
	}
	doc, _ := parseJSONDoc([]byte("{}"), false)
	got, _ := doc.setMember(doc.root, "s", map[string]string{"command": "/a&b<c>"})
	if !strings.Contains(string(got), `"/a&b<c>"`) {
		t.Errorf("a path was escaped: %s", got)
	}
}

// TestParseJSONDocRefuses: what is not JSON (or, for VS Code, JSONC) is
// refused with its line and column.
func TestParseJSONDocRefuses(t *testing.T) {
	tests := []struct {
		name, src string
		jsonc     bool
		want      string
	}{
		{"empty", "  \n", false, "the file is empty"},
		{"array", "[1]", false, "line 1, column 1: the top level is not a JSON object"},
		{"comment in plain JSON", "{\n  // c\n  \"a\": 1}", false, "line 2, column 3: expected a key in double quotes (found a comment"},
		{"trailing comma in plain JSON", "{\"a\": 1,}", false, "a comma before }"},
		{"unclosed", "{\"a\": {", false, "line 1, column 8"},
		{"unclosed comment", "{} /* x", true, "never closed"},
		{"garbage after", "{} x", false, "more text after the end"},
		{"bad escape", `{"a": "\q"}`, false, "invalid escape"},
		{"too deep", strings.Repeat("[", maxJSONDepth+2), false, "nested deeper than"},
		{"single quotes", `{'a': 1}`, true, "expected a key in double quotes"},
	}
	for _, tc := range tests {
		_, err := parseJSONDoc([]byte(tc.src), tc.jsonc)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	doc, err := parseJSONDoc([]byte(`{"a": 1, "a": 2}`), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := doc.member(doc.root, "a"); err == nil || !strings.Contains(err.Error(), "appears twice") {
		t.Errorf("a duplicate key: %v", err)
	}
}
