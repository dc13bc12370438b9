package transport

// What keygate answers to each malformed or out-of-place request, on both
// transports; docs/protocol.md lists every row with its test.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// initializeAt is an initialize asking for protocol version v.
func initializeAt(id int, v string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"initialize","params":{"protocolVersion":%q,"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, id, v)
}

const writeCall = `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"write_thing","arguments":{}}}`

// malformedMessages are valid JSON but no valid JSON-RPC message (MCP base
// protocol: requests have a string or integer id, never null; params is an
// object; a response has a result or an error). Each gets -32600 Invalid
// Request, with the message's id when it has a valid one, and nothing in it
// runs. id is the expected id (nil: null).
var malformedMessages = []struct {
	name, body string
	id         any
}{
	{"no method, no result", `{"jsonrpc":"2.0","id":5}`, 5.0},
	{"method not a string", `{"jsonrpc":"2.0","id":6,"method":6}`, 6.0},
	{"method an array, no id", `{"jsonrpc":"2.0","method":["tools/call"]}`, nil},
	{"null id", `{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"write_thing"}}`, nil},
	{"fractional id", `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, nil},
	{"boolean id", `{"jsonrpc":"2.0","id":true,"method":"ping"}`, nil},
	{"object id", `{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`, nil},
	{"id past 64 bits", `{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}`, nil},
	{"params an array", `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":["write_thing"]}`, 9.0},
	{"result and error", `{"jsonrpc":"2.0","id":10,"result":{},"error":{"code":1,"message":"m"}}`, 10.0},
	{"method and result", `{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"write_thing"},"result":{}}`, 11.0},
	{"result without id", `{"jsonrpc":"2.0","result":{}}`, nil},
	{"no jsonrpc", `{"id":12,"method":"ping"}`, 12.0},
	{"jsonrpc 1.0", `{"jsonrpc":"1.0","id":"thirteen","method":"ping"}`, "thirteen"},
	{"a string", `"ping"`, nil},
	{"a number", `12`, nil},
	{"null", `null`, nil},
	{"a batch in a version without batches", `[` + fmt.Sprintf(writeCall, 14) + `]`, nil},
	{"an empty batch", `[]`, nil},
}

func TestHTTPAnswersToMalformedMessages(t *testing.T) {
	h, calls := newTestHandler(t)
	sid := openSession(t, h, "admin", "2025-11-25")
	for _, tc := range malformedMessages {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(t, h, http.MethodPost, map[string]string{"Authorization": "Bearer admin", "Mcp-Session-Id": sid}, tc.body)
			if rec.Code != http.StatusBadRequest {
				t.Errorf("status %d, want 400", rec.Code)
			}
			checkError(t, rec.Body.Bytes(), mcp.INVALID_REQUEST, tc.id)
		})
	}
	if len(*calls) != 0 {
		t.Errorf("a malformed message ran a tool: %v", *calls)
	}
	// Not JSON at all stays a parse error; the session goes on.
	rec := do(t, h, http.MethodPost, map[string]string{"Authorization": "Bearer admin", "Mcp-Session-Id": sid}, `{"jsonrpc":`)
	checkError(t, rec.Body.Bytes(), mcp.PARSE_ERROR, nil)
	if rec := do(t, h, http.MethodPost, map[string]string{"Authorization": "Bearer admin", "Mcp-Session-Id": sid}, fmt.Sprintf(writeCall, 15)); rec.Code != 200 || len(*calls) != 1 {
		t.Errorf("a good call after the malformed ones: %d %s", rec.Code, rec.Body)
	}
}

func TestStdioAnswersToMalformedMessages(t *testing.T) {
	s, calls := recordingServer()
	c := startStdioClient(t, s)
	c.send(initializeAt(1, "2025-11-25"))
	c.until(t, "1")
	for _, tc := range malformedMessages {
		t.Run(tc.name, func(t *testing.T) {
			c.send(tc.body)
			checkError(t, c.next(t), mcp.INVALID_REQUEST, tc.id)
		})
	}
	c.send(`{"jsonrpc":`)
	checkError(t, c.next(t), mcp.PARSE_ERROR, nil)
	if calls.count() != 0 {
		t.Errorf("a malformed message ran a tool: %d calls", calls.count())
	}
	c.send(fmt.Sprintf(writeCall, 15))
	if m := c.until(t, "15"); m["result"] == nil || calls.count() != 1 {
		t.Errorf("a good call after the malformed ones: %v", m)
	}
}

// TestHTTPSessionHeader: a legacy message without Mcp-Session-Id, other
// than initialize, gets 400 saying how to get one; an id that is unknown,
// ended or another key's gets 404 (the client must initialize again). A
// 2026-07-28 request has no session: it is served without the header, and
// the header is ignored.
func TestHTTPSessionHeader(t *testing.T) {
	h, calls := newTestHandler(t)
	sid := openSession(t, h, "admin", "2025-11-25")
	ended := openSession(t, h, "admin", "2025-11-25")
	if rec := do(t, h, http.MethodDelete, map[string]string{"Authorization": "Bearer admin", "Mcp-Session-Id": ended}, ""); rec.Code != 200 {
		t.Fatalf("DELETE: %d", rec.Code)
	}
	readers := openSession(t, h, "reader", "2025-11-25")
	modern := func(method string) map[string]string {
		return map[string]string{"Authorization": "Bearer admin", "Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": method}
	}
	modernList := `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{` + modernMeta + `}}`
	list := `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`
	tests := []struct {
		name    string
		method  string
		headers map[string]string
		body    string
		want    int
		says    string // in the body
	}{
		{"request without session", http.MethodPost, map[string]string{}, list, 400, "Mcp-Session-Id header missing"},
		{"tool call without session", http.MethodPost, map[string]string{}, fmt.Sprintf(writeCall, 7), 400, "Send initialize without it"},
		{"notification without session", http.MethodPost, map[string]string{}, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, 400, "Mcp-Session-Id"},
		{"response without session", http.MethodPost, map[string]string{}, `{"jsonrpc":"2.0","id":1,"result":{}}`, 400, "Mcp-Session-Id"},
		{"initialize as a notification", http.MethodPost, map[string]string{}, `{"jsonrpc":"2.0","method":"initialize","params":{}}`, 400, "Mcp-Session-Id"},
		{"initialize without session", http.MethodPost, map[string]string{}, initialize, 200, `"protocolVersion"`},
		{"own session", http.MethodPost, map[string]string{"Mcp-Session-Id": sid}, list, 200, "write_thing"},
		{"guessed session", http.MethodPost, map[string]string{"Mcp-Session-Id": sessionPrefix + "GUESSEDGUESSEDGUESSEDGUESS"}, list, 404, ""},
		{"ended session", http.MethodPost, map[string]string{"Mcp-Session-Id": ended}, list, 404, ""},
		{"another key's session", http.MethodPost, map[string]string{"Mcp-Session-Id": readers}, list, 404, ""},
		{"2026-07-28 without session", http.MethodPost, modern("tools/list"), modernList, 200, "write_thing"},
		{"2026-07-28 with another key's session", http.MethodPost, with(modern("tools/list"), "Mcp-Session-Id", readers), modernList, 200, "write_thing"},
		{"2026-07-28 GET", http.MethodGet, modern(""), "", 405, ""},
		{"2026-07-28 DELETE", http.MethodDelete, with(modern(""), "Mcp-Session-Id", sid), "", 405, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			headers := map[string]string{"Authorization": "Bearer admin"}
			for k, v := range tc.headers {
				headers[k] = v
			}
			rec := do(t, h, tc.method, headers, tc.body)
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.says) {
				t.Errorf("%d %q, want %d with %q", rec.Code, rec.Body, tc.want, tc.says)
			}
		})
	}
	if len(*calls) != 0 {
		t.Errorf("a refused request ran a tool: %v", *calls)
	}
	if rec := do(t, h, http.MethodPost, map[string]string{"Authorization": "Bearer admin", "Mcp-Session-Id": sid}, list); rec.Code != 200 {
		t.Errorf("the session after the refusals: %d", rec.Code)
	}
}

