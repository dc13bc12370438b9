// Package audit keeps keygate's audit journal: an append-only JSONL file
// that records every content write, every credential operation and every
// failed authentication, with the acting key's id and never a secret.
package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	Time       time.Time `json:"time"`
	Principal  string    `json:"principal,omitempty"` // key id of the caller, never its secret
	Provider   string    `json:"provider,omitempty"`
	Tool       string    `json:"tool"`
	Target     string    `json:"target,omitempty"` // type/id, key id, ...
	Outcome    string    `json:"outcome"`
	RotationID string    `json:"rotation_id,omitempty"`
	Detail     string    `json:"detail,omitempty"`
	Remote     string    `json:"remote,omitempty"` // HTTP client address, for failed authentication
}

// Log appends records to the journal file. It is safe for concurrent use.
type Log struct {
	mu     sync.Mutex
	f      *os.File
	path   string
	redact func(string) string
	now    func() time.Time
}

// Open opens (creating, mode 0600) the journal at path for appending. It
// refuses a journal that others may read or write, and a symlink: the
// journal names every key and target keygate touched.
func Open(path string, redact func(string) string) (*Log, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit journal: creating directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("audit journal %s is a symlink; point --audit-file at a real file", path)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("audit journal %s has mode %v; run chmod 600 on it", path, fi.Mode().Perm())
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	if redact == nil {
		redact = func(s string) string { return s }
	}
	return &Log{f: f, path: path, redact: redact, now: time.Now}, nil
}

// Path is where the journal is.
func (l *Log) Path() string { return l.path }

// Write appends r as one JSON line and syncs it to disk, so an operation
// that was recorded survives a crash that follows. Strings pass through the
// redactor first.
func (l *Log) Write(r Record) error {
	if r.Time.IsZero() {
		r.Time = l.now().UTC()
	}
	r.Target, r.Detail = l.redact(r.Target), l.redact(r.Detail)
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("audit journal: encoding record: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("audit journal: writing: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit journal: syncing: %w", err)
	}
	return nil
}

// Close closes the journal.
func (l *Log) Close() error { return l.f.Close() }

// Filter selects records when reading the journal.
type Filter struct {
	Since time.Time // zero: all
	Tool  string    // "": all
}

// Read calls fn for each record of the journal at path that matches f, in
// the order they were written. A line that cannot be parsed (a crash in the
// middle of a write) is reported as an error naming its line number.
func Read(path string, f Filter, fn func(Record) error) error {
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	defer file.Close()
	return scan(file, f, fn)
}

func scan(r io.Reader, f Filter, fn func(Record) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return fmt.Errorf("audit journal: line %d cannot be parsed", n)
		}
		if (!f.Since.IsZero() && rec.Time.Before(f.Since)) || (f.Tool != "" && rec.Tool != f.Tool) {
			continue
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("audit journal: reading: %w", err)
	}
	return nil
}
