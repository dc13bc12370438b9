package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/joho/godotenv"

	"github.com/keygate/keygate/internal/atomicfile"
	"github.com/keygate/keygate/internal/filelock"
)

// Env-file errors. They name the file, the variable and the line, never a
// value: an env file holds secrets.
var (
	ErrVarExists  = errors.New("variable already set")
	ErrEnvSymlink = errors.New("env file is a symlink")
)

// IsEnvName reports whether name can be a variable in an env file: a
// letter or _, then letters, digits and _, at most 128 in all.
func IsEnvName(name string) bool {
	if name == "" || len(name) > 128 || ('0' <= name[0] && name[0] <= '9') {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_':
		default:
			return false
		}
	}
	return true
}

// ReadEnvFile parses an env file with godotenv. A missing file, or an empty
// path, is an empty set of variables: the env file is optional.
func ReadEnvFile(path string) (map[string]string, error) {
	if path == "" {
		return map[string]string{}, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading env file: %w", err)
	}
	return parseEnv(b)
}

// parseEnv wraps godotenv.Parse, whose errors quote the offending text (and
// so possibly a secret), with an error that names only the line.
func parseEnv(b []byte) (map[string]string, error) {
	vars, err := godotenv.Parse(bytes.NewReader(b))
	if err == nil {
		return vars, nil
	}
	// godotenv also ends a line at a bare CR, so look for the bad line
	// the same way, counting blank lines too.
	lines := lineBreak.Split(string(b), -1)
	for i, line := range lines {
		if _, lerr := godotenv.Unmarshal(line); lerr != nil {
			if m := assignment.FindStringSubmatch(line); m != nil {
				return nil, fmt.Errorf("line %d (%s): cannot be parsed; check its quotes", i+1, m[2])
			}
			return nil, fmt.Errorf("line %d: cannot be parsed; expected NAME=value", i+1)
		}
	}
	for i, line := range strings.Split(string(b), "\n") {
		if strings.Contains(strings.TrimSuffix(line, "\r"), "\r") {
			if m := assignment.FindStringSubmatch(line); m != nil {
				return nil, fmt.Errorf("line %d (%s): a carriage return inside the value splits it; remove it", i+1, m[2])
			}
			return nil, fmt.Errorf("line %d: a carriage return inside the line splits it; remove it", i+1)
		}
	}
	// godotenv takes a line without "=" alone as fine and fails on what
	// follows it.
	for i, line := range lines {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") && !assignment.MatchString(line) {
			return nil, fmt.Errorf("line %d: not NAME=value; add the = and a value, or remove the line", i+1)
		}
	}
	return nil, errors.New("cannot be parsed (a quoted value spanning lines is not closed)")
}

// EnvWriteOptions controls SetEnvVar.
type EnvWriteOptions struct {
	// Overwrite replaces a variable that is already set; without it,
	// SetEnvVar refuses with ErrVarExists and changes nothing.
	Overwrite bool
	// AllowSymlink writes through a symlinked env file (replacing the
	// target). Off by default: a symlink may point anywhere.
	AllowSymlink bool
}

// envLockWait bounds how long SetEnvVar waits for another writer of the
// same env file.
const envLockWait = 10 * time.Second

// lockEnvFile serialises read-modify-write cycles on the env file at target,
// between the calls of this process and between processes (a keygate
// serving stdio, one serving HTTP and the token CLI may share one env file),
// so that two writers at once cannot lose one another's variable. The lock
// is an flock on ".<name>.lock" beside the file.
func lockEnvFile(target string) (*filelock.Lock, error) {
	ctx, cancel := context.WithTimeout(context.Background(), envLockWait)
	defer cancel()
	path := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".lock")
	l, err := filelock.Wait(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("locking env file %s against other writers: %w", target, err)
	}
	return l, nil
}

// SetEnvVar sets name=value in the env file at path, creating the file if
// needed. The file is replaced atomically (same-directory temp file, fsync,
// rename, fsync of the directory) with mode 0600, and every other line is
// kept byte for byte: comments, order, quoting, export and CRLF endings. The
// result is parsed back before it is written, so a file keygate could not
// read again is never produced.
func SetEnvVar(path, name, value string, opts EnvWriteOptions) error {
	if !IsEnvName(name) {
		return fmt.Errorf("%q is not a valid variable name", name)
	}
	if value == "" || strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("value for %s is empty or contains a line break or NUL", name)
	}
	target, err := resolveEnvPath(path, opts.AllowSymlink)
	if err != nil {
		return err
	}
	lk, err := lockEnvFile(target)
	if err != nil {
		return err
	}
	defer lk.Release()
	old, err := os.ReadFile(target)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading env file: %w", err)
	}
	before, err := parseEnv(old)
	if err != nil {
		return fmt.Errorf("env file %s: %w", path, err)
	}
	if _, exists := before[name]; exists && !opts.Overwrite {
		return fmt.Errorf("%s in %s: %w", name, path, ErrVarExists)
	}
	updated, err := setLine(old, name, value)
	if err != nil {
		return err
	}
	after, err := parseEnv(updated)
	want := maps.Clone(before)
	want[name] = value
	if err != nil || !maps.Equal(after, want) {
		return fmt.Errorf("env file %s: setting %s would change other variables; edit the file by hand", path, name)
	}
	return writeAtomic(target, updated)
}

