package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/keygate/keygate/app"
	"github.com/keygate/keygate/config"
)

// ServeCmd serves MCP.
type ServeCmd struct {
	config.Serve
}

func (c *ServeCmd) Run(rt *invocation) (err error) {
	cfg, err := c.config(rt)
	if err != nil {
		return err
	}
	if rt.process {
		tuneGC()
	}
	a, err := app.Build(rt.ctx, cfg, app.Options{Stdin: rt.In, Stdout: rt.Out, Stderr: rt.Err, Version: rt.version, TuneProcess: rt.process})
	if err != nil {
		return err
	}
	defer func() {
		// Closing flushes the audit journal and closes the store.
		if cerr := a.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("serve: shutting down: %w", cerr))
		}
	}()
	return a.Run(rt.ctx)
}

// config validates the settings with the env file's variables.
func (c *ServeCmd) config(rt *invocation) (config.Config, error) {
	env, err := rt.env(c.EnvFile)
	if err != nil {
		return config.Config{}, err
	}
	return c.Config(env)
}

// ServeConfig is the configuration "keygate serve ARGS..." would run with,
// resolved and validated as the command does it (flags, then the
// environment opts.Lookup reads, then the env file, then the defaults).
// Tests build a keygate in process from it.
func ServeConfig(args []string, opts Options) (config.Config, error) {
	var root CLI
	resolver := &envResolver{lookup: opts.Lookup}
	streams := Streams{Out: io.Discard, Err: io.Discard}
	parser, err := newParser(&root, streams, resolver)
	if err != nil {
		return config.Config{}, err
	}
	_, exited, err := parse(parser, append([]string{"serve"}, args...))
	switch {
	case exited != nil:
		return config.Config{}, errors.New("keygate serve printed its help instead of running")
	case err != nil:
		return config.Config{}, err
	}
	return root.Serve.config(&invocation{Streams: streams, resolver: resolver})
}

// gcPercent and memoryLimit tune the collector for a server whose live heap
// is a few MB: Go's default (collect whenever the heap doubles) collects
// thousands of times a second under load. Collecting at five times the live
// heap costs tens of MB under load (bench/README.md, memory) and gives back
// a sixth or more of the CPU per call; the soft limit makes the collector
// work harder before the heap nears it. GOGC and GOMEMLIMIT in the
// environment win.
const (
	gcPercent   = 400
	memoryLimit = 256 << 20
)

func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}
