package cockpittest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

type answer struct {
	status int
	header http.Header
	raw    string
	obj    map[string]any
	list   []any
}

type hdr map[string]string

func call(t *testing.T, method, u string, h hdr, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" && h["Content-Type"] == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &a.obj)
	_ = json.Unmarshal(b, &a.list)
	return a
}

func rw() hdr { return hdr{"api-key": DemoRWKey} }

func TestAuthentication(t *testing.T) {
	s := New()
	ts := s.Start()
	defer ts.Close()
	list := s.URL() + "/api/content/items/posts"
	bad := "API-" + strings.Repeat("9", 40)
	tests := []struct {
		name   string
		url    string
		h      hdr
		status int
		errMsg string
	}{
		{"no key, no public key", list, nil, 412, "Authentication failed"},
		{"api-key header", list, hdr{"api-key": DemoROKey}, 200, ""},
		{"Bearer", list, hdr{"Authorization": "Bearer " + DemoROKey}, 200, ""},
		{"lowercase bearer", list, hdr{"Authorization": "bearer " + DemoROKey}, 412, "Authentication failed"},
		{"api_key param", list + "?api_key=" + DemoROKey, nil, 200, ""},
		{"user key", list, hdr{"api-key": DemoUserKey}, 200, ""},
		{"bad key", list, hdr{"api-key": bad}, 412, "Authentication failed"},
		{"unknown USR key", list, hdr{"api-key": "USR-" + strings.Repeat("9", 40)}, 412, "Authentication failed"},
		{"JWT is anonymous: 403", list, hdr{"api-key": "aaa.bbb.ccc"}, 403, "Permission denied"},
		{"no role: 403", list, hdr{"api-key": DemoNoRoleKey}, 403, "Permission denied"},
		{"first source wins: a bad param beats a good header", list + "?api_key=" + bad, hdr{"api-key": DemoROKey}, 412, ""},
		{"first source wins: header beats Bearer", list, hdr{"api-key": bad, "Authorization": "Bearer " + DemoROKey}, 412, ""},
		{"healthcheck needs no key", s.URL() + "/api/system/healthcheck", nil, 200, ""},
		{"healthcheck ignores a bad key", s.URL() + "/api/system/healthcheck", hdr{"api-key": bad}, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, "GET", tc.url, tc.h, "")
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.raw)
			}
			if tc.errMsg != "" && a.obj["error"] != tc.errMsg {
				t.Errorf("body %s", a.raw)
			}
			if a.header.Get("Access-Control-Allow-Origin") != "*" {
				t.Error("no CORS header")
			}
		})
	}
	t.Run("api_key in a JSON body", func(t *testing.T) {
		a := call(t, "POST", s.URL()+"/api/content/item/posts", nil, `{"api_key":"`+DemoRWKey+`","data":{"title":"Body key"}}`)
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	})
	t.Run("public key", func(t *testing.T) {
		p := New(WithPublicKey("reader"))
		pts := p.Start()
		defer pts.Close()
		if a := call(t, "GET", p.URL()+"/api/content/items/posts", nil, ""); a.status != 200 {
			t.Fatalf("%d", a.status)
		}
	})
}

