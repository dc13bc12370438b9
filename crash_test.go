package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/internal/testtier"
	"github.com/keygate/keygate/provider/agrenting"
	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
	"github.com/keygate/keygate/provider/local"
	"github.com/keygate/keygate/rotation"
)

// localBackend stands for the store's rotation backend when only its
// steps are needed.
var localBackend = (&local.Store{}).RotationBackend()

// TestSelfRotationSurvivesSIGKILL kills the real keygate binary (built with
// -tags crashtest) at every step of a rotation of its own token, restarts
// it, and checks what docs/SECURITY.md (Rotation failure table) promises: keygate starts with a
// working credential, the env file parses and is 0600, the old and new key
// are never both revoked, and no key the rotation made is left active
// beside the one in use. ROTATION_CRASH_RUNS raises the runs per step.
func TestSelfRotationSurvivesSIGKILL(t *testing.T) {
	crashEachStep(t, rotation.Steps(localBackend), func(t *testing.T, crashBinary string, step rotation.Step) (bool, bool) {
		in := prepareCrashInstance(t)
		before := in.token(t)
		r := rotateThenRestart(t, crashBinary, in, step, map[string]any{"credential": "current", "confirm": true})
		if who := structured(t, callTool(t, r.c, "auth_whoami", nil)); who["authenticated"] != true {
			t.Fatalf("after a kill at %s keygate has no working credential: %v\n%s", step, who, r)
		}
		if res := callTool(t, r.c, "content_list", map[string]any{"type": "posts"}); res.IsError {
			t.Fatalf("content_list after restart: %v", res.Content)
		}
		vars := checkEnvFileIntact(t, in)
		r.c.Close()
		checkKeys(t, in, before, vars["KEYGATE_TOKEN"])
		return r.killed, r.settled()
	})
}

