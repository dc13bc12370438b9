// Package delivery decides where a newly issued secret goes, and puts it
// there: a variable in keygate's env file, a new file in keygate's keys
// directory or beside the env file, the result of the call that asked
// (shown once), or the calling session's memory. Every key keygate issues,
// by credentials_create, by any rotation or by the token CLI, leaves
// through this package, so the rules below hold for all of them.
//
// A caller never writes keygate's own state: variable names are limited to
// the ones an operator gives an issued key (never keygate's own KEYGATE_*
// settings nor a provider's variables), and files are new "*.token" files
// directly in the two directories the README names, never keygate's store,
// journal, audit or rotation files.
package delivery

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// Kind is a kind of destination.
type Kind string

const (
	// Env is a variable in keygate's env file (mode 0600, atomic).
	Env Kind = "env"
	// File is a new file, mode 0600, named by the caller.
	File Kind = "file"
	// KeysDir is the default: a new file <key id>.token in the keys
	// directory.
	KeysDir Kind = "keysdir"
	// Reveal shows the secret once, in the result of the call.
	Reveal Kind = "reveal"
	// Session keeps the secret in the calling session's memory only: the
	// session goes on with it, nothing is written.
	Session Kind = "session"
)

// Spec is a destination. It holds no secret, so it may be journaled.
type Spec struct {
	Kind   Kind   `json:"kind"`
	Target string `json:"target,omitempty"` // variable name, or absolute file path
	// Overwrite lets an Env destination replace the variable: only for
	// the credential keygate itself runs on, which follows its rotation.
	Overwrite bool `json:"overwrite,omitempty"`
}

// Durable reports whether the destination outlives the process: the secret
// is on disk once Put returns.
func (s Spec) Durable() bool { return s.Kind == Env || s.Kind == File || s.Kind == KeysDir }

func (s Spec) String() string {
	switch s.Kind {
	case Env:
		return "env:" + s.Target
	case File:
		return "file:" + s.Target
	case KeysDir:
		return "file:" + filepath.Join(s.Target, "<key id>.token")
	}
	return string(s.Kind)
}

// EnvVar returns the env-file destination for variable name, replacing its
// value: keygate's own credential, which follows its rotation.
func EnvVar(name string) Spec { return Spec{Kind: Env, Target: name, Overwrite: true} }

// Places are where keygate may put secrets.
type Places struct {
	// EnvFile is keygate's env file (absolute), or "" when it has none.
	EnvFile string
	// KeysDir is the keys directory beside the store (absolute).
	KeysDir string
	// AllowSymlink lets keygate write through a symlinked env file (its
	// target is replaced). Off by default: a symlink may point anywhere.
	AllowSymlink bool
}

// Fix is the advice every refused deliver argument carries.
const Fix = `use "env:NAME_TOKEN" (a new variable in the env file), "file:NAME.token" (a new file, mode 0600, in the keys directory or beside the env file) or "reveal" (shown once in the result)`

// reservedPrefixes are the variables keygate itself reads: its own settings
// and every provider's credentials. A delivery must never set them.
var reservedPrefixes = []string{"KEYGATE_", "COSMIC_", "COCKPIT_", "CENCORI_", "AGRENTING_"}

// varSuffixes are the endings of a variable that holds an issued key.
var varSuffixes = []string{"_TOKEN", "_KEY", "_PAT", "_SECRET"}

var (
	varName  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,127}$`) })
	fileName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.token$`) })
)

// CheckVar says why name may not receive an issued key, or nil when it may:
// upper case, ending in _TOKEN, _KEY, _PAT or _SECRET, and none of
// keygate's own or its providers' variables.
func CheckVar(name string) error {
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(strings.ToUpper(name), p) {
			return &provider.FieldError{Field: "deliver", Problem: fmt.Sprintf("%s is one of keygate's own or a provider's variables (%s*), which a delivery may never set", name, p),
				Fix: "name the variable after what the key is for, e.g. env:CI_PUBLISHER_TOKEN"}
		}
	}
	if !varName().MatchString(name) || !hasSuffix(name) {
		return &provider.FieldError{Field: "deliver", Problem: fmt.Sprintf("%q is not a name for an issued key's variable: use capitals, digits and _, ending in _TOKEN, _KEY, _PAT or _SECRET", name),
			Fix: "e.g. env:CI_PUBLISHER_TOKEN"}
	}
	return nil
}

func hasSuffix(name string) bool {
	for _, s := range varSuffixes {
		if strings.HasSuffix(name, s) && len(name) > len(s) {
			return true
		}
	}
	return false
}

// Parse reads a caller's deliver argument. An empty argument is the keys
// directory, the default.
func (p Places) Parse(arg string) (Spec, error) {
	switch {
	case arg == "":
		return p.Default()
	case arg == "reveal":
		return Spec{Kind: Reveal}, nil
	case arg == "session":
		return Spec{Kind: Session}, nil
	case strings.HasPrefix(arg, "env:"):
		name := strings.TrimPrefix(arg, "env:")
		if err := CheckVar(name); err != nil {
			return Spec{}, err
		}
		return Spec{Kind: Env, Target: name}, nil
	case strings.HasPrefix(arg, "file:"):
		path, err := p.checkFile(strings.TrimPrefix(arg, "file:"))
		if err != nil {
			return Spec{}, err
		}
		return Spec{Kind: File, Target: path}, nil
	}
	return Spec{}, &provider.FieldError{Field: "deliver", Problem: fmt.Sprintf("%q is not a delivery", arg), Fix: Fix}
}

