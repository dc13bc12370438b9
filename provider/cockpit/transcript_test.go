package cockpit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/cockpit/cockpittest"
	"github.com/keygate/keygate/provider/internal/providertest"
)

// adapterCase is one "adapter" entry of a transcript: a call to the
// adapter while a server answers with recorded exchanges.
type adapterCase struct {
	Name  string            `json:"name"`
	Env   map[string]string `json:"env"`
	Call  adapterCall       `json:"call"`
	Serve []int             `json:"serve"`
	Want  adapterWant       `json:"want"`
}

type adapterCall struct {
	Op     string          `json:"op"`
	Type   string          `json:"type"`
	ID     string          `json:"id"`
	Slug   string          `json:"slug"`
	Title  string          `json:"title"`
	Status string          `json:"status"`
	Fields json.RawMessage `json:"fields"`
	Limit  int             `json:"limit"`
	Filter []struct {
		Path  string `json:"path"`
		Op    string `json:"op"`
		Value any    `json:"value"`
	} `json:"filter"`
	Scopes []string `json:"scopes"`
	Tools  []string `json:"tools"`
}

type adapterWant struct {
	// Error is "" (success), unauthorized, permission, unsupported,
	// not_found:<what> or field:<field>.
	Error      string         `json:"error"`
	Contains   string         `json:"contains"`
	ID         string         `json:"id"`
	Title      string         `json:"title"`
	Slug       string         `json:"slug"`
	Status     string         `json:"status"`
	Fields     map[string]any `json:"fields"` // each must be in the object's fields
	IDs        []string       `json:"ids"`
	Total      *int           `json:"total"`
	NextCursor *string        `json:"next_cursor"`
	Types      []struct {
		Name   string   `json:"name"`
		Count  int      `json:"count"`
		Fields []string `json:"fields"`
	} `json:"types"`
	Access []struct {
		Allowed  bool   `json:"allowed"`
		Known    bool   `json:"known"`
		Contains string `json:"contains"`
		Fix      string `json:"fix"`
		FixLacks string `json:"fix_lacks"`
	} `json:"access"`
	Verified    string   `json:"verified"`
	Grants      []string `json:"grants"`
	Detail      string   `json:"detail"`
	DetailLacks string   `json:"detail_lacks"`
}

// TestTranscriptsAgainstAdapter feeds the adapter the answers a real
// Cockpit 2.13.2 gave (or its code gives), and checks both the requests
// the adapter makes and what it makes of the answers.
func TestTranscriptsAgainstAdapter(t *testing.T) {
	all, err := cockpittest.LoadTranscripts("testdata/transcripts")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tr := range all {
		for _, raw := range tr.Adapter {
			var ac adapterCase
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&ac); err != nil {
				t.Fatalf("%s: %v", tr.File, err)
			}
			n++
			t.Run(tr.File+"/"+ac.Name, func(t *testing.T) { runAdapterCase(t, tr, ac) })
		}
	}
	if n < 20 {
		t.Errorf("only %d adapter cases", n)
	}
}

