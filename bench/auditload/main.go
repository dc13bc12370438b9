// Command auditload measures what a flood of unauthenticated HTTP requests
// costs keygate's audit journal: how much the journal grows, and how many
// refusals per second keygate answers with the journal on disk and on
// tmpfs (/dev/shm). Both sides run at once against the same store; only
// --audit-file differs.
//
//	go run ./bench/auditload --keygate BIN [--requests 100000] [--block 5000] [--conns 8] [--rounds 3] [--max-time 300s]
//
// Each round starts two keygate servers over HTTP with empty journals,
// one journaling to disk and one to tmpfs, and sends each --requests
// requests in blocks of --block, alternating between the two block by
// block so that both see the same machine load (the machine is shared).
// The requests go over --conns keep-alive connections; half have no
// Authorization header, half a well-formed token that no key has, which
// is looked up in the store. Then both servers are stopped with SIGTERM
// and every journal file is read: bytes, lines, and the refusals the
// records account for (a record's count, or one for a record without).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/bench/internal/benchkit"
)

func main() {
	keygate := flag.String("keygate", "", "keygate binary (required)")
	requests := flag.Int("requests", 100000, "unauthenticated requests per side per round")
	block := flag.Int("block", 5000, "requests sent to one side before switching to the other")
	conns := flag.Int("conns", 8, "concurrent keep-alive connections")
	rounds := flag.Int("rounds", 3, "rounds, each with two new servers and empty journals")
	maxTime := flag.Duration("max-time", 300*time.Second, "cap per round")
	shm := flag.String("tmpfs", "/dev/shm", "a tmpfs directory for the tmpfs side")
	flag.Parse()
	if *keygate == "" || *requests < 1 || *block < 1 || *conns < 1 || *rounds < 1 {
		fmt.Fprintln(os.Stderr, "auditload: --keygate is required; --requests, --block, --conns and --rounds must be positive")
		os.Exit(2)
	}
	if err := run(*keygate, *requests, *block, *conns, *rounds, *maxTime, *shm); err != nil {
		fmt.Fprintln(os.Stderr, "auditload:", err)
		os.Exit(1)
	}
}

// side is where one server keeps its journal.
type side struct {
	name    string
	journal string // --audit-file
	results []result

	srv    *benchkit.Server
	client *http.Client
}

type result struct {
	sent, refused, other int // requests sent, answered 401, answered otherwise or failed
	elapsed              time.Duration
	bytes                int64 // every journal file, after SIGTERM
	lines, counted       int   // lines, and refusals the records account for
}

func (r result) rate() float64 { return float64(r.refused) / r.elapsed.Seconds() }

func run(keygate string, requests, block, conns, rounds int, maxTime time.Duration, shm string) error {
	diskDir, err := os.MkdirTemp("", "keygate-bench-auditload-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(diskDir)
	shmDir, err := os.MkdirTemp(shm, "keygate-bench-auditload-*")
	if err != nil {
		return fmt.Errorf("tmpfs side: %w", err)
	}
	defer os.RemoveAll(shmDir)
	in, err := benchkit.NewInstance(filepath.Join(diskDir, "instance"))
	if err != nil {
		return err
	}
	if err := in.Create(keygate); err != nil {
		return err
	}
	forged, _, err := auth.NewToken() // well-formed, in no store
	if err != nil {
		return err
	}
	sides := []*side{
		{name: "disk (" + fsName(diskDir) + ")", journal: filepath.Join(diskDir, "journal", "audit.jsonl")},
		{name: "tmpfs (" + fsName(shmDir) + ")", journal: filepath.Join(shmDir, "journal", "audit.jsonl")},
	}
	for r := range rounds {
		if err := runRound(keygate, in, sides, forged, requests, block, conns, maxTime, r); err != nil {
			return fmt.Errorf("round %d: %w", r+1, err)
		}
	}
	report(sides, requests, block, conns, rounds, maxTime)
	return nil
}

// runRound starts a server per side with an empty journal, alternates
// blocks of requests between them, stops them and measures the journals.
func runRound(keygate string, in benchkit.Instance, sides []*side, forged string, requests, block, conns int, maxTime time.Duration, round int) error {
	for _, s := range sides {
		if err := os.RemoveAll(filepath.Dir(s.journal)); err != nil {
			return err
		}
		srv, err := benchkit.StartHTTP(keygate, in.Args("--transport", "http", "--addr", "127.0.0.1:0", "--audit-file", s.journal), benchkit.CleanEnv())
		if err != nil {
			return err
		}
		s.srv = srv
		defer srv.Stop()
		s.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: conns, MaxIdleConns: conns, DisableCompression: true,
		}}
	}
	res := make([]result, len(sides))
	deadline := time.Now().Add(maxTime)
	for b := 0; b*block < requests && time.Now().Before(deadline); b++ {
		n := min(block, requests-b*block)
		for k := range sides {
			i := (k + b + round) % len(sides) // who goes first alternates
			refused, other, elapsed := sendBlock(sides[i], forged, n, conns)
			res[i].sent += n
			res[i].refused += refused
			res[i].other += other
			res[i].elapsed += elapsed
		}
	}
	for i, s := range sides {
		s.client.CloseIdleConnections()
		s.srv.Stop() // SIGTERM: keygate writes the refusals it holds
		if err := measureJournal(s.journal, &res[i]); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		s.results = append(s.results, res[i])
	}
	return nil
}

