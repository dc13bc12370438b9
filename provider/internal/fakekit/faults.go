// Package fakekit is what the fakes of remote providers (cosmictest,
// cockpittest, cencoritest, agrentingtest) share: fault injection (an
// injected answer, or an answer lost after the server acted), a log of the
// requests received, and a Mongo-style query matcher whose semantics each
// platform sets. What a fake answers, and every wire fact behind it, stays
// in the fake, with its source in docs/providers/<name>.md.
package fakekit

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Fault is an answer a fake gives in place of its own, to one request.
type Fault struct {
	// Method and Path say which request: "" matches any. Path is matched
	// as the Faults say (whole, or as a suffix).
	Method, Path string
	Status       int
	Header       map[string]string
	Body         string
	// Drop lets the fake handle the request in full (a write takes
	// effect) and then closes the connection without an answer, as when
	// the answer is lost on the way back.
	Drop bool
	// Stall is for the fake to read: how long a dropped request stays in
	// progress, e.g. an idempotency record.
	Stall time.Duration
}

// Faults is a queue of injected faults: each request takes the first one
// it matches. It is safe for concurrent use; the zero value matches paths
// whole.
type Faults struct {
	// Suffix matches a fault's Path against the end of the request path.
	Suffix bool
	// LowerCase writes the injected header names in lower case, as a
	// platform that sends them so does.
	LowerCase bool

	mu    sync.Mutex
	queue []Fault
}

// Add queues f.
func (fs *Faults) Add(f Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.queue = append(fs.queue, f)
}

// Fail queues an injected answer for the next request with this method
// and path ("" matches any).
func (fs *Faults) Fail(method, path string, status int, header map[string]string, body string) {
	fs.Add(Fault{Method: method, Path: path, Status: status, Header: header, Body: body})
}

// Drop queues a lost answer for the next request with this method and
// path ("" matches any).
func (fs *Faults) Drop(method, path string) {
	fs.Add(Fault{Method: method, Path: path, Drop: true})
}

// Take removes and returns the first fault r matches.
func (fs *Faults) Take(r *http.Request) (Fault, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, f := range fs.queue {
		if fs.matches(f, r) {
			fs.queue = append(fs.queue[:i:i], fs.queue[i+1:]...)
			return f, true
		}
	}
	return Fault{}, false
}

func (fs *Faults) matches(f Fault, r *http.Request) bool {
	if f.Method != "" && f.Method != r.Method {
		return false
	}
	if fs.Suffix {
		return strings.HasSuffix(r.URL.Path, f.Path)
	}
	return f.Path == "" || f.Path == r.URL.Path
}

// Serve answers with f: a dropped answer is handled in full by handle and
// then lost; any other fault's answer is written instead of handling it.
func (fs *Faults) Serve(w http.ResponseWriter, f Fault, handle func(http.ResponseWriter)) {
	if f.Drop {
		handle(httptest.NewRecorder())
		Hangup(w)
		return
	}
	for k, v := range f.Header {
		if fs.LowerCase {
			w.Header()[strings.ToLower(k)] = []string{v}
		} else {
			w.Header().Set(k, v)
		}
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(f.Status)
	_, _ = w.Write([]byte(f.Body))
}

// Hangup closes w's connection without an answer, as a network failure
// after the server acted would.
func Hangup(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
