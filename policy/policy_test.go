package policy

import (
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
)

func scopes(t *testing.T, s ...string) auth.Scopes {
	t.Helper()
	sc, err := auth.ParseScopes(s)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestDecide(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	year, month := now.Add(365*24*time.Hour), now.Add(30*24*time.Hour)
	actor := func(id string, exp time.Time, s ...string) Actor {
		return Actor{Principal: auth.Principal{KeyID: id, Scopes: scopes(t, s...), ExpiresAt: exp}}
	}
	admin := actor("ADMIN0000000", year, "admin")
	writer := actor("WRITER000000", month, "credentials:write", "content:read")
	reader := actor("READER000000", month, "credentials:read")
	superseded := writer
	superseded.SupersededBy = "WRITER000001"
	full := writer
	full.LiveDescendants = MaxLiveDescendants

	own := Target{Provider: "local", ID: "WRITER000000", Scopes: writer.Principal.Scopes, ExpiresAt: month}
	child := Target{Provider: "local", ID: "CHILD0000000", Scopes: scopes(t, "content:read"), ExpiresAt: month, Ancestors: []string{"WRITER000000", "ADMIN0000000"}}
	grandchild := Target{Provider: "local", ID: "GRAND0000000", Scopes: scopes(t, "content:read"), ExpiresAt: month, Ancestors: []string{"CHILD0000000", "WRITER000000"}}
	predecessor := Target{Provider: "local", ID: "OLDWRITER000", Scopes: writer.Principal.Scopes, ExpiresAt: month, Successors: []string{"WRITER000000"}}
	colleague := Target{Provider: "local", ID: "COLLEAGUE000", Scopes: scopes(t, "content:read"), ExpiresAt: month, Ancestors: []string{"ADMIN0000000"}}
	broader := Target{Provider: "local", ID: "BROAD0000000", Scopes: scopes(t, "admin"), ExpiresAt: month, Ancestors: []string{"WRITER000000"}}
	longer := Target{Provider: "local", ID: "LONG00000000", Scopes: scopes(t, "content:read"), ExpiresAt: year, Ancestors: []string{"WRITER000000"}}
	remote := Target{Provider: "agrenting", Remote: true, ID: "cred_1"}
	newNarrow := Target{Provider: "local", Scopes: scopes(t, "content:read"), ExpiresAt: month.Add(-time.Hour)}
	newWide := Target{Provider: "local", Scopes: scopes(t, "content:write"), ExpiresAt: month.Add(-time.Hour)}
	newLate := Target{Provider: "local", Scopes: scopes(t, "content:read"), ExpiresAt: month.Add(time.Hour)}
	newRemote := Target{Provider: "agrenting", Remote: true}

	// An OAuth grant the admin key approved for content:read and
	// credentials:write, for a week: it acts as the admin key, narrowed.
	week := now.Add(7 * 24 * time.Hour)
	viaGrant := actor("ADMIN0000000", week, "content:read", "credentials:write")
	viaGrant.Grant = "gr_admins"
	newInWeek := Target{Provider: "local", Scopes: scopes(t, "content:read"), ExpiresAt: week.Add(-time.Hour)}
	grantOf := func(id string, ancestors []string, successors []string, s ...string) Target {
		return Target{Provider: "local", ID: id, Grant: true, Scopes: scopes(t, s...), ExpiresAt: month, Ancestors: ancestors, Successors: successors}
	}
	writersGrant := grantOf("gr_writers", []string{"WRITER000000", "ADMIN0000000"}, nil, "content:read")
	childsGrant := grantOf("gr_childs", []string{"CHILD0000000", "WRITER000000", "ADMIN0000000"}, nil, "content:read")
	predecessorsGrant := grantOf("gr_predecessors", []string{"OLDWRITER000"}, []string{"WRITER000000"}, "content:read")
	colleaguesGrant := grantOf("gr_colleagues", []string{"COLLEAGUE000", "ADMIN0000000"}, nil, "content:read")
	broadGrant := grantOf("gr_broad", []string{"WRITER000000"}, nil, "admin")
	// The subject of an external issuer's token, mapped to credentials
	// scopes; and one mapped to admin, which acts as the operator.
	external := Actor{External: true, Principal: auth.Principal{KeyID: "ext:alice", Scopes: scopes(t, "credentials:read", "credentials:write", "content:read")}}
	externalAdmin := Actor{External: true, Operator: true}
	writerReader := actor("WRITER000000", month, "credentials:read")

	for _, tc := range []struct {
		name  string
		a     Actor
		act   Action
		t     Target
		allow bool
		field string
	}{
		{"writer rotates itself", writer, Rotate, own, true, ""},
		{"writer rotates its child", writer, Rotate, child, true, ""},
		{"writer revokes its grandchild", writer, Revoke, grandchild, true, ""},
		{"writer revokes its own predecessor", writer, Revoke, predecessor, true, ""},
		{"writer may not rotate a colleague's key", writer, Rotate, colleague, false, "credential"},
		{"writer may not revoke a colleague's key", writer, Revoke, colleague, false, "credential"},
		{"writer may not rotate a broader child", writer, Rotate, broader, false, "credential"},
		{"writer may not rotate a key that outlives it", writer, Rotate, longer, false, "credential"},
		{"writer may revoke a key that outlives it", writer, Revoke, longer, true, ""},
		{"admin rotates a colleague's key", admin, Rotate, colleague, true, ""},
		{"admin revokes anything", admin, Revoke, broader, true, ""},
		{"reader may not revoke itself", reader, Revoke, Target{ID: "READER000000", Scopes: reader.Principal.Scopes}, false, ""},
		{"superseded key may not rotate", superseded, Rotate, own, false, ""},
		{"superseded key may not create", superseded, Create, newNarrow, false, ""},
		{"superseded key may not revoke itself (it would end its successor)", superseded, Revoke, own, false, ""},
		{"superseded key may not revoke its child", superseded, Revoke, child, false, ""},
		{"create within scopes and lifetime", writer, Create, newNarrow, true, ""},
		{"create wider scopes", writer, Create, newWide, false, "scopes"},
		{"create outliving the creator", writer, Create, newLate, false, "expires_in_days"},
		{"create past the children bound", full, Create, newNarrow, false, ""},
		{"reader may not create", reader, Create, newNarrow, false, ""},
		{"remote create needs admin", writer, Create, newRemote, false, "scopes"},
		{"admin creates remote", admin, Create, newRemote, true, ""},
		{"remote rotate needs admin", writer, Rotate, remote, false, "credential"},
		{"remote revoke needs admin", writer, Revoke, remote, false, "credential"},
		{"admin rotates remote", admin, Rotate, remote, true, ""},
		{"reader lists its own key", reader, List, Target{ID: "READER000000"}, true, ""},
		{"reader does not list a colleague's key", reader, List, colleague, false, "credential"},
		{"writer without credentials:read lists nothing", actor("W2", month, "credentials:write"), List, own, false, ""},
		{"admin lists every key", admin, List, colleague, true, ""},
		{"reader lists remote keys", reader, List, remote, true, ""},
		{"operator rotates anything", Operator, Rotate, colleague, true, ""},
		{"operator creates anything", Operator, Create, newWide, true, ""},

		{"writer lists the grants its key approved", writerReader, List, writersGrant, true, ""},
		{"writer lists the grants its child approved", writerReader, List, childsGrant, true, ""},
		{"writer does not list a colleague's grant", writerReader, List, colleaguesGrant, false, "credential"},
		{"admin lists every grant", admin, List, colleaguesGrant, true, ""},
		{"writer revokes a grant its key approved", writer, Revoke, writersGrant, true, ""},
		{"writer revokes a grant its child approved", writer, Revoke, childsGrant, true, ""},
		{"writer revokes a grant its earlier version approved", writer, Revoke, predecessorsGrant, true, ""},
		{"writer may not revoke a colleague's grant", writer, Revoke, colleaguesGrant, false, "credential"},
		{"writer may not revoke a broader grant", writer, Revoke, broadGrant, false, "credential"},
		{"reader may not revoke a grant", reader, Revoke, writersGrant, false, ""},
		{"nobody rotates a grant", admin, Rotate, writersGrant, false, "credential"},
		{"not even the operator rotates a grant", Operator, Rotate, writersGrant, false, "credential"},
		{"a grant creates within its own scopes", viaGrant, Create, newInWeek, true, ""},
		{"a grant may not create beyond its scopes though its key could", viaGrant, Create, newWide, false, "scopes"},
		{"a grant may not create a key that outlives it", viaGrant, Create, newNarrow, false, "expires_in_days"},
		{"a grant may not revoke a key broader than it though its key could", viaGrant, Revoke, broader, false, "credential"},
		{"a grant may not create remote keys though its key could", viaGrant, Create, newRemote, false, "scopes"},
		{"external subject lists nothing", external, List, own, false, ""},
		{"external subject creates nothing", external, Create, newNarrow, false, ""},
		{"external subject rotates nothing", external, Rotate, own, false, ""},
		{"external subject revokes nothing", external, Revoke, colleague, false, ""},
		{"external subject revokes no grant", external, Revoke, colleaguesGrant, false, ""},
		{"external admin acts as the operator", externalAdmin, Create, newWide, true, ""},
		{"external admin revokes", externalAdmin, Revoke, colleaguesGrant, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.a, tc.act, tc.t)
			if d.Allowed != tc.allow {
				t.Fatalf("Decide = %+v, want allowed=%v", d, tc.allow)
			}
			if !d.Allowed && (d.Reason == "" || d.Fix == "") {
				t.Errorf("refusal without reason or fix: %+v", d)
			}
			if !d.Allowed && d.Field != tc.field {
				t.Errorf("field = %q, want %q", d.Field, tc.field)
			}
			if (d.Err() == nil) != d.Allowed {
				t.Errorf("Err() = %v for %+v", d.Err(), d)
			}
		})
	}
}