// RemoveEnvVars deletes from the env file at path every variable for which
// drop(name, value) is true, under the same lock and with the same atomic
// replace as SetEnvVar, and returns the names it removed. Every line that
// assigns a removed variable goes; every other byte stays. A missing file
// removes nothing.
func RemoveEnvVars(path string, drop func(name, value string) bool, opts EnvWriteOptions) ([]string, error) {
	target, err := resolveEnvPath(path, opts.AllowSymlink)
	if err != nil {
		return nil, err
	}
	lk, err := lockEnvFile(target)
	if err != nil {
		return nil, err
	}
	defer lk.Release()
	old, err := os.ReadFile(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading env file: %w", err)
	}
	before, err := parseEnv(old)
	if err != nil {
		return nil, fmt.Errorf("env file %s: %w", path, err)
	}
	want := maps.Clone(before)
	var removed []string
	for name, value := range before {
		if drop(name, value) {
			delete(want, name)
			removed = append(removed, name)
		}
	}
	if len(removed) == 0 {
		return nil, nil
	}
	var kept [][]byte
	for _, line := range bytes.SplitAfter(old, []byte("\n")) {
		body, _ := splitEOL(string(line))
		if m := assignment.FindStringSubmatch(body); m != nil {
			if _, gone := before[m[2]]; gone {
				if _, stays := want[m[2]]; !stays {
					continue
				}
			}
		}
		kept = append(kept, line)
	}
	updated := bytes.Join(kept, nil)
	after, err := parseEnv(updated)
	if err != nil || !maps.Equal(after, want) {
		return nil, fmt.Errorf("env file %s: removing %s would change other variables; edit the file by hand", path, strings.Join(removed, ", "))
	}
	slices.Sort(removed)
	return removed, writeAtomic(target, updated)
}

func resolveEnvPath(path string, allowSymlink bool) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return path, nil
	}
	if !allowSymlink {
		return "", fmt.Errorf("%s: %w; point keygate at the real file", path, ErrEnvSymlink)
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("resolving env file symlink: %w", err)
	}
	return target, nil
}

// lineBreak ends a line, as godotenv reads it.
var lineBreak = regexp.MustCompile("\r\n|\r|\n")

// assignment matches one NAME=value line: indentation and export, the name,
// the separator, and the rest (value, comment and line ending).
var assignment = regexp.MustCompile(`^(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_.]*)(\s*[=:]\s*)(.*)$`)

// safeValue is what may stand unquoted, or inside any quotes, unchanged.
var safeValue = regexp.MustCompile(`^[A-Za-z0-9_.,:/+=@~-]+$`)

// setLine rewrites the last assignment of name (the one godotenv honours),
// or appends one, leaving every other byte alone.
func setLine(src []byte, name, value string) ([]byte, error) {
	lines := bytes.SplitAfter(src, []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		body, eol := splitEOL(string(lines[i]))
		m := assignment.FindStringSubmatch(body)
		if m == nil || m[2] != name {
			continue
		}
		quote, rest := valueStyle(m[4])
		v, err := quoteValue(value, quote)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		lines[i] = []byte(m[1] + m[2] + m[3] + v + rest + eol)
		return bytes.Join(lines, nil), nil
	}
	eol := "\n"
	if bytes.Contains(src, []byte("\r\n")) {
		eol = "\r\n"
	}
	v, err := quoteValue(value, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	out := bytes.Clone(src)
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, eol...)
	}
	return append(out, name+"="+v+eol...), nil
}

func splitEOL(line string) (body, eol string) {
	switch {
	case strings.HasSuffix(line, "\r\n"):
		return line[:len(line)-2], "\r\n"
	case strings.HasSuffix(line, "\n"):
		return line[:len(line)-1], "\n"
	}
	return line, ""
}

// valueStyle reports how the old value was quoted and what follows it on
// the line (a closing-quote suffix or an inline comment), which is kept.
func valueStyle(v string) (quote byte, rest string) {
	if v != "" && (v[0] == '"' || v[0] == '\'') {
		q := v[0]
		for i := 1; i < len(v); i++ {
			if v[i] == q && v[i-1] != '\\' {
				return q, v[i+1:]
			}
		}
		return q, ""
	}
	// godotenv ends an unquoted value at the last " #" on the line.
	for i := len(v) - 1; i > 0; i-- {
		if v[i] == '#' && (v[i-1] == ' ' || v[i-1] == '\t') {
			j := i - 1
			for j > 0 && (v[j-1] == ' ' || v[j-1] == '\t') {
				j--
			}
			return 0, v[j:]
		}
	}
	return 0, ""
}

// quoteValue writes value in the old style where that reads back exactly,
// and in single quotes (literal in godotenv) where it must be quoted.
func quoteValue(value string, quote byte) (string, error) {
	if safeValue.MatchString(value) {
		if quote == 0 {
			return value, nil
		}
		return string(quote) + value + string(quote), nil
	}
	if strings.ContainsRune(value, '\'') {
		return "", errors.New("value cannot be written safely (it contains a single quote and other special characters)")
	}
	return "'" + value + "'", nil
}

// writeAtomic replaces path with data at mode 0600 (internal/atomicfile).
func writeAtomic(path string, data []byte) error {
	if err := atomicfile.Write(path, data); err != nil {
		return fmt.Errorf("replacing env file: %w", err)
	}
	return nil
}

// WriteSecretFile writes a secret to a new file at mode 0600. It never
// replaces an existing file, and removes its own file if the write fails.
func WriteSecretFile(path, secret string) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating secret file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	if _, err := f.WriteString(secret + "\n"); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing secret file: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("syncing secret file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing secret file: %w", err)
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}
