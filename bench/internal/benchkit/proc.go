package benchkit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keygate/keygate/auth"
)

// CleanEnv is the parent environment without KEYGATE_* and COSMIC_*
// settings, so a developer's own configuration cannot change a figure.
func CleanEnv(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KEYGATE_") || strings.HasPrefix(kv, "COSMIC_") || strings.HasPrefix(kv, "GODEBUG=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, extra...)
}

// Instance is one keygate data directory: its store and env file.
type Instance struct {
	Dir, Store, EnvFile string
}

// NewInstance places an instance in dir (which it creates).
func NewInstance(dir string) (Instance, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Instance{}, err
	}
	return Instance{Dir: dir, Store: filepath.Join(dir, "data", "keygate.db"), EnvFile: filepath.Join(dir, ".env")}, nil
}

// Args are the serve arguments for this instance, then extra.
func (in Instance) Args(extra ...string) []string {
	return append([]string{"serve", "--store", in.Store, "--env-file", in.EnvFile}, extra...)
}

// Token is the admin token first run wrote to the env file.
func (in Instance) Token() (string, error) {
	vars, err := auth.ReadEnvFile(in.EnvFile)
	if err != nil {
		return "", err
	}
	tok := vars["KEYGATE_TOKEN"]
	if tok == "" {
		return "", fmt.Errorf("no KEYGATE_TOKEN in %s", in.EnvFile)
	}
	return tok, nil
}

// Create runs keygate once over stdio (initialize, then end of input), so
// that first run creates and seeds the store and writes the admin token.
func (in Instance) Create(bin string) error {
	return in.CreateWithEnv(bin, CleanEnv())
}

// CreateWithEnv is Create with the given environment.
func (in Instance) CreateWithEnv(bin string, env []string) error {
	if _, _, err := ColdStart(bin, in.Args(), env); err != nil {
		return fmt.Errorf("first run of %s: %w", bin, err)
	}
	_, err := in.Token()
	return err
}

// tailBuffer keeps the last bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 8<<10 {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-4<<10:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Server is an MCP server process serving streamable HTTP.
type Server struct {
	Cmd    *exec.Cmd
	URL    string
	stderr *tailBuffer
	done   chan struct{}
}

var urlPattern = regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+/mcp)`)

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// StartHTTP starts bin with args and waits (up to 30 s) for the
// "url=http://127.0.0.1:PORT/mcp" line on its stderr. The rest of stderr is
// drained (the last few KiB kept for errors).
func StartHTTP(bin string, args, env []string) (*Server, error) {
	return StartHTTPAt(bin, args, env, "")
}

// StartHTTPAt is StartHTTP for a server told to listen on addr, which may
// not log its URL (e.g. with --log-level warn): it is ready when either the
// URL line appears or addr accepts a connection.
func StartHTTPAt(bin string, args, env []string, addr string) (*Server, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{Cmd: cmd, stderr: &tailBuffer{}, done: make(chan struct{})}
	found := make(chan string, 1)
	go func() {
		defer close(s.done)
		r := bufio.NewReader(pipe)
		for {
			line, err := r.ReadBytes('\n')
			_, _ = s.stderr.Write(line) // a tailBuffer never fails
			if m := urlPattern.FindSubmatch(line); m != nil {
				select {
				case found <- string(m[1]):
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}()
	if addr != "" {
		go func() {
			for range 600 {
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					_ = c.Close() // only dialled to see the port is open
					select {
					case found <- "http://" + addr + "/mcp":
					default:
					}
					return
				}
				select {
				case <-s.done:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
	select {
	case s.URL = <-found:
		return s, nil
	case <-s.done:
		_ = cmd.Wait()
		return nil, fmt.Errorf("%s exited before listening:\n%s", bin, s.stderr.String())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("%s did not start listening within 30 s:\n%s", bin, s.stderr.String())
	}
}

// PID of the server process.
func (s *Server) PID() int { return s.Cmd.Process.Pid }

// Stderr returns the last few KiB the server wrote to stderr.
func (s *Server) Stderr() string { return s.stderr.String() }

// Stop sends SIGTERM and waits up to 10 s, then kills.
func (s *Server) Stop() {
	_ = s.Cmd.Process.Signal(syscall.SIGTERM)
	waited := make(chan struct{})
	go func() { _ = s.Cmd.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		_ = s.Cmd.Process.Kill()
		<-waited
	}
}

// Memory is a process's resident set size and its peak, in KiB.
type Memory struct {
	RSS, HWM int64
}

// MB formats KiB as MB (10^6 bytes), one decimal.
func MB(kib int64) string { return fmt.Sprintf("%.1f", float64(kib)*1024/1e6) }

// ReadMemory reads VmRSS and VmHWM from /proc/PID/status.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		f := strings.Fields(string(v))
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch string(k) {
		case "VmRSS":
			m.RSS = n
		case "VmHWM":
			m.HWM = n
		}
	}
	if m.RSS == 0 {
		return m, errors.New("no VmRSS in /proc status")
	}
	return m, nil
}

// InitializeLine is the initialize request every program sends.
const InitializeLine = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"keygate-bench","version":"1"}}}`

