package transport

// Fuzz targets for keygate's two JSON-RPC entry points, around the real
// tools and store (docs/SECURITY.md, Fuzzing). The seed
// corpora run as ordinary tests; to fuzz:
//
//	go test -run=XXX -fuzz=FuzzHTTPHandler -fuzztime=60s ./transport
//	go test -run=XXX -fuzz=FuzzStdio -fuzztime=60s ./transport

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/tools"
)

// fuzzCanaries plants secrets where a response could pick them up: a
// minted token and upstream-shaped keys in stored content. It returns every
// secret the responses must never carry, in every encoding.
func fuzzCanaries(t testing.TB, s *stack, caller string) []string {
	t.Helper()
	other, _ := s.mint(t, "other", s.clock.Now().Add(24*time.Hour), "content:read")
	cockpit := "API-" + strings.Repeat("c0ffee12", 5)
	cencori := "csk_" + strings.Repeat("a1b2", 12)
	for i, v := range []string{other, cockpit, cencori} {
		fields, _ := json.Marshal(map[string]any{"body": "key " + v, "author": v, "tags": []string{v}})
		if _, err := s.store.Create(context.Background(), provider.NewObject{Type: "posts", Title: "canary " + v,
			Slug: "canary-" + string(rune('a'+i)), Status: provider.StatusPublished, Fields: fields}); err != nil {
			t.Fatal(err)
		}
	}
	var forms []string
	for _, secret := range []string{s.admin, caller, other, cockpit, cencori} {
		b := []byte(secret)
		forms = append(forms, secret, base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
			hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)), url.QueryEscape(secret))
	}
	return forms
}

const modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"f","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`

