// Package audit keeps keygate's audit journal: an append-only JSONL file
// that records every content write, every credential operation and every
// failed authentication, with the acting key's id and never a secret.
//
// The journal is bounded three ways: every string in a record is capped
// (FieldLimit, so a line never exceeds MaxRecordBytes), refused
// authentications are coalesced into one record per kind and window
// (WriteRefusal), and the file is rotated by size with a fixed number of
// older files kept (Options.MaxBytes, Options.Keep).
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/keygate/keygate/auth"
)

// Outcomes of a Record.
const (
	OutcomeOK      = "ok"      // the operation happened
	OutcomeRefused = "refused" // keygate or the provider said no (isError)
	OutcomeError   = "error"   // a fault
	OutcomeAttempt = "attempt" // written before a credential operation runs
	OutcomeDenied  = "denied"  // authentication failed
)

// Record is one line of the journal.
type Record struct {
	Time       time.Time `json:"time"`                // for coalesced refusals, the first
	Principal  string    `json:"principal,omitempty"` // key id of the caller, never its secret
	Provider   string    `json:"provider,omitempty"`
	Tool       string    `json:"tool"`
	Target     string    `json:"target,omitempty"` // type/id, key id, ...
	Outcome    string    `json:"outcome"`
	RotationID string    `json:"rotation_id,omitempty"`
	Detail     string    `json:"detail,omitempty"`
	Remote     string    `json:"remote,omitempty"` // HTTP client host, for failed authentication
	// Count and Last are set on refusals (WriteRefusal): how many identical
	// refusals the record stands for, and when the latest came.
	Count int       `json:"count,omitempty"`
	Last  time.Time `json:"last,omitzero"`
}

// Defaults of Options.
const (
	DefaultMaxBytes   = 64 << 20    // rotate once the journal reaches 64 MiB
	DefaultKeep       = 5           // rotated files kept: audit.jsonl.1 to .5
	DefaultWindow     = time.Minute // refusals coalesced per kind and host
	DefaultMaxPending = 1024        // distinct kinds of refusal held at once
)

// Options configure a Log. Zero values take the defaults.
type Options struct {
	// Redact masks secrets in every string of a record; nil masks every
	// credential-shaped string (auth.NewRedactor).
	Redact func(string) string
	// MaxBytes is the size at which the journal is rotated.
	MaxBytes int64
	// Keep is how many rotated files are kept (path.1 is the newest).
	Keep int
	// Window is how long identical refusals are merged into one record.
	Window time.Duration
	// MaxPending caps the distinct refusals held in memory; when a new
	// one would pass it, all held refusals are written out.
	MaxPending int
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
	// OnError is told of failures to write refusals in the background,
	// which have no caller to return them to.
	OnError func(error)
}

// Log appends records to the journal file. It is safe for concurrent use.
type Log struct {
	path    string
	redact  func(string) string
	now     func() time.Time
	onError func(error)

	maxBytes   int64
	keep       int
	window     time.Duration
	maxPending int

	mu      sync.Mutex
	f       *os.File
	size    int64 // bytes in f, as far as this process knows
	dirty   bool  // f holds writes not yet synced
	closed  bool
	pending map[Record]*refusal // keyed by the record without its times and count
	order   []*refusal          // pending, oldest first

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// Open opens (creating, mode 0600) the journal at path for appending, with
// the default Options and the given redactor (nil: the default one).
func Open(path string, redact func(string) string) (*Log, error) {
	return OpenWith(path, Options{Redact: redact})
}

// OpenWith opens (creating, mode 0600) the journal at path for appending.
// It refuses a journal that others may read or write, and a symlink: the
// journal names every key and target keygate touched.
func OpenWith(path string, o Options) (*Log, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit journal: creating directory: %w", err)
	}
	f, size, err := openJournal(path)
	if err != nil {
		return nil, err
	}
	l := &Log{
		path: path, redact: o.Redact, now: o.Now, onError: o.OnError,
		maxBytes: o.MaxBytes, keep: o.Keep, window: o.Window, maxPending: o.MaxPending,
		f: f, size: size, pending: map[Record]*refusal{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if l.redact == nil {
		l.redact = auth.NewRedactor().Redact
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.onError == nil {
		l.onError = func(error) {}
	}
	if l.maxBytes <= 0 {
		l.maxBytes = DefaultMaxBytes
	}
	if l.keep <= 0 {
		l.keep = DefaultKeep
	}
	if l.window <= 0 {
		l.window = DefaultWindow
	}
	if l.maxPending <= 0 {
		l.maxPending = DefaultMaxPending
	}
	go l.flushLoop(min(l.window, time.Second))
	return l, nil
}

// openJournal opens path for appending after checking that it is a private
// regular file, and returns its size.
func openJournal(path string) (*os.File, int64, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, 0, fmt.Errorf("audit journal %s is a symlink; point --audit-file at a real file", path)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, 0, fmt.Errorf("audit journal %s has mode %v; run chmod 600 on it", path, fi.Mode().Perm())
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("audit journal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("audit journal: %w", err)
	}
	return f, fi.Size(), nil
}

// Path is where the journal is.
func (l *Log) Path() string { return l.path }

// Write appends r as one JSON line and syncs it to disk, so an operation
// that was recorded survives a crash that follows. Strings pass through the
// redactor first, then the field cap.
func (l *Log) Write(r Record) error {
	if r.Time.IsZero() {
		r.Time = l.now().UTC()
	}
	line, err := l.encode(r)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.appendLocked(line); err != nil {
		return err
	}
	return l.syncLocked()
}

// encode cleans r and renders it as one line.
func (l *Log) encode(r Record) ([]byte, error) {
	l.clean(&r)
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("audit journal: encoding record: %w", err)
	}
	return append(b, '\n'), nil
}

// clean redacts and caps every string of r.
func (l *Log) clean(r *Record) {
	for _, s := range []*string{&r.Principal, &r.Provider, &r.Tool, &r.Target, &r.Outcome, &r.RotationID, &r.Detail, &r.Remote} {
		*s = bound(l.redact(*s))
	}
}

// appendLocked writes b to the journal, rotating it first when it has
// reached maxBytes. A journal that cannot be rotated is not written: it
// would grow without bound.
func (l *Log) appendLocked(b []byte) error {
	if l.closed {
		return errors.New("audit journal: closed")
	}
	if l.size >= l.maxBytes {
		if err := l.rotateLocked(); err != nil {
			return fmt.Errorf("audit journal: rotating: %w", err)
		}
	}
	n, err := l.f.Write(b)
	l.size += int64(n)
	if n > 0 {
		l.dirty = true
	}
	if err != nil {
		return fmt.Errorf("audit journal: writing: %w", err)
	}
	return nil
}

func (l *Log) syncLocked() error {
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit journal: syncing: %w", err)
	}
	l.dirty = false
	return nil
}

// Flush writes every refusal still held, whether or not its window has
// closed, and syncs the journal: for a reader that must see them now.
func (l *Log) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	err := l.writeRefusalsLocked(len(l.order))
	if l.dirty {
		err = errors.Join(err, l.syncLocked())
	}
	return err
}

// Close writes the refusals still held, syncs and closes the journal.
func (l *Log) Close() error {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	err := l.writeRefusalsLocked(len(l.order))
	if l.dirty {
		err = errors.Join(err, l.syncLocked())
	}
	l.closed = true
	return errors.Join(err, l.f.Close())
}
