package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/identity"
)

// The protocol rules keygate applies to /mcp before mcp-go sees a request,
// each answer listed in docs/protocol.md with its test.

// allowedMethods are the methods /mcp serves: POST for messages, GET for a
// session's stream, DELETE to end a session, HEAD, and OPTIONS.
const allowedMethods = "GET, POST, DELETE, HEAD, OPTIONS"

// statelessMethods are those /mcp serves without sessions
// (HTTPConfig.Stateless): no session to stream from or to end.
const statelessMethods = "POST, HEAD, OPTIONS"

// noSessions is the session middleware of a stateless server: there is no
// session to bind, and none may be named. mcp-go's stateless manager
// accepts any Mcp-Session-Id and keys per-session state by it (a
// credential from auth_authenticate, a log level): a caller who named a
// session could then grow that state without bound, or act through
// another caller's. Without the header every request is its own session,
// which identity.SessionID reports as none.
func noSessions(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del(server.HeaderKeySessionID)
		next.ServeHTTP(w, r)
	})
}

// allowMethods answers OPTIONS with the methods /mcp serves, and any method
// it does not serve with 405 and the same list (RFC 9110 sections 9.3.7
// and 15.5.6); mcp-go answers both with 404, as if the endpoint were not
// there. Neither needs a token: the answer is the same for everyone.
func allowMethods(allowed string, next http.Handler) http.Handler {
	served := map[string]bool{}
	for _, m := range strings.Split(allowed, ", ") {
		served[m] = m != http.MethodOptions
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case served[r.Method]:
			next.ServeHTTP(w, r)
		case r.Method == http.MethodOptions:
			w.Header().Set("Allow", allowed)
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Allow", allowed)
			msg := fmt.Sprintf("method %s is not allowed on the MCP endpoint: send JSON-RPC messages with POST (allowed: %s)", r.Method, allowed)
			if allowed == statelessMethods && (r.Method == http.MethodGet || r.Method == http.MethodDelete) {
				msg = fmt.Sprintf("method %s is not allowed: this keygate serves without sessions (--http-sessions stateless), so there is no stream to open or session to end; every answer comes on its POST", r.Method)
			}
			writeJSONRPCError(w, http.StatusMethodNotAllowed, nil, mcp.INVALID_REQUEST, msg)
		}
	})
}

// requestInfo is what checkMessage learnt of a request, for bindSession.
type requestInfo struct {
	// modern: the request speaks protocol 2026-07-28 or later, which has no
	// sessions; mcp-go decides the same way (detectRequestEra,
	// isModernHTTPRequest).
	modern bool
	// initVersion is the protocol version an initialize negotiates.
	initVersion string
}

type requestInfoKey struct{}

func requestInfoFrom(ctx context.Context) requestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(requestInfo)
	return info
}

// checkMessage checks a POST's JSON-RPC message (readInbound) and answers
// what mcp-go would answer wrongly: an invalid message gets 400 and
// -32600; a legacy message without Mcp-Session-Id, other than initialize,
// gets 400 saying how to get one (mcp-go: 404 "Invalid session ID", which
// tells the client its session ended); a batch is served when the
// session's protocol version has batches and refused otherwise. It runs
// after limitAndScope, which has read and capped the body.
func (h *httpHandler) checkMessage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headerVersion := r.Header.Get(mcp.HeaderProtocolVersion)
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, withRequestInfo(r, requestInfo{modern: mcp.IsModernProtocol(headerVersion)}))
			return
		}
		body, err := readBody(r.Body, r.ContentLength)
		if err != nil {
			writeJSONRPCError(w, http.StatusBadRequest, nil, mcp.PARSE_ERROR, "cannot read request body")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		in := readInbound(body)
		info := requestInfo{modern: mcp.IsModernProtocol(headerVersion) || mcp.IsModernProtocol(in.metaProtocolVersion())}
		sid := r.Header.Get(server.HeaderKeySessionID)
		switch {
		case in.kind == kindInvalid:
			writeMessage(w, http.StatusBadRequest, in.invalidRequest())
			return
		case in.kind == kindBatch:
			h.serveBatch(next, w, r, in.entries, info.modern, sid)
			return
		case in.kind == kindUnparsed || info.modern:
			// mcp-go answers -32700; 2026-07-28 has no sessions.
		case in.method == methodInitialize && in.kind == kindRequest:
			info.initVersion = in.negotiatedVersion()
		case h.cfg.Stateless && in.method == string(mcp.MethodSetLogLevel):
			// A log level is kept per session, and there are none: one
			// caller's level would be every caller's.
			writeMessage(w, http.StatusOK, errorFrame(in.id, mcp.INVALID_REQUEST,
				"Invalid Request: this keygate serves without sessions (--http-sessions stateless), so it keeps no log level for a client; leave logging/setLevel out"))
			return
		case sid == "" && !h.cfg.Stateless:
			writeMessage(w, http.StatusBadRequest, missingSession(in.id))
			return
		}
		next.ServeHTTP(w, withRequestInfo(r, info))
	})
}

