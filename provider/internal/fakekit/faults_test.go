package fakekit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// fake is the smallest fake: it answers 200 "handled" and counts what it
// handled, behind the kit's log and faults.
type fake struct {
	log     Log
	faults  Faults
	handled atomic.Int32
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.log.Add(r, string(b))
	handle := func(w http.ResponseWriter) {
		f.handled.Add(1)
		_, _ = io.WriteString(w, "handled")
	}
	if ft, ok := f.faults.Take(r); ok {
		f.faults.Serve(w, ft, handle)
		return
	}
	handle(w)
}

func start(t *testing.T, f *fake) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv
}

func TestFaultMatching(t *testing.T) {
	tests := []struct {
		name         string
		suffix       bool
		method, path string
		sent         []string // "METHOD /path", in order
		want         []int    // the statuses they get
	}{
		{"exact path", false, "GET", "/v1/items", []string{"GET /v1/items/1", "GET /v1/items", "GET /v1/items"}, []int{200, 503, 200}},
		{"suffix", true, "GET", "/items", []string{"GET /v1/things", "GET /v1/items", "GET /v1/items"}, []int{200, 503, 200}},
		{"method", false, "POST", "", []string{"GET /a", "POST /b", "POST /b"}, []int{200, 503, 200}},
		{"any request", false, "", "", []string{"DELETE /x", "GET /y"}, []int{503, 200}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{faults: Faults{Suffix: tc.suffix}}
			srv := start(t, f)
			f.faults.Fail(tc.method, tc.path, 503, nil, `{"busy":true}`)
			for i, s := range tc.sent {
				method, path, _ := strings.Cut(s, " ")
				req, _ := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != tc.want[i] {
					t.Errorf("%s: %d, want %d", s, resp.StatusCode, tc.want[i])
				}
			}
		})
	}
}

// Faults queue up in order; an injected answer carries its headers, and
// a JSON content type unless it names one.
func TestFaultAnswers(t *testing.T) {
	for _, lower := range []bool{false, true} {
		f := &fake{faults: Faults{LowerCase: lower}}
		srv := start(t, f)
		f.faults.Fail("", "", 429, map[string]string{"Retry-After": "3"}, `{"error":"slow down"}`)
		f.faults.Fail("", "", 500, map[string]string{"Content-Type": "text/html"}, `<html>`)
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" || string(body) != `{"error":"slow down"}` || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("lower %v: first %d %v %s", lower, resp.StatusCode, resp.Header, body)
		}
		resp, err = srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 500 || (!lower && resp.Header.Get("Content-Type") != "text/html") {
			t.Errorf("lower %v: second %d %v", lower, resp.StatusCode, resp.Header)
		}
		if f.handled.Load() != 0 {
			t.Errorf("lower %v: an injected answer was handled too", lower)
		}
	}
}

// A dropped answer is handled in full, and the client gets no answer.
func TestFaultDrop(t *testing.T) {
	f := &fake{}
	srv := start(t, f)
	f.faults.Drop("POST", "/items")
	if resp, err := srv.Client().Post(srv.URL+"/items", "application/json", strings.NewReader(`{}`)); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("got an answer: %d", resp.StatusCode)
	}
	if f.handled.Load() != 1 {
		t.Errorf("handled %d times, want once", f.handled.Load())
	}
	resp, err := srv.Client().Post(srv.URL+"/items", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if f.handled.Load() != 2 || f.log.Count("/items") != 2 {
		t.Errorf("handled %d, counted %d", f.handled.Load(), f.log.Count("/items"))
	}
}

func TestLog(t *testing.T) {
	for _, keep := range []bool{false, true} {
		f := &fake{log: Log{Keep: keep}}
		srv := start(t, f)
		for _, p := range []string{"/a?x=1", "/a", "/b"} {
			resp, err := srv.Client().Post(srv.URL+p, "text/plain", strings.NewReader("body"+p))
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
		}
		if f.log.Count("/a") != 2 || f.log.Count("/b") != 1 || f.log.Total() != 3 {
			t.Errorf("keep %v: counts %d %d %d", keep, f.log.Count("/a"), f.log.Count("/b"), f.log.Total())
		}
		seen := f.log.Seen()
		switch {
		case !keep && len(seen) != 0:
			t.Errorf("kept %d requests without Keep", len(seen))
		case keep && (len(seen) != 3 || seen[0].Query.Get("x") != "1" || seen[0].Body != "body/a?x=1" || seen[2].Path != "/b" || seen[2].Method != "POST"):
			t.Errorf("seen %+v", seen)
		}
	}
}
