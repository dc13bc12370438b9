package cockpit

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/cockpit/cockpittest"
	"github.com/keygate/keygate/provider/internal/providertest"
)

// Each test here is a behaviour found against a real Cockpit 2.13.2
// (docs/providers/cockpit.md names the rule).

func (r *rig) posts(model string) int {
	n := 0
	for _, req := range r.fake.Seen() {
		if req.Method == http.MethodPost && strings.HasSuffix(req.Path, "/content/item/"+model) && !strings.Contains(req.Body, probeID) {
			n++
		}
	}
	return n
}

// TestFieldAddedLaterIsWritable: Cockpit keeps the keys of the model's
// definition, and old items do not gain a field added later (W3, W8).
func TestFieldAddedLaterIsWritable(t *testing.T) {
	ctx := providertest.Context(t)
	r := newRig(t, nil)
	r.fake.AddField("posts", cockpittest.Field{Name: "subtitle", Type: "text"})

	o, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: "6b0000000000000000000001", Fields: json.RawMessage(`{"subtitle":"Hi"}`)})
	if err != nil || !strings.Contains(string(o.Fields), `"subtitle":"Hi"`) {
		t.Fatalf("update: %s %v", o.Fields, err)
	}
	if stored, _ := r.fake.Item("posts", "6b0000000000000000000001"); stored["subtitle"] != "Hi" {
		t.Errorf("stored %v", stored)
	}
	o, err = r.client.Create(ctx, provider.NewObject{Type: "posts", Title: "New", Slug: "new", Status: "published", Fields: json.RawMessage(`{"subtitle":"Sub"}`)})
	if err != nil || !strings.Contains(string(o.Fields), `"subtitle":"Sub"`) {
		t.Fatalf("create: %s %v", o.Fields, err)
	}
	types, err := r.client.Types(ctx)
	if err != nil || !strings.Contains(strings.Join(types[0].Fields, ","), "subtitle") {
		t.Errorf("types learn the field from the newest items: %+v %v", types, err)
	}
	// A field the model does not have is still refused, before writing.
	before := r.posts("posts")
	_, err = r.client.Update(ctx, provider.Patch{Type: "posts", ID: "6b0000000000000000000002", Fields: json.RawMessage(`{"colour":"red"}`)})
	var fe *provider.FieldError
	if !errors.As(err, &fe) || fe.Field != "fields" || !strings.Contains(fe.Problem, "no field colour") || !strings.Contains(fe.Fix, "subtitle") {
		t.Fatalf("err = %v", err)
	}
	if r.posts("posts") != before {
		t.Error("the refused update was sent")
	}
}

// TestEmptyObjectReadsBackAsEmptyArray: PHP stores {} as [] (J4).
func TestEmptyObjectReadsBackAsEmptyArray(t *testing.T) {
	ctx := providertest.Context(t)
	r := newRig(t, nil)
	o, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: "6b0000000000000000000001", Fields: json.RawMessage(`{"body":{},"tags":{"0":"a","1":"b"}}`)})
	if err != nil {
		t.Fatalf("a successful update reported as %v", err)
	}
	if !strings.Contains(string(o.Fields), `"body":[]`) || !strings.Contains(string(o.Fields), `"tags":["a","b"]`) {
		t.Errorf("fields %s", o.Fields)
	}
	nested, err := r.client.Update(ctx, provider.Patch{Type: "posts", ID: "6b0000000000000000000002", Fields: json.RawMessage(`{"body":{"a":{},"b":1}}`)})
	if err != nil || !strings.Contains(string(nested.Fields), `"body":{"a":[],"b":1}`) {
		t.Fatalf("nested: %s %v", nested.Fields, err)
	}
}

