package fakekit

import (
	"net/http"
	"net/url"
	"slices"
	"sync"
)

// Request is one request a fake received, for assertions.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   string
}

// Log counts the requests a fake receives, per path, injected faults
// included. It is safe for concurrent use; the zero value counts only.
type Log struct {
	// Keep keeps every request (Seen). A fake that serves benchmarks
	// leaves it off: its memory would grow with every request.
	Keep bool

	mu     sync.Mutex
	counts map[string]int
	total  int
	seen   []Request
}

// Add records r, whose body the fake has read.
func (l *Log) Add(r *http.Request, body string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = map[string]int{}
	}
	l.counts[r.URL.Path]++
	l.total++
	if l.Keep {
		l.seen = append(l.seen, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
	}
}

// Count is how many requests reached path (without the query).
func (l *Log) Count(path string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[path]
}

// Total is how many requests arrived.
func (l *Log) Total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// Seen returns the requests kept, in order.
func (l *Log) Seen() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen)
}
