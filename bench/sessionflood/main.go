// Command sessionflood measures what abandoned HTTP sessions make keygate
// hold. It starts keygate's streamable HTTP server, reads its resident set
// size (VmRSS), sends --calls initialize requests and never DELETEs a
// session, then reads VmRSS again once the flood has stopped. It then asks
// the first and the last session for tools/list: with one key the first
// has ended (the per-key cap) and the last still answers. With --keys N
// the admin key first creates N-1 more keys (credentials_create) and the
// requests take turns among all N, to reach the cap on all sessions
// rather than the per-key one. With --compare, a second binary (e.g. a
// build of main) goes through the same flood afterwards, in the same run.
//
//	go run ./bench/sessionflood --keygate BIN [--compare BIN] [--calls 100000] [--keys 1] [--workers 8] [--settle 2s] [--max-time 5m]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/bench/internal/benchkit"
)

func main() {
	keygate := flag.String("keygate", "", "keygate binary (required)")
	compare := flag.String("compare", "", "a second keygate binary to flood the same way (optional)")
	calls := flag.Int("calls", 100_000, "initialize requests, none followed by DELETE")
	keys := flag.Int("keys", 1, "keys the requests take turns among")
	workers := flag.Int("workers", 8, "concurrent clients")
	settle := flag.Duration("settle", 2*time.Second, "wait after start, and after the flood, before reading RSS")
	maxTime := flag.Duration("max-time", 5*time.Minute, "cap on the flood")
	flag.Parse()
	if *keygate == "" {
		fmt.Fprintln(os.Stderr, "sessionflood: --keygate is required")
		os.Exit(2)
	}
	bins := []string{*keygate}
	if *compare != "" {
		bins = append(bins, *compare)
	}
	var rows []result
	for _, bin := range bins {
		r, err := flood(bin, *calls, *keys, *workers, *settle, *maxTime)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sessionflood:", err)
			os.Exit(1)
		}
		rows = append(rows, r)
	}

	fmt.Printf("## Abandoned sessions (VmRSS of the HTTP server process; MB = 10^6 bytes)\n\n")
	fmt.Printf("%d initialize requests with %d key(s) taking turns, from %d clients, no DELETE; RSS read %s after start (and after creating the keys) and %s after the flood.\n\n", *calls, *keys, *workers, *settle, *settle)
	fmt.Println("| binary | before MB | after MB | VmHWM MB | initializes | refused | s | first session after | last session after |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s | %s | %d | %d | %.1f | %d | %d |\n", r.bin, benchkit.MB(r.before.RSS), benchkit.MB(r.after.RSS),
			benchkit.MB(r.after.HWM), r.opened, r.refused, r.elapsed.Seconds(), r.firstStatus, r.lastStatus)
	}
	afterMB := float64(rows[0].after.RSS) * 1024 / 1e6
	if *keys == 1 {
		fmt.Printf("\nTARGET RSS after %d abandoned sessions of one key <= 64 MB: %.1f MB %s\n", *calls, afterMB, benchkit.Verdict(afterMB <= 64))
	} else {
		fmt.Printf("\nRSS after %d abandoned sessions of %d keys: %.1f MB (bounded by the cap on all sessions; the 64 MB target is for one key)\n", *calls, *keys, afterMB)
	}
}

type result struct {
	bin                     string
	before, after           benchkit.Memory
	opened, refused         int64
	elapsed                 time.Duration
	firstStatus, lastStatus int
}

