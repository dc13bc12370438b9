// Command httpload measures tool-call throughput and latency over
// streamable HTTP: keygate's content_get on the embedded store against the
// bare mcp-go baseline's echo, at several numbers of concurrent sessions,
// both sides in the same run, alternating.
//
//	go run ./bench/httpload --keygate BIN --baseline BIN [--levels 1,4,16] [--calls 5000] [--max-time 15s] [--rounds 3]
//
// Each worker opens its own MCP session (initialize, then
// notifications/initialized with the session id) and then sends
// back-to-back tools/call requests with raw net/http, reading every full
// response (JSON or SSE).
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/bench/internal/benchkit"
)

func main() {
	keygate := flag.String("keygate", "", "keygate binary (required)")
	baseline := flag.String("baseline", "", "baseline binary (required)")
	levels := flag.String("levels", "1,4,16", "comma-separated numbers of concurrent sessions")
	calls := flag.Int("calls", 5000, "calls per level, per side, per round")
	maxTime := flag.Duration("max-time", 15*time.Second, "cap per level, per side, per round")
	rounds := flag.Int("rounds", 3, "rounds; each runs every level on both sides")
	warmup := flag.Int("warmup", 20, "untimed calls per session before timing")
	quiet := flag.Bool("diag-quiet-logs", false, "also run keygate with --log-level warn (no per-call log line), as a diagnostic")
	flag.Parse()
	if *keygate == "" || *baseline == "" {
		fmt.Fprintln(os.Stderr, "httpload: --keygate and --baseline are required")
		os.Exit(2)
	}
	var lv []int
	for f := range strings.SplitSeq(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "httpload: bad --levels")
			os.Exit(2)
		}
		lv = append(lv, n)
	}
	if err := run(*keygate, *baseline, lv, *calls, *maxTime, *rounds, *warmup, *quiet); err != nil {
		fmt.Fprintln(os.Stderr, "httpload:", err)
		os.Exit(1)
	}
}

// side is one server under load.
type side struct {
	name string
	srv  *benchkit.Server
	cl   *benchkit.HTTPClient
	tool string
	args any
	res  map[int][]benchkit.LoadResult // by level
}

