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
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/upstream"
)

// TypeMemories is the one content type: the project's memories.
const TypeMemories = "memories"

// memoryFields are the fields a memory object carries, as Cencori names
// them. Fields written on create: content, namespace, importance,
// expiresAt, metadata, and userId / sessionId / scope to choose whose
// memory it is.
var memoryFields = []string{"content", "namespace", "scope", "scopeKey", "metadata", "importance", "accessCount", "lastAccessedAt", "expiresAt", "updatedAt", "score", "source", "keygate_note"}

var writableFields = []string{"content", "namespace", "importance", "expiresAt", "metadata", "userId", "sessionId", "scope"}

// memoryIDPattern keeps ids to what Cencori issues (mem_ and a UUID, or
// the bare UUID) and out of path tricks: an id outside it cannot exist.
var memoryIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`) })

// titleRunes is how much of a memory's content its title shows.
const titleRunes = 80

// searchMax is the most results a search returns: Cencori clamps topK to
// 1-20 (docs/providers/cencori.md, "Search").
const searchMax = 20

// sessionPlaceholderID is the id Cencori gives every session-scope memory:
// they live in a per-session list and have no id of their own.
const sessionPlaceholderID = "mem_session"

// sessionNote is attached to a session memory in place of an id.
const sessionNote = "Cencori keeps session memories in a short list per session (its newest 20, until the session's time to live runs out, a day by default) " +
	"and gives them no id of their own: it answers the placeholder mem_session, so this memory cannot be read or deleted by id. " +
	`List the session's memories with the filter {"sessionId": "..."}.`

// Types lists the one content type. Its Count is -1: Cencori has no count
// of a project's memories. It asks for one memory first, because the type
// is useless where Cencori does not serve memory (production, today): that
// is an error that says so. Any other failure of the check is left to the
// calls that follow.
func (c *Client) Types(ctx context.Context) ([]provider.ContentType, error) {
	var mu *memoryUnavailable
	if err := c.probeMemory(ctx); errors.As(err, &mu) {
		return nil, err
	}
	return []provider.ContentType{{
		Name: TypeMemories,
		Description: "Cencori memories: immutable text kept per user (default userId " + c.cfg.MemoryUserID +
			") or per session, newest first. Filter {\"query\": \"...\"} runs a semantic search (at most 20 results); namespace, userId, sessionId and scope narrow the list. No update: delete and create instead.",
		Fields: memoryFields,
		Count:  -1,
	}}, nil
}