// TestAgrentingRotationSurvivesSIGKILL is the same for keygate's own
// Agrenting key (credential "current"), against the fake, which outlives
// the killed process as the real platform would, and which serves no key
// list, as Agrenting documents none. Agrenting revokes the old key at the
// create, so after a kill between its answer and the env file, the new key
// comes back from the answer kept in the pending file, or from the replay
// of the rotation (same idempotency key, a session opened beforehand).
// After every restart keygate must reach Agrenting with the env file's
// key, which is the agent's only active key.
func TestAgrentingRotationSurvivesSIGKILL(t *testing.T) {
	crashEachStep(t, rotation.Steps(agrenting.RotationBackend{}), func(t *testing.T, crashBinary string, step rotation.Step) (bool, bool) {
		fake := agrentingtest.New(agrentingtest.WithoutCredentialList())
		srv := fake.Start()
		defer srv.Close()
		in := prepareCrashInstance(t)
		for _, kv := range [][2]string{{"AGRENTING_API_KEY", agrentingtest.DemoAgentKey}, {"AGRENTING_API_URL", srv.URL + "/api/v1"}} {
			if err := auth.SetEnvVar(in.envFile, kv[0], kv[1], auth.EnvWriteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		r := rotateThenRestart(t, crashBinary, in, step, map[string]any{"provider": "agrenting", "credential": "current", "confirm": true})
		if res := callTool(t, r.c, "content_list", map[string]any{"provider": "agrenting", "type": "tasks"}); res.IsError {
			t.Fatalf("after a kill at %s keygate cannot reach Agrenting: %v\n%s", step, res.Content, r)
		}
		key := checkEnvFileIntact(t, in)["AGRENTING_API_KEY"]
		active := 0
		for _, c := range fake.Credentials(agrentingtest.DemoAgentID) {
			if c.RevokedAt.IsZero() {
				active++
				if c.Secret != key {
					t.Errorf("key %s is active beside the env file's: an orphan", c.ID)
				}
			}
		}
		if active != 1 {
			t.Errorf("%d active Agrenting keys, want exactly the env file's", active)
		}
		if out := r.String(); strings.Contains(out, agrentingtest.DemoAgentKey) || strings.Contains(out, key) {
			t.Error("an Agrenting key reached stderr")
		}
		return r.killed, r.settled()
	})
}

// crashEachStep runs body ROTATION_CRASH_RUNS times (2 by default) for
// every step, with a keygate built with -tags crashtest, and logs how many
// calls the kill cut off and how many restarts settled a rotation.
func crashEachStep(t *testing.T, steps []rotation.Step, body func(t *testing.T, crashBinary string, step rotation.Step) (killed, settled bool)) {
	t.Helper()
	testtier.SkipUnlessSlow(t)
	crashBinary, runs := buildCrashBinary(t), crashRunsPerStep()
	killed, settled := 0, 0
	for _, step := range steps {
		for run := range runs {
			t.Run(fmt.Sprintf("%s/%d", step, run), func(t *testing.T) {
				k, s := body(t, crashBinary, step)
				if k {
					killed++
				}
				if s {
					settled++
				}
			})
		}
	}
	t.Logf("%d kill points x %d runs: %d calls cut off by the kill, %d restarts settled an unfinished rotation", len(steps), runs, killed, settled)
}

// restarted is keygate after a rotation that was killed at a step: the
// client of the restarted process and both processes' stderr.
type restarted struct {
	c              *client.Client
	killed         bool
	first, restart *lockedBuffer
}

func (r restarted) settled() bool {
	return strings.Contains(r.restart.String(), "settled an unfinished rotation")
}

func (r restarted) String() string {
	return "first run:\n" + r.first.String() + "\nrestart:\n" + r.restart.String()
}

// rotateThenRestart calls credentials_rotate with args on crashBinary,
// which kills itself at step, then starts the real binary on the same
// files, as a client's next launch would.
func rotateThenRestart(t *testing.T, crashBinary string, in instance, step rotation.Step, args map[string]any) restarted {
	t.Helper()
	c, first := connect(t, crashBinary, in, "KEYGATE_CRASH_AT="+string(step))
	var req mcp.CallToolRequest
	req.Params.Name, req.Params.Arguments = "credentials_rotate", args
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	_, callErr := c.CallTool(ctx, req)
	cancel()
	c.Close()
	c2, restart := connect(t, binary, in)
	t.Cleanup(func() { c2.Close() })
	return restarted{c: c2, killed: callErr != nil, first: first, restart: restart}
}

// buildCrashBinary builds keygate with -tags crashtest, whose
// KEYGATE_CRASH_AT=STEP kills it at a rotation step.
func buildCrashBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "keygate-crashtest")
	if out, err := exec.Command("go", "build", "-tags", "crashtest", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building with -tags crashtest: %v\n%s", err, out)
	}
	return bin
}

// crashRunsPerStep is ROTATION_CRASH_RUNS, 2 by default.
func crashRunsPerStep() int {
	runs := 2
	if n, err := fmt.Sscan(os.Getenv("ROTATION_CRASH_RUNS"), &runs); n == 0 || err != nil || runs < 1 {
		runs = 2
	}
	return runs
}

