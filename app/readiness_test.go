package app

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pingDriver counts pings; each waits until release is closed.
type pingDriver struct {
	pings   atomic.Int64
	release chan struct{}
}

func (d *pingDriver) Open(string) (driver.Conn, error) { return pingConn{d}, nil }

type pingConn struct{ d *pingDriver }

func (c pingConn) Ping(context.Context) error {
	c.d.pings.Add(1)
	<-c.d.release
	return errors.New("database unreachable")
}
func (pingConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("not used") }
func (pingConn) Close() error                        { return nil }
func (pingConn) Begin() (driver.Tx, error)           { return nil, errors.New("not used") }

var registerPing sync.Once

// A flood of health checks costs one ping a second, however many come at
// once: /healthz needs no token, and each ping would be a database
// connection.
func TestHealthChecksShareOnePing(t *testing.T) {
	d := &pingDriver{release: make(chan struct{})}
	registerPing.Do(func() { sql.Register("keygate-ping-test", d) })
	db, err := sql.Open("keygate-ping-test", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The driver is registered once; point it at this test's counter.
	drv := db.Driver().(*pingDriver)
	drv.pings.Store(0)
	drv.release = d.release
	now := time.Unix(1_700_000_000, 0)
	var clock sync.Mutex
	r := &readiness{db: db, now: func() time.Time { clock.Lock(); defer clock.Unlock(); return now }}

	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 200 {
		wg.Go(func() { errs <- r.check(context.Background()) })
	}
	for drv.pings.Load() == 0 {
		time.Sleep(time.Millisecond) // until the one ping is in flight
	}
	close(d.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			t.Fatal("a health check passed while the database was unreachable")
		}
	}
	if n := drv.pings.Load(); n != 1 {
		t.Fatalf("200 concurrent health checks pinged %d times, want 1", n)
	}
	_ = r.check(context.Background())
	if n := drv.pings.Load(); n != 1 {
		t.Errorf("a check within the second pinged again (%d)", n)
	}
	clock.Lock()
	now = now.Add(readyFor)
	clock.Unlock()
	_ = r.check(context.Background())
	if n := drv.pings.Load(); n != 2 {
		t.Errorf("a check a second later did not ping again (%d pings)", n)
	}
}
