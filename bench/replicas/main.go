// Command replicas measures keygate replicas on one Postgres behind
// HAProxy in round robin (internal/cluster), for bench/README.md:
//
//   - revoke: the time from a revoke answered by replica A to the first
//     refusal of that key by replica B, which had just verified (and
//     cached) it, over --trials trials;
//   - throughput: tool calls per second through the balancer with 1, 2
//     and 3 replicas, from --workers clients for --duration each.
//
// Each run creates a database of its own on the server --postgres names
// (an admin URL, as .ci/postgres prints) and drops it afterwards.
//
//	go build -o /tmp/keygate . && go run ./bench/replicas --keygate /tmp/keygate --postgres postgres://keygate@127.0.0.1:55432/postgres?sslmode=disable [--trials 1000] [--workers 16] [--duration 10s] [--tool content_get]
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/keygate/keygate/bench/internal/benchkit"
	"github.com/keygate/keygate/internal/cluster"
)

func main() {
	keygate := flag.String("keygate", "", "keygate binary (required)")
	admin := flag.String("postgres", "", "admin URL of a Postgres server on loopback (required)")
	trials := flag.Int("trials", 1000, "revoke trials")
	workers := flag.Int("workers", 16, "concurrent clients in the throughput runs")
	duration := flag.Duration("duration", 10*time.Second, "length of each throughput run")
	tool := flag.String("tool", "content_get", "tool the throughput runs call: content_get or auth_whoami")
	maxReplicas := flag.Int("replicas", 3, "throughput runs with 1..N replicas")
	flag.Parse()
	if *keygate == "" || *admin == "" {
		fmt.Fprintln(os.Stderr, "replicas: --keygate and --postgres are required")
		os.Exit(2)
	}
	ctx := context.Background()
	if err := revokeRun(ctx, *keygate, *admin, *trials); err != nil {
		fmt.Fprintln(os.Stderr, "replicas:", err)
		os.Exit(1)
	}
	fmt.Printf("\n## Tool calls per second through HAProxy (%s, %d clients, %s per run)\n\n", *tool, *workers, *duration)
	fmt.Println("| replicas | calls | calls/s | p50 ms | p99 ms | errors | CPU ms per call: keygate | HAProxy | clients | Postgres and the rest |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for n := 1; n <= *maxReplicas; n++ {
		if err := throughputRun(ctx, *keygate, *admin, n, *workers, *duration, *tool); err != nil {
			fmt.Fprintln(os.Stderr, "replicas:", err)
			os.Exit(1)
		}
	}
}

// withCluster runs fn on n replicas over a new database.
func withCluster(ctx context.Context, bin, admin string, n int, fn func(c *cluster.Cluster, token string) error) error {
	store, drop, err := newDatabase(ctx, admin)
	if err != nil {
		return err
	}
	defer drop()
	dir, err := os.MkdirTemp("", "keygate-replicas-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c, err := cluster.Start(ctx, cluster.Options{Bin: bin, Env: benchkit.CleanEnv("HOME=" + dir), Store: store, Dir: dir,
		Args: []string{"--oauth", "off", "--log-level", "warn"}}, n)
	if err != nil {
		return err
	}
	defer c.Close()
	token, err := c.AdminToken()
	if err != nil {
		return err
	}
	return fn(c, token)
}

// revokeRun measures revoke-to-refusal across two replicas.
func revokeRun(ctx context.Context, bin, admin string, trials int) error {
	return withCluster(ctx, bin, admin, 2, func(c *cluster.Cluster, token string) error {
		a, b := c.Replicas[0].URL, c.Replicas[1].URL
		var lags []time.Duration
		var polls int
		for i := range trials {
			ans, err := callOK(ctx, a, token, "credentials_create", map[string]any{"name": fmt.Sprintf("trial %d", i),
				"scopes": []string{"content:read"}, "expires_in_days": 1, "deliver": "reveal"})
			if err != nil {
				return err
			}
			id, tok := cluster.Field(ans.Result, "structuredContent", "key", "id"), cluster.Field(ans.Result, "structuredContent", "token")
			if _, err := callOK(ctx, b, tok, "auth_whoami", nil); err != nil {
				return fmt.Errorf("on B before the revoke: %w", err)
			}
			if _, err := callOK(ctx, a, token, "credentials_revoke", map[string]any{"credential": id, "confirm": true}); err != nil {
				return err
			}
			revoked := time.Now()
			for {
				polls++
				ans, err := cluster.Call(ctx, b, tok, "auth_whoami", nil)
				if err != nil {
					return err
				}
				if ans.Status == http.StatusUnauthorized {
					lags = append(lags, time.Since(revoked))
					break
				}
				if time.Since(revoked) > 10*time.Second {
					return fmt.Errorf("trial %d: B still accepts the key 10 s after the revoke", i)
				}
			}
		}
		slices.Sort(lags)
		fmt.Printf("## Revoke on replica A, first refusal on replica B (%d trials)\n\n", trials)
		fmt.Println("| p50 ms | p90 ms | p99 ms | max ms | polls of B per trial |")
		fmt.Println("|---|---|---|---|---|")
		fmt.Printf("| %.2f | %.2f | %.2f | %.2f | %.2f |\n", ms(pct(lags, 50)), ms(pct(lags, 90)), ms(pct(lags, 99)), ms(lags[len(lags)-1]),
			float64(polls)/float64(trials))
		return nil
	})
}

