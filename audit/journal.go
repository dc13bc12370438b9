package audit

import (
	"errors"
	"sync"
	"time"

	"github.com/keygate/keygate/auth"
)

// sink is where a journal's records go: the journal file (Log) or a
// Postgres table that replicas share (Table). Records reach it cleaned:
// redacted and bounded.
type sink interface {
	// append stores recs, oldest first. With durable, it returns once they
	// would survive a crash (a credential operation's attempt); without
	// (refusals), flush(true) makes them durable later.
	append(recs []Record, durable bool) error
	// flush makes what was appended durable. The background loop passes
	// wait false, and a sink that is already at it may return at once.
	flush(wait bool) error
	// follow catches up with other writers before the background loop
	// writes: the file reopens a journal another process rotated.
	follow() error
	// close flushes and releases the sink; append fails after it.
	close() error
}

// journal is what the file and the table share: cleaning, refusal
// coalescing and the background flush. The file's and the table's own
// state live beside it in Log and Table.
type journal struct {
	sink    sink
	redact  func(string) string
	now     func() time.Time
	onError func(error)

	window     time.Duration
	maxPending int

	mu      sync.Mutex          // guards what follows; taken before the sink's own lock
	closed  bool                //
	pending map[Record]*refusal // keyed by the record without its times and count
	order   []*refusal          // pending, oldest first

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// start fills j from o and s and starts the background flush.
func (j *journal) start(s sink, o Options) {
	*j = journal{
		sink: s, redact: o.Redact, now: o.Now, onError: o.OnError,
		window: o.Window, maxPending: o.MaxPending, pending: map[Record]*refusal{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if j.redact == nil {
		j.redact = auth.NewRedactor().Redact
	}
	if j.now == nil {
		j.now = time.Now
	}
	if j.onError == nil {
		j.onError = func(error) {}
	}
	if j.window <= 0 {
		j.window = DefaultWindow
	}
	if j.maxPending <= 0 {
		j.maxPending = DefaultMaxPending
	}
	go j.flushLoop(min(j.window, time.Second))
}

// Write appends r and returns once it would survive a crash, so an
// operation that was recorded survives a crash that follows. Strings pass
// through the redactor first, then the field cap.
func (j *journal) Write(r Record) error {
	if r.Time.IsZero() {
		r.Time = j.now().UTC()
	}
	j.clean(&r)
	return j.sink.append([]Record{r}, true)
}

// clean redacts and caps every string of r.
func (j *journal) clean(r *Record) {
	for _, s := range r.stringFields() {
		*s = bound(j.redact(*s))
	}
}

// Flush writes every refusal still held, whether or not its window has
// closed, and makes the journal durable: for a reader that must see them
// now.
func (j *journal) Flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	return errors.Join(j.writeRefusalsLocked(len(j.order)), j.sink.flush(true))
}

// Close writes the refusals still held, makes them durable and closes the
// journal.
func (j *journal) Close() error {
	j.stopOnce.Do(func() { close(j.stop) })
	<-j.done
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	err := j.writeRefusalsLocked(len(j.order))
	j.closed = true
	return errors.Join(err, j.sink.close())
}

// stringFields points at every string of r.
func (r *Record) stringFields() []*string {
	return []*string{&r.Principal, &r.Provider, &r.Tool, &r.Target, &r.Outcome, &r.RotationID, &r.Detail, &r.Remote}
}
