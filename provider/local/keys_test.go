package local

import (
	"bytes"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

const day = 24 * time.Hour

func scopes(t *testing.T, s ...string) auth.Scopes {
	t.Helper()
	sc, err := auth.ParseScopes(s)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// mint creates a key made by the operator, expiring in 30 days.
func mint(t *testing.T, s *Store, clock *testClock, name string, sc ...string) (string, provider.Key) {
	t.Helper()
	issued, err := s.CreateKey(t.Context(), provider.NewKey{Name: name, Scopes: scopes(t, sc...), ExpiresAt: clock.Now().Add(30 * day)})
	if err != nil {
		t.Fatal(err)
	}
	return issued.Secret.Reveal(), issued.Key
}

// forge builds a well-formed token (valid checksum) from a public id and a
// secret, replicating auth's unexported checksum.
func forge(id, secret string) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	body := auth.TokenPrefix + id + "_" + secret
	v := crc32.ChecksumIEEE([]byte(body))
	sum := make([]byte, 6)
	for i := len(sum) - 1; i >= 0; i-- {
		sum[i] = alphabet[v%62]
		v /= 62
	}
	return body + string(sum)
}

func secretPart(tok string) string {
	start := len(auth.TokenPrefix) + 12 + 1
	return tok[start : start+32]
}

func wantInvalid(t *testing.T, err error) {
	t.Helper()
	if err != auth.ErrInvalidToken || !errors.Is(err, auth.ErrInvalidToken) { //nolint:errorlint // exactly this error, not a wrapping of it
		t.Fatalf("error = %v, want exactly auth.ErrInvalidToken", err)
	}
}

func TestCreateKeyAndVerify(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	_, adminKey := mint(t, s, clock, "admin", "admin")
	clock.Add(time.Second)
	expires := clock.Now().Add(7 * day)
	issued, err := s.CreateKey(ctx, provider.NewKey{Name: "  ci publisher ", Scopes: scopes(t, "content:read", "content:write:posts", "content:read"),
		ExpiresAt: expires, CreatedBy: adminKey.ID})
	if err != nil {
		t.Fatal(err)
	}
	tok := issued.Secret.Reveal()
	k := issued.Key
	if !auth.LooksLikeToken(tok) || k.ID != tok[len(auth.TokenPrefix):len(auth.TokenPrefix)+12] {
		t.Fatalf("token %s does not carry id %s", auth.Mask(tok), k.ID)
	}
	if k.Name != "ci publisher" || k.Masked != auth.Mask(tok) || strings.Join(k.Scopes, ",") != "content:read,content:write:posts" ||
		!k.CreatedAt.Equal(clock.Now()) || !k.ExpiresAt.Equal(expires) || k.CreatedBy != adminKey.ID || !k.LastUsedAt.IsZero() || !k.RevokedAt.IsZero() {
		t.Errorf("key = %+v", k)
	}
	if strings.Contains(issued.Secret.String(), tok) {
		t.Error("secret prints its value")
	}

	p, err := s.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	want := auth.Principal{KeyID: k.ID, Name: k.Name, Masked: k.Masked, Scopes: scopes(t, "content:read", "content:write:posts"),
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, CreatedBy: adminKey.ID}
	if p.KeyID != want.KeyID || p.Name != want.Name || p.Masked != want.Masked || !p.CreatedAt.Equal(want.CreatedAt) ||
		!p.ExpiresAt.Equal(want.ExpiresAt) || p.CreatedBy != want.CreatedBy || !p.LastUsedAt.IsZero() ||
		strings.Join(p.Scopes.Strings(), ",") != strings.Join(want.Scopes.Strings(), ",") {
		t.Errorf("principal\n got %+v\nwant %+v", p, want)
	}

	got, err := s.GetKey(ctx, k.ID)
	if err != nil || got.ID != k.ID || got.LastUsedAt.IsZero() {
		t.Errorf("GetKey after use = %+v, %v", got, err)
	}
	_, err = s.GetKey(ctx, "zzzzzzzzzzzz")
	wantNotFound(t, err, "key", "zzzzzzzzzzzz")

	clock.Add(time.Second)
	mint(t, s, clock, "newest", "content:read")
	keys, err := s.ListKeys(ctx)
	if err != nil || len(keys) != 3 || keys[0].Name != "newest" || keys[1].ID != k.ID || keys[2].ID != adminKey.ID {
		t.Errorf("ListKeys = %+v, %v", keys, err)
	}
}

func TestCreateKeyRejects(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	good := provider.NewKey{Name: "k", Scopes: scopes(t, "content:read"), ExpiresAt: clock.Now().Add(day)}
	with := func(f func(*provider.NewKey)) provider.NewKey { n := good; f(&n); return n }
	tests := []struct {
		name     string
		in       provider.NewKey
		field    string
		contains string
	}{
		{"blank name", with(func(n *provider.NewKey) { n.Name = " \t" }), "name", "1 to 100"},
		{"long name", with(func(n *provider.NewKey) { n.Name = strings.Repeat("é", 101) }), "name", "1 to 100"},
		{"no scopes", with(func(n *provider.NewKey) { n.Scopes = nil }), "scopes", "at least one"},
		{"bad scope", with(func(n *provider.NewKey) { n.Scopes = auth.Scopes{{Action: "content:fly"}} }), "scopes", "unknown scope"},
		{"expires now", with(func(n *provider.NewKey) { n.ExpiresAt = clock.Now() }), "expires_in_days", "already be expired"},
		{"expired", with(func(n *provider.NewKey) { n.ExpiresAt = clock.Now().Add(-time.Hour) }), "expires_in_days", "already be expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateKey(ctx, tc.in)
			wantFieldError(t, err, tc.field, tc.contains)
		})
	}
	if _, err := s.CreateKey(ctx, good); err != nil {
		t.Errorf("a good key was refused: %v", err)
	}
	if keys, _ := s.ListKeys(ctx); len(keys) != 1 {
		t.Errorf("%d keys after rejected creates, want 1", len(keys))
	}
}