func with(h map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for k, v := range h {
		out[k] = v
	}
	return out
}

// TestHTTPMethodNotAllowed: /mcp answers a method it does not serve with
// 405 and an Allow header (mcp-go: 404, as if there were no endpoint), and
// OPTIONS with 204 and the same Allow, before any token is asked for.
func TestHTTPMethodNotAllowed(t *testing.T) {
	h, _ := newTestHandler(t)
	for _, method := range []string{http.MethodPut, http.MethodPatch, http.MethodTrace, "PROPFIND", "BREW"} {
		for _, token := range []string{"", "Bearer admin"} {
			rec := do(t, h, method, map[string]string{"Authorization": token}, initialize)
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != allowedMethods {
				t.Errorf("%s (token %q): %d, Allow %q", method, token, rec.Code, rec.Header().Get("Allow"))
			}
			checkError(t, rec.Body.Bytes(), mcp.INVALID_REQUEST, nil)
		}
	}
	rec := do(t, h, http.MethodOptions, nil, "")
	if rec.Code != http.StatusNoContent || rec.Header().Get("Allow") != allowedMethods || rec.Body.Len() != 0 {
		t.Errorf("OPTIONS: %d, Allow %q, %q", rec.Code, rec.Header().Get("Allow"), rec.Body)
	}
	// The methods /mcp serves are not refused for their method.
	sid := openSession(t, h, "admin", "2025-11-25")
	for _, method := range []string{http.MethodHead, http.MethodPost, http.MethodDelete} {
		if rec := do(t, h, method, map[string]string{"Authorization": "Bearer admin", "Mcp-Session-Id": sid}, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); rec.Code == http.StatusMethodNotAllowed || rec.Code >= 500 {
			t.Errorf("%s: %d", method, rec.Code)
		}
	}
}

