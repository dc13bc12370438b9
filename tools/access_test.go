package tools

import (
	"slices"
	"testing"

	"github.com/keygate/keygate/auth"
)

func TestDecide(t *testing.T) {
	scopes := func(ss ...string) *auth.Principal {
		parsed, err := auth.ParseScopes(ss)
		if err != nil {
			t.Fatal(err)
		}
		return &auth.Principal{Scopes: parsed}
	}
	tests := []struct {
		name string
		p    *auth.Principal
		need auth.Action
		typ  string
		want Refusal
	}{
		{"a tool that needs nothing, no caller", nil, "", "", Allowed},
		{"no caller", nil, auth.ContentRead, "", NoCredential},
		{"no scope for the action", scopes("credentials:read"), auth.ContentRead, "", MissingScope},
		{"no scope for the action, type given", scopes("credentials:read"), auth.ContentRead, "posts", MissingScope},
		{"granted on some type", scopes("content:read:posts"), auth.ContentRead, "", Allowed},
		{"granted on this type", scopes("content:read:posts"), auth.ContentRead, "posts", Allowed},
		{"not on this type", scopes("content:read:posts"), auth.ContentRead, "pages", MissingTypeScope},
		{"on every type", scopes("content:write"), auth.ContentWrite, "pages", Allowed},
		{"admin", scopes("admin"), auth.ContentDelete, "pages", Allowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.p, tc.need, tc.typ); got != tc.want {
				t.Errorf("Decide = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestScopeCheckForAgreesWithTheFilter: the HTTP transport's answer and the
// tools a caller sees come from the same decision.
func TestScopeCheckForAgreesWithTheFilter(t *testing.T) {
	served := All(&Deps{})
	check := ScopeCheckFor(served)
	for _, ss := range [][]string{{"content:read:posts"}, {"credentials:read", "content:write"}, {"admin"}, nil} {
		var p auth.Principal // nil scopes: a key that holds none
		if ss != nil {
			parsed, err := auth.ParseScopes(ss)
			if err != nil {
				t.Fatal(err)
			}
			p.Scopes = parsed
		}
		visible := VisibleTools(served, &p)
		for _, tool := range served {
			need, allowed, known := check(p, tool.Tool.Name)
			if !known || need != tool.Needs || allowed != slices.Contains(visible, tool.Tool.Name) {
				t.Errorf("%v, %s: need %q allowed %v known %v, visible %v", ss, tool.Tool.Name, need, allowed, known, visible)
			}
		}
		if _, _, known := check(p, "no_such_tool"); known {
			t.Error("an unknown tool is known")
		}
	}
}
