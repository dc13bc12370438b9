package tools

import (
	"context"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/identity"
)

func TestRevokeThroughToolsTakesEffectAtOnce(t *testing.T) {
	e := newEnv(t)
	cache := identity.NewCachingVerifier(e.store, time.Hour, e.clock.Now)
	tok, key := e.mint("victim", "content:read")
	e.deps.Identity = identity.NewIdentity(cache, auth.Credential{Secret: auth.NewSecret(e.admin), Source: auth.SourceEnv})
	e.connect()
	if _, err := cache.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	mustOK(t, e.call("credentials_revoke", map[string]any{"credential": key.ID, "confirm": true}))
	if _, err := cache.Verify(context.Background(), tok); err == nil {
		t.Error("a key revoked through keygate still verified from the cache")
	}
}
