// Package cli is keygate's command tree: serve (the default), token
// create|list|revoke, audit, init, doctor and version. Flags, their
// KEYGATE_* variables and the help come from struct tags (config.Common and
// config.Serve for the settings), parsed with github.com/alecthomas/kong.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/keygate/keygate/config"
)

// CLI is the command tree.
type CLI struct {
	Serve   ServeCmd   `cmd:"" default:"withargs" help:"Serve MCP over stdio (the default) or streamable HTTP."`
	Token   TokenCmd   `cmd:"" help:"Create, list and revoke keygate tokens in the local store."`
	Audit   AuditCmd   `cmd:"" help:"Print the audit journal, oldest first."`
	Init    InitCmd    `cmd:"" help:"Add keygate to an MCP client's configuration (Claude Desktop, Claude Code, Cursor, VS Code)."`
	Doctor  DoctorCmd  `cmd:"" help:"Check the configuration, the store, keygate's token and the providers, changing nothing."`
	Version VersionCmd `cmd:"" help:"Print keygate's version."`
}

const description = `keygate gives AI agents scoped access to content APIs and their keys, over MCP.

Settings come from flags, then the process environment, then the env file (--env-file), then the defaults; an empty variable counts as unset. Every flag has a KEYGATE_* twin, shown beside it.`

// Streams are the standard streams a command reads and writes.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// Options adapt the command tree to where it runs.
type Options struct {
	Version string
	// Lookup reads the process environment; nil means os.LookupEnv.
	Lookup func(name string) (string, bool)
	// Process is true in a keygate process of its own, whose runtime
	// settings (collector, processors) keygate may tune; false when tests
	// run commands inside the test binary.
	Process bool
}

// shutdownGrace is how long work in flight may take to finish or roll back
// after SIGTERM or Ctrl-C (docs/SECURITY.md row 43). HTTP's own drain is 10 s.
const shutdownGrace = 15 * time.Second

// Main runs keygate as a process: os.Args, the standard streams, and
// SIGTERM or Ctrl-C ending the command. It returns the exit code.
func Main(version string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The signal gives the calls in flight a deadline. Later signals
		// are absorbed until then: a client that closes stdin and then
		// sends SIGTERM must not cut a rotation short.
		<-ctx.Done()
		time.AfterFunc(shutdownGrace, func() {
			fmt.Fprintf(os.Stderr, "keygate: work still in flight %s after the signal; exiting\n", shutdownGrace)
			os.Exit(1)
		})
	}()
	return Run(ctx, os.Args[1:], Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, Options{Version: version, Process: true})
}

// exitCode is how kong ends a parse early (after printing help): parse
// recovers it.
type exitCode int

// parse parses args. exited is set when kong ended the parse itself, with
// the code to exit with.
func parse(parser *kong.Kong, args []string) (kctx *kong.Context, exited *int, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(exitCode)
			if !ok {
				panic(r)
			}
			code := int(c)
			exited = &code
		}
	}()
	kctx, err = parser.Parse(args)
	return kctx, nil, err
}

// Run parses args and runs the command. It returns the exit code: 0, or 1
// after printing the error to streams.Err.
func Run(ctx context.Context, args []string, streams Streams, opts Options) int {
	resolver := &envResolver{lookup: opts.Lookup}
	parser, err := newParser(&CLI{}, streams, resolver)
	if err != nil {
		fmt.Fprintln(streams.Err, "keygate:", err)
		return 1
	}
	if len(args) > 0 && args[0] == "help" {
		// "keygate help token" is "keygate token --help".
		args = append(args[1:len(args):len(args)], "--help")
	}
	kctx, exited, err := parse(parser, args)
	if exited != nil {
		return *exited
	}
	if err != nil {
		fmt.Fprintf(streams.Err, "keygate: %v\nRun \"keygate --help\" for the commands and their flags.\n", err)
		return 1
	}
	rt := &invocation{ctx: ctx, Streams: streams, version: versionOf(opts.Version), process: opts.Process, resolver: resolver}
	if err := kctx.Run(rt); err != nil {
		fmt.Fprintln(streams.Err, "keygate:", err)
		return 1
	}
	return 0
}

