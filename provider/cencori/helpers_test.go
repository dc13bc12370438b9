package cencori

import (
	"testing"

	"github.com/keygate/keygate/provider/cencori/cencoritest"
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
	fake *cencoritest.Server
	url  string
	clk  *providertest.Clock
	logs *providertest.Log
}

// newFixture serves the memory API, as a deployment where Cencori has it
// enabled does; newGatedFixture is production's default.
func newFixture(t *testing.T, key string, opts ...cencoritest.Option) *fixture {
	t.Helper()
	return newGatedFixture(t, key, append([]cencoritest.Option{cencoritest.WithMemoryEnabled()}, opts...)...)
}

func newGatedFixture(t *testing.T, key string, opts ...cencoritest.Option) *fixture {
	t.Helper()
	clk := providertest.NewClock()
	fake := cencoritest.New(append([]cencoritest.Option{cencoritest.WithClock(clk.Now)}, opts...)...)
	hs := fake.Start()
	t.Cleanup(hs.Close)
	return newFixtureAt(t, key, hs.URL, fake, clk)
}

func newFixtureAt(t *testing.T, key, base string, fake *cencoritest.Server, clk *providertest.Clock) *fixture {
	t.Helper()
	cfg, ok, err := LoadConfig(env{EnvAPIKey: key, EnvAPIURL: base, EnvGatewayURL: base}.Get)
	if err != nil || !ok {
		t.Fatalf("LoadConfig: %v %v", ok, err)
	}
	logger, logs := providertest.NewLogger()
	c, err := New(cfg, Options{Now: clk.Now, Sleep: clk.Sleep, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{c: c, fake: fake, url: base, clk: clk, logs: logs}
}
