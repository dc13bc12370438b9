package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAuditCommand drives keygate over HTTP with a refused token and a
// write, then reads the journal back with keygate audit.
func TestAuditCommand(t *testing.T) {
	in, url, _ := httpInstance(t)
	tok := in.token(t)
	if resp, _ := post(t, url, map[string]string{"Authorization": "Bearer kg_pat_forged"}, initBody); resp.StatusCode != 401 {
		t.Fatalf("forged token: %d", resp.StatusCode)
	}
	if _, err := exec.Command(binary, "token", "create", "--store", in.store, "--env-file", in.envFile,
		"--name", "ci", "--scopes", "content:read").Output(); err != nil {
		t.Fatal(err)
	}
	audit := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(binary, append([]string{"audit", "--store", in.store, "--env-file", in.envFile}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("keygate audit: %v\n%s", err, out)
		}
		return string(out)
	}
	all := audit()
	if !strings.Contains(all, "denied") || !strings.Contains(all, "invalid_token") {
		t.Errorf("the refused token is not in the journal:\n%s", all)
	}
	if strings.Contains(all, tok) || strings.Contains(all, "kg_pat_forged") {
		t.Error("a token reached the journal")
	}
	if got := audit("--tool", "token create"); strings.Count(got, "\n") != 3 || !strings.Contains(got, "attempt") || !strings.Contains(got, "cli") {
		t.Errorf("--tool filter, or the CLI's own journaling:\n%s", got)
	}
	if got := audit("--since", "1h", "--json"); !strings.Contains(got, `"outcome":"denied"`) {
		t.Errorf("--json output:\n%s", got)
	}
	if out, err := exec.Command(binary, "audit", "--store", in.store, "--since", "yesterday").CombinedOutput(); err == nil || !strings.Contains(string(out), "--since") {
		t.Errorf("bad --since accepted: %s", out)
	}
}
