package cencori

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/cencori/cencoritest"
	"github.com/keygate/keygate/provider/internal/providertest"
)

// Each test here pins one way keygate disagreed with Cencori's server
// source (docs/providers/cencori.md); each failed before the fix.

// Production answers every memory path with 404 {"error":"Not found"}
// before checking the key. Every content call, content_types, whoami and
// check_scopes must say that memory is unavailable there, why, and the fix,
// instead of a bare 404.
func TestMemoryGatedSaysWhyAndHowToFix(t *testing.T) {
	f := newGatedFixture(t, cencoritest.DemoSecretKey)
	ctx := t.Context()
	wantExplained := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, provider.ErrUnsupported) {
			t.Fatalf("%s: %v (%T), want ErrUnsupported", what, err, err)
		}
		for _, want := range []string{"not available on this deployment", "404", "before checking the key", "localhost", "CENCORI_API_URL"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %q does not say %q", what, err, want)
			}
		}
		providertest.NoSecret(t, err.Error(), cencoritest.DemoSecretKey)
	}
	_, err := f.c.Types(ctx)
	wantExplained("types", err)
	_, err = f.c.List(ctx, listQ)
	wantExplained("list", err)
	_, err = f.c.List(ctx, provider.ListQuery{Type: "memories", Limit: 5, Filter: []provider.Condition{providertest.Eq("query", "x")}})
	wantExplained("search", err)
	_, err = f.c.Get(ctx, "memories", provider.Ref{ID: cencoritest.SeedMemory1})
	wantExplained("get", err)
	_, err = f.c.Create(ctx, provider.NewObject{Type: "memories", Title: "x", Fields: json.RawMessage(`{}`)})
	wantExplained("create", err)
	_, err = f.c.Delete(ctx, "memories", cencoritest.SeedMemory1)
	wantExplained("delete", err)
	if f.fake.Requests("/v1/memory/write") != 1 {
		t.Errorf("the gated write was sent %d times", f.fake.Requests("/v1/memory/write"))
	}

	d, err := f.c.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mem, _ := d.Details["memory"].(string)
	if !strings.HasPrefix(mem, "not available") || !strings.Contains(strings.Join(d.Problems, " "), "CENCORI_API_URL") || len(d.Credentials[0].Grants) != 0 {
		t.Errorf("whoami: memory %q, problems %q, grants %v", mem, d.Problems, d.Credentials[0].Grants)
	}
	// The key itself is fine: /v1/metrics is not gated.
	if d.Credentials[0].Verified != provider.VerifiedOK {
		t.Errorf("whoami: credential %+v", d.Credentials[0])
	}

	// Memory switched off in the project's settings is a different reason
	// with a different fix.
	f = newFixture(t, cencoritest.DemoSecretKey)
	f.fake.SetProjectMemoryEnabled(cencoritest.DemoProject, false)
	_, err = f.c.Create(ctx, provider.NewObject{Type: "memories", Title: "x", Fields: json.RawMessage(`{}`)})
	if !errors.Is(err, provider.ErrUnsupported) || !strings.Contains(err.Error(), "switched off in this Cencori project's settings") || !strings.Contains(err.Error(), "dashboard") {
		t.Errorf("memory_disabled: %v", err)
	}
}

// The dashboard's agent setup, the only generator of cake_ keys, makes
// cake_ + 32 hex; keygate refused those at start-up.
func TestAgentKeyOf32HexWorks(t *testing.T) {
	if len(cencoritest.DemoAgentKey) != len("cake_")+32 {
		t.Fatalf("the fake's agent key is not the agent setup's shape: %d characters", len(cencoritest.DemoAgentKey))
	}
	f := newFixture(t, cencoritest.DemoAgentKey)
	if f.c.Config().KeyType() != KeyTypeAgent {
		t.Errorf("key type %s", f.c.Config().KeyType())
	}
	if _, err := f.c.List(t.Context(), listQ); err != nil {
		t.Fatal(err)
	}
}