// TestHTTPBatches: a session that negotiated 2025-03-26 (which requires
// receiving batches) or 2024-11-05 has its batches served, every entry
// through the same checks, answers on one SSE stream; a session on
// 2025-06-18 or later, or a 2026-07-28 request, gets 400 -32600.
func TestHTTPBatches(t *testing.T) {
	for _, version := range []string{"2025-03-26", "2024-11-05"} {
		t.Run(version, func(t *testing.T) {
			h, calls := newTestHandler(t)
			sid := openSession(t, h, "admin", version)
			batch := `[{"jsonrpc":"2.0","id":1,"method":"ping"},` + fmt.Sprintf(writeCall, 2) + `,
				{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":3},` + initializeAt(4, version) + `,
				[{"jsonrpc":"2.0","id":5,"method":"ping"}],{"jsonrpc":"2.0","id":6,"method":"no/such"}]`
			rec := do(t, h, http.MethodPost, map[string]string{"Authorization": "Bearer admin", "Mcp-Session-Id": sid}, batch)
			msgs, err := decodeMessages(rec.Header().Get("Content-Type"), rec.Body.Bytes())
			if rec.Code != 200 || err != nil || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/event-stream") {
				t.Fatalf("%d %s %v", rec.Code, rec.Body, err)
			}
			want := map[string]int{"1": 0, "2": 0, "3": mcp.INVALID_REQUEST, "4": mcp.INVALID_REQUEST, "null": mcp.INVALID_REQUEST, "6": mcp.METHOD_NOT_FOUND}
			if got := answersByID(t, msgs); !maps.Equal(got, want) {
				t.Errorf("answers %v, want %v", got, want)
			}
			if len(*calls) != 1 {
				t.Errorf("the tool ran %d times, want once", len(*calls))
			}
			// Only notifications: 202, no body.
			rec = do(t, h, http.MethodPost, map[string]string{"Authorization": "Bearer admin", "Mcp-Session-Id": sid},
				`[{"jsonrpc":"2.0","method":"notifications/initialized"}]`)
			if rec.Code != http.StatusAccepted || rec.Body.Len() != 0 {
				t.Errorf("a batch of notifications: %d %q", rec.Code, rec.Body)
			}
		})
	}

	h, calls := newTestHandler(t)
	old := openSession(t, h, "admin", "2025-03-26")
	current := openSession(t, h, "admin", "2025-06-18")
	ping := `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`
	tests := []struct {
		name    string
		headers map[string]string
		body    string
		want    int
		says    string
	}{
		{"2025-06-18 session", map[string]string{"Mcp-Session-Id": current}, ping, 400, "has no JSON-RPC batches"},
		{"2026-07-28", map[string]string{"Mcp-Protocol-Version": "2026-07-28"}, ping, 400, "has no JSON-RPC batches"},
		{"no session", nil, ping, 400, "a batch needs the Mcp-Session-Id"},
		{"initialize batched", nil, `[` + initialize + `]`, 400, "initialize is sent alone"},
		{"unknown session", map[string]string{"Mcp-Session-Id": sessionPrefix + "GUESSEDGUESSEDGUESSEDGUESS"}, ping, 404, "session not found"},
		{"another key's session", map[string]string{"Mcp-Session-Id": openSession(t, h, "reader", "2025-03-26")}, ping, 404, "session not found"},
		{"empty", map[string]string{"Mcp-Session-Id": old}, `[]`, 400, "the batch is empty"},
		{"over the cap", map[string]string{"Mcp-Session-Id": old}, `[` + strings.Repeat(fmt.Sprintf(writeCall, 1)+",", maxBatchEntries) + fmt.Sprintf(writeCall, 1) + `]`, 400, "at most 32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			headers := map[string]string{"Authorization": "Bearer admin"}
			for k, v := range tc.headers {
				headers[k] = v
			}
			rec := do(t, h, http.MethodPost, headers, tc.body)
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.says) || rec.Header().Get("Mcp-Session-Id") != "" {
				t.Errorf("%d %q, want %d with %q", rec.Code, rec.Body, tc.want, tc.says)
			}
		})
	}
	if len(*calls) != 0 {
		t.Errorf("a refused batch ran a tool %d times", len(*calls))
	}
}

