package local

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/provider"
)

func TestRotateKeyIsTagged(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	oldTok, old := mint(t, s, clock, "worker", "content:read", "credentials:write")
	clock.Add(time.Minute)

	issued, err := s.RotateKey(ctx, old.ID, "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	// The old key is untouched apart from its link: the caller retires it
	// once the new secret is stored.
	oldAfter, _ := s.GetKey(ctx, old.ID)
	if oldAfter.RotatedTo != issued.Key.ID || !oldAfter.RevokedAt.IsZero() || !oldAfter.ExpiresAt.Equal(old.ExpiresAt) {
		t.Errorf("old key after tagged rotate: %+v", oldAfter)
	}
	checkWorks(t, s, oldTok, true)
	checkWorks(t, s, issued.Secret.Reveal(), true)
	if !issued.Key.ExpiresAt.Equal(old.ExpiresAt) || strings.Join(issued.Key.Scopes, ",") != strings.Join(old.Scopes, ",") {
		t.Errorf("new key %+v does not keep the old key's scopes and expiry", issued.Key)
	}

	tagged, err := s.KeysByRotation(ctx, "rot-1")
	if err != nil || len(tagged) != 1 || tagged[0].ID != issued.Key.ID {
		t.Fatalf("KeysByRotation(rot-1) = %+v, %v; want the new key", tagged, err)
	}
	if none, err := s.KeysByRotation(ctx, "rot-2"); err != nil || len(none) != 0 {
		t.Errorf("KeysByRotation(rot-2) = %+v, %v; want none", none, err)
	}
	// Keys made without a rotation carry no tag.
	if tagged, _ := s.KeysByRotation(ctx, ""); len(tagged) != 0 {
		t.Errorf("untagged keys listed under the empty tag: %+v", tagged)
	}
}

func TestRotateKeyTagRejects(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	_, old := mint(t, s, clock, "worker", "content:read")
	_, other := mint(t, s, clock, "other", "content:read")
	first, err := s.RotateKey(ctx, old.ID, "rot-1")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		id       string
		tag      string
		field    string
		contains string
	}{
		{"second rotation of the same key", old.ID, "rot-2", "credential", "has already been rotated to key " + first.Key.ID},
		{"same tag twice", other.ID, "rot-1", "rotation_id", "rotation rot-1 has already made a key"},
		{"empty tag", other.ID, "", "rotation_id", "must be 1 to 64"},
		{"tag with a space", other.ID, "rot 1", "rotation_id", "must be 1 to 64"},
		{"tag too long", other.ID, strings.Repeat("r", 65), "rotation_id", "must be 1 to 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.RotateKey(ctx, tc.id, tc.tag)
			wantFieldError(t, err, tc.field, tc.contains)
		})
	}
	if keys, _ := s.ListKeys(ctx); len(keys) != 3 {
		t.Errorf("%d keys after refused rotations, want 3", len(keys))
	}

	// A rolled-back rotation (its key discarded) does not block the next
	// one, and leaves the old key working.
	if err := s.DiscardSuccessor(ctx, first.Key.ID); err != nil {
		t.Fatal(err)
	}
	if k, _ := s.GetKey(ctx, old.ID); !k.RevokedAt.IsZero() || k.RotatedTo != "" {
		t.Errorf("old key after its successor was discarded: %+v", k)
	}
	second, err := s.RotateKey(ctx, old.ID, "rot-2")
	if err != nil {
		t.Fatalf("rotating again after the first successor was revoked: %v", err)
	}
	if tagged, _ := s.KeysByRotation(ctx, "rot-2"); len(tagged) != 1 || tagged[0].ID != second.Key.ID {
		t.Errorf("KeysByRotation(rot-2) = %+v", tagged)
	}
}

// TestDiscardSuccessorReturnsChildren: a rolled-back rotation must not take
// the old key's children down with the discarded successor.
func TestDiscardSuccessorReturnsChildren(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	_, parent := mint(t, s, clock, "parent", "content:read", "credentials:write")
	child, err := s.CreateKey(ctx, provider.NewKey{Name: "child", Scopes: scopes(t, "content:read"), ExpiresAt: clock.Now().Add(day), CreatedBy: parent.ID})
	if err != nil {
		t.Fatal(err)
	}
	next, err := s.RotateKey(ctx, parent.ID, "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := s.GetKey(ctx, child.Key.ID); k.CreatedBy != next.Key.ID {
		t.Fatalf("child moved to %q, want the successor", k.CreatedBy)
	}
	if err := s.DiscardSuccessor(ctx, next.Key.ID); err != nil {
		t.Fatal(err)
	}
	checkWorks(t, s, child.Secret.Reveal(), true)
	checkWorks(t, s, next.Secret.Reveal(), false)
	if k, _ := s.GetKey(ctx, child.Key.ID); k.CreatedBy != parent.ID {
		t.Errorf("child belongs to %q after the rollback, want %s", k.CreatedBy, parent.ID)
	}
}

// TestMigrateAddsRotationTag opens a store written by a keygate that knew
// only migration 1: its keys survive, untagged, and can be rotated tagged.
func TestMigrateAddsRotationTag(t *testing.T) {
	skipOnPostgres(t, "SQLite's migration 2; Postgres has the tag from its first step")
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keygate.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{migrations[0], "PRAGMA user_version = 1",
		`INSERT INTO keys (id, name, secret_hash, masked, scopes, created_at, expires_at) VALUES ('AAAAAAAAAAAA', 'old', zeroblob(32), 'kg_pat_…AAAA', '["admin"]', 0, 9000000000000000000)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v := userVersion(t, s.ro); v != len(migrations) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
	if _, err := s.GetKey(ctx, "AAAAAAAAAAAA"); err != nil {
		t.Fatalf("key written before the migration: %v", err)
	}
	issued, err := s.RotateKey(ctx, "AAAAAAAAAAAA", "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	if tagged, err := s.KeysByRotation(ctx, "rot-1"); err != nil || len(tagged) != 1 || tagged[0].ID != issued.Key.ID {
		t.Errorf("KeysByRotation after migration = %+v, %v", tagged, err)
	}
}
