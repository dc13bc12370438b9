package agrenting

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
	"github.com/keygate/keygate/rotation"
)

// envAround is what the env file holds besides the key; a rotation must
// leave it byte for byte.
const envAround = "# keygate\r\nexport OTHER='a b'\r\n"

// rotRig is keygate's side of an own-key rotation: an env file holding the
// demo agent key, the rotation directory, and a client wired to the engine
// as keygate wires it.
type rotRig struct {
	t       *testing.T
	f       *fixture
	dir     string
	envFile string
	eng     *rotation.Engine
}

func newRotRig(t *testing.T, opts ...agrentingtest.Option) *rotRig {
	t.Helper()
	e := keyEnv()
	e[EnvAgentID] = agrentingtest.DemoAgentID // so the client itself never authenticates
	r := &rotRig{t: t, f: newFixture(t, e, opts...), dir: t.TempDir()}
	r.envFile = filepath.Join(r.dir, ".env")
	if err := os.WriteFile(r.envFile, []byte(envAround+EnvAPIKey+"="+agrentingtest.DemoAgentKey+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.eng = r.engine(r.f.c)
	return r
}

// engine wires c to an engine the way keygate's providers.go does.
func (r *rotRig) engine(c *Client) *rotation.Engine {
	return &rotation.Engine{Name: Name, Dir: filepath.Join(r.dir, "rotation"), EnvFile: r.envFile, Legacy: EnvAPIKey, Backend: c.RotationBackend(),
		Places: delivery.Places{EnvFile: r.envFile, KeysDir: filepath.Join(r.dir, "keys")}, Follow: c.UseKey}
}

// rotate rotates the key client c uses through an engine, as keygate's
// credentials service does: the new key replaces it in the env file and the
// client switches to it. The rig's own client uses the rig's engine.
func (r *rotRig) rotate(ctx context.Context, c *Client) (provider.IssuedKey, error) {
	eng := r.eng
	if c != r.f.c {
		eng = r.engine(c)
	}
	res, err := eng.Rotate(ctx, rotation.Own(EnvAPIKey, c.CurrentKey(), 0, c.UseKey))
	if err != nil && res.NewSecret.IsZero() {
		return provider.IssuedKey{}, err
	}
	return provider.IssuedKey{Key: res.New, Secret: res.NewSecret}, nil
}

// envKey reads the key from the env file, checking the file is intact.
func (r *rotRig) envKey() string {
	r.t.Helper()
	fi, err := os.Stat(r.envFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		r.t.Fatalf("env file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(r.envFile)
	if !strings.HasPrefix(string(b), envAround) {
		r.t.Errorf("the lines around the key changed: %q", b)
	}
	vars, err := auth.ReadEnvFile(r.envFile)
	if err != nil || vars["OTHER"] != "a b" {
		r.t.Fatalf("env file no longer parses: %v", err)
	}
	return vars[EnvAPIKey]
}

// checkOneActive: exactly one of the agent's keys works, the env file's.
func (r *rotRig) checkOneActive(envKey string) {
	r.t.Helper()
	active := 0
	for _, c := range r.f.fake.Credentials(agrentingtest.DemoAgentID) {
		if c.RevokedAt.IsZero() {
			active++
			if c.Secret != envKey {
				r.t.Errorf("key %s is active but not the env file's: an orphan", c.ID)
			}
		}
	}
	if active != 1 {
		r.t.Errorf("%d active keys, want exactly the env file's", active)
	}
}

// works reports whether a new client with key can read.
func (r *rotRig) works(key string) error {
	g := newFixtureAt(r.t, env{EnvAPIKey: key, EnvAgentID: agrentingtest.DemoAgentID}, r.f.base, r.f.fake, r.f.clk)
	_, err := g.c.List(r.t.Context(), tasksQ)
	return err
}

func TestRotateOwnKeyThroughEngine(t *testing.T) {
	r := newRotRig(t)
	ctx := t.Context()
	issued, err := r.rotate(ctx, r.f.c)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.envKey(); got != issued.Secret.Reveal() || got == agrentingtest.DemoAgentKey {
		t.Fatalf("the env file holds %s, want the new key %s", auth.Mask(got), issued.Key.Masked)
	}
	r.checkOneActive(issued.Secret.Reveal())
	if err := r.works(agrentingtest.DemoAgentKey); !errors.Is(err, provider.ErrUnauthorized) {
		t.Errorf("old key: %v", err)
	}
	// The client switched to the new key.
	if _, err := r.f.c.List(ctx, tasksQ); err != nil {
		t.Errorf("the client after rotating: %v", err)
	}
	if !contains(r.f.c.Secrets(), issued.Secret.Reveal()) {
		t.Error("Secrets() lacks the new key")
	}
	// The replay session was logged out, and nothing is left behind.
	if n := r.f.fake.SessionCount(); n != 0 {
		t.Errorf("%d sessions left open", n)
	}
	entries, _ := os.ReadDir(filepath.Join(r.dir, "rotation"))
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".lock") {
			t.Errorf("left in the rotation directory: %s", e.Name())
		}
	}
	noSecret(t, r.f.logs.String(), agrentingtest.DemoAgentKey, issued.Secret.Reveal())
	// The rotate request carried the rotation id as its idempotency key
	// and the session, not the old key.
	if !strings.Contains(r.f.logs.String(), "/rotate") {
		t.Error("no rotate request was logged")
	}
}

// The rotate answer is lost: the retry carries the same idempotency key
// and the session, which outlives the old key, so Agrenting replays the
// same new key; exactly one new credential exists.
func TestRotateOwnKeyLostAnswer(t *testing.T) {
	r := newRotRig(t)
	rotate := "/api/v1/agents/" + agrentingtest.DemoAgentID + "/credentials/cred_demo/rotate"
	r.f.fake.DropNextResponseOn("POST", rotate)
	issued, err := r.rotate(t.Context(), r.f.c)
	if err != nil {
		t.Fatal(err)
	}
	if n := r.f.fake.Requests(rotate); n != 2 {
		t.Errorf("%d rotate requests, want the first and its replay", n)
	}
	if creds := r.f.fake.Credentials(agrentingtest.DemoAgentID); len(creds) != 2 {
		t.Errorf("%d credentials, want the old one and exactly one new", len(creds))
	}
	if r.envKey() != issued.Secret.Reveal() {
		t.Error("the env file does not hold the new key")
	}
	r.checkOneActive(issued.Secret.Reveal())
}

// TestRotateOwnKeyCrashAtEveryStep stops the rotation dead at each step (the
// goroutine exits there, as if the process died: nothing after it runs, no
// settling), then starts afresh from the env file as keygate would and
// recovers. keygate must always end with one working key in the env file
// and no orphan. The real-process SIGKILL version is in package main.
func TestRotateOwnKeyCrashAtEveryStep(t *testing.T) {
	for _, endSessions := range []bool{false, true} {
		var opts []agrentingtest.Option
		name := "sessions outlive keys"
		if endSessions {
			opts, name = append(opts, agrentingtest.WithSessionsEndingWithKey()), "sessions end with the key"
		}
		t.Run(name, func(t *testing.T) {
			for _, step := range rotation.Steps(RotationBackend{}) {
				t.Run(string(step), func(t *testing.T) {
					r := newRotRig(t, opts...)
					r.eng.OnStep = func(s rotation.Step) {
						if s == step {
							runtime.Goexit()
						}
					}
					done := make(chan struct{})
					go func() {
						defer close(done)
						_, _ = r.rotate(context.Background(), r.f.c)
					}()
					<-done

					// Restart: a new client from the env file, recovery first.
					key := r.envKey()
					g := newFixtureAt(t, env{EnvAPIKey: key, EnvAgentID: agrentingtest.DemoAgentID}, r.f.base, r.f.fake, r.f.clk)
					rep, err := r.engine(g.c).RecoverSlot(t.Context(), EnvAPIKey)
					lost := endSessions && step == rotation.StepCreated
					switch {
					case lost:
						// The old key died at the create and the answer died
						// with the process; the session that could replay it
						// died with the old key. Reported, never silent.
						if !errors.Is(err, rotation.ErrCredentialLost) || rep.Action != rotation.ActionLost {
							t.Fatalf("Recover = %v, %s; want the key reported lost", err, rep.Summary())
						}
						if !strings.Contains(err.Error(), "create a new key") || !strings.Contains(err.Error(), "revokes the key the rotation made") {
							t.Errorf("%v", err)
						}
						// A person makes a key in the dashboard and puts it in
						// the env file; the next start finds the orphan.
						fresh := "agr_fresh_key_00000000000000000000"
						r.f.fake.AddCredential(agrentingtest.DemoAgentID, "by hand", fresh)
						if err := auth.SetEnvVar(r.envFile, EnvAPIKey, fresh, auth.EnvWriteOptions{Overwrite: true}); err != nil {
							t.Fatal(err)
						}
						h := newFixtureAt(t, env{EnvAPIKey: fresh, EnvAgentID: agrentingtest.DemoAgentID}, r.f.base, r.f.fake, r.f.clk)
						rep, err = r.engine(h.c).RecoverSlot(t.Context(), EnvAPIKey)
						if err != nil || rep.Action != rotation.ActionRolledBack || len(rep.Keys) != 1 || rep.Keys[0].Fate != rotation.FateDiscarded {
							t.Fatalf("Recover with the new key = %v, %s %+v; want the orphan revoked", err, rep.Summary(), rep.Keys)
						}
						r.checkOneActive(fresh)
						return
					case err != nil:
						t.Fatalf("Recover: %v (%s)", err, rep.Summary())
					}
					if !rep.Current.IsZero() {
						g.c.UseKey(rep.Current)
					}
					key = r.envKey()
					if err := r.works(key); err != nil {
						t.Fatalf("after recovery (%s) the env file's key does not work: %v", rep.Summary(), err)
					}
					if _, err := g.c.List(t.Context(), tasksQ); err != nil {
						t.Errorf("the restarted client: %v", err)
					}
					r.checkOneActive(key)
					for _, k := range rep.Keys {
						if k.Fate == "" {
							t.Errorf("key %s without a fate", k.KeyID)
						}
					}
					if n := r.f.fake.SessionCount(); n != 0 {
						t.Errorf("%d sessions left open after recovery", n)
					}
					// Nothing is stuck: the next rotation works.
					if _, err := r.rotate(t.Context(), g.c); err != nil {
						t.Errorf("rotating after recovery: %v", err)
					}
				})
			}
		})
	}
}

// credID is the id of the agent's credential with secret key.
func credID(t *testing.T, r *rotRig, key string) string {
	t.Helper()
	for _, c := range r.f.fake.Credentials(agrentingtest.DemoAgentID) {
		if c.Secret == key {
			return c.ID
		}
	}
	t.Fatalf("no credential has the env file's key")
	return ""
}

// A rotation that could not be kept on disk is refused before Agrenting is
// asked for anything, so the old key is never revoked. (The engine's own
// tests inject ENOSPC and EROFS; a file size limit cannot be used here, as
// it would fail the test binary's own writes too.)
func TestRotateOwnKeyRefusedWhenItCannotBeKept(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(t *testing.T, r *rotRig)
		want  string
	}{
		{"read-only env file directory", func(t *testing.T, r *rotRig) {
			if os.Geteuid() == 0 {
				t.Skip("root writes to read-only directories")
			}
			if err := os.Chmod(r.dir, 0o500); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Chmod(r.dir, 0o700) })
		}, "cannot write a new env file"},
		{"no rotation directory", func(t *testing.T, r *rotRig) {
			// Its parent is a file: even root cannot create it.
			blocker := filepath.Join(r.dir, "blocker")
			if err := os.WriteFile(blocker, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			r.eng.Dir = filepath.Join(blocker, "rotation")
		}, "creating rotation directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRotRig(t)
			tc.spoil(t, r)
			_, err := r.rotate(t.Context(), r.f.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want a refusal saying %q", err, tc.want)
			}
			if err := r.works(agrentingtest.DemoAgentKey); err != nil {
				t.Errorf("the old key no longer works: %v", err)
			}
			if n := r.f.fake.Requests("/api/v1/auth/authenticate"); n != 0 {
				t.Errorf("%d sessions opened for a refused rotation", n)
			}
			if len(r.f.fake.Credentials(agrentingtest.DemoAgentID)) != 1 {
				t.Error("a key was made for a refused rotation")
			}
		})
	}
}

// Two rotations at once: one wins, the other is refused, and exactly one
// new key exists.
func TestRotateOwnKeyConcurrent(t *testing.T) {
	r := newRotRig(t)
	// A second keygate process on the same files, with its own client.
	g := newFixtureAt(t, env{EnvAPIKey: agrentingtest.DemoAgentKey, EnvAgentID: agrentingtest.DemoAgentID}, r.f.base, r.f.fake, r.f.clk)
	r.engine(g.c)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, c := range []*Client{r.f.c, g.c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = r.rotate(t.Context(), c)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	if ok != 1 {
		t.Errorf("%d rotations succeeded (%v), want exactly one", ok, errs)
	}
	if creds := r.f.fake.Credentials(agrentingtest.DemoAgentID); len(creds) != 2 {
		t.Errorf("%d credentials, want the old one and exactly one new", len(creds))
	}
	r.checkOneActive(r.envKey())
}
