package cli_test

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/pgtest"
)

// TestPostgresStoreFromTheCommandLine: the token commands, keygate audit
// and keygate doctor work on a postgres:// store; the credential changes
// are journaled in the store's audit table, and the URL's password (a
// canary: the test server trusts loopback, so it is never checked) shows
// nowhere.
func TestPostgresStoreFromTheCommandLine(t *testing.T) {
	t.Parallel()
	const password = "pg-canary-7f3a91"
	u, err := url.Parse(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), password)
	dir := t.TempDir()
	args := func(extra ...string) []string {
		return append([]string{"--store", u.String(), "--data-dir", dir, "--env-file", filepath.Join(dir, ".env")}, extra...)
	}
	run := func(command string, extra ...string) string {
		t.Helper()
		stdout, stderr, code := keygate(t, nil, "", append(strings.Fields(command), args(extra...)...)...)
		if strings.Contains(stdout+stderr, password) {
			t.Errorf("%s printed the store's password:\n%s\n%s", command, stdout, stderr)
		}
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", command, code, stdout, stderr)
		}
		return stdout + stderr
	}
	run("token create", "--name", "ci reader", "--scopes", "content:read", "--env-var", "CI_TOKEN")
	list := run("token list")
	if !strings.Contains(list, "ci reader") {
		t.Errorf("token list lacks the new key:\n%s", list)
	}
	journal := run("audit", "--json")
	if !strings.Contains(journal, `"tool":"token create"`) {
		t.Errorf("the audit table lacks the token create:\n%s", journal)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "audit.jsonl*")); len(files) != 0 {
		t.Errorf("an audit file was written beside the table: %v", files)
	}
	report := run("doctor", "--transport", "http", "--oauth", "off")
	wantLines(t, report, "audit journal: the store's keygate_audit table", "schema version", "1 key")
}
