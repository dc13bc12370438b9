package agrenting

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/renameio/v2"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
)

func TestListCreateRevoke(t *testing.T) {
	f := newFixture(t, keyEnv())
	ctx := t.Context()
	keys, err := f.c.ListKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].ID != "cred_demo" || !strings.HasSuffix(keys[0].Masked, agrentingtest.DemoAgentKey[len(agrentingtest.DemoAgentKey)-4:]) {
		t.Fatalf("%+v %v", keys, err)
	}
	noSecret(t, keys[0].Masked, agrentingtest.DemoAgentKey)
	issued, err := f.c.CreateKey(ctx, "ci")
	if err != nil || issued.Secret.IsZero() || issued.Key.Name != "ci" || issued.Key.RevokedAt.IsZero() == false {
		t.Fatalf("%+v %v", issued, err)
	}
	// The new key works on its own.
	g := newFixtureAt(t, env{EnvAPIKey: issued.Secret.Reveal()}, f.base, f.fake, f.clk)
	if _, err := g.c.List(ctx, tasksQ); err != nil {
		t.Fatalf("new key: %v", err)
	}
	k, already, err := f.c.RevokeKey(ctx, issued.Key.ID)
	if err != nil || already || k.RevokedAt.IsZero() {
		t.Fatalf("%+v %v %v", k, already, err)
	}
	if _, err := g.c.List(ctx, tasksQ); !errors.Is(err, provider.ErrUnauthorized) {
		t.Errorf("revoked key still works: %v", err)
	}
	deletes := f.fake.Requests("/api/v1/agents/" + agrentingtest.DemoAgentID + "/credentials/" + issued.Key.ID)
	k, already, err = f.c.RevokeKey(ctx, issued.Key.ID)
	if err != nil || !already || k.RevokedAt.IsZero() || f.fake.Requests("/api/v1/agents/"+agrentingtest.DemoAgentID+"/credentials/"+issued.Key.ID) != deletes {
		t.Errorf("second revoke: %v %v", already, err)
	}
	_, _, err = f.c.RevokeKey(ctx, "cred_nope")
	wantNotFound(t, err, "key")
	_, _, err = f.c.RevokeKey(ctx, "cred_demo")
	wantFieldError(t, err, "id")
}

// writeEnvFile is what keygate's OnRotate does: write the new key
// durably before RotateKey returns.
func writeEnvFile(path string) func(auth.Secret) error {
	return func(s auth.Secret) error {
		return renameio.WriteFile(path, []byte(EnvAPIKey+"="+s.Reveal()+"\n"), 0o600)
	}
}

func readEnvFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(string(b)), EnvAPIKey+"=")
	if !ok {
		t.Fatalf("env file %q", b)
	}
	return v
}

// Rotating the key keygate uses: the platform revokes the old key at once;
// OnRotate has written the new one before RotateKey returns, so a crash
// right after loses nothing: a new process reads the file and works.
func TestRotateOwnKeySurvivesACrash(t *testing.T) {
	for _, withSession := range []bool{false, true} {
		e := keyEnv()
		if !withSession {
			e[EnvAgentID] = agrentingtest.DemoAgentID // so nothing authenticates
		}
		f := newFixture(t, e)
		ctx := t.Context()
		if withSession {
			if err := f.c.Authenticate(ctx); err != nil {
				t.Fatal(err)
			}
		}
		file := filepath.Join(t.TempDir(), ".env")
		f.c.OnRotate(writeEnvFile(file))
		issued, err := f.c.RotateKey(ctx, "cred_demo")
		if err != nil {
			t.Fatal(err)
		}
		// "Crash": the client is gone; only the file is left.
		stored := readEnvFile(t, file)
		if stored != issued.Secret.Reveal() || stored == agrentingtest.DemoAgentKey {
			t.Fatalf("the file holds %q", auth.Mask(stored))
		}
		restarted := newFixtureAt(t, env{EnvAPIKey: stored}, f.base, f.fake, f.clk)
		if _, err := restarted.c.List(ctx, tasksQ); err != nil {
			t.Fatalf("after restart: %v", err)
		}
		old := newFixtureAt(t, keyEnv(), f.base, f.fake, f.clk)
		if _, err := old.c.List(ctx, tasksQ); !errors.Is(err, provider.ErrUnauthorized) {
			t.Errorf("old key: %v", err)
		}
		// The rotating client switched to the new key too (and renews an
		// expired session with it).
		if f.fake.SessionCount() > 0 != withSession {
			t.Errorf("sessions: %d", f.fake.SessionCount())
		}
		f.fake.ExpireSessions()
		if _, err := f.c.List(ctx, tasksQ); err != nil {
			t.Errorf("the client after rotating: %v", err)
		}
		if !contains(f.c.Secrets(), stored) {
			t.Error("Secrets() lacks the new key")
		}
	}
}