// sendBlock sends n unauthenticated requests to s over conns connections
// and returns how many were refused (401), how many were not, and how long
// the block took.
func sendBlock(s *side, forged string, n, conns int) (refused, other int, elapsed time.Duration) {
	var next, nRefused, nOther atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				req, err := http.NewRequest(http.MethodPost, s.srv.URL, strings.NewReader(initBody))
				if err != nil {
					nOther.Add(1)
					continue
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				if i%2 == 1 {
					req.Header.Set("Authorization", "Bearer "+forged)
				}
				resp, err := s.client.Do(req)
				if err != nil {
					nOther.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusUnauthorized {
					nRefused.Add(1)
				} else {
					nOther.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(nRefused.Load()), int(nOther.Load()), time.Since(start)
}

// fsName says what file system holds dir, from /proc/self/mounts.
func fsName(dir string) string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "?"
	}
	defer f.Close()
	best, kind := "", "?"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		mnt := fields[1]
		if (dir == mnt || strings.HasPrefix(dir, strings.TrimSuffix(mnt, "/")+"/")) && len(mnt) > len(best) {
			best, kind = mnt, fields[2]
		}
	}
	return kind
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"keygate-bench","version":"1"}}}`

// measureJournal adds up every file of the journal: the file and its
// rotated ones.
func measureJournal(journal string, res *result) error {
	files, err := filepath.Glob(journal + "*")
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New("keygate wrote no journal")
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		r := bufio.NewReader(f)
		for {
			line, err := r.ReadBytes('\n')
			res.bytes += int64(len(line))
			if len(strings.TrimSpace(string(line))) > 0 {
				res.lines++
				var rec struct {
					Tool  string `json:"tool"`
					Count int    `json:"count"`
				}
				if json.Unmarshal(line, &rec) == nil && rec.Tool == "http" {
					res.counted += max(rec.Count, 1)
				}
			}
			if err != nil {
				break
			}
		}
		f.Close()
	}
	return nil
}

func report(sides []*side, requests, block, conns, rounds int, maxTime time.Duration) {
	fmt.Printf("## Audit journal under a flood of unauthenticated HTTP requests\n\n")
	fmt.Printf("%d rounds; per round and side up to %d requests (cap %s per round) in blocks of %d, the sides alternating block by block, "+
		"over %d keep-alive connections; half without Authorization, half with a well-formed token no key has. "+
		"Journals measured after SIGTERM.\n\n", rounds, requests, maxTime, block, conns)
	fmt.Println("| journal on | round | refused | other | seconds | refusals/s | journal bytes | lines | refusals recorded |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, s := range sides {
		for i, r := range s.results {
			fmt.Printf("| %s | %d | %d | %d | %.1f | %.0f | %d | %d | %d |\n", s.name, i+1, r.refused, r.other, r.elapsed.Seconds(), r.rate(), r.bytes, r.lines, r.counted)
		}
	}
	fmt.Println()
	rates := func(s *side) []float64 {
		var xs []float64
		for _, r := range s.results {
			xs = append(xs, r.rate())
		}
		return xs
	}
	var ratios []float64
	var worstBytes int64
	accounted := true
	for i := range sides[0].results {
		ratios = append(ratios, sides[0].results[i].rate()/sides[1].results[i].rate())
	}
	for _, s := range sides {
		for _, r := range s.results {
			worstBytes = max(worstBytes, r.bytes)
			accounted = accounted && r.counted == r.refused
		}
	}
	disk, tmpfs := benchkit.Median(rates(sides[0])), benchkit.Median(rates(sides[1]))
	ratio := benchkit.Median(ratios)
	perRound := make([]string, len(ratios))
	for i, x := range ratios {
		perRound[i] = fmt.Sprintf("%.2f", x)
	}
	fmt.Printf("refusals/s, median of rounds: disk %.0f, tmpfs %.0f; disk/tmpfs median of per-round ratios %.2f (rounds: %s)\n",
		disk, tmpfs, ratio, strings.Join(perRound, ", "))
	fmt.Printf("every refusal accounted for in the journal: %v\n", accounted)
	fmt.Printf("TARGET journal growth after %d unauthenticated requests < 1 MB: largest run %d bytes %s\n",
		requests, worstBytes, benchkit.Verdict(worstBytes < 1e6 && sides[0].results[0].sent == requests && accounted))
	fmt.Printf("TARGET refusals/s with the journal on disk within 20%% of tmpfs: %.0f%% %s\n", ratio*100, benchkit.Verdict(ratio >= 0.8 && ratio <= 1.2))
}
