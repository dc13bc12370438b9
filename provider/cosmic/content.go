package cosmic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/upstream"
)

const (
	defaultLimit = 20
	maxLimit     = 100
	// maxCountedTypes bounds the per-type count requests Types makes.
	maxCountedTypes = 50
)

// objectProps are the properties requested for every object: what
// provider.Object needs. keygate's own projection is applied later, on the
// provider.Object, by the tools.
const objectProps = "id,slug,title,type,status,created_at,modified_at,metadata"

// object is a Cosmic object as the v3 API returns it
// (docs/providers/cosmic.md, Object JSON).
type object struct {
	ID         string          `json:"id"`
	Slug       string          `json:"slug"`
	Title      string          `json:"title"`
	Type       string          `json:"type"`
	Status     string          `json:"status"`
	CreatedAt  string          `json:"created_at"`
	ModifiedAt string          `json:"modified_at"`
	Metadata   json.RawMessage `json:"metadata"`
}

func (o object) toProvider() provider.Object {
	fields := bytes.TrimSpace(o.Metadata)
	if len(fields) == 0 || string(fields) == "null" || fields[0] != '{' {
		fields = []byte("{}")
	}
	status := o.Status
	if status == "" {
		status = provider.StatusPublished
	}
	return provider.Object{ID: o.ID, Type: o.Type, Slug: o.Slug, Title: o.Title, Status: status,
		Fields: json.RawMessage(fields), CreatedAt: parseTime(o.CreatedAt), ModifiedAt: parseTime(o.ModifiedAt)}
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// objectType is a Cosmic object type.
type objectType struct {
	Slug       string `json:"slug"`
	Title      string `json:"title"`
	Singular   string `json:"singular"`
	Metafields []struct {
		Key string `json:"key"`
	} `json:"metafields"`
}

var errNoBucket = fmt.Errorf("%w: no Cosmic bucket is configured (set %s and %s)", provider.ErrUnsupported, EnvBucketSlug, EnvReadKey)

func (c *Client) needBucket() error {
	if c.cfg.BucketSlug == "" {
		return errNoBucket
	}
	return nil
}

// needWriteKey refuses a write before any request when no write key is
// configured, saying why.
func (c *Client) needWriteKey() error {
	if err := c.needBucket(); err != nil {
		return err
	}
	if c.cfg.WriteKey.Secret.IsZero() {
		return fmt.Errorf("%w: %s is not set, so keygate cannot write to this Cosmic bucket (create a write key under Bucket Settings > API Access and set %s)",
			provider.ErrPermission, EnvWriteKey, EnvWriteKey)
	}
	return nil
}

// Types lists the bucket's object types, each with its number of objects
// (one request per type, for the first maxCountedTypes; -1 beyond).
func (c *Client) Types(ctx context.Context) ([]provider.ContentType, error) {
	if err := c.needBucket(); err != nil {
		return nil, err
	}
	resp, err := c.api.Send(ctx, c.call(http.MethodGet, credRead, c.bucketPath("/object-types"), nil, nil))
	if err != nil {
		return nil, err
	}
	var types []objectType
	switch {
	case resp.Status == http.StatusNotFound && !bucketMissing(resp):
		// An empty list is a 404 (docs/providers/cosmic.md, Errors).
		c.learnTypes(nil)
		return []provider.ContentType{}, nil
	case !resp.OK():
		return nil, c.api.Error(resp)
	}
	if err := c.decode(resp, "object_types", &types, EnvAPIURL); err != nil {
		return nil, err
	}
	c.learnTypes(types)
	out := make([]provider.ContentType, 0, len(types))
	for i, t := range types {
		ct := provider.ContentType{Name: t.Slug, Description: t.Title, Count: -1}
		for _, m := range t.Metafields {
			if m.Key != "" {
				ct.Fields = append(ct.Fields, m.Key)
			}
		}
		if i < maxCountedTypes {
			n, err := c.count(ctx, t.Slug)
			if err != nil {
				return nil, err
			}
			ct.Count = n
		}
		out = append(out, ct)
	}
	return out, nil
}

// count returns the number of objects of typ in any status.
func (c *Client) count(ctx context.Context, typ string) (int, error) {
	q, _ := json.Marshal(map[string]any{"type": typ})
	resp, err := c.api.Send(ctx, c.call(http.MethodGet, credRead, c.bucketPath("/objects"), url.Values{"query": {string(q)}, "props": {"id"}, "limit": {"1"}, "status": {"any"}}, nil))
	if err != nil {
		return 0, err
	}
	switch {
	case resp.Status == http.StatusNotFound && !bucketMissing(resp):
		return 0, nil
	case !resp.OK():
		return 0, c.api.Error(resp)
	}
	var objs []object
	if err := c.decode(resp, "objects", &objs, EnvAPIURL); err != nil {
		return 0, err
	}
	if total, ok := readTotal(resp.Body); ok {
		return total, nil
	}
	return -1, nil
}

// bucketMissing tells Cosmic's "bucket with slug: 'x' not found" 404 from
// the 404 it sends for an empty list (docs/providers/cosmic.md, Errors).
func bucketMissing(resp *upstream.Response) bool {
	var ae apiError
	_ = json.Unmarshal(resp.Body, &ae)
	m := strings.ToLower(ae.Message)
	return strings.Contains(m, "bucket") && strings.Contains(m, "not found")
}

func readTotal(body []byte) (int, bool) {
	var env struct {
		Total *int `json:"total"`
	}
	if json.Unmarshal(body, &env) != nil || env.Total == nil {
		return 0, false
	}
	return *env.Total, true
}

// typeExists asks for one object type; it tells an unknown type from an
// empty one, which Cosmic's list answers cannot.
func (c *Client) typeExists(ctx context.Context, typ string) (bool, error) {
	resp, err := c.api.Send(ctx, c.call(http.MethodGet, credRead, c.bucketPath("/object-types/"+url.PathEscape(typ)), nil, nil))
	if err != nil {
		return false, err
	}
	switch {
	case resp.Status == http.StatusNotFound && !bucketMissing(resp):
		return false, nil
	case !resp.OK():
		return false, c.api.Error(resp)
	case routeNotFound(resp.Body):
		return false, c.decode(resp, "object_type", new(json.RawMessage), EnvAPIURL)
	}
	return true, nil
}

// emptyAnswer is the common end of a list that matched nothing: an empty
// page when the type exists, else a NotFoundError for the type.
func (c *Client) emptyAnswer(ctx context.Context, typ string) error {
	exists, err := c.typeExists(ctx, typ)
	if err != nil {
		return err
	}
	if !exists {
		return &provider.NotFoundError{What: "content type", Name: typ}
	}
	return nil
}

// List returns one page. The cursor is the decimal skip of the page.
func (c *Client) List(ctx context.Context, q provider.ListQuery) (provider.Page, error) {
	if err := c.needBucket(); err != nil {
		return provider.Page{}, err
	}
	limit, skip, err := upstream.Offset(q, defaultLimit, maxLimit)
	if err != nil {
		return provider.Page{}, err
	}
	query, status, none, err := buildQuery(q)
	if err != nil {
		return provider.Page{}, err
	}
	sort, err := buildSort(q.Sort)
	if err != nil {
		return provider.Page{}, err
	}
	if none {
		// The status conditions exclude each other: nothing can match.
		return c.emptyPage(ctx, q.Type, 0)
	}
	qs, err := json.Marshal(query)
	if err != nil {
		return provider.Page{}, &provider.FieldError{Field: "filter", Problem: "cannot be encoded as JSON", Fix: "compare with strings, numbers or booleans"}
	}
	resp, err := c.api.Send(ctx, c.call(http.MethodGet, credRead, c.bucketPath("/objects"), url.Values{
		"query": {string(qs)}, "props": {objectProps}, "limit": {strconv.Itoa(limit)}, "skip": {strconv.Itoa(skip)},
		"sort": {sort}, "status": {status}, "depth": {"0"},
	}, nil))
	switch {
	case err != nil:
		return provider.Page{}, err
	case resp.Status == http.StatusNotFound && !bucketMissing(resp):
		return c.emptyPage(ctx, q.Type, skip)
	case !resp.OK():
		return provider.Page{}, c.api.Error(resp)
	}
	return c.page(resp, skip, limit)
}

// emptyPage is a list that matched nothing (Cosmic's 404 for an empty
// list, docs/providers/cosmic.md, Errors): an empty page when the type
// exists, else a NotFoundError for it. Past the end of a list that had
// objects (skip > 0) the count is not known from the answer.
func (c *Client) emptyPage(ctx context.Context, typ string, skip int) (provider.Page, error) {
	empty := provider.Page{Objects: []provider.Object{}, Total: 0}
	if skip > 0 {
		empty.Total = -1
		return empty, nil
	}
	if err := c.emptyAnswer(ctx, typ); err != nil {
		return provider.Page{}, err
	}
	return empty, nil
}

// page reads a list's answer: its objects, the total when Cosmic gives
// it, and the next page's cursor.
func (c *Client) page(resp *upstream.Response, skip, limit int) (provider.Page, error) {
	var objs []object
	if err := c.decode(resp, "objects", &objs, EnvAPIURL); err != nil {
		return provider.Page{}, err
	}
	page := provider.Page{Objects: make([]provider.Object, 0, len(objs)), Total: -1}
	for _, o := range objs {
		page.Objects = append(page.Objects, o.toProvider())
	}
	if total, ok := readTotal(resp.Body); ok {
		page.Total = total
		if next := skip + len(objs); len(objs) > 0 && next < total {
			page.NextCursor = strconv.Itoa(next)
		}
	} else if len(objs) == limit {
		page.NextCursor = strconv.Itoa(skip + len(objs))
	}
	return page, nil
}

// builtinNames maps keygate's built-in paths to Cosmic's names. version has
// no Cosmic equivalent; status is not a query field but the status
// parameter (see buildQuery).
var builtinNames = map[string]string{
	"id": "id", "slug": "slug", "title": "title", "created_at": "created_at", "modified_at": "modified_at",
}

// cosmicPath maps a keygate condition or sort path to Cosmic's.
func cosmicPath(p, arg string) (string, error) {
	if n, ok := builtinNames[p]; ok {
		return n, nil
	}
	if rest, ok := strings.CutPrefix(p, "fields."); ok && rest != "" {
		return "metadata." + rest, nil
	}
	if p == "version" {
		return "", &provider.FieldError{Field: arg, Problem: "Cosmic objects have no version to " + map[string]string{"filter": "filter on", "sort": "sort by"}[arg],
			Fix: "leave version out; use modified_at instead"}
	}
	return "", &provider.FieldError{Field: arg, Problem: fmt.Sprintf("cannot use %q with Cosmic", p),
		Fix: "use id, slug, title, status, created_at, modified_at or fields.<name>"}
}

// buildQuery translates keygate's filter into Cosmic's Mongo-like query
// (docs/providers/cosmic.md, Queries) and the status parameter. Status is not a documented
// query field, so status conditions are folded into the status parameter
// ("any", "published" or "draft"); none is true when they exclude each other.
func buildQuery(q provider.ListQuery) (query map[string]any, status string, none bool, err error) {
	allowed := map[string]bool{provider.StatusDraft: true, provider.StatusPublished: true}
	restrict := func(keep func(s string) bool) {
		for s := range allowed {
			if !keep(s) {
				delete(allowed, s)
			}
		}
	}
	if q.Status != "" {
		restrict(func(s string) bool { return s == q.Status })
	}
	var parts []map[string]any
	for _, cond := range q.Filter {
		if cond.Path == "status" {
			if err := statusCondition(cond, restrict); err != nil {
				return nil, "", false, err
			}
			continue
		}
		path, err := cosmicPath(cond.Path, "filter")
		if err != nil {
			return nil, "", false, err
		}
		switch cond.Op {
		case provider.OpEq:
			parts = append(parts, map[string]any{path: cond.Value})
		case provider.OpNe, provider.OpIn, provider.OpGt, provider.OpGte, provider.OpLt, provider.OpLte:
			parts = append(parts, map[string]any{path: map[string]any{string(cond.Op): cond.Value}})
		default:
			return nil, "", false, &provider.FieldError{Field: "filter", Problem: fmt.Sprintf("unknown operator %q", cond.Op), Fix: "use $eq, $ne, $in, $gt, $gte, $lt or $lte"}
		}
	}
	// One flat object when every path is distinct, so the query stays
	// readable; $and when the same path has several conditions.
	query = map[string]any{"type": q.Type}
	flat := true
	for _, p := range parts {
		for k, v := range p {
			if _, dup := query[k]; dup {
				flat = false
			}
			query[k] = v
		}
	}
	if !flat {
		and := make([]any, 0, len(parts))
		for _, p := range parts {
			and = append(and, p)
		}
		query = map[string]any{"type": q.Type, "$and": and}
	}
	switch {
	case len(allowed) == 0:
		return nil, "", true, nil
	case len(allowed) == 2:
		status = "any"
	case allowed[provider.StatusDraft]:
		status = provider.StatusDraft
	default:
		status = provider.StatusPublished
	}
	return query, status, false, nil
}

// statusCondition narrows the status set by one condition on status.
func statusCondition(cond provider.Condition, restrict func(func(string) bool)) error {
	str := func(v any) string { s, _ := v.(string); return s }
	switch cond.Op {
	case provider.OpEq:
		restrict(func(s string) bool { return s == str(cond.Value) })
	case provider.OpNe:
		restrict(func(s string) bool { return s != str(cond.Value) })
	case provider.OpIn:
		list, _ := cond.Value.([]any)
		restrict(func(s string) bool {
			for _, v := range list {
				if str(v) == s {
					return true
				}
			}
			return false
		})
	default:
		return &provider.FieldError{Field: "filter", Problem: fmt.Sprintf("status cannot be compared with %s on Cosmic", cond.Op), Fix: "use $eq, $ne or $in on status"}
	}
	return nil
}

// buildSort maps keygate's sort to Cosmic's single sort key. Cosmic sorts
// by created_at or modified_at (and random/order, which keygate does not
// offer); the default is newest modified first, as keygate documents.
func buildSort(keys []provider.SortKey) (string, error) {
	if len(keys) == 0 {
		return "-modified_at", nil
	}
	if len(keys) > 1 {
		return "", &provider.FieldError{Field: "sort", Problem: "Cosmic sorts by one key only", Fix: "use one of created_at, modified_at (prefix - for descending)"}
	}
	k := keys[0]
	if k.Path != "created_at" && k.Path != "modified_at" {
		if _, err := cosmicPath(k.Path, "sort"); err != nil {
			return "", err
		}
		return "", &provider.FieldError{Field: "sort", Problem: fmt.Sprintf("Cosmic cannot sort by %q", k.Path), Fix: "sort by created_at or modified_at (prefix - for descending)"}
	}
	if k.Desc {
		return "-" + k.Path, nil
	}
	return k.Path, nil
}

// Get returns one object of typ by id or slug, in any status.
func (c *Client) Get(ctx context.Context, typ string, ref provider.Ref) (provider.Object, error) {
	if err := c.needBucket(); err != nil {
		return provider.Object{}, err
	}
	switch {
	case ref.ID != "" && ref.Slug == "":
		return c.getByID(ctx, typ, ref.ID)
	case ref.Slug != "" && ref.ID == "":
		obj, found, err := c.findBySlug(ctx, typ, ref.Slug)
		if err != nil {
			return provider.Object{}, err
		}
		if !found {
			return provider.Object{}, &provider.NotFoundError{What: "object", Name: ref.Slug}
		}
		return obj, nil
	}
	return provider.Object{}, &provider.FieldError{Field: "id", Problem: "give exactly one of id and slug", Fix: "pass the id from content_list, or the slug"}
}

// getByID reads one object with a query on its id, as the official SDK's
// findOne({id}) and the official MCP's cosmic_objects_get do
// (docs/providers/cosmic.md, Objects): GET /objects/{id} is documented for
// v2 only.
func (c *Client) getByID(ctx context.Context, typ, id string) (provider.Object, error) {
	qs, _ := json.Marshal(map[string]any{"id": id})
	resp, err := c.api.Send(ctx, c.call(http.MethodGet, credRead, c.bucketPath("/objects"), url.Values{
		"query": {string(qs)}, "props": {objectProps}, "limit": {"1"}, "status": {"any"}, "depth": {"0"}}, nil))
	if err != nil {
		return provider.Object{}, err
	}
	switch {
	case resp.Status == http.StatusNotFound && !bucketMissing(resp):
		return provider.Object{}, &provider.NotFoundError{What: "object", Name: id}
	case !resp.OK():
		return provider.Object{}, c.api.Error(resp)
	}
	var objs []object
	if err := c.decode(resp, "objects", &objs, EnvAPIURL); err != nil {
		return provider.Object{}, err
	}
	for _, o := range objs {
		if o.ID != id {
			continue
		}
		if o.Type != typ {
			// The id exists but belongs to another type: not an object of typ.
			return provider.Object{}, &provider.NotFoundError{What: "object", Name: id}
		}
		return o.toProvider(), nil
	}
	return provider.Object{}, &provider.NotFoundError{What: "object", Name: id}
}

// readFirst explains a refused read that a write depends on: Cosmic's
// write key cannot read (docs/providers/cosmic.md, Authentication), so
// without a read key a bucket that refuses keyless reads answers 401, and
// the fix is the read key, not the write key.
func (c *Client) readFirst(err error, why string) error {
	var ue *provider.UpstreamError
	if !c.cfg.ReadKey.Secret.IsZero() || !errors.As(err, &ue) || (ue.Status != http.StatusUnauthorized && ue.Status != http.StatusForbidden) {
		return err
	}
	return fmt.Errorf("%w: keygate reads the object before it %s, to check that it is of the type named, and this bucket refuses reads without a read key: set %s",
		provider.ErrPermission, why, EnvReadKey)
}

// findBySlug lists with {"type":T,"slug":S} and limit 1. A missing type is
// reported as a NotFoundError for the type.
func (c *Client) findBySlug(ctx context.Context, typ, slug string) (provider.Object, bool, error) {
	qs, _ := json.Marshal(map[string]any{"type": typ, "slug": slug})
	resp, err := c.api.Send(ctx, c.call(http.MethodGet, credRead, c.bucketPath("/objects"), url.Values{
		"query": {string(qs)}, "props": {objectProps}, "limit": {"1"}, "status": {"any"}, "depth": {"0"}}, nil))
	if err != nil {
		return provider.Object{}, false, err
	}
	switch {
	case resp.Status == http.StatusNotFound && !bucketMissing(resp):
		if err := c.emptyAnswer(ctx, typ); err != nil {
			return provider.Object{}, false, err
		}
		return provider.Object{}, false, nil
	case !resp.OK():
		return provider.Object{}, false, c.api.Error(resp)
	}
	var objs []object
	if err := c.decode(resp, "objects", &objs, EnvAPIURL); err != nil {
		return provider.Object{}, false, err
	}
	for _, o := range objs {
		if o.Slug == slug && o.Type == typ {
			return o.toProvider(), true, nil
		}
	}
	return provider.Object{}, false, nil
}

// checkSlugFree refuses a slug another object of typ already has, with a
// clear error: slugs are unique per object type (docs/providers/cosmic.md,
// Object JSON), but what Cosmic does with a duplicate is unknown. The
// check and the write are two requests, so a concurrent writer can still
// take the slug in between.
func (c *Client) checkSlugFree(ctx context.Context, typ, slug, self string) error {
	obj, found, err := c.findBySlug(ctx, typ, slug)
	if err != nil {
		return err
	}
	if found && obj.ID != self {
		return &provider.FieldError{Field: "slug", Problem: fmt.Sprintf("slug %q is already used by another %s object", slug, typ),
			Fix: "choose another slug, or update the existing object"}
	}
	return nil
}

// fieldsObject decodes a fields argument that must be a JSON object.
func fieldsObject(raw json.RawMessage) (map[string]any, error) {
	if raw == nil {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, &provider.FieldError{Field: "fields", Problem: "must be a JSON object", Fix: `write {"name": value}`}
	}
	return m, nil
}

// Create posts a new object and returns it as Cosmic stored it. POST
// needs only the write key (docs/providers/cosmic.md, Objects). With a
// read key, keygate first checks that the type exists and the slug is
// free, for clear errors; without one it lets Cosmic decide and maps its
// answer.
func (c *Client) Create(ctx context.Context, n provider.NewObject) (provider.Object, error) {
	if err := c.needWriteKey(); err != nil {
		return provider.Object{}, err
	}
	meta, err := fieldsObject(n.Fields)
	if err != nil {
		return provider.Object{}, err
	}
	if n.Status != provider.StatusDraft && n.Status != provider.StatusPublished {
		return provider.Object{}, &provider.FieldError{Field: "status", Problem: "must be draft or published", Fix: `use "draft" or "published"`}
	}
	if !c.cfg.ReadKey.Secret.IsZero() {
		// Also establishes that the type exists (NotFoundError otherwise).
		if err := c.checkSlugFree(ctx, n.Type, n.Slug, ""); err != nil {
			return provider.Object{}, err
		}
	}
	body := map[string]any{"title": n.Title, "type": n.Type, "slug": n.Slug, "status": n.Status, "metadata": meta}
	resp, err := c.api.Send(ctx, c.call(http.MethodPost, credWrite, c.bucketPath("/objects"), nil, body))
	if err != nil {
		return c.settleCreate(ctx, n, err)
	}
	if !resp.OK() {
		return provider.Object{}, c.createError(resp, n.Type)
	}
	return c.created(ctx, resp, n, meta)
}

// settleCreate looks, by its slug, for the object of a create whose
// answer was lost; without a read key it cannot.
func (c *Client) settleCreate(ctx context.Context, n provider.NewObject, cause error) (provider.Object, error) {
	if c.cfg.ReadKey.Secret.IsZero() {
		return provider.Object{}, c.api.Unsettled("create", "object", cause)
	}
	obj, found, rerr := c.findBySlug(ctx, n.Type, n.Slug)
	switch {
	case rerr == nil && found && obj.Title == n.Title:
		return obj, nil
	case rerr == nil && !found:
		return provider.Object{}, cause // nothing was created
	}
	return provider.Object{}, c.api.Unsettled("create", "object", cause)
}

// created reads a create's answer: the object as Cosmic stored it, read
// back whole when the answer is partial and a read key allows; else built
// from what was sent.
func (c *Client) created(ctx context.Context, resp *upstream.Response, n provider.NewObject, meta map[string]any) (provider.Object, error) {
	var o object
	if err := c.decode(resp, "object", &o, EnvAPIURL); err != nil {
		return provider.Object{}, err
	}
	if o.ID == "" {
		return provider.Object{}, c.api.BadAnswer(resp, true, "create answered without an object id")
	}
	if o.Metadata != nil && o.Type != "" {
		return o.toProvider(), nil
	}
	if !c.cfg.ReadKey.Secret.IsZero() {
		return c.getByID(ctx, n.Type, o.ID) // a partial answer: read the whole object back
	}
	// A partial answer and no way to read: the object was created in
	// n.Type with the metadata sent.
	if o.Type == "" {
		o.Type = n.Type
	}
	if o.Metadata == nil {
		o.Metadata, _ = json.Marshal(meta)
	}
	return o.toProvider(), nil
}

// createError maps a refused POST. Without the read-key pre-checks an
// unknown type reaches Cosmic. Unknown: its answer to one; a 404 that is
// not about the bucket is taken for the type.
func (c *Client) createError(resp *upstream.Response, typ string) error {
	if resp.Status == http.StatusNotFound && !bucketMissing(resp) {
		return &provider.NotFoundError{What: "content type", Name: typ}
	}
	return c.writeError(resp, typ, "")
}

// Update PATCHes only what p changes: the title, slug and status given and,
// in metadata, only the keys of p.Fields, as the official SDK, MCP server
// and CLI do; Cosmic merges them into the stored metadata
// (docs/providers/cosmic.md, Objects). A key's value is replaced whole.
// Sending only these keys keeps a concurrent editor's change to another
// key, and never sends back a file or object metafield in the expanded
// form a read returns. Cosmic keeps one metadata key per metafield of the
// object type, so a null (remove) is refused: Cosmic cannot remove one.
// The object is read first, to check its type (keygate's scopes are per
// type) and whether a new slug is free.
func (c *Client) Update(ctx context.Context, p provider.Patch) (provider.Object, error) {
	if p.ExpectedVersion != nil {
		return provider.Object{}, &provider.FieldError{Field: "expected_version",
			Problem: "Cosmic has no object versions, so keygate cannot check that the object is unchanged since you read it",
			Fix:     "leave expected_version out to update without the check (compare modified_at from content_get yourself if it matters)"}
	}
	if err := c.needWriteKey(); err != nil {
		return provider.Object{}, err
	}
	body, changed, err := patchBody(p)
	if err != nil {
		return provider.Object{}, err
	}
	cur, err := c.getByID(ctx, p.Type, p.ID)
	if err != nil {
		return provider.Object{}, c.readFirst(err, "updates it")
	}
	if p.Slug != nil {
		if *p.Slug != cur.Slug {
			if err := c.checkSlugFree(ctx, p.Type, *p.Slug, p.ID); err != nil {
				return provider.Object{}, err
			}
		}
		body["slug"] = *p.Slug
	}
	if len(body) == 0 {
		// Nothing to change (fields was {}): Cosmic refuses a PATCH
		// without a parameter, and the object is as it was.
		return cur, nil
	}
	resp, err := c.api.Send(ctx, c.call(http.MethodPatch, credWrite, c.bucketPath("/objects/"+url.PathEscape(p.ID)), nil, body))
	if err != nil {
		back, rerr := c.getByID(ctx, p.Type, p.ID)
		if rerr == nil && applied(back, p, changed) {
			return back, nil
		}
		return provider.Object{}, c.api.Unsettled("update", "object", err)
	}
	return c.patched(ctx, resp, p)
}

// patchBody is the PATCH body of p without the slug (which needs a
// check first), and the metadata keys it changes.
func patchBody(p provider.Patch) (body, changed map[string]any, err error) {
	body = map[string]any{}
	if p.Title != nil {
		body["title"] = *p.Title
	}
	if p.Status != nil {
		if *p.Status != provider.StatusDraft && *p.Status != provider.StatusPublished {
			return nil, nil, &provider.FieldError{Field: "status", Problem: "must be draft or published", Fix: `use "draft" or "published"`}
		}
		body["status"] = *p.Status
	}
	if p.Fields == nil {
		return body, nil, nil
	}
	patch, err := fieldsObject(p.Fields)
	if err != nil {
		return nil, nil, err
	}
	var removed []string
	for k, v := range patch {
		if v == nil {
			removed = append(removed, k)
		}
	}
	if len(removed) > 0 {
		slices.Sort(removed)
		return nil, nil, &provider.FieldError{Field: "fields." + removed[0],
			Problem: "Cosmic cannot remove a field: every object keeps one value per metafield of its object type",
			Fix:     `send an empty value instead of null (e.g. ""), or remove the metafield from the object type in the Cosmic dashboard`}
	}
	if len(patch) > 0 {
		changed = patch
		body["metadata"] = changed
	}
	return body, changed, nil
}

// patched reads a PATCH's answer: the object as Cosmic stored it, read
// back whole when the answer is partial.
func (c *Client) patched(ctx context.Context, resp *upstream.Response, p provider.Patch) (provider.Object, error) {
	switch {
	case resp.Status == http.StatusNotFound && !bucketMissing(resp):
		return provider.Object{}, &provider.NotFoundError{What: "object", Name: p.ID}
	case !resp.OK():
		return provider.Object{}, c.writeError(resp, p.Type, p.ID)
	}
	var o object
	if err := c.decode(resp, "object", &o, EnvAPIURL); err != nil {
		return provider.Object{}, err
	}
	if o.ID == "" || o.Metadata == nil || o.Type == "" {
		return c.getByID(ctx, p.Type, p.ID) // a partial answer: read the whole object back
	}
	return o.toProvider(), nil
}

// applied reports whether obj shows every change in p (after a write whose
// answer was lost): the title, slug and status, and each metadata key sent.
func applied(obj provider.Object, p provider.Patch, changed map[string]any) bool {
	if p.Title != nil && obj.Title != *p.Title || p.Slug != nil && obj.Slug != *p.Slug || p.Status != nil && obj.Status != *p.Status {
		return false
	}
	got, err := fieldsObject(obj.Fields)
	if err != nil {
		return false
	}
	for k, want := range changed {
		w, _ := json.Marshal(want)
		g, _ := json.Marshal(got[k])
		if !bytes.Equal(w, g) {
			return false
		}
	}
	return true
}

// Delete removes an object and returns it as it was. It reads the object
// first: the tool must name what it deleted, and a DELETE of an object of
// another type must not happen.
func (c *Client) Delete(ctx context.Context, typ, id string) (provider.Object, error) {
	if err := c.needWriteKey(); err != nil {
		return provider.Object{}, err
	}
	obj, err := c.getByID(ctx, typ, id)
	if err != nil {
		return provider.Object{}, c.readFirst(err, "deletes it")
	}
	resp, err := c.api.Send(ctx, c.call(http.MethodDelete, credWrite, c.bucketPath("/objects/"+url.PathEscape(id)), nil, nil))
	if err != nil {
		_, rerr := c.getByID(ctx, typ, id)
		var nf *provider.NotFoundError
		switch {
		case errors.As(rerr, &nf):
			return obj, nil // it is gone
		case rerr == nil:
			return provider.Object{}, err // still there: not deleted
		}
		return provider.Object{}, c.api.Unsettled("delete", "object", err)
	}
	switch {
	case resp.Status == http.StatusNotFound && !bucketMissing(resp):
		return provider.Object{}, &provider.NotFoundError{What: "object", Name: id}
	case !resp.OK():
		return provider.Object{}, c.writeError(resp, typ, id)
	case routeNotFound(resp.Body):
		return provider.Object{}, c.decode(resp, "object", new(json.RawMessage), EnvAPIURL)
	}
	return obj, nil
}

// writeError maps a failed write: 400/422 validation to a FieldError
// naming the keygate argument where the message allows, the rest as
// upstream.API.Error does.
func (c *Client) writeError(resp *upstream.Response, typ, id string) error {
	ue := c.api.Error(resp)
	if resp.Status != http.StatusBadRequest && resp.Status != http.StatusUnprocessableEntity {
		return ue
	}
	m := strings.ToLower(ue.Message)
	field := "fields"
	switch {
	case strings.Contains(m, "slug"):
		field = "slug"
	case strings.Contains(m, "title"):
		field = "title"
	case strings.Contains(m, "status"):
		field = "status"
	case strings.Contains(m, "object type") || strings.Contains(m, "type "):
		field = "type"
	}
	return &provider.FieldError{Field: field, Problem: "Cosmic refused the value: " + ue.Message, Fix: "correct the value and try again"}
}
