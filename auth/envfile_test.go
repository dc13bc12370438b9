package auth

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSetEnvVarKeepsEveryOtherByte(t *testing.T) {
	const tok = "kg_pat_AAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	tests := []struct {
		name, before, after string
	}{
		{"new file", "", "KEYGATE_TOKEN=" + tok + "\n"},
		{"append keeps comments", "# comment\nA=1\n", "# comment\nA=1\nKEYGATE_TOKEN=" + tok + "\n"},
		{"append adds missing newline", "A=1", "A=1\nKEYGATE_TOKEN=" + tok + "\n"},
		{"append keeps CRLF", "A=1\r\nB=2\r\n", "A=1\r\nB=2\r\nKEYGATE_TOKEN=" + tok + "\r\n"},
		{"replace bare", "A=1\nKEYGATE_TOKEN=old\nB=2\n", "A=1\nKEYGATE_TOKEN=" + tok + "\nB=2\n"},
		{"replace double quoted", "KEYGATE_TOKEN=\"old\"\n", "KEYGATE_TOKEN=\"" + tok + "\"\n"},
		{"replace single quoted with comment", "KEYGATE_TOKEN='old' # mine\n", "KEYGATE_TOKEN='" + tok + "' # mine\n"},
		{"replace export", "export KEYGATE_TOKEN=old\n", "export KEYGATE_TOKEN=" + tok + "\n"},
		{"replace keeps inline comment", "KEYGATE_TOKEN=old   # rotated monthly\n", "KEYGATE_TOKEN=" + tok + "   # rotated monthly\n"},
		{"replace keeps CRLF", "A=1\r\nKEYGATE_TOKEN=old\r\n", "A=1\r\nKEYGATE_TOKEN=" + tok + "\r\n"},
		{"replace spaced separator", "KEYGATE_TOKEN = old\n", "KEYGATE_TOKEN = " + tok + "\n"},
		{"replace last of duplicates", "KEYGATE_TOKEN=a\nKEYGATE_TOKEN=b\n", "KEYGATE_TOKEN=a\nKEYGATE_TOKEN=" + tok + "\n"},
		{"no trailing newline", "KEYGATE_TOKEN=old", "KEYGATE_TOKEN=" + tok},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), ".env")
			if tc.before != "" {
				if err := os.WriteFile(path, []byte(tc.before), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := SetEnvVar(path, "KEYGATE_TOKEN", tok, EnvWriteOptions{Overwrite: true}); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != tc.after {
				t.Errorf("got %q, want %q", got, tc.after)
			}
			vars, err := ReadEnvFile(path)
			if err != nil || vars["KEYGATE_TOKEN"] != tok {
				t.Errorf("read back %v, %v", vars["KEYGATE_TOKEN"], err)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", fi.Mode().Perm())
			}
		})
	}
}

func TestSetEnvVarRefusals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ".env")
	if err := os.WriteFile(path, []byte("TAKEN=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SetEnvVar(path, "TAKEN", "secret-value-1", EnvWriteOptions{}); !errors.Is(err, ErrVarExists) {
		t.Errorf("existing variable: %v", err)
	}
	for _, v := range []string{"", "a\nb", "a\rb", "a\x00b"} {
		if err := SetEnvVar(path, "NEW", v, EnvWriteOptions{}); err == nil {
			t.Errorf("value %q accepted", v)
		}
	}
	if err := SetEnvVar(path, "1BAD", "value", EnvWriteOptions{}); err == nil {
		t.Error("bad name accepted")
	}
	if got, _ := os.ReadFile(path); string(got) != "TAKEN=1\n" {
		t.Errorf("refusals changed the file: %q", got)
	}

	link := filepath.Join(dir, "link.env")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if err := SetEnvVar(link, "NEW", "value-1234", EnvWriteOptions{}); !errors.Is(err, ErrEnvSymlink) {
		t.Errorf("symlink: %v", err)
	}
	if err := SetEnvVar(link, "NEW", "value-1234", EnvWriteOptions{AllowSymlink: true}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the symlink was replaced by a file")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("a loose 0644 file was not tightened: %v", fi.Mode().Perm())
	}
}

func TestSetEnvVarRefusesUnparsableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".env")
	const secret = "csk_0123456789abcdef0123456789abcdef0123456789abcdef"
	before := "A=1\nB=\"" + secret + "\n"
	if err := os.WriteFile(path, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	err := SetEnvVar(path, "NEW", "value-1234", EnvWriteOptions{})
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "line 2 (B)") {
		t.Errorf("error %v should name line 2 and B without the value", err)
	}
	if got, _ := os.ReadFile(path); string(got) != before {
		t.Error("an unparsable file was rewritten")
	}
	if _, err := ReadEnvFile(path); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("ReadEnvFile error %v", err)
	}
}

func TestReadEnvFileMissingIsEmpty(t *testing.T) {
	for _, p := range []string{"", filepath.Join(t.TempDir(), "absent.env")} {
		vars, err := ReadEnvFile(p)
		if err != nil || len(vars) != 0 {
			t.Errorf("ReadEnvFile(%q) = %v, %v", p, vars, err)
		}
	}
}

func TestWriteSecretFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ci.token")
	if err := WriteSecretFile(path, "kg_pat_secret-value"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v %v", fi, err)
	}
	if err := WriteSecretFile(path, "other"); err == nil {
		t.Error("an existing file was overwritten")
	}
	if got, _ := os.ReadFile(path); string(got) != "kg_pat_secret-value\n" {
		t.Errorf("content %q", got)
	}
	if err := WriteSecretFile(filepath.Join(t.TempDir(), "missing", "x"), "v"); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

func FuzzSetEnvVar(f *testing.F) {
	for _, s := range []string{"", "A=1\n", "# c\r\nexport K='v' # x\r\n", "K=\"a b\"\nL=2", "K=a # b # c"} {
		f.Add(s, "value-123")
	}
	f.Fuzz(func(t *testing.T, before, value string) {
		path := filepath.Join(t.TempDir(), ".env")
		if err := os.WriteFile(path, []byte(before), 0o600); err != nil {
			t.Fatal(err)
		}
		old, perr := ReadEnvFile(path)
		err := SetEnvVar(path, "K", value, EnvWriteOptions{Overwrite: true})
		got, _ := os.ReadFile(path)
		if err != nil {
			if string(got) != before {
				t.Fatalf("failed write changed the file: %q -> %q", before, got)
			}
			return
		}
		if perr != nil {
			t.Fatalf("wrote over an unparsable file")
		}
		after, err := ReadEnvFile(path)
		if err != nil || after["K"] != value {
			t.Fatalf("K = %q (%v)", after["K"], err)
		}
		for k, v := range old {
			if k != "K" && after[k] != v {
				t.Fatalf("%s changed", k)
			}
		}
	})
}