func withRequestInfo(r *http.Request, info requestInfo) *http.Request {
	if info == (requestInfo{}) {
		return r // what requestInfoFrom answers without it
	}
	return r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
}

// missingSession answers a legacy message sent without the session
// header (transports spec, 2025-11-25: SHOULD 400).
func missingSession(id json.RawMessage) []byte {
	return errorFrame(id, mcp.INVALID_REQUEST, "Bad Request: Mcp-Session-Id header missing. "+
		"Send initialize without it; the answer's Mcp-Session-Id header names your session: send it with every later request")
}

func writeMessage(w http.ResponseWriter, status int, msg []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(msg, '\n'))
}

// serveBatch serves a JSON-RPC batch, which only sessions speaking a
// protocol version before 2025-06-18 may send. Each entry goes through
// next as a POST of its own, one after another, within this request's
// slot; notifications and responses are answered by nobody, as JSON-RPC
// has it, and everything else is answered on one SSE stream (2025-03-26
// transports: a POST holding requests gets an SSE stream or JSON), where
// what a tool sends while it runs (progress, a confirmation prompt) streams
// through as it comes.
func (h *httpHandler) serveBatch(next http.Handler, w http.ResponseWriter, r *http.Request, entries []json.RawMessage, modern bool, sid string) {
	p, _, _ := identity.VerifiedFrom(r.Context())
	if modern {
		writeMessage(w, http.StatusBadRequest, errorFrame(nil, mcp.INVALID_REQUEST,
			"Invalid Request: protocol version "+mcp.ProtocolVersion20260728+" has no JSON-RPC batches: send each message in a POST of its own"))
		return
	}
	if h.cfg.Stateless {
		// Which version a batch may use is the session's, and there are
		// no sessions.
		writeMessage(w, http.StatusBadRequest, errorFrame(nil, mcp.INVALID_REQUEST,
			"Invalid Request: this keygate serves without sessions (--http-sessions stateless), so it takes no JSON-RPC batches: send each message in a POST of its own"))
		return
	}
	if sid == "" {
		writeMessage(w, http.StatusBadRequest, errorFrame(nil, mcp.INVALID_REQUEST,
			"Invalid Request: a batch needs the Mcp-Session-Id of a session that negotiated protocol version 2025-03-26 or earlier; initialize is sent alone, never in a batch"))
		return
	}
	version, live := h.sessions.versionOf(sid, p.KeyID)
	switch {
	case !live:
		writeJSONRPCError(w, http.StatusNotFound, nil, -32001, "session not found")
		return
	case !batchesAllowed(version):
		writeMessage(w, http.StatusBadRequest, errorFrame(nil, mcp.INVALID_REQUEST, fmt.Sprintf(
			"Invalid Request: this session speaks protocol version %s, which has no JSON-RPC batches (%s removed them): send each message in a POST of its own",
			version, versionWithoutBatches)))
		return
	case len(entries) == 0:
		writeMessage(w, http.StatusBadRequest, errorFrame(nil, mcp.INVALID_REQUEST, "Invalid Request: the batch is empty"))
		return
	case len(entries) > maxBatchEntries:
		writeMessage(w, http.StatusBadRequest, errorFrame(nil, mcp.INVALID_REQUEST, fmt.Sprintf(
			"Invalid Request: a batch holds at most %d messages, this one %d: send them in smaller batches", maxBatchEntries, len(entries))))
		return
	}
	msgs := make([]inbound, len(entries))
	answered := false
	for i, e := range entries {
		msgs[i] = batchEntry(e)
		answered = answered || (msgs[i].kind != kindNotification && msgs[i].kind != kindResponse)
	}
	stream := &batchStream{w: w}
	if answered {
		stream.open()
	}
	info := withRequestInfo(r, requestInfo{})
	for i, in := range msgs {
		if in.kind == kindInvalid {
			stream.event(in.invalidRequest())
			continue
		}
		sub := info.Clone(info.Context())
		sub.Body = io.NopCloser(bytes.NewReader(entries[i]))
		sub.ContentLength = int64(len(entries[i]))
		bw := &batchWriter{stream: stream, header: http.Header{}}
		next.ServeHTTP(bw, sub)
		if in.kind == kindRequest && !bw.streamed {
			stream.event(bw.answer(in.id))
		}
	}
	if !answered {
		w.WriteHeader(http.StatusAccepted)
	}
}

