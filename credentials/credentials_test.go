package credentials_test

import (
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/credentials"
)

// TestUnknownAndForeignIDsLookAlike: a non-admin caller that names a
// colleague's key and one that names no key at all get the same refusal,
// so the answers do not tell which ids exist.
func TestUnknownAndForeignIDsLookAlike(t *testing.T) {
	w := newWorld(t, 1)
	ctx := t.Context()
	mint := func(scopes ...string) *auth.Principal {
		t.Helper()
		sc, err := auth.ParseScopes(scopes)
		if err != nil {
			t.Fatal(err)
		}
		is, err := w.svc.Create(ctx, credentials.OperatorCaller, w.ring, credentials.CreateRequest{Name: "k", Scopes: sc,
			ExpiresAt: w.m.now.Add(24 * time.Hour), Deliver: "reveal"})
		if err != nil {
			t.Fatal(err)
		}
		p, err := w.store.Verify(ctx, is.Secret.Reveal())
		if err != nil {
			t.Fatal(err)
		}
		return &p
	}
	me := mint("credentials:read", "credentials:write", "content:read")
	colleague := mint("content:read")
	const missing = "zzzzzzzzzzzz"
	answers := func(id string) []string {
		var out []string
		_, err := w.svc.PlanRevoke(ctx, caller(me), w.ring, id)
		out = append(out, errText(err, id))
		_, err = w.svc.PlanRotate(ctx, caller(me), w.ring, credentials.RotateRequest{Credential: id, Deliver: "reveal"})
		out = append(out, errText(err, id))
		return out
	}
	foreign, unknown := answers(colleague.KeyID), answers(missing)
	for i := range foreign {
		if foreign[i] != unknown[i] {
			t.Errorf("a colleague's key and a missing one answer differently:\n%s\n%s", foreign[i], unknown[i])
		}
		if foreign[i] == "<nil>" {
			t.Errorf("operation %d on a colleague's key was allowed", i)
		}
	}
}

// errText is err's text with id replaced, so answers about two ids compare.
func errText(err error, id string) string {
	if err == nil {
		return "<nil>"
	}
	return strings.ReplaceAll(err.Error(), id, "<id>")
}
