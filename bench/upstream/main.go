// Command upstream measures what keygate adds over the upstream API: the
// latency of content_get through keygate against the fake Cosmic, versus a
// direct HTTP GET of the same object from the same fake, both sequential
// (one caller), interleaved in blocks in the same run.
//
//	go run ./bench/upstream --keygate BIN --fake-cosmic BIN [--n 2000]
//
// keygate is measured over streamable HTTP (one MCP session, raw net/http)
// and over stdio. The direct GET asks for what keygate's Cosmic client asks
// for: GET /objects/{id} with read_key, the same props, status=any and
// depth=0, over a kept-alive connection. "Added" is keygate's p50 minus the
// direct p50.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/keygate/keygate/bench/internal/benchkit"
)

func main() {
	keygate := flag.String("keygate", "", "keygate binary (required)")
	fakeBin := flag.String("fake-cosmic", "", "fake-cosmic binary (required)")
	n := flag.Int("n", 2000, "measured calls per path")
	block := flag.Int("block", 100, "calls per path before switching to the next path")
	warmup := flag.Int("warmup", 50, "unmeasured calls per path first")
	providerName := flag.String("cosmic-provider", "cosmic", "keygate's name for the Cosmic provider")
	props := flag.String("props", "id,slug,title,type,status,created_at,modified_at,metadata", "props the direct GET asks for (as provider/cosmic does)")
	flag.Parse()
	if *keygate == "" || *fakeBin == "" {
		fmt.Fprintln(os.Stderr, "upstream: --keygate and --fake-cosmic are required")
		os.Exit(2)
	}
	err := run(*keygate, *fakeBin, *providerName, *props, *n, *block, *warmup)
	if errors.Is(err, errNoProvider) {
		fmt.Printf("## Overhead over the upstream (Cosmic fake)\n\nPENDING: %v\n", err)
		fmt.Println("TARGET added latency over upstream <= 0.3 ms at p50: PENDING (keygate does not serve Cosmic yet)")
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

var errNoProvider = errors.New("keygate does not serve the Cosmic provider yet")

// The seeded first post of the fake (cosmictest's seed.go).
const objectID = "65a000000000000000000001"

func run(keygate, fakeBin, providerName, props string, n, block, warmup int) error {
	fake, err := benchkit.StartFakeCosmic(fakeBin)
	if err != nil {
		return err
	}
	defer fake.Stop()

	tmp, err := os.MkdirTemp("", "keygate-bench-upstream-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	in, err := benchkit.NewInstance(tmp)
	if err != nil {
		return err
	}
	env := benchkit.CleanEnv(fake.KeygateEnv()...)
	if err := in.CreateWithEnv(keygate, env); err != nil {
		return err
	}
	tok, err := in.Token()
	if err != nil {
		return err
	}
	srv, err := benchkit.StartHTTP(keygate, in.Args("--transport", "http", "--addr", "127.0.0.1:0"), env)
	if err != nil {
		return err
	}
	defer srv.Stop()
	ctx := context.Background()
	cl := benchkit.NewHTTPClient(srv.URL, tok, 2)
	sess, err := cl.Open(ctx)
	if err != nil {
		return err
	}
	defer sess.Close(ctx)
	stdio, err := benchkit.StartStdio(keygate, in.Args(), env)
	if err != nil {
		return err
	}
	defer stdio.Close()

	args := map[string]any{"provider": providerName, "type": "posts", "id": objectID}
	check := func(b []byte, err error) error {
		if err != nil {
			return err
		}
		if !benchkit.ToolOK(b) {
			if strings.Contains(string(b), "provider") && strings.Contains(string(b), "not configured") {
				return fmt.Errorf("%w: %.200s", errNoProvider, b)
			}
			return fmt.Errorf("content_get: %.400s", b)
		}
		return nil
	}
	paths := []struct {
		name string
		call func() error
		lat  []time.Duration
	}{
		{name: "direct GET from the fake", call: func() error {
			_, err := fake.Get("/objects/"+url.PathEscape(objectID), url.Values{"props": {props}, "status": {"any"}, "depth": {"0"}})
			return err
		}},
		{name: "keygate content_get over streamable HTTP", call: func() error { return check(sess.CallTool(ctx, "content_get", args)) }},
		{name: "keygate content_get over stdio", call: func() error { return check(stdio.CallTool("content_get", args)) }},
	}
	for i := range paths {
		for range warmup {
			if err := paths[i].call(); err != nil {
				return err
			}
		}
	}
	for done := 0; done < n; done += block {
		for i := range paths {
			for range min(block, n-done) {
				t0 := time.Now()
				if err := paths[i].call(); err != nil {
					return err
				}
				paths[i].lat = append(paths[i].lat, time.Since(t0))
			}
		}
	}

	fmt.Printf("## Overhead over the upstream (Cosmic fake, content_get of one object)\n\n")
	fmt.Printf("%d sequential calls per path after %d warm-up, interleaved in blocks of %d.\n\n", n, warmup, block)
	fmt.Println("| path | p50 ms | p90 ms | p99 ms | added at p50 ms |")
	fmt.Println("| --- | --- | --- | --- | --- |")
	direct := benchkit.Summarize(paths[0].lat)
	for i, p := range paths {
		s := benchkit.Summarize(p.lat)
		added := "–"
		if i > 0 {
			added = benchkit.Ms(s.P50 - direct.P50)
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", p.name, benchkit.Ms(s.P50), benchkit.Ms(s.P90), benchkit.Ms(s.P99), added)
	}
	fmt.Println()
	for _, p := range paths[1:] {
		added := benchkit.Summarize(p.lat).P50 - direct.P50
		fmt.Printf("TARGET added latency over upstream <= 0.3 ms at p50 (%s): %s ms %s\n", strings.TrimPrefix(p.name, "keygate content_get "),
			benchkit.Ms(added), benchkit.Verdict(added <= 300*time.Microsecond))
	}
	return nil
}
