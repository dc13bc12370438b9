package auth

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		in      string
		want    Scope
		wantErr bool
	}{
		{"content:read", Scope{Action: ContentRead}, false},
		{"content:write:posts", Scope{Action: ContentWrite, Type: "posts"}, false},
		{"admin", Scope{Action: Admin}, false},
		{"credentials:read", Scope{Action: CredentialsRead}, false},
		{"admin:posts", Scope{}, true},
		{"credentials:write:posts", Scope{}, true},
		{"content:read:../etc", Scope{}, true},
		{"content:read:", Scope{}, true},
		{"content:fly", Scope{}, true},
		{"", Scope{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseScope(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParseScope(%q) = %v, %v", tc.in, got, err)
			}
			if err == nil && got.String() != tc.in {
				t.Errorf("String() = %q", got.String())
			}
		})
	}
}

func TestParseScopesDedupsAndRequiresOne(t *testing.T) {
	got, err := ParseScopes([]string{"content:read", " content:read ", "admin"})
	if err != nil || !slices.Equal(got.Strings(), []string{"content:read", "admin"}) {
		t.Errorf("got %v, %v", got, err)
	}
	if _, err := ParseScopes(nil); err == nil {
		t.Error("no scopes accepted")
	}
}

func scopes(t *testing.T, s ...string) Scopes {
	t.Helper()
	sc, err := ParseScopes(s)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestAllowsAndCovers(t *testing.T) {
	tests := []struct {
		name   string
		have   []string
		action Action
		typ    string
		allows bool
		some   bool
	}{
		{"admin allows all", []string{"admin"}, ContentDelete, "pages", true, true},
		{"whole action", []string{"content:read"}, ContentRead, "pages", true, true},
		{"narrowed match", []string{"content:read:posts"}, ContentRead, "posts", true, true},
		{"narrowed other type", []string{"content:read:posts"}, ContentRead, "pages", false, true},
		{"read is not write", []string{"content:read"}, ContentWrite, "posts", false, false},
		{"credentials", []string{"credentials:read"}, CredentialsWrite, "", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			have := scopes(t, tc.have...)
			if got := have.Allows(tc.action, tc.typ); got != tc.allows {
				t.Errorf("Allows = %v", got)
			}
			if got := have.AllowsSome(tc.action); got != tc.some {
				t.Errorf("AllowsSome = %v", got)
			}
		})
	}
	if m := scopes(t, "content:read:posts").Missing(scopes(t, "content:read")); len(m) != 1 {
		t.Error("a narrowed scope covers the whole action")
	}
	if m := scopes(t, "content:read").Missing(scopes(t, "content:read:posts")); len(m) != 0 {
		t.Error("a whole action does not cover its narrowed form")
	}
}

func TestCheckGrant(t *testing.T) {
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	actor := Principal{Scopes: scopes(t, "content:read", "credentials:write"), ExpiresAt: now.Add(30 * 24 * time.Hour)}
	tests := []struct {
		name      string
		scopes    []string
		expires   time.Time
		wantField string
	}{
		{"subset within life", []string{"content:read:posts"}, now.Add(24 * time.Hour), ""},
		{"broader scope", []string{"content:write"}, now.Add(24 * time.Hour), "scopes"},
		{"admin", []string{"admin"}, now.Add(24 * time.Hour), "scopes"},
		{"outlives actor", []string{"content:read"}, now.Add(31 * 24 * time.Hour), "expires_in_days"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckGrant(actor, scopes(t, tc.scopes...), tc.expires)
			var ge *GrantError
			switch {
			case tc.wantField == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.wantField != "" && (!errors.As(err, &ge) || ge.Field != tc.wantField):
				t.Errorf("got %v, want a GrantError on %s", err, tc.wantField)
			}
		})
	}
}

// The priority rule for a provider's shared rate limit, for a provider
// whose only type is "memories" (Cencori).
func TestHasScopeFor(t *testing.T) {
	memories := func(typ string) bool { return typ == "memories" }
	tests := []struct {
		scopes []string
		want   bool
	}{
		{[]string{"admin"}, true},
		{[]string{"content:read"}, true},
		{[]string{"content:write"}, true},
		{[]string{"content:delete"}, true},
		{[]string{"content:read:memories"}, true},
		{[]string{"content:delete:memories"}, true},
		{[]string{"content:read:posts"}, false},
		{[]string{"content:read:posts", "content:write:pages"}, false},
		{[]string{"content:read:posts", "content:write:memories"}, true},
		{[]string{"credentials:read"}, false},
		{[]string{"credentials:write"}, false},
		{[]string{"credentials:read", "credentials:write"}, false},
		{nil, false},
	}
	for _, tc := range tests {
		var ss Scopes
		if tc.scopes != nil {
			ss = scopes(t, tc.scopes...)
		}
		if got := ss.HasScopeFor(memories); got != tc.want {
			t.Errorf("%v.HasScopeFor(memories) = %v, want %v", tc.scopes, got, tc.want)
		}
	}
	// A provider whose types are not known yet counts only unnarrowed
	// content scopes and admin.
	if scopes(t, "content:read:posts").HasScopeFor(nil) || !scopes(t, "content:read").HasScopeFor(nil) {
		t.Error("nil type list")
	}
}

func TestCallerScopes(t *testing.T) {
	ctx := t.Context()
	if _, ok := CallerScopes(ctx); ok {
		t.Error("a context without a caller reports one")
	}
	ss, ok := CallerScopes(WithCallerScopes(ctx, nil))
	if !ok || ss != nil {
		t.Errorf("no credential: %v, %v", ss, ok)
	}
	want := Scopes{{Action: ContentRead, Type: "posts"}}
	if ss, ok := CallerScopes(WithCallerScopes(ctx, want)); !ok || !slices.Equal(ss, want) {
		t.Errorf("got %v, %v", ss, ok)
	}
}