// probeMemory asks for one memory of the default user: the cheapest memory
// request, which production's gating answers like any other.
func (c *Client) probeMemory(ctx context.Context) error {
	v := url.Values{}
	c.defaultScope().values(v)
	v.Set("limit", "1")
	_, err := c.sendMemory(ctx, http.MethodGet, "/v1/memory/list", v, nil, true)
	if err != nil {
		return c.memoryError(err, "")
	}
	return nil
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

// resolved is the scope to send. Cencori defaults a missing scope to
// "user" whatever ids come with it (docs/providers/cencori.md, "Scope"), so
// keygate always names it: "session" when only a sessionId is given.
func (s memScope) resolved() string {
	switch {
	case s.scope != "":
		return s.scope
	case s.sessionID != "":
		return "session"
	}
	return "user"
}

// params are the scope's request parameters: scope, the one id that scope
// is keyed by, and the namespace (session memories have none).
func (s memScope) params() [][2]string {
	scope := s.resolved()
	if scope == "session" {
		return [][2]string{{"scope", scope}, {"sessionId", s.sessionID}}
	}
	out := [][2]string{{"scope", scope}, {"userId", s.userID}}
	if s.namespace != "" {
		out = append(out, [2]string{"namespace", s.namespace})
	}
	return out
}

func (s memScope) values(v url.Values) {
	for _, p := range s.params() {
		v.Set(p[0], p[1])
	}
}

func (s memScope) body(m map[string]any) {
	for _, p := range s.params() {
		m[p[0]] = p[1]
	}
}

// check refuses the combinations Cencori would refuse or misread. field
// names the argument the ids came from ("filter" or "fields.").
func (s memScope) check(field, fix string, userGiven bool) error {
	at := func(name string) string {
		if field == "filter" {
			return field
		}
		return field + name
	}
	switch {
	case userGiven && s.sessionID != "":
		return &provider.FieldError{Field: at("sessionId"), Problem: "give userId or sessionId, not both", Fix: fix}
	case s.scope != "" && s.scope != "user" && s.scope != "session":
		return &provider.FieldError{Field: at("scope"), Problem: `scope is "user" or "session"`, Fix: fix}
	case s.scope == "session" && s.sessionID == "":
		return &provider.FieldError{Field: at("sessionId"), Problem: `scope "session" needs a sessionId`, Fix: `add {"sessionId": "..."}`}
	case s.scope == "user" && s.sessionID != "":
		return &provider.FieldError{Field: at("scope"), Problem: `scope "user" is keyed by a userId, not a sessionId`,
			Fix: `use {"scope": "session"} with the sessionId, or a userId with scope "user"`}
	}
	return nil
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
	user := false
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
			p.scope.sessionID = s
		case "scope":
			p.scope.scope = s
		}
	}
	if err := p.scope.check("filter", filterFix, user); err != nil {
		return p, err
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
// search (POST /v1/memory/search, one page of up to Limit results, at most
// 20, best first, each with its score in fields.score). Memories have no status:
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
		return c.search(ctx, p, q, limit)
	}
	v := url.Values{}
	p.scope.values(v)
	v.Set("limit", strconv.Itoa(limit))
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	resp, err := c.sendMemory(ctx, http.MethodGet, "/v1/memory/list", v, nil, true)
	if err != nil {
		return provider.Page{}, c.memoryError(err, "")
	}
	var ans listAnswer
	if err := c.decode(resp, "memory list", false, &ans); err != nil {
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

// search is a List with a query: one page of up to limit results (20
// by default and at most), best first.
func (c *Client) search(ctx context.Context, p listPlan, q provider.ListQuery, limit int) (provider.Page, error) {
	if q.Cursor != "" {
		return provider.Page{}, &provider.FieldError{Field: "cursor", Problem: "a semantic search returns a single page", Fix: "leave cursor out, or raise limit"}
	}
	if q.Limit < 1 {
		limit = searchMax
	}
	if limit > searchMax {
		// Cencori clamps topK to 1-20 and drops the rest without a word;
		// keygate says so instead of returning 20 as if they were all.
		return provider.Page{}, &provider.FieldError{Field: "limit",
			Problem: fmt.Sprintf("a Cencori semantic search returns at most %d results (the server clamps topK to 1-%d), so %d cannot be honoured", searchMax, searchMax, limit),
			Fix:     fmt.Sprintf("use limit %d or less, narrow the query, or list without a query to page through every memory", searchMax)}
	}
	body := map[string]any{"query": p.query, "topK": limit}
	p.scope.body(body)
	// A search changes nothing, so it may be retried like a GET.
	resp, err := c.sendMemory(ctx, http.MethodPost, "/v1/memory/search", nil, body, true)
	if err != nil {
		return provider.Page{}, c.memoryError(err, "")
	}
	var ans searchAnswer
	if err := c.decode(resp, "memory search", false, &ans); err != nil {
		return provider.Page{}, err
	}
	objs, err := toObjects(ans.Results)
	if err != nil {
		return provider.Page{}, err
	}
	return provider.Page{Objects: objs, Total: len(objs)}, nil
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
	if err := checkID(id); err != nil {
		return provider.Object{}, err
	}
	resp, err := c.sendMemory(ctx, http.MethodGet, "/v1/memory/"+url.PathEscape(id), nil, nil, true)
	if err != nil {
		return provider.Object{}, c.memoryError(err, id)
	}
	return toObject(resp.Body)
}

// checkID refuses, without a request, ids no memory can have.
func checkID(id string) error {
	switch {
	case id == sessionPlaceholderID:
		return &provider.FieldError{Field: "id", Problem: "mem_session is the placeholder id Cencori gives every session memory; session memories cannot be read or deleted one by one",
			Fix: `list them with the filter {"sessionId": "..."}`}
	case !memoryIDPattern().MatchString(id):
		return &provider.NotFoundError{What: "object", Name: id}
	}
	return nil
}

// serverMetadata are the metadata keys Cencori's write sets itself,
// overwriting the caller's (docs/providers/cencori.md, "Write").
var serverMetadata = []string{"extractedFrom", "piiRedactions", "embeddingProvider", "embeddingModel", "supersedes", "reconciled"}

// written is a write request and what keygate needs to settle it.
type written struct {
	body  map[string]any
	scope memScope
	// titleDropped is set when a session memory's title could not be
	// kept: session memories keep their text and importance only.
	titleDropped bool
}

// writeBody builds the /v1/memory/write request. content defaults to the
// title; when both are given and differ, the title is kept in
// metadata.title (what Object.Title shows).
func (c *Client) writeBody(n provider.NewObject) (written, error) {
	w := written{body: map[string]any{}, scope: c.defaultScope()}
	f, err := parseWriteFields(n.Fields)
	if err != nil {
		return w, err
	}
	if err := f.readScope(&w.scope); err != nil {
		return w, err
	}
	session := w.scope.resolved() == "session"
	if err := f.sessionKeeps(session); err != nil {
		return w, err
	}
	title := strings.TrimSpace(n.Title)
	content, err := f.content(title)
	if err != nil {
		return w, err
	}
	w.body["content"] = content
	meta, err := f.metadata()
	if err != nil {
		return w, err
	}
	if title != "" && title != strings.TrimSpace(content) && title != summarize(content) {
		// A session memory keeps no metadata, so its title is lost.
		w.titleDropped = session
		if !session {
			meta = withTitle(meta, title)
		}
	}
	if meta != nil {
		w.body["metadata"] = meta
	}
	if err := f.importance(w.body); err != nil {
		return w, err
	}
	if err := f.expiresAt(w.body, c.api.Now()); err != nil {
		return w, err
	}
	w.scope.body(w.body)
	return w, nil
}

// writeFields are a create's fields, still encoded.
type writeFields map[string]json.RawMessage

// parseWriteFields reads fields, which must be a JSON object of
// writableFields.
func parseWriteFields(raw json.RawMessage) (writeFields, error) {
	f := writeFields{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, &provider.FieldError{Field: "fields", Problem: "must be a JSON object", Fix: `write {"content": "..."}`}
		}
	}
	for k := range f {
		if !slices.Contains(writableFields, k) {
			return nil, &provider.FieldError{Field: "fields." + k, Problem: "is not a field of a Cencori memory",
				Fix: "use " + strings.Join(writableFields, ", ") + "; anything else goes inside metadata"}
		}
	}
	return f, nil
}

