// Command session runs one whole keygate session over stdio with the mcp-go
// client: whoami, create, list, update, rotate keygate's own key, delete.
//
// Run it from the repository root:
//
//	go run ./examples/session
//
// It starts keygate (by default with "go run .") on a throw-away store and
// env file in a temporary directory, so it never touches your own store.
// Confirmation prompts (elicitation) are answered "yes" and printed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

func main() {
	keygate := flag.String("keygate", "", "path of a keygate binary (default: go run . from the current directory)")
	flag.Parse()
	if err := run(*keygate); err != nil {
		log.Fatal(err)
	}
}

// approve answers every confirmation prompt with yes, saying so.
type approve struct{}

func (approve) Elicit(_ context.Context, req mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	fmt.Printf("   [user is asked] %s -> yes\n", req.Params.Message)
	return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{
		Action: mcp.ElicitationResponseActionAccept, Content: map[string]any{"approve": true}}}, nil
}

func run(keygate string) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	dir, err := os.MkdirTemp("", "keygate-session-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	args := []string{"serve", "--store", filepath.Join(dir, "keygate.db"), "--env-file", filepath.Join(dir, ".env"), "--log-level", "warn"}
	cmd := keygate
	if cmd == "" {
		cmd, args = "go", append([]string{"run", "."}, args...)
	}
	t := transport.NewStdioWithOptions(cmd, blankKeygateVars(os.Environ()), args, transport.WithCommandStderrWriter(os.Stderr))
	if err := t.Start(ctx); err != nil {
		return fmt.Errorf("starting keygate: %w", err)
	}
	c := client.NewClient(t, client.WithElicitationHandler(approve{}))
	defer func() {
		// Closing stdin stops keygate, which then closes its store; a
		// failure there shows as its exit status.
		if cerr := c.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("stopping keygate: %w", cerr))
		}
	}()
	init, err := c.Initialize(ctx, mcp.InitializeRequest{})
	if err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	fmt.Printf("connected to %s %s\n", init.ServerInfo.Name, init.ServerInfo.Version)

	list, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return err
	}
	names := make([]string, len(list.Tools))
	for i, tl := range list.Tools {
		names[i] = tl.Name
	}
	fmt.Printf("tools: %s\n", strings.Join(names, ", "))

	call := func(name string, args map[string]any) (map[string]any, error) {
		fmt.Printf("\n> %s %s\n", name, compact(args))
		var req mcp.CallToolRequest
		req.Params.Name, req.Params.Arguments = name, args
		res, err := c.CallTool(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for _, ct := range res.Content {
			if tc, ok := ct.(mcp.TextContent); ok {
				fmt.Println(indent(tc.Text))
			}
		}
		if res.IsError {
			return nil, fmt.Errorf("%s returned an error", name)
		}
		var out map[string]any
		b, _ := json.Marshal(res.StructuredContent)
		_ = json.Unmarshal(b, &out)
		return out, nil
	}

	if _, err := call("auth_whoami", nil); err != nil {
		return err
	}
	created, err := call("content_create", map[string]any{"type": "posts", "title": "Written by the example session",
		"fields": map[string]any{"body": "Hello from examples/session.", "author": "example"}})
	if err != nil {
		return err
	}
	obj := created["object"].(map[string]any)
	id := obj["id"].(string)
	if _, err := call("content_list", map[string]any{"type": "posts", "limit": 5}); err != nil {
		return err
	}
	if _, err := call("content_update", map[string]any{"type": "posts", "id": id, "status": "published",
		"expected_version": obj["version"]}); err != nil {
		return err
	}
	if _, err := call("credentials_rotate", map[string]any{"credential": "current"}); err != nil {
		return err
	}
	if _, err := call("auth_whoami", nil); err != nil {
		return err
	}
	if _, err := call("content_delete", map[string]any{"type": "posts", "id": id}); err != nil {
		return err
	}
	fmt.Println("\nsession complete")
	return nil
}

// blankKeygateVars blanks the KEYGATE_* settings inherited from the shell
// (keygate treats an empty variable as unset), so keygate uses the token it
// mints on first run in the temporary env file.
func blankKeygateVars(env []string) []string {
	var out []string
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "KEYGATE_") {
			out = append(out, name+"=")
		}
	}
	return out
}

func compact(v any) string {
	if v == nil {
		return "{}"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }
