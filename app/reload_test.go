package app_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/app"
	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
	"github.com/keygate/keygate/provider/cosmic/cosmictest"
)

// TestStdioHotReload replaces KEYGATE_TOKEN in the env file under a running
// keygate: it switches without a restart and tells the client its tools
// changed; a token that does not verify is refused and the old one kept.
func TestStdioHotReload(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	s := serveStdio(t, in, nil)
	// A legacy-protocol client: 2026-07-28 clients get list_changed only
	// through subscriptions/listen, and see the new list on their next
	// tools/list anyway.
	c := client.NewClient(transport.NewIO(s.stdout, s.stdin, nil), client.WithLegacyProtocolOnly()) //nolint:staticcheck // SA1019: tools/list_changed needs a legacy session
	t.Cleanup(func() { c.Close() })
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
	// The watcher starts once the handshake is answered; changes from now
	// on are seen.
	<-s.app.Watching()
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
	reader := mintCLI(t, in, "reader", "content:read")
	writeEnv(t, in, [2]string{"KEYGATE_TOKEN", reader})
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
	writeEnv(t, in, [2]string{"KEYGATE_TOKEN", forged})
	eventually(t, "the failed reload to be logged", func() bool { return strings.Contains(s.stderr.String(), "reload failed") })
	if n := count(); n != 6 {
		t.Errorf("after a bad reload the client sees %d tools, want the reader's 6", n)
	}
	for _, secret := range []string{reader, forged} {
		if strings.Contains(s.stderr.String(), secret) {
			t.Error("a token reached the log")
		}
	}
}

// TestReloadRebuildsOnlyWhatChanged: a reload rebuilds a provider only when
// its own variables changed. Changes to other lines of the env file
// (keygate's own deliveries and rotations among them) and to another
// provider's keys leave Agrenting's client, and so its session, alone:
// Agrenting allows 10 logins a minute. A rotation of keygate's own
// Agrenting key, which the client already follows, rebuilds nothing
// either. Over HTTP no watcher runs, so each reload is the test's own.
func TestReloadRebuildsOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	ag := agrentingtest.New()
	agSrv := ag.Start()
	defer agSrv.Close()
	co := cosmictest.New()
	coSrv := co.Start()
	defer coSrv.Close()
	in := newInstance(t)
	writeEnv(t, in, [2]string{"AGRENTING_API_KEY", agrentingtest.DemoAgentKey}, [2]string{"AGRENTING_API_URL", agSrv.URL + "/api/v1"},
		[2]string{"COSMIC_BUCKET_SLUG", co.Bucket()}, [2]string{"COSMIC_READ_KEY", co.ReadKey()}, [2]string{"COSMIC_WRITE_KEY", co.WriteKey()},
		[2]string{"COSMIC_API_URL", co.APIURL()}, [2]string{"COSMIC_DAPI_URL", co.DAPIURL()})
	s := hStartHTTP(t, in, nil)
	sid := s.session(t, "")
	// Listing keys needs the agent's id, which a client learns by logging
	// in once: a rebuilt client logs in again.
	agrentingKeys := map[string]any{"provider": "agrenting"}
	posts := map[string]any{"provider": "cosmic", "type": "posts"}
	s.ok(t, "", sid, "credentials_list", agrentingKeys)
	const loginPath = "/api/v1/auth/authenticate"
	logins := ag.Requests(loginPath)
	if logins == 0 {
		t.Fatal("keygate reached Agrenting without a session")
	}
	reload := func(what string, wantChange bool) {
		t.Helper()
		err := s.app.Reload(context.Background())
		if changed := err == nil; changed != wantChange || err != nil && !errors.Is(err, app.ErrNothingChanged) {
			t.Fatalf("reload after %s: %v (want a change: %v)", what, err, wantChange)
		}
		s.ok(t, "", sid, "credentials_list", agrentingKeys)
		if n := ag.Requests(loginPath); n != logins {
			t.Fatalf("after %s Agrenting saw %d more logins: its client was rebuilt", what, n-logins)
		}
	}

	writeEnv(t, in, [2]string{"UNRELATED", "1"})
	reload("a change to another line", false)
	s.ok(t, "", sid, "credentials_create", map[string]any{"name": "ci", "scopes": []any{"content:read"}, "expires_in_days": 1, "deliver": "env:CI_TOKEN"})
	reload("a delivery to the env file", false)
	s.ok(t, "", sid, "credentials_rotate", map[string]any{"credential": "current", "confirm": true})
	s.token = in.token(t)
	s.secrets = append(s.secrets, s.token)
	sid = s.session(t, "") // sessions stay with the key that opened them
	reload("a rotation of KEYGATE_TOKEN", false)

	// Cosmic's keys rotated by hand: Cosmic is rebuilt, Agrenting is not.
	newRead, newWrite := "rk4RotatedReadKeyForTheFakeCosmicServer000000000000", "wk4RotatedWriteKeyForTheFakeCosmicServer00000000000"
	co.SetKeys(newRead, newWrite)
	if r := s.call(t, "", sid, "content_list", posts); hGet(r.result(), "isError") != true {
		t.Fatal("Cosmic accepted keys it had rotated away")
	}
	writeEnv(t, in, [2]string{"COSMIC_READ_KEY", newRead}, [2]string{"COSMIC_WRITE_KEY", newWrite})
	reload("new Cosmic keys", true)
	s.ok(t, "", sid, "content_list", posts)

	// keygate rotates its own Agrenting key: the env file changes, the
	// client already uses the new key.
	s.ok(t, "", sid, "credentials_rotate", map[string]any{"provider": "agrenting", "credential": "current", "confirm": true})
	logins = ag.Requests(loginPath)
	reload("a rotation of keygate's own Agrenting key", false)

	if !strings.Contains(s.stderr.String(), "reloaded provider credentials") {
		t.Errorf("the Cosmic reload was not logged:\n%s", s.stderr.String())
	}
	for _, k := range []string{newRead, newWrite, agrentingtest.DemoAgentKey} {
		if strings.Contains(s.stderr.String(), k) {
			t.Error("a key reached the log")
		}
	}
}

