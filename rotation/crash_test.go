//go:build unix

package rotation_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/internal/testtier"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/rotation"
	"github.com/keygate/keygate/rotation/rotationtest"
)

// The crash tests run rotation/internal/crashtest, keygate cut down to a
// rotation, in a subprocess and SIGKILL it at every step; then they restart
// (Recover in this process) and check the invariants of docs/SECURITY.md rows
// 40-42. ROTATION_CRASH_RUNS sets the runs per kill point (default 5, 1
// with -short).

var (
	helperOnce sync.Once
	helperPath string
	helperErr  error
	helperDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	dropTestDatabase()
	if helperDir != "" {
		os.RemoveAll(helperDir)
	}
	os.Exit(code)
}

// crashHelper builds the helper once, with -race when the tests have it,
// so the build reuses the packages the test binary was built from.
func crashHelper(t *testing.T) string {
	t.Helper()
	helperOnce.Do(func() {
		if helperDir, helperErr = os.MkdirTemp("", "rotation-crashtest-"); helperErr != nil {
			return
		}
		helperPath = filepath.Join(helperDir, "crashtest")
		args := []string{"build", "-o", helperPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/keygate/keygate/rotation/internal/crashtest")...).CombinedOutput()
		if err != nil {
			helperErr = fmt.Errorf("building the crash helper: %w\n%s", err, out)
		}
	})
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	return helperPath
}

func crashRuns(t *testing.T) int {
	if s := os.Getenv("ROTATION_CRASH_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("ROTATION_CRASH_RUNS=%q is not a positive number", s)
		}
		return n
	}
	if testing.Short() {
		return 1
	}
	return testtier.Pick(1, 5)
}

type crashScenario struct {
	name  string
	kind  string
	popts rotationtest.Options
	grace time.Duration
	share int // percentage of the runs per kill point this scenario gets
}

var crashScenarios = []crashScenario{
	{"local", "local", rotationtest.Options{}, 0, 100},
	// Grace changes only how the old key is retired, so fewer runs.
	{"local with grace", "local", rotationtest.Options{}, time.Hour, 50},
	{"revokes old on create", "platform", rotationtest.Options{RevokesOldOnCreate: true, CreateReplays: true}, 0, 100},
	// Agrenting's shape: the replay needs a session opened before the create.
	{"revokes old on create, replays with a session", "platform", rotationtest.Options{RevokesOldOnCreate: true, CreateReplays: true, Sessions: true}, 0, 100},
}

func newCrashFixture(t *testing.T, sc crashScenario) *fixture {
	f := newFixtureClock(t, sc.kind, sc.popts, &clock{real: true})
	f.closeStore() // the helper has the store to itself, as keygate would
	return f
}

func (f *fixture) helperArgs(sc crashScenario, extra ...string) []string {
	args := []string{"-backend", f.kind, "-env", f.envFile, "-dir", f.stateDir, "-var", tokenVar, "-grace", sc.grace.String()}
	if f.dsn != "" {
		args = append(args, "-pg", f.dsn)
	}
	if f.kind == "local" {
		args = append(args, "-store", f.storePath)
	} else {
		args = append(args, "-platform", f.platformPath, "-revokes-old="+strconv.FormatBool(sc.popts.RevokesOldOnCreate),
			"-replays="+strconv.FormatBool(sc.popts.CreateReplays), "-sessions="+strconv.FormatBool(sc.popts.Sessions))
	}
	return append(args, extra...)
}

// helperCmd runs the helper. A race-enabled helper would otherwise sleep a
// second at every normal exit, waiting for late race reports.
func helperCmd(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(crashHelper(t), args...)
	cmd.Env = append(os.Environ(), "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	return cmd
}

// runHelper runs the helper to its end and reports whether SIGKILL ended it.
func runHelper(t *testing.T, args []string) (killed bool, stderr string) {
	t.Helper()
	cmd := helperCmd(t, args...)
	var errBuf strings.Builder
	cmd.Stderr = &errBuf
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true, errBuf.String()
		}
		t.Fatalf("helper failed: %v\n%s", err, errBuf.String())
	}
	if err != nil {
		t.Fatalf("running helper: %v", err)
	}
	return false, errBuf.String()
}

