package app_test

// Each remote provider through a whole keygate over stdio, against the
// provider's fake, configured the way a client config would do it.

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
	"github.com/keygate/keygate/provider/cencori/cencoritest"
	"github.com/keygate/keygate/provider/cockpit/cockpittest"
	"github.com/keygate/keygate/provider/cosmic/cosmictest"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

// remoteClient runs keygate over stdio with a remote provider configured
// through env, the way a client config would.
type remoteClient struct {
	t      *testing.T
	c      *client.Client
	server *stdioServer
	stderr *lockedBuffer
}

func startRemote(t *testing.T, env ...string) *remoteClient {
	t.Helper()
	return startRemoteIn(t, newInstance(t), env...)
}

// startRemoteIn is startRemote on an instance whose env file the test has
// filled already.
func startRemoteIn(t *testing.T, in instance, env ...string) *remoteClient {
	t.Helper()
	c, s := connect(t, in, env)
	return &remoteClient{t: t, c: c, server: s, stderr: s.stderr}
}

// call returns the result as text plus decoded structured content.
func (rc *remoteClient) call(name string, args map[string]any) (bool, string, map[string]any) {
	rc.t.Helper()
	r := callTool(rc.t, rc.c, name, args)
	var text strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			text.WriteString(tc.Text)
		}
	}
	var m map[string]any
	b, _ := json.Marshal(r.StructuredContent)
	_ = json.Unmarshal(b, &m)
	return r.IsError, text.String(), m
}

func (rc *remoteClient) ok(name string, args map[string]any) (string, map[string]any) {
	rc.t.Helper()
	isErr, text, m := rc.call(name, args)
	if isErr {
		rc.t.Fatalf("%s %v: %s", name, args, text)
	}
	return text, m
}

func (rc *remoteClient) fail(name string, args map[string]any, contains string) string {
	rc.t.Helper()
	isErr, text, _ := rc.call(name, args)
	if !isErr || !strings.Contains(text, contains) {
		rc.t.Fatalf("%s %v: want an error containing %q, got %v: %s", name, args, contains, isErr, text)
	}
	return text
}

