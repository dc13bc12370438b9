package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Filter selects records when reading the journal.
type Filter struct {
	Since time.Time // zero: all; a coalesced record matches if its last refusal is on or after Since
	Tool  string    // "": all
}

func (f Filter) match(r Record) bool {
	if f.Tool != "" && r.Tool != f.Tool {
		return false
	}
	return f.Since.IsZero() || !r.Time.Before(f.Since) || (!r.Last.IsZero() && !r.Last.Before(f.Since))
}

// ReadOptions say what ReadWith reads.
type ReadOptions struct {
	Filter
	// Rotated also reads the rotated files (path.N down to path.1), before
	// the journal itself, so records come oldest first.
	Rotated bool
	// Skipped is told of every line that holds no record. Reading goes on
	// with the next line. Nil: ReadWith returns them, joined, as its error
	// once everything has been read.
	Skipped func(SkippedLine)
}

// SkippedLine is a line of a journal file that holds no record: torn by a
// crash, or not written by keygate.
type SkippedLine struct {
	File   string
	Line   int    // from 1
	Reason string // what is wrong with it
}

func (s SkippedLine) Error() string {
	return fmt.Sprintf("audit journal %s: line %d %s", s.File, s.Line, s.Reason)
}

// maxLine is the longest line the reader keeps in memory. Lines keygate
// writes are under MaxRecordBytes; journals from before the cap held lines
// of a few MB at most. A longer line is skipped (and reported) without
// being held.
var maxLine = 64 << 20 // a variable for tests

// Read calls fn for each record of the journal at path that matches f, in
// the order they were written. Lines that cannot be parsed are skipped and
// returned, joined, as the error once every record has been read.
func Read(path string, f Filter, fn func(Record) error) error {
	return ReadWith(path, ReadOptions{Filter: f}, fn)
}

// ReadWith calls fn for each record that matches o, oldest first. A
// missing journal holds no records. An error from fn stops the reading and
// is returned.
func ReadWith(path string, o ReadOptions, fn func(Record) error) error {
	files := []string{path}
	if o.Rotated {
		rotated, err := rotatedFiles(path)
		if err != nil {
			return err
		}
		files = append(rotated, path)
	}
	var skipped []error
	skip := o.Skipped
	if skip == nil {
		skip = func(s SkippedLine) { skipped = append(skipped, s) }
	}
	for _, name := range files {
		if err := readFile(name, o.Filter, fn, skip); err != nil {
			return err
		}
	}
	return errors.Join(skipped...)
}

// rotatedFiles lists path.N ... path.1 as they exist, oldest (highest N)
// first.
func rotatedFiles(path string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Dir(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	prefix := filepath.Base(path) + "."
	var nums []int
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if n, err := strconv.Atoi(rest); err == nil && n > 0 && strconv.Itoa(n) == rest {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	slices.Reverse(nums)
	out := make([]string, len(nums))
	for i, n := range nums {
		out[i] = RotatedName(path, n)
	}
	return out, nil
}

func readFile(name string, f Filter, fn func(Record) error, skip func(SkippedLine)) error {
	file, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	defer file.Close()
	return scan(name, file, f, fn, skip)
}

func scan(name string, r io.Reader, f Filter, fn func(Record) error, skip func(SkippedLine)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for n := 1; ; n++ {
		line, size, err := readLine(br, buf[:0])
		buf = line
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("audit journal %s: reading line %d: %w", name, n, err)
		}
		if size == 0 && errors.Is(err, io.EOF) {
			return nil
		}
		switch trimmed := bytes.TrimSpace(line); {
		case size > maxLine:
			skip(SkippedLine{File: name, Line: n, Reason: fmt.Sprintf("is %d bytes long, over %d; skipped", size, maxLine)})
		case len(trimmed) == 0:
			// A blank line holds nothing to report.
		default:
			var rec Record
			if jerr := json.Unmarshal(trimmed, &rec); jerr != nil {
				skip(SkippedLine{File: name, Line: n, Reason: "cannot be parsed; skipped"})
			} else if f.match(rec) {
				if ferr := fn(rec); ferr != nil {
					return ferr
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

// readLine reads one line, of any length, into buf and returns it without
// its newline, with the line's full size. Past maxLine it stops keeping
// bytes but goes on counting, to the end of the line. The error is io.EOF
// at the end of the input.
func readLine(br *bufio.Reader, buf []byte) ([]byte, int, error) {
	size := 0
	for {
		chunk, err := br.ReadSlice('\n')
		size += len(chunk)
		if len(buf)+len(chunk) <= maxLine+1 {
			buf = append(buf, chunk...)
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil:
			return buf, size, err
		}
		return bytes.TrimSuffix(buf, []byte("\n")), size - 1, nil
	}
}