// batchEntry classifies one entry of a batch: what readInbound finds, with
// what a batch may not hold (a batch, an initialize) made invalid.
func batchEntry(raw json.RawMessage) inbound {
	in := readInbound(raw)
	switch {
	case in.kind == kindBatch:
		return invalid(nil, "a batch cannot hold a batch")
	case in.method == methodInitialize:
		return invalid(in.id, "initialize must not be part of a batch: send it in a POST of its own")
	}
	return in
}

// batchStream is the SSE stream answering a batch.
type batchStream struct {
	w http.ResponseWriter
}

func (s *batchStream) open() {
	s.w.Header().Set("Content-Type", "text/event-stream")
	s.w.Header().Set("Cache-Control", "no-cache")
	s.w.WriteHeader(http.StatusOK)
}

func (s *batchStream) event(msg []byte) {
	_, _ = fmt.Fprintf(s.w, "event: message\ndata: %s\n\n", msg)
	s.flush()
}

func (s *batchStream) flush() {
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

// batchWriter takes mcp-go's answer to one batch entry: an SSE answer
// streams through to the batch's stream as it comes; any other answer is
// kept, to be sent as one event.
type batchWriter struct {
	stream   *batchStream
	header   http.Header
	status   int
	streamed bool
	body     bytes.Buffer
}

func (b *batchWriter) Header() http.Header { return b.header }

func (b *batchWriter) WriteHeader(code int) {
	if b.status != 0 {
		return
	}
	b.status = code
	b.streamed = code == http.StatusOK && strings.HasPrefix(b.header.Get("Content-Type"), "text/event-stream")
}

func (b *batchWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.WriteHeader(http.StatusOK)
	}
	if b.streamed {
		return b.stream.w.Write(p)
	}
	return b.body.Write(p)
}

func (b *batchWriter) Flush() {
	if b.streamed {
		b.stream.flush()
	}
}

func (b *batchWriter) Unwrap() http.ResponseWriter { return b.stream.w }

// answer is the kept answer as one JSON-RPC message: mcp-go's own when it
// wrote one, else an error saying what HTTP answer the entry got.
func (b *batchWriter) answer(id json.RawMessage) []byte {
	body := bytes.TrimSpace(b.body.Bytes())
	var msg map[string]json.RawMessage
	if json.Unmarshal(body, &msg) == nil && msg["jsonrpc"] != nil {
		return body
	}
	return errorFrame(id, mcp.INTERNAL_ERROR, fmt.Sprintf("HTTP %d: %s", b.status, truncate(string(body), 200)))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
