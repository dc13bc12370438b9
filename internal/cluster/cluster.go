// Package cluster runs keygate replicas over HTTP on one Postgres store,
// behind a real round-robin load balancer (internal/haproxy), for the
// replica tests in the root package and for bench/replicas. Each replica
// is its own process with its own data directory; they share the store
// and the env file the first replica's first run writes the admin token
// to.
package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/internal/haproxy"
	"github.com/keygate/keygate/internal/mcpwire"
	"github.com/keygate/keygate/internal/syncbuf"
)

// Options say how to run keygate.
type Options struct {
	// Bin is the keygate binary; Env is its whole environment (the
	// caller's choice: a test binary re-running as keygate needs its
	// switch).
	Bin string
	Env []string
	// Store is the postgres:// URL every replica shares.
	Store string
	// Dir holds the env file, each replica's data directory and log, and
	// the balancer's files.
	Dir string
	// Args are added to every replica's command line.
	Args []string
}

// Cluster is a set of replicas and the balancer in front of them.
type Cluster struct {
	opts     Options
	EnvFile  string
	Replicas []*Replica
	LB       *haproxy.Balancer
}

// Replica is one keygate process.
type Replica struct {
	// URL is the replica's own base URL, bypassing the balancer.
	URL     string
	addr    string
	dataDir string
	log     *syncbuf.Buffer
	cmd     *exec.Cmd
	exited  chan struct{}
}

// Start starts n replicas, one after the other (the first creates and
// seeds the store and writes the admin token), and a balancer in front of
// them.
func Start(ctx context.Context, opts Options, n int) (*Cluster, error) {
	c := &Cluster{opts: opts, EnvFile: filepath.Join(opts.Dir, ".env")}
	var backends []string
	for i := range n {
		addr, err := freeAddr()
		if err != nil {
			c.Close()
			return nil, err
		}
		r := &Replica{URL: "http://" + addr, addr: addr, dataDir: filepath.Join(opts.Dir, fmt.Sprintf("replica-%d", i+1))}
		c.Replicas = append(c.Replicas, r)
		if err := c.start(ctx, r); err != nil {
			c.Close()
			return nil, fmt.Errorf("replica %d: %w", i+1, err)
		}
		backends = append(backends, addr)
	}
	lb, err := haproxy.Start(opts.Dir, backends)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.LB = lb
	return c, nil
}

// start runs r's process and waits until its /healthz answers 200.
func (c *Cluster) start(ctx context.Context, r *Replica) error {
	args := append([]string{"serve", "--transport", "http", "--addr", r.addr, "--store", c.opts.Store,
		"--data-dir", r.dataDir, "--env-file", c.EnvFile, "--log-format", "json"}, c.opts.Args...)
	r.cmd = exec.Command(c.opts.Bin, args...)
	r.cmd.Env = c.opts.Env
	if r.log == nil {
		r.log = &syncbuf.Buffer{}
	}
	r.cmd.Stdout, r.cmd.Stderr = io.Discard, r.log
	if err := r.cmd.Start(); err != nil {
		return err
	}
	r.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait() // how it ended shows in its log
		close(exited)
	}(r.cmd, r.exited)
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	for {
		if status, err := r.Health(ctx); err == nil && status == http.StatusOK {
			return nil
		}
		select {
		case <-r.exited:
			return fmt.Errorf("exited at start-up:\n%s", r.log.String())
		case <-deadline.C:
			return fmt.Errorf("not healthy within 60 s:\n%s", r.log.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Health is the status of r's /healthz.
func (r *Replica) Health(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+"/healthz", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// Log is what r wrote to stderr.
func (r *Replica) Log() string { return r.log.String() }

// Kill ends replica i with SIGKILL and waits for it to go.
func (c *Cluster) Kill(i int) {
	r := c.Replicas[i]
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

// Restart starts replica i again, on the same address and data directory.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	return c.start(ctx, c.Replicas[i])
}

// AdminToken is the admin token the first run wrote to the env file.
func (c *Cluster) AdminToken() (string, error) {
	vars, err := auth.ReadEnvFile(c.EnvFile)
	if err != nil {
		return "", err
	}
	tok := vars[auth.TokenVar]
	if tok == "" {
		return "", errors.New("the first run wrote no admin token")
	}
	return tok, nil
}

// Close stops the balancer and every replica (SIGTERM, then SIGKILL).
func (c *Cluster) Close() {
	if c.LB != nil {
		c.LB.Close()
	}
	for _, r := range c.Replicas {
		if r.cmd == nil || r.cmd.Process == nil {
			continue
		}
		select {
		case <-r.exited:
			continue
		default:
		}
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(10 * time.Second):
			_ = r.cmd.Process.Signal(syscall.SIGKILL)
			<-r.exited
		}
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Answer is what a tools/call POST got.
type Answer struct {
	Status int
	// Result is the JSON-RPC result (nil on an HTTP or JSON-RPC error).
	Result map[string]any
	// Text is the result's text content, or the error's message.
	Text string
	// IsError is the tool result's isError.
	IsError bool
}

// client posts MCP messages; the connection pool keeps requests cheap.
var client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// Call posts a tools/call of tool with args to base's /mcp, as a client of
// protocol 2025-11-25 without a session (the replicas serve statelessly).
func Call(ctx context.Context, base, token, tool string, args map[string]any) (Answer, error) {
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": map[string]any{"name": tool, "arguments": args}})
	if err != nil {
		return Answer{}, err
	}
	status, msg, err := Post(ctx, base, token, body)
	if err != nil || status != http.StatusOK {
		return Answer{Status: status}, err
	}
	a := Answer{Status: status}
	var frame struct {
		Result *struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
			IsError bool `json:"isError"`
		} `json:"result"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg, &frame); err != nil {
		return a, fmt.Errorf("answer is not JSON-RPC: %q", msg)
	}
	if frame.Error != nil {
		a.Text = frame.Error.Message
		return a, nil
	}
	_ = json.Unmarshal(msg, &struct {
		Result *map[string]any `json:"result"`
	}{&a.Result})
	if frame.Result != nil {
		a.IsError = frame.Result.IsError
		for _, c := range frame.Result.Content {
			a.Text += c.Text
		}
	}
	return a, nil
}

// Post sends one JSON-RPC message to base's /mcp and returns the status
// and the answer: the JSON body, or the response an SSE stream carries.
func Post(ctx context.Context, base, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/mcp", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		msg = mcpwire.SSEResponse(msg)
	}
	return resp.StatusCode, msg, err
}

// Field digs a string out of a tool's structured result by path.
func Field(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = mm[p]
	}
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case nil:
		return ""
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// PID is the replica's process id (0 before it starts).
func (r *Replica) PID() int {
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}