// Default is where a new secret goes when the caller names no destination:
// a new 0600 file named after the key in the keys directory. It never
// reveals, and never touches a file the user edits.
func (p Places) Default() (Spec, error) {
	if p.KeysDir == "" {
		return Spec{}, &provider.FieldError{Field: "deliver", Problem: "is required: keygate has no keys directory for new secrets", Fix: Fix}
	}
	return Spec{Kind: KeysDir, Target: p.KeysDir}, nil
}

// checkFile confines a file delivery to a new "*.token" file directly in
// the keys directory or the env file's directory: never a subdirectory,
// where keygate keeps its store, rotation journal and audit files. A
// relative path is taken relative to the keys directory.
func (p Places) checkFile(path string) (string, error) {
	refuse := func(problem string) (string, error) {
		return "", &provider.FieldError{Field: "deliver", Problem: problem,
			Fix: fmt.Sprintf("name a new file such as file:ci.token (it goes in %s) or file:%s", p.KeysDir, p.besideEnv("ci.token"))}
	}
	if path == "" || strings.ContainsAny(path, "\x00\r\n") {
		return refuse("the file path is empty or has control characters")
	}
	if !fileName().MatchString(filepath.Base(path)) {
		return refuse(fmt.Sprintf("%q is not a name for a secret file: it must end in .token and use letters, digits, '.', '_' and '-'", filepath.Base(path)))
	}
	if !filepath.IsAbs(path) {
		if filepath.Base(path) != path {
			return refuse("a relative path may not name a directory")
		}
		path = filepath.Join(p.KeysDir, path)
	}
	path = filepath.Clean(path)
	allowed := p.dirs() // creates the keys directory if need be
	dir, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		return refuse(fmt.Sprintf("the directory %s does not exist", filepath.Dir(path)))
	}
	for _, a := range allowed {
		if real, err := filepath.EvalSymlinks(a); err == nil && real == dir {
			return filepath.Join(a, filepath.Base(path)), nil
		}
	}
	return refuse(fmt.Sprintf("%s is not in keygate's keys directory nor beside its env file, the only places secret files go", path))
}

func (p Places) dirs() []string {
	var out []string
	if p.KeysDir != "" {
		if err := os.MkdirAll(p.KeysDir, 0o700); err == nil {
			out = append(out, p.KeysDir)
		}
	}
	if p.EnvFile != "" {
		out = append(out, filepath.Dir(p.EnvFile))
	}
	return out
}

func (p Places) besideEnv(name string) string {
	if p.EnvFile == "" {
		return name
	}
	return filepath.Join(filepath.Dir(p.EnvFile), name)
}

// Preflight checks, before any key is created, that s can take a secret,
// so a refusal leaves nothing behind.
func (p Places) Preflight(s Spec) error {
	refuse := func(problem, fix string) error {
		return &provider.FieldError{Field: "deliver", Problem: problem, Fix: fix}
	}
	switch s.Kind {
	case Env:
		if p.EnvFile == "" {
			return refuse("no env file is configured", "start keygate with --env-file, or use file:NAME.token or reveal")
		}
		if fi, err := os.Lstat(p.EnvFile); err == nil && fi.Mode()&os.ModeSymlink != 0 && !p.AllowSymlink {
			return refuse("the env file is a symlink, which keygate does not write through", "point --env-file at the real file")
		}
		vars, err := auth.ReadEnvFile(p.EnvFile)
		if err != nil {
			return refuse("the env file cannot be read: "+err.Error(), "fix the env file, or use file:NAME.token")
		}
		if _, exists := vars[s.Target]; exists && !s.Overwrite {
			return refuse(fmt.Sprintf("%s is already set in %s and keygate never overwrites it", s.Target, p.EnvFile), "choose another variable name")
		}
		if err := dirWritable(filepath.Dir(p.EnvFile)); err != nil {
			return refuse("the env file's directory is not writable", "make it writable, or use file:NAME.token")
		}
	case KeysDir:
		if err := os.MkdirAll(s.Target, 0o700); err != nil || dirWritable(s.Target) != nil {
			return refuse(fmt.Sprintf("cannot write into keygate's keys directory %s", s.Target), "make it writable, or pass deliver explicitly")
		}
	case File:
		if _, err := os.Lstat(s.Target); err == nil {
			return refuse(fmt.Sprintf("%s already exists and keygate never overwrites it", s.Target), "choose a new file name")
		}
		if err := dirWritable(filepath.Dir(s.Target)); err != nil {
			return refuse(fmt.Sprintf("cannot write into %s", filepath.Dir(s.Target)), "choose the keys directory or the env file's directory, and make it writable")
		}
	}
	return nil
}

