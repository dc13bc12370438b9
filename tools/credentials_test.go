package tools

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
)

func TestWhoami(t *testing.T) {
	e := newEnv(t)
	r := mustOK(t, e.call("auth_whoami", nil))
	s := r.Structured
	if s["authenticated"] != true || s["key_id"] != e.adminID || get(s, "credential", "kind") != "keygate_pat" ||
		get(s, "credential", "source") != "env_file" || get(s, "credential", "env_file") != e.envFile || s["days_until_expiry"] != 365.0 {
		t.Errorf("whoami = %v", s)
	}
	if masked := get(s, "credential", "masked").(string); masked != "kg_pat_…"+e.admin[len(e.admin)-4:] {
		t.Errorf("masked = %q", masked)
	}
	mustFail(t, e.call("auth_whoami", map[string]any{"provider": "cosmic"}), "provider", "not configured")

	e.actAs("kg_pat_notarealtoken")
	r = mustOK(t, e.call("auth_whoami", nil))
	if r.Structured["authenticated"] != false || !strings.Contains(r.Text, "invalid token") {
		t.Errorf("whoami with a bad token = %s", r.Text)
	}
}

func TestCheckScopesFailsClosed(t *testing.T) {
	e := newEnv(t)
	reader, _ := e.mint("reader", "content:read:posts")
	e.actAs(reader)
	r := mustOK(t, e.call("auth_check_scopes", map[string]any{"operations": []any{"content:read:posts", "content:read:pages", "content:write"}}))
	checks := get(r.Structured, "checks").([]any)
	want := []bool{true, false, false}
	for i, w := range want {
		if get(checks[i], "allowed") != w {
			t.Errorf("check %d = %v, want allowed=%v", i, checks[i], w)
		}
	}
	if fix := get(checks[2], "fix").(string); !strings.Contains(fix, "content:write") {
		t.Errorf("fix = %q", fix)
	}
	r = mustOK(t, e.call("auth_check_scopes", map[string]any{"tool": "content_list"}))
	if get(r.Structured, "checks", 0, "allowed") != true || !strings.Contains(r.Text, "posts") {
		t.Errorf("tool check = %s", r.Text)
	}
	mustFail(t, e.call("auth_check_scopes", map[string]any{"operations": []any{"content:fly"}}), "operations[0]", "unknown scope")
	mustFail(t, e.call("auth_check_scopes", map[string]any{"tool": "nope"}), "tool", "no tool")

	e.actAs("")
	r = mustOK(t, e.call("auth_check_scopes", map[string]any{"operations": []any{"content:read"}}))
	if get(r.Structured, "checks", 0, "allowed") != false || !strings.Contains(r.Text, "cannot tell") {
		t.Errorf("without a credential = %s", r.Text)
	}
}

func TestAuthenticateForSession(t *testing.T) {
	e := newEnv(t)
	e.actAs("")
	reader, key := e.mint("reader", "content:read")
	mustFail(t, e.call("auth_authenticate", map[string]any{"token": spoil(reader)}), "token", "not a valid keygate token")
	r := mustOK(t, e.call("auth_authenticate", map[string]any{"token": reader}))
	if strings.Contains(r.Text, reader) || r.Structured["key_id"] != key.ID {
		t.Errorf("authenticate = %s", r.Text)
	}
	mustOK(t, e.call("content_list", map[string]any{"type": "posts"}))
	if strings.Contains(readFile(t, e.envFile), reader) {
		t.Error("token written without save")
	}
	if _, _, _, err := e.store.RevokeKey(context.Background(), key.ID); err != nil {
		t.Fatal(err)
	}
	mustFail(t, e.call("auth_authenticate", map[string]any{"token": reader}), "token", "invalid token")
	// The revoked session token stops working on the very next call.
	if _, err := e.callErr("content_list", map[string]any{"type": "posts"}); err == nil {
		t.Error("revoked session token still lists content")
	}
}

