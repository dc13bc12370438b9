package tools

import (
	"fmt"

	"github.com/keygate/keygate/query"

	"github.com/keygate/keygate/shape"
	"github.com/mark3labs/mcp-go/mcp"
)

func maxBytesArg() mcp.ToolOption {
	return mcp.WithNumber("max_bytes",
		mcp.Description(fmt.Sprintf("Upper bound on the size of the result in bytes, %d to %d (default %d). What does not fit is cut at a value boundary, listed under truncated, and reachable with the cursor returned.", shape.MinMaxBytes, shape.MaxMaxBytes, shape.DefaultMaxBytes)),
		mcp.Min(shape.MinMaxBytes), mcp.Max(shape.MaxMaxBytes), mcp.DefaultNumber(shape.DefaultMaxBytes))
}

func formatArg() mcp.ToolOption {
	return mcp.WithString("format",
		mcp.Description(`"text" (default): the text content is a compact rendering; "json": the text content is the full JSON. structuredContent always holds the full data.`),
		mcp.Enum("text", "json"), mcp.DefaultString("text"))
}

// readMaxBytes validates the max_bytes argument.
func readMaxBytes(call *Call) (int, *mcp.CallToolResult) {
	n := call.Req.GetInt("max_bytes", shape.DefaultMaxBytes)
	if n < shape.MinMaxBytes || n > shape.MaxMaxBytes {
		return 0, shape.Error("max_bytes", fmt.Sprintf("%d is out of range", n), fmt.Sprintf("use %d to %d", shape.MinMaxBytes, shape.MaxMaxBytes))
	}
	return n, nil
}

func listCursorArg() mcp.ToolOption {
	return mcp.WithString("cursor", mcp.Description("next_cursor from the previous result, when max_bytes cut it short."), mcp.MaxLength(256))
}

// queryError is a query argument problem as a tool result.
func queryError(e *query.Error) *mcp.CallToolResult {
	return shape.Error(e.Field, e.Problem, e.Fix)
}

// readOffsetCursor reads the cursor of a list keygate pages itself.
func readOffsetCursor(call *Call, scope string) (int, *mcp.CallToolResult) {
	n, err := query.ParseOffsetCursor(call.Req.GetString("cursor", ""), scope)
	if err != nil {
		return 0, queryError(err)
	}
	return n, nil
}
