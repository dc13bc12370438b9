package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
	"github.com/keygate/keygate/provider/cencori/cencoritest"
	"github.com/keygate/keygate/provider/cockpit/cockpittest"
	"github.com/keygate/keygate/provider/cosmic/cosmictest"
)

// doctor runs keygate doctor on the instance with the process environment
// env. It fails the test if any of secrets shows in its output.
func doctor(t *testing.T, in instance, env []string, secrets []string, extra ...string) (string, int) {
	t.Helper()
	stdout, stderr, code := keygate(t, env, "", append([]string{"doctor"}, in.args(extra...)...)...)
	for _, s := range secrets {
		if s != "" && strings.Contains(stdout+stderr, s) {
			t.Errorf("doctor printed a secret (%s):\n%s\n%s", auth.Mask(s), stdout, stderr)
		}
	}
	return stdout + stderr, code
}

func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// TestDoctorWithoutStore: a fresh machine is not a problem; doctor says
// serve creates the store, and creates nothing itself.
func TestDoctorWithoutStore(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	out, code := doctor(t, in, nil, nil)
	if code != 0 {
		t.Errorf("exit %d:\n%s", code, out)
	}
	wantLines(t, out, "no store yet at "+in.store+"; `keygate serve` creates it", "first run mints an admin token", "all is well",
		"--store", "flag", "--log-level", "default")
	if _, err := os.Stat(filepath.Dir(in.store)); !os.IsNotExist(err) {
		t.Errorf("doctor created the store's directory: %v", err)
	}
}

// TestDoctorMasksURLPasswords: a store or audit location given as a URL
// shows its password as ***.
func TestDoctorMasksURLPasswords(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	const password = "pw-canary-5e1d"
	out, _ := doctor(t, in, []string{"KEYGATE_AUDIT_FILE=postgres://audit:" + password + "@db.example/keygate"}, []string{password},
		"--store", "postgres://kg:"+password+"@db.example/keygate")
	wantLines(t, out, "postgres://kg:***@db.example/keygate", "postgres://audit:***@db.example/keygate")
}

// TestDoctorHealthy: a working keygate passes, and doctor leaves the store
// and the env file as they were.
func TestDoctorHealthy(t *testing.T) {
	t.Parallel()
	in := prepared(t)
	tok := in.token(t)
	before := readAll(t, in.store, in.envFile)
	out, code := doctor(t, in, nil, []string{tok})
	if code != 0 {
		t.Errorf("exit %d:\n%s", code, out)
	}
	wantLines(t, out, "schema version", "1 key: 1 active, 0 revoked, 0 expired", "verifies: key", `"admin (first run)"`, "scopes admin",
		"all is well")
	if !regexp.MustCompile(`KEYGATE_TOKEN +` + regexp.QuoteMeta(auth.Mask(tok)) + ` +env file\n`).MatchString(out) {
		t.Errorf("the token's line is missing or wrong:\n%s", out)
	}
	if after := readAll(t, in.store, in.envFile); !bytes.Equal(before, after) {
		t.Error("doctor changed the store or the env file")
	}
}

