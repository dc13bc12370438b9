package agrenting

import (
	"testing"

	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
	"github.com/keygate/keygate/provider/internal/providertest"
	"github.com/keygate/keygate/tools"
)

var (
	_ tools.ContentStore = (*Client)(nil)
	_ tools.Inspector    = (*Client)(nil)
)

type env = providertest.Env

// fixture is a client wired to a fresh fake on loopback, both on one
// fake clock.
type fixture struct {
	c    *Client
	fake *agrentingtest.Server
	base string // the API base, .../api/v1
	clk  *providertest.Clock
	logs *providertest.Log
}

// keyEnv configures the demo agent key.
func keyEnv() env { return env{EnvAPIKey: agrentingtest.DemoAgentKey} }

// tokenEnv configures the demo user token acting as the demo agent.
func tokenEnv() env {
	return env{EnvToken: agrentingtest.DemoUserToken, EnvAgentID: agrentingtest.DemoAgentID}
}

func newFixture(t *testing.T, e env, opts ...agrentingtest.Option) *fixture {
	t.Helper()
	clk := providertest.NewClock()
	fake := agrentingtest.New(append([]agrentingtest.Option{agrentingtest.WithClock(clk.Now)}, opts...)...)
	hs := fake.Start()
	t.Cleanup(hs.Close)
	return newFixtureAt(t, e, hs.URL+"/api/v1", fake, clk)
}

func newFixtureAt(t *testing.T, e env, base string, fake *agrentingtest.Server, clk *providertest.Clock) *fixture {
	t.Helper()
	cfg, ok, err := LoadConfig(e.With(EnvAPIURL, base).Get)
	if err != nil || !ok {
		t.Fatalf("LoadConfig: %v %v", ok, err)
	}
	logger, logs := providertest.NewLogger()
	c, err := New(cfg, Options{Now: clk.Now, Sleep: clk.Sleep, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{c: c, fake: fake, base: base, clk: clk, logs: logs}
}

func countTasks(f *fixture) int { return len(f.fake.Tasks()) }
