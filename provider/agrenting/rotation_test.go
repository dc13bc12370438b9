package agrenting

import (
	"context"
	"encoding/json"
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
	"github.com/keygate/keygate/provider/internal/providertest"
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

// rotateKeyPath is the documented rotation endpoint as the fake sees it.
const rotateKeyPath = "/api/v1" + RotateKeyPath

// platforms are the shapes of Agrenting that no source rules out: with or
// without a list endpoint, sessions that outlive the key that opened them
// or end with it, and rotate-key answers of several shapes. Every own-key
// rotation test runs against each.
var platforms = []struct {
	name string
	opts []agrentingtest.Option
}{
	{"list, sessions outlive keys", nil},
	{"no list, sessions outlive keys", []agrentingtest.Option{agrentingtest.WithoutCredentialList()}},
	{"no list, sessions end with the key", []agrentingtest.Option{agrentingtest.WithoutCredentialList(), agrentingtest.WithSessionsEndingWithKey()}},
	{"no list, data.key answer", []agrentingtest.Option{agrentingtest.WithoutCredentialList(), agrentingtest.WithRotateAnswer(agrentingtest.AnswerKeyOnly)}},
	{"no list, nested answer, sessions end with the key", []agrentingtest.Option{agrentingtest.WithoutCredentialList(),
		agrentingtest.WithRotateAnswer(agrentingtest.AnswerNested), agrentingtest.WithSessionsEndingWithKey()}},
	{"list, credential answer", []agrentingtest.Option{agrentingtest.WithRotateAnswer(agrentingtest.AnswerCredential)}},
}

func TestRotateOwnKeyThroughEngine(t *testing.T) {
	for _, pf := range platforms {
		t.Run(pf.name, func(t *testing.T) {
			r := newRotRig(t, pf.opts...)
			ctx := t.Context()
			issued, err := r.rotate(ctx, r.f.c)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.envKey(); got != issued.Secret.Reveal() || got == agrentingtest.DemoAgentKey {
				t.Fatalf("the env file holds %s, want the new key %s", auth.Mask(got), issued.Key.Masked)
			}
			if issued.Key.ID != keyID(issued.Secret.Reveal()) {
				t.Errorf("new key named %s", issued.Key.ID)
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
			// The replay session was logged out (with X-API-Key, which the
			// fake requires, as the docs do), and nothing is left behind.
			if n := r.f.fake.SessionCount(); n != 0 {
				t.Errorf("%d sessions left open", n)
			}
			entries, _ := os.ReadDir(filepath.Join(r.dir, "rotation"))
			for _, e := range entries {
				if !strings.HasSuffix(e.Name(), ".lock") {
					t.Errorf("left in the rotation directory: %s", e.Name())
				}
			}
			providertest.NoSecret(t, r.f.logs.String(), agrentingtest.DemoAgentKey, issued.Secret.Reveal())
			// The documented endpoint was used, once; no key was listed.
			if n := r.f.fake.Requests(rotateKeyPath); n != 1 {
				t.Errorf("%d rotate-key requests", n)
			}
			if n := r.f.fake.Requests("/api/v1/agents/" + agrentingtest.DemoAgentID + "/credentials"); n != 0 {
				t.Errorf("%d list requests", n)
			}
		})
	}
}

// The rotate answer is lost: the retry carries the same idempotency key
// and the session, which outlives the old key, so Agrenting replays the
// same new key; exactly one new credential exists.
func TestRotateOwnKeyLostAnswer(t *testing.T) {
	r := newRotRig(t, agrentingtest.WithoutCredentialList())
	rotate := rotateKeyPath
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
// and no orphan, on every platform shape: without a list endpoint, with
// sessions that end with the key (a crash after the answer is then
// survived only because the answer was kept before it was parsed), and
// with rotate-key answers of other shapes. The real-process SIGKILL
// version is in package main.
func TestRotateOwnKeyCrashAtEveryStep(t *testing.T) {
	for _, pf := range platforms {
		t.Run(pf.name, func(t *testing.T) {
			for _, step := range rotation.Steps(RotationBackend{}) {
				t.Run(string(step), func(t *testing.T) {
					r := newRotRig(t, pf.opts...)
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
					if err != nil {
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

// The one case no platform shape can save: the answer is lost on the way,
// and the session that could replay it ended with the old key. keygate
// reports the key lost and says to revoke the one Agrenting issued in the
// dashboard; nothing is left to settle, and a person's new key works.
func TestRotateOwnKeyLostWhenSessionsEndWithTheKey(t *testing.T) {
	r := newRotRig(t, agrentingtest.WithoutCredentialList(), agrentingtest.WithSessionsEndingWithKey())
	r.f.fake.DropNextResponseOn("POST", rotateKeyPath)
	_, err := r.rotate(t.Context(), r.f.c)
	if !errors.Is(err, rotation.ErrCredentialLost) || !strings.Contains(err.Error(), "dashboard") || !strings.Contains(err.Error(), "create a new key") {
		t.Fatalf("%v", err)
	}
	providertest.NoSecret(t, err.Error(), agrentingtest.DemoAgentKey)
	fresh := "agr_fresh_key_00000000000000000000"
	r.f.fake.AddCredential(agrentingtest.DemoAgentID, "by hand", fresh)
	if err := r.works(fresh); err != nil {
		t.Fatal(err)
	}
	rep, err := r.engine(r.f.c).RecoverSlot(t.Context(), EnvAPIKey)
	if err != nil || rep.Action != rotation.ActionNone {
		t.Errorf("nothing is left to settle: %v %s", err, rep.Summary())
	}
}

// An answer keygate cannot read is never lost: it stays in the 0600
// pending file, the rotation stays unfinished (recovery retries it), and
// the error says where the answer is, without the key.
func TestRotateOwnKeyUnreadableAnswerIsKept(t *testing.T) {
	decoy := "agr_decoy_" + strings.Repeat("0", 30)
	r := newRotRig(t, agrentingtest.WithoutCredentialList(), agrentingtest.WithRotateAnswer(func(k string, _ map[string]any, _ string) any {
		return map[string]any{"a": k, "b": decoy} // two values that may be keys, under names that say nothing
	}))
	_, err := r.rotate(t.Context(), r.f.c)
	if err == nil || !strings.Contains(err.Error(), "pending file") || !strings.Contains(err.Error(), "more than one value") {
		t.Fatalf("%v", err)
	}
	var issued string
	for _, c := range r.f.fake.Credentials(agrentingtest.DemoAgentID) {
		if c.RevokedAt.IsZero() {
			issued = c.Secret
		}
	}
	providertest.NoSecret(t, err.Error(), issued, decoy)
	providertest.NoSecret(t, r.f.logs.String(), issued)
	pending := filepath.Join(r.dir, "rotation", EnvAPIKey+".pending")
	fi, serr := os.Stat(pending)
	b, _ := os.ReadFile(pending)
	var kept struct {
		Raw []byte `json:"raw"`
	}
	_ = json.Unmarshal(b, &kept)
	if serr != nil || fi.Mode().Perm() != 0o600 || issued == "" || !strings.Contains(string(kept.Raw), issued) {
		t.Fatalf("the answer is not kept in %s (%v)", pending, serr)
	}
	if _, err := r.rotate(t.Context(), r.f.c); !errors.Is(err, rotation.ErrUnfinished) {
		t.Errorf("a second rotation: %v", err)
	}
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
