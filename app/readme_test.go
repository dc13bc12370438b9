package app_test

// The README's curl walk-through over HTTP, run against a keygate in
// process so that it cannot rot: each curl in the block marked
// <!-- walkthrough:http --> is sent with net/http, the shell around it
// interpreted as far as the block uses it.

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/keygate/keygate/app"
	"github.com/keygate/keygate/auth"
)

// readmeAddr is the address the README's examples use; the test serves
// keygate elsewhere on loopback and sends the README's requests there.
const readmeAddr = "127.0.0.1:8080"

// walkthrough is the shell block after marker in README.md, with
// continuation lines joined.
func walkthrough(t *testing.T, marker string) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), marker)
	if !ok {
		t.Fatalf("README.md has no %s block", marker)
	}
	rest = strings.TrimLeft(rest, "\n")
	block, ok := strings.CutPrefix(rest, "```sh\n")
	if !ok {
		t.Fatalf("%s is not followed by a ```sh block", marker)
	}
	block, _, ok = strings.Cut(block, "\n```")
	if !ok {
		t.Fatalf("the %s block is not closed", marker)
	}
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(block, "\\\n", " "), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// shell is the little of a POSIX shell the walk-through uses: variables,
// sourcing keygate's env file, files curl writes headers to.
type shell struct {
	vars  map[string]string
	files map[string]http.Header
}

var varRef = regexp.MustCompile(`\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))`)

func (sh *shell) expand(t *testing.T, s string) string {
	t.Helper()
	return varRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := varRef.FindStringSubmatch(ref)
		name := m[1] + m[2]
		v, ok := sh.vars[name]
		if !ok {
			t.Fatalf("README walkthrough: $%s is used before it is set", name)
		}
		return v
	})
}

// words splits a command line as sh does: single quotes keep everything,
// double quotes and bare words expand variables.
func (sh *shell) words(t *testing.T, line string) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				t.Fatalf("README walkthrough: unclosed ' in %q", line)
			}
			cur.WriteString(line[i+1 : i+1+end])
			i, inWord = i+2+end, true
		case c == '"':
			end := strings.IndexByte(line[i+1:], '"')
			if end < 0 {
				t.Fatalf("README walkthrough: unclosed \" in %q", line)
			}
			cur.WriteString(sh.expand(t, line[i+1:i+1+end]))
			i, inWord = i+2+end, true
		case unicode.IsSpace(rune(c)):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
			i++
		default:
			end := strings.IndexAny(line[i:], " \t'\"")
			if end < 0 {
				end = len(line) - i
			}
			cur.WriteString(sh.expand(t, line[i:i+end]))
			i, inWord = i+end, true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

var (
	sourceEnv   = regexp.MustCompile(`^set -a; \. (\S+); set \+a$`)
	headerOf    = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=\$\(awk 'tolower\(\$1\)=="([a-z0-9-]+):" \{print \$2\}' (\S+) \| tr -d '\\r'\)$`)
	assignment  = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=(.*)$`)
	commandSubs = regexp.MustCompile("\\$\\(|`")
)

// sent is one request of the walk-through and keygate's answer.
type sent struct {
	method string
	header http.Header
	rpc    map[string]any // the JSON-RPC message sent
	status int
	answer hResponse
}

// curl sends one curl command line's request to base instead of the
// README's address.
func (sh *shell) curl(t *testing.T, s *hServer, base string, args []string) sent {
	t.Helper()
	var target, data, dumpTo string
	header := http.Header{}
	for i := 0; i < len(args); i++ {
		next := func() string {
			if i+1 >= len(args) {
				t.Fatalf("README walkthrough: curl %s needs a value", args[i])
			}
			i++
			return args[i]
		}
		switch a := args[i]; a {
		case "-s", "-S", "-sS", "-Ss":
		case "-H", "--header":
			k, v, ok := strings.Cut(next(), ":")
			if !ok {
				t.Fatalf("README walkthrough: header %q has no colon", args[i])
			}
			header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		case "-d", "--data", "--data-raw":
			data = next()
		case "-D", "--dump-header":
			dumpTo = next()
		default:
			if strings.HasPrefix(a, "-") || target != "" {
				t.Fatalf("README walkthrough: curl argument %q is not understood by this test; teach it or simplify the README", a)
			}
			target = a
		}
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" || u.Host != readmeAddr {
		t.Fatalf("README walkthrough: curl to %q, want http://%s/...", target, readmeAddr)
	}
	method := http.MethodGet
	if data != "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, base+u.RequestURI(), strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("README walkthrough: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if dumpTo != "" {
		sh.files[dumpTo] = resp.Header
	}
	out := sent{method: method, header: header, status: resp.StatusCode,
		answer: hResponse{status: resp.StatusCode, header: resp.Header, body: string(body), msgs: hDecode(t, resp.Header.Get("Content-Type"), body)}}
	if data != "" {
		out.rpc = hDecode(t, "application/json", []byte(data))[0]
	}
	for _, secret := range s.secrets {
		if strings.Contains(out.answer.body, secret) {
			t.Errorf("a secret (%s) is in an HTTP response", auth.Mask(secret))
		}
	}
	return out
}

