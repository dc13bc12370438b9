//go:build slow

package main

// keygate replicas on one Postgres behind HAProxy in round robin (README,
// "Teams: Postgres and replicas"): each test starts real keygate processes
// (this test binary re-run as keygate) through internal/cluster. They need
// KEYGATE_TEST_POSTGRES and haproxy; .ci/run provides both and makes their
// absence a failure.

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/cluster"
	"github.com/keygate/keygate/internal/haproxy"
	"github.com/keygate/keygate/internal/pgtest"
)

// startCluster starts n replicas on a new database of the shared test
// server.
func startCluster(t *testing.T, n int) (*cluster.Cluster, string, string) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	c, admin := startClusterOn(t, n, dsn)
	return c, admin, dsn
}

// startClusterOn starts n replicas on the store at target and returns them
// with the admin token their first run wrote.
func startClusterOn(t *testing.T, n int, target string) (*cluster.Cluster, string) {
	t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		if os.Getenv(haproxy.Require) != "" {
			t.Fatalf("%s is set but haproxy is missing", haproxy.Require)
		}
		t.Skip("haproxy is not installed: .ci/run installs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	c, err := cluster.Start(ctx, cluster.Options{Bin: binary, Env: cleanEnv("HOME=" + dir), Store: target, Dir: dir,
		Args: []string{"--oauth", "off"}}, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			for i, r := range c.Replicas {
				t.Logf("replica %d log:\n%s", i+1, r.Log())
			}
		}
	})
	admin, err := c.AdminToken()
	if err != nil {
		t.Fatal(err)
	}
	return c, admin
}

// call is cluster.Call that fails the test on a transport error.
func call(t *testing.T, base, token, tool string, args map[string]any) cluster.Answer {
	t.Helper()
	a, err := cluster.Call(context.Background(), base, token, tool, args)
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return a
}

// mustCall is call that wants a successful tool result.
func mustCall(t *testing.T, base, token, tool string, args map[string]any) cluster.Answer {
	t.Helper()
	a := call(t, base, token, tool, args)
	if a.Status != http.StatusOK || a.IsError || a.Result == nil {
		t.Fatalf("%s: %d %s", tool, a.Status, a.Text)
	}
	return a
}

// newKey creates a key through base and returns its id and token.
func newKey(t *testing.T, base, admin, name string) (string, string) {
	t.Helper()
	a := mustCall(t, base, admin, "credentials_create", map[string]any{"name": name, "scopes": []string{"content:read"},
		"expires_in_days": 30, "deliver": "reveal"})
	return cluster.Field(a.Result, "structuredContent", "key", "id"), cluster.Field(a.Result, "structuredContent", "token")
}

