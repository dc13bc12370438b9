package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// One client cannot hold more than maxConnsPerHost connections, nor all
// clients more than maxConns: past a bound a new connection is closed at
// once, and a place comes back when a connection closes.
func TestConnectionsAreBounded(t *testing.T) {
	tests := []struct {
		name           string
		total, perHost int
	}{
		{"per client address", 100, 3},
		{"overall", 3, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l := newLimitListener(ln, tc.total, tc.perHost)
			t.Cleanup(func() { l.Close() })
			accepted := make(chan net.Conn, 8)
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					accepted <- c
				}
			}()
			dial := func() net.Conn {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			var held []net.Conn
			for range 3 {
				dial()
				held = append(held, <-accepted)
			}
			extra := dial()
			_ = extra.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := extra.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Fatalf("the connection past the bound was not closed: %v", err)
			}
			held[0].Close()
			dial()
			select {
			case c := <-accepted:
				c.Close()
			case <-time.After(10 * time.Second):
				t.Fatal("no place came back when a connection closed")
			}
		})
	}
}

// A key that sends request bodies slowly, on more connections than there
// are serving slots, holds no slot: another key's call is served, and the
// slow key's own requests wait their turn rather than fail.
func TestSlowBodiesHoldNoServingSlot(t *testing.T) {
	h, _, _ := newTestHandlerWith(t, func(*HTTPConfig) {})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	for range maxInflight + 20 {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_, _ = io.WriteString(c, "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:9\r\nAuthorization: Bearer reader\r\n"+
			"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/mcp", strings.NewReader(initialize))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "127.0.0.1:9"
	for k, v := range map[string]string{"Authorization": "Bearer admin", "Content-Type": "application/json", "Accept": "application/json, text/event-stream"} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("another key's call while one key sends %d slow bodies: %v", maxInflight+20, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("another key's call: %d, want 200", resp.StatusCode)
	}
}
