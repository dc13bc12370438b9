package transport

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// maxStdioLine caps one JSON-RPC line on stdin (docs/SECURITY.md row 7): a line
// longer than this ends the session instead of growing memory without bound.
const maxStdioLine = 4 << 20

// ServeStdio serves the MCP server on in/out until ctx is done or in closes.
// Nothing but protocol frames is written to out. Every line passes
// keygate's checks first (stdioGate).
func ServeStdio(ctx context.Context, s *server.MCPServer, in io.Reader, out io.Writer, logger *slog.Logger) error {
	w := &lockedWriter{w: out}
	gate := &stdioGate{src: bufio.NewReader(&lineLimiter{r: in, max: maxStdioLine}), out: w, srv: s}
	stdio := server.NewStdioServer(s)
	stdio.SetErrorLogger(log.New(slogWriter{logger}, "", 0))
	stdio.SetContextFunc(gate.setSession)
	err := stdio.Listen(ctx, gate, w)
	gate.stop()
	return err
}

type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn("stdio transport", "detail", strings.TrimSpace(string(p)))
	return len(p), nil
}

// lockedWriter makes each Write whole: mcp-go writes every frame in one
// Write, from several goroutines (answers, notifications, its own requests
// to the client), and so does the gate.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// stdioGate is the reader mcp-go's stdio server reads: it reads stdin a
// line at a time and decides, in the order lines arrive, what mcp-go sees.
//   - An invalid message is answered -32600 here (readInbound).
//   - Before initialize (lifecycle spec: the client SHOULD NOT send
//     requests other than pings until initialized), a request other than
//     initialize, ping or server/discover is answered -32600 and a
//     notification is dropped; a 2026-07-28 request, which has no
//     initialize, passes and opens the gate too. Deciding in read order,
//     not when mcp-go has handled the initialize, lets a client write its
//     first lines without waiting.
//   - A batch is served when the negotiated version has batches
//     (batchesAllowed) and refused otherwise.
//
// mcp-go reads from one goroutine at a time, so the fields it touches need
// no lock; batches run on goroutines of their own.
type stdioGate struct {
	src     *bufio.Reader
	out     io.Writer
	srv     *server.MCPServer
	pending []byte // what mcp-go has still to read of the admitted lines
	err     error
	open    bool   // initialize (or a 2026-07-28 request) was read
	version string // the version the last initialize negotiated

	mu      sync.Mutex
	session context.Context // mcp-go's stdio session, for batch entries
	cancel  context.CancelFunc
	batches sync.WaitGroup
}

// setSession is the stdio server's context function: it keeps the context
// carrying mcp-go's stdio session, which batch entries are served in.
func (g *stdioGate) setSession(ctx context.Context) context.Context {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.session, g.cancel = context.WithCancel(ctx)
	return ctx
}

// stop cancels the batches still running, as mcp-go cancels its requests
// at the end of input, and waits for them.
func (g *stdioGate) stop() {
	g.mu.Lock()
	if g.cancel != nil {
		g.cancel()
	}
	g.mu.Unlock()
	g.batches.Wait()
}

func (g *stdioGate) Read(p []byte) (int, error) {
	for len(g.pending) == 0 {
		if g.err != nil {
			return 0, g.err
		}
		line, err := g.src.ReadBytes('\n')
		if err != nil {
			// A last line without a newline is dropped, as mcp-go drops it.
			g.err = err
			continue
		}
		g.pending = g.admit(line)
	}
	n := copy(p, g.pending)
	g.pending = g.pending[n:]
	return n, nil
}

