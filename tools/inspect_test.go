package tools

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// countingInspector answers with what it is told and counts the questions.
type countingInspector struct {
	mu        sync.Mutex
	describes int
	checks    int
	desc      provider.Description
	access    func(ops []provider.Operation) []provider.Access
	err       error
	block     chan struct{} // when set, CheckAccess waits for it
	entered   chan struct{} // when set, CheckAccess signals it has begun
}

func (f *countingInspector) Describe(context.Context) (provider.Description, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describes++
	return f.desc, f.err
}

func (f *countingInspector) CheckAccess(_ context.Context, ops []provider.Operation) ([]provider.Access, error) {
	f.mu.Lock()
	f.checks++
	block, entered := f.block, f.entered
	f.mu.Unlock()
	if entered != nil {
		close(entered)
	}
	if block != nil {
		<-block
	}
	out := make([]provider.Access, len(ops))
	for i, op := range ops {
		out[i] = provider.Access{Operation: op.String(), Allowed: true, Known: true}
	}
	if f.access != nil {
		out = f.access(ops)
	}
	return out, f.err
}

func (f *countingInspector) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.describes, f.checks
}

var okDescription = provider.Description{Provider: "fake", Reachable: true,
	Credentials: []provider.Credential{{Name: "FAKE_KEY", Verified: provider.VerifiedOK}}}

func cacheDeps(ttl time.Duration) (*inspector, *clock) {
	clk := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	return newInspector(&Deps{InspectTTL: ttl, Now: clk.Now}), clk
}

func TestInspectTTL(t *testing.T) {
	tests := []struct {
		name      string
		ttl       time.Duration
		after     time.Duration // between the first and second question
		wantAsked int
		desc      provider.Description
		err       error
	}{
		{"within the TTL", 0, DefaultInspectTTL - time.Millisecond, 1, okDescription, nil},
		{"at the TTL", 0, DefaultInspectTTL, 2, okDescription, nil},
		{"a shorter TTL", 5 * time.Second, 5 * time.Second, 2, okDescription, nil},
		{"sharing off", -1, 0, 2, okDescription, nil},
		{"a refused credential is a verdict", 0, time.Second, 1, provider.Description{Reachable: true,
			Credentials: []provider.Credential{{Verified: provider.VerifiedRejected}}}, nil},
		{"unreachable is not kept", 0, 0, 2, provider.Description{Credentials: []provider.Credential{{Verified: provider.VerifiedUnreachable}}}, nil},
		{"not checked (rate limited, refused) is not kept", 0, 0, 2, provider.Description{Reachable: true,
			Credentials: []provider.Credential{{Verified: provider.VerifiedNotChecked}}}, nil},
		{"an error is not kept", 0, 0, 2, provider.Description{}, errors.New("boom")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, clk := cacheDeps(tc.ttl)
			in := &countingInspector{desc: tc.desc, err: tc.err}
			pr := Provider{Name: "fake", Inspect: in}
			if _, err := d.describe(t.Context(), pr); !errors.Is(err, tc.err) {
				t.Fatal(err)
			}
			clk.t = clk.t.Add(tc.after)
			if _, err := d.describe(t.Context(), pr); !errors.Is(err, tc.err) {
				t.Fatal(err)
			}
			if n, _ := in.counts(); n != tc.wantAsked {
				t.Errorf("Describe asked %d times, want %d", n, tc.wantAsked)
			}
		})
	}
}