func TestCosmicThroughKeygate(t *testing.T) {
	t.Parallel()
	fake := cosmictest.New()
	srv := fake.Start()
	defer srv.Close()
	rc := startRemote(t,
		"COSMIC_BUCKET_SLUG="+fake.Bucket(), "COSMIC_READ_KEY="+fake.ReadKey(), "COSMIC_WRITE_KEY="+fake.WriteKey(),
		"COSMIC_PAT="+fake.PAT(), "COSMIC_AGENT_KEY="+fake.AgentKey(),
		"COSMIC_API_URL="+fake.APIURL(), "COSMIC_DAPI_URL="+fake.DAPIURL())
	p := map[string]any{"provider": "cosmic"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{"provider": "cosmic"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}

	text, who := rc.ok("auth_whoami", p)
	up := who["upstream"].([]any)
	if len(up) != 1 || !strings.Contains(text, "provider cosmic: reachable") || !strings.Contains(text, "COSMIC_WRITE_KEY") {
		t.Fatalf("whoami: %s", text)
	}
	text, _ = rc.ok("auth_whoami", nil) // without provider: every provider is summarised
	if !strings.Contains(text, "provider cosmic") {
		t.Errorf("whoami without provider leaves cosmic out: %s", text)
	}
	text, _ = rc.ok("auth_check_scopes", with("operations", []any{"content:read", "content:write:posts"}))
	if strings.Contains(text, "denied") {
		t.Errorf("check_scopes with read and write keys: %s", text)
	}
	text, _ = rc.ok("content_types", p)
	if !strings.Contains(text, "posts") {
		t.Errorf("content_types: %s", text)
	}
	text, list := rc.ok("content_list", with("type", "posts", "filter", map[string]any{"status": "published"}, "limit", 2))
	if list["count"] != 2.0 || list["next_cursor"] == nil {
		t.Fatalf("content_list: %s", text)
	}
	rc.ok("content_list", with("type", "posts", "filter", map[string]any{"status": "published"}, "limit", 2, "cursor", list["next_cursor"]))
	rc.ok("content_list", with("type", "posts", "filter", map[string]any{"fields.views": map[string]any{"$gt": 100}}))
	rc.ok("content_get", with("type", "posts", "slug", "hello-world"))
	_, created := rc.ok("content_create", with("type", "posts", "title", "From keygate", "fields", map[string]any{"body": "hi", "author": "ada"}))
	id := created["object"].(map[string]any)["id"].(string)
	if _, ok := fake.Object(id); !ok {
		t.Fatal("the fake holds no created object")
	}
	rc.ok("content_update", with("type", "posts", "id", id, "fields", map[string]any{"author": "", "views": 1}))
	if stored, _ := fake.Object(id); stored.Metadata["body"] != "hi" || stored.Metadata["author"] != "" {
		t.Errorf("content_update did not merge: %v", stored.Metadata)
	}
	rc.fail("content_update", with("type", "posts", "id", id, "fields", map[string]any{"author": nil}), "cannot remove")
	rc.fail("content_update", with("type", "posts", "id", id, "title", "x", "expected_version", 1), "expected_version")
	rc.ok("content_delete", with("type", "posts", "id", id, "confirm", true))
	if _, ok := fake.Object(id); ok {
		t.Error("the object survived content_delete")
	}
	rc.fail("content_get", with("type", "posts", "id", id), "no posts object")
	rc.fail("content_list", with("type", "nope"), "does not exist")

	text, _ = rc.ok("credentials_list", p)
	if !strings.Contains(text, "Cosmic") && !strings.Contains(text, "COSMIC") {
		t.Errorf("credentials_list: %s", text)
	}
	rc.fail("credentials_rotate", with("credential", "current", "confirm", true), "Bucket Settings")

	// Error statuses become results the model can act on.
	fake.FailNext(401, nil, `{"status":401,"message":"Invalid read_key"}`)
	rc.fail("content_get", with("type", "posts", "slug", "hello-world"), "rejected")
	fake.FailNext(429, map[string]string{"Retry-After": "120"}, `{"status":429,"message":"Too many requests"}`)
	rc.fail("content_get", with("type", "posts", "slug", "hello-world"), "retry after 2m0s")
	fake.FailNext(500, nil, `<html>oops</html>`)
	fake.FailNext(500, nil, `<html>oops</html>`)
	fake.FailNext(500, nil, `<html>oops</html>`)
	rc.fail("content_get", with("type", "posts", "slug", "hello-world"), "could not be reached or failed")

	// Key-shaped strings and keygate's own upstream keys planted in
	// content and in error bodies never reach the client.
	canaries := []string{fake.ReadKey(), fake.WriteKey(), fake.PAT(), "csk_" + strings.Repeat("ab", 24)}
	planted := fake.PutObject(cosmictest.Object{Type: "posts", Slug: "leaky", Title: "Leaky " + fake.PAT(), Status: "published",
		Metadata: map[string]any{"body": "keys: " + strings.Join(canaries, " ")}})
	var outputs []string
	for _, args := range []map[string]any{
		with("type", "posts", "id", planted.ID),
		with("type", "posts", "fields", []any{"title", "fields.body"}),
	} {
		name := "content_get"
		if _, ok := args["id"]; !ok {
			name = "content_list"
		}
		_, text, m := rc.call(name, args)
		b, _ := json.Marshal(m)
		outputs = append(outputs, text, string(b))
	}
	fake.FailNext(403, nil, `{"status":403,"message":"write key `+fake.WriteKey()+` lacks access"}`)
	_, text, _ = rc.call("content_delete", with("type", "posts", "id", planted.ID, "confirm", true))
	outputs = append(outputs, text, rc.stderr.String())
	all := strings.Join(outputs, "\n")
	for _, c := range canaries {
		if strings.Contains(all, c) {
			t.Errorf("canary %s…%s leaked", c[:4], c[len(c)-4:])
		}
	}
	if !strings.Contains(all, "[REDACTED") {
		t.Error("nothing was redacted: the canaries never reached an output")
	}
}

func TestCockpitThroughKeygate(t *testing.T) {
	t.Parallel()
	fake := cockpittest.New()
	srv := fake.Start()
	defer srv.Close()
	rc := startRemote(t, "COCKPIT_URL="+fake.URL(), "COCKPIT_API_KEY="+cockpittest.DemoRWKey, "COCKPIT_MODELS=posts,authors,pages")
	with := func(kv ...any) map[string]any {
		m := map[string]any{"provider": "cockpit"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	text, _ := rc.ok("auth_whoami", with())
	if !strings.Contains(text, "provider cockpit: reachable") || !strings.Contains(text, "API-…") {
		t.Fatalf("whoami: %s", text)
	}
	text, _ = rc.ok("auth_check_scopes", with("operations", []any{"content:read:posts", "content:write:posts"}))
	if !strings.Contains(text, "content:read:posts: allowed") || !strings.Contains(text, "content:write:posts: denied") {
		t.Errorf("check_scopes must allow the read and fail closed on the unprovable write: %s", text)
	}
	// A tool is asked about by what it does upstream: the editor key may
	// update (read and update permissions), whatever create would need.
	text, _ = rc.ok("auth_check_scopes", with("tool", "content_update"))
	if !strings.Contains(text, "tool content_update: allowed") {
		t.Errorf("check_scopes for content_update with an editor key: %s", text)
	}
	rc.ok("content_types", with())
	_, list := rc.ok("content_list", with("type", "posts", "limit", 2, "sort", "title"))
	if list["total"] != 4.0 || list["next_cursor"] == nil {
		t.Fatalf("list: %v", list)
	}
	rc.ok("content_get", with("type", "posts", "slug", "hello-world"))
	rc.fail("content_get", with("type", "pages", "slug", "about"), "slug")
	rc.fail("content_create", with("type", "posts", "title", "Draft", "fields", map[string]any{"body": "x"}), "status")
	_, created := rc.ok("content_create", with("type", "posts", "title", "From keygate", "status", "published", "fields", map[string]any{"body": "x", "views": 1}))
	id := created["object"].(map[string]any)["id"].(string)
	_, updated := rc.ok("content_update", with("type", "posts", "id", id, "fields", map[string]any{"views": 2}))
	if get := updated["object"].(map[string]any)["fields"].(map[string]any)["body"]; get != "x" {
		t.Errorf("update did not read back the whole item: %v", updated)
	}
	// Cockpit answers 200 to an update or delete of a missing id; keygate
	// must not claim the change.
	rc.fail("content_update", with("type", "posts", "id", "6b00000000000000000000ff", "fields", map[string]any{"views": 2}), "no posts object")
	rc.fail("content_delete", with("type", "posts", "id", "6b00000000000000000000ff", "confirm", true), "no posts object")
	rc.ok("content_delete", with("type", "posts", "id", id, "confirm", true))
	if _, ok := fake.Item("posts", id); ok {
		t.Error("the item survived content_delete")
	}
	rc.fail("credentials_revoke", with("credential", "current", "confirm", true), "has no key-management API")

	fake.FailNext(412, nil, `{"error":"Authentication failed"}`)
	rc.fail("content_list", with("type", "posts"), "rejected")
	fake.SetPermission("editor", "content/posts/delete", false)
	rc.fail("content_delete", with("type", "posts", "id", "6b0000000000000000000001", "confirm", true), "refused")
	if strings.Contains(rc.stderr.String(), cockpittest.DemoRWKey) {
		t.Error("the Cockpit key reached stderr")
	}
}

// TestCosmicWriteKeyOnly: a setup with a write key and no read key can
// create (POST needs only the write key); update, which must check the
// object's type with a read first, says to set the read key.
func TestCosmicWriteKeyOnly(t *testing.T) {
	t.Parallel()
	fake := cosmictest.New()
	srv := fake.Start()
	defer srv.Close()
	rc := startRemote(t, "COSMIC_BUCKET_SLUG="+fake.Bucket(), "COSMIC_WRITE_KEY="+fake.WriteKey(),
		"COSMIC_API_URL="+fake.APIURL(), "COSMIC_DAPI_URL="+fake.DAPIURL())
	with := func(kv ...any) map[string]any {
		m := map[string]any{"provider": "cosmic"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	_, created := rc.ok("content_create", with("type", "posts", "title", "Write only", "fields", map[string]any{"body": "hi"}))
	id := created["object"].(map[string]any)["id"].(string)
	if _, ok := fake.Object(id); !ok {
		t.Fatal("the fake holds no created object")
	}
	rc.fail("content_update", with("type", "posts", "id", id, "title", "x"), "COSMIC_READ_KEY")
}

// TestCosmicKeyRotatedByHand rotates the bucket keys "in the dashboard"
// (the fake) and then in the env file: keygate follows without a restart.
func TestCosmicKeyRotatedByHand(t *testing.T) {
	t.Parallel()
	fake := cosmictest.New()
	srv := fake.Start()
	defer srv.Close()
	in := newInstance(t)
	for _, kv := range [][2]string{{"COSMIC_BUCKET_SLUG", fake.Bucket()}, {"COSMIC_READ_KEY", fake.ReadKey()}, {"COSMIC_WRITE_KEY", fake.WriteKey()},
		{"COSMIC_API_URL", fake.APIURL()}, {"COSMIC_DAPI_URL", fake.DAPIURL()}} {
		if err := auth.SetEnvVar(in.envFile, kv[0], kv[1], auth.EnvWriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rc := startRemoteIn(t, in)
	stderr := rc.stderr
	// Changes after this are seen.
	<-rc.server.app.Watching()
	list := map[string]any{"provider": "cosmic", "type": "posts"}
	rc.ok("content_list", list)

	newRead, newWrite := "rk4RotatedReadKeyForTheFakeCosmicServer000000000000", "wk4RotatedWriteKeyForTheFakeCosmicServer00000000000"
	fake.SetKeys(newRead, newWrite)
	rc.fail("content_list", list, "rejected")
	for _, kv := range [][2]string{{"COSMIC_READ_KEY", newRead}, {"COSMIC_WRITE_KEY", newWrite}} {
		if err := auth.SetEnvVar(in.envFile, kv[0], kv[1], auth.EnvWriteOptions{Overwrite: true}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "keygate to use the rotated keys", func() bool {
		isErr, _, _ := rc.call("content_list", list)
		return !isErr
	})
	if !strings.Contains(stderr.String(), "reloaded provider credentials") {
		t.Errorf("the reload was not logged:\n%s", stderr.String())
	}
	for _, k := range []string{newRead, newWrite, fake.PAT()} {
		if strings.Contains(stderr.String(), k) {
			t.Error("a key reached stderr")
		}
	}
}

func args(providerName string, kv ...any) map[string]any {
	m := map[string]any{"provider": providerName}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func TestCencoriThroughKeygate(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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

// Production Cencori gates memory (docs/providers/cencori.md, "Memory
// availability"): every tool that needs it says so, with the reason and the
// fix, and auth_whoami reports it while the key itself checks out.
func TestCencoriMemoryGatedEndToEnd(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
