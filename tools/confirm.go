package tools

import (
	"context"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/shape"
)

const confirmID = "confirm"

// confirmDestructive decides whether a destructive call may go ahead. When
// the client can show a prompt, the user is asked (elicitation), and the
// model's own confirm flag does not count; otherwise confirm: true is
// required. It returns a non-nil result when the call must stop here: a
// prompt to show, a refusal, or the user's "no".
func confirmDestructive(ctx context.Context, call *Call, args Confirmation, message string) *mcp.CallToolResult {
	if ans := server.ElicitationResponse(call.Req.Params.InputResponses, confirmID); ans != nil {
		if ans.Action == mcp.ElicitationResponseActionAccept && approved(ans.Content) {
			return nil
		}
		return shape.OK(map[string]any{"cancelled": true, "changed": false},
			"cancelled: the user did not approve; nothing was changed")
	}
	if clientCanElicit(ctx) {
		return server.NewInputRequestBuilder("").Elicit(confirmID, mcp.ElicitationParams{
			Mode:    mcp.ElicitationModeForm,
			Message: message,
			RequestedSchema: map[string]any{
				"type": "object",
				"properties": map[string]any{
					"approve": map[string]any{"type": "boolean", "title": "Approve", "description": message},
				},
				"required": []string{"approve"},
			},
		}).ToolResult()
	}
	if args.Confirm {
		return nil
	}
	return shape.Error("confirm", message+" This client cannot show a confirmation prompt",
		"ask the user, then call again with confirm: true (or dry_run: true to preview)")
}

func approved(content any) bool {
	m, ok := content.(map[string]any)
	if !ok {
		return false
	}
	v, _ := m["approve"].(bool)
	return v
}

// clientCanElicit reports whether the client declared the elicitation
// capability, per request for 2026-07-28 clients and per session before.
func clientCanElicit(ctx context.Context) bool {
	if info := server.RequestProtocolInfoFromContext(ctx); info != nil && info.Modern {
		return info.ClientCapabilities != nil && info.ClientCapabilities.Elicitation != nil
	}
	if s, ok := server.ClientSessionFromContext(ctx).(server.SessionWithClientInfo); ok {
		return s.GetClientCapabilities().Elicitation != nil
	}
	return false
}

// confirmArgs are the schema options shared by destructive tools.
func confirmArgs() []mcp.ToolOption {
	return []mcp.ToolOption{
		mcp.WithBoolean("dry_run", mcp.Description("Say what would happen and change nothing (default false)."), mcp.DefaultBool(false)),
		mcp.WithBoolean("confirm", mcp.Description("Set to true after the user agreed, for clients that cannot show a confirmation prompt. Ignored when the client can prompt: the user is asked instead."), mcp.DefaultBool(false)),
	}
}
