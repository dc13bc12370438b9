package delivery

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// layout is keygate's files as a first run lays them out, with the env file
// in the parent of the store's directory (the default: ./.env beside a
// store under the project).
func layout(t *testing.T) (Places, string) {
	t.Helper()
	root := t.TempDir()
	store := filepath.Join(root, "data")
	for _, d := range []string{filepath.Join(store, "rotation"), filepath.Join(store, "keys")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	env := filepath.Join(root, ".env")
	if err := os.WriteFile(env, []byte("KEYGATE_TOKEN=kg_pat_x\nCI_TOKEN=old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Places{EnvFile: env, KeysDir: filepath.Join(store, "keys")}, root
}

func TestParse(t *testing.T) {
	p, root := layout(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		arg      string
		want     Spec
		contains string // refusal
	}{
		{"", Spec{Kind: KeysDir, Target: p.KeysDir}, ""},
		{"reveal", Spec{Kind: Reveal}, ""},
		{"session", Spec{Kind: Session}, ""},
		{"env:CI_PUBLISHER_TOKEN", Spec{Kind: Env, Target: "CI_PUBLISHER_TOKEN"}, ""},
		{"env:DEPLOY_KEY", Spec{Kind: Env, Target: "DEPLOY_KEY"}, ""},
		{"env:KEYGATE_TOKEN", Spec{}, "keygate's own or a provider's"},
		{"env:KEYGATE_TRANSPORT", Spec{}, "keygate's own or a provider's"},
		{"env:KEYGATE_AUDIT_FILE", Spec{}, "keygate's own or a provider's"},
		{"env:keygate_token", Spec{}, "keygate's own or a provider's"},
		{"env:AGRENTING_API_KEY", Spec{}, "keygate's own or a provider's"},
		{"env:COSMIC_WRITE_KEY", Spec{}, "keygate's own or a provider's"},
		{"env:CENCORI_API_KEY", Spec{}, "keygate's own or a provider's"},
		{"env:COCKPIT_API_KEY", Spec{}, "keygate's own or a provider's"},
		{"env:PATH", Spec{}, "ending in _TOKEN"},
		{"env:LD_PRELOAD", Spec{}, "ending in _TOKEN"},
		{"env:ci_token", Spec{}, "use capitals"},
		{"env:_TOKEN", Spec{}, "use capitals"},
		{"env:", Spec{}, "use capitals"},
		{"file:ci.token", Spec{Kind: File, Target: filepath.Join(p.KeysDir, "ci.token")}, ""},
		{"file:" + filepath.Join(p.KeysDir, "ci.token"), Spec{Kind: File, Target: filepath.Join(p.KeysDir, "ci.token")}, ""},
		{"file:" + filepath.Join(root, "ci.token"), Spec{Kind: File, Target: filepath.Join(root, "ci.token")}, ""},
		{"file:" + filepath.Join(root, "data", "rotation", "KEYGATE_TOKEN.journal"), Spec{}, "must end in .token"},
		{"file:" + filepath.Join(root, "data", "rotation", "x.token"), Spec{}, "not in keygate's keys directory"},
		{"file:" + filepath.Join(root, "data", "x.token"), Spec{}, "not in keygate's keys directory"},
		{"file:" + filepath.Join(p.KeysDir, "..", "rotation", "x.token"), Spec{}, "not in keygate's keys directory"},
		{"file:" + filepath.Join(root, "link", "x.token"), Spec{}, "not in keygate's keys directory"},
		{"file:" + filepath.Join(root, ".env"), Spec{}, "must end in .token"},
		{"file:" + filepath.Join(root, "audit.jsonl"), Spec{}, "must end in .token"},
		{"file:sub/ci.token", Spec{}, "may not name a directory"},
		{"file:../ci.token", Spec{}, "may not name a directory"},
		{"file:/etc/cron.d/x.token", Spec{}, "not in keygate's keys directory"},
		{"file:.hidden.token", Spec{}, "must end in .token"},
		{"file:", Spec{}, "empty"},
		{"file:a\nb.token", Spec{}, "control characters"},
		{"bogus", Spec{}, "not a delivery"},
	}
	for _, tc := range tests {
		t.Run(tc.arg, func(t *testing.T) {
			got, err := p.Parse(tc.arg)
			if tc.contains != "" {
				var fe *provider.FieldError
				if !errors.As(err, &fe) || fe.Field != "deliver" || !strings.Contains(fe.Problem, tc.contains) || fe.Fix == "" {
					t.Fatalf("Parse(%q) = %+v, %v; want a refusal containing %q", tc.arg, got, err, tc.contains)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", tc.arg, got, err, tc.want)
			}
		})
	}
}

func TestPreflightPutHolds(t *testing.T) {
	p, root := layout(t)
	secret := auth.NewSecret("kg_pat_canarycanarycanary")

	if err := p.Preflight(Spec{Kind: Env, Target: "CI_TOKEN"}); err == nil || !strings.Contains(err.Error(), "never overwrites") {
		t.Errorf("preflight of a set variable = %v", err)
	}
	if err := p.Preflight(EnvVar("KEYGATE_TOKEN")); err != nil {
		t.Errorf("keygate's own variable, which follows its rotation: %v", err)
	}
	s, err := p.Put(Spec{Kind: Env, Target: "NEW_TOKEN"}, "K1", secret)
	if err != nil || s.Target != "NEW_TOKEN" {
		t.Fatal(s, err)
	}
	if v, err := p.Holds(s, ""); err != nil || v != secret.Reveal() {
		t.Errorf("Holds(env) = %q, %v", v, err)
	}
	if _, err := p.Put(Spec{Kind: Env, Target: "NEW_TOKEN"}, "K1", secret); !errors.Is(err, auth.ErrVarExists) {
		t.Errorf("second put of the same variable = %v, want ErrVarExists", err)
	}

	keys, _ := p.Default()
	if v, err := p.Holds(keys, "K2"); err != nil || v != "" {
		t.Errorf("Holds before the write = %q, %v", v, err)
	}
	written, err := p.Put(keys, "K2", secret)
	if err != nil || written.Kind != File || written.Target != filepath.Join(p.KeysDir, "K2.token") {
		t.Fatal(written, err)
	}
	if fi, err := os.Stat(written.Target); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("keys-dir file: %v, %v", fi, err)
	}
	if v, _ := p.Holds(keys, "K2"); v != secret.Reveal() {
		t.Errorf("Holds(keysdir) = %q", v)
	}
	if err := p.Preflight(written); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("preflight of an existing file = %v", err)
	}
	beside, err := p.Parse("file:" + filepath.Join(root, "ci.token"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Preflight(beside); err != nil {
		t.Fatal(err)
	}
	for _, s := range []Spec{{Kind: Reveal}, {Kind: Session}} {
		if _, err := p.Put(s, "K3", secret); err != nil || s.Durable() {
			t.Errorf("%s: %v, durable=%v", s, err, s.Durable())
		}
	}
}

func TestSweepRemovesOnlyRevokedDeliveries(t *testing.T) {
	p, root := layout(t)
	mint := func() (string, string) {
		tok, parsed, err := auth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		return tok, parsed.PublicID
	}
	deadTok, deadID := mint()
	live, _ := mint()
	write := func(path, body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The revoked key sits in a delivery variable, in keygate's own
	// variable (an operator's choice: never touched), in a keys-directory
	// file, beside the env file, and in files a delivery never writes.
	write(p.EnvFile, "KEYGATE_TOKEN="+deadTok+"\nCI_TOKEN="+deadTok+"\nLIVE_TOKEN="+live+"\nNOTE=keep\n")
	write(filepath.Join(p.KeysDir, deadID+".token"), deadTok+"\n")
	write(filepath.Join(p.KeysDir, "live.token"), live)
	write(filepath.Join(root, "ci.token"), deadTok)
	write(filepath.Join(root, "notes.txt"), deadTok)
	sub := filepath.Join(p.KeysDir, "nested")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(sub, "x.token"), deadTok)
	outside := t.TempDir()
	write(filepath.Join(outside, "target.token"), deadTok)
	if err := os.Symlink(filepath.Join(outside, "target.token"), filepath.Join(p.KeysDir, "link.token")); err != nil {
		t.Fatal(err)
	}

	removed, err := p.Sweep(func(id string) bool { return id == deadID })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"env:CI_TOKEN", "file:" + filepath.Join(p.KeysDir, deadID+".token"), "file:" + filepath.Join(root, "ci.token")}
	if strings.Join(removed, "|") != strings.Join(want, "|") {
		t.Errorf("removed %q\nwant    %q", removed, want)
	}
	vars, err := auth.ReadEnvFile(p.EnvFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := vars["CI_TOKEN"]; ok {
		t.Error("CI_TOKEN still holds the revoked key")
	}
	if vars["KEYGATE_TOKEN"] != deadTok || vars["LIVE_TOKEN"] != live || vars["NOTE"] != "keep" {
		t.Errorf("other variables changed: %q", vars)
	}
	for _, stays := range []string{filepath.Join(p.KeysDir, "live.token"), filepath.Join(root, "notes.txt"), filepath.Join(sub, "x.token"), filepath.Join(outside, "target.token"), filepath.Join(p.KeysDir, "link.token")} {
		if _, err := os.Lstat(stays); err != nil {
			t.Errorf("%s: %v, want it left alone", stays, err)
		}
	}
	for _, r := range removed {
		if strings.Contains(r, deadTok) {
			t.Fatalf("report %q holds the secret", r)
		}
	}
}
