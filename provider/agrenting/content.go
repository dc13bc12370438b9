package agrenting

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keygate/keygate/provider"
)

// The content types.
const (
	TypeTasks     = "tasks"
	TypeArtifacts = "artifacts"
)

// ArtifactTypes are the documented artifact types; file and image content
// is base64.
var ArtifactTypes = []string{"code_block", "markdown", "html", "file", "diff", "image", "json", "link", "text"}

// MaxArtifactsPerRequest is Agrenting's limit for one POST of artifacts.
const MaxArtifactsPerRequest = 50

var (
	taskFields          = []string{"status", "capability", "input", "output", "max_price", "client_agent_id", "provider_agent_id", "execution_mode", "progress_percent", "progress_message", "error_reason", "completed_at"}
	taskWritable        = []string{"capability", "input", "max_price", "provider_agent_id", "execution_mode"}
	artifactFields      = []string{"task_id", "artifact_type", "name", "content", "size_bytes", "download_url"}
	artifactWritable    = []string{"task_id", "artifact_type", "name", "content", "artifacts"}
	maxCachedArtifacts  = 10000
	errNoUpdate         = "Agrenting has no endpoint to edit %s: a task only moves through complete, fail and cancel, which keygate does not expose, and artifacts are write-once"
	errNoDelete         = "Agrenting has no endpoint to delete %s (cancelling a task is not deleting it)"
	artifactsFilterHelp = `list artifacts with filter {"task_id": "<task id>"}`
)

// Types lists tasks and artifacts. Counts are -1: Agrenting counts only a
// listed query (meta.pagination.total_count, approximate).
func (c *Client) Types(ctx context.Context) ([]provider.ContentType, error) {
	return []provider.ContentType{
		{Name: TypeTasks, Count: -1, Fields: taskFields,
			Description: "Agrenting tasks this agent hired or works on, newest first; filter by status or agent_id. Create needs fields.capability and fields.input (default: the title); max_price is escrowed. No edit or delete."},
		{Name: TypeArtifacts, Count: -1, Fields: artifactFields,
			Description: `Artifacts of one task: list with filter {"task_id": "..."}; create with fields task_id, artifact_type (` + strings.Join(ArtifactTypes, ", ") +
				`), name (default: the title) and content (base64 for file and image), or fields.artifacts: a list of up to 50. Write-once.`},
	}, nil
}

func checkType(typ string) error {
	if typ != TypeTasks && typ != TypeArtifacts {
		return &provider.NotFoundError{What: "content type", Name: typ}
	}
	return nil
}