// admit returns what of line mcp-go reads: the line, nothing (the gate
// answered or dropped it), or the responses a batch carries.
func (g *stdioGate) admit(line []byte) []byte {
	in := readInbound(line)
	switch in.kind {
	case kindUnparsed, kindResponse:
		return line
	case kindInvalid:
		g.write(in.invalidRequest())
		return nil
	case kindBatch:
		return g.batch(in.entries)
	}
	switch {
	case in.method == methodInitialize && in.kind == kindRequest:
		g.open, g.version = true, in.negotiatedVersion()
	case g.open, in.method == string(mcp.MethodPing), in.method == string(mcp.MethodServerDiscover):
	case mcp.IsModernProtocol(in.metaProtocolVersion()):
		g.open = true
	case in.kind == kindNotification:
		return nil
	default:
		g.write(errorFrame(in.id, mcp.INVALID_REQUEST, fmt.Sprintf(
			"Invalid Request: %s before initialize: send initialize first and wait for its answer (only ping may come before it)", in.method)))
		return nil
	}
	return line
}

func (g *stdioGate) write(frame []byte) {
	_, _ = g.out.Write(append(frame, '\n'))
}

// batch serves a batch line: its responses go on to mcp-go, which routes
// them to the requests they answer; its requests and notifications are
// served in mcp-go's stdio session on a goroutine of the batch's own, one
// after another, and their answers, with those of invalid entries, are
// written as one array (JSON-RPC 2.0 section 6).
func (g *stdioGate) batch(entries []json.RawMessage) []byte {
	switch {
	case !batchesAllowed(g.version):
		version := g.version
		if version == "" {
			version = "none yet (send initialize first)"
		}
		g.write(errorFrame(nil, mcp.INVALID_REQUEST, fmt.Sprintf(
			"Invalid Request: JSON-RPC batches exist only in protocol versions before %s; this session's version is %s: send one message per line",
			versionWithoutBatches, version)))
		return nil
	case len(entries) == 0:
		g.write(errorFrame(nil, mcp.INVALID_REQUEST, "Invalid Request: the batch is empty"))
		return nil
	case len(entries) > maxBatchEntries:
		g.write(errorFrame(nil, mcp.INVALID_REQUEST, fmt.Sprintf(
			"Invalid Request: a batch holds at most %d messages, this one %d: send them in smaller batches", maxBatchEntries, len(entries))))
		return nil
	}
	var responses []byte
	var answers []json.RawMessage
	var served []inbound
	var raws []json.RawMessage
	for _, e := range entries {
		switch in := batchEntry(e); in.kind {
		case kindResponse:
			responses = append(append(responses, e...), '\n')
		case kindInvalid:
			answers = append(answers, in.invalidRequest())
		default:
			served, raws = append(served, in), append(raws, e)
		}
	}
	g.mu.Lock()
	ctx := g.session
	g.mu.Unlock()
	g.batches.Add(1)
	go func() {
		defer g.batches.Done()
		for i, in := range served {
			if a := g.serveEntry(ctx, in, raws[i]); a != nil && in.kind == kindRequest {
				answers = append(answers, a)
			}
		}
		if len(answers) > 0 {
			b, _ := json.Marshal(answers)
			g.write(b)
		}
	}()
	return responses
}

// serveEntry serves one batch entry, turning a panic into the entry's
// error answer.
func (g *stdioGate) serveEntry(ctx context.Context, in inbound, raw json.RawMessage) (answer json.RawMessage) {
	defer func() {
		if r := recover(); r != nil {
			answer = errorFrame(in.id, mcp.INTERNAL_ERROR, "internal error in "+in.method)
		}
	}()
	if ctx == nil || ctx.Err() != nil {
		return errorFrame(in.id, mcp.INTERNAL_ERROR, "the session ended before this message was served")
	}
	msg := g.srv.HandleMessage(ctx, raw)
	if msg == nil {
		return nil
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return errorFrame(in.id, mcp.INTERNAL_ERROR, "cannot encode the answer to "+in.method)
	}
	return b
}

// lineLimiter fails the read once a single line exceeds max bytes.
type lineLimiter struct {
	r       io.Reader
	max     int
	lineLen int
}

var errLineTooLong = errors.New("stdin line longer than 4 MiB")

func (l *lineLimiter) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for i := 0; i < n; i++ {
		if p[i] == '\n' {
			l.lineLen = 0
			continue
		}
		l.lineLen++
		if l.lineLen > l.max {
			return i, errLineTooLong
		}
	}
	return n, err
}
