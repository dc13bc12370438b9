//go:build unix

package rotation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/rotation"
	"github.com/keygate/keygate/rotation/rotationtest"
)

func TestRotate(t *testing.T) {
	tests := []struct {
		name  string
		kind  string
		popts rotationtest.Options
		grace time.Duration
	}{
		{"local, at once", "local", rotationtest.Options{}, 0},
		{"local, with grace", "local", rotationtest.Options{}, time.Hour},
		{"platform that revokes on create", "platform", rotationtest.Options{RevokesOldOnCreate: true, CreateReplays: true}, 0},
		{"platform that revokes on create, replays with a session", "platform", rotationtest.Options{RevokesOldOnCreate: true, CreateReplays: true, Sessions: true}, 0},
		{"platform that revokes on create, grace asked", "platform", rotationtest.Options{RevokesOldOnCreate: true}, time.Hour},
		{"platform with overlap, with grace", "platform", rotationtest.Options{}, 30 * time.Minute},
	}
	for i, tc := range tests {
		for _, jk := range kindsFor(i == 0 || i == 3) {
			t.Run(jk+"/"+tc.name, func(t *testing.T) {
				f := newFixture(t, tc.kind, tc.popts)
				f.useJournals(jk)
				var logs bytes.Buffer
				eng := f.engine()
				eng.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
				var swaps []auth.Secret
				follow := func(next auth.Secret) { swaps = append(swaps, next) }
				var steps []rotation.Step
				eng.OnStep = func(s rotation.Step) {
					steps = append(steps, s)
					checkFilesPrivate(t, f, s)
				}

				res, err := eng.Rotate(t.Context(), rotation.Own(tokenVar, f.old, tc.grace, follow))
				if err != nil {
					t.Fatal(err)
				}
				if want := rotation.Steps(eng.Backend); !slices.Equal(steps, want) {
					t.Errorf("steps = %v, want %v", steps, want)
				}
				if id, ok := f.works(res.NewSecret.Reveal()); !ok || id != res.New.ID || res.New.ID == f.oldID || res.OldKeyID != f.oldID {
					t.Errorf("result %+v: new secret works=%v as %s", res, ok, id)
				}
				f.checkEnvFile(res.NewSecret.Reveal())
				if len(swaps) != 1 || swaps[0] != res.NewSecret {
					t.Errorf("follow calls = %d, want one to the new secret", len(swaps))
				}
				f.checkClean()
				noSecrets(t, "log", logs.String(), f.old, res.NewSecret)

				effective := tc.grace
				if tc.popts.RevokesOldOnCreate {
					effective = 0
				}
				if want := f.clock.Now().Add(effective); !res.OldStopsAt.Equal(want) {
					t.Errorf("OldStopsAt = %v, want %v", res.OldStopsAt, want)
				}
				if _, ok := f.works(f.old.Reveal()); ok != (effective > 0) {
					t.Errorf("old key works = %v right after the rotation, grace %v", ok, effective)
				}
				f.clock.Add(effective)
				if _, ok := f.works(f.old.Reveal()); ok {
					t.Error("old key still works after the grace period")
				}
				if live := f.live(); !slices.Equal(live, []string{res.New.ID}) {
					t.Errorf("live keys = %v, want only the new one", live)
				}
			})
		}
	}
}

// checkFilesPrivate runs at every step: the journal never holds a secret,
// the pending file never the old one, and both are 0600 in a 0700 directory.
func checkFilesPrivate(t *testing.T, f *fixture, s rotation.Step) {
	t.Helper()
	if fi, err := os.Stat(f.stateDir); err == nil && fi.Mode().Perm() != 0o700 {
		t.Errorf("at %s: rotation dir mode %v", s, fi.Mode().Perm())
	}
	noSecrets(t, "journal at "+string(s), f.journalText(tokenVar), f.old)
	for _, name := range []string{tokenVar + ".journal", tokenVar + ".pending"} {
		path := filepath.Join(f.stateDir, name)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Errorf("at %s: %s mode %v", s, name, fi.Mode().Perm())
		}
		if strings.HasSuffix(name, ".journal") {
			noSecrets(t, "journal at "+string(s), string(b), f.old)
		} else if bytes.Contains(b, []byte(f.old.Reveal())) {
			t.Errorf("at %s: the pending file holds the old secret", s)
		}
	}
}

