package app_test

// Protocol details independent MCP clients check (docs/protocol.md), where
// they need a whole keygate: its logger, its configuration.

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// TestMCPGoLogsThroughKeygatesLogger: with --log-format json, the lines
// mcp-go itself logs (here: a client response to a request keygate never
// sent) reach keygate's stderr as JSON, through its redactor, like every
// other line.
func TestMCPGoLogsThroughKeygatesLogger(t *testing.T) {
	t.Parallel()
	t.Run("stdio", func(t *testing.T) {
		in := prepared(t)
		p := serveStdio(t, in, nil, "--log-format", "json")
		go io.Copy(io.Discard, p.stdout)
		// A line over the 4 MiB cap: mcp-go's stdio server logs the read
		// error through its error logger, then keygate exits.
		_, _ = io.WriteString(p.stdin, strings.Repeat("x", 5<<20)+"\n")
		p.stdin.Close()
		if err := p.wait(); err == nil {
			t.Error("keygate went on after an over-long line")
		}
		checkJSONLog(t, p.stderr.String(), "Error reading input", in.token(t))
	})
	s := hStartHTTP(t, newInstance(t), nil, "--log-format", "json", "--log-level", "debug")
	sid := s.session(t, "")
	canary := s.token
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":77,"result":{"action":"accept","content":{"note":"` + canary + `"}}}`,
		`{"jsonrpc":"2.0","id":78,"error":{"code":-1,"message":"` + canary + `"}}`,
	} {
		if r := s.post(t, map[string]string{"Mcp-Session-Id": sid}, body); r.status < 400 {
			t.Errorf("an answer to no request: %d %s", r.status, r.body)
		}
	}
	checkJSONLog(t, s.stderr.String(), "Failed to handle sampling response", canary)
}

// checkJSONLog checks that every line of logs is a JSON record, that one of
// them holds mcpGoLine (mcp-go's own), and that canary appears in none.
func checkJSONLog(t *testing.T, logs, mcpGoLine, canary string) {
	t.Helper()
	sawMCPGo := false
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("stderr line is not JSON: %.200q", line)
			continue
		}
		if strings.Contains(line, mcpGoLine) {
			sawMCPGo = true
		}
		if strings.Contains(line, canary) {
			t.Errorf("a secret reached the log: %.200q", line)
		}
	}
	if !sawMCPGo {
		t.Errorf("mcp-go's line %q is not in keygate's log:\n%.2000s", mcpGoLine, logs)
	}
}