func runAdapterCase(t *testing.T, tr cockpittest.Transcript, ac adapterCase) {
	replay := cockpittest.NewReplay(tr, ac.Serve)
	srv := httptest.NewServer(replay)
	defer srv.Close()
	e := env{EnvURL: srv.URL, EnvAPIKey: cockpittest.DemoRWKey}
	for k, v := range ac.Env {
		e[k] = v
	}
	cfg, _, err := LoadConfig(e.FromFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c.api.Caller.Sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	ctx := providertest.Context(t)

	var obj *provider.Object
	var page *provider.Page
	var types []provider.ContentType
	var access []provider.Access
	var desc *provider.Description
	switch call := ac.Call; call.Op {
	case "get":
		o, e := c.Get(ctx, call.Type, provider.Ref{ID: call.ID, Slug: call.Slug})
		obj, err = &o, e
	case "list":
		q := provider.ListQuery{Type: call.Type, Limit: call.Limit}
		for _, f := range call.Filter {
			q.Filter = append(q.Filter, provider.Condition{Path: f.Path, Op: provider.Op(f.Op), Value: f.Value})
		}
		p, e := c.List(ctx, q)
		page, err = &p, e
	case "create":
		o, e := c.Create(ctx, provider.NewObject{Type: call.Type, Title: call.Title, Slug: call.Slug, Status: call.Status, Fields: call.Fields})
		obj, err = &o, e
	case "update":
		p := provider.Patch{Type: call.Type, ID: call.ID, Fields: call.Fields}
		if call.Title != "" {
			p.Title = &call.Title
		}
		o, e := c.Update(ctx, p)
		obj, err = &o, e
	case "delete":
		o, e := c.Delete(ctx, call.Type, call.ID)
		obj, err = &o, e
	case "types":
		types, err = c.Types(ctx)
	case "check_access":
		scopes, perr := auth.ParseScopes(call.Scopes)
		if perr != nil {
			t.Fatal(perr)
		}
		access, err = c.CheckAccess(ctx, provider.ScopeOps(scopes))
	case "check_tools":
		access, err = c.CheckTools(ctx, call.Tools)
	case "describe":
		d, e := c.Describe(ctx)
		desc, err = &d, e
	default:
		t.Fatalf("unknown op %q", call.Op)
	}
	for _, p := range replay.Problems() {
		t.Error(p)
	}
	checkAdapterError(t, ac.Want, err)
	if err != nil {
		return
	}
	w := ac.Want
	if obj != nil {
		if w.ID != "" && obj.ID != w.ID || w.Title != "" && obj.Title != w.Title || w.Slug != "" && obj.Slug != w.Slug || w.Status != "" && obj.Status != w.Status {
			t.Errorf("object %+v", *obj)
		}
		var fields map[string]any
		_ = json.Unmarshal(obj.Fields, &fields)
		for k, v := range w.Fields {
			if !jsonEqual(fields[k], v) {
				t.Errorf("fields.%s = %v, want %v (fields %s)", k, fields[k], v, obj.Fields)
			}
		}
	}
	if page != nil {
		var ids []string
		for _, o := range page.Objects {
			ids = append(ids, o.ID)
		}
		if w.IDs != nil && !slices.Equal(ids, w.IDs) || w.Total != nil && page.Total != *w.Total || w.NextCursor != nil && page.NextCursor != *w.NextCursor {
			t.Errorf("page %v total %d next %q", ids, page.Total, page.NextCursor)
		}
	}
	if w.Types != nil {
		if len(types) != len(w.Types) {
			t.Fatalf("types %+v", types)
		}
		for i, wt := range w.Types {
			if types[i].Name != wt.Name || types[i].Count != wt.Count || !slices.Equal(types[i].Fields, wt.Fields) {
				t.Errorf("type %+v, want %+v", types[i], wt)
			}
		}
	}
	if w.Access != nil {
		if len(access) != len(w.Access) {
			t.Fatalf("access %+v", access)
		}
		for i, wa := range w.Access {
			a := access[i]
			if a.Allowed != wa.Allowed || a.Known != wa.Known || !strings.Contains(a.Reason, wa.Contains) ||
				!strings.Contains(a.Fix, wa.Fix) || wa.FixLacks != "" && strings.Contains(a.Fix, wa.FixLacks) {
				t.Errorf("access %+v, want %+v", a, wa)
			}
		}
	}
	if desc != nil {
		cr := desc.Credentials[0]
		if w.Verified != "" && cr.Verified != w.Verified || w.Grants != nil && !slices.Equal(cr.Grants, w.Grants) ||
			!strings.Contains(cr.Detail, w.Detail) || w.DetailLacks != "" && strings.Contains(cr.Detail, w.DetailLacks) {
			t.Errorf("credential %+v", cr)
		}
	}
}

func checkAdapterError(t *testing.T, w adapterWant, err error) {
	t.Helper()
	if w.Error == "" {
		if err != nil {
			t.Fatalf("err = %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %s", w.Error)
	}
	kind, arg, _ := strings.Cut(w.Error, ":")
	var fe *provider.FieldError
	var nf *provider.NotFoundError
	ok := false
	switch kind {
	case "unauthorized":
		ok = errors.Is(err, provider.ErrUnauthorized)
	case "permission":
		ok = errors.Is(err, provider.ErrPermission)
	case "unsupported":
		ok = errors.Is(err, provider.ErrUnsupported)
	case "not_found":
		ok = errors.As(err, &nf) && nf.What == arg
	case "field":
		ok = errors.As(err, &fe) && fe.Field == arg
	}
	if !ok || !strings.Contains(err.Error(), w.Contains) {
		t.Fatalf("err = %v, want %s containing %q", err, w.Error, w.Contains)
	}
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
