package main

import (
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
)

// TestStdioHotReload replaces KEYGATE_TOKEN in the env file under a running
// keygate: it switches without a restart and tells the client its tools
// changed; a token that does not verify is refused and the old one kept.
func TestStdioHotReload(t *testing.T) {
	in := newInstance(t)
	var stderr lockedBuffer
	tr := transport.NewStdioWithOptions(binary, cleanEnv(), in.args(), transport.WithCommandStderrWriter(&stderr))
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A legacy-protocol client: 2026-07-28 clients get list_changed only
	// through subscriptions/listen, and see the new list on their next
	// tools/list anyway.
	c := client.NewClient(tr, client.WithLegacyProtocolOnly())
	defer c.Close()
	var mu sync.Mutex
	changed := 0
	c.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == "notifications/tools/list_changed" {
			mu.Lock()
			changed++
			mu.Unlock()
		}
	})
	// Start wires the notification handler into the running transport.
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Initialize(context.Background(), mcp.InitializeRequest{}); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		t.Helper()
		l, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Tools)
	}
	if n := count(); n != 13 {
		t.Fatalf("admin sees %d tools", n)
	}
	out, err := exec.Command(binary, "token", "create", "--store", in.store, "--env-file", in.envFile,
		"--name", "reader", "--scopes", "content:read").Output()
	if err != nil {
		t.Fatal(err)
	}
	reader := strings.TrimSpace(string(out))
	if err := auth.SetEnvVar(in.envFile, "KEYGATE_TOKEN", reader, auth.EnvWriteOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "tools/list_changed after the token changed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return changed == 1
	})
	if n := count(); n != 6 {
		t.Errorf("after switching to a reader token the client sees %d tools, want 6", n)
	}

	// A token that does not verify is refused and the reader token stays.
	forged := reader[:20] + "AAAA" + reader[24:]
	if err := auth.SetEnvVar(in.envFile, "KEYGATE_TOKEN", forged, auth.EnvWriteOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the failed reload to be logged", func() bool { return strings.Contains(stderr.String(), "reload failed") })
	if n := count(); n != 6 {
		t.Errorf("after a bad reload the client sees %d tools, want the reader's 6", n)
	}
	for _, secret := range []string{reader, forged} {
		if strings.Contains(stderr.String(), secret) {
			t.Error("a token reached stderr")
		}
	}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
