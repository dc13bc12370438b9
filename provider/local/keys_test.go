package local

import (
	"bytes"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
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

// mint creates a key with no actor, expiring in 30 days.
func mint(t *testing.T, s *Store, clock *testClock, name string, sc ...string) (string, provider.Key) {
	t.Helper()
	issued, err := s.CreateKey(t.Context(), nil, provider.NewKey{Name: name, Scopes: scopes(t, sc...), ExpiresAt: clock.Now().Add(30 * day)})
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
	if err != auth.ErrInvalidToken || !errors.Is(err, auth.ErrInvalidToken) { // exactly this error, not a wrapping of it
		t.Fatalf("error = %v, want exactly auth.ErrInvalidToken", err)
	}
}

func TestCreateKeyAndVerify(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	admin, adminKey := mint(t, s, clock, "admin", "admin")
	actor, err := s.Verify(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Second)
	expires := clock.Now().Add(7 * day)
	issued, err := s.CreateKey(ctx, &actor, provider.NewKey{Name: "  ci publisher ", Scopes: scopes(t, "content:read", "content:write:posts", "content:read"), ExpiresAt: expires})
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
	limitedTok, _ := mint(t, s, clock, "limited", "content:read", "credentials:write")
	limited, err := s.Verify(ctx, limitedTok)
	if err != nil {
		t.Fatal(err)
	}
	good := provider.NewKey{Name: "k", Scopes: scopes(t, "content:read"), ExpiresAt: clock.Now().Add(day)}
	with := func(f func(*provider.NewKey)) provider.NewKey { n := good; f(&n); return n }
	tests := []struct {
		name     string
		actor    *auth.Principal
		in       provider.NewKey
		field    string
		contains string
	}{
		{"blank name", nil, with(func(n *provider.NewKey) { n.Name = " \t" }), "name", "1 to 100"},
		{"long name", nil, with(func(n *provider.NewKey) { n.Name = strings.Repeat("é", 101) }), "name", "1 to 100"},
		{"no scopes", nil, with(func(n *provider.NewKey) { n.Scopes = nil }), "scopes", "at least one"},
		{"bad scope", nil, with(func(n *provider.NewKey) { n.Scopes = auth.Scopes{{Action: "content:fly"}} }), "scopes", "unknown scope"},
		{"expires now", nil, with(func(n *provider.NewKey) { n.ExpiresAt = clock.Now() }), "expires_in_days", "already be expired"},
		{"expired", nil, with(func(n *provider.NewKey) { n.ExpiresAt = clock.Now().Add(-time.Hour) }), "expires_in_days", "already be expired"},
		{"broader than actor", &limited, with(func(n *provider.NewKey) { n.Scopes = scopes(t, "content:write") }), "scopes", "cannot grant content:write"},
		{"outlives actor", &limited, with(func(n *provider.NewKey) { n.ExpiresAt = clock.Now().Add(31 * day) }), "expires_in_days", "outlive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateKey(ctx, tc.actor, tc.in)
			var ge *auth.GrantError
			if tc.actor != nil {
				if !errors.As(err, &ge) || ge.Field != tc.field || !strings.Contains(ge.Problem, tc.contains) {
					t.Fatalf("error = %v, want a GrantError on %s containing %q", err, tc.field, tc.contains)
				}
				return
			}
			wantFieldError(t, err, tc.field, tc.contains)
		})
	}
	if _, err := s.CreateKey(ctx, &limited, good); err != nil {
		t.Errorf("a subset of the actor's scopes was refused: %v", err)
	}
	if keys, _ := s.ListKeys(ctx); len(keys) != 2 {
		t.Errorf("%d keys after rejected creates, want 2", len(keys))
	}
}

