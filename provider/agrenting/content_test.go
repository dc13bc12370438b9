package agrenting

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/agrenting/agrentingtest"
	"github.com/keygate/keygate/provider/internal/providertest"
)

func TestTypes(t *testing.T) {
	f := newFixture(t, keyEnv())
	types, err := f.c.Types(t.Context())
	if err != nil || len(types) != 2 || types[0].Name != "tasks" || types[1].Name != "artifacts" || types[0].Count != -1 {
		t.Fatalf("%+v %v", types, err)
	}
}

func TestListTasksPages(t *testing.T) {
	f := newFixture(t, keyEnv())
	ctx := t.Context()
	q := provider.ListQuery{Type: "tasks", Limit: 2}
	var ids []string
	for {
		p, err := f.c.List(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != 3 {
			t.Errorf("Total %d", p.Total)
		}
		for _, o := range p.Objects {
			ids = append(ids, o.ID)
			if o.Type != "tasks" || o.Status != "published" || o.Slug != o.ID || o.CreatedAt.IsZero() || o.ModifiedAt.Before(o.CreatedAt) {
				t.Errorf("%+v", o)
			}
		}
		if p.NextCursor == "" {
			break
		}
		q.Cursor = p.NextCursor
	}
	if strings.Join(ids, ",") != "task_seed_3,task_seed_2,task_seed_1" {
		t.Errorf("ids %v", ids)
	}
	p, err := f.c.List(ctx, provider.ListQuery{Type: "tasks", Limit: 10, Filter: []provider.Condition{providertest.Eq("fields.status", "completed")}})
	if err != nil || len(p.Objects) != 1 || providertest.FieldsOf(t, p.Objects[0])["status"] != "completed" || p.Objects[0].Title != "summarize: Summarize the keygate README" {
		t.Fatalf("%+v %v", p, err)
	}
	p, err = f.c.List(ctx, provider.ListQuery{Type: "tasks", Limit: 10, Status: "draft"})
	if err != nil || len(p.Objects) != 0 {
		t.Fatalf("drafts %+v", p)
	}
}

func TestListRefusals(t *testing.T) {
	f := newFixture(t, keyEnv())
	cases := []struct {
		q     provider.ListQuery
		field string
	}{
		{provider.ListQuery{Type: "tasks", Filter: []provider.Condition{providertest.Eq("fields.capability", "x")}}, "filter"},
		{provider.ListQuery{Type: "tasks", Filter: []provider.Condition{providertest.Eq("status", "published")}}, "filter"},
		{provider.ListQuery{Type: "tasks", Filter: []provider.Condition{{Path: "fields.status", Op: provider.OpIn, Value: []any{"a"}}}}, "filter"},
		{provider.ListQuery{Type: "tasks", Sort: []provider.SortKey{{Path: "title"}}}, "sort"},
		{provider.ListQuery{Type: "artifacts"}, "filter"},
		{provider.ListQuery{Type: "artifacts", Filter: []provider.Condition{providertest.Eq("fields.task_id", "a/b")}}, "filter"},
		{provider.ListQuery{Type: "artifacts", Filter: []provider.Condition{providertest.Eq("fields.task_id", "task_seed_1"), providertest.Eq("fields.name", "x")}}, "filter"},
	}
	for _, tc := range cases {
		tc.q.Limit = 5
		_, err := f.c.List(t.Context(), tc.q)
		providertest.WantFieldError(t, err, tc.field)
	}
	_, err := f.c.List(t.Context(), provider.ListQuery{Type: "posts", Limit: 5})
	providertest.WantNotFound(t, err, "content type")
	if f.fake.Requests("/api/v1/tasks") != 0 {
		t.Error("a refusal made a request")
	}
	_, err = f.c.List(t.Context(), provider.ListQuery{Type: "artifacts", Limit: 5, Filter: []provider.Condition{providertest.Eq("task_id", "task_nope")}})
	providertest.WantFieldError(t, err, "filter")
	_, err = f.c.List(t.Context(), provider.ListQuery{Type: "tasks", Limit: 5, Cursor: "!!"})
	providertest.WantFieldError(t, err, "cursor")
}

func TestGetTask(t *testing.T) {
	f := newFixture(t, keyEnv())
	o, err := f.c.Get(t.Context(), "tasks", provider.Ref{ID: "task_seed_2"})
	if err != nil || o.ID != "task_seed_2" || providertest.FieldsOf(t, o)["capability"] != "translate" {
		t.Fatalf("%+v %v", o, err)
	}
	if _, has := providertest.FieldsOf(t, o)["id"]; has {
		t.Error("id kept in fields")
	}
	_, err = f.c.Get(t.Context(), "tasks", provider.Ref{ID: "task_nope"})
	providertest.WantNotFound(t, err, "object")
	_, err = f.c.Get(t.Context(), "tasks", provider.Ref{ID: "../ledger"})
	providertest.WantNotFound(t, err, "object")
}

func TestCreateTask(t *testing.T) {
	f := newFixture(t, keyEnv())
	ctx := t.Context()
	o, err := f.c.Create(ctx, provider.NewObject{Type: "tasks", Title: "Translate the README", Fields: json.RawMessage(`{"capability":"translate","max_price":"2.50"}`)})
	if err != nil {
		t.Fatal(err)
	}
	fl := providertest.FieldsOf(t, o)
	if fl["input"] != "Translate the README" || fl["status"] != "pending" || fl["max_price"] != "2.50" || fl["execution_mode"] != "async" {
		t.Errorf("fields %v", fl)
	}
	if countTasks(f) != 4 {
		t.Errorf("%d tasks", countTasks(f))
	}
	o, err = f.c.Create(ctx, provider.NewObject{Type: "tasks", Title: "x", Fields: json.RawMessage(`{"capability":"summarize","input":{"url":"https://example.com"}}`)})
	if err != nil || providertest.FieldsOf(t, o)["input"].(map[string]any)["url"] != "https://example.com" {
		t.Fatalf("%v %v", o, err)
	}
}

func TestCreateTaskRefusals(t *testing.T) {
	f := newFixture(t, keyEnv())
	cases := []struct {
		fields string
		field  string
	}{
		{`{}`, "fields.capability"},
		{`{"capability":3}`, "fields.capability"},
		{`{"capability":"x","input":5}`, "fields.input"},
		{`{"capability":"x","max_price":-1}`, "fields.max_price"},
		{`{"capability":"x","max_price":"free"}`, "fields.max_price"},
		{`{"capability":"x","execution_mode":"sync"}`, "fields.execution_mode"},
		{`{"capability":"x","title":"y"}`, "fields.title"},
	}
	for _, tc := range cases {
		_, err := f.c.Create(t.Context(), provider.NewObject{Type: "tasks", Title: "t", Fields: json.RawMessage(tc.fields)})
		providertest.WantFieldError(t, err, tc.field)
	}
	if f.fake.Requests("/api/v1/tasks") != 0 {
		t.Error("a refusal made a request")
	}
	// The server's own refusals name the field too.
	_, err := f.c.Create(t.Context(), provider.NewObject{Type: "tasks", Title: "t", Fields: json.RawMessage(`{"capability":"x","provider_agent_id":"nobody"}`)})
	providertest.WantFieldError(t, err, "fields.provider_agent_id")
	f.fake.SetBalance(agrentingtest.DemoAgentID, 1)
	_, err = f.c.Create(t.Context(), provider.NewObject{Type: "tasks", Title: "t", Fields: json.RawMessage(`{"capability":"x","max_price":"5"}`)})
	providertest.WantFieldError(t, err, "fields.max_price")
	if countTasks(f) != 3 {
		t.Errorf("%d tasks", countTasks(f))
	}
}

// The idempotent retry: the fake stores the task, then the answer is lost;
// the retry carries the same X-Idempotency-Key and gets the first answer
// replayed. One task, never two.
func TestCreateRetryAfterLostAnswerCreatesOnce(t *testing.T) {
	for _, e := range []env{keyEnv(), tokenEnv()} {
		f := newFixture(t, e)
		f.fake.DropNextResponseOn("POST", "/api/v1/tasks")
		o, err := f.c.Create(t.Context(), provider.NewObject{Type: "tasks", Title: "only once", Fields: json.RawMessage(`{"capability":"summarize"}`)})
		if err != nil {
			t.Fatal(err)
		}
		tasks := f.fake.Tasks()
		if len(tasks) != 4 || tasks[3].ID != o.ID {
			t.Fatalf("%d tasks (returned %s)", len(tasks), o.ID)
		}
		if n := f.fake.Requests("/api/v1/tasks"); n != 2 {
			t.Errorf("%d requests, want the first and its retry", n)
		}
	}
}

// A POST is retried on 503 with its key, and creates once.
func TestCreateRetriedOn5xx(t *testing.T) {
	f := newFixture(t, keyEnv())
	f.fake.FailNextOn("POST", "/api/v1/tasks", 503, nil, `{"data":null,"meta":{"version":"1.0"},"errors":[{"code":"AGENT_UNAVAILABLE","message":"try later"}]}`)
	if _, err := f.c.Create(t.Context(), provider.NewObject{Type: "tasks", Title: "t", Fields: json.RawMessage(`{"capability":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	if countTasks(f) != 4 || f.fake.Requests("/api/v1/tasks") != 2 {
		t.Errorf("%d tasks, %d requests", countTasks(f), f.fake.Requests("/api/v1/tasks"))
	}
}

// 409 IDEMPOTENCY_PENDING is waited out with the same key.
func TestCreatePendingIsWaitedOut(t *testing.T) {
	f := newFixture(t, keyEnv())
	f.fake.StallNextOn("POST", "/api/v1/tasks", 2*time.Second)
	o, err := f.c.Create(t.Context(), provider.NewObject{Type: "tasks", Title: "slow", Fields: json.RawMessage(`{"capability":"x"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if countTasks(f) != 4 || f.fake.Tasks()[3].ID != o.ID {
		t.Errorf("%d tasks", countTasks(f))
	}
	var waited time.Duration
	for _, d := range f.clk.Slept() {
		waited += d
	}
	if waited < 2*time.Second || f.fake.Requests("/api/v1/tasks") < 3 {
		t.Errorf("waited %s over %d requests", waited, f.fake.Requests("/api/v1/tasks"))
	}
	// Past the deadline the outcome is unknown, and said so.
	f.fake.StallNextOn("POST", "/api/v1/tasks", time.Hour)
	ctx, cancel := context.WithDeadline(t.Context(), f.clk.Now().Add(3*time.Second))
	defer cancel()
	_, err = f.c.Create(ctx, provider.NewObject{Type: "tasks", Title: "slower", Fields: json.RawMessage(`{"capability":"x"}`)})
	if !errors.Is(err, provider.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "IDEMPOTENCY_PENDING") {
		t.Fatalf("%v", err)
	}
}

func TestIdempotencyMismatchIsAnError(t *testing.T) {
	f := newFixture(t, keyEnv())
	f.fake.FailNextOn("POST", "/api/v1/tasks", 422, nil, `{"data":null,"meta":{"version":"1.0"},"errors":[{"code":"IDEMPOTENCY_MISMATCH","message":"key reused with another body"}]}`)
	_, err := f.c.Create(t.Context(), provider.NewObject{Type: "tasks", Title: "t", Fields: json.RawMessage(`{"capability":"x"}`)})
	var ue *provider.UpstreamError
	if !errors.As(err, &ue) || ue.Code != "IDEMPOTENCY_MISMATCH" || !strings.Contains(ue.Message, "nothing was done") {
		t.Fatalf("%v", err)
	}
	if f.fake.Requests("/api/v1/tasks") != 1 || countTasks(f) != 3 {
		t.Error("a mismatch was retried")
	}
}

func TestArtifacts(t *testing.T) {
	f := newFixture(t, keyEnv())
	ctx := t.Context()
	o, err := f.c.Create(ctx, provider.NewObject{Type: "artifacts", Title: "notes.md", Fields: json.RawMessage(`{"task_id":"task_seed_1","artifact_type":"markdown","content":"# Notes"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if o.Title != "notes.md" || providertest.FieldsOf(t, o)["task_id"] != "task_seed_1" || providertest.FieldsOf(t, o)["content"] != "# Notes" {
		t.Errorf("%+v", o)
	}
	got, err := f.c.Get(ctx, "artifacts", provider.Ref{ID: o.ID})
	if err != nil || got.ID != o.ID {
		t.Fatalf("get after create: %v", err)
	}
	o, err = f.c.Create(ctx, provider.NewObject{Type: "artifacts", Title: "x", Fields: json.RawMessage(`{"task_id":"task_seed_2","artifacts":[
		{"artifact_type":"json","name":"a.json","content":{"k":1}},
		{"artifact_type":"image","name":"p.png","content":"iVBORw0KGgo="}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if ids := providertest.FieldsOf(t, o)["batch_ids"].([]any); len(ids) != 2 || providertest.FieldsOf(t, o)["content"] != `{"k":1}` {
		t.Errorf("batch %v", providertest.FieldsOf(t, o))
	}
	p, err := f.c.List(ctx, provider.ListQuery{Type: "artifacts", Limit: 1, Filter: []provider.Condition{providertest.Eq("fields.task_id", "task_seed_1")}})
	if err != nil || len(p.Objects) != 1 || p.NextCursor == "" || p.Total != 3 {
		t.Fatalf("%+v %v", p, err)
	}
	// An artifact keygate has not seen cannot be fetched alone.
	_, err = f.c.Get(ctx, "artifacts", provider.Ref{ID: "art_unseen"})
	providertest.WantFieldError(t, err, "id")
	many := make([]string, 51)
	for i := range many {
		many[i] = `{"artifact_type":"text","name":"n","content":"c"}`
	}
	cases := []struct {
		fields string
		field  string
	}{
		{`{"artifact_type":"text","content":"c"}`, "fields.task_id"},
		{`{"task_id":"task_seed_1","artifact_type":"video","content":"c"}`, "fields.artifact_type"},
		{`{"task_id":"task_seed_1","artifact_type":"text"}`, "fields.content"},
		{`{"task_id":"task_seed_1","artifact_type":"file","content":"not base64!"}`, "fields.content"},
		{`{"task_id":"task_seed_1","artifact_type":"text","content":{"a":1}}`, "fields.content"},
		{`{"task_id":"task_seed_1","artifacts":[` + strings.Join(many, ",") + `]}`, "fields.artifacts"},
		{`{"task_id":"task_seed_1","artifacts":[]}`, "fields.artifacts"},
		{`{"task_id":"task_seed_1","artifacts":[{"artifact_type":"text","name":"n"}]}`, "fields.artifacts[0].content"},
		{`{"task_id":"task_seed_1","artifacts":[{"artifact_type":"text","name":"n","content":"c"}],"name":"x"}`, "fields.name"},
		{`{"task_id":"task_nope","artifact_type":"text","content":"c"}`, "fields.task_id"},
	}
	before := f.fake.Requests("/api/v1/tasks/task_seed_1/artifacts")
	for _, tc := range cases {
		_, err := f.c.Create(ctx, provider.NewObject{Type: "artifacts", Title: "t", Fields: json.RawMessage(tc.fields)})
		providertest.WantFieldError(t, err, tc.field)
	}
	if f.fake.Requests("/api/v1/tasks/task_seed_1/artifacts") != before {
		t.Error("a refusal made a request")
	}
	if len(f.fake.Artifacts("task_seed_1")) != 3 {
		t.Errorf("%d artifacts", len(f.fake.Artifacts("task_seed_1")))
	}
}

func TestUpdateDeleteUnsupported(t *testing.T) {
	f := newFixture(t, keyEnv())
	title := "x"
	for _, typ := range []string{"tasks", "artifacts"} {
		_, err := f.c.Update(t.Context(), provider.Patch{Type: typ, ID: "task_seed_1", Title: &title})
		if !errors.Is(err, provider.ErrUnsupported) || !strings.Contains(err.Error(), "no endpoint to edit") {
			t.Errorf("update %s: %v", typ, err)
		}
		_, err = f.c.Delete(t.Context(), typ, "task_seed_1")
		if !errors.Is(err, provider.ErrUnsupported) || !strings.Contains(err.Error(), "no endpoint to delete") {
			t.Errorf("delete %s: %v", typ, err)
		}
	}
}

// An errors array on a 2xx to a write: the official client calls it a
// failure; whether the task exists is unknown, and said so.
func TestErrorsOnA2xxWrite(t *testing.T) {
	f := newFixture(t, keyEnv())
	f.fake.FailNextOn("POST", "/api/v1/tasks", 201, nil, `{"data":null,"meta":{"version":"1.0"},"errors":[{"code":"PARTIAL","message":"queued with errors"}]}`)
	_, err := f.c.Create(t.Context(), provider.NewObject{Type: "tasks", Title: "t", Fields: json.RawMessage(`{"capability":"x"}`)})
	providertest.WantKind(t, err, provider.ErrOutcomeUnknown)
}
