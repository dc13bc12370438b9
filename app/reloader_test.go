package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
)

// TestReloaderTriggers: an atomic rewrite of the env file and SIGHUP each
// reload once; another file in the same directory does not. The test
// starts writing once the reloader says it is watching.
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
	if err := os.WriteFile(filepath.Join(filepath.Dir(envFile), "other"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-applied:
		t.Errorf("reloaded for another file in the directory: %v", v)
	case <-time.After(2 * reloadDebounce):
	}
}
