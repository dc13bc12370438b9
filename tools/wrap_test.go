package tools

import (
	"log/slog"
	"strings"
	"testing"
)

// A read that succeeds is logged at debug; writes and failures stay at
// info, so an info log still shows every change and every refusal.
func TestCallLogLevel(t *testing.T) {
	e := newEnv(t)
	post := e.call("content_list", map[string]any{"type": "posts", "limit": 1})
	id := post.Structured["objects"].([]any)[0].(map[string]any)["id"].(string)
	tests := []struct {
		name    string
		tool    string
		args    map[string]any
		logged  bool
		outcome string
	}{
		{"read ok", "content_get", map[string]any{"type": "posts", "id": id}, false, ""},
		{"read refused", "content_get", map[string]any{"type": "posts", "id": "obj_missing"}, true, "error_result"},
		{"bad arguments", "content_get", map[string]any{"type": "posts", "id": id, "nope": 1}, true, "error_result"},
		{"write", "content_update", map[string]any{"type": "posts", "id": id, "title": "Retitled"}, true, "ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.logs.Reset()
			e.call(tc.tool, tc.args)
			logs := e.logs.String()
			line := "level=INFO msg=\"tool call\" tool=" + tc.tool
			if got := strings.Contains(logs, line); got != tc.logged {
				t.Fatalf("info line logged = %v, want %v; logs:\n%s", got, tc.logged, logs)
			}
			if tc.logged && !strings.Contains(logs, "outcome="+tc.outcome) {
				t.Errorf("want outcome=%s in:\n%s", tc.outcome, logs)
			}
		})
	}
}

// With --log-level debug the successful read is still logged.
func TestCallLogLevelDebugShowsReads(t *testing.T) {
	e := newEnv(t)
	e.deps.Logger = slog.New(slog.NewTextHandler(writerFunc(func(p []byte) { e.logs.Write(p) }),
		&slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: e.redactor.SlogReplaceAttr}))
	e.logs.Reset()
	e.call("content_types", nil)
	if logs := e.logs.String(); !strings.Contains(logs, `level=DEBUG msg="tool call" tool=content_types`) || !strings.Contains(logs, "outcome=ok") {
		t.Errorf("no debug line for a read:\n%s", logs)
	}
}