// TestStdioBatches: the same over stdio, where the answers to a batch are
// one JSON array on one line.
func TestStdioBatches(t *testing.T) {
	s, calls := recordingServer()
	c := startStdioClient(t, s)
	c.send(`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`) // before initialize: no version has been agreed
	checkError(t, c.next(t), mcp.INVALID_REQUEST, nil)
	c.send(initializeAt(2, "2025-03-26"))
	c.until(t, "2")
	c.send(`[{"jsonrpc":"2.0","id":3,"method":"ping"},` + fmt.Sprintf(writeCall, 4) + `,{"jsonrpc":"2.0","method":"notifications/initialized"},` +
		`{"jsonrpc":"2.0","id":5},` + initializeAt(6, "2025-03-26") + `,{"jsonrpc":"2.0","id":7,"method":"no/such"}]`)
	line := c.nextLine(t)
	var answers []map[string]any
	if err := json.Unmarshal(line, &answers); err != nil {
		t.Fatalf("the answer to a batch is not an array: %s", line)
	}
	want := map[string]int{"3": 0, "4": 0, "5": mcp.INVALID_REQUEST, "6": mcp.INVALID_REQUEST, "7": mcp.METHOD_NOT_FOUND}
	if got := answersByID(t, answers); !maps.Equal(got, want) {
		t.Errorf("answers %v, want %v", got, want)
	}
	if calls.count() != 1 {
		t.Errorf("the tool ran %d times, want once", calls.count())
	}
	for _, batch := range []string{`[]`, `[` + strings.Repeat(`{"jsonrpc":"2.0","id":8,"method":"ping"},`, maxBatchEntries) + `{"jsonrpc":"2.0","id":8,"method":"ping"}]`} {
		c.send(batch)
		checkError(t, c.next(t), mcp.INVALID_REQUEST, nil)
	}
	c.send(initializeAt(9, "2025-06-18"))
	c.until(t, "9")
	c.send(`[` + fmt.Sprintf(writeCall, 10) + `]`)
	checkError(t, c.next(t), mcp.INVALID_REQUEST, nil)
	if calls.count() != 1 {
		t.Errorf("a refused batch ran the tool")
	}
}

