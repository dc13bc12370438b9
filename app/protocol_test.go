package app_test

// Protocol details independent MCP clients check (docs/protocol.md), where
// they need a whole keygate: its logger, its configuration.

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
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

// confirmer approves every confirmation prompt and counts them.
type confirmer struct{ asked atomic.Int32 }

func (c *confirmer) Elicit(context.Context, mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	c.asked.Add(1)
	return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{
		Action: mcp.ElicitationResponseActionAccept, Content: map[string]any{"approve": true}}}, nil
}

// TestConfirmationOverHTTP: keygate does not advertise elicitation (a
// client capability), yet a client over HTTP that declares it is asked to
// confirm a destructive call, in each protocol era: over the POST's SSE
// stream with a session (2025-03-26, 2025-11-25), as a multi round-trip
// result (2026-07-28).
func TestConfirmationOverHTTP(t *testing.T) {
	t.Parallel()
	s := hStartHTTP(t, newInstance(t), nil)
	sid := s.session(t, "")
	objects := s.ok(t, "", sid, "content_list", map[string]any{"type": "posts"})["objects"].([]any)
	for i, version := range []string{"2025-03-26", "2025-11-25", "2026-07-28"} {
		t.Run(version, func(t *testing.T) {
			asked := &confirmer{}
			tr, err := transport.NewStreamableHTTP(s.url, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + s.token}))
			if err != nil {
				t.Fatal(err)
			}
			c := client.NewClient(tr, client.WithElicitationHandler(asked), client.WithProtocolVersion(version))
			t.Cleanup(func() { c.Close() })
			ctx := context.Background()
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			init, err := c.Initialize(ctx, mcp.InitializeRequest{})
			if err != nil {
				t.Fatalf("initialize: %v", err)
			}
			if init.Capabilities.Elicitation != nil {
				t.Errorf("keygate advertises elicitation: %+v", init.Capabilities)
			}
			id := objects[i].(map[string]any)["id"].(string)
			var req mcp.CallToolRequest
			req.Params.Name, req.Params.Arguments = "content_delete", map[string]any{"type": "posts", "id": id}
			res, err := c.CallTool(ctx, req)
			if err != nil || res.IsError {
				t.Fatalf("content_delete: %v %+v", err, res)
			}
			if asked.asked.Load() != 1 {
				t.Errorf("the user was asked %d times, want once", asked.asked.Load())
			}
			if r := s.call(t, "", sid, "content_get", map[string]any{"type": "posts", "id": id}); hGet(r.last(), "result", "isError") != true {
				t.Errorf("the approved delete did not happen: %.300s", r.body)
			}
		})
	}
}