// throughputRun measures calls per second through the balancer.
func throughputRun(ctx context.Context, bin, admin string, n, workers int, d time.Duration, tool string) error {
	return withCluster(ctx, bin, admin, n, func(c *cluster.Cluster, token string) error {
		args := map[string]any{}
		if tool == "content_get" {
			ans, err := callOK(ctx, c.LB.URL, token, "content_create", map[string]any{"type": "posts", "slug": "bench",
				"title": "Bench", "fields": map[string]any{"body": "measured"}})
			if err != nil {
				return err
			}
			args = map[string]any{"type": "posts", "id": cluster.Field(ans.Result, "structuredContent", "object", "id")}
		}
		var calls, failures atomic.Int64
		before, err := sampleCPU(c)
		if err != nil {
			return err
		}
		var mu sync.Mutex
		var lat []time.Duration
		runCtx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				var mine []time.Duration
				for runCtx.Err() == nil {
					start := time.Now()
					ans, err := cluster.Call(runCtx, c.LB.URL, token, tool, args)
					if errors.Is(err, context.DeadlineExceeded) || runCtx.Err() != nil {
						break
					}
					calls.Add(1)
					mine = append(mine, time.Since(start))
					if err != nil || ans.Status != http.StatusOK || ans.IsError {
						failures.Add(1)
					}
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()
		after, err := sampleCPU(c)
		if err != nil {
			return err
		}
		slices.Sort(lat)
		used := after.minus(before)
		per := func(d time.Duration) float64 { return ms(d) / float64(max(1, calls.Load())) }
		fmt.Printf("| %d | %d | %.0f | %.2f | %.2f | %d | %.3f | %.3f | %.3f | %.3f |\n", n, calls.Load(), float64(calls.Load())/d.Seconds(),
			ms(pct(lat, 50)), ms(pct(lat, 99)), failures.Load(),
			per(used.keygate), per(used.haproxy), per(used.clients), per(used.machine-used.keygate-used.haproxy-used.clients))
		return nil
	})
}

// cpuSample is the CPU time used so far by each part of a run.
type cpuSample struct{ keygate, haproxy, clients, machine time.Duration }

func (a cpuSample) minus(b cpuSample) cpuSample {
	return cpuSample{a.keygate - b.keygate, a.haproxy - b.haproxy, a.clients - b.clients, a.machine - b.machine}
}

// sampleCPU reads the CPU time of c's replicas and balancer, of this
// process (the clients) and of the whole machine; what the machine used
// beyond those is Postgres, mostly (the machine runs nothing else during a
// run, which the figures assume).
func sampleCPU(c *cluster.Cluster) (cpuSample, error) {
	var s cpuSample
	for _, r := range c.Replicas {
		d, err := processCPU(r.PID())
		if err != nil {
			return s, err
		}
		s.keygate += d
	}
	var err error
	if s.haproxy, err = processCPU(c.LB.PID()); err != nil {
		return s, err
	}
	s.clients = selfCPU()
	s.machine, err = machineCPU()
	return s, err
}

// callOK is cluster.Call that wants a successful tool result.
func callOK(ctx context.Context, base, token, tool string, args map[string]any) (cluster.Answer, error) {
	ans, err := cluster.Call(ctx, base, token, tool, args)
	switch {
	case err != nil:
		return ans, fmt.Errorf("%s: %w", tool, err)
	case ans.Status != http.StatusOK || ans.IsError:
		return ans, fmt.Errorf("%s: %d %s", tool, ans.Status, ans.Text)
	}
	return ans, nil
}

func pct(s []time.Duration, p int) time.Duration {
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// newDatabase creates a database on admin's server and returns its URL
// and a function that drops it.
func newDatabase(ctx context.Context, admin string) (string, func(), error) {
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, fmt.Errorf("--postgres: %w", err)
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
		return "", nil, errors.New("--postgres must be on loopback")
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		return "", nil, err
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "kgbench_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		_ = db.Close()
		return "", nil, fmt.Errorf("creating the bench database: %w", err)
	}
	u.Path = "/" + name
	return u.String(), func() {
		_, _ = db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		_ = db.Close()
	}, nil
}