// TestEmptyModelChecksFieldsBeforeWriting: a model with no item is checked
// the same way, before anything is created (W6, K2).
func TestEmptyModelChecksFieldsBeforeWriting(t *testing.T) {
	ctx := providertest.Context(t)
	r := newRig(t, nil, cockpittest.WithoutSeed())
	_, err := r.client.Create(ctx, provider.NewObject{Type: "posts", Title: "X", Slug: "x", Status: "published", Fields: json.RawMessage(`{"colour":"red"}`)})
	var fe *provider.FieldError
	if !errors.As(err, &fe) || fe.Field != "fields" || !strings.Contains(fe.Problem, "no field colour") {
		t.Fatalf("err = %v", err)
	}
	if len(r.fake.Items("posts")) != 0 {
		t.Error("an item was created")
	}
	// The model's own fields go through.
	o, err := r.client.Create(ctx, provider.NewObject{Type: "posts", Title: "X", Slug: "x", Status: "published", Fields: json.RawMessage(`{"views":1}`)})
	if err != nil || o.Slug != "x" {
		t.Fatalf("%+v %v", o, err)
	}
	// pages has no slug field: the slug is left out, as with items.
	o, err = r.client.Create(ctx, provider.NewObject{Type: "pages", Title: "P", Slug: "p", Status: "published"})
	if err != nil || o.Slug != "" || o.Title != "P" {
		t.Fatalf("%+v %v", o, err)
	}
	// A model without a title field refuses the title before writing.
	r.fake.SetModel(cockpittest.Model{Name: "logos", Fields: []cockpittest.Field{{Name: "image", Type: "asset"}}})
	r.fake.SetPermission("editor", "content/logos/read", true)
	r.fake.SetPermission("editor", "content/logos/create", true)
	r.fake.SetPermission("editor", "content/logos/update", true)
	if _, err := r.client.Create(ctx, provider.NewObject{Type: "logos", Title: "L", Status: "published"}); !isField("title")(err) || len(r.fake.Items("logos")) != 0 {
		t.Fatalf("err = %v", err)
	}
}

// TestDroppedFieldReportedWhenItCannotBeChecked: without the update
// permission the fields cannot be checked first; a field Cockpit dropped
// is then reported with the created item's id.
func TestDroppedFieldReportedWhenItCannotBeChecked(t *testing.T) {
	ctx := providertest.Context(t)
	r := newRig(t, nil, cockpittest.WithoutSeed())
	r.fake.SetPermission("editor", "content/posts/update", false)
	_, err := r.client.Create(ctx, provider.NewObject{Type: "posts", Title: "X", Slug: "x", Status: "published", Fields: json.RawMessage(`{"colour":"red"}`)})
	var fe *provider.FieldError
	if !errors.As(err, &fe) || !strings.Contains(fe.Problem, "dropped colour") || !strings.Contains(fe.Problem, "created item") || !strings.Contains(fe.Fix, "content_delete") {
		t.Fatalf("err = %v", err)
	}
}

// TestSingletons: a singleton's one item, whatever id is asked (S1-S5).
func TestSingletons(t *testing.T) {
	ctx := providertest.Context(t)
	r := newRig(t, func(e env) { e[EnvModels] = "posts,settings" })
	const id, other = "6b0000000000000000000031", "6b00000000000000000000ff"

	p, err := r.client.List(ctx, provider.ListQuery{Type: "settings"})
	if err != nil || len(p.Objects) != 1 || p.Objects[0].ID != id || p.Total != 1 || p.NextCursor != "" {
		t.Fatalf("list: %+v %v", p, err)
	}
	if string(p.Objects[0].Fields) != `{"site_name":"keygate demo"}` {
		t.Errorf("fields %s", p.Objects[0].Fields)
	}
	types, _ := r.client.Types(ctx)
	if len(types) != 2 || types[1].Name != "settings" || types[1].Count != 1 {
		t.Errorf("types %+v", types)
	}
	if _, err := r.client.List(ctx, provider.ListQuery{Type: "settings", Filter: []provider.Condition{{Path: "fields.site_name", Op: provider.OpEq, Value: "x"}}}); !isField("filter")(err) {
		t.Errorf("a filter on a singleton: %v", err)
	}
	if o, err := r.client.Get(ctx, "settings", provider.Ref{ID: id}); err != nil || o.ID != id {
		t.Errorf("get: %+v %v", o, err)
	}
	_, err = r.client.Get(ctx, "settings", provider.Ref{ID: other})
	var fe *provider.FieldError
	if !errors.As(err, &fe) || fe.Field != "id" || !strings.Contains(fe.Problem, "singleton") || !strings.Contains(fe.Fix, id) {
		t.Fatalf("get by another id: %v", err)
	}
	before := r.posts("settings")
	if _, err := r.client.Update(ctx, provider.Patch{Type: "settings", ID: other, Fields: json.RawMessage(`{"site_name":"x"}`)}); !isField("id")(err) {
		t.Fatalf("update by another id: %v", err)
	}
	if r.posts("settings") != before {
		t.Error("the refused update was sent")
	}
	o, err := r.client.Update(ctx, provider.Patch{Type: "settings", ID: id, Fields: json.RawMessage(`{"site_name":"renamed"}`)})
	if err != nil || string(o.Fields) != `{"site_name":"renamed"}` {
		t.Fatalf("update: %+v %v", o, err)
	}
	if stored, _ := r.fake.Item("settings", id); stored["site_name"] != "renamed" {
		t.Errorf("stored %v", stored)
	}
	deletes := r.methods(http.MethodDelete)
	_, err = r.client.Delete(ctx, "settings", id)
	if !errors.Is(err, provider.ErrUnsupported) || !strings.Contains(err.Error(), "DELETE method not allowed for <settings>") || r.methods(http.MethodDelete) != deletes {
		t.Fatalf("delete: %v", err)
	}
	if _, err := r.client.Create(ctx, provider.NewObject{Type: "settings", Title: "x", Status: "published"}); !isField("type")(err) {
		t.Fatalf("create on a saved singleton: %v", err)
	}

	t.Run("never saved", func(t *testing.T) {
		e := newRig(t, func(e env) { e[EnvModels] = "settings" }, cockpittest.WithoutSeed())
		p, err := e.client.List(ctx, provider.ListQuery{Type: "settings"})
		if err != nil || len(p.Objects) != 0 || p.Total != 0 {
			t.Fatalf("list: %+v %v", p, err)
		}
		if _, err := e.client.Get(ctx, "settings", provider.Ref{ID: id}); !isField("id")(err) {
			t.Fatalf("get: %v", err)
		}
		o, err := e.client.Create(ctx, provider.NewObject{Type: "settings", Status: "published", Fields: json.RawMessage(`{"site_name":"first"}`)})
		if err != nil || o.ID == "" {
			t.Fatalf("create: %+v %v", o, err)
		}
		if items := e.fake.Items("settings"); len(items) != 1 || items[0]["site_name"] != "first" {
			t.Errorf("stored %v", items)
		}
	})
}

