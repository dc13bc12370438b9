package cli_test

import (
	"bytes"
	"database/sql"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/keygate/keygate/auth"
)

// filesContaining lists the files under dir that hold any of needles.
func filesContaining(t *testing.T, dir string, needles ...string) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				hits = append(hits, path)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestTokenRevokeNeverEchoesAToken: an operator who pastes a whole token
// into "keygate token revoke" gets it revoked by its public id, and the
// token reaches neither the terminal nor the audit journal; arguments that
// are not ids are refused without being repeated.
func TestTokenRevokeNeverEchoesAToken(t *testing.T) {
	t.Parallel()
	in := prepared(t)
	canary := mintCLI(t, in, "canary", "content:read")
	parsed, _, err := auth.ParseToken(canary)
	if err != nil {
		t.Fatal(err)
	}
	id := parsed.PublicID
	secretPart := canary[len(auth.TokenPrefix)+len(id)+1 : len(canary)-6]
	// Another base62 character in the checksum (flipping a bit of it can
	// leave the alphabet, 'z' to '{', and then the shape is what fails).
	swap := "A"
	if canary[len(canary)-1] == 'A' {
		swap = "B"
	}
	badChecksum := canary[:len(canary)-1] + swap
	leaks := []string{canary, secretPart, badChecksum}

	tests := []struct {
		name    string
		arg     string
		wantErr bool
		wantOut string // in stdout+stderr
	}{
		{"full token", canary, false, "id " + id},
		{"full token again", canary, false, "already revoked"},
		{"token with a bad checksum", badChecksum, true, "checksum"},
		{"the secret part alone", secretPart, true, "not a token id"},
		{"unknown id", "AAAAAAAAAAAA", true, "no token has id AAAAAAAAAAAA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := runCLI(t, in, "token revoke", tc.arg)
			if (err != nil) != tc.wantErr {
				t.Fatalf("exit error %v, want error %v\nstdout: %s\nstderr: %s", err, tc.wantErr, stdout, stderr)
			}
			out := stdout + stderr
			if !strings.Contains(out, tc.wantOut) {
				t.Errorf("output lacks %q:\n%s", tc.wantOut, out)
			}
			for _, l := range leaks {
				if strings.Contains(out, l) {
					t.Errorf("the output repeats a secret (%s):\n%s", auth.Mask(l), out)
				}
			}
		})
	}
	if hits := filesContaining(t, in.dir, leaks...); len(hits) > 0 {
		t.Errorf("the token or its secret reached %v", hits)
	}
	stdout, _, err := runCLI(t, in, "token list")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, id) && !strings.HasSuffix(strings.TrimSpace(line), "revoked") {
			t.Errorf("the canary is not revoked: %s", line)
		}
	}
}

// hostileName holds what a terminal would act on: clear the screen, write
// the clipboard (OSC 52), a newline and a tab that would forge a row, a
// bidi override and a line separator.
const hostileName = "evil\x1b[2J\x1b]52;c;cHduZWQ=\x07\nFORGED\tROW\u202e\u2028\u200b\x7f\u0085"

// hostileNameShown is hostileName as the CLI must print it.
const hostileNameShown = `evil\x1b[2J\x1b]52;c;cHduZWQ=\x07\nFORGED\tROW\u202e\u2028\u200b\x7f\u0085`

// checkNoControls fails if out holds a control, format or separator
// character other than the newlines that end rows.
func checkNoControls(t *testing.T, out string) {
	t.Helper()
	for i, r := range out {
		if r != '\n' && (unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)) {
			t.Errorf("raw %U at byte %d of the output: %q", r, i, out)
			return
		}
	}
}