// ColdStart launches bin, writes initialize on its stdin and reads the
// complete response line from stdout. The duration runs from just before
// exec to the end of that line. The process is then sent end of input and
// waited for (not timed).
func ColdStart(bin string, args, env []string) (time.Duration, []byte, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, nil, err
	}
	var stderr tailBuffer
	cmd.Stderr = &stderr
	r := bufio.NewReaderSize(stdout, 64<<10)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	if _, err := io.WriteString(stdin, InitializeLine+"\n"); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return 0, nil, err
	}
	line, err := r.ReadBytes('\n')
	elapsed := time.Since(start)
	stdin.Close()
	_, _ = io.Copy(io.Discard, r)
	werr := cmd.Wait()
	if err != nil {
		return 0, nil, fmt.Errorf("reading initialize response: %w (exit: %w)\n%s", err, werr, stderr.String())
	}
	if !bytes.Contains(line, []byte(`"result"`)) || !bytes.Contains(line, []byte(`"protocolVersion"`)) {
		return 0, nil, fmt.Errorf("initialize did not succeed: %s", line)
	}
	return elapsed, line, nil
}

// StdioClient drives a server over stdio, one request at a time.
type StdioClient struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	r      *bufio.Reader
	stderr *tailBuffer
	nextID int
}

// StartStdio launches bin and initializes a session.
func StartStdio(bin string, args, env []string) (*StdioClient, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c := &StdioClient{cmd: cmd, stdin: stdin, r: bufio.NewReaderSize(stdout, 1<<20), stderr: &tailBuffer{}, nextID: 2}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if _, err := c.roundTrip([]byte(InitializeLine)); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := io.WriteString(stdin, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *StdioClient) roundTrip(req []byte) ([]byte, error) {
	if _, err := c.stdin.Write(append(req, '\n')); err != nil {
		return nil, err
	}
	for {
		line, err := c.r.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("reading response: %w\n%s", err, c.stderr.String())
		}
		// Skip server-to-client notifications and requests: the answer
		// is the line with our id and a result or an error.
		if bytes.Contains(line, []byte(`"result"`)) || bytes.Contains(line, []byte(`"error"`)) {
			return line, nil
		}
	}
}

// CallTool sends tools/call and returns the raw response line.
func (c *StdioClient) CallTool(name string, args any) ([]byte, error) {
	body, err := ToolCallBody(c.nextID, name, args)
	if err != nil {
		return nil, err
	}
	c.nextID++
	return c.roundTrip(body)
}

// Close ends input and waits for the process.
func (c *StdioClient) Close() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// Stderr is the tail of the process's stderr.
func (c *StdioClient) Stderr() string { return c.stderr.String() }
