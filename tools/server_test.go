package tools

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"testing"
)

// TestServerAdvertisesOnlyServerCapabilities: initialize and server/discover
// list what keygate serves (tools with listChanged, logging) and none of
// the client's capabilities (elicitation, sampling, roots): those are the
// client's to declare, and keygate asks for a confirmation only when the
// client declared elicitation (TestDestructiveToolsAskTheUser).
func TestServerAdvertisesOnlyServerCapabilities(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ name, request string }{
		{"initialize", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},"clientInfo":{"name":"t","version":"1"}}}`},
		{"server/discover", `{"jsonrpc":"2.0","id":2,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{}},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := json.Marshal(e.server.HandleMessage(context.Background(), json.RawMessage(tc.request)))
			if err != nil {
				t.Fatal(err)
			}
			var answer struct {
				Result struct {
					Capabilities map[string]json.RawMessage `json:"capabilities"`
				} `json:"result"`
			}
			if err := json.Unmarshal(raw, &answer); err != nil || answer.Result.Capabilities == nil {
				t.Fatalf("no capabilities in %s (%v)", raw, err)
			}
			got := slices.Sorted(maps.Keys(answer.Result.Capabilities))
			if want := []string{"logging", "tools"}; !slices.Equal(got, want) {
				t.Errorf("capabilities %v, want %v: %s", got, want, raw)
			}
		})
	}
}
