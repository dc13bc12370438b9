package agrentingtest

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/provider/internal/providertest"
)

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func (a answer) data() any { return a.body["data"] }

func (a answer) code() string {
	errs, _ := a.body["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	return errs[0].(map[string]any)["code"].(string)
}

func call(t *testing.T, base, method, path string, headers map[string]string, body string) answer {
	t.Helper()
	a := providertest.Call(t, method, base+"/api/v1"+path, headers, body)
	if a.Body == nil {
		t.Fatalf("%s %s: an empty answer, not an envelope", method, path)
	}
	return answer{status: a.Status, header: a.Header, body: a.Body}
}

func key(k string) map[string]string { return map[string]string{"X-API-Key": k} }

func with(h map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestAuthAndEnvelopes(t *testing.T) {
	s := New()
	hs := s.Start()
	defer hs.Close()
	user := map[string]string{"Authorization": "Bearer " + DemoUserToken}
	cases := []struct {
		name    string
		headers map[string]string
		status  int
		code    string
	}{
		{"agent key", key(DemoAgentKey), 200, ""},
		{"Api-Key header", map[string]string{"Api-Key": DemoAgentKey}, 200, ""},
		{"user token with agent", with(user, "X-Agent-ID", DemoAgentID), 200, ""},
		{"user token in X-API-Key", map[string]string{"X-API-Key": DemoUserToken, "X-Agent-ID": DemoAgentID}, 200, ""},
		{"user token, several agents, no X-Agent-ID", user, 403, "FORBIDDEN"},
		{"user token, not their agent", with(user, "X-Agent-ID", "someone-else"), 403, "FORBIDDEN"},
		{"nothing", nil, 401, "UNAUTHORIZED"},
		{"wrong key", key("agr_wrong_wrong_wrong"), 401, "UNAUTHORIZED"},
		{"agent key as Bearer", map[string]string{"Authorization": "Bearer " + DemoAgentKey}, 401, "UNAUTHORIZED"},
		{"X-API-Key wins over Bearer", with(key(DemoAgentKey), "Authorization", "Bearer nonsense"), 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, hs.URL, "GET", "/tasks", tc.headers, "")
			if a.status != tc.status || a.code() != tc.code {
				t.Fatalf("%d %s, want %d %s: %v", a.status, a.code(), tc.status, tc.code, a.body)
			}
			m, _ := a.body["meta"].(map[string]any)
			if m["version"] != "1.0" || m["request_id"] == nil {
				t.Errorf("meta %v", m)
			}
			if tc.status != 200 {
				if _, has := a.body["data"]; !has || a.body["data"] != nil {
					t.Errorf("error envelope without data:null: %v", a.body)
				}
			}
		})
	}
	// Sessions.
	a := call(t, hs.URL, "POST", "/auth/authenticate", key(DemoAgentKey), "")
	d := a.data().(map[string]any)
	tok := d["token"].(string)
	if a.status != 200 || d["agent"].(map[string]any)["id"] != DemoAgentID || d["agent"].(map[string]any)["name"] != DemoAgentName {
		t.Fatalf("authenticate: %v", a.body)
	}
	if a := call(t, hs.URL, "GET", "/tasks", map[string]string{"Authorization": "Bearer " + tok}, ""); a.status != 200 {
		t.Errorf("session: %d", a.status)
	}
	// Logout "requires the X-API-Key header": a session alone is refused
	// and stays; with the key, the Bearer-named session ends.
	if a := call(t, hs.URL, "DELETE", "/auth/logout", map[string]string{"Authorization": "Bearer " + tok}, ""); a.status != 401 || a.code() != "UNAUTHORIZED" {
		t.Errorf("logout without X-API-Key: %d %s", a.status, a.code())
	}
	if a := call(t, hs.URL, "GET", "/tasks", map[string]string{"Authorization": "Bearer " + tok}, ""); a.status != 200 {
		t.Errorf("session after a refused logout: %d", a.status)
	}
	if a := call(t, hs.URL, "DELETE", "/auth/logout", with(key(DemoAgentKey), "Authorization", "Bearer "+tok), ""); a.status != 200 {
		t.Errorf("logout: %d %v", a.status, a.body)
	}
	if a := call(t, hs.URL, "GET", "/tasks", map[string]string{"Authorization": "Bearer " + tok}, ""); a.status != 401 {
		t.Errorf("after logout: %d", a.status)
	}
	if a := call(t, hs.URL, "GET", "/nowhere", key(DemoAgentKey), ""); a.status != 404 || a.code() != "ROUTE_NOT_FOUND" {
		t.Errorf("unknown route: %d %s", a.status, a.code())
	}
}

