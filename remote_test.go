package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider/cockpit/cockpittest"
	"github.com/keygate/keygate/provider/cosmic/cosmictest"
)

// remoteClient runs keygate over stdio with a remote provider configured
// through env, the way a client config would.
type remoteClient struct {
	t      *testing.T
	c      *client.Client
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
	rc := &remoteClient{t: t, stderr: &lockedBuffer{}}
	tr := transport.NewStdioWithOptions(binary, cleanEnv(env...), in.args(), transport.WithCommandStderrWriter(rc.stderr))
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	rc.c = client.NewClient(tr)
	t.Cleanup(func() { rc.c.Close() })
	if _, err := rc.c.Initialize(context.Background(), mcp.InitializeRequest{}); err != nil {
		t.Fatalf("initialize: %v\n%s", err, rc.stderr.String())
	}
	return rc
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
	var stderr lockedBuffer
	tr := transport.NewStdioWithOptions(binary, cleanEnv(), in.args(), transport.WithCommandStderrWriter(&stderr))
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	rc := &remoteClient{t: t, c: client.NewClient(tr), stderr: &stderr}
	defer rc.c.Close()
	if _, err := rc.c.Initialize(context.Background(), mcp.InitializeRequest{}); err != nil {
		t.Fatal(err)
	}
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
