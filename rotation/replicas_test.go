//go:build unix

package rotation_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/internal/testtier"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/rotation"
	"github.com/keygate/keygate/rotation/pgjournal"
	"github.com/keygate/keygate/rotation/rotationtest"
)

// replica is another keygate process on f's database and backend: its own
// rotation directory (so its own pending files and keys directory) and its
// own connection pool.
func (f *fixture) replica(name string, opts pgjournal.Options) *rotation.Engine {
	f.t.Helper()
	db, err := sql.Open("pgx", f.dsn)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { db.Close() })
	js, err := pgjournal.Open(f.t.Context(), db, opts)
	if err != nil {
		f.t.Fatal(err)
	}
	eng := f.engine()
	dir := filepath.Join(f.dir, "replica-"+name)
	eng.Dir, eng.Journals = filepath.Join(dir, "rotation"), js
	eng.Places = delivery.Places{EnvFile: f.envFile, KeysDir: filepath.Join(dir, "keys")}
	return eng
}

// TestReplicasRotateSameKey: rotations of one key on two replicas at once
// give exactly one successor; every other is refused because a rotation is
// in progress or because the key was already rotated.
func TestReplicasRotateSameKey(t *testing.T) {
	t.Run("own credential, platform", func(t *testing.T) {
		f := newFixture(t, "platform", rotationtest.Options{})
		f.usePostgres(pgjournal.Options{LockWait: 500 * time.Millisecond})
		engines := []*rotation.Engine{f.replica("a", pgjournal.Options{LockWait: 500 * time.Millisecond}),
			f.replica("b", pgjournal.Options{LockWait: 500 * time.Millisecond})}
		errs := rotateAtOnce(8, func(i int) error {
			_, err := engines[i%2].Rotate(context.Background(), rotation.Own(tokenVar, f.old, 0, nil))
			return err
		})
		checkOneWinner(t, errs, rotation.ErrNotHeld, rotation.ErrRejected)
		if keys := f.keys(); len(keys) != 2 {
			t.Fatalf("%d keys exist; want the old one and one successor", len(keys))
		}
		id, works := f.works(f.envValue())
		if !works || !slices.Equal(f.live(), []string{id}) {
			t.Errorf("live keys = %v, env key %s works=%v", f.live(), id, works)
		}
		f.checkClean()
	})
	t.Run("someone else's key, local store", func(t *testing.T) {
		f := newFixture(t, "local", rotationtest.Options{})
		f.usePostgres(pgjournal.Options{})
		other := f.mintOther("colleague")
		engines := []*rotation.Engine{f.replica("a", pgjournal.Options{LockWait: 500 * time.Millisecond}),
			f.replica("b", pgjournal.Options{LockWait: 500 * time.Millisecond})}
		errs := rotateAtOnce(8, func(i int) error {
			_, err := engines[i%2].Rotate(context.Background(), rotation.Request{KeyID: other.ID, Dest: delivery.Spec{Kind: delivery.Reveal}, Grace: time.Hour})
			return err
		})
		checkOneWinner(t, errs, rotation.ErrRejected, errAlreadyRotated)
		var successors []string
		for _, k := range f.keys() {
			if k.ID != f.oldID && k.ID != other.ID && k.RevokedAt.IsZero() {
				successors = append(successors, k.ID)
			}
		}
		if len(successors) != 1 {
			t.Errorf("%d live successors of key %s, want exactly 1", len(successors), other.ID)
		}
	})
}

// errAlreadyRotated stands for the store's refusal to rotate a key that
// already has a successor, which has no sentinel.
var errAlreadyRotated = errors.New("already rotated")

func rotateAtOnce(n int, rotate func(i int) error) []error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = rotate(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// checkOneWinner asserts exactly one rotation succeeded and every other was
// refused with ErrInProgress or one of also.
func checkOneWinner(t *testing.T, errs []error, also ...error) {
	t.Helper()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, rotation.ErrInProgress):
			if !strings.Contains(err.Error(), "rotation in progress") {
				t.Errorf("error %q does not say \"rotation in progress\"", err)
			}
		case slices.ContainsFunc(also, func(e error) bool { return errors.Is(err, e) }):
		case slices.Contains(also, errAlreadyRotated) && strings.Contains(err.Error(), "rotated"):
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d rotations succeeded, want exactly 1 (errors: %v)", ok, errs)
	}
}