// TestTokenListShowsControlCharactersVisibly: a key whose name carries
// terminal controls (set by whoever could create keys, e.g. an agent with
// credentials_create) lists on one row, with the controls spelled out.
func TestTokenListShowsControlCharactersVisibly(t *testing.T) {
	t.Parallel()
	in := prepared(t)
	tok := mintCLI(t, in, "plain", "content:read")
	parsed, _, _ := auth.ParseToken(tok)
	// Straight into the store, whatever the create paths accept.
	db, err := sql.Open("sqlite", "file:"+in.store)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE keys SET name = ? WHERE id = ?`, hostileName, parsed.PublicID); err != nil {
		t.Fatal(err)
	}
	db.Close()

	stdout, stderr, err := runCLI(t, in, "token list")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	checkNoControls(t, stdout)
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 3 { // header, the first-run admin key, the hostile one
		t.Fatalf("%d lines, want 3: %q", len(lines), stdout)
	}
	var row string
	for _, l := range lines {
		if strings.HasPrefix(l, parsed.PublicID) {
			row = l
		}
	}
	if !strings.Contains(row, hostileNameShown) {
		t.Errorf("row does not show the name visibly: %q\nwant it to contain %s", row, hostileNameShown)
	}

	// Revoking it says the name the same way.
	stdout, stderr, err = runCLI(t, in, "token revoke", parsed.PublicID)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	checkNoControls(t, stdout+stderr)
	if !strings.Contains(stdout, hostileNameShown) {
		t.Errorf("revoke output: %q", stdout)
	}
}

// TestTokenCreateToEnvVar: --env-var writes the new token into the env
// file and prints nothing of it; a taken or forbidden variable is refused
// before anything is made.
func TestTokenCreateToEnvVar(t *testing.T) {
	t.Parallel()
	in := prepared(t)
	stdout, stderr, err := runCLI(t, in, "token create", "--name", "ci", "--scopes", "content:read", "--env-var", "CI_TOKEN")
	if err != nil || stdout != "" || !strings.Contains(stderr, "CI_TOKEN") {
		t.Fatalf("%v: stdout %q stderr %q", err, stdout, stderr)
	}
	vars, err := auth.ReadEnvFile(in.envFile)
	if err != nil || !auth.LooksLikeToken(vars["CI_TOKEN"]) || strings.Contains(stderr, vars["CI_TOKEN"]) {
		t.Fatalf("env file: %v", err)
	}
	before, _, _ := runCLI(t, in, "token list")
	for _, v := range []string{"CI_TOKEN", "KEYGATE_TOKEN", "PATH"} {
		if _, _, err := runCLI(t, in, "token create", "--name", "again", "--scopes", "content:read", "--env-var", v); err == nil {
			t.Errorf("--env-var %s accepted", v)
		}
	}
	for _, bad := range [][]string{{"--name", " ", "--scopes", "content:read"}, {"--name", "x", "--scopes", "nope"},
		{"--name", "x", "--scopes", "content:read", "--expires-in-days", "400"}} {
		if _, _, err := runCLI(t, in, "token create", bad...); err == nil {
			t.Errorf("token create %v accepted", bad)
		}
	}
	if after, _, _ := runCLI(t, in, "token list"); after != before {
		t.Errorf("refused creations made keys:\n%s\n%s", before, after)
	}
}

// TestTokenRevokeRemovesTheDeliveredSecret: a token the CLI wrote into the
// env file leaves it when it is revoked, and the CLI says so.
func TestTokenRevokeRemovesTheDeliveredSecret(t *testing.T) {
	t.Parallel()
	in := prepared(t)
	if _, stderr, err := runCLI(t, in, "token create", "--name", "ci", "--scopes", "content:read", "--env-var", "CI_PUBLISHER_TOKEN"); err != nil {
		t.Fatalf("token create: %v\n%s", err, stderr)
	}
	vars, err := auth.ReadEnvFile(in.envFile)
	if err != nil {
		t.Fatal(err)
	}
	tok := vars["CI_PUBLISHER_TOKEN"]
	parsed, _, err := auth.ParseToken(tok)
	if err != nil {
		t.Fatalf("the env file does not hold a token: %v", err)
	}
	stdout, stderr, err := runCLI(t, in, "token revoke", parsed.PublicID)
	if err != nil {
		t.Fatalf("token revoke: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "removed the revoked secret from env:CI_PUBLISHER_TOKEN") {
		t.Errorf("stdout does not say the secret was removed:\n%s", stdout)
	}
	vars, err = auth.ReadEnvFile(in.envFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := vars["CI_PUBLISHER_TOKEN"]; ok {
		t.Error("the revoked token is still in the env file")
	}
	if vars["KEYGATE_TOKEN"] == "" {
		t.Error("keygate's own token left the env file")
	}
}