func flood(bin string, calls, keys, workers int, settle, maxTime time.Duration) (result, error) {
	r := result{bin: bin}
	tmp, err := os.MkdirTemp("", "keygate-bench-sessionflood-*")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(tmp)
	in, err := benchkit.NewInstance(tmp)
	if err != nil {
		return r, err
	}
	if err := in.Create(bin); err != nil {
		return r, err
	}
	tok, err := in.Token()
	if err != nil {
		return r, err
	}
	srv, err := benchkit.StartHTTP(bin, in.Args("--transport", "http", "--addr", "127.0.0.1:0"), benchkit.CleanEnv())
	if err != nil {
		return r, err
	}
	defer srv.Stop()
	cl := benchkit.NewHTTPClient(srv.URL, tok, workers)
	defer cl.Close()
	clients := []*benchkit.HTTPClient{cl}
	if keys > 1 {
		toks, err := createKeys(cl, keys-1)
		if err != nil {
			return r, fmt.Errorf("%w\nserver stderr:\n%s", err, srv.Stderr())
		}
		for _, t := range toks {
			clients = append(clients, &benchkit.HTTPClient{HTTP: cl.HTTP, URL: cl.URL, Token: t})
		}
	}
	time.Sleep(settle)
	if r.before, err = benchkit.ReadMemory(srv.PID()); err != nil {
		return r, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), maxTime)
	defer cancel()
	var next, opened, refused atomic.Int64
	var mu sync.Mutex
	var first, last string
	var lastIndex int64
	var firstErr error
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(calls) && ctx.Err() == nil; i = next.Add(1) {
				status, h, body, err := clients[int(i)%len(clients)].Post(ctx, "", []byte(benchkit.InitializeLine))
				sid := ""
				if h != nil {
					sid = h.Get("Mcp-Session-Id")
				}
				if err != nil || status != http.StatusOK || sid == "" || !bytes.Contains(body, []byte(`"result"`)) {
					refused.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = initializeError(i, status, err, body)
					}
					mu.Unlock()
					continue
				}
				opened.Add(1)
				mu.Lock()
				if i == 1 {
					first = sid
				}
				last, lastIndex = sid, i
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	r.opened, r.refused = opened.Load(), refused.Load()
	if first == "" || last == "" {
		return r, errors.Join(errors.New("no session opened"), firstErr)
	}
	if r.refused > 0 {
		fmt.Fprintf(os.Stderr, "sessionflood: %s refused %d initializes, first: %v\n", bin, r.refused, firstErr)
	}
	time.Sleep(settle)
	if r.after, err = benchkit.ReadMemory(srv.PID()); err != nil {
		return r, err
	}
	list := []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	if r.firstStatus, _, _, err = clients[1%len(clients)].Post(context.Background(), first, list); err != nil {
		return r, err
	}
	if r.lastStatus, _, _, err = clients[lastIndex%int64(len(clients))].Post(context.Background(), last, list); err != nil {
		return r, err
	}
	return r, nil
}

// createKeys has the admin key create n keys and returns their tokens.
func createKeys(admin *benchkit.HTTPClient, n int) ([]string, error) {
	ctx := context.Background()
	s, err := admin.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer s.Close(ctx)
	var toks []string
	for i := range n {
		b, err := s.CallTool(ctx, "credentials_create", map[string]any{
			"name": fmt.Sprintf("flood-%d", i), "scopes": []string{"content:read"}, "expires_in_days": 1, "deliver": "reveal"})
		if err != nil {
			return nil, fmt.Errorf("creating key %d: %w", i, err)
		}
		var resp struct {
			Result struct {
				StructuredContent struct {
					Token string `json:"token"`
				} `json:"structuredContent"`
			} `json:"result"`
		}
		if err := json.Unmarshal(b, &resp); err != nil || resp.Result.StructuredContent.Token == "" {
			return nil, fmt.Errorf("creating key %d: no token in %.300s", i, b)
		}
		toks = append(toks, resp.Result.StructuredContent.Token)
	}
	return toks, nil
}

// initializeError says why initialize call i opened no session: the
// transport's error, or the status and the start of the body.
func initializeError(i int64, status int, err error, body []byte) error {
	if err != nil {
		return fmt.Errorf("initialize %d: %w", i, err)
	}
	return fmt.Errorf("initialize %d: status %d: %.200s", i, status, body)
}
