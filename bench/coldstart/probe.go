package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/bench/internal/benchkit"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/provider/local"
	"github.com/keygate/keygate/tools"
)

// The probe repeats, in a fresh process, the steps keygate's serve takes
// before it answers initialize over stdio (main.go), timing each. It is a
// diagnostic that tells where a cold start goes; it follows main.go as of
// writing and is not itself a figure of keygate.

const probeEnv = "BENCH_COLDSTART_PROBE_STORE"

type probeTimes struct {
	OpenStore, NewServer, Initialize, Total time.Duration
	Tools                                   int
	// Schemas is compiling the tools' input schemas the way
	// tools.newArgValidator does (one jsonschema.Compiler per tool), timed
	// before NewServer, in a separate launch.
	Schemas time.Duration
}

// probe runs in the child: it opens the store, builds the server and
// answers one initialize in-process.
func probe(store string, schemasOnly bool) (err error) {
	start := time.Now()
	ctx := context.Background()
	var t probeTimes
	redactor := auth.NewRedactor()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := local.Open(ctx, store, local.Options{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	t.OpenStore = time.Since(start)
	deps := &tools.Deps{
		Providers: tools.NewProviders(tools.Provider{Name: "local", Content: s, Ring: credentials.Ring{Provider: "local", Local: true}}),
		Identity:  identity.NewIdentity(s, auth.Credential{}),
		Redactor:  redactor,
		EnvFile:   filepath.Join(filepath.Dir(store), ".env"),
		Logger:    logger,
	}
	if schemasOnly {
		mark := time.Now()
		all := tools.All(deps)
		if err := compileSchemas(all); err != nil {
			return err
		}
		t.Schemas, t.Tools = time.Since(mark), len(all)
		return json.NewEncoder(os.Stdout).Encode(t)
	}
	mark := time.Now()
	srv, _, err := tools.NewServer(deps, tools.Options{Version: "bench"})
	if err != nil {
		return err
	}
	t.NewServer = time.Since(mark)
	mark = time.Now()
	resp := srv.HandleMessage(ctx, json.RawMessage(benchkit.InitializeLine))
	if _, err := json.Marshal(resp); err != nil {
		return err
	}
	t.Initialize = time.Since(mark)
	t.Total = time.Since(start)
	return json.NewEncoder(os.Stdout).Encode(t)
}

// compileSchemas mirrors tools.newArgValidator.
func compileSchemas(all []tools.ServerTool) error {
	for _, t := range all {
		t.Tool.InputSchema.AdditionalProperties = false
		raw, err := json.Marshal(t.Tool.InputSchema)
		if err != nil {
			return err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return err
		}
		c := jsonschema.NewCompiler()
		url := "mem:///keygate/" + t.Tool.Name + ".json"
		if err := c.AddResource(url, doc); err != nil {
			return err
		}
		if _, err := c.Compile(url); err != nil {
			return err
		}
	}
	return nil
}

// runProbes launches the probe n times and returns the median of each phase.
func runProbes(store string, n int) (probeTimes, error) {
	self, err := os.Executable()
	if err != nil {
		return probeTimes{}, err
	}
	var open, build, init, total, schemas []time.Duration
	nTools := 0
	for i := range 2 * n {
		cmd := exec.Command(self)
		cmd.Env = benchkit.CleanEnv(probeEnv + "=" + store)
		if i%2 == 1 {
			cmd.Env = append(cmd.Env, probeEnv+"_SCHEMAS=1")
		}
		out, err := cmd.Output()
		if err != nil {
			return probeTimes{}, fmt.Errorf("probe: %w", err)
		}
		var t probeTimes
		if err := json.Unmarshal(out, &t); err != nil {
			return probeTimes{}, fmt.Errorf("probe output %q: %w", out, err)
		}
		if i%2 == 1 {
			schemas = append(schemas, t.Schemas)
			nTools = t.Tools
			continue
		}
		open, build, init, total = append(open, t.OpenStore), append(build, t.NewServer), append(init, t.Initialize), append(total, t.Total)
	}
	return probeTimes{OpenStore: benchkit.MedianDuration(open), NewServer: benchkit.MedianDuration(build),
		Initialize: benchkit.MedianDuration(init), Total: benchkit.MedianDuration(total), Schemas: benchkit.MedianDuration(schemas), Tools: nTools}, nil
}
