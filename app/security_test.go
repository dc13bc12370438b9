package app_test

// The findings of the security review (issue 12), each driven against a
// whole keygate the way it was found: over streamable HTTP with several
// keys, or through the token CLI. docs/SECURITY.md, "Key operations", maps
// each finding to its test.

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/auth"
)

// keyID is a keygate token's public id.
func keyID(tok string) string { return tok[len(auth.TokenPrefix) : len(auth.TokenPrefix)+12] }

// refused checks that a tool call ended as an isError result whose text
// contains want, and returns that text.
func (s *hServer) refused(t *testing.T, tok, sid, name string, args map[string]any, want string) string {
	t.Helper()
	r := s.call(t, tok, sid, name, args)
	res := r.result()
	text := r.body
	if res == nil || res["isError"] != true || !strings.Contains(text, want) {
		t.Fatalf("%s: want a refusal saying %q, got %d %.600s", name, want, r.status, r.body)
	}
	return text
}

// works reports whether tok is accepted as a bearer token.
func (s *hServer) works(t *testing.T, tok string) bool {
	t.Helper()
	r := s.post(t, map[string]string{"Authorization": "Bearer " + tok}, initBody)
	return r.status == 200
}

// newToken reads the token a reveal delivery showed.
func newToken(t *testing.T, res map[string]any) string {
	t.Helper()
	tok, _ := res["token"].(string)
	if !auth.LooksLikeToken(tok) {
		t.Fatalf("no revealed token in %v", res)
	}
	return tok
}

// Finding 1: one policy for every key operation. A credentials:write key
// acts only on its own lineage; it cannot rotate or revoke a colleague's
// key, nor (finding 9) learn its name, scopes and expiry from a dry run.
func TestIssue12_1_PolicyKeepsKeysToTheirOwners(t *testing.T) {
	t.Parallel()
	in := prepared(t)
	s := hStartHTTP(t, in, nil)
	writer := mintCLI(t, in, "writer", "credentials:read,credentials:write,content:read")
	colleague := mintCLI(t, in, "colleague-secret-name", "content:read")
	s.secrets = append(s.secrets, writer, colleague)
	sid := s.session(t, writer)
	for _, tc := range []struct {
		tool string
		args map[string]any
	}{
		{"credentials_rotate", map[string]any{"credential": keyID(colleague), "confirm": true, "deliver": "reveal"}},
		{"credentials_rotate", map[string]any{"credential": keyID(colleague), "dry_run": true}},
		{"credentials_revoke", map[string]any{"credential": keyID(colleague), "confirm": true}},
		{"credentials_revoke", map[string]any{"credential": keyID(colleague), "dry_run": true}},
	} {
		text := s.refused(t, writer, sid, tc.tool, tc.args, "neither yours nor one your key created")
		if strings.Contains(text, "colleague-secret-name") {
			t.Errorf("%s %v showed the colleague's key name", tc.tool, tc.args)
		}
	}
	if !s.works(t, colleague) {
		t.Fatal("the colleague's key stopped working")
	}
	// The writer's own lineage is its to manage.
	child := newToken(t, s.ok(t, writer, sid, "credentials_create", map[string]any{"name": "child", "scopes": []any{"content:read"}, "expires_in_days": 1, "deliver": "reveal"}))
	s.secrets = append(s.secrets, child)
	next := newToken(t, s.ok(t, writer, sid, "credentials_rotate", map[string]any{"credential": keyID(child), "confirm": true, "deliver": "reveal"}))
	s.secrets = append(s.secrets, next)
	s.ok(t, writer, sid, "credentials_revoke", map[string]any{"credential": keyID(next), "confirm": true})
	s.refused(t, writer, sid, "credentials_create", map[string]any{"name": "wider", "scopes": []any{"content:write"}, "expires_in_days": 1, "deliver": "reveal"}, "cannot grant")
	// The list shows the writer its lineage, not every key.
	list := s.ok(t, writer, sid, "credentials_list", nil)
	for _, k := range list["keys"].([]any) {
		if name := hGet(k, "name"); name == "colleague-secret-name" || name == "admin (first run)" {
			t.Errorf("the writer's list shows %v", name)
		}
	}
}

