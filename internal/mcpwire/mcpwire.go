// Package mcpwire reads MCP answers off the wire for keygate's own test and
// benchmark clients (internal/cluster, bench/internal/benchkit).
package mcpwire

import "bytes"

// SSEResponse picks, from a whole SSE stream, the data of the last event
// that is a JSON-RPC response (has a result or an error): notifications
// sent while a request runs come on the same stream, before its answer.
func SSEResponse(stream []byte) []byte {
	var last []byte
	for line := range bytes.SplitSeq(stream, []byte("\n")) {
		data, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r"), []byte("data:"))
		if !ok {
			continue
		}
		data = bytes.TrimSpace(data)
		if bytes.Contains(data, []byte(`"result"`)) || bytes.Contains(data, []byte(`"error"`)) {
			last = data
		}
	}
	return last
}
