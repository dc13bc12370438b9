package config

import (
	"fmt"
	"os"
	"strings"

	"github.com/keygate/keygate/auth"
)

// Env is where a setting comes from when the command line does not give
// it: the process environment first, then the env file. An empty or blank
// variable counts as unset, in either, so a client config can blank a
// setting.
type Env struct {
	// Lookup reads the process environment; nil means os.LookupEnv.
	// Tests give keygate an environment of their own through it.
	Lookup func(name string) (string, bool)
	// File holds the env file's variables.
	File map[string]string
}

// Process returns a variable of the process environment, if set and not
// blank.
func (e Env) Process(name string) (string, bool) {
	lookup := e.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	v, ok := lookup(name)
	if !ok || strings.TrimSpace(v) == "" {
		return "", false
	}
	return v, true
}

// Get returns a variable and where it came from: the process environment
// wins over the env file.
func (e Env) Get(name string) (string, auth.Source, bool) {
	if v, ok := e.Process(name); ok {
		return v, auth.SourceEnv, true
	}
	if v, ok := e.File[name]; ok && strings.TrimSpace(v) != "" {
		return v, auth.SourceEnvFile, true
	}
	return "", "", false
}

// WithFile is e with the env file's variables replaced, as a reload sees
// them.
func (e Env) WithFile(vars map[string]string) Env {
	e.File = vars
	return e
}

// EnvFile is an env file as read at start-up.
type EnvFile struct {
	Vars map[string]string
	// Warning is set when the file is readable by others: it holds
	// credentials. keygate tightens it when it next writes it.
	Warning string
}

// ReadEnvFile reads the env file at path. A missing file, or an empty path,
// has no variables: the env file is optional. Errors name the file and the
// line, never a value.
func ReadEnvFile(path string) (EnvFile, error) {
	vars, err := auth.ReadEnvFile(path)
	if err != nil {
		return EnvFile{}, fmt.Errorf("env file %s: %w", path, err)
	}
	f := EnvFile{Vars: vars}
	if path == "" {
		return f, nil
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		f.Warning = fmt.Sprintf("env file %s has mode %v, readable by others; it holds credentials: run chmod 600 on it", path, fi.Mode().Perm())
	}
	return f, nil
}