// Finding 2: two rotations of the same key at once give exactly one
// successor, and the loser is told why.
func TestIssue12_2_ConcurrentRotationsGiveOneSuccessor(t *testing.T) {
	t.Parallel()
	in := prepared(t)
	s := hStartHTTP(t, in, nil)
	victim := mintCLI(t, in, "rotated twice", "content:read")
	s.secrets = append(s.secrets, victim)
	sid := s.session(t, "")
	results := make([]hResponse, 6)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			results[i] = s.call(t, "", sid, "credentials_rotate", map[string]any{"credential": keyID(victim), "confirm": true, "deliver": "reveal"})
		})
	}
	wg.Wait()
	won := 0
	for _, r := range results {
		res := r.result()
		switch {
		case res == nil:
			t.Fatalf("protocol error: %.300s", r.body)
		case res["isError"] != true:
			won++
			s.secrets = append(s.secrets, newToken(t, res["structuredContent"].(map[string]any)))
		case !strings.Contains(r.body, "in progress") && !strings.Contains(r.body, "already been rotated") && !strings.Contains(r.body, "is revoked"):
			t.Errorf("a losing rotation does not say why: %.400s", r.body)
		}
	}
	if won != 1 {
		t.Fatalf("%d rotations succeeded, want exactly one", won)
	}
}

// Finding 3: a rotation never hands the new secret to a session that
// authenticated with the old key. A thief who gave a leaked token to
// auth_authenticate keeps only that token, which stops working.
func TestIssue12_3_ThiefSessionDoesNotGetTheSuccessor(t *testing.T) {
	t.Parallel()
	in := prepared(t)
	s := hStartHTTP(t, in, nil)
	victim := mintCLI(t, in, "victim", "credentials:write,credentials:read,content:read")
	thief := mintCLI(t, in, "thief", "content:read:posts")
	s.secrets = append(s.secrets, victim, thief)
	thiefSID := s.session(t, thief)
	s.ok(t, thief, thiefSID, "auth_authenticate", map[string]any{"token": victim})
	if who := s.ok(t, thief, thiefSID, "auth_whoami", nil); who["key_id"] != keyID(victim) {
		t.Fatalf("the thief's session does not act as the stolen key: %v", who)
	}
	ownerSID := s.session(t, victim)
	next := newToken(t, s.ok(t, victim, ownerSID, "credentials_rotate", map[string]any{"credential": "current", "confirm": true, "deliver": "reveal"}))
	s.secrets = append(s.secrets, next)
	who := s.ok(t, thief, thiefSID, "auth_whoami", nil)
	if who["key_id"] == keyID(next) || who["authenticated"] == true {
		t.Fatalf("after the rotation the thief's session acts as %v (new key %s)", who["key_id"], keyID(next))
	}
	if !s.works(t, next) || s.works(t, victim) {
		t.Error("the owner's new key should work and the old one not")
	}
}

// Finding 4: revocation is final. A key that rotated itself and minted a
// child from its successor is revoked by the admin after it was already
// revoked (by the rotation): the successor and the child fall with it.
func TestIssue12_4_RevocationTakesTheLineage(t *testing.T) {
	t.Parallel()
	in := prepared(t)
	s := hStartHTTP(t, in, nil)
	w := mintCLI(t, in, "escapee", "credentials:write,credentials:read,content:read")
	s.secrets = append(s.secrets, w)
	wSID := s.session(t, w)
	next := newToken(t, s.ok(t, w, wSID, "credentials_rotate", map[string]any{"credential": "current", "confirm": true, "deliver": "reveal"}))
	s.secrets = append(s.secrets, next)
	nextSID := s.session(t, next)
	child := newToken(t, s.ok(t, next, nextSID, "credentials_create", map[string]any{"name": "child", "scopes": []any{"content:read"}, "expires_in_days": 1, "deliver": "reveal"}))
	s.secrets = append(s.secrets, child)

	res := s.ok(t, "", s.session(t, ""), "credentials_revoke", map[string]any{"credential": keyID(w), "confirm": true})
	also := map[string]bool{}
	for _, id := range res["also_revoked"].([]any) {
		also[id.(string)] = true
	}
	if res["already_revoked"] != true || !also[keyID(next)] || !also[keyID(child)] {
		t.Fatalf("revoking the rotated key: %v", res)
	}
	for _, tok := range []string{w, next, child} {
		if s.works(t, tok) {
			t.Errorf("key %s works after its lineage was revoked", keyID(tok))
		}
	}
}