// given reports whether k is set to something other than null.
func (f writeFields) given(k string) bool { raw, ok := f[k]; return ok && string(raw) != "null" }

// str reads k as a string; "" when it is not given.
func (f writeFields) str(k string) (string, error) {
	if !f.given(k) {
		return "", nil
	}
	var s string
	if json.Unmarshal(f[k], &s) != nil {
		return "", &provider.FieldError{Field: "fields." + k, Problem: "must be a string", Fix: fmt.Sprintf(`write {"%s": "..."}`, k)}
	}
	return s, nil
}

// readScope applies namespace, userId, sessionId and scope to sc.
func (f writeFields) readScope(sc *memScope) error {
	for _, k := range []struct {
		name string
		dst  *string
	}{{"namespace", &sc.namespace}, {"userId", &sc.userID}, {"sessionId", &sc.sessionID}, {"scope", &sc.scope}} {
		s, err := f.str(k.name)
		if err != nil {
			return err
		}
		if s != "" {
			*k.dst = s
		}
	}
	return sc.check("fields.", `drop scope to follow userId/sessionId`, f.given("userId"))
}

// sessionKeeps refuses, for a session memory, the fields Cencori drops on
// a session-scope write.
func (f writeFields) sessionKeeps(session bool) error {
	if !session {
		return nil
	}
	for _, k := range []string{"metadata", "namespace", "expiresAt"} {
		if f.given(k) {
			return &provider.FieldError{Field: "fields." + k, Problem: "a session memory keeps only its text and importance; Cencori drops " + k + " on a session-scope write",
				Fix: "leave " + k + " out, or write a user-scope memory (a userId and no sessionId)"}
		}
	}
	return nil
}

// content is the memory's text: fields.content, else the title, within
// Cencori's limit.
func (f writeFields) content(title string) (string, error) {
	content, err := f.str("content")
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(content) == "" {
		content = title
	}
	if strings.TrimSpace(content) == "" {
		return "", &provider.FieldError{Field: "fields.content", Problem: "a memory needs some text", Fix: "pass fields.content, or a title"}
	}
	if utf16Len(strings.TrimSpace(content)) > contentMaxChars {
		return "", &provider.FieldError{Field: "fields.content", Problem: fmt.Sprintf("Cencori keeps at most %d characters per memory", contentMaxChars), Fix: "shorten it, or split it into several memories"}
	}
	return content, nil
}