// TestStdioRefusesRequestsBeforeInitialize: over stdio, a request other
// than initialize, ping or server/discover that comes before initialize
// is answered -32600 and nothing runs; a notification is dropped. The
// order is the order of the lines, so a client may write its first lines
// without waiting for answers. A 2026-07-28 request needs no initialize.
func TestStdioRefusesRequestsBeforeInitialize(t *testing.T) {
	s, calls := recordingServer()
	notes := make(chan string, 8)
	s.AddNotificationHandler("notifications/keygate_test", func(_ context.Context, n mcp.JSONRPCNotification) {
		notes <- fmt.Sprint(n.Params.AdditionalFields["n"])
	})
	c := startStdioClient(t, s)
	for _, l := range []string{
		`{"jsonrpc":"2.0","method":"notifications/keygate_test","params":{"n":"before"}}`,
		fmt.Sprintf(writeCall, 1),
		`{"jsonrpc":"2.0","id":2,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"debug"}}`,
		`{"jsonrpc":"2.0","id":4,"method":"tools/list"}`,
		initializeAt(5, "2025-11-25"),
		fmt.Sprintf(writeCall, 6),
		`{"jsonrpc":"2.0","method":"notifications/keygate_test","params":{"n":"after"}}`,
	} {
		c.send(l)
	}
	got := map[string]map[string]any{}
	for len(got) < 6 {
		m := c.next(t)
		id, _ := json.Marshal(m["id"])
		got[string(id)] = m
	}
	for _, id := range []string{"1", "3", "4"} {
		if code, _ := dig(got[id], "error", "code").(float64); code != mcp.INVALID_REQUEST || !strings.Contains(fmt.Sprint(dig(got[id], "error", "message")), "before initialize") {
			t.Errorf("request %s before initialize: %v", id, got[id])
		}
	}
	for _, id := range []string{"2", "5", "6"} {
		if got[id]["result"] == nil {
			t.Errorf("request %s: %v", id, got[id])
		}
	}
	// Notifications are handled in the order they are read: the one
	// before initialize, had it passed, would come first.
	select {
	case n := <-notes:
		if n != "after" {
			t.Errorf("the notification before initialize was handled (%s)", n)
		}
	case <-time.After(10 * time.Second):
		t.Error("the notification after initialize was not handled")
	}
	if calls.count() != 1 {
		t.Errorf("the tool ran %d times, want once (after initialize)", calls.count())
	}

	t.Run("2026-07-28", func(t *testing.T) {
		s, calls := recordingServer()
		c := startStdioClient(t, s)
		c.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_thing","arguments":{},` + modernMeta + `}}`)
		if m := c.until(t, "1"); m["result"] == nil || calls.count() != 1 {
			t.Errorf("a 2026-07-28 call without initialize: %v", m)
		}
	})
}

// recordingServer is an MCP server with one tool, write_thing, that counts
// its calls.
func recordingServer() (*server.MCPServer, *callCount) {
	s := server.NewMCPServer("t", "1", server.WithToolCapabilities(false), server.WithLogging())
	calls := &callCount{}
	s.AddTool(mcp.NewTool("write_thing"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		calls.add()
		return mcp.NewToolResultText("ok"), nil
	})
	return s, calls
}

type callCount struct {
	mu sync.Mutex
	n  int
}

func (c *callCount) add() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
}

func (c *callCount) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// stdioClient drives ServeStdio on pipes, a line at a time.
type stdioClient struct {
	in    *io.PipeWriter
	lines chan []byte
}