// Put writes secret to s and returns where it went: a keys-directory
// delivery becomes the file it wrote. Reveal and Session write nothing:
// the caller shows the secret or keeps it in the session.
func (p Places) Put(s Spec, keyID string, secret auth.Secret) (Spec, error) {
	switch s.Kind {
	case Env:
		return s, auth.SetEnvVar(p.EnvFile, s.Target, secret.Reveal(), auth.EnvWriteOptions{Overwrite: s.Overwrite, AllowSymlink: p.AllowSymlink})
	case KeysDir:
		s = Spec{Kind: File, Target: filepath.Join(s.Target, keyID+".token")}
		fallthrough
	case File:
		return s, auth.WriteSecretFile(s.Target, secret.Reveal())
	}
	return s, nil
}

// Holds returns what a durable destination holds now ("" when nothing),
// for recovery after a crash. keyID resolves a keys-directory destination.
func (p Places) Holds(s Spec, keyID string) (string, error) {
	switch s.Kind {
	case Env:
		vars, err := auth.ReadEnvFile(p.EnvFile)
		if err != nil {
			return "", fmt.Errorf("env file %s: %w", p.EnvFile, err)
		}
		return vars[s.Target], nil
	case KeysDir:
		if keyID == "" {
			return "", nil
		}
		s.Target = filepath.Join(s.Target, keyID+".token")
		fallthrough
	case File:
		b, err := os.ReadFile(s.Target)
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", s.Target, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", nil
}

// Note tells the user where the secret went, without the secret.
func (p Places) Note(s Spec) string {
	switch s.Kind {
	case Env:
		note := fmt.Sprintf("written to %s as %s (mode 0600)", p.EnvFile, s.Target)
		if v, ok := os.LookupEnv(s.Target); ok && v != "" {
			note += fmt.Sprintf("; note: %s is also set in keygate's environment (e.g. a client config), which wins over the env file at the next start: replace it there or remove it", s.Target)
		}
		return note
	case File, KeysDir:
		return fmt.Sprintf("written to %s (mode 0600)", s.Target)
	case Session:
		return "kept in this session's memory only: the session now acts with it; nothing was written"
	}
	return "shown once in this result as token: store it now, it cannot be shown again"
}

// dirWritable proves a directory takes new files by creating and removing one.
func dirWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".keygate-probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	return errors.Join(f.Close(), os.Remove(name))
}

// sweepLimits bound what Sweep reads: the entries of one directory and the
// size of one file that may hold a token.
const (
	sweepMaxEntries = 10_000
	sweepMaxFile    = 4 << 10
)

// Sweep removes revoked keys' secrets from the places deliveries write: the
// variables of the env file that a delivery may set, and the "*.token"
// files directly in the keys directory and beside the env file, whose value
// is a keygate token of a key for which dead(id) is true. It returns what
// it removed ("env:NAME", "file:PATH"), never a secret. A revoked key no
// longer works; removing it leaves no stale secret for a later reader to
// mistake for a working one.
func (p Places) Sweep(dead func(keyID string) bool) ([]string, error) {
	isDead := func(v string) bool {
		t, _, err := auth.ParseToken(strings.TrimSpace(v))
		return err == nil && dead(t.PublicID)
	}
	var removed []string
	var errs []error
	if p.EnvFile != "" {
		names, err := auth.RemoveEnvVars(p.EnvFile, func(name, value string) bool {
			return CheckVar(name) == nil && isDead(value)
		}, auth.EnvWriteOptions{AllowSymlink: p.AllowSymlink})
		if err != nil {
			errs = append(errs, err)
		}
		for _, n := range names {
			removed = append(removed, "env:"+n)
		}
	}
	var dirs []string
	if p.KeysDir != "" {
		dirs = append(dirs, p.KeysDir)
	}
	if p.EnvFile != "" && filepath.Dir(p.EnvFile) != p.KeysDir {
		dirs = append(dirs, filepath.Dir(p.EnvFile))
	}
	for _, dir := range dirs {
		files, err := sweepDir(dir, isDead)
		if err != nil {
			errs = append(errs, err)
		}
		for _, f := range files {
			removed = append(removed, "file:"+f)
		}
	}
	return removed, errors.Join(errs...)
}

// sweepDir removes the regular "*.token" files directly in dir whose
// content isDead.
func sweepDir(dir string, isDead func(string) bool) ([]string, error) {
	d, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", dir, err)
	}
	defer d.Close()
	entries, err := d.ReadDir(sweepMaxEntries)
	if err != nil && len(entries) == 0 && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !fileName().MatchString(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := readSmall(path)
		if err != nil || !isDead(string(b)) {
			continue
		}
		if err := os.Remove(path); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", path, err))
			continue
		}
		removed = append(removed, path)
	}
	return removed, errors.Join(errs...)
}

// readSmall reads a file that may hold one token, refusing anything larger.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, sweepMaxFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > sweepMaxFile {
		return nil, errors.New("too large to hold a token")
	}
	return b, nil
}