func TestCredentialsCreateDeliveries(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	base := map[string]any{"name": "ci", "scopes": []any{"content:read"}, "expires_in_days": 30}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range base {
			m[a] = b
		}
		m[k] = v
		return m
	}

	r := mustOK(t, e.call("credentials_create", with("deliver", "env:CI_TOKEN")))
	vars, err := auth.ReadEnvFile(e.envFile)
	if err != nil {
		t.Fatal(err)
	}
	tok := vars["CI_TOKEN"]
	if !auth.LooksLikeToken(tok) || strings.Contains(r.Text, tok) || strings.Contains(mustJSON(r.raw), tok) {
		t.Fatalf("env delivery: token %q leaked or missing: %s", auth.Mask(tok), r.Text)
	}
	if fi, _ := os.Stat(e.envFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("env file mode %v", fi.Mode().Perm())
	}
	mustFail(t, e.call("credentials_create", with("deliver", "env:CI_TOKEN")), "deliver", "never overwrites")

	// file: deliveries stay beside the env file or in the keys directory.
	mustFail(t, e.call("credentials_create", with("deliver", "file:"+filepath.Join(dir, "ci.token"))), "deliver", "not in keygate's keys directory")
	path := filepath.Join(filepath.Dir(e.envFile), "ci.token")
	mustOK(t, e.call("credentials_create", with("deliver", "file:"+path)))
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file delivery: %v %v", fi, err)
	}
	mustFail(t, e.call("credentials_create", with("deliver", "file:"+path)), "deliver", "already exists")

	r = mustOK(t, e.call("credentials_create", with("deliver", "reveal")))
	shown, _ := r.Structured["token"].(string)
	if !auth.LooksLikeToken(shown) || !strings.Contains(r.Text, shown) {
		t.Fatalf("reveal did not show the token once: %s", r.Text)
	}
	// Shown once: afterwards it is redacted everywhere.
	list := mustOK(t, e.call("credentials_list", nil))
	if strings.Contains(mustJSON(list.raw), shown) {
		t.Error("revealed token appears in a later result")
	}

	mustFail(t, e.call("credentials_create", with("scopes", []any{"content:fly"})), "scopes", "unknown scope")
	mustFail(t, e.call("credentials_create", with("deliver", "smoke-signal")), "deliver", "expected shape")

	// A narrower key cannot grant more than it holds, nor outlive itself.
	limited, _ := e.mint("limited", "content:read", "credentials:write")
	e.actAs(limited)
	mustFail(t, e.call("credentials_create", with("scopes", []any{"content:write"})), "scopes", "cannot grant")
	mustFail(t, e.call("credentials_create", with("expires_in_days", 60)), "expires_in_days", "outlive")
}

func TestRotateOwnCredential(t *testing.T) {
	e := newEnv(t)
	before := readFile(t, e.envFile)
	dry := mustOK(t, e.call("credentials_rotate", map[string]any{"credential": "current", "dry_run": true}))
	if dry.Structured["dry_run"] != true || readFile(t, e.envFile) != before {
		t.Fatalf("dry run changed something: %s", dry.Text)
	}
	mustFail(t, e.call("credentials_rotate", map[string]any{"credential": "current"}), "confirm", "confirm")

	r := mustOK(t, e.call("credentials_rotate", map[string]any{"credential": "current", "confirm": true}))
	if r.Structured["keygate_switched"] != true {
		t.Fatalf("rotate = %s", r.Text)
	}
	vars, _ := auth.ReadEnvFile(e.envFile)
	next := vars[EnvTokenVar]
	if next == e.admin || !auth.LooksLikeToken(next) || strings.Contains(mustJSON(r.raw), next) {
		t.Fatalf("env file not updated, or the new token leaked")
	}
	if _, err := e.store.Verify(context.Background(), e.admin); err == nil {
		t.Error("old key still works after rotation with grace 0")
	}
	// keygate keeps working on the new key, in this same session.
	who := mustOK(t, e.call("auth_whoami", nil))
	if who.Structured["key_id"] == e.adminID || who.Structured["authenticated"] != true {
		t.Errorf("after rotation whoami = %s", who.Text)
	}
	mustOK(t, e.call("content_list", map[string]any{"type": "posts"}))
}

func TestRotateOtherKeyWithGrace(t *testing.T) {
	e := newEnv(t)
	first, key := e.mint("worker", "content:read")
	// Without deliver, another key's new secret goes to a new file in the keys directory.
	r := mustOK(t, e.call("credentials_rotate", map[string]any{"credential": key.ID, "confirm": true, "grace_seconds": 3600}))
	if _, err := e.store.Verify(context.Background(), first); err != nil {
		t.Fatalf("the rotated key stopped working within its hour of grace: %v", err)
	}
	path := strings.TrimPrefix(r.Structured["delivered_to"].(string), "file:")
	if filepath.Dir(path) != e.deps.Credentials.Places.KeysDir || strings.Contains(mustJSON(r.raw), readFile(t, path)) {
		t.Fatalf("default delivery went to %s", path)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", fi.Mode().Perm())
	}
	old, key := e.mint("worker", "content:read")
	r = mustOK(t, e.call("credentials_rotate", map[string]any{"credential": key.ID, "confirm": true, "grace_seconds": 60, "deliver": "env:WORKER_TOKEN"}))
	ctx := context.Background()
	if _, err := e.store.Verify(ctx, old); err != nil {
		t.Fatalf("old key dead during grace: %v (%s)", err, r.Text)
	}
	e.clock.t = e.clock.t.Add(61 * time.Second)
	if _, err := e.store.Verify(ctx, old); err == nil {
		t.Error("old key alive after grace")
	}
	vars, _ := auth.ReadEnvFile(e.envFile)
	p, err := e.store.Verify(ctx, vars["WORKER_TOKEN"])
	if err != nil || p.Name != "worker" || strings.Join(p.Scopes.Strings(), ",") != "content:read" {
		t.Errorf("new key = %+v, %v", p, err)
	}
	mustFail(t, e.call("credentials_rotate", map[string]any{"credential": "zzzzzzzzzzzz", "confirm": true, "deliver": "reveal"}), "credential", "no key")
}

