// Command coldstart measures stdio cold start: from exec to the complete
// initialize response line, for keygate (on an existing store, and
// separately on first run) and for the bare mcp-go baseline, launched
// alternately in the same run.
//
//	go run ./bench/coldstart --keygate BIN --baseline BIN [--n 50] [--first 10]
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/keygate/keygate/bench/internal/benchkit"
)

func main() {
	if store := os.Getenv(probeEnv); store != "" {
		if err := probe(store, os.Getenv(probeEnv+"_SCHEMAS") != ""); err != nil {
			fmt.Fprintln(os.Stderr, "probe:", err)
			os.Exit(1)
		}
		return
	}
	keygate := flag.String("keygate", "", "keygate binary (required)")
	baseline := flag.String("baseline", "", "baseline binary (required)")
	n := flag.Int("n", 50, "measured launches of each server")
	warmup := flag.Int("warmup", 1, "unmeasured launches of each server first")
	first := flag.Int("first", 10, "first-run launches of keygate, each on a new store")
	traces := flag.Int("inittrace", 5, "GODEBUG=inittrace=1 launches of each server, to see package init cost (0: skip)")
	flag.Parse()
	if *keygate == "" || *baseline == "" {
		fmt.Fprintln(os.Stderr, "coldstart: --keygate and --baseline are required")
		os.Exit(2)
	}
	if err := run(*keygate, *baseline, *n, *warmup, *first, *traces); err != nil {
		fmt.Fprintln(os.Stderr, "coldstart:", err)
		os.Exit(1)
	}
}

func run(keygate, baseline string, n, warmup, first, traces int) error {
	tmp, err := os.MkdirTemp("", "keygate-bench-coldstart-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// The store exists before the measured launches, so first-run seeding
	// is not counted; first run is measured separately below.
	in, err := benchkit.NewInstance(filepath.Join(tmp, "existing"))
	if err != nil {
		return err
	}
	if err := in.Create(keygate); err != nil {
		return err
	}
	env := benchkit.CleanEnv()
	kgArgs := in.Args()
	launch := func(bin string, args []string) (time.Duration, error) {
		d, _, err := benchkit.ColdStart(bin, args, env)
		return d, err
	}
	for range warmup {
		if _, err := launch(keygate, kgArgs); err != nil {
			return err
		}
		if _, err := launch(baseline, nil); err != nil {
			return err
		}
	}
	var kg, base []time.Duration
	for i := range n {
		// Alternate which goes first, so neither always follows the other.
		order := []bool{true, false}
		if i%2 == 1 {
			order = []bool{false, true}
		}
		for _, isKG := range order {
			if isKG {
				d, err := launch(keygate, kgArgs)
				if err != nil {
					return err
				}
				kg = append(kg, d)
			} else {
				d, err := launch(baseline, nil)
				if err != nil {
					return err
				}
				base = append(base, d)
			}
		}
	}

	var firstRuns []time.Duration
	for i := range first {
		fin, err := benchkit.NewInstance(filepath.Join(tmp, fmt.Sprintf("first-%d", i)))
		if err != nil {
			return err
		}
		d, err := launch(keygate, fin.Args())
		if err != nil {
			return err
		}
		if _, err := fin.Token(); err != nil {
			return fmt.Errorf("first run wrote no token: %w", err)
		}
		firstRuns = append(firstRuns, d)
	}

	// Process start and package init alone: launch to exit of a command
	// that serves nothing.
	var kgInit, baseInit []time.Duration
	for range min(n, 20) {
		d, err := timeExit(keygate, "version")
		if err != nil {
			return err
		}
		kgInit = append(kgInit, d)
		d, err = timeExit(baseline, "-h")
		if err != nil {
			return err
		}
		baseInit = append(baseInit, d)
	}

	k, b, f := benchkit.Summarize(kg), benchkit.Summarize(base), benchkit.Summarize(firstRuns)
	ki, bi := benchkit.Summarize(kgInit), benchkit.Summarize(baseInit)
	fmt.Printf("## Cold start over stdio (exec to complete initialize response)\n\n")
	fmt.Printf("%d launches each after %d warm-up, keygate and baseline alternating; first run: %d launches, each on a new store.\n\n", n, warmup, first)
	fmt.Println("| server | launches | median ms | p90 ms | min ms | max ms |")
	fmt.Println("| --- | --- | --- | --- | --- | --- |")
	row := func(name string, s benchkit.Summary) {
		fmt.Printf("| %s | %d | %s | %s | %s | %s |\n", name, s.N, benchkit.Ms(s.P50), benchkit.Ms(s.P90), benchkit.Ms(s.Min), benchkit.Ms(s.Max))
	}
	row("keygate (existing store)", k)
	row("baseline (bare mcp-go, echo)", b)
	row("keygate first run (creates + seeds store, mints token)", f)
	row("keygate `version` (exec + init, launch to exit)", ki)
	row("baseline `-h` (exec + init, launch to exit)", bi)
	ratio := float64(k.P50) / float64(b.P50)
	fmt.Printf("\nratio keygate/baseline: median %.2fx, p90 %.2fx; first run/baseline median %.2fx\n",
		ratio, float64(k.P90)/float64(b.P90), float64(f.P50)/float64(b.P50))
	fmt.Printf("TARGET cold start keygate <= 1.5x baseline (median): %.2fx (%s vs %s ms) %s\n",
		ratio, benchkit.Ms(k.P50), benchkit.Ms(b.P50), benchkit.Verdict(ratio <= 1.5))

	p, err := runProbes(in.Store, 10)
	if err != nil {
		return err
	}
	fmt.Printf("\n### Where keygate's serve path goes (in-process probe of main.go's steps, fresh process each, median of 10)\n\n")
	fmt.Printf("open existing store (local.Open) %s ms; build MCP server (tools.NewServer) %s ms; answer initialize %s ms; total %s ms.\n",
		benchkit.Ms(p.OpenStore), benchkit.Ms(p.NewServer), benchkit.Ms(p.Initialize), benchkit.Ms(p.Total))
	fmt.Printf("Of tools.NewServer: compiling the %d input schemas as newArgValidator does (one jsonschema.Compiler per tool), alone: %s ms.\n",
		p.Tools, benchkit.Ms(p.Schemas))

	if traces > 0 {
		fmt.Printf("\n### Package init (GODEBUG=inittrace=1, median of %d launches)\n\n", traces)
		for _, side := range []struct {
			name string
			bin  string
			args []string
		}{{"keygate", keygate, kgArgs}, {"baseline", baseline, nil}} {
			total, top, err := initTrace(side.bin, side.args, traces)
			if err != nil {
				return err
			}
			fmt.Printf("%s: package init total %.2f ms clock; largest:", side.name, total)
			for _, p := range top {
				fmt.Printf(" %s %.2f ms;", p.name, p.ms)
			}
			fmt.Println()
		}
	}
	return nil
}

// timeExit runs bin args to exit, discarding output.
func timeExit(bin string, args ...string) (time.Duration, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = benchkit.CleanEnv()
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s %v: %w", bin, args, err)
	}
	return time.Since(start), nil
}