func TestRotateThroughAllowedSymlink(t *testing.T) {
	f := newFixture(t, "local", rotationtest.Options{})
	real := filepath.Join(filepath.Dir(f.envFile), "real.env")
	if err := os.Rename(f.envFile, real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.env", f.envFile); err != nil {
		t.Fatal(err)
	}
	eng := f.engine()
	eng.AllowSymlink = true
	eng.Places = delivery.Places{EnvFile: f.envFile, KeysDir: filepath.Join(f.dir, "keys"), AllowSymlink: true}
	res, err := eng.Rotate(t.Context(), rotation.Own(tokenVar, f.old, 0, nil))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(f.envFile); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v, %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(real); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("target mode: %v, %v", fi.Mode(), err)
	}
	if f.envValue() != res.NewSecret.Reveal() {
		t.Error("the symlink's target does not hold the new key")
	}
}

func TestPreflightRefuses(t *testing.T) {
	tests := []struct {
		name     string
		scopes   []string
		setup    func(t *testing.T, f *fixture, e *rotation.Engine)
		target   error
		contains []string
		root     bool // the case cannot be built as root
	}{
		{
			name: "env file is a symlink",
			setup: func(t *testing.T, f *fixture, _ *rotation.Engine) {
				real := filepath.Join(filepath.Dir(f.envFile), "real.env")
				must(t, os.Rename(f.envFile, real))
				must(t, os.Symlink(real, f.envFile))
			},
			target: auth.ErrEnvSymlink, contains: []string{".env", "allow symlinks explicitly"},
		},
		{
			name:   "env file mode 0644",
			setup:  func(t *testing.T, f *fixture, _ *rotation.Engine) { must(t, os.Chmod(f.envFile, 0o644)) },
			target: rotation.ErrLooseMode, contains: []string{"mode 0644", "chmod 600 "},
		},
		{
			name:   "env file mode 0640",
			setup:  func(t *testing.T, f *fixture, _ *rotation.Engine) { must(t, os.Chmod(f.envFile, 0o640)) },
			target: rotation.ErrLooseMode, contains: []string{"mode 0640"},
		},
		{
			name: "variable holds another credential",
			setup: func(t *testing.T, f *fixture, _ *rotation.Engine) {
				must(t, auth.SetEnvVar(f.envFile, tokenVar, "kg_pat_somethingelse", auth.EnvWriteOptions{Overwrite: true}))
			},
			target: rotation.ErrNotHeld, contains: []string{tokenVar},
		},
		{
			name:     "env file missing",
			setup:    func(t *testing.T, f *fixture, _ *rotation.Engine) { must(t, os.Remove(f.envFile)) },
			contains: []string{"does not exist"},
		},
		{
			name: "env directory read-only",
			setup: func(t *testing.T, f *fixture, _ *rotation.Engine) {
				dir := filepath.Dir(f.envFile)
				must(t, os.Chmod(dir, 0o500))
				t.Cleanup(func() { os.Chmod(dir, 0o700) })
			},
			target: rotation.ErrNotWritable, contains: []string{"cannot write a new env file"}, root: true,
		},
		{
			name:   "env file system read-only",
			setup:  failProbe(syscall.EROFS, "conf"),
			target: syscall.EROFS, contains: []string{"cannot write a new env file", "read-only file system"},
		},
		{
			name:   "disk full beside the env file",
			setup:  failProbe(syscall.ENOSPC, "conf"),
			target: rotation.ErrNotWritable, contains: []string{"no space left on device"},
		},
		{
			name:   "disk full in the rotation directory",
			setup:  failProbe(syscall.ENOSPC, "rotation"),
			target: syscall.ENOSPC, contains: []string{"cannot write the rotation journal"},
		},
		{
			name: "rotation directory readable by others",
			setup: func(t *testing.T, f *fixture, _ *rotation.Engine) {
				must(t, os.MkdirAll(f.stateDir, 0o700))
				must(t, os.Chmod(f.stateDir, 0o755))
			},
			target: rotation.ErrLooseMode, contains: []string{"chmod 700"},
		},
		{
			name: "old key revoked",
			setup: func(t *testing.T, f *fixture, _ *rotation.Engine) {
				_, _, _, err := f.openStore().RevokeKey(t.Context(), f.oldID)
				must(t, err)
			},
			target: rotation.ErrRejected, contains: []string{"revoked or expired"},
		},
		{
			name:   "old key may not create keys",
			scopes: []string{"content:read"},
			setup:  func(*testing.T, *fixture, *rotation.Engine) {},
			target: rotation.ErrCannotRotate, contains: []string{"credentials:write"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() == 0 {
				t.Skip("root writes into read-only directories; the probe-failure cases cover this")
			}
			f := newFixture(t, "local", rotationtest.Options{}, tc.scopes...)
			eng := f.engine()
			tc.setup(t, f, eng)
			before := f.keys()
			envBefore, _ := os.ReadFile(f.envFile)

			_, err := eng.Rotate(t.Context(), rotation.Own(tokenVar, f.old, 0, nil))
			if err == nil {
				t.Fatal("Rotate succeeded")
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Errorf("error %q is not %v", err, tc.target)
			}
			for _, s := range tc.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			noSecrets(t, "error", err.Error(), f.old)
			if after := f.keys(); len(after) != len(before) {
				t.Errorf("%d keys after a refused rotation, want %d", len(after), len(before))
			}
			if envAfter, _ := os.ReadFile(f.envFile); !bytes.Equal(envAfter, envBefore) {
				t.Error("the env file changed")
			}
			if _, err := os.Stat(filepath.Join(f.stateDir, tokenVar+".journal")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a journal was left: %v", err)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// failProbe makes the write probe fail with errno in the directory whose
// name is dirName.
func failProbe(errno syscall.Errno, dirName string) func(*testing.T, *fixture, *rotation.Engine) {
	return func(_ *testing.T, _ *fixture, e *rotation.Engine) {
		rotation.SetProbe(e, func(dir string, _ int) error {
			if filepath.Base(dir) == dirName {
				return &fs.PathError{Op: "write", Path: filepath.Join(dir, ".probe"), Err: errno}
			}
			return nil
		})
	}
}

// TestEnvWriteFailsAfterVerify covers the failure table's "verified, .env
// write failed" row: both keys are kept, the old one is never revoked, and
// a later Recover finishes the job.
func TestEnvWriteFailsAfterVerify(t *testing.T) {
	for i, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EROFS, syscall.EACCES} {
		for _, jk := range kindsFor(i == 0) {
			t.Run(jk+"/"+errno.Error(), func(t *testing.T) {
				f := newFixture(t, "local", rotationtest.Options{})
				f.useJournals(jk)
				eng := f.engine()
				eng.Places = failingPut{eng.Places, &fs.PathError{Op: "write", Path: f.envFile, Err: errno}}
				swapped := false
				follow := func(auth.Secret) { swapped = true }

				_, err := eng.Rotate(t.Context(), rotation.Own(tokenVar, f.old, 0, follow))
				if !errors.Is(err, rotation.ErrSwapFailed) || !errors.Is(err, errno) {
					t.Fatalf("error = %v, want ErrSwapFailed and %v", err, errno)
				}
				noSecrets(t, "error", err.Error(), f.old)
				if swapped {
					t.Error("keygate switched to a key the env file does not hold")
				}
				f.checkEnvFile(f.old.Reveal())
				if _, ok := f.works(f.old.Reveal()); !ok {
					t.Fatal("the old key was revoked although the env file still holds it")
				}
				if live := f.live(); len(live) != 2 {
					t.Errorf("live keys = %v, want the old and the new (kept in the pending file)", live)
				}
				if _, err := eng.Rotate(t.Context(), rotation.Own(tokenVar, f.old, 0, nil)); !errors.Is(err, rotation.ErrUnfinished) {
					t.Errorf("second Rotate: %v, want ErrUnfinished", err)
				}

				// The disk is fixed; keygate restarts.
				rep, err := f.engine().RecoverSlot(t.Context(), tokenVar)
				if err != nil || rep.Action != rotation.ActionCompleted {
					t.Fatalf("Recover = %+v, %v; want completed", rep, err)
				}
				f.checkEnvFile(rep.Current.Reveal())
				if _, ok := f.works(f.old.Reveal()); ok {
					t.Error("old key still works after recovery finished the rotation")
				}
				if !slices.Equal(f.live(), []string{rep.NewKeyID}) {
					t.Errorf("live keys = %v, want only %s", f.live(), rep.NewKeyID)
				}
				f.checkClean()
			})
		}
	}
}

// TestEnvWriteFailsOldAlreadyDead: with a platform that revoked the old key
// at create, keygate must switch to the new key in memory even though the
// env file could not take it, and recovery writes it later.
func TestEnvWriteFailsOldAlreadyDead(t *testing.T) {
	f := newFixture(t, "platform", rotationtest.Options{RevokesOldOnCreate: true})
	eng := f.engine()
	eng.Places = failingPut{eng.Places, &fs.PathError{Op: "rename", Path: f.envFile, Err: syscall.EROFS}}
	var current auth.Secret
	follow := func(next auth.Secret) { current = next }
	_, err := eng.Rotate(t.Context(), rotation.Own(tokenVar, f.old, 0, follow))
	if !errors.Is(err, rotation.ErrSwapFailed) {
		t.Fatalf("error = %v, want ErrSwapFailed", err)
	}
	if _, ok := f.works(current.Reveal()); !ok {
		t.Fatal("keygate was not switched to the only working key")
	}
	rep, err := f.engine().RecoverSlot(t.Context(), tokenVar)
	if err != nil || rep.Action != rotation.ActionCompleted || rep.Current != current {
		t.Fatalf("Recover = %+v, %v", rep, err)
	}
	f.checkEnvFile(current.Reveal())
	f.checkClean()
}

// TestVerifyFailure covers "persisted, not verified": a key with the wrong
// scopes is revoked and the old one kept, and the error names the scope.
func TestVerifyFailure(t *testing.T) {
	f := newFixture(t, "platform", rotationtest.Options{DropScope: "content:read"})
	_, err := f.engine().Rotate(t.Context(), rotation.Own(tokenVar, f.old, 0, nil))
	var se *rotation.ScopeError
	if !errors.As(err, &se) || !slices.Equal(se.Missing, []string{"content:read"}) {
		t.Fatalf("error = %v, want a ScopeError missing content:read", err)
	}
	for _, s := range []string{"lacks content:read", "rolled back", "discarded"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if !slices.Equal(f.live(), []string{f.oldID}) {
		t.Errorf("live keys = %v, want only the old key", f.live())
	}
	f.checkEnvFile(f.old.Reveal())
	f.checkClean()
}

// TestVerifyFailureOldAlreadyDead: when the old key died at create, a new
// key with the wrong scopes is still better than none; it is adopted and
// the error says why.
func TestVerifyFailureOldAlreadyDead(t *testing.T) {
	f := newFixture(t, "platform", rotationtest.Options{DropScope: "content:read", RevokesOldOnCreate: true})
	res, err := f.engine().Rotate(t.Context(), rotation.Own(tokenVar, f.old, 0, nil))
	if err == nil || !strings.Contains(err.Error(), "lacks content:read") || !strings.Contains(err.Error(), "adopted anyway") {
		t.Fatalf("error = %v", err)
	}
	if res.NewSecret.IsZero() {
		t.Fatal("Result has no new secret although the new key was adopted")
	}
	f.checkEnvFile(res.NewSecret.Reveal())
	f.checkClean()
}

// TestCreateResponseLost covers "create sent, response lost": the key is
// found by its tag and revoked, or adopted by replay where the old key died.
func TestCreateResponseLost(t *testing.T) {
	tests := []struct {
		name     string
		popts    rotationtest.Options
		wantErr  error
		contains string
		adopted  bool
	}{
		{"overlap: orphan revoked", rotationtest.Options{}, nil, "rolled back: new key", false},
		{"old dies, replay: adopted", rotationtest.Options{RevokesOldOnCreate: true, CreateReplays: true}, nil, "", true},
		{"old dies, no replay: reported lost", rotationtest.Options{RevokesOldOnCreate: true}, rotation.ErrCredentialLost, "create a new key", false},
		{"old dies, replay with a session: adopted", rotationtest.Options{RevokesOldOnCreate: true, CreateReplays: true, Sessions: true}, nil, "", true},
		{"old dies, session died with it: reported lost", rotationtest.Options{RevokesOldOnCreate: true, CreateReplays: true, Sessions: true, SessionsDieWithKey: true},
			rotation.ErrCredentialLost, "replaying the rotation was refused", false},
	}
	for i, tc := range tests {
		for _, jk := range kindsFor(i == 0 || i == 3) {
			t.Run(jk+"/"+tc.name, func(t *testing.T) {
				tc.popts.LoseCreateResponse = true
				f := newFixture(t, "platform", tc.popts)
				f.useJournals(jk)
				res, err := f.engine().Rotate(t.Context(), rotation.Own(tokenVar, f.old, 0, nil))
				if tc.adopted {
					if err != nil {
						t.Fatal(err)
					}
					f.checkEnvFile(res.NewSecret.Reveal())
					if !slices.Equal(f.live(), []string{res.New.ID}) {
						t.Errorf("live keys = %v, want only %s", f.live(), res.New.ID)
					}
					f.checkClean()
					if n, err := rotationtest.Open(f.platformPath, tc.popts).LiveSessions(); err != nil || n != 0 {
						t.Errorf("%d replay sessions left open (%v), want all closed", n, err)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), "timeout") || !strings.Contains(err.Error(), tc.contains) {
					t.Fatalf("error = %v, want the timeout and %q", err, tc.contains)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("error is not %v", tc.wantErr)
				}
				// Every key the rotation made is revoked: none is left behind.
				for _, k := range f.keys() {
					if k.ID != f.oldID && k.RevokedAt.IsZero() {
						t.Errorf("key %s made by the rotation is still live", k.ID)
					}
				}
				f.checkClean()
			})
		}
	}
}

// TestJournalWriteFailures: a failed write after the create is settled at
// once by the failure table, never left half-done.
func TestJournalWriteFailures(t *testing.T) {
	tests := []struct {
		name      string
		kind      string
		popts     rotationtest.Options
		failWrite int // which journal or pending write fails (1 = intent)
		completes bool
		contains  string
	}{
		{"intent", "local", rotationtest.Options{}, 1, false, "refused before any change"},
		{"pending file", "local", rotationtest.Options{}, 2, false, "rolled back"},
		{"journal after persist", "local", rotationtest.Options{}, 3, true, ""},
		{"journal after verify", "local", rotationtest.Options{}, 4, true, ""},
		// The old key is dead: the new one goes to the env file regardless.
		{"pending file, old key dead", "platform", rotationtest.Options{RevokesOldOnCreate: true}, 2, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.kind, tc.popts)
			eng := f.engine()
			n := 0
			rotation.SetWriteFile(eng, func(path string, v any) error {
				if n++; n == tc.failWrite {
					return &fs.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
				}
				return rotation.WriteJSONFile(path, v)
			})
			res, err := eng.Rotate(t.Context(), rotation.Own(tokenVar, f.old, 0, nil))
			if tc.completes {
				if err != nil {
					t.Fatalf("Rotate: %v; want the failure settled by completing", err)
				}
				f.checkEnvFile(res.NewSecret.Reveal())
				if !slices.Equal(f.live(), []string{res.New.ID}) {
					t.Errorf("live keys = %v, want only the new key", f.live())
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.contains) {
					t.Fatalf("error = %v, want %q", err, tc.contains)
				}
				f.checkEnvFile(f.old.Reveal())
				if !slices.Equal(f.live(), []string{f.oldID}) {
					t.Errorf("live keys = %v, want only the old key", f.live())
				}
			}
			f.checkClean()
		})
	}
}

// TestConcurrentRotations: many rotations of one credential at once give
// exactly one new key; the others are told a rotation is in progress or
// that the credential has changed.
func TestConcurrentRotations(t *testing.T) {
	for _, kind := range []string{"local", "platform"} {
		for _, jk := range journalKinds {
			t.Run(jk+"/"+kind, func(t *testing.T) {
				f := newFixture(t, kind, rotationtest.Options{RevokesOldOnCreate: kind == "platform"})
				f.useJournals(jk)
				const n = 8
				var wg sync.WaitGroup
				errs := make([]error, n)
				for i := range n {
					wg.Go(func() {
						_, errs[i] = f.engine().Rotate(context.Background(), rotation.Own(tokenVar, f.old, 0, nil))
					})
				}
				wg.Wait()
				ok := 0
				for _, err := range errs {
					switch {
					case err == nil:
						ok++
					case errors.Is(err, rotation.ErrInProgress) || errors.Is(err, rotation.ErrNotHeld):
						if errors.Is(err, rotation.ErrInProgress) && !strings.Contains(err.Error(), "rotation in progress") {
							t.Errorf("error %q does not say \"rotation in progress\"", err)
						}
					default:
						t.Errorf("unexpected error: %v", err)
					}
				}
				if keys := f.keys(); ok != 1 || len(keys) != 2 {
					t.Fatalf("%d rotations succeeded and %d keys exist; want 1 and 2", ok, len(keys))
				}
				id, works := f.works(f.envValue())
				if !works || !slices.Equal(f.live(), []string{id}) {
					t.Errorf("live keys = %v, env key %s works=%v", f.live(), id, works)
				}
			})
		}
	}
}

// gatedBackend holds Create until released, so a test can act while a
// rotation is in flight.
type gatedBackend struct {
	rotation.Backend
	entered chan struct{}
	release chan struct{}
}

func (g gatedBackend) Create(ctx context.Context, req rotation.CreateRequest) (provider.IssuedKey, error) {
	close(g.entered)
	<-g.release
	return g.Backend.Create(ctx, req)
}

// TestSecondRotationWhileOneIsInFlight: a rotation of the same key, by this
// process or another replica, waits a bounded time for the lock and is
// refused with ErrInProgress; so is recovery.
func TestSecondRotationWhileOneIsInFlight(t *testing.T) {
	for _, jk := range journalKinds {
		t.Run(jk, func(t *testing.T) { testSecondRotationWhileOneIsInFlight(t, jk) })
	}
}

func testSecondRotationWhileOneIsInFlight(t *testing.T, journals string) {
	f := newFixture(t, "local", rotationtest.Options{})
	f.useJournalsWait(journals, 300*time.Millisecond)
	gate := gatedBackend{Backend: f.backend(), entered: make(chan struct{}), release: make(chan struct{})}
	first := f.engine()
	first.Backend = gate
	done := make(chan error)
	go func() {
		_, err := first.Rotate(context.Background(), rotation.Own(tokenVar, f.old, 0, nil))
		done <- err
	}()
	<-gate.entered
	if _, err := f.engine().Rotate(t.Context(), rotation.Own(tokenVar, f.old, 0, nil)); !errors.Is(err, rotation.ErrInProgress) {
		t.Errorf("second Rotate: %v, want ErrInProgress", err)
	}
	if _, err := f.engine().RecoverSlot(t.Context(), tokenVar); !errors.Is(err, rotation.ErrInProgress) {
		t.Errorf("Recover during a rotation: %v, want ErrInProgress", err)
	}
	close(gate.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if keys := f.keys(); len(keys) != 2 {
		t.Errorf("%d keys, want 2", len(keys))
	}
}

func TestRecoverWithNothingToDo(t *testing.T) {
	f := newFixture(t, "local", rotationtest.Options{})
	rep, err := f.engine().RecoverSlot(t.Context(), tokenVar)
	if err != nil || rep.Action != rotation.ActionNone || rep.Summary() != "no unfinished rotation" || !rep.Current.IsZero() {
		t.Fatalf("Recover = %+v, %v", rep, err)
	}
	f.checkEnvFile(f.old.Reveal())
}

// TestRecoverStrayPending: a pending file without its journal (a person
// deleted the journal) is not ignored: its key is revoked, since the env
// file does not hold it.
func TestRecoverStrayPending(t *testing.T) {
	for _, jk := range journalKinds {
		t.Run(jk, func(t *testing.T) { testRecoverStrayPending(t, jk) })
	}
}

func testRecoverStrayPending(t *testing.T, journals string) {
	f := newFixture(t, "local", rotationtest.Options{})
	f.useJournals(journals)
	const rid = "rot-0123456789abcdef01234567"
	issued, err := f.openStore().RotateKey(t.Context(), f.oldID, rid)
	must(t, err)
	must(t, os.MkdirAll(f.stateDir, 0o700))
	b, _ := json.Marshal(map[string]string{"rotation_id": rid, "key_id": issued.Key.ID, "secret": issued.Secret.Reveal()})
	must(t, os.WriteFile(filepath.Join(f.stateDir, tokenVar+".pending"), b, 0o600))

	rep, err := f.engine().RecoverSlot(t.Context(), tokenVar)
	if err != nil || rep.Action != rotation.ActionRolledBack ||
		!slices.Equal(rep.Keys, []rotation.KeyFate{{KeyID: issued.Key.ID, Fate: rotation.FateDiscarded}}) {
		t.Fatalf("Recover = %+v, %v", rep, err)
	}
	if !slices.Equal(f.live(), []string{f.oldID}) {
		t.Errorf("live keys = %v", f.live())
	}
	f.checkClean()
}

func TestRecoverRemovesStaleTempFiles(t *testing.T) {
	f := newFixture(t, "local", rotationtest.Options{})
	must(t, os.MkdirAll(f.stateDir, 0o700))
	old := time.Now().Add(-time.Hour)
	// internal/atomicfile names its temp files "." + base + digits: "..env123456".
	stale := []string{filepath.Join(filepath.Dir(f.envFile), "..env123456"), filepath.Join(f.stateDir, "."+tokenVar+".journal42")}
	fresh := filepath.Join(filepath.Dir(f.envFile), "..env999") // a write in progress elsewhere
	keep := filepath.Join(filepath.Dir(f.envFile), ".env.backup")
	for _, p := range append(stale, fresh, keep) {
		must(t, os.WriteFile(p, []byte("x"), 0o600))
	}
	for _, p := range append(stale, keep) {
		must(t, os.Chtimes(p, old, old))
	}
	rep, err := f.engine().RecoverSlot(t.Context(), tokenVar)
	if err != nil || rep.TempFilesRemoved != 2 {
		t.Fatalf("Recover = %+v, %v; want 2 temp files removed", rep, err)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s was not removed", p)
		}
	}
	for _, p := range []string{fresh, keep} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}

func TestEngineValidates(t *testing.T) {
	f := newFixture(t, "local", rotationtest.Options{})
	tests := []struct {
		name   string
		change func(*rotation.Engine)
		req    rotation.Request
		want   string
	}{
		{"no backend", func(e *rotation.Engine) { e.Backend = nil }, rotation.Own(tokenVar, f.old, 0, nil), "no backend"},
		{"nowhere to deliver", func(e *rotation.Engine) { e.Places = nil }, rotation.Own(tokenVar, f.old, 0, nil), "nowhere to deliver"},
		{"relative env file", func(e *rotation.Engine) { e.EnvFile = ".env" }, rotation.Own(tokenVar, f.old, 0, nil), "absolute"},
		{"bad name", func(e *rotation.Engine) { e.Name = "a/b" }, rotation.Own(tokenVar, f.old, 0, nil), "name must be"},
		{"bad slot", func(*rotation.Engine) {}, rotation.Own("A.B", f.old, 0, nil), "slot must be"},
		{"no directory", func(e *rotation.Engine) { e.Dir = "" }, rotation.Own(tokenVar, f.old, 0, nil), "no directory"},
		{"no destination", func(*rotation.Engine) {}, rotation.Request{KeyID: f.oldID}, "no destination"},
		{"no key", func(*rotation.Engine) {}, rotation.Request{Dest: delivery.Spec{Kind: delivery.Reveal}}, "no key to rotate"},
		{"own credential sent elsewhere", func(*rotation.Engine) {}, rotation.Request{Old: f.old, Dest: delivery.Spec{Kind: delivery.Reveal}}, "must go back"},
		{"negative grace", func(*rotation.Engine) {}, rotation.Own(tokenVar, f.old, -1, nil), "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := f.engine()
			tc.change(e)
			if _, err := e.Rotate(t.Context(), tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestLocksAreStriped: rotating many keys leaves a bounded number of lock
// files, not one per key a caller ever rotated.
func TestLocksAreStriped(t *testing.T) {
	f := newFixture(t, "local", rotationtest.Options{})
	eng := f.engine()
	const keys = 80
	for i := range keys {
		k := f.mintOther(fmt.Sprintf("k%d", i))
		if _, err := eng.Rotate(t.Context(), rotation.Request{KeyID: k.ID, Dest: delivery.Spec{Kind: delivery.Reveal}}); err != nil {
			t.Fatalf("rotating key %d: %v", i, err)
		}
	}
	locks, err := filepath.Glob(filepath.Join(f.stateDir, "*.lock"))
	if err != nil {
		t.Fatal(err)
	}
	if len(locks) > 64 {
		t.Errorf("%d lock files after rotating %d keys, want at most 64", len(locks), keys)
	}
	entries, _ := os.ReadDir(f.stateDir)
	if len(entries) != len(locks) {
		t.Errorf("%d entries in the state directory, want only the %d lock files", len(entries), len(locks))
	}
}
