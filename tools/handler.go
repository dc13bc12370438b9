package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
)

// ServerTool is one tool with what keygate needs to know about it.
type ServerTool struct {
	Tool    mcp.Tool
	Toolset string
	// Needs is the action the caller must hold (for some type, for content
	// actions) to see and call the tool; "" means any caller, even one
	// without a credential.
	Needs auth.Action

	// args is the tool's argument struct type; decode fills one from a
	// call's arguments, and run hands it to the typed handler.
	args   reflect.Type
	decode func(raw map[string]any) (arguments, error)
	run    func(ctx context.Context, call *Call, args arguments) (*mcp.CallToolResult, error)
}

// ReadOnly reports whether the tool changes nothing.
func (t ServerTool) ReadOnly() bool {
	return t.Tool.Annotations.ReadOnlyHint != nil && *t.Tool.Annotations.ReadOnlyHint
}

// Handler is a tool's typed handler: the call, with its verified caller
// and the provider it picked, and the arguments decoded into the tool's
// argument struct after they passed the tool's input schema.
type Handler[A arguments] func(ctx context.Context, call *Call, args A) (*mcp.CallToolResult, error)

// newTool registers a typed handler with its hand-written schema. A's JSON
// names must be the schema's properties (TestArgumentStructsMatchSchemas).
func newTool[A arguments](toolset string, needs auth.Action, tool mcp.Tool, h Handler[A]) ServerTool {
	return ServerTool{
		Tool: tool, Toolset: toolset, Needs: needs,
		args: reflect.TypeFor[A](),
		decode: func(raw map[string]any) (arguments, error) {
			var a A
			b, err := json.Marshal(raw)
			if err != nil {
				return a, fmt.Errorf("encoding the arguments of %s: %w", tool.Name, err)
			}
			if err := json.Unmarshal(b, &a); err != nil {
				return a, fmt.Errorf("decoding the arguments of %s: %w", tool.Name, err)
			}
			return a, nil
		},
		run: func(ctx context.Context, call *Call, args arguments) (*mcp.CallToolResult, error) {
			return h(ctx, call, args.(A))
		},
	}
}

// arguments is what the middleware needs of every argument struct: the
// provider asked for (Common provides it).
type arguments interface{ providerName() string }

// typed is an argument struct that names a content type (TypeArg): the
// middleware checks the caller's scope on that type.
type typed interface{ contentType() string }

// previewable is an argument struct that may ask for a dry run
// (Confirmation).
type previewable interface{ dryRun() bool }

// Call is one tool invocation with its verified caller and the provider
// it acts on.
type Call struct {
	Req    mcp.CallToolRequest
	Caller *auth.Principal // nil only for tools that need no scope
	Cred   auth.Credential
	// Provider is the provider the call's provider argument picked.
	Provider Provider
	// credErr is why Caller is nil: identity.ErrNoCredential,
	// auth.ErrInvalidToken or a store fault, for the tools that explain it.
	credErr error
	reveal  *revealed
}

// Reveal lets one secret through the redaction pass of this call's result:
// the one time a newly issued key is shown to its owner.
func (c *Call) Reveal(s auth.Secret) { c.reveal.values = append(c.reveal.values, s.Reveal()) }

type revealed struct{ values []string }