// metadata reads fields.metadata, an object without the keys Cencori
// sets itself; nil when it is not given.
func (f writeFields) metadata() (map[string]any, error) {
	if !f.given("metadata") {
		return nil, nil
	}
	var meta map[string]any
	if json.Unmarshal(f["metadata"], &meta) != nil || meta == nil {
		return nil, &provider.FieldError{Field: "fields.metadata", Problem: "must be a JSON object", Fix: `write {"metadata": {"key": "value"}}`}
	}
	for _, k := range serverMetadata {
		if _, set := meta[k]; set {
			return nil, &provider.FieldError{Field: "fields.metadata." + k, Problem: "Cencori sets metadata." + k + " itself and overwrites what is sent",
				Fix: "use another key"}
		}
	}
	return meta, nil
}

// withTitle keeps title in metadata.title, unless the caller set one.
func withTitle(meta map[string]any, title string) map[string]any {
	if meta == nil {
		meta = map[string]any{}
	}
	if _, set := meta["title"]; !set {
		meta["title"] = title
	}
	return meta
}

// importance copies fields.importance, a number from 0 to 1, into body.
func (f writeFields) importance(body map[string]any) error {
	if !f.given("importance") {
		return nil
	}
	var v float64
	if json.Unmarshal(f["importance"], &v) != nil || v < 0 || v > 1 {
		return &provider.FieldError{Field: "fields.importance", Problem: "must be a number from 0 to 1", Fix: "use e.g. 0.8"}
	}
	body["importance"] = v
	return nil
}

// expiresAt copies fields.expiresAt, a time after now, into body.
func (f writeFields) expiresAt(body map[string]any, now time.Time) error {
	exp, err := f.str("expiresAt")
	if err != nil || exp == "" {
		return err
	}
	t, perr := time.Parse(time.RFC3339Nano, exp)
	if perr != nil || !t.After(now) {
		return &provider.FieldError{Field: "fields.expiresAt", Problem: "must be an ISO 8601 date-time in the future", Fix: "use e.g. 2030-01-02T15:04:05Z"}
	}
	body["expiresAt"] = t.UTC().Format(time.RFC3339Nano)
	return nil
}

// contentMaxChars is Cencori's limit on a memory's text, in JavaScript
// string length (UTF-16 code units).
const contentMaxChars = 10240

func utf16Len(s string) int { return len(utf16.Encode([]rune(s))) }

type writeAnswer struct {
	ID string `json:"id"`
}

// Create writes a memory (POST /v1/memory/write) and reads it back: the
// write's answer is partial (no metadata). Slug and Status are ignored (a
// memory's slug is its id; every memory is live). A session-scope write has
// no id to read back (Cencori answers the placeholder mem_session): its
// object has no id and says why. A write whose answer is lost is looked for
// among the newest memories before it is reported as ErrOutcomeUnknown; it
// is never sent twice.
func (c *Client) Create(ctx context.Context, n provider.NewObject) (provider.Object, error) {
	if err := checkType(n.Type); err != nil {
		return provider.Object{}, err
	}
	w, err := c.writeBody(n)
	if err != nil {
		return provider.Object{}, err
	}
	sent := c.api.Now()
	resp, err := c.sendMemory(ctx, http.MethodPost, "/v1/memory/write", nil, w.body, false)
	if err != nil {
		if outcomeUnknown(err) {
			return c.findWritten(ctx, w, sent, err)
		}
		return provider.Object{}, c.memoryError(err, "")
	}
	var ans writeAnswer
	if err := c.decode(resp, "memory write", true, &ans); err != nil || ans.ID == "" {
		return provider.Object{}, fmt.Errorf("cencori: %w: the memory write answered %d without an id; list memories to see whether it was stored", provider.ErrOutcomeUnknown, resp.Status)
	}
	if ans.ID == sessionPlaceholderID {
		return sessionObject(resp.Body, w.titleDropped)
	}
	obj, gerr := c.Get(ctx, TypeMemories, provider.Ref{ID: ans.ID})
	if gerr == nil {
		return obj, nil
	}
	// Stored, but the read-back failed: build the object from the answer
	// and what was sent, rather than report a failure that did not happen.
	c.api.Log.DebugContext(ctx, "cencori memory read-back failed", "id", ans.ID, "error", c.api.Redactor.Redact(gerr.Error()))
	return fromWrite(resp.Body, w.body)
}