// OnRotate failing: the rotation happened, so RotateKey returns the issued
// key and an error that carries it too.
func TestRotatePersistFailure(t *testing.T) {
	f := newFixture(t, keyEnv())
	f.c.OnRotate(func(auth.Secret) error { return errors.New("disk full") })
	issued, err := f.c.RotateKey(t.Context(), "cred_demo")
	var pe *RotatePersistError
	if !errors.As(err, &pe) || pe.Issued.Secret.IsZero() || pe.Issued.Secret.Reveal() != issued.Secret.Reveal() || issued.Secret.IsZero() {
		t.Fatalf("%v", err)
	}
	if !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "no longer works") || !strings.Contains(err.Error(), pe.Issued.Key.ID) {
		t.Errorf("%v", err)
	}
	noSecret(t, err.Error(), issued.Secret.Reveal(), agrentingtest.DemoAgentKey)
	if _, err := f.c.List(t.Context(), tasksQ); err != nil {
		t.Errorf("the client still uses the old key: %v", err)
	}
}

// Rotating another key: no callback, the client keeps its key.
func TestRotateOtherKey(t *testing.T) {
	f := newFixture(t, keyEnv())
	id := f.fake.AddCredential(agrentingtest.DemoAgentID, "spare", "agr_spare_key_0000000000000000")
	called := false
	f.c.OnRotate(func(auth.Secret) error { called = true; return nil })
	issued, err := f.c.RotateKey(t.Context(), id)
	if err != nil || called || issued.Secret.IsZero() {
		t.Fatalf("%v called=%v", err, called)
	}
	if _, err := f.c.List(t.Context(), tasksQ); err != nil {
		t.Errorf("%v", err)
	}
	_, err = f.c.RotateKey(t.Context(), id)
	wantFieldError(t, err, "id") // revoked by the rotation
	_, err = f.c.RotateKey(t.Context(), "cred_nope")
	wantNotFound(t, err, "key")
}

// The rotation's answer is lost. With a session (which outlives the key in
// the fake) the retry carries the same idempotency key and gets the same
// new key replayed; exactly one new credential exists.
func TestRotateLostAnswer(t *testing.T) {
	f := newFixture(t, keyEnv())
	ctx := t.Context()
	if err := f.c.Authenticate(ctx); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), ".env")
	f.c.OnRotate(writeEnvFile(file))
	rotate := "/api/v1/agents/" + agrentingtest.DemoAgentID + "/credentials/cred_demo/rotate"
	f.fake.DropNextResponseOn("POST", rotate)
	issued, err := f.c.RotateKey(ctx, "cred_demo")
	if err != nil {
		t.Fatal(err)
	}
	creds := f.fake.Credentials(agrentingtest.DemoAgentID)
	if len(creds) != 2 || creds[1].Secret != issued.Secret.Reveal() || readEnvFile(t, file) != creds[1].Secret || f.fake.Requests(rotate) != 2 {
		t.Fatalf("%d credentials, %d requests", len(creds), f.fake.Requests(rotate))
	}
	// Without a session the retry presents the dead key: the outcome is
	// unknown and said so, without a secret.
	noSession := keyEnv()
	noSession[EnvAgentID] = agrentingtest.DemoAgentID // so nothing authenticates
	g := newFixture(t, noSession)
	g.fake.DropNextResponseOn("POST", rotate)
	_, err = g.c.RotateKey(ctx, "cred_demo")
	if !errors.Is(err, provider.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "dashboard") {
		t.Fatalf("%v", err)
	}
	noSecret(t, err.Error(), agrentingtest.DemoAgentKey)
}

// The undocumented paths come from configuration.
func TestCredentialPathOverrides(t *testing.T) {
	rot, rev := "/agents/:agent_id/keys/:id/roll", "/agents/:agent_id/keys/:id"
	clk := newClock()
	fake := agrentingtest.New(agrentingtest.WithClock(clk.Now), agrentingtest.WithCredentialPaths(rot, rev))
	hs := fake.Start()
	defer hs.Close()
	spare := fake.AddCredential(agrentingtest.DemoAgentID, "spare", "agr_spare_key_0000000000000000")
	other := fake.AddCredential(agrentingtest.DemoAgentID, "other", "agr_other_key_0000000000000000")
	// Defaults against a platform on other paths: a clear error.
	f := newFixtureAt(t, keyEnv(), hs.URL+"/api/v1", fake, clk)
	_, err := f.c.RotateKey(t.Context(), spare)
	if !errors.Is(err, provider.ErrUnsupported) || !strings.Contains(err.Error(), EnvRotatePath) {
		t.Fatalf("%v", err)
	}
	_, _, err = f.c.RevokeKey(t.Context(), other)
	if !errors.Is(err, provider.ErrUnsupported) || !strings.Contains(err.Error(), EnvRevokePath) {
		t.Fatalf("%v", err)
	}
	e := keyEnv()
	e[EnvRotatePath], e[EnvRevokePath] = rot, rev
	g := newFixtureAt(t, e, hs.URL+"/api/v1", fake, clk)
	if _, err := g.c.RotateKey(t.Context(), spare); err != nil {
		t.Fatal(err)
	}
	if _, already, err := g.c.RevokeKey(t.Context(), other); err != nil || already {
		t.Fatal(err)
	}
}