// TestReplicasServeAWholeSessionThroughTheBalancer: a client that knows
// nothing of replicas initializes, lists tools and works with content and
// keys through HAProxy, which sends each request to the next replica.
func TestReplicasServeAWholeSessionThroughTheBalancer(t *testing.T) {
	c, admin, _ := startCluster(t, 3)
	lb := c.LB.URL
	ctx := context.Background()
	for _, msg := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`,
	} {
		status, body, err := cluster.Post(ctx, lb, admin, []byte(msg))
		if err != nil || status >= 300 {
			t.Fatalf("%s: %d %s %v", msg, status, body, err)
		}
	}
	mustCall(t, lb, admin, "auth_whoami", nil)
	created := mustCall(t, lb, admin, "content_create", map[string]any{"type": "posts", "slug": "replicas", "title": "Replicas",
		"fields": map[string]any{"body": "written through the balancer"}})
	id := cluster.Field(created.Result, "structuredContent", "object", "id")
	if id == "" {
		t.Fatalf("content_create gave no id: %s", created.Text)
	}
	for range 3 { // every replica in turn reads what one of them wrote
		got := mustCall(t, lb, admin, "content_get", map[string]any{"type": "posts", "id": id})
		if !strings.Contains(got.Text, "written through the balancer") {
			t.Errorf("content_get: %s", got.Text)
		}
	}
	_, tok := newKey(t, lb, admin, "session key")
	for range 3 {
		mustCall(t, lb, tok, "auth_whoami", nil)
	}
	counts, err := c.LB.Requests()
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range counts {
		if n == 0 {
			t.Errorf("replica %d served no request (%v): the balancer did not spread the session", i+1, counts)
		}
	}
	t.Logf("requests per replica: %v", counts)
}

// TestRevokeOnOneReplicaIsRefusedByAnother: replica B has just verified a
// key (and caches the verification); the key is revoked on replica A; B
// refuses it. The time it takes is logged; bench/replicas measures its
// distribution.
func TestRevokeOnOneReplicaIsRefusedByAnother(t *testing.T) {
	c, admin, _ := startCluster(t, 2)
	a, b := c.Replicas[0].URL, c.Replicas[1].URL
	var worst time.Duration
	for i := range 20 {
		id, tok := newKey(t, a, admin, fmt.Sprintf("revoked %d", i))
		mustCall(t, b, tok, "auth_whoami", nil)
		mustCall(t, a, admin, "credentials_revoke", map[string]any{"credential": id, "confirm": true})
		revoked := time.Now()
		for {
			ans := call(t, b, tok, "auth_whoami", nil)
			if ans.Status == http.StatusUnauthorized {
				worst = max(worst, time.Since(revoked))
				break
			}
			if time.Since(revoked) > 10*time.Second {
				t.Fatalf("replica B still accepts a key revoked on A 10 s ago: %d %s", ans.Status, ans.Text)
			}
		}
	}
	t.Logf("slowest refusal on B after a revoke on A, of 20: %v", worst)
}

// TestRacingRotationsOnTwoReplicasGiveOneSuccessor: the same key rotated
// on two replicas at once gets one successor; the other rotation is
// refused with an error that says why.
func TestRacingRotationsOnTwoReplicasGiveOneSuccessor(t *testing.T) {
	c, admin, dsn := startCluster(t, 2)
	for round := range 10 {
		id, _ := newKey(t, c.Replicas[0].URL, admin, fmt.Sprintf("raced %d", round))
		answers := make([]cluster.Answer, 2)
		var wg sync.WaitGroup
		for i, r := range c.Replicas {
			wg.Go(func() {
				answers[i] = call(t, r.URL, admin, "credentials_rotate", map[string]any{"credential": id, "confirm": true,
					"grace_seconds": 0, "deliver": "reveal"})
			})
		}
		wg.Wait()
		won := 0
		for _, ans := range answers {
			switch {
			case ans.Status == http.StatusOK && !ans.IsError:
				won++
			case !strings.Contains(ans.Text, "rotat"):
				t.Errorf("round %d: the losing rotation's error does not say why: %d %s", round, ans.Status, ans.Text)
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d rotations succeeded, want exactly 1: %+v", round, won, answers)
		}
	}
	checkOneSuccessorEach(t, dsn)
}

// checkOneSuccessorEach checks the store's keys: no live key made by a
// rotation lacks the predecessor that names it (an orphan successor, a
// second live successor of one key), and no key names a successor that
// does not exist.
func checkOneSuccessorEach(t *testing.T, dsn string) {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var orphans int
	err = db.QueryRow(`SELECT count(*) FROM keys s
		WHERE s.rotation_id IS NOT NULL AND s.revoked_at IS NULL
		AND NOT EXISTS (SELECT 1 FROM keys p WHERE p.rotated_to = s.id)`).Scan(&orphans)
	if err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Errorf("%d live keys made by a rotation that no key names as its successor", orphans)
	}
}

// TestReplicaLosesItsDatabase: a write load runs through a replica while
// it loses its database, in two ways: the connection cut (a loopback proxy
// stands between them) and the server itself stopped and restarted. While
// the database is gone the replica answers 503 with Retry-After and its
// health check fails; once it is back, the replica serves again; every
// write it reported as done is there.
func TestReplicaLosesItsDatabase(t *testing.T) {
	faults := []struct {
		name  string
		setUp func(t *testing.T) (store string, lose, regain func())
	}{
		{"connection cut", func(t *testing.T) (string, func(), func()) {
			p, through := pgtest.NewProxy(t, pgtest.NewDatabase(t))
			return through, p.Cut, p.Restore
		}},
		{"database stopped and restarted", func(t *testing.T) (string, func(), func()) {
			s := pgtest.NewServer(t)
			return s.URL, s.Stop, s.Start
		}},
	}
	for _, fault := range faults {
		t.Run(fault.name, func(t *testing.T) {
			store, lose, regain := fault.setUp(t)
			c, admin := startClusterOn(t, 1, store)
			writeThroughLoss(t, c.Replicas[0], admin, lose, regain)
		})
	}
}

// writeThroughLoss writes through r until lose has taken its database and
// regain has given it back, and checks every write r reported done.
func writeThroughLoss(t *testing.T, r *cluster.Replica, admin string, lose, regain func()) {
	ctx := context.Background()
	var mu sync.Mutex
	var done []string
	statuses := map[int]int{}
	var toolErrors []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ans, err := cluster.Call(ctx, r.URL, admin, "content_create", map[string]any{"type": "posts",
				"slug": fmt.Sprintf("load-%d", i), "title": "load", "fields": map[string]any{"body": "x"}})
			mu.Lock()
			statuses[ans.Status]++
			if ans.IsError {
				toolErrors = append(toolErrors, ans.Text)
			}
			if err == nil && ans.Status == http.StatusOK && !ans.IsError {
				done = append(done, cluster.Field(ans.Result, "structuredContent", "object", "id"))
			}
			mu.Unlock()
		}
	})
	writes := func() int { mu.Lock(); defer mu.Unlock(); return len(done) }
	waitFor(t, "writes before the loss", func() bool { return writes() >= 5 })
	lose()
	waitFor(t, "a failing health check", func() bool { s, _ := r.Health(ctx); return s == http.StatusServiceUnavailable })
	waitFor(t, "a 503 to a call", func() bool {
		ans, _ := cluster.Call(ctx, r.URL, admin, "auth_whoami", nil)
		return ans.Status == http.StatusServiceUnavailable
	})
	regain()
	waitFor(t, "the health check back", func() bool { s, _ := r.Health(ctx); return s == http.StatusOK })
	before := writes()
	waitFor(t, "writes after the database came back", func() bool { return writes() >= before+5 })
	close(stop)
	wg.Wait()
	t.Logf("writes reported done: %d; answers by status: %v; tool errors: %q", len(done), statuses, toolErrors)
	for _, text := range toolErrors {
		// The caller learns what happened and what to do, never where the
		// database is; a write whose commit went unanswered is not to be
		// retried blindly.
		if strings.Contains(text, "postgres://") || strings.Contains(text, "127.0.0.1") || !strings.Contains(text, "unreachable") {
			t.Errorf("tool error during the loss: %q", text)
		}
		if strings.Contains(text, "committing") && !strings.Contains(text, "outcome is unknown") {
			t.Errorf("a lost commit is not reported as an unknown outcome: %q", text)
		}
	}
	for _, id := range done {
		if ans := call(t, r.URL, admin, "content_get", map[string]any{"type": "posts", "id": id}); ans.IsError || ans.Status != http.StatusOK {
			t.Errorf("write %s was reported done and is gone: %d %s", id, ans.Status, ans.Text)
		}
	}
}

// TestKill9DuringRotations: rotations run through the balancer while one
// replica is killed with SIGKILL and started again; afterwards no key has
// two live successors or an orphan one, and every rotation reported done
// has its successor.
func TestKill9DuringRotations(t *testing.T) {
	c, admin, dsn := startCluster(t, 2)
	lb := c.LB.URL
	ids := make([]string, 6)
	for i := range ids {
		ids[i], _ = newKey(t, lb, admin, fmt.Sprintf("rotated %d", i))
	}
	var mu sync.Mutex
	var successors []string
	var wg sync.WaitGroup
	ctx := context.Background()
	for i := range ids {
		wg.Go(func() {
			id := ids[i]
			for range 8 {
				ans, err := cluster.Call(ctx, lb, admin, "credentials_rotate", map[string]any{"credential": id, "confirm": true,
					"grace_seconds": 0, "deliver": "reveal"})
				if err != nil || ans.Status != http.StatusOK || ans.IsError {
					continue // the replica died under it, or the key is mid-recovery: try again
				}
				next := cluster.Field(ans.Result, "structuredContent", "new", "id")
				if next == "" {
					t.Errorf("credentials_rotate named no new key: %s", ans.Text)
					return
				}
				mu.Lock()
				successors = append(successors, next)
				mu.Unlock()
				id = next
			}
		})
	}
	waitFor(t, "some rotations", func() bool { mu.Lock(); defer mu.Unlock(); return len(successors) >= 4 })
	c.Kill(1)
	if err := c.Restart(ctx, 1); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(successors) == 0 {
		t.Fatal("no rotation succeeded")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, id := range successors {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM keys WHERE id = $1`, id).Scan(&n); err != nil || n != 1 {
			t.Errorf("successor %q of a rotation reported done is not in the store (%v)", id, err)
		}
	}
	checkOneSuccessorEach(t, dsn)
	t.Logf("%d rotations reported done across a SIGKILL", len(successors))
}

// waitFor polls cond until it holds, failing the test after a minute: a
// bound on a hang, not a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