// findWritten settles a write whose answer was lost: it lists the newest
// memories of the same user or session and namespace, and returns the one
// with the same text, created since the write was sent, whose metadata
// holds everything keygate sent (Cencori adds keys of its own). A data rule
// that rewrote the text makes it unrecognisable: the outcome then stays
// unknown, never guessed.
func (c *Client) findWritten(ctx context.Context, w written, sent time.Time, cause error) (provider.Object, error) {
	unknown := func(why string) error {
		// The cause is kept as text: wrapped, its own kind (ErrUnavailable)
		// would win over ErrOutcomeUnknown in tools/errors.go.
		return fmt.Errorf("cencori: %w: the memory write got no usable answer (%s) and %s; list memories before writing it again", provider.ErrOutcomeUnknown, cause.Error(), why)
	}
	if ctx.Err() != nil {
		return provider.Object{}, unknown("the call's time ran out before it could be checked")
	}
	v := url.Values{}
	w.scope.values(v)
	v.Set("limit", "20")
	resp, err := c.sendMemory(ctx, http.MethodGet, "/v1/memory/list", v, nil, true)
	if err != nil {
		return provider.Object{}, unknown("reading back failed: " + err.Error())
	}
	var ans listAnswer
	if err := c.decode(resp, "memory list", false, &ans); err != nil {
		return provider.Object{}, unknown("the read-back could not be parsed")
	}
	content, _ := w.body["content"].(string)
	content = strings.TrimSpace(content) // Cencori stores the text trimmed
	sentMeta, _ := w.body["metadata"].(map[string]any)
	for _, raw := range ans.Memories {
		var m struct {
			ID        string         `json:"id"`
			Content   string         `json:"content"`
			Metadata  map[string]any `json:"metadata"`
			CreatedAt time.Time      `json:"createdAt"`
		}
		if json.Unmarshal(raw, &m) != nil || m.Content != content {
			continue
		}
		if m.CreatedAt.Before(sent.Add(-2 * time.Minute)) {
			continue // an older memory with the same text
		}
		if !holds(m.Metadata, sentMeta) {
			continue
		}
		if m.ID == sessionPlaceholderID {
			return sessionObject(raw, w.titleDropped)
		}
		obj, err := toObject(raw)
		if err != nil {
			return provider.Object{}, unknown("the read-back could not be parsed")
		}
		return obj, nil
	}
	return provider.Object{}, unknown("it is not among the newest memories yet")
}

// holds reports whether stored has every key of sent with an equal value:
// Cencori's write adds keys of its own (extractedFrom "manual" and the
// write's bookkeeping) to the metadata it stores.
func holds(stored, sent map[string]any) bool {
	for k, v := range sent {
		got, ok := stored[k]
		if !ok {
			return false
		}
		a, _ := json.Marshal(v)
		b, _ := json.Marshal(got)
		if !jsonEqual(a, b) {
			return false
		}
	}
	return true
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
	resp, err := c.sendMemory(ctx, http.MethodDelete, path, nil, nil, false)
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
			// err as text, as in findWritten: the error must match
			// ErrOutcomeUnknown only.
			return provider.Object{}, fmt.Errorf("cencori: %w: deleting memory %s got no usable answer (%s), and reading it back failed", provider.ErrOutcomeUnknown, id, err.Error())
		}
		return provider.Object{}, c.memoryError(err, id)
	}
	var ans deleteAnswer
	if err := c.decode(resp, "memory delete", true, &ans); err != nil {
		return provider.Object{}, err
	}
	if !ans.Deleted {
		return provider.Object{}, c.api.BadAnswer(resp, true, fmt.Sprintf("deleting memory %s answered without deleted:true; it may still exist", id))
	}
	return obj, nil
}

// memoryUnavailable is the memory API being unusable where keygate is
// pointed: why, and what to do about it. It is an ErrUnsupported.
type memoryUnavailable struct {
	reason, fix string
}

func (e *memoryUnavailable) Error() string {
	return "Cencori's memory API is not available on this deployment: " + e.reason + "; to use it, " + e.fix
}

func (e *memoryUnavailable) Unwrap() error { return provider.ErrUnsupported }

