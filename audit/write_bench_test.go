package audit

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keygate/keygate/internal/pgtest"
)

// BenchmarkWrite measures Write, the durable record a credential operation
// waits for, to the file and to the table (when KEYGATE_TEST_POSTGRES
// names a server), from one writer and from eight at once. The file syncs
// each record under its lock; the table commits concurrent Writes together.
//
//	KEYGATE_TEST_POSTGRES=... go test -run '^$' -bench BenchmarkWrite -benchtime 2s -count 3 ./audit/
func BenchmarkWrite(b *testing.B) {
	type target struct {
		name string
		j    journalUnderTest
	}
	l, err := OpenWith(filepath.Join(b.TempDir(), "audit.jsonl"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	targets := []target{{"file", l}}
	if os.Getenv(pgtest.Env) != "" {
		db, err := sql.Open("pgx", pgtest.NewDatabase(b))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		tb, err := OpenTable(b.Context(), db, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tb.Close() })
		targets = append(targets, target{"table", tb})
	}
	rec := Record{Principal: "AbCdEfGhIjKl", Provider: "local", Tool: "credentials_rotate", Target: "AbCdEfGhIjKl", Outcome: OutcomeAttempt}
	for _, writers := range []int{1, 8} {
		for _, tg := range targets {
			b.Run(fmt.Sprintf("%s/writers=%d", tg.name, writers), func(b *testing.B) {
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for range writers {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if err := tg.j.Write(rec); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}
