package transport

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/mark3labs/mcp-go/server"
)

// maxStdioLine caps one JSON-RPC line on stdin (security.md row 7): a line
// longer than this ends the session instead of growing memory without bound.
const maxStdioLine = 4 << 20

// ServeStdio serves the MCP server on in/out until ctx is done or in closes.
// Nothing but protocol frames is written to out.
func ServeStdio(ctx context.Context, s *server.MCPServer, in io.Reader, out io.Writer, logger *slog.Logger) error {
	stdio := server.NewStdioServer(s)
	stdio.SetErrorLogger(log.New(slogWriter{logger}, "", 0))
	return stdio.Listen(ctx, &lineLimiter{r: in, max: maxStdioLine}, out)
}

type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn("stdio transport", "detail", strings.TrimSpace(string(p)))
	return len(p), nil
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