func startStdioClient(t *testing.T, s *server.MCPServer) *stdioClient {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	c := &stdioClient{in: inW, lines: make(chan []byte, 64)}
	done := make(chan error, 1)
	go func() {
		done <- ServeStdio(context.Background(), s, inR, outW, slog.New(slog.DiscardHandler))
		outW.Close()
	}()
	go func() {
		defer close(c.lines)
		br := bufio.NewReader(outR)
		for {
			l, err := br.ReadBytes('\n')
			if err != nil {
				return
			}
			c.lines <- bytes.TrimSuffix(l, []byte("\n"))
		}
	}()
	t.Cleanup(func() {
		inW.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeStdio: %v", err)
		}
	})
	return c
}

func (c *stdioClient) send(line string) {
	_, _ = io.WriteString(c.in, line+"\n")
}

func (c *stdioClient) nextLine(t *testing.T) []byte {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			t.Fatal("stdout closed")
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no answer in 10 s")
	}
	return nil
}

// next is the next frame written, which must be one JSON-RPC object.
func (c *stdioClient) next(t *testing.T) map[string]any {
	t.Helper()
	l := c.nextLine(t)
	var m map[string]any
	if err := json.Unmarshal(l, &m); err != nil || m["jsonrpc"] != "2.0" {
		t.Fatalf("stdout line is not a JSON-RPC frame: %q", l)
	}
	return m
}

// until reads frames until the one with id.
func (c *stdioClient) until(t *testing.T, id string) map[string]any {
	t.Helper()
	for {
		m := c.next(t)
		if b, _ := json.Marshal(m["id"]); string(b) == id {
			return m
		}
	}
}

// openSession initializes a legacy session for token at protocol version v.
func openSession(t *testing.T, h http.Handler, token, v string) string {
	t.Helper()
	rec := do(t, h, http.MethodPost, map[string]string{"Authorization": "Bearer " + token}, initializeAt(1, v))
	sid := rec.Header().Get("Mcp-Session-Id")
	if rec.Code != 200 || sid == "" || !strings.Contains(rec.Body.String(), `"protocolVersion":"`+v+`"`) {
		t.Fatalf("initialize at %s: %d %s", v, rec.Code, rec.Body)
	}
	return sid
}

// checkError checks that body is one JSON-RPC error with code and id.
func checkError(t *testing.T, body any, code int, id any) {
	t.Helper()
	var m map[string]any
	switch b := body.(type) {
	case []byte:
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("not a JSON-RPC message: %q", b)
			return
		}
	case map[string]any:
		m = b
	}
	got, _ := dig(m, "error", "code").(float64)
	if int(got) != code || m["id"] != id || m["jsonrpc"] != "2.0" {
		t.Errorf("answer %v, want code %d and id %v", m, code, id)
	}
	if msg, _ := dig(m, "error", "message").(string); msg == "" {
		t.Errorf("an error without a message: %v", m)
	}
}

// answersByID maps each answer's id to its error code (0 for a result).
func answersByID(t *testing.T, msgs []map[string]any) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range msgs {
		id, _ := json.Marshal(m["id"])
		code, _ := dig(m, "error", "code").(float64)
		if _, dup := out[string(id)]; dup {
			t.Errorf("two answers for id %s", id)
		}
		out[string(id)] = int(code)
	}
	return out
}

