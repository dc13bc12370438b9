package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// Server is a Postgres server of one test's own, which the test may stop
// and start again: the fault runs stop the database under a write load,
// which the shared server of KEYGATE_TEST_POSTGRES must not do to the
// other tests. It needs Debian's postgresql package (initdb and pg_ctl);
// as root it runs as nobody, since initdb refuses root.
type Server struct {
	// URL is the connection string of its database "postgres".
	URL  string
	bin  string
	dir  string
	port int
	t    testing.TB
}

// NewServer initializes and starts a server for t, stopped and removed
// when t ends. Without Postgres's binaries it skips t, or fails it when
// KEYGATE_REQUIRE_POSTGRES is set.
func NewServer(t testing.TB) *Server {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		if os.Getenv(Require) != "" {
			t.Fatalf("%s is set but Postgres is not installed (apt-get install postgresql)", Require)
		}
		t.Skip("Postgres is not installed (apt-get install postgresql): .ci/run installs it")
	}
	slices.Sort(bins)
	dir, err := os.MkdirTemp("", "keygate-pgserver-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{bin: filepath.Dir(bins[len(bins)-1]), dir: dir, t: t}
	if os.Geteuid() == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(nobody.Uid)
		gid, _ := strconv.Atoi(nobody.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = s.run("pg_ctl", "-D", s.data(), "-m", "immediate", "stop") // already stopped is fine
		_ = os.RemoveAll(dir)
	})
	if err := s.run("initdb", "-D", s.data(), "-A", "trust", "-U", "keygate", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s.URL = fmt.Sprintf("postgres://keygate@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	s.Start()
	return s
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// Start starts the server and waits until it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	opts := fmt.Sprintf("-k %s -p %d -c listen_addresses=127.0.0.1", s.dir, s.port)
	if err := s.run("pg_ctl", "-D", s.data(), "-w", "-l", filepath.Join(s.dir, "log"), "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		s.t.Fatalf("starting Postgres: %v\n%s", err, log)
	}
}

// Stop stops the server the way an operator's restart does (fast:
// sessions are ended, committed work is kept).
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.run("pg_ctl", "-D", s.data(), "-w", "-m", "fast", "stop"); err != nil {
		s.t.Fatalf("stopping Postgres: %v", err)
	}
}

// run runs one of Postgres's programs, as nobody when the test runs as
// root.
func (s *Server) run(program string, args ...string) error {
	path := filepath.Join(s.bin, program)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "nobody", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", program, err, out)
	}
	return nil
}