func readAll(t *testing.T, paths ...string) []byte {
	t.Helper()
	var out []byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// TestDoctorToken: each way keygate's own token can be wrong is one FIX
// line saying what and how to fix it, exit status 1, and the token never
// printed.
func TestDoctorToken(t *testing.T) {
	t.Parallel()
	in := prepared(t)
	other := prepared(t)
	revoked := mintCLI(t, in, "gone", "content:read")
	if _, stderr, err := runCLI(t, in, "token revoke", publicID(t, revoked)); err != nil {
		t.Fatalf("token revoke: %v %s", err, stderr)
	}
	expiring := mintCLI(t, in, "short", "admin", "--expires-in-days", "1")
	fromOther := other.token(t)
	mistyped := fromOther[:20] + flip(fromOther[20]) + fromOther[21:]
	const canary = "canary-NOT-A-TOKEN-7f3a9c"

	tests := []struct {
		name  string
		env   []string
		extra []string
		want  []string
	}{
		{"from another store", []string{"KEYGATE_TOKEN=" + fromOther}, nil,
			[]string{"FIX   KEYGATE_TOKEN does not verify: no key in this store has its id " + publicID(t, fromOther), "fix: set KEYGATE_TOKEN in your environment"}},
		{"revoked", []string{"KEYGATE_TOKEN=" + revoked}, nil,
			[]string{"does not verify: key " + publicID(t, revoked) + " was revoked on"}},
		{"mistyped", []string{"KEYGATE_TOKEN=" + mistyped}, nil,
			[]string{"KEYGATE_TOKEN fails its checksum", "fix: copy the whole token again"}},
		{"not a token", []string{"KEYGATE_TOKEN=" + canary}, nil,
			[]string{"KEYGATE_TOKEN does not have a keygate token's shape"}},
		{"expiring", []string{"KEYGATE_TOKEN=" + expiring}, nil,
			[]string{"verifies: key " + publicID(t, expiring), "FIX   KEYGATE_TOKEN expires", "within the expiry warning (168h0m0s); fix: rotate it with credentials_rotate"}},
		{"missing", nil, []string{"--env-file", filepath.Join(t.TempDir(), "none.env")},
			[]string{"FIX   not set: over stdio keygate then hides every tool", "fix: keygate token create --name NAME --scopes LIST --env-var KEYGATE_TOKEN"}},
		{"no store to check it against", []string{"KEYGATE_TOKEN=" + fromOther}, []string{"--store", filepath.Join(t.TempDir(), "none.db")},
			[]string{"FIX   KEYGATE_TOKEN is set, but there is no store at", "fix: point --store (KEYGATE_STORE) at the store that issued the token"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, code := doctor(t, in, tc.env, []string{fromOther, revoked, expiring, mistyped, canary, in.token(t)}, tc.extra...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			wantLines(t, out, append(tc.want, "to fix (the lines marked FIX above)", "keygate: doctor: 1 problem to fix")...)
		})
	}
}

func publicID(t *testing.T, tok string) string {
	t.Helper()
	p, _, err := auth.ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	return p.PublicID
}

func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

// TestDoctorExpiringKey: a key other than keygate's own that expires
// within the expiry warning is named, masked, with what to do; it is not a
// problem of keygate's.
func TestDoctorExpiringKey(t *testing.T) {
	t.Parallel()
	in := prepared(t)
	short := mintCLI(t, in, "nightly ci", "content:read", "--expires-in-days", "2")
	mintCLI(t, in, "long", "content:read", "--expires-in-days", "30")
	out, code := doctor(t, in, nil, []string{short, in.token(t)})
	if code != 0 {
		t.Errorf("exit %d:\n%s", code, out)
	}
	wantLines(t, out, "3 keys: 3 active", "warn  key "+publicID(t, short)+` "nightly ci" (`+auth.Mask(short)+") expires",
		"within the expiry warning (168h0m0s): rotate it")
	if strings.Contains(out, `"long"`) {
		t.Errorf("a key far from expiry is reported:\n%s", out)
	}
	// A shorter window leaves it out.
	out, _ = doctor(t, in, []string{"KEYGATE_EXPIRY_WARNING=1h"}, nil)
	wantLines(t, out, "--expiry-warning   1h", "environment")
	if strings.Contains(out, "nightly ci") {
		t.Errorf("expiry warning of 1h still reports a key that expires in 2 days:\n%s", out)
	}
}

// TestDoctorRemoteProviders: each remote provider is checked live against
// its fake; its secrets are masked (the fakes' keys are the canaries), what
// is not secret is shown, a refused key and an unreachable provider are
// problems to fix.
func TestDoctorRemoteProviders(t *testing.T) {
	t.Parallel()
	in := prepared(t)

	cosmicFake := cosmictest.New()
	cosmicSrv := cosmicFake.Start()
	t.Cleanup(cosmicSrv.Close)
	cosmicEnv := []string{"COSMIC_BUCKET_SLUG=" + cosmicFake.Bucket(), "COSMIC_READ_KEY=" + cosmicFake.ReadKey(), "COSMIC_WRITE_KEY=" + cosmicFake.WriteKey(),
		"COSMIC_PAT=" + cosmicFake.PAT(), "COSMIC_API_URL=" + cosmicFake.APIURL(), "COSMIC_DAPI_URL=" + cosmicFake.DAPIURL()}
	cencoriSrv := cencoritest.New(cencoritest.WithMemoryEnabled()).Start()
	t.Cleanup(cencoriSrv.Close)
	cockpitFake := cockpittest.New()
	cockpitSrv := cockpitFake.Start()
	t.Cleanup(cockpitSrv.Close)
	agrentingSrv := agrentingtest.New().Start()
	t.Cleanup(agrentingSrv.Close)
	dead := cencoritest.New().Start()
	dead.Close() // a loopback port with nothing behind it

	secrets := []string{cosmicFake.ReadKey(), cosmicFake.WriteKey(), cosmicFake.PAT(), cencoritest.DemoSecretKey, cockpittest.DemoRWKey,
		agrentingtest.DemoAgentKey, "csk_test_c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0", "API-canary-without-a-url-000000000000"}

	tests := []struct {
		name string
		env  []string
		code int
		want []string
	}{
		{"cosmic", cosmicEnv, 0, []string{"Cosmic (headless CMS)", "ok    reachable", "COSMIC_BUCKET_SLUG  " + cosmicFake.Bucket(),
			"COSMIC_READ_KEY     " + auth.Mask(cosmicFake.ReadKey()), "COSMIC_API_URL      " + cosmicFake.APIURL(),
			"COSMIC_READ_KEY (Cosmic bucket read key, " + auth.Mask(cosmicFake.ReadKey()) + "): ok", "may: content:read",
			"not configured: cockpit, cencori, agrenting"}},
		{"cencori", []string{"CENCORI_API_KEY=" + cencoritest.DemoSecretKey, "CENCORI_API_URL=" + cencoriSrv.URL, "CENCORI_GATEWAY_URL=" + cencoriSrv.URL}, 0,
			[]string{"Cencori (AI gateway)", "ok    reachable", "CENCORI_API_KEY (", "): ok", "may: content:"}},
		{"cockpit", []string{"COCKPIT_URL=" + cockpitFake.URL(), "COCKPIT_API_KEY=" + cockpittest.DemoRWKey, "COCKPIT_MODELS=posts"}, 0,
			[]string{"Cockpit (self-hosted CMS)", "ok    reachable", "COCKPIT_MODELS   posts"}},
		{"agrenting", []string{"AGRENTING_API_KEY=" + agrentingtest.DemoAgentKey, "AGRENTING_API_URL=" + agrentingSrv.URL + "/api/v1"}, 0,
			[]string{"Agrenting (agent platform)", "ok    reachable", "owner: agent " + agrentingtest.DemoAgentName}},
		{"refused key", slicesWith(cosmicEnv, "COSMIC_READ_KEY=", "COSMIC_READ_KEY=wrongwrongwrongwrong"), 1,
			[]string{"FIX   COSMIC_READ_KEY (Cosmic bucket read key, …rong): rejected", "fix: put a working key in COSMIC_READ_KEY (from environment)"}},
		{"unreachable", []string{"CENCORI_API_KEY=csk_test_c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0", "CENCORI_API_URL=" + dead.URL, "CENCORI_GATEWAY_URL=" + dead.URL}, 1,
			[]string{"FIX   Cencori (AI gateway) could not be reached", "fix: check its URL variable and your network"}},
		{"incomplete configuration", []string{"COCKPIT_API_KEY=API-canary-without-a-url-000000000000"}, 1,
			[]string{"COCKPIT_API_KEY  " + auth.Mask("API-canary-without-a-url-000000000000"), "FIX   ", "COCKPIT_URL", "fix: correct the variable it names"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, code := doctor(t, in, tc.env, secrets)
			if code != tc.code {
				t.Errorf("exit %d, want %d:\n%s", code, tc.code, out)
			}
			wantLines(t, out, tc.want...)
		})
	}
}

// slicesWith is env with the variable that has prefix replaced by kv.
func slicesWith(env []string, prefix, kv string) []string {
	out := make([]string, 0, len(env))
	for _, e := range env {
		if strings.HasPrefix(e, prefix) {
			e = kv
		}
		out = append(out, e)
	}
	return out
}