// TestReloadFailureKeepsTheRunningProviders: a provider variable that does
// not load fails the reload, naming the variable and not the value, and
// every provider keeps running as it was.
func TestReloadFailureKeepsTheRunningProviders(t *testing.T) {
	t.Parallel()
	co := cosmictest.New()
	coSrv := co.Start()
	defer coSrv.Close()
	in := newInstance(t)
	writeEnv(t, in, [2]string{"COSMIC_BUCKET_SLUG", co.Bucket()}, [2]string{"COSMIC_READ_KEY", co.ReadKey()},
		[2]string{"COSMIC_API_URL", co.APIURL()}, [2]string{"COSMIC_DAPI_URL", co.DAPIURL()})
	s := hStartHTTP(t, in, nil)
	sid := s.session(t, "")
	posts := map[string]any{"provider": "cosmic", "type": "posts"}
	s.ok(t, "", sid, "content_list", posts)
	const bad = "ghp_0123456789abcdef0123456789abcdef0123"
	writeEnv(t, in, [2]string{"COSMIC_PAT", bad})
	err := s.app.Reload(context.Background())
	if err == nil || errors.Is(err, app.ErrNothingChanged) || !strings.Contains(err.Error(), "COSMIC_PAT") || strings.Contains(err.Error(), bad) {
		t.Fatalf("reload with a GitHub token as COSMIC_PAT: %v", err)
	}
	s.ok(t, "", sid, "content_list", posts)
}

// TestBuildNamesABadProviderVariable: a provider configured half-way stops
// keygate at start, naming what is missing.
func TestBuildNamesABadProviderVariable(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	cfg := serveConfig(t, in, []string{"COCKPIT_API_KEY=API-0123456789abcdef0123456789abcdef01234567"})
	_, err := app.Build(context.Background(), cfg, app.Options{})
	if err == nil || !strings.Contains(err.Error(), "COCKPIT_URL is not set") || strings.Contains(err.Error(), "API-0123") {
		t.Errorf("build: %v", err)
	}
}
