package main

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
	"github.com/keygate/keygate/provider/cencori/cencoritest"
)

func args(providerName string, kv ...any) map[string]any {
	m := map[string]any{"provider": providerName}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func TestCencoriThroughKeygate(t *testing.T) {
	fake := cencoritest.New(cencoritest.WithMemoryEnabled())
	srv := fake.Start()
	defer srv.Close()
	rc := startRemote(t, "CENCORI_API_KEY="+cencoritest.DemoSecretKey, "CENCORI_API_URL="+srv.URL, "CENCORI_GATEWAY_URL="+srv.URL)
	a := func(kv ...any) map[string]any { return args("cencori", kv...) }

	text, _ := rc.ok("auth_whoami", a())
	if !strings.Contains(text, "provider cencori: reachable") || !strings.Contains(text, "csk_…") {
		t.Fatalf("whoami: %s", text)
	}
	rc.ok("auth_check_scopes", a("operations", []any{"content:read:memories", "content:write:memories"}))
	text, _ = rc.ok("content_types", a())
	if !strings.Contains(text, "memories (count unknown)") {
		t.Errorf("content_types: %s", text)
	}
	_, created := rc.ok("content_create", a("type", "memories", "title", "Prefers dark mode", "fields", map[string]any{"content": "The user prefers dark mode in every editor."}))
	id := created["object"].(map[string]any)["id"].(string)
	rc.ok("content_get", a("type", "memories", "id", id))
	rc.ok("content_list", a("type", "memories"))
	text, _ = rc.ok("content_list", a("type", "memories", "filter", map[string]any{"query": "dark mode"}))
	if !strings.Contains(text, id) {
		t.Errorf("semantic search did not find the memory: %s", text)
	}
	rc.fail("content_update", a("type", "memories", "id", id, "title", "x"), "immutable")
	rc.ok("content_delete", a("type", "memories", "id", id, "confirm", true))
	if _, ok := fake.Memory(id); ok {
		t.Error("the memory survived content_delete")
	}
	rc.fail("credentials_rotate", a("credential", "x1", "confirm", true), "dashboard")

	fake.FailNext(401, nil, `{"error":"Invalid API key","code":"invalid_api_key"}`)
	rc.fail("content_list", a("type", "memories"), "rejected")
	fake.FailNext(403, nil, `{"error":"Domain not allowed","code":"domain_not_allowed"}`)
	rc.fail("content_list", a("type", "memories"), "refused the credential")
	fake.FailNext(429, map[string]string{"Retry-After": "90"}, `{"error":"Rate limit exceeded","code":"rate_limit_exceeded"}`)
	rc.fail("content_list", a("type", "memories"), "retry after 1m30s")
	if strings.Contains(rc.stderr.String(), cencoritest.DemoSecretKey) {
		t.Error("the Cencori key reached stderr")
	}
}

func TestCencoriPublishableKeyRefused(t *testing.T) {
	fake := cencoritest.New()
	srv := fake.Start()
	defer srv.Close()
	rc := startRemote(t, "CENCORI_API_KEY="+cencoritest.DemoPublishableKey, "CENCORI_API_URL="+srv.URL, "CENCORI_GATEWAY_URL="+srv.URL)
	text, _ := rc.ok("auth_check_scopes", args("cencori", "operations", []any{"content:read"}))
	if !strings.Contains(text, "denied") || !strings.Contains(strings.ToLower(text), "publishable") {
		t.Errorf("a publishable key must be refused for server-side use: %s", text)
	}
}

func TestAgrentingThroughKeygate(t *testing.T) {
	fake := agrentingtest.New()
	srv := fake.Start()
	defer srv.Close()
	in := newInstance(t)
	for _, kv := range [][2]string{{"AGRENTING_API_KEY", agrentingtest.DemoAgentKey}, {"AGRENTING_API_URL", srv.URL + "/api/v1"}} {
		if err := auth.SetEnvVar(in.envFile, kv[0], kv[1], auth.EnvWriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rc := startRemoteIn(t, in)
	a := func(kv ...any) map[string]any { return args("agrenting", kv...) }

	text, _ := rc.ok("auth_whoami", a())
	if !strings.Contains(text, "provider agrenting: reachable") || !strings.Contains(text, agrentingtest.DemoAgentName) {
		t.Fatalf("whoami: %s", text)
	}
	rc.ok("content_types", a())
	_, task := rc.ok("content_create", a("type", "tasks", "title", "Summarise the release notes", "fields", map[string]any{"capability": "summarize"}))
	taskID := task["object"].(map[string]any)["id"].(string)
	rc.ok("content_get", a("type", "tasks", "id", taskID))
	rc.ok("content_list", a("type", "tasks", "limit", 1))
	rc.fail("content_list", a("type", "artifacts"), "task_id")
	rc.fail("content_delete", a("type", "tasks", "id", taskID, "confirm", true), "")

	// Credentials are live: list, create (admin only, since Agrenting
	// keys cannot be narrowed) and revoke; Agrenting rotates a key only
	// with that key itself, so keygate rotates only its own.
	text, _ = rc.ok("credentials_list", a())
	if !strings.Contains(text, "agrenting key") {
		t.Fatalf("credentials_list: %s", text)
	}
	rc.fail("credentials_create", a("name", "ci", "scopes", []any{"content:read"}, "expires_in_days", 1), "cannot be narrowed")
	_, made := rc.ok("credentials_create", a("name", "ci", "scopes", []any{"admin"}, "expires_in_days", 1))
	ciID := made["key"].(map[string]any)["id"].(string)
	rc.fail("credentials_rotate", a("credential", ciID, "confirm", true), "only with that key itself")
	rc.ok("credentials_revoke", a("credential", ciID, "confirm", true))
	_, again := rc.ok("credentials_revoke", a("credential", ciID, "confirm", true))
	if again["already_revoked"] != true {
		t.Errorf("second revoke: %v", again)
	}

	// Rotating the key keygate itself uses (credential "current", through
	// the documented POST /auth/rotate-key): the platform kills the old key
	// at once, keygate writes the new one to its env file before anything
	// else, and goes on working.
	rc.ok("credentials_rotate", a("credential", "current", "confirm", true))
	vars, err := auth.ReadEnvFile(in.envFile)
	if err != nil {
		t.Fatal(err)
	}
	if next := vars["AGRENTING_API_KEY"]; next == agrentingtest.DemoAgentKey || next == "" {
		t.Fatal("the rotated key did not reach the env file")
	}
	eventually(t, "keygate to work with the rotated key", func() bool {
		isErr, _, _ := rc.call("content_list", a("type", "tasks"))
		return !isErr
	})
	for _, secret := range []string{agrentingtest.DemoAgentKey, vars["AGRENTING_API_KEY"]} {
		if strings.Contains(rc.stderr.String(), secret) {
			t.Error("an Agrenting key reached stderr")
		}
	}
}

// Agrenting documents no endpoint that lists an agent's keys. Where the
// platform has none, credentials_list and revoking by id say so, with the
// reason and the fix, and keygate still rotates its own key.
func TestAgrentingWithoutListEndpoint(t *testing.T) {
	fake := agrentingtest.New(agrentingtest.WithoutCredentialList())
	srv := fake.Start()
	defer srv.Close()
	in := newInstance(t)
	for _, kv := range [][2]string{{"AGRENTING_API_KEY", agrentingtest.DemoAgentKey}, {"AGRENTING_API_URL", srv.URL + "/api/v1"}} {
		if err := auth.SetEnvVar(in.envFile, kv[0], kv[1], auth.EnvWriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rc := startRemoteIn(t, in)
	a := func(kv ...any) map[string]any { return args("agrenting", kv...) }
	text := rc.fail("credentials_list", a(), "documents no endpoint that lists")
	if !strings.Contains(text, "Fix:") || !strings.Contains(text, "dashboard") {
		t.Errorf("credentials_list: %s", text)
	}
	rc.fail("credentials_revoke", a("credential", "cred_demo", "confirm", true), "revoke a key by id")
	rc.fail("credentials_revoke", a("credential", "current", "confirm", true), "cut keygate off")
	rc.ok("credentials_rotate", a("credential", "current", "confirm", true))
	vars, err := auth.ReadEnvFile(in.envFile)
	if err != nil {
		t.Fatal(err)
	}
	next := vars["AGRENTING_API_KEY"]
	if next == agrentingtest.DemoAgentKey || next == "" {
		t.Fatal("the rotated key did not reach the env file")
	}
	rc.ok("content_list", a("type", "tasks"))
	if strings.Contains(rc.stderr.String(), next) || strings.Contains(rc.stderr.String(), agrentingtest.DemoAgentKey) {
		t.Error("an Agrenting key reached stderr")
	}
}