// Cencori defaults a missing scope to "user" whatever ids are sent, so a
// call with only a sessionId was refused with 400 "memory.userId is
// required for user scope".
func TestScopeIsAlwaysSent(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	ctx := t.Context()
	if _, err := f.c.Create(ctx, provider.NewObject{Type: "memories", Title: "Likes green tea", Fields: json.RawMessage(`{"sessionId":"chat-7"}`)}); err != nil {
		t.Fatalf("session create: %v", err)
	}
	if got := f.fake.SessionMemories(cencoritest.DemoProject, "chat-7"); len(got) != 1 || got[0].Content != "Likes green tea" {
		t.Fatalf("session memories %+v", got)
	}
	p, err := f.c.List(ctx, provider.ListQuery{Type: "memories", Limit: 10, Filter: []provider.Condition{providertest.Eq("sessionId", "chat-7")}})
	if err != nil || len(p.Objects) != 1 {
		t.Fatalf("session list: %+v %v", p, err)
	}
	p, err = f.c.List(ctx, provider.ListQuery{Type: "memories", Limit: 10, Filter: []provider.Condition{providertest.Eq("sessionId", "chat-7"), providertest.Eq("query", "tea")}})
	if err != nil || len(p.Objects) != 1 {
		t.Fatalf("session search: %+v %v", p, err)
	}
	// A user list still names its scope, and a user scope with only a
	// sessionId is refused before anything is sent.
	if _, err := f.c.List(ctx, listQ); err != nil {
		t.Fatal(err)
	}
	before := f.fake.TotalRequests()
	_, err = f.c.List(ctx, provider.ListQuery{Type: "memories", Limit: 10, Filter: []provider.Condition{providertest.Eq("sessionId", "chat-7"), providertest.Eq("scope", "user")}})
	providertest.WantFieldError(t, err, "filter")
	_, err = f.c.Create(ctx, provider.NewObject{Type: "memories", Title: "x", Fields: json.RawMessage(`{"sessionId":"chat-7","scope":"user"}`)})
	providertest.WantFieldError(t, err, "fields.scope")
	if f.fake.TotalRequests() != before {
		t.Error("a refused scope was sent")
	}
}