// TestToolChecksAskTheToolsOwnAction: content_update needs read and
// update, not create (K5).
func TestToolChecksAskTheToolsOwnAction(t *testing.T) {
	ctx := providertest.Context(t)
	r := newRig(t, nil)
	got, err := r.client.CheckTools(ctx, []string{"content_update", "content_create", "content_delete", "content_list", "credentials_list", "nosuch"})
	if err != nil || len(got) != 6 {
		t.Fatal(got, err)
	}
	want := []struct{ allowed, known bool }{{true, true}, {false, false}, {true, true}, {true, true}, {false, true}, {false, false}}
	for i, a := range got {
		if a.Allowed != want[i].allowed || a.Known != want[i].known || a.Reason == "" {
			t.Errorf("%s: %+v", a.Operation, a)
		}
	}
	ro := newRig(t, func(e env) { e[EnvAPIKey] = cockpittest.DemoROKey })
	got, _ = ro.client.CheckTools(ctx, []string{"content_update", "content_get"})
	if got[0].Allowed || !got[0].Known || !strings.Contains(got[0].Fix, "Settings > Roles") || !got[1].Allowed {
		t.Errorf("read-only key: %+v", got)
	}
	// Some models allowed is enough for a tool, as for keygate's own scopes.
	r.fake.SetPermission("editor", "content/pages/update", false)
	got, _ = r.client.CheckTools(ctx, []string{"content_update"})
	if !got[0].Allowed || !strings.Contains(got[0].Reason, "pages") {
		t.Errorf("some models: %+v", got[0])
	}
}

// TestMissingModelFixNamesTheConfiguration: a model Cockpit lacks is a
// name to check, not a permission to grant.
func TestMissingModelFixNamesTheConfiguration(t *testing.T) {
	ctx := providertest.Context(t)
	r := newRig(t, nil)
	got, err := r.client.CheckAccess(ctx, provider.ScopeOps([]auth.Scope{{Action: auth.ContentRead, Type: "nosuch"}}))
	if err != nil || got[0].Allowed || !got[0].Known {
		t.Fatal(got, err)
	}
	if strings.Contains(got[0].Fix, "Roles") || !strings.Contains(got[0].Fix, EnvModels) || !strings.Contains(got[0].Fix, "name") {
		t.Errorf("fix %q", got[0].Fix)
	}
}

// TestNoRoleWhoamiNamesTheModels: with COCKPIT_MODELS set, whoami says the
// key reads none of them, not that models are unknown without it.
func TestNoRoleWhoamiNamesTheModels(t *testing.T) {
	ctx := providertest.Context(t)
	r := newRig(t, func(e env) { e[EnvAPIKey] = cockpittest.DemoNoRoleKey })
	d, err := r.client.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cr := d.Credentials[0]
	if cr.Verified != provider.VerifiedOK || strings.Contains(cr.Detail, "without "+EnvModels) || !strings.Contains(cr.Detail, "posts, authors, pages") {
		t.Errorf("detail %q", cr.Detail)
	}
	if !strings.Contains(strings.Join(d.Problems, "\n"), "Settings > Roles") {
		t.Errorf("problems %v", d.Problems)
	}
}