func TestAuthenticateLockout(t *testing.T) {
	clk := providertest.NewClock()
	s := New(WithClock(clk.Now))
	hs := s.Start()
	defer hs.Close()
	for i := range AuthLimit {
		if a := call(t, hs.URL, "POST", "/auth/authenticate", key(DemoAgentKey), ""); a.status != 200 {
			t.Fatalf("try %d: %d", i+1, a.status)
		}
	}
	a := call(t, hs.URL, "POST", "/auth/authenticate", key(DemoAgentKey), "")
	if a.status != 429 || a.code() != "RATE_LIMIT_EXCEEDED" || !strings.Contains(a.body["errors"].([]any)[0].(map[string]any)["message"].(string), "Retry after 300 seconds") {
		t.Fatalf("11th: %d %v", a.status, a.body)
	}
	clk.Advance(2 * time.Minute) // the window passed, the lockout did not
	if a := call(t, hs.URL, "POST", "/auth/authenticate", key(DemoAgentKey), ""); a.status != 429 {
		t.Errorf("during lockout: %d", a.status)
	}
	clk.Advance(3 * time.Minute)
	if a := call(t, hs.URL, "POST", "/auth/authenticate", key(DemoAgentKey), ""); a.status != 200 {
		t.Errorf("after lockout: %d", a.status)
	}
}

