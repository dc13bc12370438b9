// Command memory measures the resident set size (VmRSS from
// /proc/PID/status) of keygate's streamable HTTP server idle after start,
// while 16 sessions call content_get back to back, and after they stop; the
// bare mcp-go baseline (echo) the same way, in the same run.
//
//	go run ./bench/memory --keygate BIN --baseline BIN [--sessions 16] [--calls 20000] [--max-time 10s]
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/keygate/keygate/bench/internal/benchkit"
)

func main() {
	keygate := flag.String("keygate", "", "keygate binary (required)")
	baseline := flag.String("baseline", "", "baseline binary (required)")
	sessions := flag.Int("sessions", 16, "concurrent sessions")
	calls := flag.Int("calls", 20000, "calls in the busy phase")
	maxTime := flag.Duration("max-time", 10*time.Second, "cap on the busy phase")
	settle := flag.Duration("settle", time.Second, "wait after start, and after the load, before reading RSS")
	flag.Parse()
	if *keygate == "" || *baseline == "" {
		fmt.Fprintln(os.Stderr, "memory: --keygate and --baseline are required")
		os.Exit(2)
	}
	if err := run(*keygate, *baseline, *sessions, *calls, *maxTime, *settle); err != nil {
		fmt.Fprintln(os.Stderr, "memory:", err)
		os.Exit(1)
	}
}

type reading struct {
	idle, busyPeak, after benchkit.Memory
	rate                  float64
	calls, errors         int
}

func measure(srv *benchkit.Server, cl *benchkit.HTTPClient, tool string, args any, sessions, calls int, maxTime, settle time.Duration) (reading, error) {
	var r reading
	time.Sleep(settle)
	var err error
	if r.idle, err = benchkit.ReadMemory(srv.PID()); err != nil {
		return r, err
	}
	var mu sync.Mutex
	sample := func() {
		m, err := benchkit.ReadMemory(srv.PID())
		if err != nil {
			return
		}
		mu.Lock()
		r.busyPeak.RSS = max(r.busyPeak.RSS, m.RSS)
		r.busyPeak.HWM = max(r.busyPeak.HWM, m.HWM)
		mu.Unlock()
	}
	res, err := benchkit.RunLoad(cl, benchkit.LoadOptions{Sessions: sessions, Calls: calls, MaxTime: maxTime, Warmup: 5, Tool: tool, Args: args, During: sample})
	if err != nil {
		return r, fmt.Errorf("%w\nserver stderr:\n%s", err, srv.Stderr())
	}
	sample()
	r.rate, r.calls, r.errors = res.Rate(), res.Calls, res.Errors
	time.Sleep(settle)
	if r.after, err = benchkit.ReadMemory(srv.PID()); err != nil {
		return r, err
	}
	return r, nil
}

func run(keygate, baseline string, sessions, calls int, maxTime, settle time.Duration) error {
	tmp, err := os.MkdirTemp("", "keygate-bench-memory-*")
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

	kgSrv, err := benchkit.StartHTTP(keygate, in.Args("--transport", "http", "--addr", "127.0.0.1:0"), benchkit.CleanEnv())
	if err != nil {
		return err
	}
	defer kgSrv.Stop()
	// Read the idle figure before any request, then find a post id.
	time.Sleep(settle)
	kgIdle, err := benchkit.ReadMemory(kgSrv.PID())
	if err != nil {
		return err
	}
	kgClient := benchkit.NewHTTPClient(kgSrv.URL, tok, sessions)
	id, err := benchkit.SeededPostID(kgClient)
	if err != nil {
		return err
	}
	kg, err := measure(kgSrv, kgClient, "content_get", map[string]any{"type": "posts", "id": id}, sessions, calls, maxTime, 0)
	if err != nil {
		return err
	}
	kg.idle = kgIdle
	time.Sleep(settle)
	if kg.after, err = benchkit.ReadMemory(kgSrv.PID()); err != nil {
		return err
	}
	kgSrv.Stop()

	baseSrv, err := benchkit.StartHTTP(baseline, []string{"--http", "127.0.0.1:0"}, benchkit.CleanEnv())
	if err != nil {
		return err
	}
	defer baseSrv.Stop()
	base, err := measure(baseSrv, benchkit.NewHTTPClient(baseSrv.URL, "", sessions), "echo", map[string]any{"message": "hello"}, sessions, calls, maxTime, settle)
	if err != nil {
		return err
	}

	fmt.Printf("## Memory (VmRSS of the HTTP server process; MB = 10^6 bytes)\n\n")
	fmt.Printf("idle: %s after the server logs its URL, before any request; busy: highest VmRSS sampled every 50 ms while %d sessions call back to back (up to %d calls or %s); after: %s after the load stops.\n\n",
		settle, sessions, calls, maxTime, settle)
	fmt.Println("| server | idle MB | busy peak MB | after MB | VmHWM MB | calls/s during | calls | errors |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, row := range []struct {
		name string
		r    reading
	}{{"keygate (content_get)", kg}, {"baseline (echo)", base}} {
		fmt.Printf("| %s | %s | %s | %s | %s | %.0f | %d | %d |\n", row.name, benchkit.MB(row.r.idle.RSS), benchkit.MB(row.r.busyPeak.RSS),
			benchkit.MB(row.r.after.RSS), benchkit.MB(max(row.r.after.HWM, row.r.busyPeak.HWM)), row.r.rate, row.r.calls, row.r.errors)
	}
	idleMB := float64(kg.idle.RSS) * 1024 / 1e6
	fmt.Printf("\nTARGET idle RSS keygate <= 25 MB: %.1f MB %s (baseline idle %s MB)\n", idleMB, benchkit.Verdict(idleMB <= 25), benchkit.MB(base.idle.RSS))
	return nil
}