func TestRevokeIsIdempotent(t *testing.T) {
	e := newEnv(t)
	tok, key := e.mint("victim", "content:read")
	mustOK(t, e.call("credentials_revoke", map[string]any{"credential": key.ID, "dry_run": true}))
	if _, err := e.store.Verify(context.Background(), tok); err != nil {
		t.Fatal("dry run revoked the key")
	}
	r := mustOK(t, e.call("credentials_revoke", map[string]any{"credential": key.ID, "confirm": true}))
	if r.Structured["already_revoked"] != false {
		t.Errorf("first revoke = %s", r.Text)
	}
	if _, err := e.store.Verify(context.Background(), tok); err == nil {
		t.Error("revoked key still verifies")
	}
	r = mustOK(t, e.call("credentials_revoke", map[string]any{"credential": key.ID}))
	if r.Structured["already_revoked"] != true {
		t.Errorf("second revoke = %s", r.Text)
	}
}

// elicitor answers confirmation prompts and counts them.
type elicitor struct {
	accept bool
	asked  []string
}

func (el *elicitor) Elicit(_ context.Context, req mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	el.asked = append(el.asked, req.Params.Message)
	action := mcp.ElicitationResponseActionDecline
	if el.accept {
		action = mcp.ElicitationResponseActionAccept
	}
	return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: action, Content: map[string]any{"approve": el.accept}}}, nil
}

func TestDestructiveToolsAskTheUser(t *testing.T) {
	for _, accept := range []bool{true, false} {
		el := &elicitor{accept: accept}
		e := newEnv(t, withElicitation(el))
		_, key := e.mint("victim", "content:read")
		// confirm: true from the model does not bypass the user's answer.
		r := mustOK(t, e.call("credentials_revoke", map[string]any{"credential": key.ID, "confirm": true}))
		if len(el.asked) != 1 || !strings.Contains(el.asked[0], key.ID) {
			t.Fatalf("user asked %v", el.asked)
		}
		k, _ := e.store.GetKey(context.Background(), key.ID)
		if revoked := !k.RevokedAt.IsZero(); revoked != accept {
			t.Errorf("accept=%v: revoked=%v (%s)", accept, revoked, r.Text)
		}
		if !accept && !strings.Contains(r.Text, "cancelled") {
			t.Errorf("decline answer = %s", r.Text)
		}
	}
}

// TestCanariesNeverLeak plants key-shaped secrets in content, arguments and
// errors, and checks that no result, error or log line carries one.
func TestCanariesNeverLeak(t *testing.T) {
	e := newEnv(t)
	cockpit := "API-" + strings.Repeat("ab12", 10)
	cencori := "csk_" + strings.Repeat("0f", 24)
	cosmic := "cos_CANARYcanaryCANARYcanary42"
	other, _ := e.mint("other", "content:read")
	canaries := []string{e.admin, other, cockpit, cencori, cosmic}

	var outputs []string
	record := func(r result, err error) {
		if err != nil {
			outputs = append(outputs, err.Error())
			return
		}
		outputs = append(outputs, mustJSON(r.raw))
	}
	record(e.callErr("content_create", map[string]any{"type": "posts", "title": "Leaky " + cosmic,
		"fields": map[string]any{"body": "keys: " + other + " " + cockpit + " " + cencori, "author": e.admin}}))
	record(e.callErr("content_list", map[string]any{"type": "posts", "fields": []any{"title", "fields.body", "fields.author"}}))
	record(e.callErr("content_get", map[string]any{"type": "posts", "slug": "leaky-" + strings.ToLower(cosmic)}))
	record(e.callErr("content_list", map[string]any{"type": "posts", "filter": map[string]any{"fields.body": other}}))
	record(e.callErr("content_get", map[string]any{"type": "posts", "id": cencori}))
	record(e.callErr("auth_authenticate", map[string]any{"token": other + "x"}))
	record(e.callErr("auth_authenticate", map[string]any{"token": cockpit}))
	record(e.callErr("auth_whoami", nil))
	record(e.callErr("credentials_list", nil))
	record(e.callErr("credentials_create", map[string]any{"name": e.admin, "scopes": []any{"content:read"}, "expires_in_days": 1, "deliver": "env:X"}))
	record(e.callErr("auth_check_scopes", map[string]any{"operations": []any{other}}))
	outputs = append(outputs, e.logs.String())

	all := strings.Join(outputs, "\n")
	for _, c := range canaries {
		if strings.Contains(all, c) {
			t.Errorf("canary %s leaked", auth.Mask(c))
		}
	}
	if !strings.Contains(all, "[REDACTED") {
		t.Error("nothing was redacted: the canaries never reached an output, so this test proves nothing")
	}
}

