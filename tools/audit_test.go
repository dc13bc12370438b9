package tools

import (
	"errors"
	"strings"
	"testing"

	"github.com/keygate/keygate/audit"
)

func journal(t *testing.T, e *env) []audit.Record {
	t.Helper()
	if err := e.journal.Flush(); err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	if err := audit.Read(e.auditPath, audit.Filter{}, func(r audit.Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAuditJournalRecordsWritesCredentialsAndFailures(t *testing.T) {
	e := newEnv(t)
	mustOK(t, e.call("content_list", map[string]any{"type": "posts"})) // reads are not journaled
	created := mustOK(t, e.call("content_create", map[string]any{"type": "posts", "title": "Audited", "fields": map[string]any{}}))
	id := get(created.Structured, "object", "id").(string)
	mustFail(t, e.call("content_create", map[string]any{"type": "posts", "title": "Audited", "fields": map[string]any{}}), "slug", "already used")
	issued := mustOK(t, e.call("credentials_create", map[string]any{"name": "ci", "scopes": []any{"content:read"}, "expires_in_days": 1, "deliver": "reveal"}))
	tok := issued.Structured["token"].(string)
	mustOK(t, e.call("content_delete", map[string]any{"type": "posts", "id": id, "dry_run": true}))
	e.actAs(spoil(tok))
	mustOK(t, e.call("auth_whoami", nil)) // answers "not authenticated", and is journaled as a failure

	got := journal(t, e)
	want := []struct{ tool, outcome, target string }{
		{"content_create", "ok", "posts/Audited"},
		{"content_create", "refused", "posts/Audited"},
		{"credentials_create", "attempt", "ci"},
		{"credentials_create", "ok", "ci"},
		{"content_delete", "ok (dry run)", "posts/" + id},
		{"auth_whoami", "denied", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("journal has %d records, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Tool != w.tool || g.Outcome != w.outcome || g.Target != w.target {
			t.Errorf("record %d = %s %s %s, want %s %s %s", i, g.Tool, g.Outcome, g.Target, w.tool, w.outcome, w.target)
		}
		if i < 5 && g.Principal != e.adminID {
			t.Errorf("record %d principal %q, want the admin key id", i, g.Principal)
		}
		if g.Provider != "local" || g.Time.IsZero() {
			t.Errorf("record %d lacks provider or time: %+v", i, g)
		}
	}
	raw := readFile(t, e.auditPath)
	for _, secret := range []string{e.admin, tok} {
		if strings.Contains(raw, secret) || strings.Contains(raw, secret[len(secret)-10:]) {
			t.Error("a secret reached the audit journal")
		}
	}
}

// failingJournal is an audit journal on a full disk.
type failingJournal struct{}

func (failingJournal) Write(audit.Record) error { return errors.New("no space left on device") }

func (failingJournal) WriteRefusal(audit.Record) error { return errors.New("no space left on device") }

func TestCredentialOperationsFailClosedWithoutJournal(t *testing.T) {
	e := newEnv(t)
	_, key := e.mint("victim", "content:read")
	e.deps.Audit = failingJournal{}
	before, _ := e.store.ListKeys(t.Context())
	for _, tc := range []struct {
		tool string
		args map[string]any
	}{
		{"credentials_create", map[string]any{"name": "x", "scopes": []any{"content:read"}, "expires_in_days": 1, "deliver": "reveal"}},
		{"credentials_rotate", map[string]any{"credential": key.ID, "confirm": true, "deliver": "reveal"}},
		{"credentials_revoke", map[string]any{"credential": key.ID, "confirm": true}},
	} {
		r := e.call(tc.tool, tc.args)
		if !r.IsError || !strings.Contains(r.Text, "audit journal") {
			t.Errorf("%s went ahead without a journal: %s", tc.tool, r.Text)
		}
	}
	after, _ := e.store.ListKeys(t.Context())
	if len(after) != len(before) {
		t.Errorf("keys changed: %d -> %d", len(before), len(after))
	}
	k, _ := e.store.GetKey(t.Context(), key.ID)
	if !k.RevokedAt.IsZero() || k.RotatedTo != "" {
		t.Error("the key was revoked or rotated without a journal")
	}
	// Reads and dry runs still work.
	mustOK(t, e.call("credentials_list", nil))
	mustOK(t, e.call("credentials_revoke", map[string]any{"credential": key.ID, "dry_run": true}))
}

// spoil changes a token's last character, so its checksum fails.
func spoil(tok string) string {
	last := "x"
	if strings.HasSuffix(tok, "x") {
		last = "y"
	}
	return tok[:len(tok)-1] + last
}
