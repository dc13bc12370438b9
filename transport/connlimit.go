package transport

import (
	"net"
	"sync"
)

// Connection bounds. Every open connection costs a file descriptor and
// about 20 KB of memory whether or not it ever sends a request, and
// opening one needs no token, so keygate bounds them where it accepts
// them: past a bound a new connection is closed at once, never queued.
const (
	// maxConns bounds all open connections: far more than the callers
	// and the proxies in front of one keygate use, far below a process's
	// file limit.
	maxConns = 2048
	// maxConnsPerHost bounds one client address, so one client cannot
	// take the rest of maxConns. It does not apply behind a reverse proxy
	// (HTTPConfig.BehindProxy), where every connection comes from the
	// proxy.
	maxConnsPerHost = 256
)

// limitListener closes connections accepted past maxConns, or past
// maxConnsPerHost from one address.
type limitListener struct {
	net.Listener
	total, perHost int // the bounds; 0 per host: none

	mu     sync.Mutex
	open   int
	byHost map[string]int
}

func newLimitListener(ln net.Listener, total, perHost int) *limitListener {
	return &limitListener{Listener: ln, total: total, perHost: perHost, byHost: map[string]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := remoteHost(c)
		if l.take(host) {
			return &limitedConn{Conn: c, l: l, host: host}, nil
		}
		_ = c.Close() // refused: over a bound
	}
}

func (l *limitListener) take(host string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.total || l.perHost > 0 && l.byHost[host] >= l.perHost {
		return false
	}
	l.open++
	l.byHost[host]++
	return true
}

func (l *limitListener) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byHost[host]--; l.byHost[host] == 0 {
		delete(l.byHost, host)
	}
}

func remoteHost(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// limitedConn gives its place back once, when it is closed.
type limitedConn struct {
	net.Conn
	l    *limitListener
	host string
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.host) })
	return err
}
