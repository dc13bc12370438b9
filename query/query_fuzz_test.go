package query

// Fuzz targets for content_list's and content_get's parsers of untrusted
// input: the filter object, the sort string, the paging cursor, the
// continuation cursor and projection paths. The seed corpora run as plain
// tests; to fuzz:
//
//	go test -run=XXX -fuzz=FuzzParseFilter -fuzztime=60s ./tools
//	go test -run=XXX -fuzz=FuzzParseSort -fuzztime=60s ./tools
//	go test -run=XXX -fuzz=FuzzDecodeCursor -fuzztime=60s ./tools
//	go test -run=XXX -fuzz=FuzzDecodeMore -fuzztime=60s ./tools

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/provider"
)

// validPath is what a condition or sort key may name after parsing: a
// built-in attribute or a bounded fields path, never anything a provider
// would have to escape.
func validPath(p string) bool {
	return slices.Contains(BuiltinPaths, p) || isFieldPath(p)
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"status":"published"}`,
		`{"fields.author":"ada","fields.views":{"$gt":100}}`,
		`{"slug":{"$in":["a","b"]},"version":{"$gte":1,"$lte":3}}`,
		`{"author":{"$ne":null}}`,
		`{"fields.a.b.c.d.e.f.g.h":1}`,
		`{"fields.a.b.c.d.e.f.g.h.i":1}`,
		`{"../x":1}`,
		`{"fields.a":{"$regex":".*"}}`,
		`{"fields.a":{}}`,
		`{"fields.a":{"$in":[]}}`,
		`{"fields.a":[1,2]}`,
		`{"fields.a":{"$in":[[1]]}}`,
		`{"fields.a":{"$eq":{"$gt":1}}}`,
		`{"title":"x\u0000y","id":"' OR 1=1 --"}`,
		`{"fields.` + strings.Repeat("a", 65) + `":1}`,
		`{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1,"i":1,"j":1,"k":1,"l":1,"m":1,"n":1,"o":1,"p":1,"q":1,"r":1,"s":1,"t":1,"u":1}`,
		`{"fields.n":{"$gt":1e308,"$lt":-1e308}}`,
		`{"fields.n":true}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var m map[string]any
		if json.Unmarshal(raw, &m) != nil || m == nil {
			return
		}
		conds, p := ParseFilter(m)
		if p != nil {
			if p.Field != "filter" || p.Problem == "" || p.Fix == "" {
				t.Fatalf("problem %+v", p)
			}
			if conds != nil {
				t.Fatal("conditions with a problem")
			}
			return
		}
		if len(conds) > maxConditions {
			t.Fatalf("%d conditions", len(conds))
		}
		for _, c := range conds {
			if !validPath(c.Path) {
				t.Fatalf("path %q", c.Path)
			}
			switch c.Op {
			case provider.OpIn:
				list, ok := c.Value.([]any)
				if !ok || len(list) == 0 || len(list) > maxInValues {
					t.Fatalf("$in value %#v", c.Value)
				}
				for _, v := range list {
					if !scalar(v) {
						t.Fatalf("$in element %#v", v)
					}
				}
			case provider.OpEq, provider.OpNe, provider.OpGt, provider.OpGte, provider.OpLt, provider.OpLte:
				if !scalar(c.Value) {
					t.Fatalf("%s value %#v", c.Op, c.Value)
				}
			default:
				t.Fatalf("operator %q", c.Op)
			}
		}
		// The same filter always gives the same query (the cursor
		// fingerprint depends on it).
		again, _ := ParseFilter(m)
		a, _ := json.Marshal(conds)
		b, _ := json.Marshal(again)
		if string(a) != string(b) {
			t.Fatalf("not deterministic:\n%s\n%s", a, b)
		}
	})
}

func scalar(v any) bool {
	switch v.(type) {
	case string, float64, bool, json.Number, int, int64:
		return true
	}
	return false
}

