package tools

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/auth"
)

// TestToolSnapshots pins every tool's schema. UPDATE_TOOLSNAPS=true rewrites
// the snapshots after an intended change.
func TestToolSnapshots(t *testing.T) {
	for _, tool := range All(&Deps{}) {
		t.Run(tool.Tool.Name, func(t *testing.T) {
			got, err := json.MarshalIndent(tool.Tool, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("__toolsnaps__", tool.Tool.Name+".snap")
			if os.Getenv("UPDATE_TOOLSNAPS") == "true" {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("missing snapshot (run with UPDATE_TOOLSNAPS=true): %v", err)
			}
			if string(got) != string(want) {
				t.Errorf("schema of %s changed; if intended, run UPDATE_TOOLSNAPS=true go test ./tools\n--- got\n%s", tool.Tool.Name, got)
			}
		})
	}
}

// TestAllToolsSetEveryAnnotation guards against mcp-go's pessimistic
// defaults: every hint must be set on purpose.
func TestAllToolsSetEveryAnnotation(t *testing.T) {
	for _, tool := range All(&Deps{}) {
		a := tool.Tool.Annotations
		for hint, v := range map[string]*bool{"readOnlyHint": a.ReadOnlyHint, "destructiveHint": a.DestructiveHint,
			"idempotentHint": a.IdempotentHint, "openWorldHint": a.OpenWorldHint} {
			if v == nil {
				t.Errorf("%s: %s not set", tool.Tool.Name, hint)
			}
		}
		if a.Title == "" || tool.Tool.Description == "" {
			t.Errorf("%s: needs a title and a description", tool.Tool.Name)
		}
		if *a.ReadOnlyHint && *a.DestructiveHint {
			t.Errorf("%s: read-only and destructive at once", tool.Tool.Name)
		}
	}
}

func TestToolRegistryInvariants(t *testing.T) {
	want := []string{"auth_whoami", "auth_check_scopes", "auth_authenticate", "credentials_list", "credentials_create",
		"credentials_rotate", "credentials_revoke", "content_types", "content_list", "content_get", "content_create",
		"content_update", "content_delete"}
	var names []string
	for _, tool := range All(&Deps{}) {
		if slices.Contains(names, tool.Tool.Name) {
			t.Errorf("duplicate tool %s", tool.Tool.Name)
		}
		names = append(names, tool.Tool.Name)
		if !slices.Contains(AllToolsets, tool.Toolset) {
			t.Errorf("%s: unknown toolset %q", tool.Tool.Name, tool.Toolset)
		}
		if tool.Toolset != ToolsetAuth && tool.Needs == "" {
			t.Errorf("%s: needs no scope", tool.Tool.Name)
		}
		destructive := *tool.Tool.Annotations.DestructiveHint
		if _, ok := tool.Tool.InputSchema.Properties["dry_run"]; destructive && !ok {
			t.Errorf("%s: destructive without dry_run", tool.Tool.Name)
		}
		if _, ok := tool.Tool.InputSchema.Properties["provider"]; !ok {
			t.Errorf("%s: no provider argument", tool.Tool.Name)
		}
	}
	if !slices.Equal(names, want) {
		t.Errorf("tools = %v, want %v", names, want)
	}
}

func TestSelect(t *testing.T) {
	all := All(&Deps{})
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"read-only keeps only read tools", Options{ReadOnly: true}, []string{"auth_whoami", "auth_check_scopes", "credentials_list", "content_types", "content_list", "content_get"}},
		{"toolsets", Options{Toolsets: []string{ToolsetAuth}}, []string{"auth_whoami", "auth_check_scopes", "auth_authenticate"}},
		{"both", Options{Toolsets: []string{ToolsetContent}, ReadOnly: true}, []string{"content_types", "content_list", "content_get"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, tool := range Select(all, tc.opts) {
				got = append(got, tool.Tool.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestToolListFollowsScopes(t *testing.T) {
	e := newEnv(t)
	if got := len(e.toolNames()); got != 13 {
		t.Errorf("admin sees %d tools, want 13", got)
	}
	reader, _ := e.mint("reader", "content:read:posts")
	e.actAs(reader)
	// mcp-go lists tools sorted by name.
	want := []string{"auth_authenticate", "auth_check_scopes", "auth_whoami", "content_get", "content_list", "content_types"}
	if got := e.toolNames(); !slices.Equal(got, want) {
		t.Errorf("reader sees %v, want %v", got, want)
	}
	// A hidden tool cannot be called either.
	if _, err := e.callErr("content_delete", map[string]any{"type": "posts", "id": "obj_x"}); err == nil {
		t.Error("calling a hidden tool succeeded")
	}

	e.actAs("")
	if got := e.toolNames(); !slices.Equal(got, []string{"auth_authenticate", "auth_check_scopes", "auth_whoami"}) {
		t.Errorf("no credential sees %v", got)
	}
	e.options = Options{ReadOnly: true}
	e.actAs(e.admin)
	for _, n := range e.toolNames() {
		for _, tool := range All(e.deps) {
			if tool.Tool.Name == n && !tool.ReadOnly() {
				t.Errorf("--read-only serves %s", n)
			}
		}
	}
}

var _ = auth.Admin

// TestEveryInputSchemaCompiles stands in for start-up compilation, which
// keygate skips to start fast.
func TestEveryInputSchemaCompiles(t *testing.T) {
	for _, tool := range All(&Deps{}) {
		if _, err := compileInputSchema(tool.Tool); err != nil {
			t.Errorf("%s: %v", tool.Tool.Name, err)
		}
	}
}

// TestArgumentStructsMatchSchemas: every field of a tool's argument struct
// is a property of its hand-written input schema, and every property a
// field, so what the schema accepts is what the handler reads.
func TestArgumentStructsMatchSchemas(t *testing.T) {
	for _, tool := range All(&Deps{}) {
		t.Run(tool.Tool.Name, func(t *testing.T) {
			fields := map[string]bool{}
			for _, f := range reflect.VisibleFields(tool.args) {
				if f.Anonymous || !f.IsExported() {
					continue
				}
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				if name == "" || name == "-" {
					t.Errorf("field %s has no JSON name", f.Name)
					continue
				}
				fields[name] = true
				if _, ok := tool.Tool.InputSchema.Properties[name]; !ok {
					t.Errorf("argument %q is not in the input schema", name)
				}
			}
			for prop := range tool.Tool.InputSchema.Properties {
				if !fields[prop] {
					t.Errorf("schema property %q has no argument field", prop)
				}
			}
		})
	}
}
