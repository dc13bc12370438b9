package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// TestOpenReadOnlyWritesNothing: a store opened read-only answers reads and
// verifies tokens, but its file does not change: not the last use Verify
// records, not a write asked for outright.
func TestOpenReadOnlyWritesNothing(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keygate.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	issued, err := s.CreateKey(ctx, provider.NewKey{Name: "k", Scopes: auth.Scopes{{Action: auth.Admin}}, ExpiresAt: s.now().Add(day)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	ro, err := OpenReadOnly(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ro.Verify(ctx, issued.Secret.Reveal())
	if err != nil || p.KeyID != issued.Key.ID {
		t.Fatalf("Verify: %+v %v", p, err)
	}
	keys, err := ro.ListKeys(ctx)
	if err != nil || len(keys) != 1 || !keys[0].LastUsedAt.IsZero() {
		t.Fatalf("ListKeys after Verify: %+v %v", keys, err)
	}
	if _, err := ro.CreateKey(ctx, provider.NewKey{Name: "x", Scopes: auth.Scopes{{Action: auth.Admin}}, ExpiresAt: s.now().Add(day)}); err == nil {
		t.Error("a read-only store created a key")
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the store file changed while open read-only")
	}
}

func TestOpenReadOnlyRefuses(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	missing := filepath.Join(dir, "sub", "keygate.db")
	if _, err := OpenReadOnly(ctx, missing, Options{}); !errors.Is(err, ErrNoStore) {
		t.Errorf("missing store: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenReadOnly of a missing store made its directory: %v", err)
	}

	for _, version := range []int{SchemaVersion() - 1, SchemaVersion() + 1} {
		path := filepath.Join(dir, "v.db")
		os.Remove(path)
		s, err := Open(ctx, path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.rw.Exec(fmt.Sprintf("PRAGMA user_version = %d", version)); err != nil {
			t.Fatal(err)
		}
		s.Close()
		var se *SchemaError
		if _, err := OpenReadOnly(ctx, path, Options{}); !errors.As(err, &se) || se.Have != version || se.Want != SchemaVersion() {
			t.Errorf("schema %d: %v", version, err)
		}
	}
}