// TestReadInbound: the kinds of message the checks tell apart; the invalid
// shapes are in malformedMessages.
func TestReadInbound(t *testing.T) {
	tests := []struct {
		raw    string
		kind   messageKind
		id     string
		method string
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"ping"}`, kindRequest, "1", "ping"},
		{` {"jsonrpc":"2.0","id":"a-b","method":"tools/call","params":{"name":"x"}}` + "\n", kindRequest, `"a-b"`, "tools/call"},
		{`{"jsonrpc":"2.0","id":-9223372036854775808,"method":"ping","params":null}`, kindRequest, "-9223372036854775808", "ping"},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, kindNotification, "", "notifications/initialized"},
		{`{"jsonrpc":"2.0","id":3,"result":{}}`, kindResponse, "3", ""},
		{`{"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"m"}}`, kindResponse, "3", ""},
		{`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m"}}`, kindResponse, "", ""},
		{`{"jsonrpc":"2.0","error":{"code":-32700,"message":"m"}}`, kindResponse, "", ""},
		{`[{"jsonrpc":"2.0","id":1,"method":"ping"}, 5]`, kindBatch, "", ""},
		{`{"jsonrpc":"2.0","id":1,"method":"ping"`, kindUnparsed, "", ""},
		{`[1,`, kindUnparsed, "", ""},
		{"", kindUnparsed, "", ""},
		{"\xff", kindUnparsed, "", ""},
		{`{"jsonrpc":"2.0","id":5}`, kindInvalid, "5", ""},
	}
	for _, tc := range tests {
		in := readInbound([]byte(tc.raw))
		if in.kind != tc.kind || string(in.id) != tc.id || in.method != tc.method {
			t.Errorf("%q: kind %d id %q method %q, want %d %q %q", tc.raw, in.kind, in.id, in.method, tc.kind, tc.id, tc.method)
		}
	}
}

// TestHTTPBatchStreamsAConfirmation: a destructive call in a batch asks the
// user while it runs: the prompt reaches the client on the batch's stream
// before the answers, and the client's reply, a POST of its own, lets the
// call finish.
func TestHTTPBatchStreamsAConfirmation(t *testing.T) {
	s := newStack(t)
	srv := httptest.NewServer(s.h)
	defer srv.Close()
	post := func(sid, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/mcp", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.admin)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := post("", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{"elicitation":{}},"clientInfo":{"name":"t","version":"1"}}}`)
	resp.Body.Close()
	sid := resp.Header.Get("Mcp-Session-Id")
	post(sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`).Body.Close()
	_, list := s.callTool(t, s.admin, sid, "content_list", map[string]any{"type": "posts"})
	id := dig(list, "result", "structuredContent", "objects").([]any)[0].(map[string]any)["id"].(string)

	resp = post(sid, `[{"jsonrpc":"2.0","id":2,"method":"ping"},{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"content_delete","arguments":{"type":"posts","id":"`+id+`"}}}]`)
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("batch answered %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := bufio.NewScanner(resp.Body)
	answers := map[string]map[string]any{}
	for events.Scan() {
		data, ok := strings.CutPrefix(events.Text(), "data: ")
		if !ok {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		if m["method"] == "elicitation/create" {
			reply, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": m["id"], "result": map[string]any{"action": "accept", "content": map[string]any{"approve": true}}})
			if r := post(sid, string(reply)); r.StatusCode != http.StatusAccepted {
				t.Errorf("the reply to the prompt: %d", r.StatusCode)
			}
			continue
		}
		key, _ := json.Marshal(m["id"])
		answers[string(key)] = m
		if len(answers) == 2 {
			break
		}
	}
	if answers["2"]["result"] == nil || dig(answers["3"], "result", "isError") == true || dig(answers["3"], "result") == nil {
		t.Fatalf("answers %v", answers)
	}
	if _, got := s.callTool(t, s.admin, sid, "content_get", map[string]any{"type": "posts", "id": id}); dig(got, "result", "isError") != true {
		t.Errorf("the approved delete did not happen: %v", got)
	}
}

// TestUncheckedRequestsReachNoSession: a request that skipped bindSession
// (2026-07-28 requests do) cannot use a live session, should mcp-go take
// it for an older request: without the caller's key, every id is unknown.
func TestUncheckedRequestsReachNoSession(t *testing.T) {
	m := newSessionManager(nil)
	id := m.open("k", "2025-11-25")
	if _, err := m.ResolveSessionIdManager(httptest.NewRequest(http.MethodPost, "/mcp", nil)).Validate(id); err == nil {
		t.Error("a request that bindSession did not check validated a live session")
	}
	if _, err := (&requestSessions{m: m, keyID: "k"}).Validate(id); err != nil {
		t.Errorf("the session's own key: %v", err)
	}
}