func TestVerifyRejects(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	tok, key := mint(t, s, clock, "victim", "content:read")
	revokedTok, revoked := mint(t, s, clock, "revoked", "content:read")
	if _, _, err := s.RevokeKey(ctx, nil, revoked.ID); err != nil {
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
	issued, err := s.CreateKey(ctx, nil, provider.NewKey{Name: "short", Scopes: scopes(t, "content:read"), ExpiresAt: expires})
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
	narrowTok, _ := mint(t, s, clock, "narrow", "content:read", "credentials:write")
	narrow, err := s.Verify(ctx, narrowTok)
	if err != nil {
		t.Fatal(err)
	}

	_, _, err = s.RevokeKey(ctx, &narrow, key.ID)
	var ge *auth.GrantError
	if !errors.As(err, &ge) || ge.Field != "credential" || !strings.Contains(ge.Problem, "cannot revoke a key with broader scopes") || !strings.Contains(ge.Problem, "content:write") {
		t.Fatalf("narrow actor revoking a broader key: %v", err)
	}
	if _, err := s.Verify(ctx, tok); err != nil {
		t.Fatal("a refused revoke revoked the key")
	}

	_, _, err = s.RevokeKey(ctx, nil, "zzzzzzzzzzzz")
	wantNotFound(t, err, "key", "zzzzzzzzzzzz")

	clock.Add(time.Minute)
	k, already, err := s.RevokeKey(ctx, nil, key.ID)
	if err != nil || already || !k.RevokedAt.Equal(clock.Now()) {
		t.Fatalf("revoke = %+v, %v, %v", k, already, err)
	}
	_, err = s.Verify(ctx, tok)
	wantInvalid(t, err)

	clock.Add(time.Minute)
	k2, already, err := s.RevokeKey(ctx, nil, key.ID)
	if err != nil || !already || !k2.RevokedAt.Equal(k.RevokedAt) {
		t.Errorf("second revoke = %+v, %v, %v; want already revoked at %v", k2, already, err, k.RevokedAt)
	}

	// An admin may revoke anything, and a narrow key may revoke what it covers.
	adminTok, _ := mint(t, s, clock, "admin", "admin")
	admin, _ := s.Verify(ctx, adminTok)
	_, other := mint(t, s, clock, "other", "credentials:write", "content:read:posts")
	if _, _, err := s.RevokeKey(ctx, &narrow, other.ID); err != nil {
		t.Errorf("narrow actor revoking a covered key: %v", err)
	}
	if _, _, err := s.RevokeKey(ctx, &admin, narrow.KeyID); err != nil {
		t.Errorf("admin revoking: %v", err)
	}
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

			issued, oldAfter, err := s.RotateKey(ctx, nil, old.ID, -1)
			if err != nil {
				t.Fatal(err)
			}
			next := issued.Key
			if next.ID == old.ID || next.Name != old.Name || strings.Join(next.Scopes, ",") != strings.Join(old.Scopes, ",") ||
				!next.ExpiresAt.Equal(old.ExpiresAt) || !next.CreatedAt.Equal(clock.Now()) || next.Masked != auth.Mask(issued.Secret.Reveal()) {
				t.Errorf("successor %+v of %+v", next, old)
			}
			if oldAfter.RotatedTo != next.ID || !oldAfter.RevokedAt.IsZero() || !oldAfter.ExpiresAt.Equal(old.ExpiresAt) {
				t.Errorf("old key after rotate with grace -1: %+v", oldAfter)
			}
			if stored, _ := s.GetKey(ctx, old.ID); stored.RotatedTo != next.ID {
				t.Errorf("stored rotated_to = %q", stored.RotatedTo)
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
			if tc.grace > 0 {
				// Still in grace, the key is not revoked: revoking it ends it.
				if _, already, err := s.RevokeKey(ctx, nil, next.ID); err != nil || already {
					t.Errorf("revoking the successor: %v, already=%v", err, already)
				}
			}
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

func TestRotateRetiresInOneStep(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	tok, old := mint(t, s, clock, "k", "content:read")
	issued, oldAfter, err := s.RotateKey(ctx, nil, old.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if oldAfter.RevokedAt.IsZero() || oldAfter.RotatedTo != issued.Key.ID {
		t.Errorf("old key after rotate with grace 0: %+v", oldAfter)
	}
	checkWorks(t, s, tok, false)
	checkWorks(t, s, issued.Secret.Reveal(), true)

	_, oldAfter, err = s.RotateKey(ctx, nil, issued.Key.ID, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !oldAfter.ExpiresAt.Equal(clock.Now().Add(5*time.Minute)) || !oldAfter.RevokedAt.IsZero() {
		t.Errorf("old key after rotate with grace 5m: %+v", oldAfter)
	}
}

func TestRotateRejects(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	_, revoked := mint(t, s, clock, "revoked", "content:read")
	if _, _, err := s.RevokeKey(ctx, nil, revoked.ID); err != nil {
		t.Fatal(err)
	}
	short, err := s.CreateKey(ctx, nil, provider.NewKey{Name: "short", Scopes: scopes(t, "content:read"), ExpiresAt: clock.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	_, broad := mint(t, s, clock, "broad", "content:write")
	longLived, err := s.CreateKey(ctx, nil, provider.NewKey{Name: "long", Scopes: scopes(t, "content:read"), ExpiresAt: clock.Now().Add(300 * day)})
	if err != nil {
		t.Fatal(err)
	}
	narrowTok, _ := mint(t, s, clock, "narrow", "content:read", "credentials:write")
	narrow, err := s.Verify(ctx, narrowTok)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Minute)

	tests := []struct {
		name     string
		actor    *auth.Principal
		id       string
		field    string
		contains string
		grant    bool
	}{
		{"revoked", nil, revoked.ID, "credential", "is revoked and cannot be rotated", false},
		{"expired", nil, short.Key.ID, "credential", "is expired and cannot be rotated", false},
		{"broader than actor", &narrow, broad.ID, "credential", "cannot rotate a key with broader scopes", true},
		{"outlives actor", &narrow, longLived.Key.ID, "credential", "after your credential", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.RotateKey(ctx, tc.actor, tc.id, 0)
			if tc.grant {
				var ge *auth.GrantError
				if !errors.As(err, &ge) || ge.Field != tc.field || !strings.Contains(ge.Problem, tc.contains) {
					t.Fatalf("error = %v, want a GrantError containing %q", err, tc.contains)
				}
				return
			}
			wantFieldError(t, err, tc.field, tc.contains)
		})
	}
	t.Run("unknown", func(t *testing.T) {
		_, _, err := s.RotateKey(ctx, nil, "zzzzzzzzzzzz", 0)
		wantNotFound(t, err, "key", "zzzzzzzzzzzz")
		_, err = s.RetireKey(ctx, "zzzzzzzzzzzz", 0)
		wantNotFound(t, err, "key", "zzzzzzzzzzzz")
	})
	if keys, _ := s.ListKeys(ctx); len(keys) != 5 {
		t.Errorf("%d keys after refused rotations, want 5", len(keys))
	}
	// The actor's own key is always rotatable by itself; the successor
	// keeps the old key's parent (here the CLI, ""): it is the same
	// credential with a new secret, and must not become its own child.
	issued, _, err := s.RotateKey(ctx, &narrow, narrow.KeyID, -1)
	if err != nil || issued.Key.CreatedBy != "" {
		t.Errorf("rotating one's own key: %+v, %v", issued.Key, err)
	}
}

// TestSecretNeverStored looks for the token and its secret in every file of
// the store, while open (WAL) and after closing (checkpointed).
func TestSecretNeverStored(t *testing.T) {
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
		issued, _, err := s.RotateKey(t.Context(), nil, key.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
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

func TestRevokeCascadesButRotationDoesNot(t *testing.T) {
	s, clock := newTestStore(t)
	ctx := t.Context()
	mint := func(actor *auth.Principal, name string) (provider.IssuedKey, auth.Principal) {
		t.Helper()
		issued, err := s.CreateKey(ctx, actor, provider.NewKey{Name: name, Scopes: auth.Scopes{{Action: auth.Admin}}, ExpiresAt: clock.Now().Add(24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.Verify(ctx, issued.Secret.Reveal())
		if err != nil {
			t.Fatal(err)
		}
		return issued, p
	}
	root, rootP := mint(nil, "root")
	child, childP := mint(&rootP, "child")
	grand, _ := mint(&childP, "grandchild")
	other, _ := mint(nil, "unrelated")

	// Rotating the root (as itself) keeps every key it made alive.
	next, _, err := s.RotateKey(ctx, &rootP, root.Key.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []provider.IssuedKey{next, child, grand} {
		if _, err := s.Verify(ctx, k.Secret.Reveal()); err != nil {
			t.Errorf("%s stopped working when its ancestor was rotated", k.Key.Name)
		}
	}
	// Revoking the rotated root takes its descendants with it.
	if _, _, err := s.RevokeKey(ctx, nil, next.Key.ID); err != nil {
		t.Fatal(err)
	}
	for _, k := range []provider.IssuedKey{child, grand} {
		if _, err := s.Verify(ctx, k.Secret.Reveal()); err == nil {
			t.Errorf("%s outlived the revocation of its ancestor", k.Key.Name)
		}
	}
	if _, err := s.Verify(ctx, other.Secret.Reveal()); err != nil {
		t.Error("an unrelated key was revoked")
	}
}