// Issue 12, finding 6: only a verified secret joins the redactor. A caller
// sending any other string to auth_authenticate cannot make keygate mask
// its own fence lines or trust marker for everyone, nor grow the set of
// values every later redaction pass scans.
func TestOnlyVerifiedSecretsAreRedacted(t *testing.T) {
	e := newEnv(t)
	for _, junk := range []string{"--- end of data ---", "untrusted third-party data", "content_trust"} {
		mustFail(t, e.call("auth_authenticate", map[string]any{"token": junk}), "token", "not a valid keygate token")
		if got := e.redactor.Redact(junk); got != junk {
			t.Errorf("an unverified string was added to the redactor: %q -> %q", junk, got)
		}
	}
	r := mustOK(t, e.call("content_list", map[string]any{"type": "posts"}))
	if !strings.Contains(r.Text, "--- end of data ---") {
		t.Errorf("the fence line was masked: %s", r.Text)
	}
	reader, _ := e.mint("reader", "content:read")
	mustOK(t, e.call("auth_authenticate", map[string]any{"token": reader}))
	if got := e.redactor.Redact("x " + reader + " y"); strings.Contains(got, reader) {
		t.Error("a verified token was not added to the redactor")
	}
}

// Issue 12, finding 3: a session's own key, rotated with no destination,
// stays in that session; keygate's own process credential is untouched.
func TestSessionRotationStaysInTheSession(t *testing.T) {
	e := newEnv(t)
	worker, key := e.mint("worker", "credentials:write", "content:read")
	mustOK(t, e.call("auth_authenticate", map[string]any{"token": worker}))
	envBefore := readFile(t, e.envFile)
	r := mustOK(t, e.call("credentials_rotate", map[string]any{"credential": "current", "confirm": true}))
	if r.Structured["delivered_to"] != "session" || !strings.Contains(r.Text, "this session now acts with the new key") {
		t.Fatalf("rotate = %s", r.Text)
	}
	who := mustOK(t, e.call("auth_whoami", nil))
	if who.Structured["key_id"] == key.ID || who.Structured["authenticated"] != true {
		t.Errorf("the session does not act with the new key: %s", who.Text)
	}
	if readFile(t, e.envFile) != envBefore {
		t.Error("a session's rotation wrote the env file")
	}
	if p := e.deps.Identity.Process(); p.Secret.Reveal() != e.admin {
		t.Error("a session's rotation changed keygate's own credential")
	}
	// "session" is only for the key the session authenticated with.
	_, other := e.mint("other", "content:read")
	mustFail(t, e.call("credentials_rotate", map[string]any{"credential": other.ID, "confirm": true, "deliver": "session"}), "credential", "neither yours")
	e.actAs(e.admin)
	mustFail(t, e.call("credentials_rotate", map[string]any{"credential": other.ID, "confirm": true, "deliver": "session"}), "deliver", "only for the key that session authenticated with")
}

// A key in its rotation grace period may not make or change keys: a leaked
// old key must not outlive its rotation by minting or rotating.
func TestSupersededKeyMakesNothing(t *testing.T) {
	e := newEnv(t)
	old, key := e.mint("worker", "credentials:write", "credentials:read", "content:read")
	e.actAs(old)
	mustOK(t, e.call("credentials_rotate", map[string]any{"credential": "current", "confirm": true, "grace_seconds": 3600, "deliver": "reveal"}))
	// The process ran on the old key from the environment: it still works
	// during the grace period, for reading.
	mustOK(t, e.call("content_list", map[string]any{"type": "posts"}))
	mustFail(t, e.call("credentials_create", map[string]any{"name": "x", "scopes": []any{"content:read"}, "expires_in_days": 1, "deliver": "reveal"}), "", "was rotated into key")
	mustFail(t, e.call("credentials_rotate", map[string]any{"credential": "current", "confirm": true, "deliver": "reveal"}), "", "was rotated into key")
	// Nor revoke itself: that would end its successor, and a thief holding
	// a leaked old key could end the owner's new one.
	mustFail(t, e.call("credentials_revoke", map[string]any{"credential": key.ID, "confirm": true}), "", "was rotated into key")
}