// List pages through tasks (GET /tasks) or one task's artifacts (GET
// /tasks/:id/artifacts), with Agrenting's cursor as the position. Neither
// has a draft: status "draft" lists nothing.
func (c *Client) List(ctx context.Context, q provider.ListQuery) (provider.Page, error) {
	if err := checkType(q.Type); err != nil {
		return provider.Page{}, err
	}
	lc, err := listRequest(q)
	if err != nil {
		return provider.Page{}, err
	}
	if q.Status == provider.StatusDraft {
		return provider.Page{Objects: []provider.Object{}, Total: 0}, nil
	}
	res, err := c.do(ctx, call{method: http.MethodGet, path: lc.path, query: lc.query})
	if err != nil {
		return provider.Page{}, lc.refine(err, res.env)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(res.env.Data, &raws); err != nil {
		return provider.Page{}, fmt.Errorf("agrenting: %s: data is not a list", lc.path)
	}
	page := provider.Page{Objects: make([]provider.Object, 0, len(raws)), Total: -1}
	for _, raw := range raws {
		o, err := c.toObject(q.Type, raw)
		if err != nil {
			return provider.Page{}, err
		}
		page.Objects = append(page.Objects, o)
	}
	paginate(&page, res.env.Meta.Pagination, q.Cursor)
	return page, nil
}

// listCall is a list query as Agrenting takes it.
type listCall struct {
	path   string // tasks, or one task's artifacts
	query  url.Values
	taskID string // the artifacts' task
}

// listRequest translates a list query.
func listRequest(q provider.ListQuery) (listCall, error) {
	v, taskID, err := listFilter(q)
	if err != nil {
		return listCall{}, err
	}
	for _, k := range q.Sort {
		if (k.Path != "created_at" && k.Path != "modified_at") || !k.Desc || len(q.Sort) > 1 {
			return listCall{}, &provider.FieldError{Field: "sort", Problem: "Agrenting lists newest first only", Fix: "leave sort out"}
		}
	}
	if q.Limit >= 1 && q.Limit <= 100 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	if q.Type == TypeArtifacts {
		return listCall{path: "/tasks/" + url.PathEscape(taskID) + "/artifacts", query: v, taskID: taskID}, nil
	}
	return listCall{path: "/tasks", query: v}, nil
}

// listFilter reads the filter: tasks by status or agent_id (parameters),
// artifacts by their task, which they must name.
func listFilter(q provider.ListQuery) (url.Values, string, error) {
	allowed := []string{"status", "agent_id"}
	if q.Type == TypeArtifacts {
		allowed = []string{"task_id"}
	}
	v := url.Values{}
	var taskID string
	for _, cond := range q.Filter {
		name := strings.TrimPrefix(cond.Path, "fields.")
		s, isString := cond.Value.(string)
		if !slices.Contains(allowed, name) || cond.Path == "status" {
			return nil, "", &provider.FieldError{Field: "filter", Problem: fmt.Sprintf("Agrenting %s cannot be filtered on %q", q.Type, cond.Path),
				Fix: "filter " + q.Type + " only on " + strings.Join(allowed, " or ") + ` with {"name": "value"}` + map[bool]string{true: " (the task's own status is fields.status)", false: ""}[q.Type == TypeTasks]}
		}
		if cond.Op != provider.OpEq || !isString || s == "" {
			return nil, "", &provider.FieldError{Field: "filter", Problem: fmt.Sprintf("%q takes one non-empty string; Agrenting has no other comparison", name), Fix: fmt.Sprintf(`write {"%s": "..."}`, name)}
		}
		if name == "task_id" {
			taskID = s
		} else {
			v.Set(name, s)
		}
	}
	switch {
	case q.Type != TypeArtifacts:
	case taskID == "":
		return nil, "", &provider.FieldError{Field: "filter", Problem: "artifacts belong to a task, and Agrenting lists them per task", Fix: artifactsFilterHelp}
	case !idPattern().MatchString(taskID):
		return nil, "", &provider.FieldError{Field: "filter", Problem: fmt.Sprintf("no task %q", taskID), Fix: "take a task id from content_list type tasks"}
	}
	return v, taskID, nil
}

// refine refines a list's error: an artifacts list of a task the agent
// cannot see, or a refused cursor.
func (lc listCall) refine(err error, env envelope) error {
	ue, ok := errors.AsType[*provider.UpstreamError](err)
	switch {
	case ok && ue.Status == http.StatusNotFound && lc.taskID != "":
		return &provider.FieldError{Field: "filter", Problem: fmt.Sprintf("no task %q visible to this agent", lc.taskID), Fix: "take a task id from content_list type tasks"}
	case ok && ue.Status == http.StatusUnprocessableEntity:
		return validation(ue, env, map[string]string{"pagination": "cursor"})
	}
	return err
}

// paginate reads meta.pagination into page: the total (approximate, says
// Agrenting) and the next cursor. Without a pagination block the first
// page is the whole list.
func paginate(page *provider.Page, pg *pagination, cursor string) {
	switch {
	case pg != nil:
		if pg.TotalCount != nil {
			page.Total = *pg.TotalCount
		}
		if pg.HasMore && pg.Cursor != nil {
			page.NextCursor = *pg.Cursor
		}
	case cursor == "":
		page.Total = len(page.Objects)
	}
}

// Get reads a task (GET /tasks/:id). An artifact has no endpoint of its
// own: it is found in its task's list, which keygate knows for artifacts it
// has listed or created since it started. A slug is taken as an id.
func (c *Client) Get(ctx context.Context, typ string, ref provider.Ref) (provider.Object, error) {
	if err := checkType(typ); err != nil {
		return provider.Object{}, err
	}
	id := ref.ID
	if id == "" {
		id = ref.Slug
	}
	if !idPattern().MatchString(id) {
		return provider.Object{}, &provider.NotFoundError{What: "object", Name: id}
	}
	if typ == TypeArtifacts {
		return c.getArtifact(ctx, id)
	}
	res, err := c.do(ctx, call{method: http.MethodGet, path: "/tasks/" + url.PathEscape(id)})
	if err != nil {
		if ue, ok := errors.AsType[*provider.UpstreamError](err); ok && ue.Status == http.StatusNotFound && ue.Code == "NOT_FOUND" {
			return provider.Object{}, &provider.NotFoundError{What: "object", Name: id}
		}
		return provider.Object{}, err
	}
	return c.toObject(TypeTasks, res.env.Data)
}

func (c *Client) getArtifact(ctx context.Context, id string) (provider.Object, error) {
	c.mu.Lock()
	taskID, known := c.artifacts[id]
	c.mu.Unlock()
	if !known {
		return provider.Object{}, &provider.FieldError{Field: "id", Problem: "Agrenting has no endpoint for a single artifact, and keygate has not seen this one in a task's list",
			Fix: artifactsFilterHelp + " (content_list), which also returns each artifact whole"}
	}
	q := provider.ListQuery{Type: TypeArtifacts, Limit: 100, Filter: []provider.Condition{{Path: "fields.task_id", Op: provider.OpEq, Value: taskID}}}
	for range 20 {
		page, err := c.List(ctx, q)
		if err != nil {
			return provider.Object{}, err
		}
		for _, o := range page.Objects {
			if o.ID == id {
				return o, nil
			}
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	return provider.Object{}, &provider.NotFoundError{What: "object", Name: id}
}

// Create makes a task (POST /tasks) or artifacts (POST
// /tasks/:id/artifacts) with one idempotency key for the whole call: a
// retry after a lost answer gets the first answer replayed, never a second
// object.
func (c *Client) Create(ctx context.Context, n provider.NewObject) (provider.Object, error) {
	if err := checkType(n.Type); err != nil {
		return provider.Object{}, err
	}
	fields := map[string]json.RawMessage{}
	if len(n.Fields) > 0 {
		if err := json.Unmarshal(n.Fields, &fields); err != nil {
			return provider.Object{}, &provider.FieldError{Field: "fields", Problem: "must be a JSON object", Fix: `write {"name": value}`}
		}
	}
	if n.Type == TypeArtifacts {
		return c.createArtifacts(ctx, n, fields)
	}
	body, err := taskBody(n, fields)
	if err != nil {
		return provider.Object{}, err
	}
	res, err := c.do(ctx, call{method: http.MethodPost, path: "/tasks", body: body, idemKey: newIdempotencyKey()})
	if err != nil {
		return provider.Object{}, c.writeError(err, res.env, map[string]string{"capability": "fields.capability", "input": "fields.input", "max_price": "fields.max_price", "provider_agent_id": "fields.provider_agent_id", "execution_mode": "fields.execution_mode"})
	}
	return c.toObject(TypeTasks, res.env.Data)
}

// writeError refines an error from a POST: validation to a FieldError, an
// insufficient balance to one on max_price, an idempotency mismatch said
// plainly.
func (c *Client) writeError(err error, env envelope, fieldMap map[string]string) error {
	ue, ok := errors.AsType[*provider.UpstreamError](err)
	if !ok {
		return err
	}
	switch ue.Code {
	case "VALIDATION_ERROR":
		return validation(ue, env, fieldMap)
	case "INSUFFICIENT_BALANCE", "INVALID_AMOUNT":
		return &provider.FieldError{Field: "fields.max_price", Problem: "Agrenting refused it: " + ue.Message, Fix: "lower max_price, or add funds to the agent's balance"}
	case "IDEMPOTENCY_MISMATCH":
		ue.Message = "the idempotency key was already used for a different request; nothing was done: " + ue.Message
	}
	return err
}

func str(fields map[string]json.RawMessage, k string) (string, bool, error) {
	raw, ok := fields[k]
	if !ok || string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", true, &provider.FieldError{Field: "fields." + k, Problem: "must be a string", Fix: fmt.Sprintf(`write {"%s": "..."}`, k)}
	}
	return s, true, nil
}

func unknownField(fields map[string]json.RawMessage, allowed []string, what string) error {
	for k := range fields {
		if !slices.Contains(allowed, k) {
			return &provider.FieldError{Field: "fields." + k, Problem: "is not something Agrenting takes when creating " + what, Fix: "use " + strings.Join(allowed, ", ")}
		}
	}
	return nil
}

// taskBody is POST /tasks: capability, input (a string or an object;
// default the title), max_price, provider_agent_id, execution_mode "async".
func taskBody(n provider.NewObject, fields map[string]json.RawMessage) (map[string]any, error) {
	if err := unknownField(fields, taskWritable, "a task"); err != nil {
		return nil, err
	}
	capability, _, err := str(fields, "capability")
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(capability) == "" {
		return nil, &provider.FieldError{Field: "fields.capability", Problem: "is required", Fix: `name the capability to hire for, e.g. {"capability": "summarize"}`}
	}
	body := map[string]any{"capability": capability, "execution_mode": "async"}
	input, err := taskInput(fields, n.Title)
	if err != nil {
		return nil, err
	}
	body["input"] = input
	if raw, ok := fields["max_price"]; ok && string(raw) != "null" {
		if !positiveAmount(raw) {
			return nil, &provider.FieldError{Field: "fields.max_price", Problem: "must be a positive amount", Fix: `write e.g. {"max_price": "5.00"}`}
		}
		body["max_price"] = raw
	}
	if s, set, err := str(fields, "provider_agent_id"); err != nil {
		return nil, err
	} else if set {
		body["provider_agent_id"] = s
	}
	if s, set, err := str(fields, "execution_mode"); err != nil {
		return nil, err
	} else if set && s != "async" {
		return nil, &provider.FieldError{Field: "fields.execution_mode", Problem: `Agrenting documents only "async"`, Fix: "leave execution_mode out"}
	}
	return body, nil
}

// taskInput is fields.input, a non-empty string or an object, as sent;
// without one, the title.
func taskInput(fields map[string]json.RawMessage, title string) (any, error) {
	raw, ok := fields["input"]
	if !ok || string(raw) == "null" {
		if strings.TrimSpace(title) == "" {
			return nil, &provider.FieldError{Field: "fields.input", Problem: "is required", Fix: "pass fields.input, or a title to use as the input"}
		}
		return title, nil
	}
	t := strings.TrimSpace(string(raw))
	if t == "" || (t[0] != '"' && t[0] != '{') || t == `""` {
		return nil, &provider.FieldError{Field: "fields.input", Problem: "must be a non-empty string or an object", Fix: `write {"input": "text"} or {"input": {...}}`}
	}
	return raw, nil
}

// positiveAmount reports whether raw is a positive number, or a string
// that reads as one.
func positiveAmount(raw json.RawMessage) bool {
	var f float64
	var s string
	switch {
	case json.Unmarshal(raw, &f) == nil && f > 0:
		return true
	case json.Unmarshal(raw, &s) == nil:
		v, err := strconv.ParseFloat(s, 64)
		return err == nil && v > 0
	}
	return false
}

type artifactIn struct {
	Type    string `json:"artifact_type"`
	Name    string `json:"name"`
	Content string `json:"content"`
}

// createArtifacts posts one artifact (fields artifact_type, name, content)
// or a list (fields.artifacts, 1 to 50) to fields.task_id, and returns the
// first; with a list, its fields.batch_ids names them all.
func (c *Client) createArtifacts(ctx context.Context, n provider.NewObject, fields map[string]json.RawMessage) (provider.Object, error) {
	if err := unknownField(fields, artifactWritable, "an artifact"); err != nil {
		return provider.Object{}, err
	}
	taskID, err := artifactTask(fields)
	if err != nil {
		return provider.Object{}, err
	}
	list, err := artifactList(fields, n.Title)
	if err != nil {
		return provider.Object{}, err
	}
	path := "/tasks/" + url.PathEscape(taskID) + "/artifacts"
	res, err := c.do(ctx, call{method: http.MethodPost, path: path, body: map[string]any{"artifacts": list}, idemKey: newIdempotencyKey()})
	if err != nil {
		if ue, ok := errors.AsType[*provider.UpstreamError](err); ok && ue.Status == http.StatusNotFound && ue.Code == "NOT_FOUND" {
			return provider.Object{}, &provider.FieldError{Field: "fields.task_id", Problem: fmt.Sprintf("no task %q visible to this agent", taskID), Fix: "pass a task id from content_list type tasks"}
		}
		return provider.Object{}, c.writeError(err, res.env, nil)
	}
	return c.postedArtifacts(res)
}

// artifactTask reads fields.task_id, which artifacts must name.
func artifactTask(fields map[string]json.RawMessage) (string, error) {
	taskID, _, err := str(fields, "task_id")
	switch {
	case err != nil:
		return "", err
	case taskID == "":
		return "", &provider.FieldError{Field: "fields.task_id", Problem: "is required: artifacts belong to a task", Fix: "pass the task's id from content_list type tasks"}
	case !idPattern().MatchString(taskID):
		return "", &provider.FieldError{Field: "fields.task_id", Problem: "is not a task id", Fix: "pass the task's id from content_list type tasks"}
	}
	return taskID, nil
}

// artifactList reads the artifacts to post: fields.artifacts, 1 to
// MaxArtifactsPerRequest of them, or the one artifact the fields describe
// (its name defaulting to title).
func artifactList(fields map[string]json.RawMessage, title string) ([]artifactIn, error) {
	raw, ok := fields["artifacts"]
	if !ok {
		a, err := artifactFrom(fields, title, "fields.")
		return []artifactIn{a}, err
	}
	for _, k := range []string{"artifact_type", "name", "content"} {
		if _, both := fields[k]; both {
			return nil, &provider.FieldError{Field: "fields." + k, Problem: "give either one artifact (artifact_type, name, content) or fields.artifacts, not both", Fix: "move it into the list"}
		}
	}
	var items []map[string]json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, &provider.FieldError{Field: "fields.artifacts", Problem: "must be a list of objects", Fix: `write [{"artifact_type": "text", "name": "...", "content": "..."}]`}
	}
	if len(items) == 0 || len(items) > MaxArtifactsPerRequest {
		return nil, &provider.FieldError{Field: "fields.artifacts", Problem: fmt.Sprintf("%d artifacts: Agrenting takes 1 to %d per request", len(items), MaxArtifactsPerRequest), Fix: "split the list"}
	}
	list := make([]artifactIn, 0, len(items))
	for i, it := range items {
		a, err := artifactFrom(it, "", fmt.Sprintf("fields.artifacts[%d].", i))
		if err != nil {
			return nil, err
		}
		list = append(list, a)
	}
	return list, nil
}

// postedArtifacts is the first artifact of a POST's answer; with several,
// its fields.batch_ids names them all.
func (c *Client) postedArtifacts(res result) (provider.Object, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(res.env.Data, &raws); err != nil || len(raws) == 0 {
		return provider.Object{}, fmt.Errorf("agrenting: %w: the artifacts were posted but the answer lists none; list the task's artifacts to see them", provider.ErrOutcomeUnknown)
	}
	objs := make([]provider.Object, 0, len(raws))
	for _, raw := range raws {
		o, err := c.toObject(TypeArtifacts, raw)
		if err != nil {
			return provider.Object{}, err
		}
		objs = append(objs, o)
	}
	first := objs[0]
	if len(objs) > 1 {
		var m map[string]any
		_ = json.Unmarshal(first.Fields, &m)
		ids := make([]string, len(objs))
		for i, o := range objs {
			ids[i] = o.ID
		}
		m["batch_ids"] = ids
		first.Fields, _ = json.Marshal(m)
	}
	return first, nil
}

// artifactFrom reads one artifact: artifact_type (documented types), name
// (default title), content (a string; a json artifact may give any JSON
// value, sent as its text; file and image content must be base64).
func artifactFrom(f map[string]json.RawMessage, title, prefix string) (artifactIn, error) {
	var a artifactIn
	for k := range f {
		if !slices.Contains([]string{"artifact_type", "name", "content", "task_id"}, k) || (prefix != "fields." && k == "task_id") {
			return a, &provider.FieldError{Field: prefix + k, Problem: "is not a field of an artifact", Fix: "use artifact_type, name and content"}
		}
	}
	typ, _, err := str(f, "artifact_type")
	if err != nil || !slices.Contains(ArtifactTypes, typ) {
		return a, &provider.FieldError{Field: prefix + "artifact_type", Problem: "must be one of " + strings.Join(ArtifactTypes, ", "), Fix: `e.g. {"artifact_type": "markdown"}`}
	}
	name, _, err := str(f, "name")
	if err != nil {
		return a, &provider.FieldError{Field: prefix + "name", Problem: "must be a string", Fix: `e.g. {"name": "report.md"}`}
	}
	if strings.TrimSpace(name) == "" {
		name = strings.TrimSpace(title)
	}
	if name == "" {
		return a, &provider.FieldError{Field: prefix + "name", Problem: "is required", Fix: "name the artifact"}
	}
	raw, ok := f["content"]
	if !ok || string(raw) == "null" {
		return a, &provider.FieldError{Field: prefix + "content", Problem: "is required", Fix: "pass the artifact's content"}
	}
	var content string
	if json.Unmarshal(raw, &content) != nil {
		if typ != "json" {
			return a, &provider.FieldError{Field: prefix + "content", Problem: "must be a string", Fix: "send text (base64 for file and image)"}
		}
		content = string(raw)
	}
	if typ == "file" || typ == "image" {
		if _, err := base64.StdEncoding.DecodeString(content); err != nil || content == "" {
			return a, &provider.FieldError{Field: prefix + "content", Problem: typ + " content must be base64", Fix: "encode the bytes with standard base64"}
		}
	}
	return artifactIn{Type: typ, Name: name, Content: content}, nil
}

// Update always fails: Agrenting has no edit endpoint for either type.
func (c *Client) Update(ctx context.Context, p provider.Patch) (provider.Object, error) {
	if err := checkType(p.Type); err != nil {
		return provider.Object{}, err
	}
	return provider.Object{}, fmt.Errorf("%w: "+errNoUpdate, provider.ErrUnsupported, p.Type)
}

// Delete always fails: Agrenting has no delete endpoint for either type.
func (c *Client) Delete(ctx context.Context, typ, id string) (provider.Object, error) {
	if err := checkType(typ); err != nil {
		return provider.Object{}, err
	}
	return provider.Object{}, fmt.Errorf("%w: "+errNoDelete, provider.ErrUnsupported, typ)
}

// toObject maps a task or an artifact: id, created_at and updated_at
// become the object's own; the rest stays in Fields under Agrenting's names
// (a task's own status included: keygate's Status is always "published",
// as nothing is a draft).
func (c *Client) toObject(typ string, raw []byte) (provider.Object, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return provider.Object{}, fmt.Errorf("agrenting: a %s entry is not a JSON object", typ)
	}
	var id, created, updated string
	_ = json.Unmarshal(m["id"], &id)
	_ = json.Unmarshal(m["created_at"], &created)
	_ = json.Unmarshal(m["updated_at"], &updated)
	if id == "" {
		return provider.Object{}, errors.New("agrenting: a " + typ + " entry came without an id")
	}
	o := provider.Object{ID: id, Type: typ, Slug: id, Status: provider.StatusPublished}
	o.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
	o.ModifiedAt, _ = time.Parse(time.RFC3339Nano, updated)
	if o.ModifiedAt.IsZero() {
		o.ModifiedAt = o.CreatedAt
	}
	switch typ {
	case TypeTasks:
		var capability string
		_ = json.Unmarshal(m["capability"], &capability)
		o.Title = capability + ": " + summarize(m["input"])
	case TypeArtifacts:
		var name, taskID string
		_ = json.Unmarshal(m["name"], &name)
		_ = json.Unmarshal(m["task_id"], &taskID)
		o.Title = name
		if taskID != "" {
			c.mu.Lock()
			if len(c.artifacts) >= maxCachedArtifacts {
				clear(c.artifacts)
			}
			c.artifacts[id] = taskID
			c.mu.Unlock()
		}
	}
	delete(m, "id")
	delete(m, "created_at")
	delete(m, "updated_at")
	fields, err := json.Marshal(m)
	if err != nil {
		return provider.Object{}, fmt.Errorf("agrenting: encoding %s %s: %w", typ, id, err)
	}
	o.Fields = fields
	return o, nil
}

// summarize shows a task's input in a title: the text, or the object's
// JSON, first line, at most 60 characters.
func summarize(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		s = string(raw)
	}
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if utf8.RuneCountInString(s) <= 60 {
		return s
	}
	return string([]rune(s)[:59]) + "…"
}