// tally counts what recovery did, per kill point, for the test log.
type tally struct {
	mu     sync.Mutex
	counts map[string]map[rotation.Action]int
}

func (ty *tally) add(point string, a rotation.Action) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	if ty.counts == nil {
		ty.counts = map[string]map[rotation.Action]int{}
	}
	if ty.counts[point] == nil {
		ty.counts[point] = map[rotation.Action]int{}
	}
	ty.counts[point][a]++
}

func (ty *tally) String() string {
	var lines []string
	for point, m := range ty.counts {
		var parts []string
		for a, n := range m {
			parts = append(parts, fmt.Sprintf("%s=%d", a, n))
		}
		sort.Strings(parts)
		lines = append(lines, fmt.Sprintf("  %-28s %s", point, strings.Join(parts, " ")))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestCrashAtEveryStep kills keygate at each step of a rotation, restarts
// it, and checks that it always comes back with a working credential.
func TestCrashAtEveryStep(t *testing.T) {
	runs := crashRuns(t)
	for _, sc := range crashScenarios {
		runs := max(1, (runs*sc.share+99)/100)
		t.Run(sc.name, func(t *testing.T) { crashAtEveryStep(t, sc, runs, "files", nil) })
	}
}

// crashAtEveryStep kills the helper at every step of sc's rotation (or
// only those of only, when it is not nil), runs times each, with journals
// kept as the journals kind says.
func crashAtEveryStep(t *testing.T, sc crashScenario, runs int, journals string, only []rotation.Step) {
	var ty tally
	t.Cleanup(func() { t.Logf("%d runs per kill point; recovery outcomes:\n%s", runs, &ty) })
	for _, step := range rotation.Steps(newCrashFixture(t, sc).backend()) {
		if only != nil && !slices.Contains(only, step) {
			continue
		}
		for run := range runs {
			t.Run(fmt.Sprintf("%s/%d", step, run), func(t *testing.T) {
				t.Parallel()
				f := newCrashFixture(t, sc)
				f.useJournals(journals)
				if killed, stderr := runHelper(t, f.helperArgs(sc, "-kill-at", string(step))); !killed {
					t.Fatalf("the helper never reached step %s: %s", step, stderr)
				}
				ty.add(string(step), restartAndCheck(t, f, sc, run == 0))
			})
		}
	}
}

// TestCrashDuringRecovery kills keygate once during the rotation and again
// while the next start is recovering from it: recovery must be as
// crash-safe as the rotation.
func TestCrashDuringRecovery(t *testing.T) {
	// One kill point per kind of state recovery starts from (orphan, pending
	// but unrecorded, verified, swapped, retired), and every step recovery
	// itself takes.
	rotateAt := []rotation.Step{rotation.StepCreated, rotation.StepPendingWritten, rotation.StepVerified,
		rotation.StepEnvWritten, rotation.StepOldRetired}
	recoverAt := []rotation.Step{rotation.StepEnvWritten, rotation.StepSwapped, rotation.StepOldRetired,
		rotation.StepPendingRemoved}
	for _, sc := range []crashScenario{crashScenarios[0], crashScenarios[2]} {
		t.Run(sc.name, func(t *testing.T) {
			var ty tally
			var reached atomic.Int32
			t.Cleanup(func() {
				if reached.Load() == 0 && !t.Failed() {
					t.Error("no recovery was ever killed: the recovery kill points are wrong")
				}
				t.Logf("%d of %d recoveries killed; outcomes of the next start:\n%s", reached.Load(), len(rotateAt)*len(recoverAt), &ty)
			})
			for _, a := range rotateAt {
				for _, b := range recoverAt {
					t.Run(fmt.Sprintf("%s/%s", a, b), func(t *testing.T) {
						t.Parallel()
						f := newCrashFixture(t, sc)
						if killed, stderr := runHelper(t, f.helperArgs(sc, "-kill-at", string(a))); !killed {
							t.Fatalf("the helper never reached step %s: %s", a, stderr)
						}
						// Recovery may settle without reaching b (a rollback
						// writes no env file); then the helper simply ends.
						if killed, _ := runHelper(t, f.helperArgs(sc, "-recover-only", "-kill-in", "recover", "-kill-at", string(b))); killed {
							reached.Add(1)
						}
						ty.add(fmt.Sprintf("%s/%s", a, b), restartAndCheck(t, f, sc, false))
					})
				}
			}
		})
	}
}

// TestCrashAtRandomTimes kills a helper that rotates in a loop after a
// random delay, so kills also land inside system calls, SQLite commits and
// the env-file rename.
func TestCrashAtRandomTimes(t *testing.T) {
	runs := 2 * crashRuns(t)
	for _, sc := range []crashScenario{crashScenarios[0], crashScenarios[2]} {
		t.Run(sc.name, func(t *testing.T) {
			var ty tally
			t.Cleanup(func() { t.Logf("%d random kills; recovery outcomes:\n%s", runs, &ty) })
			for run := range runs {
				t.Run(strconv.Itoa(run), func(t *testing.T) {
					t.Parallel()
					f := newCrashFixture(t, sc)
					cmd := helperCmd(t, f.helperArgs(sc, "-loop")...)
					out, err := cmd.StdoutPipe()
					if err != nil {
						t.Fatal(err)
					}
					if err := cmd.Start(); err != nil {
						t.Fatal(err)
					}
					if line, _ := bufio.NewReader(out).ReadString('\n'); line != "rotating\n" {
						t.Fatalf("helper said %q", line)
					}
					// About one rotation's time, so kills land all over it.
					time.Sleep(time.Duration(rand.Int64N(int64(80 * time.Millisecond))))
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
					ty.add("random", restartAndCheck(t, f, sc, false))
				})
			}
		})
	}
}

// TestCrashLosesKeyWithoutReplay: a platform that kills the old key at
// create and cannot replay the create leaves no way back if keygate dies
// before persisting the new secret. Recovery must say so, not pretend.
func TestCrashLosesKeyWithoutReplay(t *testing.T) {
	sc := crashScenario{"revokes old, no replay", "platform", rotationtest.Options{RevokesOldOnCreate: true}, 0, 100}
	f := newCrashFixture(t, sc)
	if killed, _ := runHelper(t, f.helperArgs(sc, "-kill-at", string(rotation.StepCreated))); !killed {
		t.Fatal("the helper was not killed")
	}
	rep, err := f.engine().RecoverSlot(t.Context(), tokenVar)
	if !errors.Is(err, rotation.ErrCredentialLost) || rep.Action != rotation.ActionLost {
		t.Fatalf("Recover = %+v, %v; want ErrCredentialLost", rep, err)
	}
	if !strings.Contains(err.Error(), "create a new key") || len(rep.Keys) != 1 || rep.Keys[0].Fate != rotation.FateDiscarded {
		t.Errorf("error %q, keys %+v: want advice and the orphan reported as revoked", err, rep.Keys)
	}
	f.checkClean()
}

// TestRotationInAnotherProcess: a rotation in another keygate process
// holds the lock; this one is told so, and can recover once that process
// dies.
func TestRotationInAnotherProcess(t *testing.T) {
	sc := crashScenarios[0]
	f := newCrashFixture(t, sc)
	cmd := helperCmd(t, f.helperArgs(sc, "-hold-at", string(rotation.StepPersisted))...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "holding\n" {
		t.Fatalf("helper said %q", line)
	}
	_, err = f.engine().Rotate(t.Context(), rotation.Own(tokenVar, f.old, 0, nil))
	if !errors.Is(err, rotation.ErrInProgress) || !strings.Contains(err.Error(), "rotation in progress") {
		t.Fatalf("Rotate while another process rotates: %v", err)
	}
	if _, err := f.engine().RecoverSlot(t.Context(), tokenVar); !errors.Is(err, rotation.ErrInProgress) {
		t.Fatalf("Recover while another process rotates: %v", err)
	}
	f.closeStore()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	restartAndCheck(t, f, sc, true)
	if keys := f.keys(); len(keys) != 3 { // the old, the held rotation's, and restartAndCheck's
		t.Errorf("%d keys, want 3", len(keys))
	}
}

// restartAndCheck is keygate's next start: Recover, then the invariants,
// then (with again) one more rotation, to show nothing is stuck.
func restartAndCheck(t *testing.T, f *fixture, sc crashScenario, again bool) rotation.Action {
	t.Helper()
	ctx := t.Context()
	journal := f.journalText(tokenVar)
	pending := readIfExists(t, filepath.Join(f.stateDir, tokenVar+".pending"))
	noSecrets(t, "journal", journal, f.old)
	if strings.Contains(pending, f.old.Reveal()) {
		t.Error("the pending file holds the old secret")
	}
	var j struct {
		RotationID string `json:"rotation_id"`
	}
	if journal != "" {
		must(t, json.Unmarshal([]byte(journal), &j))
	}

	rep, err := f.engine().RecoverSlot(ctx, tokenVar)
	if err != nil {
		t.Fatalf("Recover: %v (report %+v)", err, rep)
	}
	checkInvariants(t, f, sc, rep, j.RotationID)
	if !again {
		f.closeStore()
		return rep.Action
	}
	env := auth.NewSecret(f.envValue())
	res, err := f.engine().Rotate(ctx, rotation.Own(tokenVar, env, 0, nil))
	for try := 0; errors.Is(err, rotation.ErrInProgress) && try < 50; try++ {
		// A parallel subtest's fork can briefly hold a copy of the lock's
		// file descriptor (until its exec closes it), and with it the flock
		// Recover just released. keygate does not fork, so only tests see it.
		time.Sleep(10 * time.Millisecond)
		res, err = f.engine().Rotate(ctx, rotation.Own(tokenVar, env, 0, nil))
	}
	if err != nil {
		t.Fatalf("rotating after recovery: %v", err)
	}
	if _, ok := f.works(res.NewSecret.Reveal()); !ok {
		t.Error("the key of the rotation after recovery does not work")
	}
	f.closeStore()
	return rep.Action
}

func checkInvariants(t *testing.T, f *fixture, sc crashScenario, rep rotation.Report, rid string) {
	t.Helper()
	env := f.envValue()
	f.checkEnvFile(env) // parses, 0600, only the credential changed
	envID, ok := f.works(env)
	if !ok {
		t.Fatalf("after recovery (%s) the env file's credential does not work", rep.Summary())
	}
	if rep.Action != rotation.ActionNone && rep.Current.Reveal() != env {
		t.Errorf("Report.Current is not the env file's credential")
	}
	// Keys: the env file's works; the old one is revoked or retiring;
	// every other key is revoked. So old and new are never both revoked,
	// and no key made by the rotation is left working unseen.
	now := f.clock.Now()
	for _, k := range f.keys() {
		switch {
		case k.ID == envID:
		case !k.RevokedAt.IsZero():
		case k.ID == f.oldID && sc.grace > 0 && !k.ExpiresAt.After(now.Add(sc.grace)):
			// retiring: it stops by itself when the grace period ends
		default:
			t.Errorf("key %s (old key: %v) is still live but not in the env file (%s)", k.ID, k.ID == f.oldID, rep.Summary())
		}
	}
	if rid != "" {
		tagged, err := f.backend().Tagged(t.Context(), rotation.TagQuery{RotationID: rid})
		must(t, err)
		for _, k := range tagged {
			if !slices.ContainsFunc(rep.Keys, func(kf rotation.KeyFate) bool { return kf.KeyID == k.ID }) {
				t.Errorf("key %s of rotation %s is missing from the report %+v", k.ID, rid, rep.Keys)
			}
		}
	}
	f.checkClean()
}

func readIfExists(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// TestCrashRotatingAnotherKey kills keygate at each step of a rotation of
// a key it does not hold (anyone else's, rotated by an admin), for each
// kind of destination, then restarts it. Afterwards the rotation has either
// not happened (the old key works, every key it made is discarded, no
// secret file was left) or happened whole (the new key works and is where
// the destination says, the old key is retired); never a live key whose
// secret is nowhere, never two live successors.
func TestCrashRotatingAnotherKey(t *testing.T) {
	for _, dest := range []string{"", "file:other.token", "reveal"} {
		t.Run("dest="+dest, func(t *testing.T) {
			probe := newFixture(t, "local", rotationtest.Options{})
			steps := rotation.Steps(probe.backend())
			probe.closeStore()
			for _, step := range steps {
				t.Run(string(step), func(t *testing.T) {
					t.Parallel()
					f := newFixtureClock(t, "local", rotationtest.Options{}, &clock{real: true})
					other := f.mintOther("colleague")
					f.closeStore()
					args := f.helperArgs(crashScenario{grace: 0}, "-kill-at", string(step), "-key", other.ID, "-dest", dest, "-keys", filepath.Join(f.dir, "keys"))
					if killed, stderr := runHelper(t, args); !killed {
						t.Fatalf("the helper never reached step %s: %s", step, stderr)
					}
					rep, err := f.engine().RecoverSlot(t.Context(), "local-"+other.ID)
					if err != nil {
						t.Fatalf("Recover: %v (%+v)", err, rep)
					}
					f.checkOtherRotation(t, other, dest, step, rep)
				})
			}
		})
	}
}

// mintOther makes a key the env file does not hold.
func (f *fixture) mintOther(name string) provider.Key {
	f.t.Helper()
	sc, err := auth.ParseScopes([]string{"content:read"})
	if err != nil {
		f.t.Fatal(err)
	}
	issued, err := f.openStore().CreateKey(f.t.Context(), provider.NewKey{Name: name, Scopes: sc, ExpiresAt: f.clock.Now().Add(24 * time.Hour)})
	if err != nil {
		f.t.Fatal(err)
	}
	return issued.Key
}

func (f *fixture) checkOtherRotation(t *testing.T, old provider.Key, dest string, step rotation.Step, rep rotation.Report) {
	t.Helper()
	var live []provider.Key
	for _, k := range f.keys() {
		if k.ID != f.oldID && k.RevokedAt.IsZero() {
			live = append(live, k)
		}
	}
	if len(live) != 1 {
		t.Fatalf("after a kill at %s, %d of the colleague's keys are live, want exactly one (%s)", step, len(live), rep.Summary())
	}
	keys := filepath.Join(f.dir, "keys")
	files, _ := os.ReadDir(keys)
	switch {
	case live[0].ID == old.ID:
		// Not rotated: nothing may be left behind.
		if rep.Action == rotation.ActionCompleted {
			t.Errorf("the old key works but the report says %s", rep.Summary())
		}
		for _, e := range files {
			if !strings.HasPrefix(e.Name(), ".keygate-probe-") {
				t.Errorf("rolled back, yet %s is in the keys directory", e.Name())
			}
		}
	case dest == "reveal":
		// Handed over before the kill (the journal had reached swapped):
		// nothing is written anywhere.
		if len(files) != 0 {
			t.Errorf("a revealed key was written to the keys directory: %v", files)
		}
	default:
		path := filepath.Join(keys, live[0].ID+".token")
		if dest != "" {
			path = filepath.Join(keys, strings.TrimPrefix(dest, "file:"))
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("the new key %s is live but its file is missing: %v (%s)", live[0].ID, err, rep.Summary())
		}
		if id, ok := f.works(strings.TrimSpace(string(b))); !ok || id != live[0].ID {
			t.Errorf("the file %s does not hold the live key", path)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Errorf("the key file has mode %v", fi.Mode().Perm())
		}
	}
	if id, ok := f.works(f.envValue()); !ok || id != f.oldID {
		t.Error("the env file's own credential was touched by another key's rotation")
	}
	for _, name := range []string{"local-" + old.ID + ".journal", "local-" + old.ID + ".pending"} {
		if _, err := os.Stat(filepath.Join(f.stateDir, name)); err == nil {
			t.Errorf("%s was left behind", name)
		}
	}
}