func TestVerifyRejects(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	tok, key := mint(t, s, clock, "victim", "content:read")
	revokedTok, revoked := mint(t, s, clock, "revoked", "content:read")
	if _, _, _, err := s.RevokeKey(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	unstored, _, err := auth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	// One character of the secret changed: the checksum no longer matches.
	flipped := []byte(tok)
	i := len(auth.TokenPrefix) + 20
	flipped[i] = map[bool]byte{true: 'b', false: 'a'}[flipped[i] == 'a']

	tests := []struct {
		name string
		tok  string
	}{
		{"empty", ""},
		{"wrong shape", "kg_pat_short"},
		{"trailing space", tok + " "},
		{"other prefix", "xx_pat_" + tok[len(auth.TokenPrefix):]},
		{"one character changed", string(flipped)},
		{"unknown id with a valid checksum", unstored},
		{"right id, wrong secret", forge(key.ID, secretPart(unstored))},
		{"revoked", revokedTok},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Verify(ctx, tc.tok)
			wantInvalid(t, err)
		})
	}
	if _, err := s.Verify(ctx, forge(key.ID, secretPart(tok))); err != nil {
		t.Fatalf("forge does not rebuild a valid token: %v", err)
	}
}

func TestVerifyExpiry(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	expires := clock.Now().Add(time.Hour)
	issued, err := s.CreateKey(ctx, provider.NewKey{Name: "short", Scopes: scopes(t, "content:read"), ExpiresAt: expires})
	if err != nil {
		t.Fatal(err)
	}
	tok := issued.Secret.Reveal()
	tests := []struct {
		at    time.Time
		valid bool
	}{
		{expires.Add(-time.Nanosecond), true},
		{expires, false},
		{expires.Add(time.Minute), false},
	}
	for _, tc := range tests {
		clock.mu.Lock()
		clock.t = tc.at
		clock.mu.Unlock()
		_, err := s.Verify(ctx, tok)
		if tc.valid && err != nil {
			t.Errorf("at %v: %v", tc.at, err)
		}
		if !tc.valid {
			wantInvalid(t, err)
		}
	}
}

