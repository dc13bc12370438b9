package pgtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy stands between keygate (a store, a replica) and the test Postgres server, on
// loopback, so that a test can take the database away and give it back,
// or lose the answer to a COMMIT. It reads the protocol's framing (a
// startup message, then a type byte and a length per message) and nothing
// more.
type Proxy struct {
	t      testing.TB
	server string // host:port of Postgres
	addr   string // host:port the proxy listens on

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	commit CommitDrop // what to do with the next COMMIT
	fired  chan struct{}
}

type CommitDrop int

const (
	CommitPass   CommitDrop = iota
	CommitBefore            // drop the connection instead of sending COMMIT
	CommitAfter             // send COMMIT, drop the connection instead of its answer
)

// NewProxy proxies the server dsn names and returns dsn pointing at the
// proxy.
func NewProxy(t testing.TB, dsn string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, server: u.Host, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.Cut)
	u.Host = p.addr
	return p, u.String()
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.server)
			if err != nil {
				_ = c.Close() // the client sees the database gone, which it is
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[s] = true, true
			p.mu.Unlock()
			swallow := make(chan chan struct{}, 1)
			go p.clientToServer(c, s, swallow)
			go p.serverToClient(s, c, swallow)
		}
	}()
}

// Cut takes the database away: no new connection is accepted, and every
// open one is closed.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close() // breaking it is the point
	}
	clear(p.conns)
}

// Restore gives the database back, on the same address.
func (p *Proxy) Restore() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("listening again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// DropNextCommit arms what happens to the next COMMIT; the returned
// channel is closed when it has happened.
func (p *Proxy) DropNextCommit(how CommitDrop) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.commit, p.fired = how, make(chan struct{})
	return p.fired
}

func (p *Proxy) closePair(a, b net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = a.Close() // either side may be closed already
	_ = b.Close()
	delete(p.conns, a)
	delete(p.conns, b)
}

func (p *Proxy) clientToServer(c, s net.Conn, swallow chan<- chan struct{}) {
	defer p.closePair(c, s)
	// The startup message has no type byte.
	var n [4]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return
	}
	body := make([]byte, binary.BigEndian.Uint32(n[:])-4)
	if _, err := io.ReadFull(c, body); err != nil {
		return
	}
	if _, err := s.Write(append(n[:], body...)); err != nil {
		return
	}
	for {
		msg, err := readMessage(c)
		if err != nil {
			return
		}
		if msg[0] == 'Q' && bytes.EqualFold(bytes.TrimRight(msg[5:], "\x00; "), []byte("commit")) {
			p.mu.Lock()
			how, fired := p.commit, p.fired
			p.commit = CommitPass
			p.mu.Unlock()
			switch how {
			case CommitBefore:
				close(fired)
				return
			case CommitAfter:
				swallow <- fired // the server's answer must not reach the client
				if _, err := s.Write(msg); err != nil {
					return
				}
				<-fired // serverToClient saw the answer, or the server went away
				return
			}
		}
		if _, err := s.Write(msg); err != nil {
			return
		}
	}
}

func (p *Proxy) serverToClient(s, c net.Conn, swallow <-chan chan struct{}) {
	var fired chan struct{} // set once the answer to a COMMIT is to be swallowed
	defer func() {
		p.closePair(c, s)
		if fired != nil {
			close(fired)
		}
	}()
	for {
		msg, err := readMessage(s)
		if err != nil {
			return
		}
		if fired == nil {
			select {
			case fired = <-swallow:
			default:
			}
		}
		if fired != nil {
			if msg[0] == 'Z' { // ReadyForQuery: the COMMIT is done
				return
			}
			continue
		}
		if _, err := c.Write(msg); err != nil {
			return
		}
	}
}

// readMessage reads one typed message: its type byte, length and body.
func readMessage(r io.Reader) ([]byte, error) {
	head := make([]byte, 5)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(head[1:])
	if n < 4 {
		return nil, errors.New("bad message length")
	}
	msg := make([]byte, 5+n-4)
	copy(msg, head)
	_, err := io.ReadFull(r, msg[5:])
	return msg, err
}
