package cencori

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/keygate/keygate/provider"
)

// TypeMemories is the one content type: the project's memories.
const TypeMemories = "memories"

// memoryFields are the fields a memory object carries, as Cencori names
// them. Fields written on create: content, namespace, importance,
// expiresAt, metadata, and userId / sessionId / scope to choose whose
// memory it is.
var memoryFields = []string{"content", "namespace", "scope", "scopeKey", "metadata", "importance", "accessCount", "expiresAt", "score"}

var writableFields = []string{"content", "namespace", "importance", "expiresAt", "metadata", "userId", "sessionId", "scope"}

// memoryIDPattern keeps ids to what Cencori issues (UUIDs) and out of path
// tricks: an id outside it cannot exist.
var memoryIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`) })

// titleRunes is how much of a memory's content its title shows.
const titleRunes = 80

// Types lists the one content type. Its Count is -1: Cencori has no count
// of a project's memories.
func (c *Client) Types(ctx context.Context) ([]provider.ContentType, error) {
	return []provider.ContentType{{
		Name: TypeMemories,
		Description: "Cencori memories: immutable text kept per user or session (default userId " + c.cfg.MemoryUserID +
			"), newest first. Filter {\"query\": \"...\"} runs a semantic search; namespace, userId, sessionId and scope narrow the list. No update: delete and create instead.",
		Fields: memoryFields,
		Count:  -1,
	}}, nil
}

func checkType(typ string) error {
	if typ != TypeMemories {
		return &provider.NotFoundError{What: "content type", Name: typ}
	}
	return nil
}

// memScope says whose memories a call is about.
type memScope struct {
	userID, sessionID, scope, namespace string
}

func (c *Client) defaultScope() memScope {
	return memScope{userID: c.cfg.MemoryUserID, namespace: c.cfg.MemoryNamespace}
}

func (s memScope) values(v url.Values) {
	if s.sessionID != "" {
		v.Set("sessionId", s.sessionID)
	} else {
		v.Set("userId", s.userID)
	}
	if s.scope != "" {
		v.Set("scope", s.scope)
	}
	if s.namespace != "" {
		v.Set("namespace", s.namespace)
	}
}

func (s memScope) body(m map[string]any) {
	if s.sessionID != "" {
		m["sessionId"] = s.sessionID
	} else {
		m["userId"] = s.userID
	}
	if s.scope != "" {
		m["scope"] = s.scope
	}
	if s.namespace != "" {
		m["namespace"] = s.namespace
	}
}

const filterFix = `filter memories with {"query": "text"} for a semantic search, and/or {"namespace": "..."}, {"userId": "..."} or {"sessionId": "..."}, {"scope": "user"|"session"}`

// listPlan is a ListQuery translated for Cencori.
type listPlan struct {
	scope  memScope
	query  string
	search bool
}

// plan reads the filter. keygate's content_list has no free-text argument,
// so a "query" (or "fields.query") equality condition means semantic
// search; the other accepted conditions narrow whose memories are listed.
func (c *Client) plan(q provider.ListQuery) (listPlan, error) {
	p := listPlan{scope: c.defaultScope()}
	var user, session bool
	for _, cond := range q.Filter {
		name := strings.TrimPrefix(cond.Path, "fields.")
		s, isString := cond.Value.(string)
		if !slices.Contains([]string{"query", "namespace", "userId", "sessionId", "scope"}, name) {
			return p, &provider.FieldError{Field: "filter", Problem: fmt.Sprintf("Cencori memories cannot be filtered on %q", cond.Path), Fix: filterFix}
		}
		if cond.Op != provider.OpEq || !isString || s == "" {
			return p, &provider.FieldError{Field: "filter", Problem: fmt.Sprintf("%q takes one non-empty string ({\"%s\": \"...\"}); Cencori has no other comparison", name, name), Fix: filterFix}
		}
		switch name {
		case "query":
			p.query, p.search = s, true
		case "namespace":
			p.scope.namespace = s
		case "userId":
			p.scope.userID, user = s, true
		case "sessionId":
			p.scope.sessionID, session = s, true
		case "scope":
			if s != "user" && s != "session" {
				return p, &provider.FieldError{Field: "filter", Problem: `scope is "user" or "session"`, Fix: filterFix}
			}
			p.scope.scope = s
		}
	}
	if user && session {
		return p, &provider.FieldError{Field: "filter", Problem: "give userId or sessionId, not both", Fix: filterFix}
	}
	if p.scope.scope == "session" && p.scope.sessionID == "" {
		return p, &provider.FieldError{Field: "filter", Problem: `scope "session" needs a sessionId`, Fix: `add {"sessionId": "..."}`}
	}
	for _, k := range q.Sort {
		newestFirst := (k.Path == "created_at" || k.Path == "modified_at") && k.Desc
		if p.search || !newestFirst || len(q.Sort) > 1 {
			return p, &provider.FieldError{Field: "sort", Problem: "Cencori lists memories newest first and search results by relevance; no other order is available",
				Fix: "leave sort out (or use -created_at for a list)"}
		}
	}
	return p, nil
}

type listAnswer struct {
	Memories   []json.RawMessage `json:"memories"`
	Count      int               `json:"count"`
	NextCursor *string           `json:"nextCursor"`
}

type searchAnswer struct {
	Results []json.RawMessage `json:"results"`
	Count   int               `json:"count"`
}

// List returns a page of memories, newest first (GET /v1/memory/list, the
// cursor is Cencori's createdAt position), or the results of a semantic
// search (POST /v1/memory/search, one page of up to Limit results, best
// first, each with its score in fields.score). Memories have no status:
// they are all "published", and status "draft" lists nothing.
func (c *Client) List(ctx context.Context, q provider.ListQuery) (provider.Page, error) {
	if err := checkType(q.Type); err != nil {
		return provider.Page{}, err
	}
	p, err := c.plan(q)
	if err != nil {
		return provider.Page{}, err
	}
	if q.Status == provider.StatusDraft {
		return provider.Page{Objects: []provider.Object{}, Total: 0}, nil
	}
	limit := q.Limit
	if limit < 1 || limit > 100 {
		limit = 50
	}
	if p.search {
		if q.Cursor != "" {
			return provider.Page{}, &provider.FieldError{Field: "cursor", Problem: "a semantic search returns a single page", Fix: "leave cursor out, or raise limit"}
		}
		body := map[string]any{"query": p.query, "topK": limit}
		p.scope.body(body)
		// A search changes nothing, so it may be retried like a GET.
		resp, err := c.send(ctx, http.MethodPost, "/v1/memory/search", nil, body, authHeader, true)
		if err != nil {
			return provider.Page{}, c.memoryError(err, "")
		}
		var ans searchAnswer
		if err := decode(resp, "memory search", &ans); err != nil {
			return provider.Page{}, err
		}
		objs, err := toObjects(ans.Results)
		if err != nil {
			return provider.Page{}, err
		}
		return provider.Page{Objects: objs, Total: len(objs)}, nil
	}
	v := url.Values{}
	p.scope.values(v)
	v.Set("limit", itoa(limit))
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	resp, err := c.send(ctx, http.MethodGet, "/v1/memory/list", v, nil, authHeader, true)
	if err != nil {
		return provider.Page{}, c.memoryError(err, "")
	}
	var ans listAnswer
	if err := decode(resp, "memory list", &ans); err != nil {
		return provider.Page{}, err
	}
	objs, err := toObjects(ans.Memories)
	if err != nil {
		return provider.Page{}, err
	}
	page := provider.Page{Objects: objs, Total: -1}
	if ans.NextCursor != nil {
		page.NextCursor = *ans.NextCursor
	}
	if page.NextCursor == "" && q.Cursor == "" {
		page.Total = len(objs) // the whole list fit in one page
	}
	return page, nil
}

// Get reads one memory by id. A memory has no slug of its own: its slug is
// its id, so a slug is looked up as an id.
func (c *Client) Get(ctx context.Context, typ string, ref provider.Ref) (provider.Object, error) {
	if err := checkType(typ); err != nil {
		return provider.Object{}, err
	}
	id := ref.ID
	if id == "" {
		id = ref.Slug
	}
	if !memoryIDPattern().MatchString(id) {
		return provider.Object{}, &provider.NotFoundError{What: "object", Name: id}
	}
	resp, err := c.send(ctx, http.MethodGet, "/v1/memory/"+url.PathEscape(id), nil, nil, authHeader, true)
	if err != nil {
		return provider.Object{}, c.memoryError(err, id)
	}
	return toObject(resp.Body)
}

// writeBody builds the /v1/memory/write request. content defaults to the
// title; when both are given and differ, the title is kept in
// metadata.title (what Object.Title shows).
func (c *Client) writeBody(n provider.NewObject) (map[string]any, memScope, error) {
	sc := c.defaultScope()
	fields := map[string]json.RawMessage{}
	if len(n.Fields) > 0 {
		if err := json.Unmarshal(n.Fields, &fields); err != nil {
			return nil, sc, &provider.FieldError{Field: "fields", Problem: "must be a JSON object", Fix: `write {"content": "..."}`}
		}
	}
	for k := range fields {
		if !slices.Contains(writableFields, k) {
			return nil, sc, &provider.FieldError{Field: "fields." + k, Problem: "is not a field of a Cencori memory",
				Fix: "use " + strings.Join(writableFields, ", ") + "; anything else goes inside metadata"}
		}
	}
	str := func(k string) (string, error) {
		raw, ok := fields[k]
		if !ok || string(raw) == "null" {
			return "", nil
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", &provider.FieldError{Field: "fields." + k, Problem: "must be a string", Fix: fmt.Sprintf(`write {"%s": "..."}`, k)}
		}
		return s, nil
	}
	body := map[string]any{}
	content, err := str("content")
	if err != nil {
		return nil, sc, err
	}
	title := strings.TrimSpace(n.Title)
	if strings.TrimSpace(content) == "" {
		content = title
	}
	if strings.TrimSpace(content) == "" {
		return nil, sc, &provider.FieldError{Field: "fields.content", Problem: "a memory needs some text", Fix: "pass fields.content, or a title"}
	}
	body["content"] = content
	var meta map[string]any
	if raw, ok := fields["metadata"]; ok && string(raw) != "null" {
		if json.Unmarshal(raw, &meta) != nil || meta == nil {
			return nil, sc, &provider.FieldError{Field: "fields.metadata", Problem: "must be a JSON object", Fix: `write {"metadata": {"key": "value"}}`}
		}
	}
	if title != "" && title != content && title != summarize(content) {
		if meta == nil {
			meta = map[string]any{}
		}
		if _, set := meta["title"]; !set {
			meta["title"] = title
		}
	}
	if meta != nil {
		body["metadata"] = meta
	}
	for _, k := range []struct {
		name string
		dst  *string
	}{{"namespace", &sc.namespace}, {"userId", &sc.userID}, {"sessionId", &sc.sessionID}, {"scope", &sc.scope}} {
		s, err := str(k.name)
		if err != nil {
			return nil, sc, err
		}
		if s != "" {
			*k.dst = s
		}
	}
	if _, u := fields["userId"]; u && sc.sessionID != "" {
		return nil, sc, &provider.FieldError{Field: "fields.sessionId", Problem: "give userId or sessionId, not both", Fix: "drop one of them"}
	}
	if sc.scope != "" && sc.scope != "user" && sc.scope != "session" {
		return nil, sc, &provider.FieldError{Field: "fields.scope", Problem: `must be "user" or "session"`, Fix: `drop it to follow userId/sessionId`}
	}
	if sc.scope == "session" && sc.sessionID == "" {
		return nil, sc, &provider.FieldError{Field: "fields.sessionId", Problem: `scope "session" needs a sessionId`, Fix: `add {"sessionId": "..."}`}
	}
	if raw, ok := fields["importance"]; ok && string(raw) != "null" {
		var f float64
		if json.Unmarshal(raw, &f) != nil || f < 0 || f > 1 {
			return nil, sc, &provider.FieldError{Field: "fields.importance", Problem: "must be a number from 0 to 1", Fix: "use e.g. 0.8"}
		}
		body["importance"] = f
	}
	exp, err := str("expiresAt")
	if err != nil {
		return nil, sc, err
	}
	if exp != "" {
		t, perr := time.Parse(time.RFC3339Nano, exp)
		if perr != nil || !t.After(c.now()) {
			return nil, sc, &provider.FieldError{Field: "fields.expiresAt", Problem: "must be an ISO 8601 date-time in the future", Fix: "use e.g. 2030-01-02T15:04:05Z"}
		}
		body["expiresAt"] = t.UTC().Format(time.RFC3339Nano)
	}
	sc.body(body)
	return body, sc, nil
}

type writeAnswer struct {
	ID string `json:"id"`
}

// Create writes a memory (POST /v1/memory/write) and reads it back: the
// write's answer is partial (no metadata, content redacted). Slug and
// Status are ignored (a memory's slug is its id; every memory is live). A
// write whose answer is lost is looked for among the newest memories before
// it is reported as ErrOutcomeUnknown; it is never sent twice.
func (c *Client) Create(ctx context.Context, n provider.NewObject) (provider.Object, error) {
	if err := checkType(n.Type); err != nil {
		return provider.Object{}, err
	}
	body, sc, err := c.writeBody(n)
	if err != nil {
		return provider.Object{}, err
	}
	sent := c.now()
	resp, err := c.send(ctx, http.MethodPost, "/v1/memory/write", nil, body, authHeader, false)
	if err != nil {
		if outcomeUnknown(err) {
			return c.findWritten(ctx, body, sc, sent, err)
		}
		return provider.Object{}, c.memoryError(err, "")
	}
	var ans writeAnswer
	if err := decode(resp, "memory write", &ans); err != nil || ans.ID == "" {
		return provider.Object{}, fmt.Errorf("cencori: %w: the memory write answered %d without an id; list memories to see whether it was stored", provider.ErrOutcomeUnknown, resp.Status)
	}
	obj, gerr := c.Get(ctx, TypeMemories, provider.Ref{ID: ans.ID})
	if gerr == nil {
		return obj, nil
	}
	// Stored, but the read-back failed: build the object from the answer
	// and what was sent, rather than report a failure that did not happen.
	c.log.DebugContext(ctx, "cencori memory read-back failed", "id", ans.ID, "error", c.redact.Redact(gerr.Error()))
	return fromWrite(resp.Body, body)
}

// findWritten settles a write whose answer was lost: it lists the newest
// memories of the same user or session and namespace, and returns the one
// with the same content and metadata created since the write was sent.
func (c *Client) findWritten(ctx context.Context, body map[string]any, sc memScope, sent time.Time, cause error) (provider.Object, error) {
	unknown := func(why string) error {
		return fmt.Errorf("cencori: %w: the memory write got no usable answer (%s) and %s; list memories before writing it again", provider.ErrOutcomeUnknown, cause, why)
	}
	if ctx.Err() != nil {
		return provider.Object{}, unknown("the call's time ran out before it could be checked")
	}
	v := url.Values{}
	sc.values(v)
	v.Set("limit", "20")
	resp, err := c.send(ctx, http.MethodGet, "/v1/memory/list", v, nil, authHeader, true)
	if err != nil {
		return provider.Object{}, unknown("reading back failed: " + err.Error())
	}
	var ans listAnswer
	if err := decode(resp, "memory list", &ans); err != nil {
		return provider.Object{}, unknown("the read-back could not be parsed")
	}
	wantMeta, _ := json.Marshal(body["metadata"])
	for _, raw := range ans.Memories {
		var m struct {
			ID        string          `json:"id"`
			Content   string          `json:"content"`
			Metadata  json.RawMessage `json:"metadata"`
			CreatedAt time.Time       `json:"createdAt"`
		}
		if json.Unmarshal(raw, &m) != nil || m.Content != body["content"] {
			continue
		}
		if m.CreatedAt.Before(sent.Add(-2 * time.Minute)) {
			continue // an older memory with the same text
		}
		if body["metadata"] != nil && !jsonEqual(m.Metadata, wantMeta) {
			continue
		}
		obj, err := toObject(raw)
		if err != nil {
			return provider.Object{}, unknown("the read-back could not be parsed")
		}
		return obj, nil
	}
	return provider.Object{}, unknown("it is not among the newest memories yet")
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

// Update always fails: Cencori memories are immutable.
func (c *Client) Update(ctx context.Context, p provider.Patch) (provider.Object, error) {
	if err := checkType(p.Type); err != nil {
		return provider.Object{}, err
	}
	return provider.Object{}, fmt.Errorf("%w: Cencori memories are immutable (the API has no update); to change memory %s, delete it with content_delete and write the new text with content_create", provider.ErrUnsupported, p.ID)
}

type deleteAnswer struct {
	Deleted bool   `json:"deleted"`
	ID      string `json:"id"`
}

// Delete reads the memory (to return it), then deletes it. A delete whose
// answer is lost is settled by reading the memory again: gone means
// deleted.
func (c *Client) Delete(ctx context.Context, typ, id string) (provider.Object, error) {
	obj, err := c.Get(ctx, typ, provider.Ref{ID: id})
	if err != nil {
		return provider.Object{}, err
	}
	path := "/v1/memory/" + url.PathEscape(id)
	resp, err := c.send(ctx, http.MethodDelete, path, nil, nil, authHeader, false)
	if err != nil {
		if outcomeUnknown(err) && ctx.Err() == nil {
			_, gerr := c.Get(ctx, typ, provider.Ref{ID: id})
			var nf *provider.NotFoundError
			if errors.As(gerr, &nf) {
				return obj, nil
			}
			if gerr == nil {
				return provider.Object{}, c.memoryError(err, id) // still there: the delete failed
			}
			return provider.Object{}, fmt.Errorf("cencori: %w: deleting memory %s got no usable answer (%s), and reading it back failed", provider.ErrOutcomeUnknown, id, err)
		}
		return provider.Object{}, c.memoryError(err, id)
	}
	var ans deleteAnswer
	if err := decode(resp, "memory delete", &ans); err != nil {
		return provider.Object{}, err
	}
	if !ans.Deleted {
		return provider.Object{}, fmt.Errorf("cencori: deleting memory %s answered %d without deleted:true; it may still exist", id, resp.Status)
	}
	return obj, nil
}

// memoryError refines an error from a memory endpoint: a memory's 404
// ({"error":"not_found"}) is the object missing; the route-level 404
// ({"error":"Not found"}) is the memory API being switched off on this
// deployment; a 400 names the field it is about.
func (c *Client) memoryError(err error, id string) error {
	ue, ok := asUpstream(err)
	if !ok || errors.Is(ue.Kind, provider.ErrUnsupported) {
		return err
	}
	switch ue.Status {
	case http.StatusNotFound:
		if ue.Code == "not_found" && id != "" {
			return &provider.NotFoundError{What: "object", Name: id}
		}
		if ue.Kind == nil {
			ue.Kind = provider.ErrUnsupported
			ue.Message = strings.TrimSpace(ue.Message + " (the memory API is not enabled on this Cencori deployment; Cencori kept it local-only before launch)")
		}
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return &provider.FieldError{Field: fieldOf(ue.Message), Problem: "Cencori refused it: " + ue.Message, Fix: "correct the value and try again"}
	}
	return ue
}

// fieldOf guesses the keygate argument a validation message is about.
func fieldOf(msg string) string {
	for _, f := range []string{"content", "importance", "expiresAt", "userId", "sessionId", "scope", "namespace", "metadata", "query", "topK", "limit", "cursor"} {
		if strings.Contains(msg, f) {
			switch f {
			case "query":
				return "filter"
			case "topK", "limit":
				return "limit"
			case "cursor":
				return "cursor"
			}
			return "fields." + f
		}
	}
	return "fields"
}

func toObjects(raws []json.RawMessage) ([]provider.Object, error) {
	out := make([]provider.Object, 0, len(raws))
	for _, raw := range raws {
		o, err := toObject(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// toObject maps a memory: id and createdAt become the object's own; every
// other attribute stays in Fields under Cencori's name. A memory never
// changes, so ModifiedAt is its CreatedAt.
func toObject(raw []byte) (provider.Object, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return provider.Object{}, fmt.Errorf("cencori: a memory is not a JSON object (%d bytes)", len(raw))
	}
	var id, content, created string
	_ = json.Unmarshal(m["id"], &id)
	_ = json.Unmarshal(m["content"], &content)
	_ = json.Unmarshal(m["createdAt"], &created)
	if id == "" {
		return provider.Object{}, errors.New("cencori: a memory came without an id")
	}
	var meta struct {
		Title string `json:"title"`
	}
	_ = json.Unmarshal(m["metadata"], &meta)
	title := strings.TrimSpace(meta.Title)
	if title == "" {
		title = summarize(content)
	}
	delete(m, "id")
	delete(m, "createdAt")
	fields, err := json.Marshal(m)
	if err != nil {
		return provider.Object{}, fmt.Errorf("cencori: encoding memory %s: %w", id, err)
	}
	t, _ := time.Parse(time.RFC3339Nano, created)
	return provider.Object{ID: id, Type: TypeMemories, Slug: id, Title: title, Status: provider.StatusPublished,
		Fields: fields, CreatedAt: t, ModifiedAt: t}, nil
}

// fromWrite builds the object from a write's answer and the request, when
// the read-back failed: the request's content (the answer's is redacted)
// and metadata.
func fromWrite(answer []byte, body map[string]any) (provider.Object, error) {
	var m map[string]any
	if err := json.Unmarshal(answer, &m); err != nil {
		return provider.Object{}, fmt.Errorf("cencori: the memory write's answer is not JSON: %w", err)
	}
	m["content"] = body["content"]
	if meta, ok := body["metadata"]; ok {
		m["metadata"] = meta
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return provider.Object{}, fmt.Errorf("cencori: encoding memory: %w", err)
	}
	return toObject(raw)
}

// summarize is a memory's title: the first line of its content, cut to 80
// characters.
func summarize(content string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(content), "\n")
	line = strings.TrimSpace(line)
	if utf8.RuneCountInString(line) <= titleRunes {
		return line
	}
	r := []rune(line)
	return strings.TrimSpace(string(r[:titleRunes-1])) + "…"
}
