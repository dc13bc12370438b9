package cockpittest

import (
	"net/url"
	"strings"
	"testing"
)

// These tests pin the differences found between this fake and a real
// Cockpit 2.13.2 (docs/providers/cockpit.md names each rule).

func titles(t *testing.T, a answer) []string {
	t.Helper()
	list := a.list
	if list == nil {
		data, _ := a.obj["data"].([]any)
		list = data
	}
	var out []string
	for _, it := range list {
		m, _ := it.(map[string]any)
		s, _ := m["title"].(string)
		out = append(out, s)
	}
	return out
}

func join(s []string) string { return strings.Join(s, "|") }

func TestQueriesAreJSON5(t *testing.T) { // Q1
	s := New()
	ts := s.Start()
	defer ts.Close()
	base := s.URL() + "/api/content/items/posts?"
	for name, q := range map[string]url.Values{
		"unquoted keys and single quotes": {"filter": {`{slug: 'release-notes'}`}},
		"comments and a trailing comma":   {"filter": {`{/* x */ "slug": "release-notes", // y` + "\n}"}},
		"sort":                            {"sort": {`{views: -1,}`}, "limit": {"1"}},
		"fields":                          {"fields": {`{title: 1, _id: 0}`}, "filter": {`{views: 300}`}},
	} {
		t.Run(name, func(t *testing.T) {
			a := call(t, "GET", base+q.Encode(), rw(), "")
			if a.status != 200 || join(titles(t, a)) != "Release notes" {
				t.Fatalf("%d %s", a.status, a.raw)
			}
		})
	}
	if a := call(t, "GET", base+url.Values{"fields": {`{title: 1, _id: 0}`}, "filter": {`{views: 300}`}}.Encode(), rw(), ""); a.raw != `[{"title":"Release notes"}]` {
		t.Errorf("projection without _id: %s", a.raw)
	}
	if a := call(t, "GET", base+url.Values{"sort": {`{views: }`}}.Encode(), rw(), ""); a.status != 400 || a.obj["error"] != "<sort> is not valid json" {
		t.Errorf("bad JSON5: %d %s", a.status, a.raw)
	}
}

// mixed is a model whose field holds values of every type.
func mixed(t *testing.T) (*Server, string) {
	t.Helper()
	s := New()
	s.SetModel(Model{Name: "things", Fields: []Field{{Name: "title", Type: "text"}, {Name: "v", Type: "text"}}})
	s.SetPermission("editor", "content/things/read", true)
	for _, it := range []Item{
		{"title": "text b", "v": "b"}, {"title": "number 10", "v": 10.0}, {"title": "null", "v": nil},
		{"title": "missing"}, {"title": "text 10", "v": "10"}, {"title": "number 2", "v": 2.0},
		{"title": "true", "v": true}, {"title": "false", "v": false}, {"title": "list", "v": []any{"a", 5.0}},
		{"title": "empty text", "v": ""},
	} {
		it["_state"] = 1.0
		s.PutItem("things", it)
	}
	ts := s.Start()
	t.Cleanup(ts.Close)
	return s, s.URL() + "/api/content/items/things?"
}

