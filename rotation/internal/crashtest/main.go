//go:build unix

// Command crashtest is keygate cut down to what a rotation touches: it opens
// a backend and the env file, recovers any unfinished rotation as keygate's
// startup does, then rotates, and kills itself with SIGKILL at a chosen
// step. The rotation package's crash tests run it as a subprocess.
//
// Exit status: 0 when it ran to the end, 1 when Rotate or Recover failed or
// the store it wrote could not be closed, 2 on a usage or setup error;
// killed by SIGKILL at the chosen step.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/delivery"
	"github.com/keygate/keygate/provider/local"
	"github.com/keygate/keygate/rotation"
	"github.com/keygate/keygate/rotation/pgjournal"
	"github.com/keygate/keygate/rotation/rotationtest"
)

func main() {
	os.Exit(run())
}

type options struct {
	backend, store, platform string
	revokesOld, replays      bool
	sessions                 bool
	env, name, dir           string
	grace                    time.Duration
	killAt, killIn, holdAt   string
	loop, recoverOnly        bool
	key, dest, keys          string
	pg, replica              string
}

func run() (code int) {
	var o options
	flag.StringVar(&o.backend, "backend", "local", "local or platform")
	flag.StringVar(&o.store, "store", "", "local store path")
	flag.StringVar(&o.platform, "platform", "", "fake platform state file")
	flag.BoolVar(&o.revokesOld, "revokes-old", false, "fake platform revokes the old key on create")
	flag.BoolVar(&o.replays, "replays", false, "fake platform replays creates by rotation id")
	flag.BoolVar(&o.sessions, "sessions", false, "fake platform replays only with a session opened before the create")
	flag.StringVar(&o.env, "env", "", "env file (absolute)")
	flag.StringVar(&o.name, "var", "KEYGATE_TOKEN", "variable holding the credential")
	flag.StringVar(&o.dir, "dir", "", "rotation directory")
	flag.DurationVar(&o.grace, "grace", 0, "grace period of the old key")
	flag.StringVar(&o.killAt, "kill-at", "", "step at which to SIGKILL this process")
	flag.StringVar(&o.killIn, "kill-in", "rotate", "phase in which -kill-at applies: recover or rotate")
	flag.StringVar(&o.holdAt, "hold-at", "", "step at which to print \"holding\" and wait to be killed")
	flag.BoolVar(&o.loop, "loop", false, "rotate again and again until killed")
	flag.BoolVar(&o.recoverOnly, "recover-only", false, "recover, then exit without rotating")
	flag.StringVar(&o.keys, "keys", "", "keys directory (default: keys in -dir)")
	flag.StringVar(&o.key, "key", "", "rotate this key (someone else's) instead of the env file's credential")
	flag.StringVar(&o.pg, "pg", "", "keep journals and locks in this Postgres database (rotation/pgjournal) instead of files in -dir")
	flag.StringVar(&o.replica, "replica", "", "with -pg, this replica's name (default: host name and -dir)")
	flag.StringVar(&o.dest, "dest", "", "with -key, where its new secret goes: \"\" (the keys directory), \"reveal\" or \"file:NAME.token\"")
	flag.Parse()

	if o.keys == "" {
		o.keys = filepath.Join(o.dir, "keys")
	}
	ctx := context.Background()
	backend, closeBackend, err := openBackend(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		return 2
	}
	defer func() {
		if err := closeBackend(); err != nil {
			fmt.Fprintln(os.Stderr, "crashtest: closing the backend:", err)
			code = max(code, 1)
		}
	}()

	phase := "recover"
	eng := &rotation.Engine{Name: o.backend, Dir: o.dir, EnvFile: o.env, Legacy: o.name, Backend: backend, Replica: o.replica,
		Places: delivery.Places{EnvFile: o.env, KeysDir: o.keys},
		OnStep: func(s rotation.Step) {
			switch {
			case phase == o.killIn && string(s) == o.killAt:
				die()
			case phase == "rotate" && string(s) == o.holdAt:
				fmt.Println("holding")
				select {}
			}
		}}
	if o.pg != "" {
		db, err := sql.Open("pgx", o.pg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "crashtest:", err)
			return 2
		}
		defer db.Close()
		js, err := pgjournal.Open(ctx, db, pgjournal.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, "crashtest:", err)
			return 2
		}
		eng.Journals = js
	}
	if _, err := eng.Recover(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "crashtest: recover:", err)
		return 1
	}
	if o.recoverOnly {
		return 0
	}
	phase = "rotate"
	if o.key != "" {
		return rotateOther(ctx, eng, o)
	}
	if o.loop {
		fmt.Println("rotating") // the test's random delay starts here
	}
	for {
		vars, err := auth.ReadEnvFile(o.env)
		if err != nil {
			fmt.Fprintln(os.Stderr, "crashtest:", err)
			return 2
		}
		res, err := eng.Rotate(ctx, rotation.Own(o.name, auth.NewSecret(vars[o.name]), o.grace, nil))
		if err != nil {
			fmt.Fprintln(os.Stderr, "crashtest: rotate:", err)
			return 1
		}
		if !o.loop {
			fmt.Println(res.New.ID)
			return 0
		}
	}
}

// rotateOther rotates key o.key, whose secret this process does not hold,
// to destination o.dest, and prints the new key's id and where its secret
// went.
func rotateOther(ctx context.Context, eng *rotation.Engine, o options) int {
	places := eng.Places.(delivery.Places)
	dest, err := places.Parse(o.dest)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		return 2
	}
	res, err := eng.Rotate(ctx, rotation.Request{KeyID: o.key, Dest: dest, Grace: o.grace})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashtest: rotate:", err)
		return 1
	}
	fmt.Println(res.New.ID, res.Delivered)
	return 0
}

func openBackend(ctx context.Context, o options) (rotation.Backend, func() error, error) {
	switch o.backend {
	case "local":
		s, err := local.Open(ctx, o.store, local.Options{})
		if err != nil {
			return nil, nil, err
		}
		return s.RotationBackend(), s.Close, nil
	case "platform":
		p := rotationtest.Open(o.platform, rotationtest.Options{RevokesOldOnCreate: o.revokesOld, CreateReplays: o.replays, Sessions: o.sessions})
		return p.Backend(), func() error { return nil }, nil
	}
	return nil, nil, errors.New("unknown backend " + o.backend)
}

// die kills this process the way a power cut or the OOM killer would: no
// deferred calls, no flushing, no exit handlers.
func die() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	for {
		time.Sleep(time.Second)
	}
}