func TestIsEnvName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"KEYGATE_TOKEN", true},
		{"_x", true},
		{"a1", true},
		{strings.Repeat("A", 128), true},
		{strings.Repeat("A", 129), false},
		{"", false},
		{"1A", false},
		{"A-B", false},
		{"A.B", false},
		{"A B", false},
		{"É", false},
	}
	for _, tc := range tests {
		if got := IsEnvName(tc.name); got != tc.want {
			t.Errorf("IsEnvName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSetEnvVarLocksAgainstOtherProcesses: processes writing variables into
// one env file at once (a stdio keygate, an HTTP one and the token CLI may
// share it) lose none of them (issue 12, finding 9: 60 tool deliveries
// racing 60 CLI creates lost 8 of 120, all reported as success).
func TestSetEnvVarLocksAgainstOtherProcesses(t *testing.T) {
	if path := os.Getenv("KEYGATE_ENVLOCK_CHILD"); path != "" {
		prefix := os.Getenv("KEYGATE_ENVLOCK_PREFIX")
		for i := range 30 {
			if err := SetEnvVar(path, fmt.Sprintf("%s_%d_TOKEN", prefix, i), "v", EnvWriteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	path := filepath.Join(t.TempDir(), ".env")
	var cmds []*exec.Cmd
	for _, prefix := range []string{"A", "B", "C"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSetEnvVarLocksAgainstOtherProcesses$")
		cmd.Env = append(os.Environ(), "KEYGATE_ENVLOCK_CHILD="+path, "KEYGATE_ENVLOCK_PREFIX="+prefix)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for i := range 30 {
		if err := SetEnvVar(path, fmt.Sprintf("P_%d_TOKEN", i), "v", EnvWriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("a writer process failed: %v", err)
		}
	}
	vars, err := ReadEnvFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(vars) != 120 {
		t.Errorf("%d of 120 variables survived four processes writing at once", len(vars))
	}
}

// TestReadEnvFileNamesTheBadLine: a line that is not NAME=value is reported
// by its number (blank lines and comments count), without its text, which
// may be a secret pasted on a line of its own.
func TestReadEnvFileNamesTheBadLine(t *testing.T) {
	const secret = "csk_0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name, content, want string
	}{
		{"a word without =", "A=1\n" + secret + "\nB=2\n", "line 2: not NAME=value"},
		{"after blank lines and a comment", "A=1\n\n# settings\n\n" + secret + "\n", "line 5: not NAME=value"},
		{"after CRLF lines", "A=1\r\n\r\n" + secret + "\r\n", "line 3: not NAME=value"},
		{"an unclosed quote after a blank line", "A=1\n\nB=\"" + secret + "\n", "line 3 (B)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), ".env")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ReadEnvFile(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), secret) {
				t.Errorf("error %v, want one containing %q and not the value", err, tc.want)
			}
		})
	}
}

func TestRemoveEnvVars(t *testing.T) {
	dropGone := func(name, value string) bool { return value == "gone" }
	tests := []struct {
		name, before, after string
		removed             []string
	}{
		{"nothing to remove leaves the file", "A=1\n", "A=1\n", nil},
		{"removes one line, keeps comments and order", "# c\nA=1\nCI_TOKEN=gone\nB=2 # b\n", "# c\nA=1\nB=2 # b\n", []string{"CI_TOKEN"}},
		{"removes every assignment of the name", "X_TOKEN=old\nA=1\nX_TOKEN=gone\n", "A=1\n", []string{"X_TOKEN"}},
		{"keeps CRLF", "A=1\r\nY_KEY='gone'\r\nB=2\r\n", "A=1\r\nB=2\r\n", []string{"Y_KEY"}},
		{"export and quotes", "export Z_PAT=\"gone\"\nA=1", "A=1", []string{"Z_PAT"}},
		{"two names, sorted", "B_TOKEN=gone\nA_TOKEN=gone\nC=3\n", "C=3\n", []string{"A_TOKEN", "B_TOKEN"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), ".env")
			if err := os.WriteFile(path, []byte(tc.before), 0o600); err != nil {
				t.Fatal(err)
			}
			removed, err := RemoveEnvVars(path, dropGone, EnvWriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(removed) != fmt.Sprint(tc.removed) {
				t.Errorf("removed %v, want %v", removed, tc.removed)
			}
			if got, _ := os.ReadFile(path); string(got) != tc.after {
				t.Errorf("file %q, want %q", got, tc.after)
			}
		})
	}
}

func TestRemoveEnvVarsRefusesWhatItCannotRemoveCleanly(t *testing.T) {
	// A double-quoted value may span lines: removing only its first line
	// would turn the rest into other variables.
	path := filepath.Join(t.TempDir(), ".env")
	before := "A=1\nM_TOKEN=\"gone\nINJECTED=1\"\n"
	if err := os.WriteFile(path, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	vars, err := ReadEnvFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = RemoveEnvVars(path, func(name, _ string) bool { return name == "M_TOKEN" }, EnvWriteOptions{})
	if err == nil || !strings.Contains(err.Error(), "edit the file by hand") {
		t.Fatalf("err = %v, want a refusal (vars were %q)", err, vars)
	}
	if got, _ := os.ReadFile(path); string(got) != before {
		t.Errorf("file changed to %q", got)
	}
}

func TestRemoveEnvVarsMissingFile(t *testing.T) {
	removed, err := RemoveEnvVars(filepath.Join(t.TempDir(), ".env"), func(string, string) bool { return true }, EnvWriteOptions{})
	if err != nil || removed != nil {
		t.Fatalf("got %v, %v; want nothing", removed, err)
	}
}
