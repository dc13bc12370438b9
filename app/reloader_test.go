package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/keygate/keygate/auth"
)

// TestReloaderTriggers: an atomic rewrite of the env file and SIGHUP each
// reload. The test starts writing once the reloader says it is watching.
func TestReloaderTriggers(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(envFile, []byte("A=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	applied := make(chan map[string]string, 10)
	r := newReloader(envFile, slog.New(slog.DiscardHandler), func(context.Context) error {
		vars, err := auth.ReadEnvFile(envFile)
		applied <- vars
		return err
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go r.run(ctx)
	<-r.ready

	wait := func(what string) map[string]string {
		t.Helper()
		select {
		case v := <-applied:
			return v
		case <-time.After(5 * time.Second):
			t.Fatalf("no reload after %s", what)
		}
		return nil
	}
	if err := auth.SetEnvVar(envFile, "B", "two-2222", auth.EnvWriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if v := wait("an atomic rewrite of the env file"); v["B"] != "two-2222" {
		t.Errorf("reloaded %v", v)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wait("SIGHUP")
}

// TestReloaderIgnoresOtherFiles: of the events in the env file's
// directory, only those that may change the env file's content reload.
func TestReloaderIgnoresOtherFiles(t *testing.T) {
	dir := t.TempDir()
	r := newReloader(filepath.Join(dir, ".env"), slog.New(slog.DiscardHandler), nil)
	for _, tc := range []struct {
		name string
		op   fsnotify.Op
		want bool
	}{
		{".env", fsnotify.Write, true},
		{".env", fsnotify.Create, true},
		{".env", fsnotify.Rename, true},
		{"./.env", fsnotify.Write, true},
		{".env", fsnotify.Chmod, false},
		{".env", fsnotify.Remove, false},
		{"other", fsnotify.Write, false},
		{".env.tmp123", fsnotify.Create, false},
		{"..env.lock", fsnotify.Write, false},
	} {
		if got := r.changesEnvFile(fsnotify.Event{Name: filepath.Join(dir, tc.name), Op: tc.op}); got != tc.want {
			t.Errorf("%s %v: reload %v, want %v", tc.name, tc.op, got, tc.want)
		}
	}
}