// prepareCrashInstance makes a store and env file by a first run, and puts
// a comment and a CRLF line in front, which every rotation must keep.
func prepareCrashInstance(t *testing.T) instance {
	t.Helper()
	in := newInstance(t)
	prepare := exec.Command(binary, append(in.args(), "--log-level", "error")...)
	prepare.Env, prepare.Stdin = cleanEnv(), strings.NewReader("")
	if out, err := prepare.CombinedOutput(); err != nil {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	raw, _ := os.ReadFile(in.envFile)
	if err := os.WriteFile(in.envFile, append([]byte("# mine\r\nOTHER=1\r\n"), raw...), 0o600); err != nil {
		t.Fatal(err)
	}
	return in
}

// checkEnvFileIntact: the env file is 0600, parses, and kept its other lines.
func checkEnvFileIntact(t *testing.T, in instance) map[string]string {
	t.Helper()
	fi, err := os.Stat(in.envFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("env file: %v %v", fi, err)
	}
	vars, err := auth.ReadEnvFile(in.envFile)
	if err != nil || vars["OTHER"] != "1" {
		t.Fatalf("env file no longer parses or lost a variable: %v", err)
	}
	b, _ := os.ReadFile(in.envFile)
	if !strings.HasPrefix(string(b), "# mine\r\nOTHER=1\r\n") {
		t.Errorf("the lines around the rotated variable changed: %q", b)
	}
	return vars
}

// connect starts keygate over stdio and returns an initialized client.
func connect(t *testing.T, bin string, in instance, env ...string) (*client.Client, *lockedBuffer) {
	t.Helper()
	var stderr lockedBuffer
	tr := transport.NewStdioWithOptions(bin, cleanEnv(env...), in.args(), transport.WithCommandStderrWriter(&stderr))
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := client.NewClient(tr)
	if _, err := c.Initialize(context.Background(), mcp.InitializeRequest{}); err != nil {
		t.Fatalf("initialize: %v\n%s", err, stderr.String())
	}
	return c, &stderr
}

// checkKeys opens the store after keygate exited: exactly one admin key is
// active, and it is the one in the env file; the old key is never revoked
// unless the new one works.
func checkKeys(t *testing.T, in instance, before, now string) {
	t.Helper()
	s, err := local.Open(context.Background(), in.store, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cur, err := s.Verify(context.Background(), now)
	if err != nil {
		t.Fatalf("the env file's token does not verify: %v", err)
	}
	keys, err := s.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	active := 0
	for _, k := range keys {
		if k.RevokedAt.IsZero() && k.ExpiresAt.After(time.Now()) {
			active++
			if k.ID != cur.KeyID {
				t.Errorf("key %s is active beside the one in use (%s): an orphan", k.ID, cur.KeyID)
			}
		}
	}
	if active != 1 {
		t.Errorf("%d active keys, want exactly the one in use", active)
	}
	if now == before {
		return // rolled back: the old key is the one in use
	}
	if _, err := s.Verify(context.Background(), before); err == nil {
		t.Error("the rotation finished but the old key still works")
	}
}

// TestSIGTERMDuringRotation is docs/SECURITY.md row 43 for the env file swap:
// SIGTERM at each step of a rotation of keygate's own token. keygate stops
// taking work, lets the rotation finish or roll back, and exits 0; the
// next start finds nothing to settle, the env file is intact and holds the
// one working key.
func TestSIGTERMDuringRotation(t *testing.T) {
	testtier.SkipUnlessSlow(t)
	crashBinary := buildCrashBinary(t)
	for _, step := range rotation.Steps(localBackend) {
		t.Run(string(step), func(t *testing.T) {
			in := prepareCrashInstance(t)
			before := in.token(t)
			c, stderr := connect(t, crashBinary, in, "KEYGATE_CRASH_AT="+string(step), "KEYGATE_CRASH_SIGNAL=TERM")
			var req mcp.CallToolRequest
			req.Params.Name, req.Params.Arguments = "credentials_rotate", map[string]any{"credential": "current", "confirm": true}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, _ = c.CallTool(ctx, req)
			cancel()
			if err := c.Close(); err != nil {
				t.Fatalf("keygate did not exit cleanly after SIGTERM at %s: %v\n%s", step, err, stderr.String())
			}
			c2, stderr2 := connect(t, binary, in)
			defer c2.Close()
			if who := structured(t, callTool(t, c2, "auth_whoami", nil)); who["authenticated"] != true {
				t.Fatalf("after SIGTERM at %s keygate has no working credential: %v\n%s", step, who, stderr2.String())
			}
			if strings.Contains(stderr2.String(), "settled an unfinished rotation") {
				t.Errorf("SIGTERM at %s left the rotation for the next start to settle:\n%s", step, stderr.String())
			}
			vars := checkEnvFileIntact(t, in)
			c2.Close()
			checkKeys(t, in, before, vars["KEYGATE_TOKEN"])
		})
	}
}