func TestVerifyStoreFailureIsNotInvalidToken(t *testing.T) {
	s, clock := newTestStore(t)
	tok, _ := mint(t, s, clock, "k", "content:read")
	s.Close()
	_, err := s.Verify(t.Context(), tok)
	if err == nil || errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("Verify on a closed store = %v, want a store error", err)
	}
	if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), secretPart(tok)) {
		t.Error("the error carries the token")
	}
}

func TestVerifyRecordsUseLazily(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	tok, key := mint(t, s, clock, "k", "content:read")
	first := clock.Now()
	steps := []struct {
		advance      time.Duration
		wantPrevious time.Time // LastUsedAt in the principal: the use before this one
		wantStored   time.Time // last_used_at after this use
	}{
		{0, time.Time{}, first},
		{30 * time.Second, first, first},
		{29 * time.Second, first, first},
		{time.Second, first, first.Add(time.Minute)},
		{10 * time.Second, first.Add(time.Minute), first.Add(time.Minute)},
	}
	for i, st := range steps {
		clock.Add(st.advance)
		p, err := s.Verify(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		k, _ := s.GetKey(ctx, key.ID)
		if !p.LastUsedAt.Equal(st.wantPrevious) || !k.LastUsedAt.Equal(st.wantStored) {
			t.Errorf("step %d: principal last used %v (want %v), stored %v (want %v)", i, p.LastUsedAt, st.wantPrevious, k.LastUsedAt, st.wantStored)
		}
	}
}

func TestRevokeKey(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	tok, key := mint(t, s, clock, "victim", "content:read", "content:write")

	_, _, _, err := s.RevokeKey(ctx, "zzzzzzzzzzzz")
	wantNotFound(t, err, "key", "zzzzzzzzzzzz")

	clock.Add(time.Minute)
	k, revoked, already, err := s.RevokeKey(ctx, key.ID)
	if err != nil || already || !k.RevokedAt.Equal(clock.Now()) || strings.Join(revoked, ",") != key.ID {
		t.Fatalf("revoke = %+v, %v, %v, %v", k, revoked, already, err)
	}
	_, err = s.Verify(ctx, tok)
	wantInvalid(t, err)

	clock.Add(time.Minute)
	k2, revoked, already, err := s.RevokeKey(ctx, key.ID)
	if err != nil || !already || !k2.RevokedAt.Equal(k.RevokedAt) || len(revoked) != 0 {
		t.Errorf("second revoke = %+v, %v, %v, %v; want already revoked at %v, nothing more", k2, revoked, already, err, k.RevokedAt)
	}
}

// rotate rotates key id under a fresh rotation tag and retires the old key
// after grace, as the rotation engine does.
func rotate(t *testing.T, s *Store, id string, grace time.Duration) provider.IssuedKey {
	t.Helper()
	issued, err := s.RotateKey(t.Context(), id, "rot-"+id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RetireKey(t.Context(), id, grace); err != nil {
		t.Fatal(err)
	}
	return issued
}

func TestRotateThenRetire(t *testing.T) {
	tests := []struct {
		name       string
		grace      time.Duration
		oldWorks   bool // right after RetireKey
		afterGrace bool // after the clock passes the grace period
	}{
		{"at once", 0, false, false},
		{"with grace", time.Minute, true, false},
		{"grace longer than the key's life", 60 * day, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, clock := newTestStore(t)
			ctx := t.Context()
			oldTok, old := mint(t, s, clock, "worker", "content:read", "content:write:posts")
			clock.Add(time.Hour)

			issued, err := s.RotateKey(ctx, old.ID, "rot-1")
			if err != nil {
				t.Fatal(err)
			}
			next := issued.Key
			if next.ID == old.ID || next.Name != old.Name || strings.Join(next.Scopes, ",") != strings.Join(old.Scopes, ",") ||
				!next.ExpiresAt.Equal(old.ExpiresAt) || !next.CreatedAt.Equal(clock.Now()) || next.Masked != auth.Mask(issued.Secret.Reveal()) {
				t.Errorf("successor %+v of %+v", next, old)
			}
			if stored, _ := s.GetKey(ctx, old.ID); stored.RotatedTo != next.ID || !stored.RevokedAt.IsZero() || !stored.ExpiresAt.Equal(old.ExpiresAt) {
				t.Errorf("old key after rotate: %+v", stored)
			}
			for _, tok := range []string{oldTok, issued.Secret.Reveal()} {
				if _, err := s.Verify(ctx, tok); err != nil {
					t.Fatalf("before retiring, %s fails: %v", auth.Mask(tok), err)
				}
			}

			retired, err := s.RetireKey(ctx, old.ID, tc.grace)
			if err != nil {
				t.Fatal(err)
			}
			if tc.grace == 0 && !retired.RevokedAt.Equal(clock.Now()) {
				t.Errorf("retired at once: %+v", retired)
			}
			if tc.grace > 0 && !retired.RevokedAt.IsZero() {
				t.Errorf("retired with grace is revoked: %+v", retired)
			}
			if want := minTime(old.ExpiresAt, clock.Now().Add(tc.grace)); tc.grace > 0 && !retired.ExpiresAt.Equal(want) {
				t.Errorf("expires_at = %v, want %v", retired.ExpiresAt, want)
			}
			checkWorks(t, s, oldTok, tc.oldWorks)
			clock.Add(tc.grace + time.Second)
			checkWorks(t, s, oldTok, tc.afterGrace)
		})
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func checkWorks(t *testing.T, s *Store, tok string, want bool) {
	t.Helper()
	_, err := s.Verify(t.Context(), tok)
	if want && err != nil {
		t.Errorf("key refused: %v", err)
	}
	if !want {
		wantInvalid(t, err)
	}
}

func TestRotateRejects(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	_, revoked := mint(t, s, clock, "revoked", "content:read")
	if _, _, _, err := s.RevokeKey(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	short, err := s.CreateKey(ctx, provider.NewKey{Name: "short", Scopes: scopes(t, "content:read"), ExpiresAt: clock.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Minute)
	for _, tc := range []struct {
		name, id, contains string
	}{
		{"revoked", revoked.ID, "is revoked and cannot be rotated"},
		{"expired", short.Key.ID, "is expired and cannot be rotated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.RotateKey(ctx, tc.id, "rot-x")
			wantFieldError(t, err, "credential", tc.contains)
		})
	}
	t.Run("unknown", func(t *testing.T) {
		_, err := s.RotateKey(ctx, "zzzzzzzzzzzz", "rot-x")
		wantNotFound(t, err, "key", "zzzzzzzzzzzz")
		_, err = s.RetireKey(ctx, "zzzzzzzzzzzz", 0)
		wantNotFound(t, err, "key", "zzzzzzzzzzzz")
	})
	if keys, _ := s.ListKeys(ctx); len(keys) != 2 {
		t.Errorf("%d keys after refused rotations, want 2", len(keys))
	}
}

// TestRotatedKeyIsNeverRotatedAgain: only the current version of a key
// rotates, so two rotations racing on one key cannot both succeed, and the
// link from a key to its successor, which revocation follows, is never
// overwritten, not even during the grace period.
func TestRotatedKeyIsNeverRotatedAgain(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	_, old := mint(t, s, clock, "worker", "content:read")
	first, err := s.RotateKey(ctx, old.ID, "rot-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RetireKey(ctx, old.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	_, err = s.RotateKey(ctx, old.ID, "rot-2")
	wantFieldError(t, err, "credential", "has already been rotated to key "+first.Key.ID)
	if k, _ := s.GetKey(ctx, old.ID); k.RotatedTo != first.Key.ID {
		t.Errorf("rotated_to = %q, want %q", k.RotatedTo, first.Key.ID)
	}
	if keys, _ := s.ListKeys(ctx); len(keys) != 2 {
		t.Errorf("%d keys, want 2: the refused rotation made one", len(keys))
	}
	// The current version still rotates.
	if _, err := s.RotateKey(ctx, first.Key.ID, "rot-3"); err != nil {
		t.Fatal(err)
	}
}

// TestSecretNeverStored looks for the token and its secret in every file of
// the store, while open (WAL) and after closing (checkpointed).
func TestSecretNeverStored(t *testing.T) {
	skipOnPostgres(t, "store files; TestPostgresSecretNeverStored reads every table")
	dir := t.TempDir()
	clock := newClock()
	s, err := Open(t.Context(), filepath.Join(dir, "keygate.db"), Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for range 3 {
		tok, key := mint(t, s, clock, "k", "admin")
		if _, err := s.Verify(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		issued := rotate(t, s, key.ID, 0)
		for _, tk := range []string{tok, issued.Secret.Reveal()} {
			secrets = append(secrets, tk, secretPart(tk))
		}
	}
	check := func(when string) {
		t.Helper()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			for _, sec := range secrets {
				if bytes.Contains(b, []byte(sec)) {
					t.Errorf("%s: %s holds a secret", when, e.Name())
				}
			}
		}
		if len(entries) == 0 {
			t.Fatal("no store files to check")
		}
	}
	check("open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check("closed")
}

func TestMissingKeyDigestIsADigest(t *testing.T) {
	if len(missingKeyDigest) != 32 {
		t.Fatalf("missingKeyDigest is %d bytes; a SHA-256 digest is 32", len(missingKeyDigest))
	}
}

// TestRevokeTakesTheWholeLineage is issue 12's "revocation is final": a
// key that rotated itself and minted children, once revoked, leaves no
// successor, child or grace-period predecessor working, even when the key
// named was revoked already.
func TestRevokeTakesTheWholeLineage(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	create := func(parent, name string) provider.IssuedKey {
		t.Helper()
		issued, err := s.CreateKey(ctx, provider.NewKey{Name: name, Scopes: scopes(t, "content:read", "credentials:write"),
			ExpiresAt: clock.Now().Add(24 * time.Hour), CreatedBy: parent})
		if err != nil {
			t.Fatal(err)
		}
		return issued
	}
	root := create("", "root")
	child := create(root.Key.ID, "child")
	grand := create(child.Key.ID, "grandchild")
	other := create("", "unrelated")

	// Rotating the root with a grace period keeps every key it made alive,
	// and moves them to the successor.
	next := rotate(t, s, root.Key.ID, time.Hour)
	childOfNext := create(next.Key.ID, "child of the successor")
	grandNext := rotate(t, s, grand.Key.ID, 0)
	for _, k := range []provider.IssuedKey{root, next, child, grandNext, childOfNext} {
		if _, err := s.Verify(ctx, k.Secret.Reveal()); err != nil {
			t.Errorf("%s stopped working when its ancestor was rotated", k.Key.Name)
		}
	}
	l, err := s.Lineage(ctx, grandNext.Key.ID)
	if err != nil || strings.Join(l.Ancestors, ",") != child.Key.ID+","+next.Key.ID {
		t.Errorf("lineage of the rotated grandchild = %+v, %v", l, err)
	}
	if l, _ := s.Lineage(ctx, root.Key.ID); strings.Join(l.Successors, ",") != next.Key.ID {
		t.Errorf("successors of the root = %v", l.Successors)
	}
	if n, _ := s.LiveDescendants(ctx, next.Key.ID); n != 3 {
		t.Errorf("live keys below the successor = %d, want 3 (child, its rotated grandchild, the new child)", n)
	}
	if sid, _ := s.Successor(ctx, root.Key.ID); sid != next.Key.ID {
		t.Errorf("successor of the root = %q", sid)
	}

	// The root is revoked by an admin; its successor, its predecessor in
	// grace, their children and grandchildren all go, even though the
	// key named is the old one.
	_, revoked, already, err := s.RevokeKey(ctx, root.Key.ID)
	if err != nil || already {
		t.Fatal(err, already)
	}
	if len(revoked) != 5 || revoked[0] != root.Key.ID {
		t.Errorf("revoked %v, want the root first and 5 keys", revoked)
	}
	for _, k := range []provider.IssuedKey{root, next, child, grandNext, childOfNext} {
		if _, err := s.Verify(ctx, k.Secret.Reveal()); err == nil {
			t.Errorf("%s outlived the revocation of its lineage", k.Key.Name)
		}
	}
	if _, err := s.Verify(ctx, other.Secret.Reveal()); err != nil {
		t.Error("an unrelated key was revoked")
	}

	// A key revoked before, whose successor was made afterwards by
	// another path, still takes it down: revoking is never "nothing
	// changed" while part of the lineage works.
	a := create("", "a")
	b := create(a.Key.ID, "b")
	// Simulate a store where a's revocation did not reach b (an older
	// keygate revoked only the key named).
	if _, err := s.rw.ExecContext(ctx, `UPDATE keys SET revoked_at = NULL WHERE id = ?`, b.Key.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.rw.ExecContext(ctx, `UPDATE keys SET revoked_at = ? WHERE id = ?`, toNanos(clock.Now()), a.Key.ID); err != nil {
		t.Fatal(err)
	}
	_, revoked, already, err = s.RevokeKey(ctx, a.Key.ID)
	if err != nil || !already || strings.Join(revoked, ",") != b.Key.ID {
		t.Errorf("revoking an already revoked key with a live child = %v, %v, %v", revoked, already, err)
	}
}

// An earlier version of a key never rotates again, never outlives a later
// retirement, and stays linked for revocation (attack review F1: a leaked
// key in its grace period rotated itself out of its lineage once its
// successor had been retired).
func TestEarlierVersionsStayInTheLineage(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	aTok, a := mint(t, s, clock, "alice", "content:read", "credentials:write")
	a1 := rotate(t, s, a.ID, 48*time.Hour) // a: grace of two days
	_, err := s.RotateKey(ctx, a.ID, "rot-again")
	wantFieldError(t, err, "credential", "has already been rotated to key "+a1.Key.ID)
	a2 := rotate(t, s, a1.Key.ID, 0) // a1 ends at once, and a with it
	checkWorks(t, s, aTok, false)
	if _, err := s.RotateKey(ctx, a.ID, "rot-thief"); err == nil {
		t.Fatal("an earlier version was rotated after its successor retired")
	}
	// Revoking the current version takes every earlier one.
	b := rotate(t, s, a2.Key.ID, time.Hour)
	_, revoked, _, err := s.RevokeKey(ctx, b.Key.ID)
	if err != nil || !slices.Contains(revoked, a2.Key.ID) {
		t.Errorf("revoking the current version revoked %v, %v", revoked, err)
	}
}

// A key is created only while its creator works and has not been rotated,
// checked inside the insert (attack review F2: children made while their
// creator was being revoked outlived it), and a non-admin key's tree stays
// bounded (F3).
func TestCreateKeyChecksTheCreatorAtTheInsert(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	_, parent := mint(t, s, clock, "parent", "content:read", "credentials:write")
	nk := provider.NewKey{Name: "child", Scopes: scopes(t, "content:read", "credentials:write"), ExpiresAt: clock.Now().Add(day), CreatedBy: parent.ID, MaxDescendants: 3}
	child, err := s.CreateKey(ctx, nk)
	if err != nil {
		t.Fatal(err)
	}
	grand := nk
	grand.CreatedBy = child.Key.ID
	for range 2 {
		if _, err := s.CreateKey(ctx, grand); err != nil {
			t.Fatal(err)
		}
	}
	// parent now has 3 live keys below it: its grandchildren count.
	_, err = s.CreateKey(ctx, grand)
	wantFieldError(t, err, "credential", "live keys below it")
	_, err = s.CreateKey(ctx, nk)
	wantFieldError(t, err, "credential", "live keys below it")

	if _, _, _, err := s.RevokeKey(ctx, parent.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateKey(ctx, nk)
	wantFieldError(t, err, "credential", "no longer works")

	_, other := mint(t, s, clock, "other", "content:read", "credentials:write")
	rotate(t, s, other.ID, time.Hour)
	nk.CreatedBy = other.ID
	_, err = s.CreateKey(ctx, nk)
	wantFieldError(t, err, "credential", "was rotated into key")
}
