package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
func (l *Log) WriteRefusal(r Record) error {
	now := l.now()
	if r.Time.IsZero() {
		r.Time = now.UTC()
	}
	r.Remote = hostOf(r.Remote)
	r.Count, r.Last = 0, time.Time{}
	l.clean(&r)
	key := r
	key.Time = time.Time{}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("audit journal: closed")
	}
	var err error
	if p, ok := l.pending[key]; ok {
		if now.Sub(p.seen) < l.window {
			p.count++
			p.rec.Last = r.Time
			return nil
		}
		err = l.writeDueLocked(now)
		if l.pending[key] == p { // only with a clock that went back
			err = errors.Join(err, l.writeRefusalsLocked(len(l.order)))
		}
	}
	if len(l.pending) >= l.maxPending {
		err = errors.Join(err, l.writeRefusalsLocked(len(l.order)))
	}
	p := &refusal{key: key, rec: r, seen: now, count: 1}
	l.pending[key] = p
	l.order = append(l.order, p)
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
func (l *Log) flushLoop(tick time.Duration) {
	defer close(l.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if err := l.flushDue(); err != nil {
				l.onError(err)
			}
		}
	}
}

// flushDue writes the refusals whose window has closed by the clock's now,
// and syncs the journal if refusals were written since the last sync. It
// also follows a rotation made by another process, so that this one does
// not go on appending to the rotated file.
func (l *Log) flushDue() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	err := l.followLocked()
	err = errors.Join(err, l.writeDueLocked(l.now()))
	if l.dirty {
		err = errors.Join(err, l.syncLocked())
	}
	return err
}

// writeDueLocked writes the held refusals whose window has closed by now.
// They are held oldest first, so those are a prefix.
func (l *Log) writeDueLocked(now time.Time) error {
	n := 0
	for n < len(l.order) && now.Sub(l.order[n].seen) >= l.window {
		n++
	}
	return l.writeRefusalsLocked(n)
}

// writeChunk is how much writeRefusalsLocked gathers per write, so a large
// batch still meets the rotation check every so often.
const writeChunk = 64 << 10

// writeRefusalsLocked writes out the n oldest refusals held and forgets
// them, whether or not the write succeeds: a journal that cannot be
// written must not make memory grow.
func (l *Log) writeRefusalsLocked(n int) error {
	if n == 0 {
		return nil
	}
	var buf bytes.Buffer
	var err error
	for _, p := range l.order[:n] {
		if l.pending[p.key] == p {
			delete(l.pending, p.key)
		}
		rec := p.rec
		rec.Count = p.count
		if p.count == 1 {
			rec.Last = time.Time{}
		}
		b, merr := json.Marshal(rec)
		if merr != nil {
			err = errors.Join(err, fmt.Errorf("audit journal: encoding record: %w", merr))
			continue
		}
		buf.Write(b)
		buf.WriteByte('\n')
		if buf.Len() >= writeChunk {
			err = errors.Join(err, l.appendLocked(buf.Bytes()))
			buf.Reset()
		}
	}
	l.order = slices.Delete(l.order, 0, n)
	if buf.Len() > 0 {
		err = errors.Join(err, l.appendLocked(buf.Bytes()))
	}
	return err
}