// rawHeaders reads a response's header lines as sent, to see their case.
func rawHeaders(t *testing.T, base, path string, headers map[string]string) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	b.WriteString("GET /api/v1" + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n")
	for k, v := range headers {
		b.WriteString(k + ": " + v + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := conn.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	var head strings.Builder
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil || line == "\r\n" {
			break
		}
		head.WriteString(line)
	}
	return head.String()
}

func TestRateLimitHeaders(t *testing.T) {
	clk := providertest.NewClock()
	s := New(WithClock(clk.Now), WithRateLimit(3))
	hs := s.Start()
	defer hs.Close()
	head := rawHeaders(t, hs.URL, "/tasks", key(DemoAgentKey))
	if !strings.Contains(head, "x-ratelimit-limit: 3\r\n") || !strings.Contains(head, "x-ratelimit-remaining: 2\r\n") || strings.Contains(head, "retry-after") {
		t.Fatalf("headers as sent:\n%s", head)
	}
	call(t, hs.URL, "GET", "/tasks", key(DemoAgentKey), "")
	call(t, hs.URL, "GET", "/tasks", key(DemoAgentKey), "")
	head = rawHeaders(t, hs.URL, "/tasks", key(DemoAgentKey))
	if !strings.Contains(head, "429") || !strings.Contains(head, "retry-after: 60\r\n") || !strings.Contains(head, "x-ratelimit-remaining: 0\r\n") {
		t.Fatalf("limited headers:\n%s", head)
	}
	a := call(t, hs.URL, "GET", "/tasks", key(DemoAgentKey), "")
	if _, has := a.body["data"]; has || a.code() != "RATE_LIMIT_EXCEEDED" || a.body["meta"].(map[string]any)["version"] != "1.0" {
		t.Errorf("429 body %v", a.body)
	}
	clk.Advance(time.Minute)
	if a := call(t, hs.URL, "GET", "/tasks", key(DemoAgentKey), ""); a.status != 200 {
		t.Errorf("after the window: %d", a.status)
	}
}

func TestCursorPagination(t *testing.T) {
	s := New()
	hs := s.Start()
	defer hs.Close()
	k := key(DemoAgentKey)
	for range 4 {
		call(t, hs.URL, "POST", "/tasks", k, `{"capability":"summarize","input":"x"}`)
	}
	var ids []string
	path := "/tasks?limit=3"
	for {
		a := call(t, hs.URL, "GET", path, k, "")
		pg := a.body["meta"].(map[string]any)["pagination"].(map[string]any)
		if pg["total_count"].(float64) != 7 {
			t.Errorf("total_count %v", pg["total_count"])
		}
		for _, d := range a.data().([]any) {
			ids = append(ids, d.(map[string]any)["id"].(string))
		}
		if pg["has_more"] != true {
			if pg["cursor"] != nil {
				t.Errorf("last page cursor %v", pg["cursor"])
			}
			break
		}
		cur := pg["cursor"].(string)
		raw, _ := base64.RawURLEncoding.DecodeString(cur)
		if !strings.HasPrefix(string(raw), `{"offset":`) {
			t.Errorf("cursor %q decodes to %q", cur, raw)
		}
		path = "/tasks?limit=3&offset=0&cursor=" + cur // offset is ignored with a cursor
	}
	if len(ids) != 7 || ids[6] != "task_seed_1" {
		t.Errorf("ids %v", ids)
	}
	if a := call(t, hs.URL, "GET", "/tasks?cursor=!!", k, ""); a.status != 422 || a.code() != "VALIDATION_ERROR" {
		t.Errorf("bad cursor %d", a.status)
	}
	if a := call(t, hs.URL, "GET", "/tasks?offset=5", k, ""); len(a.data().([]any)) != 2 {
		t.Errorf("offset: %v", a.data())
	}
}

func TestIdempotencyStateMachine(t *testing.T) {
	clk := providertest.NewClock()
	s := New(WithClock(clk.Now))
	hs := s.Start()
	defer hs.Close()
	k := with(key(DemoAgentKey), "X-Idempotency-Key", "k1")
	body := `{"capability":"summarize","input":"once"}`
	first := call(t, hs.URL, "POST", "/tasks", k, body)
	if first.status != 201 {
		t.Fatalf("first %d", first.status)
	}
	again := call(t, hs.URL, "POST", "/tasks", k, body)
	if again.status != 200 || again.data().(map[string]any)["id"] != first.data().(map[string]any)["id"] {
		t.Fatalf("replay %d %v", again.status, again.body)
	}
	if n := len(s.Tasks()); n != 4 {
		t.Errorf("%d tasks, want one created", n)
	}
	if a := call(t, hs.URL, "POST", "/tasks", k, `{"capability":"summarize","input":"other"}`); a.status != 422 || a.code() != "IDEMPOTENCY_MISMATCH" {
		t.Errorf("mismatch %d %s", a.status, a.code())
	}
	// Keys are per agent: the other agent's k1 is a new request.
	other := map[string]string{"Authorization": "Bearer " + DemoUserToken, "X-Agent-ID": DemoOtherAgentID, "X-Idempotency-Key": "k1"}
	if a := call(t, hs.URL, "POST", "/tasks", other, body); a.status != 201 {
		t.Errorf("other agent: %d", a.status)
	}
	// failed_final is replayed, even after the cause is gone.
	s.SetBalance(DemoAgentID, 1)
	kf := with(key(DemoAgentKey), "X-Idempotency-Key", "k2")
	costly := `{"capability":"summarize","input":"x","max_price":"5.00"}`
	if a := call(t, hs.URL, "POST", "/tasks", kf, costly); a.status != 422 || a.code() != "INSUFFICIENT_BALANCE" {
		t.Fatalf("insufficient %d %s", a.status, a.code())
	}
	s.SetBalance(DemoAgentID, 100)
	if a := call(t, hs.URL, "POST", "/tasks", kf, costly); a.status != 422 || a.code() != "INSUFFICIENT_BALANCE" {
		t.Errorf("failed_final replay %d %s", a.status, a.code())
	}
	// Pending: a stalled request answers 409 to its key until it is done.
	s.StallNextOn("POST", "/api/v1/tasks", 3*time.Second)
	ks := with(key(DemoAgentKey), "X-Idempotency-Key", "k3")
	req, _ := http.NewRequestWithContext(t.Context(), "POST", hs.URL+"/api/v1/tasks", strings.NewReader(body))
	for h, v := range ks {
		req.Header.Set(h, v)
	}
	// A fresh connection: on a reused one Go's transport itself resends a
	// request carrying X-Idempotency-Key when the answer is lost.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := fresh.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("stalled request answered")
	}
	if a := call(t, hs.URL, "POST", "/tasks", ks, body); a.status != 409 || a.code() != "IDEMPOTENCY_PENDING" {
		t.Errorf("pending %d %s", a.status, a.code())
	}
	clk.Advance(3 * time.Second)
	if a := call(t, hs.URL, "POST", "/tasks", ks, body); a.status != 200 {
		t.Errorf("after the stall %d", a.status)
	}
	// After 24 h the key is forgotten.
	clk.Advance(IdempotencyTTL + time.Second)
	if a := call(t, hs.URL, "POST", "/tasks", k, body); a.status != 201 {
		t.Errorf("expired key %d", a.status)
	}
}

