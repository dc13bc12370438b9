package main

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/provider/cencori/cencoritest"
)

// Production Cencori gates memory (docs/providers/cencori.md, "Memory
// availability"): every tool that needs it says so, with the reason and the
// fix, and auth_whoami reports it while the key itself checks out.
func TestCencoriMemoryGatedEndToEnd(t *testing.T) {
	fake := cencoritest.New()
	srv := fake.Start()
	defer srv.Close()
	rc := startRemote(t, "CENCORI_API_KEY="+cencoritest.DemoSecretKey, "CENCORI_API_URL="+srv.URL, "CENCORI_GATEWAY_URL="+srv.URL)
	a := func(kv ...any) map[string]any { return args("cencori", kv...) }

	text, _ := rc.ok("auth_whoami", a())
	for _, want := range []string{"provider cencori: reachable", "not available on this deployment", "CENCORI_API_URL"} {
		if !strings.Contains(text, want) {
			t.Errorf("whoami lacks %q: %s", want, text)
		}
	}
	const why = "memory API is not available on this deployment"
	rc.fail("content_types", a(), why)
	rc.fail("content_list", a("type", "memories"), why)
	text = rc.fail("content_create", a("type", "memories", "title", "x", "fields", map[string]any{}), why)
	if !strings.Contains(text, "localhost") || !strings.Contains(text, "CENCORI_API_URL") {
		t.Errorf("create: no fix in %s", text)
	}
	text, _ = rc.ok("auth_check_scopes", a("operations", []any{"content:read:memories"}))
	if !strings.Contains(text, "not available") {
		t.Errorf("check_scopes: %s", text)
	}
	if strings.Contains(rc.stderr.String(), cencoritest.DemoSecretKey) {
		t.Error("the Cencori key reached stderr")
	}
}

// The dashboard's agent setup issues cake_ + 32 hex: keygate starts with
// one and uses it.
func TestCencoriAgentKeyFromAgentSetup(t *testing.T) {
	fake := cencoritest.New(cencoritest.WithMemoryEnabled())
	srv := fake.Start()
	defer srv.Close()
	rc := startRemote(t, "CENCORI_API_KEY="+cencoritest.DemoAgentKey, "CENCORI_API_URL="+srv.URL, "CENCORI_GATEWAY_URL="+srv.URL)
	text, _ := rc.ok("auth_whoami", args("cencori"))
	if !strings.Contains(text, "provider cencori: reachable") || !strings.Contains(text, "cake_…") {
		t.Fatalf("whoami: %s", text)
	}
	rc.ok("content_list", args("cencori", "type", "memories"))
	if strings.Contains(rc.stderr.String(), cencoritest.DemoAgentKey) {
		t.Error("the agent key reached stderr")
	}
}
