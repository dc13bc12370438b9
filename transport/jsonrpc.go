package transport

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/mark3labs/mcp-go/mcp"
)

// What keygate checks of each JSON-RPC message before mcp-go sees it, on
// both transports: the shape MCP's base protocol demands
// (docs/protocol.md). mcp-go answers a message it cannot decode with
// -32700 Parse error, and one without a method with -32601 or a silent
// 202; JSON-RPC 2.0 answers valid JSON that is not a valid message with
// -32600 Invalid Request, and so does keygate.

// messageKind is what one JSON-RPC message is.
type messageKind int

const (
	kindUnparsed     messageKind = iota // not JSON: mcp-go answers -32700
	kindInvalid                         // JSON, but no valid message: -32600
	kindRequest                         // method and id
	kindNotification                    // method, no id
	kindResponse                        // id and result or error
	kindBatch                           // a JSON array
)

// inbound is what keygate reads of one incoming message.
type inbound struct {
	kind    messageKind
	id      json.RawMessage   // a valid id (string or integer), else nil
	method  string            // requests and notifications
	params  json.RawMessage   // requests and notifications, when present
	problem string            // kindInvalid: what is wrong and how to fix it
	entries []json.RawMessage // kindBatch
}

// Protocol versions whose rules differ here.
const (
	// versionWithoutBatches is the first protocol version without JSON-RPC
	// batches: 2025-03-26 required receiving them, 2025-06-18 removed them.
	versionWithoutBatches = mcp.ProtocolVersion20250618
	methodInitialize      = string(mcp.MethodInitialize)
)

// maxBatchEntries bounds one batch: its entries are served one after
// another within one POST (or one stdin line), so the bound keeps a batch
// near the cost of a single request.
const maxBatchEntries = 32

// readInbound classifies raw, one message or a batch.
func readInbound(raw []byte) inbound {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 {
		return inbound{kind: kindUnparsed}
	}
	switch trimmed[0] {
	case '[':
		return readBatch(raw)
	case '{':
		return readMessage(raw)
	}
	if !json.Valid(raw) {
		return inbound{kind: kindUnparsed}
	}
	return invalid(nil, "a JSON-RPC message is a JSON object, such as {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}")
}

// readBatch splits a JSON array into its entries, each classified when it
// is served.
func readBatch(raw []byte) inbound {
	var entries []json.RawMessage
	if json.Unmarshal(raw, &entries) != nil {
		return inbound{kind: kindUnparsed}
	}
	return inbound{kind: kindBatch, entries: entries}
}

// message is the members of one JSON-RPC message keygate checks, kept
// undecoded so that a wrong type is told apart from a missing member.
type message struct {
	JSONRPC json.RawMessage `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  json.RawMessage `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

// readMessage classifies one JSON object. The checks run in a fixed order,
// so that each invalid message gets the one problem that names it best.
func readMessage(raw []byte) inbound {
	var m message
	if json.Unmarshal(raw, &m) != nil {
		return inbound{kind: kindUnparsed}
	}
	var id json.RawMessage
	if validID(m.ID) {
		id = m.ID
	}
	if v, ok := jsonString(m.JSONRPC); !ok || v != mcp.JSONRPC_VERSION {
		return invalid(id, `"jsonrpc" must be "2.0"`)
	}
	if m.isUnaddressedError() {
		// The client's error answer to a message it could not read: there
		// is nothing to route and, as for every response, nothing to answer.
		return inbound{kind: kindResponse}
	}
	if m.ID != nil && id == nil {
		return invalid(nil, `"id" must be a string or an integer (MCP does not allow null)`)
	}
	if m.Method == nil {
		return m.readResponse(id)
	}
	return m.readCall(id)
}

// isUnaddressedError reports an error response without an id (absent or
// null), the only place JSON-RPC allows a null id.
func (m message) isUnaddressedError() bool {
	return m.Method == nil && m.Result == nil && m.Error != nil && (m.ID == nil || bytes.Equal(m.ID, []byte("null")))
}

// readResponse classifies a message without a method: a response, which
// needs an id and exactly one of result and error.
func (m message) readResponse(id json.RawMessage) inbound {
	switch {
	case id == nil:
		return invalid(nil, `a message needs a "method" (a request or a notification) or an "id" with a "result" or an "error" (a response)`)
	case m.Result != nil && m.Error != nil:
		return invalid(id, `a response carries a "result" or an "error", not both`)
	case m.Result == nil && m.Error == nil:
		return invalid(id, `a message with an "id" needs a "method" (a request) or a "result" or an "error" (a response)`)
	}
	return inbound{kind: kindResponse, id: id}
}

// readCall classifies a message with a method: a request when it has an
// id, else a notification.
func (m message) readCall(id json.RawMessage) inbound {
	method, ok := jsonString(m.Method)
	switch {
	case !ok:
		return invalid(id, `"method" must be a string, such as "tools/list"`)
	case m.Result != nil || m.Error != nil:
		return invalid(id, `a request or notification has no "result" or "error"`)
	case m.Params != nil && !bytes.Equal(m.Params, []byte("null")) && m.Params[0] != '{':
		return invalid(id, `"params" must be a JSON object`)
	}
	in := inbound{kind: kindNotification, method: method, params: m.Params}
	if id != nil {
		in.kind, in.id = kindRequest, id
	}
	return in
}

func invalid(id json.RawMessage, problem string) inbound {
	return inbound{kind: kindInvalid, id: id, problem: problem}
}

// validID reports whether raw is an id MCP allows: a string or an integer,
// never null. An integer must fit in 64 bits, so that the answer echoes it
// exactly.
func validID(raw json.RawMessage) bool {
	if len(raw) == 0 {
		return false
	}
	if raw[0] == '"' {
		_, ok := jsonString(raw)
		return ok
	}
	_, err := strconv.ParseInt(string(raw), 10, 64)
	return err == nil
}

func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if !bytes.ContainsRune(raw, '\\') {
		// raw is valid JSON: without escapes, the string is its bytes.
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// metaProtocolVersion is the protocol version a request declares in its
// _meta, as a 2026-07-28 client sends it; "" when it declares none. It
// decodes _meta as mcp-go's detectRequestEra does, so that keygate and
// mcp-go tell the eras apart alike.
func (in inbound) metaProtocolVersion() string {
	if !bytes.Contains(in.params, []byte(`"_meta"`)) {
		return "" // the common case, without decoding
	}
	var p struct {
		Meta *mcp.Meta `json:"_meta"`
	}
	if json.Unmarshal(in.params, &p) != nil {
		return ""
	}
	return p.Meta.ProtocolVersion()
}

// negotiatedVersion is the protocol version mcp-go answers an initialize
// with (the same function decides).
func (in inbound) negotiatedVersion() string {
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	_ = json.Unmarshal(in.params, &p)
	return mcp.NegotiateLegacyVersion(p.ProtocolVersion)
}

// batchesAllowed reports whether a session speaking version may send
// JSON-RPC batches: 2025-03-26 made receiving them a MUST (and 2024-11-05
// followed plain JSON-RPC 2.0, which has them); 2025-06-18 removed them.
func batchesAllowed(version string) bool {
	return version != "" && version < versionWithoutBatches
}

// errorFrame is a JSON-RPC error answer; a nil id is written as null.
func errorFrame(id json.RawMessage, code int, msg string) []byte {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	b, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": code, "message": msg},
	})
	return b
}

// invalidRequest is the answer to an invalid message.
func (in inbound) invalidRequest() []byte {
	return errorFrame(in.id, mcp.INVALID_REQUEST, "Invalid Request: "+in.problem)
}