// TestREADMEHTTPWalkthrough runs README.md's curl walk-through against
// keygate over HTTP on loopback with the embedded store: every request
// must succeed, the steps must be initialize, notifications/initialized
// and a tool call of auth_whoami, and every request after initialize must
// carry the token, the session keygate named and the protocol version it
// agreed to.
func TestREADMEHTTPWalkthrough(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	s := serveOn(t, reserve(t), in, app.Options{})
	sh := &shell{vars: map[string]string{}, files: map[string]http.Header{}}
	var steps []sent
	for _, line := range walkthrough(t, "<!-- walkthrough:http -->") {
		if m := sourceEnv.FindStringSubmatch(line); m != nil {
			if m[1] != "./.env" {
				t.Fatalf("README walkthrough sources %s, want ./.env (the env file of keygate's first run)", m[1])
			}
			vars, err := auth.ReadEnvFile(in.envFile)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range vars {
				sh.vars[k] = v
			}
			continue
		}
		if m := headerOf.FindStringSubmatch(line); m != nil {
			h, ok := sh.files[m[3]]
			if !ok {
				t.Fatalf("README walkthrough reads %s before curl wrote it", m[3])
			}
			sh.vars[m[1]] = h.Get(m[2])
			continue
		}
		if commandSubs.MatchString(line) {
			t.Fatalf("README walkthrough: command substitution this test does not understand: %q", line)
		}
		if m := assignment.FindStringSubmatch(line); m != nil {
			w := sh.words(t, m[2])
			if len(w) != 1 {
				t.Fatalf("README walkthrough: %q assigns %d words", line, len(w))
			}
			sh.vars[m[1]] = w[0]
			continue
		}
		w := sh.words(t, line)
		if w[0] != "curl" {
			t.Fatalf("README walkthrough: %q is not a step this test runs (curl, NAME=value, sourcing .env)", line)
		}
		step := sh.curl(t, s.hServer, s.base, w[1:])
		if step.status/100 != 2 {
			t.Fatalf("README walkthrough: %s %v: %d %s", step.method, step.rpc["method"], step.status, step.answer.body)
		}
		for _, m := range step.answer.msgs {
			if m["error"] != nil || hGet(m, "result", "isError") == true {
				t.Fatalf("README walkthrough: %v answered with an error: %v", step.rpc["method"], m)
			}
		}
		steps = append(steps, step)
	}

	var methods []string
	for _, st := range steps {
		methods = append(methods, fmt.Sprint(st.rpc["method"]))
	}
	if strings.Join(methods, " ") != "initialize notifications/initialized tools/call" {
		t.Fatalf("README walkthrough's steps are %v, want initialize, notifications/initialized, tools/call", methods)
	}
	session := steps[0].answer.header.Get("Mcp-Session-Id")
	version, _ := hGet(steps[0].answer.last(), "result", "protocolVersion").(string)
	if session == "" || version == "" {
		t.Fatalf("initialize: session %q, protocol version %q", session, version)
	}
	for _, st := range steps {
		if st.header.Get("Authorization") != "Bearer "+s.token {
			t.Errorf("%v is sent without the token in Authorization: Bearer", st.rpc["method"])
		}
	}
	for _, st := range steps[1:] {
		if st.header.Get("Mcp-Session-Id") != session || st.header.Get("MCP-Protocol-Version") != version {
			t.Errorf("%v is sent with session %q and version %q, want %q and %q", st.rpc["method"],
				st.header.Get("Mcp-Session-Id"), st.header.Get("MCP-Protocol-Version"), session, version)
		}
	}
	if steps[1].status != http.StatusAccepted || steps[1].answer.body != "" {
		t.Errorf("notifications/initialized: %d %q, the README says 202 and no body", steps[1].status, steps[1].answer.body)
	}
	who, _ := hGet(steps[2].answer.last(), "result", "structuredContent").(map[string]any)
	if hGet(steps[2].rpc, "params", "name") != "auth_whoami" || who["authenticated"] != true || who["key_id"] != keyID(s.token) {
		t.Errorf("the walkthrough's tool call: %v answered %v", steps[2].rpc, who)
	}
}
