package tools

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/auth"
)

// DefaultExpiryWarning is how long before a credential expires keygate
// starts warning about it.
const DefaultExpiryWarning = 7 * 24 * time.Hour

// expiry says when a credential expires soon, and how to say so, by the
// Deps' clock and warning window.
type expiry struct{ d *Deps }

func (x expiry) window() time.Duration {
	if x.d.ExpiryWarning > 0 {
		return x.d.ExpiryWarning
	}
	return DefaultExpiryWarning
}

// soon reports whether a credential expiring at t is inside the warning
// window (and not yet expired).
func (x expiry) soon(t time.Time) bool {
	if t.IsZero() {
		return false
	}
	left := t.Sub(x.d.now())
	return left > 0 && left <= x.window()
}

// daysLeft counts the days until t, a part of a day counting as a day: a
// key issued for 365 days has 365 left until its last day begins.
func (x expiry) daysLeft(t time.Time) int {
	return int(math.Ceil(t.Sub(x.d.now()).Hours() / 24))
}

// warning is the sentence keygate uses wherever it warns.
func (x expiry) warning(p *auth.Principal) string {
	switch {
	case p.IsGrant():
		// A grant cannot be rotated: the person approves the client again.
		return fmt.Sprintf("OAuth grant %s expires %s, in %d days: the client must be approved again then, on keygate's consent page",
			p.KeyID, p.ExpiresAt.UTC().Format(time.RFC3339), x.daysLeft(p.ExpiresAt))
	case p.IsExternal():
		return fmt.Sprintf("access token %s expires %s: the client gets a new one from its issuer", p.Masked, p.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("keygate credential %s (%s) expires %s, in %d days: rotate it with credentials_rotate (credential \"current\") or create a new one",
		p.KeyID, p.Masked, p.ExpiresAt.UTC().Format(time.RFC3339), x.daysLeft(p.ExpiresAt))
}

// expiryWarnings tells the client, once per session and key, that the
// acting credential expires soon, as an MCP log notification at warning
// level (the client's chosen log level decides whether it is shown). The
// same warning is logged to stderr once per key.
type expiryWarnings struct {
	expiry
	given sync.Map // "log:key" and "session:key" -> true
}

func (w *expiryWarnings) warn(ctx context.Context, p *auth.Principal) {
	// An external issuer's access tokens live minutes by design, and each
	// subject would leave an entry here: nothing to warn about.
	if p.IsExternal() || !w.soon(p.ExpiresAt) {
		return
	}
	if _, logged := w.given.LoadOrStore("log:"+p.KeyID, true); !logged {
		w.d.Logger.Warn("credential expires soon", "key_id", p.KeyID, "expires_at", p.ExpiresAt.UTC(), "days_left", w.daysLeft(p.ExpiresAt))
	}
	sid := w.d.Identity.SessionID(ctx)
	if sid == "" {
		sid = "request"
	}
	if _, sent := w.given.LoadOrStore(sid+":"+p.KeyID, true); sent {
		return
	}
	srv := server.ServerFromContext(ctx)
	if srv == nil {
		return
	}
	n := mcp.NewLoggingMessageNotification(mcp.LoggingLevelWarning, "keygate", map[string]any{
		"warning": "credential_expiring", "key_id": p.KeyID, "expires_at": p.ExpiresAt.UTC(), "message": w.warning(p)})
	if err := srv.SendLogMessageToClient(ctx, n); err != nil {
		w.d.Logger.Debug("expiry warning not sent to the client", "err", err)
	}
}
