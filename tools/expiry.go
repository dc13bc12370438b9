package tools

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/auth"
)

// DefaultExpiryWarning is how long before a credential expires keygate
// starts warning about it.
const DefaultExpiryWarning = 7 * 24 * time.Hour

func (d *Deps) expiryWindow() time.Duration {
	if d.ExpiryWarning > 0 {
		return d.ExpiryWarning
	}
	return DefaultExpiryWarning
}

// expiresSoon reports whether a credential expiring at t is inside the
// warning window (and not yet expired).
func (d *Deps) expiresSoon(t time.Time) bool {
	if t.IsZero() {
		return false
	}
	left := t.Sub(d.now())
	return left > 0 && left <= d.expiryWindow()
}

// daysLeft counts whole days until t, rounding down.
func (d *Deps) daysLeft(t time.Time) int {
	return int(math.Floor(t.Sub(d.now()).Hours() / 24))
}

// expiryWarning is the sentence keygate uses wherever it warns.
func (d *Deps) expiryWarning(p *auth.Principal) string {
	return fmt.Sprintf("keygate credential %s (%s) expires %s, in %d days: rotate it with credentials_rotate (credential \"current\") or create a new one",
		p.KeyID, p.Masked, p.ExpiresAt.UTC().Format(time.RFC3339), d.daysLeft(p.ExpiresAt))
}

// warnExpiry tells the client, once per session and key, that the acting
// credential expires soon, as an MCP log notification at warning level
// (the client's chosen log level decides whether it is shown). The same
// warning is logged to stderr once per key.
func (d *Deps) warnExpiry(ctx context.Context, p *auth.Principal) {
	if !d.expiresSoon(p.ExpiresAt) {
		return
	}
	if _, logged := d.warned.LoadOrStore("log:"+p.KeyID, true); !logged {
		d.Logger.Warn("credential expires soon", "key_id", p.KeyID, "expires_at", p.ExpiresAt.UTC(), "days_left", d.daysLeft(p.ExpiresAt))
	}
	sid := d.Identity.SessionID(ctx)
	if sid == "" {
		sid = "request"
	}
	if _, sent := d.warned.LoadOrStore(sid+":"+p.KeyID, true); sent {
		return
	}
	srv := server.ServerFromContext(ctx)
	if srv == nil {
		return
	}
	n := mcp.NewLoggingMessageNotification(mcp.LoggingLevelWarning, "keygate", map[string]any{
		"warning": "credential_expiring", "key_id": p.KeyID, "expires_at": p.ExpiresAt.UTC(), "message": d.expiryWarning(p)})
	if err := srv.SendLogMessageToClient(ctx, n); err != nil {
		d.Logger.Debug("expiry warning not sent to the client", "err", err)
	}
}