func TestCredentialsRotateRevoke(t *testing.T) {
	s := New()
	hs := s.Start()
	defer hs.Close()
	k := key(DemoAgentKey)
	list := call(t, hs.URL, "GET", "/agents/"+DemoAgentID+"/credentials", k, "")
	c0 := list.data().([]any)[0].(map[string]any)
	if c0["id"] != "cred_demo" || c0["key_prefix"] != DemoAgentKey[:8] || c0["last_four"] != DemoAgentKey[len(DemoAgentKey)-4:] {
		t.Fatalf("list %v", list.body)
	}
	if strings.Contains(fmtJSON(list.body), DemoAgentKey) {
		t.Fatal("the list shows a secret")
	}
	if a := call(t, hs.URL, "GET", "/agents/"+DemoOtherAgentID+"/credentials", k, ""); a.status != 403 {
		t.Errorf("another agent's credentials: %d", a.status)
	}
	// rotate-key with a session rotates the key that opened it.
	tok := call(t, hs.URL, "POST", "/auth/authenticate", k, "").data().(map[string]any)["token"].(string)
	rot := call(t, hs.URL, "POST", RotateKeyPath, map[string]string{"Authorization": "Bearer " + tok, "X-Idempotency-Key": "r1"}, "")
	newKey, _ := rot.data().(map[string]any)["api_key"].(string)
	if rot.status != 200 || newKey == "" || rot.data().(map[string]any)["message"] == nil {
		t.Fatalf("rotate %d %v", rot.status, rot.body)
	}
	if a := call(t, hs.URL, "GET", "/tasks", k, ""); a.status != 401 {
		t.Errorf("old key after rotate: %d", a.status)
	}
	// The same idempotency key replays the same new key, through the
	// session, which outlives the old key by default.
	again := call(t, hs.URL, "POST", RotateKeyPath, map[string]string{"Authorization": "Bearer " + tok, "X-Idempotency-Key": "r1"}, "")
	if again.status != 200 || again.data().(map[string]any)["api_key"] != newKey {
		t.Errorf("replay %d %v", again.status, again.body)
	}
	nk := key(newKey)
	if a := call(t, hs.URL, "GET", "/tasks", nk, ""); a.status != 200 {
		t.Errorf("new key: %d", a.status)
	}
	if a := call(t, hs.URL, "POST", RotateKeyPath, map[string]string{"Authorization": "Bearer " + DemoUserToken, "X-Agent-ID": DemoAgentID}, ""); a.status != 403 {
		t.Errorf("rotate-key with a user token: %d", a.status)
	}
	cr := call(t, hs.URL, "POST", "/agents/"+DemoAgentID+"/credentials", nk, `{"name":"ci"}`)
	id := cr.data().(map[string]any)["credential"].(map[string]any)["id"].(string)
	if cr.status != 201 || cr.data().(map[string]any)["api_key"] == "" {
		t.Fatalf("create %v", cr.body)
	}
	rv := call(t, hs.URL, "DELETE", "/agents/"+DemoAgentID+"/credentials/"+id, nk, "")
	if rv.status != 200 || rv.data().(map[string]any)["revoked_at"] == nil || rv.data().(map[string]any)["status"] != "revoked" {
		t.Errorf("revoke %v", rv.body)
	}
	if a := call(t, hs.URL, "DELETE", "/agents/"+DemoAgentID+"/credentials/nope", nk, ""); a.status != 404 || a.code() != "NOT_FOUND" {
		t.Errorf("revoke unknown %d", a.status)
	}
}

