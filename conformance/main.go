// Command conformance runs a third-party MCP test tool against keygate over
// streamable HTTP, as a team would deploy it: keygate on loopback with
// bearer authentication on.
//
// The official conformance suite cannot send an Authorization header, so the
// harness puts a loopback reverse proxy in front of keygate that adds the
// bearer token keygate minted on its first run, and changes nothing else:
// Host and Origin pass through untouched, so keygate's own Origin and Host
// guards are what the suite's DNS-rebinding scenario meets. keygate is
// started with the proxy's origin in --allowed-origins, as a deployment
// behind a proxy would be. Authentication itself is covered by keygate's own
// tests; the suite has no scenario for it.
//
//	go run ./conformance -keygate ./keygate -- npx ... conformance server --url {url}
//
// {url} in the command is replaced by the proxied /mcp URL. The harness exits
// with the command's status.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/keygate/keygate/auth"
)

func main() {
	keygate := flag.String("keygate", "", "path of the keygate binary to test (required)")
	flag.Parse()
	if *keygate == "" || flag.NArg() == 0 {
		log.Fatal("usage: conformance -keygate PATH -- COMMAND ARGS... ({url} is replaced by keygate's URL)")
	}
	code, err := run(*keygate, flag.Args())
	if err != nil {
		log.Fatal(err)
	}
	os.Exit(code)
}

func run(keygate string, command []string) (int, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("listening for the proxy: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	dir, err := os.MkdirTemp("", "keygate-conformance-*")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	envFile := filepath.Join(dir, ".env")

	target, kg, err := startKeygate(ctx, keygate, dir, envFile, port)
	if err != nil {
		return 0, err
	}
	defer func() {
		_ = kg.Process.Signal(syscall.SIGTERM)
		_ = kg.Wait()
	}()
	vars, err := auth.ReadEnvFile(envFile)
	if err != nil {
		return 0, fmt.Errorf("reading the token keygate wrote to %s: %w", envFile, err)
	}
	if vars["KEYGATE_TOKEN"] == "" {
		return 0, fmt.Errorf("keygate wrote no KEYGATE_TOKEN to %s", envFile)
	}
	token := vars["KEYGATE_TOKEN"]

	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // keep Host: keygate's rebinding guard must see it
			if pr.Out.Header.Get("Authorization") == "" {
				pr.Out.Header.Set("Authorization", "Bearer "+token)
			}
		},
		FlushInterval: -1, // stream SSE as it comes
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	mcpURL := fmt.Sprintf("http://127.0.0.1:%d/mcp", port)
	args := make([]string, len(command))
	for i, a := range command {
		args[i] = strings.ReplaceAll(a, "{url}", mcpURL)
	}
	log.Printf("keygate at %s, proxied with its bearer token at %s", target, mcpURL)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("running %s: %w", args[0], err)
	}
	return 0, nil
}

var urlPattern = regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+)/mcp`)

// startKeygate runs keygate over HTTP on a fresh store, allowing the proxy's
// origin, and returns its base URL once it listens.
func startKeygate(ctx context.Context, bin, dir, envFile string, proxyPort int) (*url.URL, *exec.Cmd, error) {
	origins := fmt.Sprintf("http://127.0.0.1:%d,http://localhost:%d", proxyPort, proxyPort)
	cmd := exec.CommandContext(ctx, bin, "serve", "--transport", "http", "--addr", "127.0.0.1:0",
		"--store", filepath.Join(dir, "keygate.db"), "--env-file", envFile, "--allowed-origins", origins)
	cmd.Env = append(os.Environ(), "KEYGATE_TOKEN=", "KEYGATE_ENV_FILE=", "KEYGATE_STORE=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting keygate: %w", err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(os.Stderr, "keygate:", line)
			if m := urlPattern.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case u := <-found:
		target, err := url.Parse(u)
		return target, cmd, err
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		return nil, nil, errors.New("keygate did not start listening within 60 s")
	}
}