// isGatedAnswer reports whether body is exactly what Cencori's proxy.ts
// answers, before any authentication, on memory paths off localhost.
func isGatedAnswer(body []byte) bool {
	var m map[string]any
	return json.Unmarshal(body, &m) == nil && len(m) == 1 && m["error"] == "Not found"
}

// sendMemory is send for the memory endpoints (key in CENCORI_API_KEY),
// which tells the production gating from every other 404.
func (c *Client) sendMemory(ctx context.Context, method, path string, query url.Values, body any, idempotent bool) (*upstream.Response, error) {
	resp, err := c.api.Do(ctx, c.request(method, path, query, body, idempotent))
	if err != nil && resp != nil && resp.Status == http.StatusNotFound && isGatedAnswer(resp.Body) {
		return resp, &memoryUnavailable{
			reason: fmt.Sprintf("%s answered %s %s with 404 {\"error\":\"Not found\"} before checking the key, which is how Cencori's server answers every memory path on any host but localhost until Memory is launched",
				c.cfg.APIURL, method, path),
			fix: "point CENCORI_API_URL at a Cencori deployment that serves memory (a self-hosted Cencori reached as localhost, e.g. http://localhost:3000/api); auth_whoami reports whether memory is available",
		}
	}
	return resp, err
}

// memoryError refines an error from a memory endpoint: a memory's 404
// ({"error":"not_found"}) is the object missing; 403 memory_disabled is the
// project's setting; any other 404 means there is no memory API at
// CENCORI_API_URL; a 400 names the field it is about.
func (c *Client) memoryError(err error, id string) error {
	var mu *memoryUnavailable
	ue, ok := errors.AsType[*provider.UpstreamError](err)
	if !ok || errors.As(err, &mu) {
		return err
	}
	switch {
	case ue.Code == "memory_disabled":
		return &memoryUnavailable{
			reason: "memory is switched off in this Cencori project's settings (" + ue.Error() + "); reads still work, writes and searches do not",
			fix:    "switch Memory on in the project's memory settings in the Cencori dashboard",
		}
	case ue.Status == http.StatusNotFound && ue.Code == "not_found" && id != "":
		return &provider.NotFoundError{What: "object", Name: id}
	case ue.Status == http.StatusNotFound && ue.Kind == nil:
		return &memoryUnavailable{
			reason: fmt.Sprintf("%s has no memory API where keygate looked (%s)", c.cfg.APIURL, ue.Error()),
			fix:    "check CENCORI_API_URL: api.cencori.com serves /v1/memory, a self-hosted Cencori serves /api/v1/memory (set CENCORI_API_URL=https://host/api)",
		}
	case ue.Status == http.StatusBadRequest || ue.Status == http.StatusUnprocessableEntity:
		return &provider.FieldError{Field: fieldOf(ue.Message), Problem: "Cencori refused it: " + ue.Message, Fix: "correct the value and try again"}
	}
	return err
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
// changes, so ModifiedAt is its CreatedAt. A session memory has no id: its
// object has none either, and a keygate_note field says why.
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
	if id == sessionPlaceholderID {
		id = ""
		m["keygate_note"], _ = json.Marshal(sessionNote)
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

// sessionObject is a session memory as written: the answer is all there is
// (its content is what Cencori stored), and the note says the title was
// not kept when it was not.
func sessionObject(answer []byte, titleDropped bool) (provider.Object, error) {
	obj, err := toObject(answer)
	if err != nil || !titleDropped {
		return obj, err
	}
	var m map[string]any
	if err := json.Unmarshal(obj.Fields, &m); err != nil {
		return provider.Object{}, fmt.Errorf("cencori: encoding a session memory: %w", err)
	}
	m["keygate_note"] = sessionNote + " The title was not kept: a session memory keeps only its text and importance."
	if obj.Fields, err = json.Marshal(m); err != nil {
		return provider.Object{}, fmt.Errorf("cencori: encoding a session memory: %w", err)
	}
	return obj, nil
}

// fromWrite builds the object from a write's answer and the request, when
// the read-back failed: the answer's content (what Cencori stored) and the
// metadata sent (Cencori's own keys are missing).
func fromWrite(answer []byte, body map[string]any) (provider.Object, error) {
	var m map[string]any
	if err := json.Unmarshal(answer, &m); err != nil {
		return provider.Object{}, fmt.Errorf("cencori: the memory write's answer is not JSON: %w", err)
	}
	if _, ok := m["content"].(string); !ok {
		m["content"] = body["content"]
	}
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
