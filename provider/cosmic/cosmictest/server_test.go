package cosmictest

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
	body   map[string]any
	raw    string
}

func call(t *testing.T, method, u, auth, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: string(b)}
	_ = json.Unmarshal(b, &a.body)
	return a
}

func objectsURL(s *Server, params url.Values) string {
	return s.APIURL() + "/buckets/" + s.Bucket() + "/objects?" + params.Encode()
}

func TestAuth(t *testing.T) {
	s := New()
	ts := s.Start()
	defer ts.Close()
	list := func(v url.Values) string { return objectsURL(s, v) }
	tests := []struct {
		name         string
		method, url  string
		auth, body   string
		status       int
		wantMessage  string
		wantEnvelope string
	}{
		{"read key in query", "GET", list(url.Values{"read_key": {DemoReadKey}, "query": {`{"type":"posts"}`}}), "", "", 200, "", "objects"},
		{"no read key", "GET", list(url.Values{"query": {`{"type":"posts"}`}}), "", "", 401, "Unauthorized: invalid read_key", ""},
		{"read key as Bearer is not accepted", "GET", list(url.Values{"query": {`{"type":"posts"}`}}), "Bearer " + DemoReadKey, "", 401, "", ""},
		{"write key as read_key is not accepted", "GET", list(url.Values{"read_key": {DemoWriteKey}}), "", "", 401, "", ""},
		{"write with Bearer write key", "POST", list(nil), "Bearer " + DemoWriteKey, `{"title":"T","type":"posts"}`, 200, "", "object"},
		{"write with read key", "POST", list(nil), "Bearer " + DemoReadKey, `{"title":"T2","type":"posts"}`, 401, "Unauthorized: invalid write_key", ""},
		{"write key in the query is not accepted", "POST", list(url.Values{"write_key": {DemoWriteKey}}), "", `{"title":"T3","type":"posts"}`, 401, "", ""},
		{"unknown bucket", "GET", s.APIURL() + "/buckets/nope/objects?read_key=" + DemoReadKey, "", "", 404, "bucket with slug: 'nope' not found", ""},
		{"PAT on dapi", "GET", s.DAPIURL() + "/users/get", "Bearer " + DemoPAT, "", 200, "", "user"},
		{"write key on dapi", "GET", s.DAPIURL() + "/users/get", "Bearer " + DemoWriteKey, "", 401, "Unauthorized", ""},
		{"agent key on users", "GET", s.DAPIURL() + "/users/get", "Bearer " + DemoAgentKey, "", 401, "", ""},
		{"agent status", "GET", s.DAPIURL() + "/agents/status", "Bearer " + DemoAgentKey, "", 200, "", "claim_status"},
		{"PAT on agent status", "GET", s.DAPIURL() + "/agents/status", "Bearer " + DemoPAT, "", 401, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, tc.method, tc.url, tc.auth, tc.body)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.raw)
			}
			if tc.wantMessage != "" && a.body["message"] != tc.wantMessage {
				t.Errorf("message %v", a.body["message"])
			}
			if tc.status >= 400 && tc.method != "" && strings.HasPrefix(tc.url, s.APIURL()) {
				if st, _ := a.body["status"].(float64); int(st) != tc.status {
					t.Errorf("error body lacks status: %s", a.raw)
				}
			}
			if tc.wantEnvelope != "" {
				if _, ok := a.body[tc.wantEnvelope]; !ok {
					t.Errorf("no %q in %s", tc.wantEnvelope, a.raw)
				}
			}
		})
	}
}

func TestPublicReadBucket(t *testing.T) {
	s := New(WithReadKey(""))
	ts := s.Start()
	defer ts.Close()
	if a := call(t, "GET", s.APIURL()+"/buckets/"+DemoBucket+"/object-types", "", ""); a.status != 200 {
		t.Fatalf("keyless read: %d", a.status)
	}
}

