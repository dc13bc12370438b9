package pgjournal_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/pgtest"
	"github.com/keygate/keygate/rotation"
	"github.com/keygate/keygate/rotation/pgjournal"
)

// open gives the test a fresh database and journals on it.
func open(t *testing.T, opts pgjournal.Options) (*pgjournal.Journals, *sql.DB) {
	t.Helper()
	db, err := sql.Open("pgx", pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	js, err := pgjournal.Open(t.Context(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return js, db
}

func TestLockExcludesAndWaitIsBounded(t *testing.T) {
	js, db := open(t, pgjournal.Options{LockWait: 300 * time.Millisecond})
	ctx := t.Context()
	first, err := js.Lock(ctx, "local", "local-k1")
	if err != nil {
		t.Fatal(err)
	}
	// A second replica's journals on the same database: another session.
	_, err = js.Lock(ctx, "local", "local-k1")
	if !errors.Is(err, rotation.ErrInProgress) || !strings.Contains(err.Error(), "rotation in progress") {
		t.Fatalf("second Lock = %v, want ErrInProgress", err)
	}
	// Another slot, or the same slot of another engine, is not held.
	for _, k := range [][2]string{{"local", "local-k2"}, {"agrenting", "local-k1"}} {
		other, err := js.Lock(ctx, k[0], k[1])
		if err != nil {
			t.Fatalf("Lock(%s, %s): %v", k[0], k[1], err)
		}
		other.Release()
	}
	// A waiter (another replica's journals, patient) gets the lock once
	// the holder releases it.
	patient, err := pgjournal.Open(ctx, db, pgjournal.Options{LockWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		lk, err := patient.Lock(context.Background(), "local", "local-k1")
		if err == nil {
			lk.Release()
		}
		got <- err
	}()
	waitForWaiter(t, db)
	first.Release()
	if err := <-got; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	again, err := js.Lock(ctx, "local", "local-k1")
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	again.Release()
}

func TestJournalRoundTrip(t *testing.T) {
	js, db := open(t, pgjournal.Options{})
	ctx := t.Context()
	lk, err := js.Lock(ctx, "local", "local-k1")
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Release()
	if rec, err := lk.Load(ctx); err != nil || rec != nil {
		t.Fatalf("Load of an empty slot = %+v, %v", rec, err)
	}
	rec := rotation.JournalRecord{RotationID: "rot-0123456789abcdef01234567", Step: rotation.StepCreating, Replica: "host:/dir",
		Data: []byte(`{"rotation_id":"rot-0123456789abcdef01234567","step":"creating"}`)}
	if err := lk.Save(ctx, rec); err != nil {
		t.Fatal(err)
	}
	rec.Step = rotation.StepPersisted
	rec.Data = []byte(`{"rotation_id":"rot-0123456789abcdef01234567","step":"persisted"}`)
	if err := lk.Save(ctx, rec); err != nil {
		t.Fatal(err)
	}
	got, err := lk.Load(ctx)
	if err != nil || got == nil || got.RotationID != rec.RotationID || got.Step != rotation.StepPersisted || got.Replica != "host:/dir" ||
		!strings.Contains(string(got.Data), `"persisted"`) || !strings.Contains(got.Where, "local-k1") {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	if slots, err := js.Slots(ctx, "local"); err != nil || len(slots) != 1 || slots[0] != "local-k1" {
		t.Fatalf("Slots = %v, %v", slots, err)
	}
	if slots, err := js.Slots(ctx, "agrenting"); err != nil || len(slots) != 0 {
		t.Fatalf("Slots of another engine = %v, %v", slots, err)
	}
	// Removing a foreign rotation's journal records its settlement.
	s := &rotation.Settlement{RotationID: rec.RotationID, Replica: "host:/dir", By: "other:/dir", Action: rotation.ActionCompleted, KeptKeyID: "k2"}
	if err := lk.Remove(ctx, s); err != nil {
		t.Fatal(err)
	}
	if got, err := lk.Load(ctx); err != nil || got != nil {
		t.Fatalf("Load after Remove = %+v, %v", got, err)
	}
	got2, err := js.Settlements(ctx, "local", "host:/dir")
	if err != nil || len(got2) != 1 || got2[0].KeptKeyID != "k2" || got2[0].Action != rotation.ActionCompleted || got2[0].By != "other:/dir" ||
		got2[0].Slot != "local-k1" || got2[0].RotationID != rec.RotationID {
		t.Fatalf("Settlements = %+v, %v", got2, err)
	}
	if others, err := js.Settlements(ctx, "local", "other:/dir"); err != nil || len(others) != 0 {
		t.Fatalf("Settlements of another replica = %+v, %v", others, err)
	}
	if err := js.Forget(ctx, rec.RotationID); err != nil {
		t.Fatal(err)
	}
	if got2, err := js.Settlements(ctx, "local", "host:/dir"); err != nil || len(got2) != 0 {
		t.Fatalf("Settlements after Forget = %+v, %v", got2, err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM rotation_journal`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d journal rows, %v", n, err)
	}
}

// TestLostSessionLosesTheLock: when the session holding the lock ends, the
// lock is free for others and every later journal call on the old lock
// fails with ErrLockLost, never on some other connection.
func TestLostSessionLosesTheLock(t *testing.T) {
	js, db := open(t, pgjournal.Options{LockWait: 300 * time.Millisecond})
	ctx := t.Context()
	lk, err := js.Lock(ctx, "local", "local-k1")
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Release()
	terminateHolder(t, db, js.LockKey("local", "local-k1"))
	err = lk.Save(ctx, rotation.JournalRecord{RotationID: "rot-0123456789abcdef01234567", Step: rotation.StepCreating, Replica: "r", Data: []byte(`{}`)})
	if !errors.Is(err, rotation.ErrLockLost) || !strings.Contains(err.Error(), "database session") {
		t.Fatalf("Save after the session ended = %v, want ErrLockLost", err)
	}
	if _, err := lk.Load(ctx); !errors.Is(err, rotation.ErrLockLost) {
		t.Fatalf("Load after a failure = %v, want ErrLockLost", err)
	}
	other, err := js.Lock(ctx, "local", "local-k1")
	if err != nil {
		t.Fatalf("the lock was not freed with its session: %v", err)
	}
	other.Release()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM rotation_journal`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d journal rows after a failed write, %v", n, err)
	}
}

// waitForWaiter returns once a session waits for an advisory lock.
func waitForWaiter(t *testing.T, db *sql.DB) {
	t.Helper()
	for {
		var n int
		if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		select {
		case <-t.Context().Done():
			t.Fatal("no session ever waited for the lock")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// terminateHolder ends the session holding advisory lock key, as a network
// failure or a database restart would.
func terminateHolder(t *testing.T, db *sql.DB, key int64) {
	t.Helper()
	k := uint64(key)
	var ok bool
	err := db.QueryRowContext(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1`,
		int64(k>>32), int64(k&0xffffffff)).Scan(&ok)
	if err != nil || !ok {
		t.Fatalf("terminating the lock's session: %v (%v)", ok, err)
	}
}

// TestHeldLocksAreBounded: a caller that starts many rotations at once
// cannot make keygate hold more than MaxHeld connections for locks; the
// rest are refused after LockWait, and a released lock frees its place.
func TestHeldLocksAreBounded(t *testing.T) {
	const maxHeld = 3
	js, db := open(t, pgjournal.Options{LockWait: 200 * time.Millisecond, MaxHeld: maxHeld})
	ctx := t.Context()
	var held []rotation.JournalLock
	for i := range maxHeld {
		lk, err := js.Lock(ctx, "local", "local-k"+string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, lk)
	}
	_, err := js.Lock(ctx, "local", "local-kz")
	if !errors.Is(err, rotation.ErrInProgress) || !strings.Contains(err.Error(), "in flight") {
		t.Fatalf("Lock beyond MaxHeld = %v, want ErrInProgress naming the bound", err)
	}
	if n := db.Stats().InUse; n != maxHeld {
		t.Errorf("%d connections in use, want %d", n, maxHeld)
	}
	held[0].Release()
	lk, err := js.Lock(ctx, "local", "local-kz")
	if err != nil {
		t.Fatalf("Lock after a release: %v", err)
	}
	lk.Release()
	for _, h := range held[1:] {
		h.Release()
	}
	if n := db.Stats().InUse; n != 0 {
		t.Errorf("%d connections still in use after every release", n)
	}
	// Released connections go back to the pool unlocked: every slot can be
	// taken again by another session.
	var wg sync.WaitGroup
	for i := range maxHeld + 1 {
		wg.Go(func() {
			lk, err := js.Lock(ctx, "local", "local-k"+string(rune('a'+i%maxHeld)))
			if err != nil && !errors.Is(err, rotation.ErrInProgress) {
				t.Error(err)
			}
			if err == nil {
				lk.Release()
			}
		})
	}
	wg.Wait()
	var locks int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&locks); err != nil || locks != 0 {
		t.Errorf("%d advisory locks left held by pooled sessions (%v)", locks, err)
	}
}

func TestOpenRefusesANewerSchema(t *testing.T) {
	_, db := open(t, pgjournal.Options{})
	if _, err := db.ExecContext(t.Context(), `UPDATE keygate_schema SET version = 99 WHERE component = $1`, pgjournal.Component); err != nil {
		t.Fatal(err)
	}
	if _, err := pgjournal.Open(t.Context(), db, pgjournal.Options{}); err == nil || !strings.Contains(err.Error(), "upgrade keygate") {
		t.Fatalf("Open on a newer schema = %v", err)
	}
}

// TestSchemasDoNotShareLocks: two keygate installations in different
// schemas of one database lock the same slot independently; one schema's
// replicas exclude each other.
func TestSchemasDoNotShareLocks(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := t.Context()
	open := func(schema string) *pgjournal.Journals {
		db, err := sql.Open("pgx", withSearchPath(t, dsn, schema))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := db.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema); err != nil {
			t.Fatal(err)
		}
		js, err := pgjournal.Open(ctx, db, pgjournal.Options{LockWait: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	a, b, a2 := open("install_a"), open("install_b"), open("install_a")
	la, err := a.Lock(ctx, "local", "KEYGATE_TOKEN")
	if err != nil {
		t.Fatal(err)
	}
	defer la.Release()
	lb, err := b.Lock(ctx, "local", "KEYGATE_TOKEN")
	if err != nil {
		t.Fatalf("another schema's lock: %v", err)
	}
	lb.Release()
	if _, err := a2.Lock(ctx, "local", "KEYGATE_TOKEN"); !errors.Is(err, rotation.ErrInProgress) {
		t.Fatalf("same schema, another replica: %v, want ErrInProgress", err)
	}
}

// withSearchPath returns dsn with search_path set to schema.
func withSearchPath(t *testing.T, dsn, schema string) string {
	t.Helper()
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " search_path=" + schema
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
