package tools

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

func TestExpiryWarnings(t *testing.T) {
	e := newEnv(t)
	sc, _ := auth.ParseScopes([]string{"content:read", "credentials:read"})
	issued, err := e.store.CreateKey(t.Context(), provider.NewKey{Name: "short-lived", Scopes: sc, ExpiresAt: e.clock.t.Add(3 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	e.redactor.Add(issued.Secret.Reveal())

	// The admin sees the key flagged in credentials_list.
	list := mustOK(t, e.call("credentials_list", nil))
	if soon := get(list.Structured, "expiring_soon").([]any); !slices.Contains(soon, any(issued.Key.ID)) || !strings.Contains(list.Text, "EXPIRES IN 3 DAYS") {
		t.Errorf("credentials_list does not flag the key: %s", list.Text)
	}

	e.actAs(issued.Secret.Reveal())

	// A legacy client that asked for warnings gets one log notification per
	// session, however many calls it makes.
	s, _, err := NewServer(e.deps, e.options)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewInProcessClientWithOptions(s, client.WithLegacyProtocolOnly()) //nolint:staticcheck // SA1019: logging needs a client of an earlier version
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	var warnings []string
	c.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == string(mcp.MethodNotificationMessage) {
			mu.Lock()
			warnings = append(warnings, mustJSON(n.Params.AdditionalFields))
			mu.Unlock()
		}
	})
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
		t.Fatal(err)
	}
	// Logging is deprecated in 2026-07-28; clients of earlier versions use it.
	if err := c.SetLevel(ctx, mcp.SetLevelRequest{Params: mcp.SetLevelParams{Level: mcp.LoggingLevelWarning}}); err != nil { //nolint:staticcheck // SA1019 on purpose
		t.Fatal(err)
	}
	for range 3 {
		var req mcp.CallToolRequest
		req.Params.Name, req.Params.Arguments = "content_list", map[string]any{"type": "posts"}
		if _, err := c.CallTool(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(warnings)
		mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	if len(warnings) != 1 || !strings.Contains(warnings[0], "credential_expiring") || strings.Contains(warnings[0], issued.Secret.Reveal()) {
		t.Errorf("log notifications %v, want exactly one expiry warning", warnings)
	}
	mu.Unlock()
	if !strings.Contains(e.logs.String(), "credential expires soon") {
		t.Error("the warning was not logged")
	}

	who := mustOK(t, e.call("auth_whoami", nil))
	if who.Structured["expires_soon"] != true || !strings.Contains(who.Text, "WARNING: keygate credential "+issued.Key.ID) {
		t.Errorf("whoami does not warn: %s", who.Text)
	}

	// Outside the window nothing is flagged.
	e.deps.ExpiryWarning = time.Hour
	who = mustOK(t, e.call("auth_whoami", nil))
	if who.Structured["expires_soon"] == true {
		t.Error("flagged outside a 1h window")
	}
}

func TestWhoamiSaysWhyOwnCredentialFailed(t *testing.T) {
	e := newEnv(t)
	sc, _ := auth.ParseScopes([]string{"content:read"})
	issued, err := e.store.CreateKey(t.Context(), provider.NewKey{Name: "brief", Scopes: sc, ExpiresAt: e.clock.t.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	e.actAs(issued.Secret.Reveal())
	e.clock.t = e.clock.t.Add(2 * time.Hour)
	who := mustOK(t, e.call("auth_whoami", nil))
	if who.Structured["authenticated"] != false || !strings.Contains(who.Text, "expired on") || !strings.Contains(who.Text, "keygate token create") {
		t.Errorf("expired credential: %s", who.Text)
	}
	if _, _, _, err := e.store.RevokeKey(t.Context(), issued.Key.ID); err != nil {
		t.Fatal(err)
	}
	who = mustOK(t, e.call("auth_whoami", nil))
	if !strings.Contains(who.Text, "was revoked on") {
		t.Errorf("revoked credential: %s", who.Text)
	}
}

// TestDaysUntilExpiryCountsPartDays: a part of a day counts as a day, so a
// key issued for 365 days says 365 days an hour later, not 364.
func TestDaysUntilExpiryCountsPartDays(t *testing.T) {
	e := newEnv(t) // the admin key expires in exactly 365 days
	tests := []struct {
		after time.Duration
		want  int
	}{
		{0, 365},
		{time.Hour, 365},
		{24*time.Hour - time.Second, 365},
		{24 * time.Hour, 364},
		{364*24*time.Hour + time.Hour, 1},
	}
	start := e.clock.t
	for _, tc := range tests {
		e.clock.t = start.Add(tc.after)
		r := mustOK(t, e.call("auth_whoami", nil))
		if got := get(r.Structured, "days_until_expiry"); got != float64(tc.want) {
			t.Errorf("after %v: days_until_expiry = %v, want %d", tc.after, got, tc.want)
		}
		if want := fmt.Sprintf("(%d days)", tc.want); !strings.Contains(r.Text, want) {
			t.Errorf("after %v: text does not say %s: %s", tc.after, want, r.Text)
		}
	}
}
