package authserver

import (
	"context"
	"net/http"
	"strings"
	"testing"

	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/auth"
)

// mcpServer is an MCP server with one tool that says who is calling, behind
// the same bearer check as env.protect.
func (e *env) mcpServer() http.Handler {
	s := server.NewMCPServer("keygate-test", "1.0.0")
	s.AddTool(mcp.NewTool("whoami", mcp.WithDescription("Who is calling")),
		func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			p, _ := ctx.Value(principalKey{}).(auth.Principal)
			return mcp.NewToolResultText(p.KeyID + " " + strings.Join(p.Scopes.Strings(), " ")), nil
		})
	return e.protect(server.NewStreamableHTTPServer(s, server.WithHTTPContextFunc(func(ctx context.Context, r *http.Request) context.Context {
		return context.WithValue(ctx, principalKey{}, r.Context().Value(principalKey{}))
	})))
}

func initialize(ctx context.Context, c *mcpclient.Client) error {
	_, err := c.Initialize(ctx, mcp.InitializeRequest{Params: mcp.InitializeParams{ProtocolVersion: mcp.LATEST_PROTOCOL_VERSION,
		ClientInfo: mcp.Implementation{Name: "keygate-oauth-test", Version: "1.0.0"}}})
	return err
}

func whoami(ctx context.Context, c *mcpclient.Client) (string, error) {
	res, err := c.CallTool(ctx, mcp.CallToolRequest{Params: mcp.CallToolParams{Name: "whoami"}})
	if err != nil {
		return "", err
	}
	return res.Content[0].(mcp.TextContent).Text, nil
}

// TestWholeFlowWithMCPGoClient drives the flow with mcp-go's OAuth client,
// an implementation keygate does not control: discovery from the 401's
// resource_metadata, RFC 8414 metadata, dynamic registration, PKCE, the
// consent form answered with alice's token, the code exchange, calls with
// the access token, a refresh, and the replay of the first refresh token,
// which revokes the grant.
func TestWholeFlowWithMCPGoClient(t *testing.T) {
	e := newEnvServing(t, (*env).mcpServer)
	mcpURL := e.base + "/mcp"
	ctx := t.Context()
	store := mcpclient.NewMemoryTokenStore()
	const redirect = "http://127.0.0.1:7777/callback"
	c, err := mcpclient.NewOAuthStreamableHttpClient(mcpURL, mcpclient.OAuthConfig{RedirectURI: redirect,
		Scopes: []string{"content:read"}, TokenStore: store, PKCEEnabled: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	err = initialize(ctx, c)
	if !mcpclient.IsOAuthAuthorizationRequiredError(err) {
		t.Fatalf("initialize without a token: %v, want OAuth authorization required", err)
	}
	h := mcpclient.GetOAuthHandler(err)
	if err := h.RegisterClient(ctx, "mcp-go test client"); err != nil {
		t.Fatal(err)
	}
	verifier, err := mcpclient.GenerateCodeVerifier()
	if err != nil {
		t.Fatal(err)
	}
	state, _ := mcpclient.GenerateState()
	authURL, err := h.GetAuthorizationURL(ctx, state, mcpclient.GenerateCodeChallenge(verifier))
	if err != nil {
		t.Fatal(err)
	}
	final := e.consent(newBrowser(t), authURL, e.alicePAT, "content:read")
	a := authorization{state: state}
	if err := h.ProcessAuthorizationResponse(ctx, code(t, final, a), state, verifier); err != nil {
		t.Fatal(err)
	}

	if err := initialize(ctx, c); err != nil {
		t.Fatalf("initialize with the access token: %v", err)
	}
	who, err := whoami(ctx, c)
	if err != nil || !strings.HasPrefix(who, "gr_") || !strings.HasSuffix(who, " content:read") {
		t.Fatalf("whoami = %q, %v; want a grant with content:read", who, err)
	}
	grantID := strings.Fields(who)[0]

	first, err := store.GetToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.RefreshToken(ctx, first.RefreshToken); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if who2, err := whoami(ctx, c); err != nil || !strings.HasPrefix(who2, grantID) {
		t.Fatalf("whoami after refresh = %q, %v", who2, err)
	}

	if _, err := h.RefreshToken(ctx, first.RefreshToken); err == nil {
		t.Fatal("the replayed refresh token was accepted")
	}
	if _, err := whoami(ctx, c); err == nil {
		t.Fatal("a call after the grant was revoked succeeded")
	}
	if _, err := e.store.LiveGrant(ctx, grantID); err == nil {
		t.Fatal("the grant is still live after the refresh token was replayed")
	}
}
