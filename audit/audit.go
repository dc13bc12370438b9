// Package audit keeps keygate's audit journal: an append-only record of
// every content write, every credential operation and every failed
// authentication, with the acting key's id and never a secret. It lives
// in a JSONL file (Log), or in a Postgres table that replicas share
// (Table; docs/audit-postgres.md).
//
// The journal is bounded three ways: every string in a record is capped
// (FieldLimit, so a line never exceeds MaxRecordBytes), refused
// authentications are coalesced into one record per kind and window
// (WriteRefusal), and the file is rotated by size with a fixed number of
// older files kept (Options.MaxBytes, Options.Keep), the table pruned to
// a number of rows (Options.MaxRows).
package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
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

	// DefaultMaxRows is the table's counterpart of MaxBytes x (Keep+1):
	// the file keeps up to 6 x 64 MiB, about 2 million records of 200
	// bytes (docs/audit-postgres.md).
	DefaultMaxRows   = 2_000_000
	DefaultMaxQueued = 4096             // records waiting for the database: at most 16 MiB
	DefaultTimeout   = 10 * time.Second // one statement to the database
)

// Options configure a Log or a Table. Zero values take the defaults.
type Options struct {
	// Redact masks secrets in every string of a record; nil masks every
	// credential-shaped string (auth.NewRedactor).
	Redact func(string) string
	// MaxBytes is the size at which the journal file is rotated.
	MaxBytes int64
	// Keep is how many rotated files are kept (path.1 is the newest).
	Keep int
	// MaxRows bounds the journal table: the oldest rows past it are
	// deleted, in batches. The file ignores it, as the table ignores
	// MaxBytes and Keep.
	MaxRows int64
	// PruneEvery is how many rows a Table inserts between two prunes, so
	// the table passes MaxRows by at most that per replica; default 1 % of
	// MaxRows.
	PruneEvery int64
	// MaxQueued caps the records a Table holds while the database is slow
	// or down. Past it, Write fails and refusals are dropped and counted
	// (Table.Stats).
	MaxQueued int
	// Timeout bounds one statement of a Table: an insert, or one batch of
	// a prune.
	Timeout time.Duration
	// Window is how long identical refusals are merged into one record.
	Window time.Duration
	// MaxPending caps the distinct refusals held in memory; when a new
	// one would pass it, all held refusals are written out.
	MaxPending int
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
	// OnError is told of failures to write refusals in the background,
	// which have no caller to return them to, and of a Table's failed
	// prunes.
	OnError func(error)
}

// Log appends records to the journal file. It is safe for concurrent use.
type Log struct {
	journal
	*journalFile
}

// journalFile is the file a Log writes: the Log's sink.
type journalFile struct {
	path     string
	maxBytes int64
	keep     int

	fileMu sync.Mutex // guards what follows; taken after journal.mu
	f      *os.File
	size   int64 // bytes in f, as far as this process knows
	dirty  bool  // f holds writes not yet synced
	closed bool
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
	jf := &journalFile{path: path, maxBytes: o.MaxBytes, keep: o.Keep, f: f, size: size}
	if jf.maxBytes <= 0 {
		jf.maxBytes = DefaultMaxBytes
	}
	if jf.keep <= 0 {
		jf.keep = DefaultKeep
	}
	l := &Log{journalFile: jf}
	l.journal.start(jf, o)
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

// writeChunk is how much append gathers per write, so a large batch still
// meets the rotation check every so often.
const writeChunk = 64 << 10

// append writes recs as JSON lines and, with durable, syncs them. A record
// that cannot be encoded is left out and reported; so is a chunk that
// cannot be written, and the rest are still tried.
func (l *journalFile) append(recs []Record, durable bool) error {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	var buf bytes.Buffer
	var err error
	for _, r := range recs {
		b, merr := json.Marshal(r)
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
	if buf.Len() > 0 {
		err = errors.Join(err, l.appendLocked(buf.Bytes()))
	}
	if durable && err == nil {
		err = l.syncLocked()
	}
	return err
}

// appendLocked writes b to the journal, rotating it first when it has
// reached maxBytes. A journal that cannot be rotated is not written: it
// would grow without bound.
func (l *journalFile) appendLocked(b []byte) error {
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

func (l *journalFile) syncLocked() error {
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit journal: syncing: %w", err)
	}
	l.dirty = false
	return nil
}

// flush syncs what was written since the last sync.
func (l *journalFile) flush(bool) error {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	if l.closed || !l.dirty {
		return nil
	}
	return l.syncLocked()
}

// follow reopens the journal if another process rotated it, so that this
// one does not go on appending to the rotated file.
func (l *journalFile) follow() error {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	if l.closed {
		return nil
	}
	return l.followLocked()
}

// close syncs and closes the journal.
func (l *journalFile) close() error {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	if l.closed {
		return nil
	}
	var err error
	if l.dirty {
		err = l.syncLocked()
	}
	l.closed = true
	return errors.Join(err, l.f.Close())
}