func run(keygate, baseline string, levels []int, calls int, maxTime time.Duration, rounds, warmup int, quiet bool) error {
	tmp, err := os.MkdirTemp("", "keygate-bench-httpload-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	in, err := benchkit.NewInstance(tmp)
	if err != nil {
		return err
	}
	if err := in.Create(keygate); err != nil {
		return err
	}
	tok, err := in.Token()
	if err != nil {
		return err
	}
	maxConns := 0
	for _, l := range levels {
		maxConns = max(maxConns, l)
	}

	kgSrv, err := benchkit.StartHTTP(keygate, in.Args("--transport", "http", "--addr", "127.0.0.1:0"), benchkit.CleanEnv())
	if err != nil {
		return err
	}
	defer kgSrv.Stop()
	baseSrv, err := benchkit.StartHTTP(baseline, []string{"--http", "127.0.0.1:0"}, benchkit.CleanEnv())
	if err != nil {
		return err
	}
	defer baseSrv.Stop()

	kgClient := benchkit.NewHTTPClient(kgSrv.URL, tok, maxConns)
	id, err := benchkit.SeededPostID(kgClient)
	if err != nil {
		return err
	}
	sides := []*side{
		{name: "keygate content_get", srv: kgSrv, cl: kgClient, tool: "content_get", args: map[string]any{"type": "posts", "id": id}},
		{name: "baseline echo", srv: baseSrv, cl: benchkit.NewHTTPClient(baseSrv.URL, "", maxConns), tool: "echo", args: map[string]any{"message": "hello"}},
	}
	if quiet {
		// A second keygate on the same store, logging warnings only: the
		// difference is what the per-call info log line costs.
		addr, err := benchkit.FreeAddr()
		if err != nil {
			return err
		}
		qSrv, err := benchkit.StartHTTPAt(keygate, in.Args("--transport", "http", "--addr", addr, "--log-level", "warn"), benchkit.CleanEnv(), addr)
		if err != nil {
			return err
		}
		defer qSrv.Stop()
		sides = append(sides, &side{name: "keygate content_get, --log-level warn (diagnostic)", srv: qSrv,
			cl: benchkit.NewHTTPClient(qSrv.URL, tok, maxConns), tool: "content_get", args: map[string]any{"type": "posts", "id": id}})
	}
	for _, s := range sides {
		s.res = map[int][]benchkit.LoadResult{}
	}

	for r := range rounds {
		for _, l := range levels {
			order := sides
			if r%2 == 1 {
				order = reversed(sides)
			}
			for _, s := range order {
				res, err := benchkit.RunLoad(s.cl, benchkit.LoadOptions{Sessions: l, Calls: calls, MaxTime: maxTime, Warmup: warmup, Tool: s.tool, Args: s.args})
				if err != nil {
					return fmt.Errorf("%s, %d sessions: %w\nserver stderr:\n%s", s.name, l, err, s.srv.Stderr())
				}
				s.res[l] = append(s.res[l], res)
			}
		}
	}

	fmt.Printf("## Tool calls over streamable HTTP (raw net/http, one session per worker)\n\n")
	fmt.Printf("%d rounds; per round, level and side: up to %d calls or %s, after %d warm-up calls per session. "+
		"calls/s is the median of the rounds; latency percentiles are over every successful call of all rounds. "+
		"keygate content_get reads seeded post %s on the embedded store.\n\n", rounds, calls, maxTime, warmup, id)
	fmt.Println("| sessions | server | calls/s (median) | calls/s per round | p50 ms | p90 ms | p99 ms | calls | errors |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	rate := func(s *side, l int) float64 {
		var xs []float64
		for _, r := range s.res[l] {
			xs = append(xs, r.Rate())
		}
		return benchkit.Median(xs)
	}
	var firstErr error
	for _, l := range levels {
		for _, s := range sides {
			var lat []time.Duration
			var perRound []string
			n, errs := 0, 0
			for _, r := range s.res[l] {
				lat = append(lat, r.Lat...)
				perRound = append(perRound, fmt.Sprintf("%.0f", r.Rate()))
				n += r.Calls
				errs += r.Errors
				if r.FirstErr != "" && firstErr == nil {
					firstErr = fmt.Errorf("%s at %d sessions: %s", s.name, l, r.FirstErr)
				}
			}
			sum := benchkit.Summarize(lat)
			fmt.Printf("| %d | %s | %.0f | %s | %s | %s | %s | %d | %d |\n", l, s.name, rate(s, l), strings.Join(perRound, ", "),
				benchkit.Ms(sum.P50), benchkit.Ms(sum.P90), benchkit.Ms(sum.P99), n, errs)
		}
	}
	fmt.Println()
	// Each round measures both sides back to back, so the ratio within a
	// round shares the machine's conditions; its median across rounds is
	// the figure judged.
	roundRatio := func(s *side, l int) (float64, []string) {
		var xs []float64
		var strs []string
		for r := range s.res[l] {
			x := s.res[l][r].Rate() / sides[1].res[l][r].Rate()
			xs = append(xs, x)
			strs = append(strs, fmt.Sprintf("%.2f", x))
		}
		return benchkit.Median(xs), strs
	}
	for _, l := range levels {
		ratio, per := roundRatio(sides[0], l)
		fmt.Printf("ratio keygate/baseline calls/s at %d sessions: median of rounds %.2f (rounds: %s; ratio of medians %.2f)", l, ratio,
			strings.Join(per, ", "), rate(sides[0], l)/rate(sides[1], l))
		if len(sides) > 2 {
			q, _ := roundRatio(sides[2], l)
			fmt.Printf("; with --log-level warn: %.2f", q)
		}
		fmt.Println()
	}
	for _, l := range levels {
		if l == 4 {
			ratio, _ := roundRatio(sides[0], 4)
			fmt.Printf("TARGET HTTP throughput keygate >= 60%% of baseline at 4 sessions: %.0f%% (%.0f vs %.0f calls/s) %s\n",
				ratio*100, rate(sides[0], 4), rate(sides[1], 4), benchkit.Verdict(ratio >= 0.60))
		}
	}
	if firstErr != nil {
		fmt.Printf("first error: %v\n", firstErr)
	}
	return nil
}

func reversed(s []*side) []*side {
	out := make([]*side, len(s))
	for i, x := range s {
		out[len(s)-1-i] = x
	}
	return out
}
