package audit

import (
	"errors"
	"net"
	"slices"
	"time"
)

// refusal is a refused authentication held in memory, standing for count
// identical ones.
type refusal struct {
	key   Record    // the record without times and count
	rec   Record    // the first, cleaned; Last is the latest
	seen  time.Time // clock reading at the first, for the window
	count int
}

// WriteRefusal records a refused authentication (a bad or missing bearer
// token). Refusals identical in everything but time and client port
// within Options.Window become one record with a count, first and last
// time, written when the window has closed (checked every second, or at
// the next identical refusal) or at Close. They are not synced one by one:
// a flood of them costs no disk flushes and little disk, so they cannot
// crowd out the records of credential operations, which Write syncs. The
// map of refusals held is bounded by Options.MaxPending; a refusal that
// would pass it writes out every one held first.
//
// Remote is kept as a host without its port. The error is that of writing
// refusals out, if this call had to.
func (j *journal) WriteRefusal(r Record) error {
	now := j.now()
	if r.Time.IsZero() {
		r.Time = now.UTC()
	}
	r.Remote = hostOf(r.Remote)
	r.Count, r.Last = 0, time.Time{}
	j.clean(&r)
	key := r
	key.Time = time.Time{}

	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return errors.New("audit journal: closed")
	}
	var err error
	if p, ok := j.pending[key]; ok {
		if now.Sub(p.seen) < j.window {
			p.count++
			p.rec.Last = r.Time
			return nil
		}
		err = j.writeDueLocked(now)
		if j.pending[key] == p { // only with a clock that went back
			err = errors.Join(err, j.writeRefusalsLocked(len(j.order)))
		}
	}
	if len(j.pending) >= j.maxPending {
		err = errors.Join(err, j.writeRefusalsLocked(len(j.order)))
	}
	p := &refusal{key: key, rec: r, seen: now, count: 1}
	j.pending[key] = p
	j.order = append(j.order, p)
	return err
}

// hostOf drops the port from an address; anything else is kept as is.
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// flushLoop writes out, every tick, the refusals whose window has closed,
// and syncs what refusals were written, until Close.
func (j *journal) flushLoop(tick time.Duration) {
	defer close(j.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-t.C:
			if err := j.flushDue(); err != nil {
				j.onError(err)
			}
		}
	}
}

// flushDue writes the refusals whose window has closed by the clock's now,
// and syncs the journal if refusals were written since the last sync. It
// also follows a rotation made by another process, so that this one does
// not go on appending to the rotated file.
func (j *journal) flushDue() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	err := j.sink.follow()
	err = errors.Join(err, j.writeDueLocked(j.now()))
	return errors.Join(err, j.sink.flush(false))
}

// writeDueLocked writes the held refusals whose window has closed by now.
// They are held oldest first, so those are a prefix.
func (j *journal) writeDueLocked(now time.Time) error {
	n := 0
	for n < len(j.order) && now.Sub(j.order[n].seen) >= j.window {
		n++
	}
	return j.writeRefusalsLocked(n)
}

// writeRefusalsLocked writes out the n oldest refusals held and forgets
// them, whether or not the write succeeds: a journal that cannot be
// written must not make memory grow.
func (j *journal) writeRefusalsLocked(n int) error {
	if n == 0 {
		return nil
	}
	recs := make([]Record, 0, n)
	for _, p := range j.order[:n] {
		if j.pending[p.key] == p {
			delete(j.pending, p.key)
		}
		rec := p.rec
		rec.Count = p.count
		if p.count == 1 {
			rec.Last = time.Time{}
		}
		recs = append(recs, rec)
	}
	j.order = slices.Delete(j.order, 0, n)
	return j.sink.append(recs, false)
}
