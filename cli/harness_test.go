package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/cli"
)

// instance is one keygate's files in a directory of its own.
type instance struct {
	dir, store, envFile string
}

func newInstance(t *testing.T) instance {
	dir := t.TempDir()
	return instance{dir: dir, store: filepath.Join(dir, "data", "keygate.db"), envFile: filepath.Join(dir, ".env")}
}

func (in instance) args(extra ...string) []string {
	return append([]string{"--store", in.store, "--env-file", in.envFile}, extra...)
}

func (in instance) token(t *testing.T) string {
	t.Helper()
	vars, err := auth.ReadEnvFile(in.envFile)
	if err != nil {
		t.Fatal(err)
	}
	return vars["KEYGATE_TOKEN"]
}

// environ is the process environment keygate sees: only kv (NAME=value).
func environ(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for _, e := range kv {
		k, v, _ := strings.Cut(e, "=")
		m[k] = v
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// keygate runs the command line args in process, with stdin and the
// process environment env, and returns stdout, stderr and the exit code.
func keygate(t *testing.T, env []string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), args, cli.Streams{In: strings.NewReader(stdin), Out: &stdout, Err: &stderr}, cli.Options{Lookup: environ(env...)})
	return stdout.String(), stderr.String(), code
}

// runCLI runs "keygate COMMAND --store ... --env-file ... ARGS..." (COMMAND
// may be two words, e.g. "token revoke"); err is set when it exits non-zero.
func runCLI(t *testing.T, in instance, command string, args ...string) (string, string, error) {
	t.Helper()
	stdout, stderr, code := keygate(t, nil, "", append(strings.Fields(command), in.args(args...)...)...)
	if code != 0 {
		return stdout, stderr, fmt.Errorf("exit %d", code)
	}
	return stdout, stderr, nil
}

// prepared is an instance after a first run: keygate serve over stdio, with
// no input, creates and seeds the store and writes the admin token.
func prepared(t *testing.T) instance {
	t.Helper()
	in := newInstance(t)
	if _, stderr, code := keygate(t, nil, "", append([]string{"serve"}, in.args()...)...); code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, stderr)
	}
	return in
}

// mintCLI makes a key with the token CLI and returns its token.
func mintCLI(t *testing.T, in instance, name, scopes string, extra ...string) string {
	t.Helper()
	stdout, stderr, err := runCLI(t, in, "token create", append([]string{"--name", name, "--scopes", scopes}, extra...)...)
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, stderr)
	}
	return strings.TrimSpace(stdout)
}