// TestLostSessionStopsRotation: when the database session holding a
// rotation's lock ends mid-rotation (the lock goes with it), the rotation's
// next journal write fails and it stops at once, saying so, instead of
// settling (which could race a replica now free to settle it). Recovery
// then settles it from the journal.
func TestLostSessionStopsRotation(t *testing.T) {
	tests := []struct {
		at       rotation.Step // the session is ended when this step completes
		journal  rotation.Step // where the journal stays
		envHolds string        // "old" or "new" after the stop
	}{
		{rotation.StepPendingWritten, rotation.StepCreating, "old"},
		{rotation.StepVerified, rotation.StepVerified, "new"},
	}
	for _, tc := range tests {
		t.Run(string(tc.at), func(t *testing.T) {
			f := newFixture(t, "local", rotationtest.Options{})
			f.usePostgres(pgjournal.Options{LockWait: 500 * time.Millisecond})
			eng := f.engine()
			var steps []rotation.Step
			eng.OnStep = func(s rotation.Step) {
				steps = append(steps, s)
				if s == tc.at {
					terminateLockSession(t, f.db, f.pg.LockKey(f.kind, tokenVar))
				}
			}
			_, err := eng.Rotate(t.Context(), rotation.Own(tokenVar, f.old, 0, nil))
			if !errors.Is(err, rotation.ErrLockLost) {
				t.Fatalf("Rotate = %v, want ErrLockLost", err)
			}
			for _, s := range []string{"stopped", "lock was lost", "database session", "recovery"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			noSecrets(t, "error", err.Error(), f.old)
			if last := steps[len(steps)-1]; slices.Contains([]rotation.Step{rotation.StepSwapped, rotation.StepOldRetired, rotation.StepPendingRemoved}, last) ||
				slices.Contains(steps, rotation.StepOldRetired) {
				t.Errorf("the rotation went on after losing its lock: steps %v", steps)
			}
			noSecrets(t, "the rotation tables", f.databaseText(), f.old)
			if j := f.journalText(tokenVar); !strings.Contains(j, `"step": "`+string(tc.journal)+`"`) {
				t.Errorf("journal = %s, want it left at step %s", j, tc.journal)
			}
			want := f.old.Reveal()
			if tc.envHolds == "new" {
				want = f.envValue() // the delivery happened before the write that failed
				if want == f.old.Reveal() {
					t.Error("the env file does not hold the new key")
				}
			}
			f.checkEnvFile(want)
			if _, ok := f.works(f.old.Reveal()); !ok {
				t.Error("the old key was retired by a rotation that had lost its lock")
			}

			// The lock died with its session: recovery takes it at once.
			rep, err := f.engine().RecoverSlot(t.Context(), tokenVar)
			if err != nil || rep.Action != rotation.ActionCompleted {
				t.Fatalf("Recover = %+v, %v; want completed", rep, err)
			}
			f.checkEnvFile(rep.Current.Reveal())
			if live := f.live(); !slices.Equal(live, []string{rep.NewKeyID}) {
				t.Errorf("live keys = %v, want only %s", live, rep.NewKeyID)
			}
			f.checkClean()
		})
	}
}

// terminateLockSession ends the database session holding advisory lock
// key, as a network failure or a database restart would.
func terminateLockSession(t *testing.T, db *sql.DB, key int64) {
	t.Helper()
	k := uint64(key)
	var ok bool
	err := db.QueryRowContext(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1`, int64(k>>32), int64(k&0xffffffff)).Scan(&ok)
	if err != nil || !ok {
		t.Fatalf("terminating the lock's session: %v (%v)", ok, err)
	}
}

// TestCrashAtEveryStepPostgres runs TestCrashAtEveryStep's scenarios with
// the journal and lock in Postgres: keygate killed at a step, restarted as
// the same replica, recovers to a consistent state. The fast tier runs one
// scenario (Agrenting's shape) once at a step of each kind of state
// recovery starts from (orphan, pending, delivered, retiring);
// the slow tier every scenario at every step, ROTATION_CRASH_RUNS times.
func TestCrashAtEveryStepPostgres(t *testing.T) {
	scenarios := testtier.Pick(crashScenarios[3:4], crashScenarios)
	runs := testtier.Pick(1, crashRuns(t))
	only := testtier.Pick([]rotation.Step{rotation.StepCreated, rotation.StepPersisted, rotation.StepEnvWritten, rotation.StepSwapped}, nil)
	for _, sc := range scenarios {
		runs := max(1, (runs*sc.share+99)/100)
		t.Run(sc.name, func(t *testing.T) { crashAtEveryStep(t, sc, runs, "postgres", only) })
	}
}

// TestReplicaDiesHoldingLock: a replica killed mid-rotation holds the lock
// until it dies, then its session ends and frees the lock; another
// replica's recovery settles its journal without its pending file (here:
// the new key had not been delivered, so it is discarded and the old key
// kept), and the dead replica, restarted, drops that pending file instead
// of acting on it.
func TestReplicaDiesHoldingLock(t *testing.T) {
	f := newFixtureClock(t, "local", rotationtest.Options{}, &clock{real: true})
	f.usePostgres(pgjournal.Options{})
	other := f.mintOther("colleague")
	f.closeStore()
	slot := "local-" + other.ID
	// Replica B, the helper, rotates other in f.stateDir and stops at
	// StepPersisted: the new secret is in its pending file.
	args := f.helperArgs(crashScenario{}, "-key", other.ID, "-dest", "file:other.token", "-keys", filepath.Join(f.dir, "keys"),
		"-replica", "replica-b", "-hold-at", string(rotation.StepPersisted))
	cmd := helperCmd(t, args...)
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

	// Replica A: its rotation waits for the lock, then is refused.
	a := f.replica("a", pgjournal.Options{LockWait: 300 * time.Millisecond})
	_, err = a.Rotate(t.Context(), rotation.Request{KeyID: other.ID, Dest: delivery.Spec{Kind: delivery.Reveal}})
	if !errors.Is(err, rotation.ErrInProgress) {
		t.Fatalf("Rotate on replica A while B rotates: %v", err)
	}
	if _, err := a.RecoverSlot(t.Context(), slot); !errors.Is(err, rotation.ErrInProgress) {
		t.Fatalf("Recover on replica A while B rotates: %v", err)
	}

	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	// The server ends B's session when it sees the connection close; A
	// waits for that (its journals are patient), never guessing a delay.
	a = f.replica("a", pgjournal.Options{LockWait: time.Minute})
	rep, err := a.RecoverSlot(t.Context(), slot)
	if err != nil || rep.Action != rotation.ActionRolledBack || rep.Replica != "replica-b" {
		t.Fatalf("Recover on replica A after B died = %+v, %v; want B's rotation rolled back", rep, err)
	}
	if len(rep.Keys) != 1 || rep.Keys[0].Fate != rotation.FateDiscarded {
		t.Errorf("report keys %+v, want B's new key discarded", rep.Keys)
	}
	if live := f.liveOthers(); !slices.Equal(live, []string{other.ID}) {
		t.Errorf("live keys of the colleague = %v, want only the old one", live)
	}
	pendingB := filepath.Join(f.stateDir, slot+".pending")
	if _, err := os.Stat(pendingB); err != nil {
		t.Fatalf("replica A touched replica B's pending file: %v", err)
	}

	// B restarts: its pending file's rotation was settled by A.
	if killed, stderr := runHelper(t, f.helperArgs(crashScenario{}, "-replica", "replica-b", "-recover-only")); killed {
		t.Fatalf("helper killed: %s", stderr)
	}
	if _, err := os.Stat(pendingB); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("replica B kept its obsolete pending file: %v", err)
	}
	var settled int
	must(t, f.db.QueryRowContext(t.Context(), `SELECT count(*) FROM rotation_settled`).Scan(&settled))
	if settled != 0 {
		t.Errorf("%d settlement records left after B dropped its pending file", settled)
	}
	f.checkClean()
}

// liveOthers returns the live keys other than the env file's own: the
// colleague's key and its successors.
func (f *fixture) liveOthers() []string {
	var ids []string
	for _, k := range f.keys() {
		if k.ID != f.oldID && k.RevokedAt.IsZero() {
			ids = append(ids, k.ID)
		}
	}
	return ids
}

// TestAnotherReplicaSettles kills replica B at a step of a rotation of
// someone else's key, then lets replica A, which cannot see B's pending
// file or B's keys directory, recover. From the journal alone A finishes a
// rotation B delivered, discards the new key of one B never delivered, and
// leaves to B one whose delivery it cannot rule out; B's restart then
// settles that one, or drops its pending file if A settled it. Afterwards
// exactly one of the colleague's keys is live, and if it is the new one B
// delivered it.
func TestAnotherReplicaSettles(t *testing.T) {
	type kill struct {
		dest string
		at   rotation.Step
	}
	// The fast tier: a rotation A rolls back, one it must leave to B (the
	// key file is written there) and one it finishes; the slow tier every
	// step.
	kills := []kill{{"file:other.token", rotation.StepCreated}, {"file:other.token", rotation.StepEnvWritten},
		{"file:other.token", rotation.StepSwapped}}
	if testtier.Slow {
		probe := newFixture(t, "local", rotationtest.Options{})
		steps := rotation.Steps(probe.backend())
		probe.closeStore()
		kills = nil
		for _, dest := range []string{"file:other.token", "reveal"} {
			for _, s := range steps {
				kills = append(kills, kill{dest, s})
			}
		}
	}
	for _, k := range kills {
		t.Run(k.dest+"/"+string(k.at), func(t *testing.T) {
			t.Parallel()
			f := newFixtureClock(t, "local", rotationtest.Options{}, &clock{real: true})
			f.usePostgres(pgjournal.Options{})
			other := f.mintOther("colleague")
			f.closeStore()
			slot := "local-" + other.ID
			keysB := filepath.Join(f.dir, "keys")
			b := func(extra ...string) []string {
				return f.helperArgs(crashScenario{}, append([]string{"-key", other.ID, "-dest", k.dest, "-keys", keysB, "-replica", "replica-b"}, extra...)...)
			}
			if killed, stderr := runHelper(t, b("-kill-at", string(k.at))); !killed {
				t.Fatalf("replica B never reached step %s: %s", k.at, stderr)
			}
			journal := f.journalText(slot)
			noSecrets(t, "journal", journal)

			a := f.replica("a", pgjournal.Options{LockWait: time.Minute})
			rep, err := a.RecoverSlot(t.Context(), slot)
			left := errors.Is(err, rotation.ErrOtherReplica)
			switch {
			case left:
				if !errors.Is(err, rotation.ErrInProgress) || !strings.Contains(err.Error(), "replica-b") || rep.Action != rotation.ActionNone {
					t.Errorf("A left it with %v (%+v)", err, rep)
				}
				if !strings.Contains(journal, `"step": "verified"`) || k.dest == "reveal" {
					t.Errorf("A left a rotation it could settle: journal %s", journal)
				}
				if live := f.liveOthers(); len(live) != 2 {
					t.Errorf("A changed keys of a rotation it left: live %v", live)
				}
			case err != nil:
				t.Fatalf("Recover on A: %v (%+v)", err, rep)
			case journal != "" && rep.Replica != "replica-b":
				t.Errorf("report %+v does not name replica B", rep)
			}
			noSecrets(t, "the rotation tables after A's recovery", f.databaseText())
			// B restarts and settles what is left, or drops its pending
			// file if A settled it.
			if killed, stderr := runHelper(t, b("-recover-only")); killed {
				t.Fatalf("replica B killed at restart: %s", stderr)
			}
			f.checkAfterReplicas(t, other, k.dest, keysB, rep)
		})
	}
}

// checkAfterReplicas: exactly one of the colleague's keys is live; a new
// one is where B delivered it (a file in B's keys directory), an old one
// means nothing was left behind; no journal, pending file or settlement
// record remains.
func (f *fixture) checkAfterReplicas(t *testing.T, old provider.Key, dest, keysB string, rep rotation.Report) {
	t.Helper()
	live := f.liveOthers()
	if len(live) != 1 {
		t.Fatalf("%d of the colleague's keys are live, want exactly one (%s)", len(live), rep.Summary())
	}
	files, _ := os.ReadDir(keysB)
	switch {
	case live[0] == old.ID:
		if rep.Action == rotation.ActionCompleted {
			t.Errorf("the old key works but A's report says %s", rep.Summary())
		}
		for _, e := range files {
			if strings.HasSuffix(e.Name(), ".token") {
				t.Errorf("rolled back, yet %s is in B's keys directory", e.Name())
			}
		}
	case dest == "reveal":
		if len(files) != 0 {
			t.Errorf("a revealed key was written to B's keys directory: %v", files)
		}
	default:
		b, err := os.ReadFile(filepath.Join(keysB, strings.TrimPrefix(dest, "file:")))
		if err != nil {
			t.Fatalf("the new key %s is live but B's file is missing: %v (%s)", live[0], err, rep.Summary())
		}
		if id, ok := f.works(strings.TrimSpace(string(b))); !ok || id != live[0] {
			t.Errorf("B's file does not hold the live key")
		}
	}
	if id, ok := f.works(f.envValue()); !ok || id != f.oldID {
		t.Error("the env file's own credential was touched by another key's rotation")
	}
	var settled int
	must(t, f.db.QueryRowContext(context.Background(), `SELECT count(*) FROM rotation_settled`).Scan(&settled))
	if settled != 0 {
		t.Errorf("%d settlement records left", settled)
	}
	for _, dir := range []string{f.stateDir, filepath.Join(f.dir, "replica-a", "rotation")} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".pending") || strings.HasSuffix(e.Name(), ".journal") {
				t.Errorf("left behind: %s", filepath.Join(dir, e.Name()))
			}
		}
	}
	f.checkClean()
}

// databaseText is every row of the rotation tables, as JSON: what anyone
// who can read the database (or its backups) sees. It must hold no secret.
func (f *fixture) databaseText() string {
	f.t.Helper()
	rows, err := f.db.QueryContext(context.Background(), `SELECT row_to_json(j)::text FROM rotation_journal j
		UNION ALL SELECT row_to_json(s)::text FROM rotation_settled s`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			f.t.Fatal(err)
		}
		b.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return b.String()
}