// Search clamps topK to 1-20, so keygate's topK = limit (default 50) lost
// every result past the 20th without a word.
func TestSearchLimitAboveTwentyIsNotSilentlyCut(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	ctx := t.Context()
	for i := range 25 {
		if _, err := f.c.Create(ctx, provider.NewObject{Type: "memories", Title: fmt.Sprintf("fact %d about otters", i), Fields: json.RawMessage(`{"userId":"otters"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	search := func(limit int) (provider.Page, error) {
		return f.c.List(ctx, provider.ListQuery{Type: "memories", Limit: limit, Filter: []provider.Condition{providertest.Eq("userId", "otters"), providertest.Eq("query", "otters")}})
	}
	before := f.fake.Requests("/v1/memory/search")
	for _, limit := range []int{21, 50, 100} {
		_, err := search(limit)
		providertest.WantFieldError(t, err, "limit")
		if !strings.Contains(err.Error(), "at most 20") {
			t.Errorf("limit %d: %v", limit, err)
		}
	}
	if f.fake.Requests("/v1/memory/search") != before {
		t.Error("a search with a limit over 20 was sent")
	}
	p, err := search(20)
	if err != nil || len(p.Objects) != 20 {
		t.Fatalf("limit 20: %d objects, %v", len(p.Objects), err)
	}
	// Without a limit, the search asks for what Cencori can give.
	p, err = search(0)
	if err != nil || len(p.Objects) != 20 {
		t.Fatalf("no limit: %d objects, %v", len(p.Objects), err)
	}
}

// Cencori stores a write's metadata with extractedFrom "manual" and its own
// bookkeeping added: a lost answer must still be recognised as keygate's
// write, and never written twice.
func TestLostWriteFoundDespiteServerMetadata(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	ctx := t.Context()
	f.fake.DropNextResponseOn("POST", "/v1/memory/write")
	o, err := f.c.Create(ctx, provider.NewObject{Type: "memories", Title: "Billing contact",
		Fields: json.RawMessage(`{"content":"  Billing questions go to the finance team.  ","metadata":{"topic":"billing","n":2}}`)})
	if err != nil {
		t.Fatal(err)
	}
	stored, ok := f.fake.Memory(o.ID)
	if !ok || stored.Metadata["extractedFrom"] != "manual" || f.fake.Requests("/v1/memory/write") != 1 {
		t.Fatalf("found %s, stored %+v, %d writes", o.ID, stored, f.fake.Requests("/v1/memory/write"))
	}
	if meta := providertest.FieldsOf(t, o)["metadata"].(map[string]any); meta["topic"] != "billing" || meta["title"] != "Billing contact" {
		t.Errorf("metadata %v", meta)
	}
	// The same for a session memory, which keeps no metadata at all.
	f.fake.DropNextResponseOn("POST", "/v1/memory/write")
	o, err = f.c.Create(ctx, provider.NewObject{Type: "memories", Title: "Wants a refund", Fields: json.RawMessage(`{"sessionId":"chat-9"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if o.ID != "" || providertest.FieldsOf(t, o)["content"] != "Wants a refund" || len(f.fake.SessionMemories(cencoritest.DemoProject, "chat-9")) != 1 {
		t.Errorf("session: %+v", o)
	}
	// Keys Cencori sets itself would be overwritten: refused.
	_, err = f.c.Create(ctx, provider.NewObject{Type: "memories", Title: "x", Fields: json.RawMessage(`{"metadata":{"extractedFrom":"chat"}}`)})
	providertest.WantFieldError(t, err, "fields.metadata.extractedFrom")
}

// A session-scope write answers the placeholder id mem_session, which no
// read can find: the object says so instead of carrying a broken id.
func TestSessionWriteHasNoReadableID(t *testing.T) {
	f := newFixture(t, cencoritest.DemoSecretKey)
	ctx := t.Context()
	o, err := f.c.Create(ctx, provider.NewObject{Type: "memories", Title: "Customer is on the Pro plan", Fields: json.RawMessage(`{"sessionId":"chat-3","content":"Pro plan since March"}`)})
	if err != nil {
		t.Fatal(err)
	}
	fl := providertest.FieldsOf(t, o)
	note, _ := fl["keygate_note"].(string)
	if o.ID != "" || o.Slug != "" || fl["scope"] != "session" || fl["scopeKey"] != "chat-3" || fl["content"] != "Pro plan since March" ||
		!strings.Contains(note, "mem_session") || !strings.Contains(note, "title was not kept") {
		t.Fatalf("object %+v, fields %v", o, fl)
	}
	if f.fake.Requests("/v1/memory/mem_session") != 0 {
		t.Error("the placeholder id was read back")
	}
	p, err := f.c.List(ctx, provider.ListQuery{Type: "memories", Limit: 10, Filter: []provider.Condition{providertest.Eq("sessionId", "chat-3")}})
	if err != nil || len(p.Objects) != 1 || p.Objects[0].ID != "" || !strings.Contains(providertest.FieldsOf(t, p.Objects[0])["keygate_note"].(string), "cannot be read") {
		t.Fatalf("session list: %+v %v", p, err)
	}
	for _, call := range []func() error{
		func() error { _, err := f.c.Get(ctx, "memories", provider.Ref{ID: "mem_session"}); return err },
		func() error { _, err := f.c.Delete(ctx, "memories", "mem_session"); return err },
	} {
		providertest.WantFieldError(t, call(), "id")
	}
	if f.fake.Requests("/v1/memory/mem_session") != 0 {
		t.Error("the placeholder id was sent")
	}
	// What a session memory cannot keep is refused, not dropped.
	for _, fields := range []string{`{"sessionId":"s","metadata":{"a":1}}`, `{"sessionId":"s","namespace":"n"}`, `{"sessionId":"s","expiresAt":"2099-01-01T00:00:00Z"}`} {
		_, err := f.c.Create(ctx, provider.NewObject{Type: "memories", Title: "x", Fields: json.RawMessage(fields)})
		var fe *provider.FieldError
		if !errors.As(err, &fe) || !strings.Contains(fe.Problem, "session memory") {
			t.Errorf("%s: %v", fields, err)
		}
	}
}