func FuzzParseSort(f *testing.F) {
	for _, s := range []string{"", "-modified_at", "title,-version", "fields.author,title", "author", "-", ",", " , ", "--title",
		"fields.a.b.c.d.e.f.g.h.i", "../x", "title;DROP TABLE keys", "a,b,c,d,e", "fields.\u00e9", strings.Repeat("a,", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		keys, p := ParseSort(s)
		if p != nil {
			if p.Field != "sort" || p.Fix == "" || keys != nil {
				t.Fatalf("problem %+v with keys %v", p, keys)
			}
			return
		}
		if len(keys) > 4 {
			t.Fatalf("%d sort keys", len(keys))
		}
		for _, k := range keys {
			if !validPath(k.Path) {
				t.Fatalf("sort path %q", k.Path)
			}
		}
		if strings.TrimSpace(s) != "" && len(keys) == 0 {
			t.Fatalf("%q gave no keys and no problem", s)
		}
	})
}

func FuzzDecodeCursor(f *testing.F) {
	fp := Fingerprint("local", provider.ListQuery{Type: "posts", Limit: 20})
	for _, c := range []Cursor{{Pos: "20", Fp: fp}, {Pos: "", Skip: 3, Fp: fp}, {Pos: "x", Skip: 100, Fp: fp}, {Pos: "1", Fp: "other"}} {
		f.Add(EncodeCursor(c))
	}
	for _, s := range []string{"", "!!!", "e30", base64.RawURLEncoding.EncodeToString([]byte(`{"p":"1","s":-1,"q":"` + fp + `"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"p":"1","s":101,"q":"` + fp + `"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"p":"../../x","q":"` + fp + `"}`)),
		base64.StdEncoding.EncodeToString([]byte(`{"p":"1","q":"` + fp + `"}`))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, p := DecodeCursor(s, fp)
		if p != nil {
			if p.Field != "cursor" || p.Fix == "" {
				t.Fatalf("problem %+v", p)
			}
			if strings.Contains(p.Problem, s) && len(s) > 8 {
				t.Fatalf("the problem quotes the cursor: %q", p.Problem)
			}
			return
		}
		if s == "" {
			if c != (Cursor{Fp: fp}) {
				t.Fatalf("empty cursor gave %+v", c)
			}
			return
		}
		if c.Fp != fp || c.Skip < 0 || c.Skip > MaxLimit || (c.Pos == "" && c.Skip == 0) {
			t.Fatalf("accepted %+v", c)
		}
		// What decodes re-encodes to a cursor that decodes the same.
		again, p := DecodeCursor(EncodeCursor(c), fp)
		if p != nil || again != c {
			t.Fatalf("round trip %+v -> %+v (%v)", c, again, p)
		}
	})
}

func FuzzDecodeMore(f *testing.F) {
	for _, m := range []More{{ID: "obj_1", Type: "posts", Path: "fields.body", Offset: 10, Kind: "string", Version: 2},
		{ID: "obj_1", Type: "posts", Path: "fields.tags", Offset: 0, Kind: "array", Version: 1}} {
		f.Add(EncodeMore(m))
	}
	for _, s := range []string{"", "m.", "m.e30", "x.abc", "m." + base64.RawURLEncoding.EncodeToString([]byte(`{"o":"a","p":"..","n":-1,"k":"string"}`)),
		"m." + base64.RawURLEncoding.EncodeToString([]byte(`{"o":"a","t":"posts","p":"fields.b","n":0,"k":"object"}`))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := DecodeMore(s)
		if !ok {
			return
		}
		if m.ID == "" || m.Path == "" || m.Offset < 0 || (m.Kind != "string" && m.Kind != "array") {
			t.Fatalf("accepted %+v", m)
		}
		if again, ok := DecodeMore(EncodeMore(m)); !ok || again != m {
			t.Fatalf("round trip %+v -> %+v", m, again)
		}
	})
}

func FuzzCheckPaths(f *testing.F) {
	for _, s := range []string{"title", "fields.tags.#", "fields.*.x", "..", "a..b", "a|b", "@reverse", "fields.a\x00", strings.Repeat("a.", 20) + "a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if p := CheckPaths([]string{s}); p == nil {
			// An accepted path uses only the documented characters, so no
			// gjson modifier (@...), pipe or query (#(...)) gets through.
			if strings.ContainsAny(s, "@|()=!<>%\\\x00 ") || len(s) > 200 || s == "" {
				t.Fatalf("accepted path %q", s)
			}
		}
	})
}