// Finding 5: callers never write keygate's own state: no token saved into
// the operator's env file over HTTP, no delivery into keygate's or a
// provider's variables or into its store directory.
func TestIssue12_5_CallersNeverWriteKeygatesState(t *testing.T) {
	t.Parallel()
	in := prepared(t)
	s := hStartHTTP(t, in, nil)
	low := mintCLI(t, in, "low", "content:read:posts")
	s.secrets = append(s.secrets, low)
	envBefore, _ := os.ReadFile(in.envFile)

	lowSID := s.session(t, low)
	s.refused(t, low, lowSID, "auth_authenticate", map[string]any{"token": low, "save": true}, "never writes a caller's token")
	admin := s.session(t, "")
	for _, name := range []string{"KEYGATE_TOKEN", "KEYGATE_TRANSPORT", "KEYGATE_AUDIT_FILE", "AGRENTING_API_KEY", "COSMIC_WRITE_KEY"} {
		s.refused(t, "", admin, "credentials_create", map[string]any{"name": "x", "scopes": []any{"content:read"}, "expires_in_days": 1, "deliver": "env:" + name},
			"keygate's own or a provider's")
	}
	s.refused(t, "", admin, "credentials_create", map[string]any{"name": "x", "scopes": []any{"content:read"}, "expires_in_days": 1, "deliver": "env:PATH"}, "not a name for an issued key")
	storeDir := filepath.Dir(in.store)
	for _, target := range []string{
		filepath.Join(storeDir, "rotation", "KEYGATE_TOKEN.journal"),
		filepath.Join(storeDir, "rotation", "x.token"),
		filepath.Join(storeDir, "keygate.db-x.token"),
		filepath.Join(storeDir, "keys", "..", "rotation", "x.token"),
	} {
		s.refused(t, "", admin, "credentials_create", map[string]any{"name": "x", "scopes": []any{"content:read"}, "expires_in_days": 1, "deliver": "file:" + target}, "deliver")
	}
	if after, _ := os.ReadFile(in.envFile); string(after) != string(envBefore) {
		t.Error("a caller changed the operator's env file")
	}
	if entries, _ := os.ReadDir(filepath.Join(storeDir, "rotation")); len(entries) > 0 {
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".token") || strings.HasSuffix(e.Name(), ".journal") {
				t.Errorf("a delivery reached keygate's rotation directory: %s", e.Name())
			}
		}
	}
	s.alive(t)
}

// Finding 9: over HTTP, rotating the key that is the env file's
// KEYGATE_TOKEN keeps the env file current, and the answer says so.
func TestIssue12_9_HTTPRotationOfTheEnvFileToken(t *testing.T) {
	t.Parallel()
	in := prepared(t)
	s := hStartHTTP(t, in, nil)
	old := s.token
	res := s.ok(t, "", s.session(t, ""), "credentials_rotate", map[string]any{"credential": "current", "confirm": true})
	next := in.token(t)
	s.secrets = append(s.secrets, next)
	if next == old || !strings.Contains(res["delivered_to"].(string), "env:KEYGATE_TOKEN") {
		t.Fatalf("the env file was not kept current: %v", res)
	}
	if s.works(t, old) || !s.works(t, next) {
		t.Error("the env file's new token should work and the old one not")
	}
	s.token = next
	s.alive(t)
}