func TestReads(t *testing.T) {
	s := New()
	ts := s.Start()
	defer ts.Close()
	base := s.URL() + "/api/content"
	t.Run("bare array unless both limit and skip", func(t *testing.T) {
		a := call(t, "GET", base+"/items/posts", rw(), "")
		if a.list == nil || len(a.list) != 4 {
			t.Fatalf("%s", a.raw)
		}
		a = call(t, "GET", base+"/items/posts?limit=2", rw(), "")
		if a.list == nil || len(a.list) != 2 {
			t.Fatalf("limit only: %s", a.raw)
		}
		a = call(t, "GET", base+"/items/posts?limit=2&skip=1", rw(), "")
		meta, _ := a.obj["meta"].(map[string]any)
		if data, _ := a.obj["data"].([]any); len(data) != 2 || meta["total"] != 4.0 {
			t.Fatalf("limit and skip: %s", a.raw)
		}
	})
	t.Run("empty model is an empty array", func(t *testing.T) {
		e := New(WithoutSeed())
		ets := e.Start()
		defer ets.Close()
		if a := call(t, "GET", e.URL()+"/api/content/items/posts", rw(), ""); a.raw != "[]" {
			t.Fatalf("%s", a.raw)
		}
	})
	t.Run("key order and escaped slashes", func(t *testing.T) {
		a := call(t, "GET", base+"/item/posts/6b0000000000000000000001", rw(), "")
		want := `{"title":"Hello, world","slug":"hello-world","body":"<p>The first post.<\/p>","featured":true,"tags":["intro","news"],"views":120,"_state":1,"_modified":1767430800,"_mby":null,"_created":1767344400,"_cby":null,"_id":"6b0000000000000000000001"}`
		if a.raw != want {
			t.Fatalf("got  %s\nwant %s", a.raw, want)
		}
	})
	for _, tc := range []struct{ name, url string }{
		{"missing item", base + "/item/posts/6b00000000000000000000ff"},
		{"unpublished item", base + "/item/posts/6b0000000000000000000005"},
		{"no filter match", base + "/item/posts?filter=" + url.QueryEscape(`{"slug":"nope"}`)},
		{"unknown route", s.URL() + "/api/nothing/here"},
	} {
		t.Run(tc.name+" is an empty 404", func(t *testing.T) {
			a := call(t, "GET", tc.url, rw(), "")
			if a.status != 404 || a.raw != "" || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") {
				t.Fatalf("%d %q %s", a.status, a.raw, a.header.Get("Content-Type"))
			}
		})
	}
	t.Run("unknown model", func(t *testing.T) {
		a := call(t, "GET", base+"/items/nosuch", rw(), "")
		if a.status != 404 || a.obj["error"] != "Model <nosuch> not found" {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	})
	t.Run("invalid filter", func(t *testing.T) {
		a := call(t, "GET", base+"/items/posts?filter={nope", rw(), "")
		if a.status != 400 || a.obj["error"] != "<filter> is not valid json" {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	})
	t.Run("filter, sort and fields", func(t *testing.T) {
		q := url.Values{"filter": {`{"views":{"$gte":45}}`}, "sort": {`{"views":1}`}, "fields": {`{"title":1}`}}
		a := call(t, "GET", base+"/items/posts?"+q.Encode(), rw(), "")
		if a.raw != `[{"_id":"6b0000000000000000000002","title":"Second thoughts"},{"_id":"6b0000000000000000000001","title":"Hello, world"},{"_id":"6b0000000000000000000003","title":"Release notes"}]` {
			t.Fatalf("%s", a.raw)
		}
	})
	t.Run("first match by filter", func(t *testing.T) {
		a := call(t, "GET", base+"/item/authors?filter="+url.QueryEscape(`{"slug":"grace"}`), rw(), "")
		if a.obj["title"] != "Grace Hopper" {
			t.Fatalf("%s", a.raw)
		}
	})
	t.Run("several models; unreadable ones left out", func(t *testing.T) {
		s.SetPermission("reader", "content/authors/read", false)
		defer s.SetPermission("reader", "content/authors/read", true)
		a := call(t, "GET", base+"/items?models="+url.QueryEscape(`{"posts":{"limit":1},"authors":{}}`), hdr{"api-key": DemoROKey}, "")
		if _, ok := a.obj["authors"]; ok || len(a.obj["posts"].([]any)) != 1 {
			t.Fatalf("%s", a.raw)
		}
		if a := call(t, "GET", base+"/items", rw(), ""); a.status != 412 || a.obj["error"] != "<models> parameter is missing" {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	})
	t.Run("rspc cache runs before authentication", func(t *testing.T) {
		u := base + "/items/authors?rspc=1"
		if a := call(t, "GET", u, rw(), ""); a.status != 200 {
			t.Fatal(a.status)
		}
		a := call(t, "GET", u, hdr{"api-key": "API-" + strings.Repeat("9", 40)}, "")
		if a.status != 200 || a.header.Get("APP_RSP_CACHE") != "true" {
			t.Fatalf("%d %v", a.status, a.header)
		}
	})
	t.Run("unhealthy", func(t *testing.T) {
		s.SetUnhealthy(true)
		defer s.SetUnhealthy(false)
		a := call(t, "GET", s.URL()+"/api/system/healthcheck", nil, "")
		if a.status != 500 || a.obj["status"] != "error" || a.header.Get("X-Health-Checks") == "" {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	})
	t.Run("preflight", func(t *testing.T) {
		if a := call(t, "OPTIONS", base+"/items/posts", nil, ""); a.status != 200 || a.header.Get("Access-Control-Allow-Headers") == "" {
			t.Fatalf("%d", a.status)
		}
	})
}

func TestWrites(t *testing.T) {
	s := New()
	ts := s.Start()
	defer ts.Close()
	item := s.URL() + "/api/content/item/posts"
	t.Run("create returns the full published item", func(t *testing.T) {
		a := call(t, "POST", item, rw(), `{"data":{"title":"New","colour":"red"}}`)
		if a.status != 200 || a.obj["_state"] != 1.0 || a.obj["featured"] != false || a.obj["body"] != nil || a.obj["_cby"] != nil {
			t.Fatalf("%s", a.raw)
		}
		if _, ok := a.obj["colour"]; ok {
			t.Error("unknown key kept")
		}
		if _, ok := a.obj["body"]; !ok {
			t.Error("missing field not null")
		}
	})
	t.Run("form data", func(t *testing.T) {
		a := call(t, "POST", item, hdr{"api-key": DemoRWKey, "Content-Type": "application/x-www-form-urlencoded"}, "data%5Btitle%5D=Formed")
		if a.status != 200 || a.obj["title"] != "Formed" {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	})
	t.Run("user key writes carry the user", func(t *testing.T) {
		a := call(t, "POST", item, hdr{"api-key": DemoUserKey}, `{"data":{"title":"By user"}}`)
		if a.obj["_cby"] != "6a00000000000000000000a1" {
			t.Fatalf("%s", a.raw)
		}
	})
	for _, body := range []string{`{}`, `{"data":{}}`, `{"data":"x"}`, `not json`} {
		t.Run("missing data "+body, func(t *testing.T) {
			a := call(t, "POST", item, rw(), body)
			if a.status != 412 || a.obj["error"] != "Item data is missing" {
				t.Fatalf("%d %s", a.status, a.raw)
			}
		})
	}
	t.Run("read-only key cannot write", func(t *testing.T) {
		if a := call(t, "POST", item, hdr{"api-key": DemoROKey}, `{"data":{"title":"x"}}`); a.status != 403 || a.obj["error"] != "Permission denied" {
			t.Fatalf("%d %s", a.status, a.raw)
		}
		if a := call(t, "DELETE", item+"/6b0000000000000000000001", hdr{"api-key": DemoROKey}, ""); a.status != 403 {
			t.Fatalf("%d", a.status)
		}
	})
	t.Run("update echoes only the sent fields", func(t *testing.T) {
		a := call(t, "POST", item, rw(), `{"data":{"_id":"6b0000000000000000000002","title":"v2"}}`)
		if a.status != 200 || len(a.obj) != 4 || a.obj["title"] != "v2" || a.obj["_mby"] != nil || a.obj["_modified"] == nil {
			t.Fatalf("%s", a.raw)
		}
		stored, _ := s.Item("posts", "6b0000000000000000000002")
		if stored["title"] != "v2" || stored["body"] != "<p>More words.</p>" {
			t.Errorf("partial merge not stored: %v", stored)
		}
	})
	t.Run("update of a missing id writes nothing", func(t *testing.T) {
		n := len(s.Items("posts"))
		a := call(t, "POST", item, rw(), `{"data":{"_id":"6b00000000000000000000ff","title":"ghost"}}`)
		if a.status != 200 || a.obj["title"] != "ghost" || len(s.Items("posts")) != n {
			t.Fatalf("%d %s", a.status, a.raw)
		}
		if g := call(t, "GET", item+"/6b00000000000000000000ff", rw(), ""); g.status != 404 {
			t.Errorf("GET %d", g.status)
		}
	})
	t.Run("update without publish drops _state", func(t *testing.T) {
		call(t, "POST", s.URL()+"/api/content/item/pages", rw(), `{"data":{"_id":"6b0000000000000000000021","_state":0,"title":"About us"}}`)
		stored, _ := s.Item("pages", "6b0000000000000000000021")
		if stored["_state"] != 1.0 || stored["title"] != "About us" {
			t.Errorf("%v", stored)
		}
	})
	t.Run("create with _state 0 is invisible", func(t *testing.T) {
		a := call(t, "POST", item, rw(), `{"data":{"title":"Hidden","_state":0}}`)
		id := a.obj["_id"].(string)
		if g := call(t, "GET", item+"/"+id, rw(), ""); g.status != 404 {
			t.Errorf("GET %d", g.status)
		}
	})
	t.Run("delete succeeds for any id", func(t *testing.T) {
		for _, id := range []string{"6b0000000000000000000003", "6b0000000000000000000003", "not-an-id"} {
			a := call(t, "DELETE", item+"/"+id, rw(), "")
			if a.status != 200 || a.raw != `{"success":true}` {
				t.Fatalf("%d %s", a.status, a.raw)
			}
		}
		if _, ok := s.Item("posts", "6b0000000000000000000003"); ok {
			t.Error("not deleted")
		}
	})
	t.Run("singleton cannot be deleted", func(t *testing.T) {
		a := call(t, "DELETE", s.URL()+"/api/content/item/settings/6b0000000000000000000031", rw(), "")
		if a.status != 412 || a.obj["error"] != "DELETE method not allowed for <settings>" {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	})
	for _, m := range []string{"PUT", "PATCH"} {
		t.Run(m+" is not a route", func(t *testing.T) {
			a := call(t, m, item+"/6b0000000000000000000001", rw(), `{"data":{"title":"x"}}`)
			if a.status != 404 || a.raw != "" {
				t.Fatalf("%d %q", a.status, a.raw)
			}
		})
	}
}

func TestInjection(t *testing.T) {
	s := New()
	ts := s.Start()
	defer ts.Close()
	s.FailNextRequest("DELETE", "", 503, nil, "")
	if a := call(t, "GET", s.URL()+"/api/content/items/posts", rw(), ""); a.status != 200 {
		t.Fatalf("%d", a.status)
	}
	if a := call(t, "DELETE", s.URL()+"/api/content/item/posts/6b0000000000000000000001", rw(), ""); a.status != 503 {
		t.Fatalf("%d", a.status)
	}
	if s.Requests("/api/content/item/posts/6b0000000000000000000001") != 1 {
		t.Error("count")
	}
	if _, ok := s.Item("posts", "6b0000000000000000000001"); !ok {
		t.Error("a failed DELETE took effect")
	}
}