func newParser(root *CLI, streams Streams, resolver *envResolver) (*kong.Kong, error) {
	return kong.New(root,
		kong.Name("keygate"),
		kong.Description(description),
		kong.Writers(streams.Out, streams.Err),
		kong.Exit(func(code int) { panic(exitCode(code)) }),
		kong.Vars{"default_store": config.DefaultStorePath()},
		kong.Resolvers(resolver),
		kong.TypeMapper(reflect.TypeFor[bool](), boolMapper{}),
		kong.ValueFormatter(helpValue),
		kong.Help(printHelp),
		kong.ConfigureHelp(kong.HelpOptions{WrapUpperBound: 100}),
	)
}

// invocation is what every command's Run receives.
type invocation struct {
	ctx context.Context
	Streams
	version  string
	process  bool
	resolver *envResolver
}

// env is the process environment and the env file at path, whose
// problems are reported now: a file that does not parse, a variable that
// is not a valid value for its flag.
func (rt *invocation) env(path string) (config.Env, error) {
	f, err := rt.resolver.load(path)
	if err != nil {
		return config.Env{}, err
	}
	if f.Warning != "" && !rt.resolver.warned {
		rt.resolver.warned = true
		fmt.Fprintln(rt.Err, "keygate: warning:", f.Warning)
	}
	return config.Env{Lookup: rt.resolver.lookup, File: f.Vars}, errors.Join(rt.resolver.invalid...)
}

// envResolver gives every flag the command line left unset the value of
// its KEYGATE_* variable: from the process environment, else from the env
// file. The env file's own location comes only from the command line or
// the process environment. kong's own env handling is not used: it would
// take an empty variable as set, and quote a bad value in its error.
type envResolver struct {
	lookup  func(string) (string, bool)
	path    string
	loaded  bool
	file    config.EnvFile
	err     error
	invalid []error // variables that are not valid for their flag
	warned  bool
}

func (r *envResolver) Validate(*kong.Application) error { return nil }

func (r *envResolver) Resolve(kctx *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
	name := flag.Tag.Get("envvar")
	if name == "" {
		return nil, nil
	}
	env := config.Env{Lookup: r.lookup}
	if flag.Name != "env-file" {
		// A file that cannot be read is reported by the command (invocation.env).
		f, _ := r.load(r.envFilePath(kctx))
		env.File = f.Vars
	}
	v, _, ok := env.Get(name)
	if !ok {
		return nil, nil
	}
	if flag.IsBool() {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			r.invalid = append(r.invalid, config.Invalid(flag.Name, "must be true or false"))
			return nil, nil
		}
		return b, nil
	}
	return v, nil
}

// envFilePath is --env-file as given on the command line, else
// KEYGATE_ENV_FILE from the process environment, else the default.
func (r *envResolver) envFilePath(kctx *kong.Context) string {
	for _, f := range kctx.Flags() {
		if f.Name != "env-file" {
			continue
		}
		for _, p := range kctx.Path {
			if p.Flag == f && !p.Resolved {
				return fmt.Sprint(kctx.FlagValue(f))
			}
		}
		if v, ok := (config.Env{Lookup: r.lookup}).Process(f.Tag.Get("envvar")); ok {
			return v
		}
		return f.Default
	}
	return ""
}

// load reads the env file at path once.
func (r *envResolver) load(path string) (config.EnvFile, error) {
	if !r.loaded || r.path != path {
		r.path, r.loaded = path, true
		r.file, r.err = config.ReadEnvFile(path)
	}
	return r.file, r.err
}

// boolMapper parses a switch's value without quoting it in its error.
type boolMapper struct{}

func (boolMapper) IsBool() bool { return true }

func (boolMapper) Decode(ctx *kong.DecodeContext, target reflect.Value) error {
	if ctx.Scan.Peek().Type != kong.FlagValueToken {
		target.SetBool(true)
		return nil
	}
	switch v := ctx.Scan.Pop().Value.(type) {
	case bool:
		target.SetBool(v)
		return nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return errors.New("must be true or false")
		}
		target.SetBool(b)
		return nil
	}
	return errors.New("must be true or false")
}

// versionOf is the version set at build time, else the module version the
// Go toolchain recorded, else "dev".
func versionOf(set string) string {
	if set != "" {
		return set
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

// VersionCmd prints keygate's version.
type VersionCmd struct{}

func (VersionCmd) Run(rt *invocation) error {
	_, err := fmt.Fprintln(rt.Out, "keygate", rt.version)
	return err
}