// CheckAccess answers are shared per question, in the order asked; an
// answer with an unknown in it, or an error, is not.
func TestInspectCheckAccessSharing(t *testing.T) {
	d, _ := cacheDeps(0)
	in := &countingInspector{}
	pr := Provider{Name: "fake", Inspect: in}
	read, write := auth.Scope{Action: auth.ContentRead}, auth.Scope{Action: auth.ContentWrite}
	for range 3 {
		got, err := d.checkAccess(t.Context(), pr, provider.ScopeOps([]auth.Scope{read, write}))
		if err != nil || got[0].Operation != "content:read" || got[1].Operation != "content:write" {
			t.Fatalf("%v %v", got, err)
		}
	}
	got, _ := d.checkAccess(t.Context(), pr, provider.ScopeOps([]auth.Scope{write, read}))
	if got[0].Operation != "content:write" {
		t.Errorf("answers out of order: %v", got)
	}
	if _, n := in.counts(); n != 2 {
		t.Errorf("CheckAccess asked %d times, want one per question", n)
	}
	// Each caller gets its own copy.
	got[0].Reason = "changed by a caller"
	if again, _ := d.checkAccess(t.Context(), pr, provider.ScopeOps([]auth.Scope{write, read})); again[0].Reason != "" {
		t.Error("a caller changed the shared answer")
	}

	unknown := &countingInspector{access: func(ops []provider.Operation) []provider.Access {
		return []provider.Access{{Operation: ops[0].String(), Reason: "unknown until tried"}}
	}}
	failing := &countingInspector{err: fmt.Errorf("checking: %w", provider.ErrRateLimited)}
	for _, in := range []*countingInspector{unknown, failing} {
		pr := Provider{Name: "fake", Inspect: in}
		d.checkAccess(t.Context(), pr, provider.ScopeOps([]auth.Scope{read}))
		d.checkAccess(t.Context(), pr, provider.ScopeOps([]auth.Scope{read}))
		if _, n := in.counts(); n != 2 {
			t.Errorf("an unsettled answer was shared (%d questions)", n)
		}
	}
}

// However many different questions callers ask, the cache holds at most
// maxInspections answers.
func TestInspectCacheBound(t *testing.T) {
	d, _ := cacheDeps(0)
	pr := Provider{Name: "fake", Inspect: &countingInspector{}}
	for i := range 3 * maxInspections {
		if _, err := d.checkAccess(t.Context(), pr, provider.ScopeOps([]auth.Scope{{Action: auth.ContentRead, Type: fmt.Sprintf("t%d", i)}})); err != nil {
			t.Fatal(err)
		}
	}
	d.inspections.mu.Lock()
	n := len(d.inspections.entries)
	d.inspections.mu.Unlock()
	if n > maxInspections {
		t.Errorf("%d answers kept, bound %d", n, maxInspections)
	}
}

// While a question is being asked, another caller waits for that answer
// instead of asking again (here it gives up when its context ends, without
// asking); a provider that panics leaves nobody waiting.
func TestInspectOneQuestionInFlight(t *testing.T) {
	d, _ := cacheDeps(0)
	in := &countingInspector{block: make(chan struct{}), entered: make(chan struct{})}
	pr := Provider{Name: "fake", Inspect: in}
	ops := provider.ScopeOps([]auth.Scope{{Action: auth.ContentRead}})
	first := make(chan error, 1)
	go func() {
		_, err := d.checkAccess(t.Context(), pr, ops)
		first <- err
	}()
	<-in.entered
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := d.checkAccess(gone, pr, ops); !errors.Is(err, context.Canceled) {
		t.Errorf("the second caller: %v", err)
	}
	close(in.block)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if _, n := in.counts(); n != 1 {
		t.Errorf("asked %d times", n)
	}

	panicky := Provider{Name: "fake", Inspect: &panicInspector{}}
	for range 2 {
		func() {
			defer func() { _ = recover() }()
			d.describe(t.Context(), panicky)
		}()
	}
	if n := panicky.Inspect.(*panicInspector).n; n != 2 {
		t.Errorf("after a panic the question was asked %d times, want 2 (nobody waits on it)", n)
	}
}

type panicInspector struct{ n int }

func (p *panicInspector) Describe(context.Context) (provider.Description, error) {
	p.n++
	panic("provider bug")
}

func (p *panicInspector) CheckAccess(context.Context, []provider.Operation) ([]provider.Access, error) {
	panic("provider bug")
}

// A change to credentials drops every shared answer.
func TestInspectForget(t *testing.T) {
	d, _ := cacheDeps(0)
	in := &countingInspector{desc: okDescription}
	pr := Provider{Name: "fake", Inspect: in}
	d.describe(t.Context(), pr)
	d.inspections.forget()
	d.describe(t.Context(), pr)
	if n, _ := in.counts(); n != 2 {
		t.Errorf("asked %d times", n)
	}
}