func TestQuirks(t *testing.T) {
	s := New()
	ts := s.Start()
	defer ts.Close()
	rk := url.Values{"read_key": {DemoReadKey}}

	t.Run("empty list is a 404", func(t *testing.T) {
		a := call(t, "GET", objectsURL(s, url.Values{"read_key": {DemoReadKey}, "query": {`{"type":"pages"}`}}), "", "")
		if a.status != 404 || a.body["status"] != 404.0 || a.body["message"] == "" {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	})
	t.Run("empty object types is a 404", func(t *testing.T) {
		e := New(WithoutSeed())
		ets := e.Start()
		defer ets.Close()
		if a := call(t, "GET", e.APIURL()+"/buckets/"+DemoBucket+"/object-types?"+rk.Encode(), "", ""); a.status != 404 {
			t.Fatalf("%d", a.status)
		}
	})
	for _, path := range []string{
		s.APIURL() + "/buckets",            // observed upstream
		s.APIURL() + "/users/get",          // a dapi path on the api host
		s.DAPIURL() + "/buckets/x/objects", // an api path on the dapi host
		ts.URL + "/v3/somewhere",           // no host prefix at all
		s.APIURL() + "/buckets/" + DemoBucket + "/objects/x/y",
	} {
		t.Run("unrouted "+strings.TrimPrefix(path, ts.URL), func(t *testing.T) {
			a := call(t, "GET", path, "", "")
			if a.status != 200 || a.body["message"] != "Route not found" || a.body["hints"] == nil {
				t.Fatalf("%d %s", a.status, a.raw)
			}
		})
	}
	t.Run("PUT is unrouted", func(t *testing.T) {
		a := call(t, "PUT", s.APIURL()+"/buckets/"+DemoBucket+"/objects/65a000000000000000000001", "Bearer "+DemoWriteKey, `{}`)
		if a.status != 200 || a.body["message"] != "Route not found" {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	})
	t.Run("default status is published", func(t *testing.T) {
		a := call(t, "GET", objectsURL(s, url.Values{"read_key": {DemoReadKey}, "query": {`{"type":"posts"}`}}), "", "")
		if a.body["total"] != 3.0 {
			t.Fatalf("%s", a.raw)
		}
		a = call(t, "GET", objectsURL(s, url.Values{"read_key": {DemoReadKey}, "query": {`{"type":"posts"}`}, "status": {"any"}}), "", "")
		if a.body["total"] != 5.0 {
			t.Fatalf("%s", a.raw)
		}
	})
	t.Run("bad query JSON", func(t *testing.T) {
		a := call(t, "GET", objectsURL(s, url.Values{"read_key": {DemoReadKey}, "query": {`{type`}}), "", "")
		if a.status != 400 || a.body["status"] != 400.0 {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	})
	t.Run("get one", func(t *testing.T) {
		a := call(t, "GET", s.APIURL()+"/buckets/"+DemoBucket+"/objects/65a000000000000000000001?"+rk.Encode(), "", "")
		obj, _ := a.body["object"].(map[string]any)
		if a.status != 200 || obj["slug"] != "hello-world" {
			t.Fatalf("%d %s", a.status, a.raw)
		}
		a = call(t, "GET", s.APIURL()+"/buckets/"+DemoBucket+"/objects/65a000000000000000000003?"+rk.Encode(), "", "")
		if a.status != 404 {
			t.Errorf("a draft without status=any: %d", a.status)
		}
	})
}

func TestQueries(t *testing.T) {
	s := New()
	ts := s.Start()
	defer ts.Close()
	tests := []struct {
		query string
		props string
		want  int
	}{
		{`{"type":"posts","metadata.author":"ada"}`, "", 2},
		{`{"type":"posts","metadata.tags":{"$in":["digest","opinion"]}}`, "", 2},
		{`{"type":"posts","metadata.tags":{"$all":["news","digest"]}}`, "", 1},
		{`{"type":"posts","metadata.views":{"$gt":10,"$lte":120}}`, "", 2},
		{`{"type":"posts","metadata.author":{"$nin":["ada","grace"]}}`, "", 1},
		{`{"type":"posts","$or":[{"slug":"hello-world"},{"slug":"draft-ideas"}]}`, "", 2},
		{`{"type":"posts","$and":[{"metadata.views":{"$gt":1}},{"metadata.views":{"$lt":100}}]}`, "", 2},
		{`{"type":"posts","$nor":[{"metadata.author":"ada"}]}`, "", 3},
		{`{"type":"posts","title":{"$regex":"^hello","$options":"i"}}`, "", 1},
		{`{"type":"posts","metadata.views":{"$not":{"$gt":50}}}`, "", 3},
		{`{"type":"posts","created_at":{"$gte":"2026-01-09"}}`, "", 2},
		{`{"type":"posts","id":"65a000000000000000000002"}`, "id,metadata.author", 1},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			v := url.Values{"read_key": {DemoReadKey}, "query": {tc.query}, "status": {"any"}}
			if tc.props != "" {
				v.Set("props", tc.props)
			}
			a := call(t, "GET", objectsURL(s, v), "", "")
			if a.body["total"] != float64(tc.want) {
				t.Fatalf("total %v, want %d: %s", a.body["total"], tc.want, a.raw)
			}
			if tc.props != "" {
				obj := a.body["objects"].([]any)[0].(map[string]any)
				if len(obj) != 2 || obj["metadata"].(map[string]any)["author"] != "grace" {
					t.Errorf("projection %v", obj)
				}
			}
		})
	}
	t.Run("limit and skip", func(t *testing.T) {
		v := url.Values{"read_key": {DemoReadKey}, "query": {`{"type":"posts"}`}, "status": {"any"}, "limit": {"2"}, "skip": {"4"}, "sort": {"created_at"}}
		a := call(t, "GET", objectsURL(s, v), "", "")
		objs, _ := a.body["objects"].([]any)
		if a.body["total"] != 5.0 || len(objs) != 1 || objs[0].(map[string]any)["slug"] != "weekly-digest" {
			t.Fatalf("%s", a.raw)
		}
		if a.body["limit"] != 2.0 {
			t.Errorf("limit not echoed: %s", a.raw)
		}
	})
}

func TestWrites(t *testing.T) {
	s := New()
	ts := s.Start()
	defer ts.Close()
	auth := "Bearer " + DemoWriteKey
	base := s.APIURL() + "/buckets/" + DemoBucket + "/objects"
	a := call(t, "POST", base, auth, `{"title":"New post","type":"posts","metadata":{"author":"ada"}}`)
	obj, _ := a.body["object"].(map[string]any)
	if a.status != 200 || obj["slug"] != "new-post" || obj["status"] != DefaultCreateStatus || len(obj["id"].(string)) != 24 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	id := obj["id"].(string)
	if a := call(t, "POST", base, auth, `{"title":"New post","type":"posts"}`); a.status != 400 {
		t.Errorf("duplicate slug: %d", a.status)
	}
	if a := call(t, "POST", base, auth, `{"title":"X","type":"authors","metadata":{}}`); a.status != 400 || !strings.HasPrefix(a.body["message"].(string), "Metafield validation") {
		t.Errorf("metafield validation: %d %s", a.status, a.raw)
	}
	a = call(t, "PATCH", base+"/"+id, auth, `{"metadata":{"body":"b"}}`)
	obj, _ = a.body["object"].(map[string]any)
	meta := obj["metadata"].(map[string]any)
	if a.status != 200 || meta["body"] != "b" {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if meta["author"] != "ada" {
		t.Errorf("PATCH dropped a metafield it was not given: %v", meta)
	}
	if a := call(t, "PATCH", base+"/000000000000000000000000", auth, `{"title":"x"}`); a.status != 404 || a.body["status"] != 404.0 {
		t.Errorf("patch missing: %d %s", a.status, a.raw)
	}
	if a := call(t, "DELETE", base+"/"+id, auth, ""); a.status != 200 || a.body["message"] != "Object with id '"+id+"' deleted successfully from bucket." {
		t.Errorf("delete: %d %s", a.status, a.raw)
	}
	if a := call(t, "DELETE", base+"/"+id, auth, ""); a.status != 404 {
		t.Errorf("delete again: %d", a.status)
	}
	if _, ok := s.Object(id); ok {
		t.Error("still stored")
	}
}

func TestAgentFlow(t *testing.T) {
	s := New()
	ts := s.Start()
	defer ts.Close()
	ai := s.WorkersURL() + "/buckets/" + DemoBucket + "/ai/text"
	a := call(t, "POST", ai, "Bearer "+DemoWriteKey, `{"prompt":"hi"}`)
	if a.status != 402 || a.body["code"] != "agent_unclaimed_limit" || a.body["action"] != "ai_generate" {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if a := call(t, "POST", s.DAPIURL()+"/agents/verify", "Bearer "+DemoAgentKey, `{"code":"000000"}`); a.status != 400 {
		t.Errorf("wrong code: %d", a.status)
	}
	if a := call(t, "POST", s.DAPIURL()+"/agents/verify", "Bearer "+DemoAgentKey, `{"code":"`+DemoOTP+`"}`); a.status != 200 || !s.AgentClaimed() {
		t.Fatalf("verify: %d", a.status)
	}
	st := call(t, "GET", s.DAPIURL()+"/agents/status", "Bearer "+DemoAgentKey, "")
	if st.body["auth_type"] != "verified" || st.body["plan_id"] != "free" {
		t.Errorf("status %s", st.raw)
	}
	if a := call(t, "POST", ai, "Bearer "+DemoWriteKey, `{"prompt":"hi"}`); a.status != 200 || a.body["text"] == nil {
		t.Errorf("claimed AI: %d %s", a.status, a.raw)
	}
}

func TestInjection(t *testing.T) {
	s := New()
	ts := s.Start()
	defer ts.Close()
	s.FailNextRequest("DELETE", "", 503, map[string]string{"Retry-After": "1"}, `{"status":503,"message":"x"}`)
	path := s.BucketPath("/object-types")
	if a := call(t, "GET", s.APIURL()+"/buckets/"+DemoBucket+"/object-types?read_key="+DemoReadKey, "", ""); a.status != 200 {
		t.Fatalf("a GET took a DELETE's failure: %d", a.status)
	}
	if s.Requests(path) != 1 {
		t.Errorf("Requests = %d", s.Requests(path))
	}
	a := call(t, "DELETE", s.APIURL()+"/buckets/"+DemoBucket+"/objects/65a000000000000000000001", "Bearer "+DemoWriteKey, "")
	if a.status != 503 {
		t.Fatalf("%d", a.status)
	}
	if _, ok := s.Object("65a000000000000000000001"); !ok {
		t.Error("a failed DELETE took effect")
	}
	s.DropAnswerTo("DELETE", "")
	req, _ := http.NewRequest("DELETE", s.APIURL()+"/buckets/"+DemoBucket+"/objects/65a000000000000000000001", nil)
	req.Header.Set("Authorization", "Bearer "+DemoWriteKey)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("an answer came back")
	}
	if _, ok := s.Object("65a000000000000000000001"); ok {
		t.Error("a dropped DELETE did not take effect")
	}
}

// TestPatchMerges: PATCH changes only the metafields it is given, as the
// official clients rely on, and refuses a body without any documented
// parameter.
func TestPatchMerges(t *testing.T) {
	s := New()
	ts := s.Start()
	defer ts.Close()
	auth := "Bearer " + DemoWriteKey
	u := s.APIURL() + "/buckets/" + DemoBucket + "/objects/65a000000000000000000001"
	before, _ := s.Object("65a000000000000000000001")
	a := call(t, "PATCH", u, auth, `{"metadata":{"author":"grace","tags":["x"]}}`)
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	after, _ := s.Object("65a000000000000000000001")
	if after.Metadata["author"] != "grace" || after.Metadata["body"] != before.Metadata["body"] || after.Metadata["views"] != before.Metadata["views"] {
		t.Errorf("metadata after PATCH: %v", after.Metadata)
	}
	if after.Title != before.Title || after.Slug != before.Slug {
		t.Errorf("PATCH changed what it was not given: %+v", after)
	}
	for _, body := range []string{`{}`, `{"unknown":1}`} {
		if a := call(t, "PATCH", u, auth, body); a.status != 400 || a.body["status"] != 400.0 {
			t.Errorf("PATCH %s: %d %s", body, a.status, a.raw)
		}
	}
	if got, _ := s.Object("65a000000000000000000001"); got.ModifiedAt != after.ModifiedAt {
		t.Error("a refused PATCH changed the object")
	}
}

// TestWriteKeyCheckOrder: by default the key is checked before the object
// is looked up; WithObjectLookupBeforeWriteKey reverses the order.
func TestWriteKeyCheckOrder(t *testing.T) {
	missing := "/objects/000000000000000000000000"
	for _, tc := range []struct {
		name   string
		opts   []Option
		status int
	}{
		{"key first", nil, 401},
		{"lookup first", []Option{WithObjectLookupBeforeWriteKey()}, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(tc.opts...)
			ts := s.Start()
			defer ts.Close()
			u := s.APIURL() + "/buckets/" + DemoBucket
			if a := call(t, "PATCH", u+missing, "Bearer not-the-write-key", `{"title":"x"}`); a.status != tc.status {
				t.Errorf("wrong key, missing object: %d %s", a.status, a.raw)
			}
			if a := call(t, "PATCH", u+"/objects/65a000000000000000000001", "Bearer not-the-write-key", `{"title":"x"}`); a.status != 401 {
				t.Errorf("wrong key, existing object: %d %s", a.status, a.raw)
			}
		})
	}
}

// TestAgentStatusShape: the members of the official CLI's
// AgentStatusResponse, with no bucket keys.
func TestAgentStatusShape(t *testing.T) {
	s := New()
	ts := s.Start()
	defer ts.Close()
	a := call(t, "GET", s.DAPIURL()+"/agents/status", "Bearer "+DemoAgentKey, "")
	for _, k := range []string{"auth_type", "claim_status", "plan_id", "limits", "auto_delete_after_days", "access_token", "project", "bucket", "agent_id", "client", "human_email"} {
		if _, ok := a.body[k]; !ok {
			t.Errorf("no %q in %s", k, a.raw)
		}
	}
	if _, ok := a.body["plan"]; ok {
		t.Error(`"plan" instead of "plan_id"`)
	}
	if strings.Contains(a.raw, DemoReadKey) || strings.Contains(a.raw, DemoWriteKey) {
		t.Errorf("the status carries bucket keys: %s", a.raw)
	}
}