func TestComparisonsFollowSQLite(t *testing.T) { // Q3, Q4
	_, base := mixed(t)
	for _, tc := range []struct{ filter, want string }{
		// Numbers are below all text, so text passes $gt on a number.
		{`{"v":{"$gt":5}}`, `text b|number 10|text 10|list|empty text`},
		// Booleans are 1 and 0; null and missing fields never compare.
		{`{"v":{"$lt":3}}`, `number 2|true|false`},
		{`{"v":{"$gte":"b"}}`, `text b`},
		// "10" (text) is not 10 (a number).
		{`{"v":10}`, `number 10`},
		{`{"v":"10"}`, `text 10`},
		// true equals 1: an item whose field is 1 would match too.
		{`{"v":true}`, `true`},
		// $in matches an array field when any element is in the list.
		{`{"v":{"$in":[5,"zz"]}}`, `list`},
		{`{"v":{"$in":["a"]}}`, `list`},
		{`{"v":{"$nin":["a","b",10]}}`, `null|missing|text 10|number 2|true|false|empty text`},
		{`{"v":null}`, `null|missing`},
		{`{"v":{"$exists":false}}`, `missing`},
		{`{"v":{"$ne":"b"}}`, `number 10|null|missing|text 10|number 2|true|false|list|empty text`},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			a := call(t, "GET", base+url.Values{"filter": {tc.filter}}.Encode(), rw(), "")
			if got := join(titles(t, a)); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestSortFollowsSQLite(t *testing.T) { // Q7
	_, base := mixed(t)
	// document_key makes null, missing and false '' (text): they sort
	// after every number and before other text; true is '1'; a list is its
	// JSON text.
	a := call(t, "GET", base+url.Values{"sort": {`{"v":1}`}}.Encode(), rw(), "")
	want := `number 2|number 10|null|missing|false|empty text|true|text 10|list|text b`
	if got := join(titles(t, a)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	a = call(t, "GET", base+url.Values{"sort": {`{"v":-1}`}}.Encode(), rw(), "")
	if got := titles(t, a); got[0] != "text b" || got[len(got)-1] != "number 2" {
		t.Errorf("descending: %v", got)
	}
}

func TestLimitAndSkip(t *testing.T) { // Q8
	s := New()
	ts := s.Start()
	defer ts.Close()
	base := s.URL() + "/api/content/items/posts?sort=" + url.QueryEscape(`{"views":1}`)
	for _, tc := range []struct {
		q, want string
		total   float64 // 0: a bare array is expected
	}{
		{"&skip=2", "Weekly digest|Second thoughts|Hello, world|Release notes", 0},
		{"&skip=-1&limit=2", "Weekly digest|Second thoughts", 4},
		{"&skip=1&limit=-1", "Second thoughts|Hello, world|Release notes", 4},
		{"&skip=1&limit=0", "Weekly digest|Second thoughts|Hello, world|Release notes", 4},
		{"&skip=x&limit=1", "Weekly digest", 4},
	} {
		t.Run(tc.q, func(t *testing.T) {
			a := call(t, "GET", base+tc.q, rw(), "")
			if a.status != 200 || join(titles(t, a)) != tc.want {
				t.Fatalf("%d %s", a.status, a.raw)
			}
			meta, _ := a.obj["meta"].(map[string]any)
			if tc.total == 0 && a.list == nil || tc.total != 0 && meta["total"] != tc.total {
				t.Errorf("shape: %s", a.raw)
			}
		})
	}
}

func TestSeveralModelsHonourOptions(t *testing.T) { // R8
	s := New()
	ts := s.Start()
	defer ts.Close()
	q := `{p: {model: "posts", sort: {views: -1}, fields: {title: 1}, limit: 2}, first: {model: "posts", sort: {views: 1}, limit: 1, skip: 0}, settings: {}, nope: {}}`
	a := call(t, "GET", s.URL()+"/api/content/items?models="+url.QueryEscape(q), rw(), "")
	want := `{"p":[{"_id":"6b0000000000000000000003","title":"Release notes"},{"_id":"6b0000000000000000000001","title":"Hello, world"}],` +
		`"first":{"data":[{"title":"Weekly digest","slug":"weekly-digest","body":null,"featured":false,"tags":null,"views":7,"_state":1,"_modified":1768381200,"_mby":null,"_created":1768122000,"_cby":null,"_id":"6b0000000000000000000004"}],"meta":{"total":4}},` +
		`"settings":{"site_name":"keygate demo","_model":"settings","_state":1,"_modified":1767258000,"_mby":null,"_created":1767258000,"_cby":null,"_id":"6b0000000000000000000031"}}`
	if a.raw != want {
		t.Fatalf("got  %s\nwant %s", a.raw, want)
	}
	if a := call(t, "GET", s.URL()+"/api/content/items?models="+url.QueryEscape(`{"posts":{}}`), hdr{"api-key": DemoNoRoleKey}, ""); a.raw != "[]" {
		t.Errorf("nothing readable is an empty PHP array: %s", a.raw)
	}
}

func TestSingletons(t *testing.T) { // S1-S4
	s := New()
	ts := s.Start()
	defer ts.Close()
	base := s.URL() + "/api/content"
	const one = `{"site_name":"keygate demo","_model":"settings","_state":1,"_modified":1767258000,"_mby":null,"_created":1767258000,"_cby":null,"_id":"6b0000000000000000000031"}`
	for _, tc := range []struct{ name, method, path, body, want string }{
		{"list", "GET", "/items/settings", "", `[]`},
		{"list with limit and skip", "GET", "/items/settings?limit=5&skip=0", "", `{"data":[],"meta":{"total":1}}`},
		{"by its id", "GET", "/item/settings/6b0000000000000000000031", "", one},
		{"by any id", "GET", "/item/settings/6b00000000000000000000ff", "", one},
		{"first, filter ignored", "GET", "/item/settings?filter=" + url.QueryEscape(`{"site_name":"nope"}`), "", one},
		{"delete", "DELETE", "/item/settings/6b0000000000000000000031", "", `{"error":"DELETE method not allowed for <settings>"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if a := call(t, tc.method, base+tc.path, rw(), tc.body); a.raw != tc.want {
				t.Fatalf("got  %s\nwant %s", a.raw, tc.want)
			}
		})
	}
	t.Run("update with a wrong id writes nothing", func(t *testing.T) {
		a := call(t, "POST", base+"/item/settings", rw(), `{"data":{"_id":"6b00000000000000000000ff","site_name":"x"}}`)
		if a.status != 200 || a.obj["_id"] != "6b00000000000000000000ff" || a.obj["_model"] != "settings" {
			t.Fatalf("the answer is the merged item: %s", a.raw)
		}
		if it, _ := s.Item("settings", "6b0000000000000000000031"); it["site_name"] != "keygate demo" {
			t.Errorf("written: %v", it)
		}
	})
	t.Run("update with its id", func(t *testing.T) {
		a := call(t, "POST", base+"/item/settings", rw(), `{"data":{"_id":"6b0000000000000000000031","site_name":"renamed"}}`)
		if a.obj["site_name"] != "renamed" || a.obj["_created"] == nil {
			t.Fatalf("the answer is the whole item: %s", a.raw)
		}
		if it, _ := s.Item("settings", "6b0000000000000000000031"); it["site_name"] != "renamed" {
			t.Errorf("not written: %v", it)
		}
	})
	t.Run("never saved", func(t *testing.T) {
		e := New(WithoutSeed())
		ets := e.Start()
		defer ets.Close()
		if a := call(t, "GET", e.URL()+"/api/content/item/settings/x", rw(), ""); a.raw != `{"site_name":null,"_model":"settings"}` {
			t.Fatalf("%s", a.raw)
		}
	})
}

func TestStoredAsPHPArrays(t *testing.T) { // J4
	s := New()
	ts := s.Start()
	defer ts.Close()
	a := call(t, "POST", s.URL()+"/api/content/item/posts", rw(), `{"data":{"title":"E","tags":{},"body":{"a":{},"0":"x"},"views":{"0":"a","1":"b"}}}`)
	want := `"body":{"a":[],"0":"x"},"featured":false,"tags":[],"views":["a","b"]`
	if !strings.Contains(a.raw, want) {
		t.Fatalf("got %s\nwant it to contain %s", a.raw, want)
	}
	g := call(t, "GET", s.URL()+"/api/content/item/posts/"+a.obj["_id"].(string), rw(), "")
	if !strings.Contains(g.raw, want) {
		t.Errorf("stored: %s", g.raw)
	}
}

func TestFieldsAddedLater(t *testing.T) { // W8
	s := New()
	ts := s.Start()
	defer ts.Close()
	s.AddField("authors", Field{Name: "born", Type: "number"})
	old := call(t, "GET", s.URL()+"/api/content/item/authors/6b0000000000000000000011", rw(), "")
	if _, has := old.obj["born"]; has {
		t.Fatalf("an old item gained the new field: %s", old.raw)
	}
	created := call(t, "POST", s.URL()+"/api/content/item/authors", rw(), `{"data":{"title":"Hedy Lamarr","born":1914}}`)
	if created.obj["born"] != 1914.0 {
		t.Fatalf("create dropped the new field: %s", created.raw)
	}
	upd := call(t, "POST", s.URL()+"/api/content/item/authors", rw(), `{"data":{"_id":"6b0000000000000000000011","born":1815}}`)
	if upd.raw[:len(`{"_id":"6b0000000000000000000011","born":1815,"_modified":`)] != `{"_id":"6b0000000000000000000011","born":1815,"_modified":` {
		t.Fatalf("update echo: %s", upd.raw)
	}
	after := call(t, "GET", s.URL()+"/api/content/item/authors/6b0000000000000000000011", rw(), "")
	if !strings.HasSuffix(after.raw, `"_id":"6b0000000000000000000011","born":1815}`) {
		t.Errorf("the new key is appended to the stored document: %s", after.raw)
	}
}

func TestNonASCIIIsEscaped(t *testing.T) { // J2
	s := New()
	ts := s.Start()
	defer ts.Close()
	a := call(t, "POST", s.URL()+"/api/content/item/authors", rw(), `{"data":{"title":"Émilie du Châtelet 🚀","bio":"<b>a/b</b>"}}`)
	if !strings.Contains(a.raw, `"title":"\u00c9milie du Ch\u00e2telet \ud83d\ude80","slug":null,"bio":"<b>a\/b<\/b>"`) {
		t.Fatalf("%s", a.raw)
	}
	if a.obj["title"] != "Émilie du Châtelet 🚀" {
		t.Errorf("decoded %v", a.obj["title"])
	}
}