var initLine = regexp.MustCompile(`^init (\S+) @[0-9.]+ ms, ([0-9.]+) ms clock`)

type pkgInit struct {
	name string
	ms   float64
}

// initTrace launches bin with GODEBUG=inittrace=1 runs times and returns
// the median total init clock time and the six packages with the largest
// median.
func initTrace(bin string, args []string, runs int) (float64, []pkgInit, error) {
	perPkg := map[string][]float64{}
	var totals []float64
	for range runs {
		cmd := exec.Command(bin, args...)
		cmd.Env = benchkit.CleanEnv("GODEBUG=inittrace=1")
		cmd.Stdin = bytes.NewReader([]byte(benchkit.InitializeLine + "\n"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return 0, nil, fmt.Errorf("inittrace %s: %w\n%s", bin, err, stderr.String())
		}
		total := 0.0
		seen := map[string]float64{}
		sc := bufio.NewScanner(&stderr)
		for sc.Scan() {
			m := initLine.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			ms, _ := strconv.ParseFloat(m[2], 64)
			total += ms
			seen[m[1]] += ms
		}
		totals = append(totals, total)
		for p, ms := range seen {
			perPkg[p] = append(perPkg[p], ms)
		}
	}
	var pkgs []pkgInit
	for p, xs := range perPkg {
		for len(xs) < runs {
			xs = append(xs, 0)
		}
		pkgs = append(pkgs, pkgInit{p, benchkit.Median(xs)})
	}
	slices.SortFunc(pkgs, func(a, b pkgInit) int {
		switch {
		case a.ms > b.ms:
			return -1
		case a.ms < b.ms:
			return 1
		}
		return 0
	})
	return benchkit.Median(totals), pkgs[:min(6, len(pkgs))], nil
}
