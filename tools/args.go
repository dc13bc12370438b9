package tools

// This file holds the arguments many tools share: their schema options, as
// the hand-written input schemas use them, and the struct fields the typed
// handlers read them into.

import (
	"fmt"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/query"
	"github.com/keygate/keygate/shape"
)

// Common are the arguments every tool takes.
type Common struct {
	Provider string `json:"provider"`
}

func (c Common) providerName() string { return c.Provider }

// TypeArg is the content type a content tool acts on.
type TypeArg struct {
	Type string `json:"type"`
}

func (t TypeArg) contentType() string { return t.Type }

// Confirmation are the arguments of destructive tools.
type Confirmation struct {
	DryRun  bool `json:"dry_run"`
	Confirm bool `json:"confirm"`
}

func (c Confirmation) dryRun() bool { return c.DryRun }

// Budget are the arguments of tools whose result has a byte budget.
type Budget struct {
	MaxBytes float64 `json:"max_bytes"`
	Format   string  `json:"format"`
}

// maxBytes is the budget asked for, or the default.
func (b Budget) maxBytes() int {
	if b.MaxBytes == 0 {
		return shape.DefaultMaxBytes
	}
	return int(b.MaxBytes)
}

// providerArg is the schema of the optional provider argument every tool takes.
func providerArg() mcp.ToolOption {
	return mcp.WithString("provider",
		mcp.Description("Which configured back end to use (default: the first configured, normally \"local\"). auth_whoami lists them."),
		mcp.Pattern(`^[a-z][a-z0-9_-]{0,31}$`))
}

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

func listCursorArg() mcp.ToolOption {
	return mcp.WithString("cursor", mcp.Description("next_cursor from the previous result, when max_bytes cut it short."), mcp.MaxLength(256))
}

// queryError is a query argument problem as a tool result.
func queryError(e *query.Error) *mcp.CallToolResult {
	return shape.Error(e.Field, e.Problem, e.Fix)
}

// readOffsetCursor reads the cursor of a list keygate pages itself.
func readOffsetCursor(cursor, scope string) (int, *mcp.CallToolResult) {
	n, err := query.ParseOffsetCursor(cursor, scope)
	if err != nil {
		return 0, queryError(err)
	}
	return n, nil
}