// The options for what no source settles.
func TestUndocumentedOptions(t *testing.T) {
	s := New(WithoutCredentialList(), WithRotateAnswer(AnswerKeyOnly), WithSessionsEndingWithKey())
	hs := s.Start()
	defer hs.Close()
	k := key(DemoAgentKey)
	if a := call(t, hs.URL, "GET", "/agents/"+DemoAgentID+"/credentials", k, ""); a.status != 404 || a.code() != "ROUTE_NOT_FOUND" {
		t.Errorf("list off: %d %s", a.status, a.code())
	}
	if a := call(t, hs.URL, "POST", "/agents/"+DemoAgentID+"/credentials", k, `{}`); a.status != 201 {
		t.Errorf("create with the list off: %d", a.status)
	}
	tok := call(t, hs.URL, "POST", "/auth/authenticate", k, "").data().(map[string]any)["token"].(string)
	rot := call(t, hs.URL, "POST", RotateKeyPath, map[string]string{"Authorization": "Bearer " + tok, "X-Idempotency-Key": "r1"}, "")
	d := rot.data().(map[string]any)
	if rot.status != 200 || len(d) != 1 || d["key"] == nil {
		t.Fatalf("data.key answer %v", rot.body)
	}
	// The session ended with its key: the replay is refused.
	if a := call(t, hs.URL, "POST", RotateKeyPath, map[string]string{"Authorization": "Bearer " + tok, "X-Idempotency-Key": "r1"}, ""); a.status != 401 {
		t.Errorf("replay with an ended session: %d", a.status)
	}
	b := New(WithBareCredentialList())
	bs := b.Start()
	defer bs.Close()
	c0 := call(t, bs.URL, "GET", "/agents/"+DemoAgentID+"/credentials", k, "").data().([]any)[0].(map[string]any)
	if c0["id"] != "cred_demo" || c0["key_prefix"] != nil || c0["last_four"] != nil {
		t.Errorf("bare list %v", c0)
	}
}

func fmtJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestTasksAndArtifacts(t *testing.T) {
	s := New()
	hs := s.Start()
	defer hs.Close()
	k := key(DemoAgentKey)
	a := call(t, hs.URL, "POST", "/tasks", k, `{"capability":"","input":5,"max_price":"-1","execution_mode":"sync"}`)
	det := a.body["errors"].([]any)[0].(map[string]any)["details"].(map[string]any)
	if a.status != 422 || a.code() != "VALIDATION_ERROR" || det["capability"] == nil || det["input"] == nil || det["max_price"] == nil || det["execution_mode"] == nil {
		t.Fatalf("validation %v", a.body)
	}
	if a := call(t, hs.URL, "GET", "/tasks/nope", k, ""); a.status != 404 || a.code() != "NOT_FOUND" {
		t.Errorf("missing task %d", a.status)
	}
	many := make([]string, 51)
	for i := range many {
		many[i] = `{"artifact_type":"text","name":"n","content":"c"}`
	}
	if a := call(t, hs.URL, "POST", "/tasks/task_seed_1/artifacts", k, `{"artifacts":[`+strings.Join(many, ",")+`]}`); a.status != 422 {
		t.Errorf("51 artifacts: %d", a.status)
	}
	if a := call(t, hs.URL, "POST", "/tasks/task_seed_1/artifacts", k, `{"artifacts":[{"artifact_type":"video","name":"n","content":"c"},{"artifact_type":"image","name":"i","content":"not base64!"}]}`); a.status != 422 {
		t.Errorf("bad artifacts: %d", a.status)
	}
	a = call(t, hs.URL, "POST", "/tasks/task_seed_1/artifacts", k, `{"artifacts":[{"artifact_type":"image","name":"i.png","content":"iVBORw0KGgo="}]}`)
	img := a.data().([]any)[0].(map[string]any)
	if a.status != 201 || img["download_url"] == nil || img["content"] != nil {
		t.Errorf("image %v", a.body)
	}
	if a := call(t, hs.URL, "GET", "/tasks/task_seed_1/artifacts", k, ""); len(a.data().([]any)) != 3 {
		t.Errorf("artifacts %v", a.data())
	}
}