var entrySeeds = []string{
	initialize,
	`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`,
	`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"content_list","arguments":{"type":"posts","fields":["title","fields.body"],"filter":{"fields.author":{"$ne":"x"}},"sort":"-title","limit":2}}}`,
	`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"content_get","arguments":{"type":"posts","slug":"canary-a","max_bytes":1024}}}`,
	`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"content_create","arguments":{"type":"posts","title":"t","slug":"t","fields":{"body":"b"}}}}`,
	`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"content_update","arguments":{"type":"posts","id":"x","expected_version":1,"title":"u"}}}`,
	`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"auth_whoami","arguments":{}}}`,
	`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"credentials_list"}}`,
	`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"auth_check_scopes","arguments":{"operations":["content:write:posts","admin"]}}}`,
	`{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"auth_authenticate","arguments":{"token":"kg_pat_000000000000_0000000000000000000000000000000000000000"}}}`,
	`{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"content_list","arguments":{"type":"posts"},` + modernMeta + `}}`,
	`{"jsonrpc":"2.0","id":12,"method":"tools/list","params":{` + modernMeta + `}}`,
	`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
	`{"jsonrpc":"2.0","id":13,"result":{}}`,
	`{"jsonrpc":"2.0","id":14,"error":{"code":1,"message":"m"}}`,
	`[{"jsonrpc":"2.0","id":15,"method":"ping"}]`,
	`{"id":16,"method":"ping"}`,
	`{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`,
	`{bad`,
	``,
	`null`,
	`{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"content_list","arguments":{"type":"posts","cursor":"eyJwIjoiMTAiLCJxIjoiYWJjIn0"}}}`,
	`{"jsonrpc":"2.0","id":18,"method":"tools/call","params":{"name":"content_delete","arguments":{"type":"posts","id":"x","dry_run":true}}}`,
}

// FuzzHTTPHandler posts fuzzed bodies with a valid bearer token to keygate's
// HTTP handler (header variants chosen by mode: no session, a live legacy
// session, modern-era headers, both). Invariants: no panic; a status from
// the expected set; a body that is one JSON value, an SSE stream of JSON
// messages, or a short plain-text error (mcp-go's own 4xx); no secret in
// any form.
func FuzzHTTPHandler(f *testing.F) {
	for _, s := range entrySeeds {
		for mode := range 4 {
			f.Add([]byte(s), uint8(mode))
		}
	}
	s := newStack(f)
	// The fuzzing credential may read and write content and read keys,
	// but not create keys: a fuzzed file: delivery could write anywhere.
	caller, _ := s.mint(f, "fuzzer", s.clock.Now().Add(24*time.Hour), "content:read", "content:write", "content:delete", "credentials:read")
	forbidden := fuzzCanaries(f, s, caller)
	sid := s.session(f, caller)
	allowed := map[int]bool{200: true, 202: true, 400: true, 403: true, 404: true, 405: true, 413: true}

	f.Fuzz(func(t *testing.T, body []byte, mode uint8) {
		h := bearer(caller)
		if mode&1 == 1 {
			h["Mcp-Session-Id"] = sid
		}
		if mode&2 == 2 {
			var m struct {
				Method string `json:"method"`
				Params struct {
					Name string `json:"name"`
				} `json:"params"`
			}
			_ = json.Unmarshal(body, &m)
			h["Mcp-Protocol-Version"] = "2026-07-28"
			h["Mcp-Method"] = m.Method
			if m.Params.Name != "" {
				h["Mcp-Name"] = m.Params.Name
			}
		}
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:9/mcp", bytes.NewReader(body))
		req.RemoteAddr = "127.0.0.1:5555"
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range h {
			if v != "" && validHeaderValue(v) {
				req.Header.Set(k, v)
			}
		}
		rec := httptest.NewRecorder()
		s.h.ServeHTTP(rec, req)
		checkEntryResponse(t, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes(), allowed, forbidden)
	})
}

func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

func checkEntryResponse(t *testing.T, code int, contentType string, body []byte, allowed map[int]bool, forbidden []string) {
	t.Helper()
	if !allowed[code] {
		t.Fatalf("status %d: %.300s", code, body)
	}
	if strings.HasPrefix(contentType, "text/plain") {
		if code < 400 || len(body) > 1024 {
			t.Fatalf("plain-text body with status %d (%d bytes)", code, len(body))
		}
	} else if _, err := decodeMessages(contentType, body); err != nil {
		t.Fatalf("status %d: %v: %.300s", code, err, body)
	}
	for _, f := range forbidden {
		if bytes.Contains(body, []byte(f)) {
			t.Fatalf("a secret (%s) is in the response: %.300s", auth.Mask(f), body)
		}
	}
}

// FuzzStdio feeds fuzzed input to keygate's stdio server (the real tools on
// the real store) and checks that every stdout line is a JSON-RPC frame
// without any secret, and that the server ends cleanly at end of input.
func FuzzStdio(f *testing.F) {
	for _, s := range entrySeeds {
		f.Add([]byte(initialize + "\n" + s + "\n"))
		f.Add([]byte(s))
	}
	f.Add([]byte(strings.Repeat(`{"jsonrpc":"2.0","id":1,"method":"ping"}`+"\n", 20)))
	f.Add([]byte("\n\n\r\n\x00\n{\n}\n"))
	s := newStack(f)
	caller, _ := s.mint(f, "fuzzer", s.clock.Now().Add(24*time.Hour), "content:read", "content:write", "content:delete", "credentials:read")
	forbidden := fuzzCanaries(f, s, caller)
	deps := newDeps(s.store, identity.NewIdentity(s.store, auth.Credential{Secret: auth.NewSecret(caller), Source: auth.SourceEnv, Var: tools.EnvTokenVar}),
		s.redactor, s.dir, s.dir+"/stdio.env", slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{ReplaceAttr: s.redactor.SlogReplaceAttr})), s.clock.Now)
	mcpServer, _, err := tools.NewServer(deps, tools.Options{Version: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	logSeen := 0
	f.Fuzz(func(t *testing.T, input []byte) {
		var out lockedBuf
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// Keep stdin open until every request was answered (or a second
		// passed): mcp-go cancels in-flight calls at end of input, and the
		// calls should reach the tools.
		in := &holdingReader{r: bytes.NewReader(input), release: make(chan struct{})}
		go func() {
			want := expectedAnswers(input)
			deadline := time.Now().Add(time.Second)
			for strings.Count(out.String(), "\n") < want && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			close(in.release)
		}()
		err := ServeStdio(ctx, mcpServer, in, &out, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("ServeStdio: %v", err)
		}
		for _, line := range strings.Split(out.String(), "\n") {
			if line == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil || m["jsonrpc"] != "2.0" {
				t.Fatalf("stdout line is not a JSON-RPC frame: %.200q", line)
			}
			for _, f := range forbidden {
				if strings.Contains(line, f) {
					t.Fatalf("a secret (%s) is on stdout: %.300s", auth.Mask(f), line)
				}
			}
		}
		logs := s.logs.String()
		fresh := logs[min(logSeen, len(logs)):]
		logSeen = len(logs)
		for _, f := range forbidden {
			if strings.Contains(fresh, f) {
				t.Fatalf("a secret (%s) is in the log", auth.Mask(f))
			}
		}
	})
}

// holdingReader gives r's bytes, then blocks until release is closed before
// reporting the end of input.
type holdingReader struct {
	r       *bytes.Reader
	release chan struct{}
}

func (h *holdingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if err == io.EOF && n == 0 {
		<-h.release
	}
	return n, err
}

// expectedAnswers counts the lines of input mcp-go answers: requests (a
// method and an id) and lines that do not parse. A last line without a
// newline is never read as a message (mcp-go drops it at end of input).
func expectedAnswers(input []byte) int {
	n := 0
	lines := bytes.Split(input, []byte("\n"))
	for _, line := range lines[:len(lines)-1] {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m struct {
			ID     any    `json:"id"`
			Method string `json:"method"`
		}
		if json.Unmarshal(line, &m) != nil || (m.ID != nil && m.Method != "") {
			n++
		}
	}
	return n
}
