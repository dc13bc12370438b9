package cockpit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"reflect"
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
)

// item is a Cockpit content item with its values still encoded.
type item map[string]json.RawMessage

func (it item) str(k string) (string, bool) {
	var s string
	if raw, ok := it[k]; !ok || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func (it item) num(k string) (float64, bool) {
	var f float64
	if raw, ok := it[k]; !ok || json.Unmarshal(raw, &f) != nil {
		return 0, false
	}
	return f, true
}

// userFields are the model's own fields: no system field (_id, _state,
// ...), and not title or slug, which keygate carries as attributes of
// their own.
func (it item) userFields() []string {
	var out []string
	for k := range it {
		if !strings.HasPrefix(k, "_") && k != "title" && k != "slug" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// toObject maps an item. Cockpit stores every model field, null when
// unset, so a null field is left out of Fields: keygate's "null removes a
// key" then reads back as a removed key.
func (it item) toObject(model string) provider.Object {
	o := provider.Object{Type: model, Status: provider.StatusPublished}
	o.ID, _ = it.str("_id")
	o.Title, _ = it.str("title")
	o.Slug, _ = it.str("slug")
	if st, ok := it.num("_state"); ok && st == 0 {
		o.Status = provider.StatusDraft
	}
	if t, ok := it.num("_created"); ok {
		o.CreatedAt = unixTime(t)
	}
	if t, ok := it.num("_modified"); ok {
		o.ModifiedAt = unixTime(t)
	}
	fields := map[string]any{}
	for _, k := range it.userFields() {
		dec := json.NewDecoder(bytes.NewReader(it[k]))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) == nil && v != nil {
			fields[k] = v
		}
	}
	// Re-encoded without Cockpit's escaped slashes or Go's HTML escapes.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(fields)
	o.Fields = bytes.TrimSpace(b.Bytes())
	return o
}

func unixTime(f float64) time.Time {
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

func modelPath(kind, model string, rest ...string) string {
	p := "/content/" + kind + "/" + url.PathEscape(model)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// Types lists the models named in COCKPIT_MODELS that the key may read,
// each with its number of published items and the fields of one item.
// Cockpit's public API cannot list models.
func (c *Client) Types(ctx context.Context) ([]provider.ContentType, error) {
	out := []provider.ContentType{}
	for _, m := range c.cfg.Models {
		s, err := c.sample(ctx, m)
		var nf *provider.NotFoundError
		switch {
		case errors.As(err, &nf), errors.Is(err, provider.ErrPermission):
			continue // missing, or not readable with this key: auth_whoami says which
		case err != nil:
			return nil, err
		}
		ct := provider.ContentType{Name: m, Count: s.total}
		if s.item != nil {
			ct.Fields = s.item.userFields()
		}
		out = append(out, ct)
	}
	return out, nil
}

// sampled is one item of a model and the model's total.
type sampled struct {
	item  item // nil when the model has no readable item
	total int
}

// sample reads the first item of a model with limit=1&skip=0, which also
// gives the total. The keys of an item are the model's fields: Cockpit
// stores all of them (null when unset).
func (c *Client) sample(ctx context.Context, model string) (sampled, error) {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: modelPath("items", model),
		query: url.Values{"limit": {"1"}, "skip": {"0"}}})
	if err != nil {
		return sampled{}, err
	}
	if !ok2xx(resp) {
		if resp.Status == http.StatusNotFound {
			return sampled{}, c.notFoundOr(resp, model, "")
		}
		return sampled{}, c.upstreamError(resp)
	}
	items, total, err := c.decodeList(resp)
	if err != nil {
		return sampled{}, err
	}
	s := sampled{total: total}
	if len(items) > 0 {
		s.item = items[0]
	}
	return s, nil
}

// decodeList reads {"data":[...],"meta":{"total":N}}, or the bare array
// Cockpit sends unless both limit and skip are given (total -1 then).
func (c *Client) decodeList(resp *upstream.Response) ([]item, int, error) {
	body := bytes.TrimSpace(resp.Body)
	if len(body) > 0 && body[0] == '[' {
		var items []item
		if err := json.Unmarshal(body, &items); err != nil {
			return nil, 0, c.badAnswer(resp, "the item list is not JSON")
		}
		return items, -1, nil
	}
	var env struct {
		Data *[]item `json:"data"`
		Meta struct {
			Total *int `json:"total"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Data == nil {
		return nil, 0, c.badAnswer(resp, "the answer is not an item list")
	}
	total := -1
	if env.Meta.Total != nil {
		total = *env.Meta.Total
	}
	return *env.Data, total, nil
}

func (c *Client) badAnswer(resp *upstream.Response, what string) error {
	return &provider.UpstreamError{Provider: Name, Status: resp.Status, Message: what + " (check " + EnvURL + ")", Kind: provider.ErrUnavailable}
}

func decodeItem(b []byte) (item, bool) {
	var it item
	if json.Unmarshal(b, &it) != nil || it == nil {
		return nil, false
	}
	return it, true
}

// statusOnlyPublished refuses a draft: Cockpit's API reads only published
// items (_state 1), so a draft is invisible to every API read.
func statusOnlyPublished(field, s string) error {
	if s == "" || s == provider.StatusPublished {
		return nil
	}
	return &provider.FieldError{Field: field, Problem: "Cockpit's API reads only published items: a draft would be invisible to keygate, which could then neither show, change nor delete it",
		Fix: `use status "published" (manage drafts in the Cockpit admin)`}
}

// List returns one page. The cursor is the decimal skip of the page; both
// limit and skip are always sent, so Cockpit returns a total.
func (c *Client) List(ctx context.Context, q provider.ListQuery) (provider.Page, error) {
	if err := statusOnlyPublished("status", q.Status); err != nil {
		return provider.Page{}, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)
	skip := 0
	if q.Cursor != "" {
		n, err := strconv.Atoi(q.Cursor)
		if err != nil || n < 0 {
			return provider.Page{}, &provider.FieldError{Field: "cursor", Problem: "not a position this provider issued",
				Fix: "pass next_cursor from the previous page unchanged, or leave it out to start over"}
		}
		skip = n
	}
	filter, err := buildFilter(q.Filter)
	if err != nil {
		return provider.Page{}, err
	}
	sort, err := buildSort(q.Sort)
	if err != nil {
		return provider.Page{}, err
	}
	params := url.Values{"sort": {sort}, "limit": {strconv.Itoa(limit)}, "skip": {strconv.Itoa(skip)}}
	if len(filter) > 0 {
		b, err := json.Marshal(filter)
		if err != nil {
			return provider.Page{}, &provider.FieldError{Field: "filter", Problem: "cannot be encoded as JSON", Fix: "compare with strings, numbers or booleans"}
		}
		params.Set("filter", string(b))
	}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: modelPath("items", q.Type), query: params})
	if err != nil {
		return provider.Page{}, err
	}
	switch {
	case resp.Status == http.StatusNotFound:
		return provider.Page{}, c.notFoundOr(resp, q.Type, "")
	case resp.Status == http.StatusBadRequest:
		return provider.Page{}, c.badRequest(resp)
	case !ok2xx(resp):
		return provider.Page{}, c.upstreamError(resp)
	}
	items, total, err := c.decodeList(resp)
	if err != nil {
		return provider.Page{}, err
	}
	page := provider.Page{Objects: make([]provider.Object, 0, len(items)), Total: total}
	for _, it := range items {
		page.Objects = append(page.Objects, it.toObject(q.Type))
	}
	next := skip + len(items)
	if len(items) > 0 && (total >= 0 && next < total || total < 0 && len(items) == limit) {
		page.NextCursor = strconv.Itoa(next)
	}
	return page, nil
}

// cockpitPath maps a keygate condition or sort path to an item path.
func cockpitPath(p, arg string) (string, error) {
	switch p {
	case "id":
		return "_id", nil
	case "created_at":
		return "_created", nil
	case "modified_at":
		return "_modified", nil
	case "title", "slug":
		return p, nil
	case "version":
		return "", &provider.FieldError{Field: arg, Problem: "Cockpit items have no version", Fix: "leave version out; use modified_at instead"}
	}
	if rest, ok := strings.CutPrefix(p, "fields."); ok && rest != "" {
		return rest, nil
	}
	return "", &provider.FieldError{Field: arg, Problem: fmt.Sprintf("cannot use %q with Cockpit", p),
		Fix: "use id, slug, title, status, created_at, modified_at or fields.<name>"}
}

// timeValue converts a date given to created_at/modified_at into the Unix
// seconds Cockpit stores; numbers pass as they are.
func timeValue(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return v, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Unix(), nil
		}
	}
	return nil, &provider.FieldError{Field: "filter", Problem: fmt.Sprintf("%q is not a date", s), Fix: "write dates as 2026-01-31 or 2026-01-31T12:00:00Z"}
}

// buildFilter translates keygate's filter into Cockpit's Mongo-like
// filter (MongoLite). Status conditions are checked, not sent: every item
// the API returns is published.
func buildFilter(conds []provider.Condition) (map[string]any, error) {
	var parts []map[string]any
	for _, cond := range conds {
		if cond.Path == "status" {
			if err := statusCondition(cond); err != nil {
				return nil, err
			}
			continue
		}
		path, err := cockpitPath(cond.Path, "filter")
		if err != nil {
			return nil, err
		}
		val := cond.Value
		if path == "_created" || path == "_modified" {
			if list, ok := val.([]any); ok {
				conv := make([]any, len(list))
				for i, e := range list {
					if conv[i], err = timeValue(e); err != nil {
						return nil, err
					}
				}
				val = conv
			} else if val, err = timeValue(val); err != nil {
				return nil, err
			}
		}
		switch cond.Op {
		case provider.OpEq, provider.OpNe, provider.OpIn, provider.OpGt, provider.OpGte, provider.OpLt, provider.OpLte:
			parts = append(parts, map[string]any{path: map[string]any{string(cond.Op): val}})
		default:
			return nil, &provider.FieldError{Field: "filter", Problem: fmt.Sprintf("unknown operator %q", cond.Op), Fix: "use $eq, $ne, $in, $gt, $gte, $lt or $lte"}
		}
	}
	switch len(parts) {
	case 0:
		return nil, nil
	case 1:
		return parts[0], nil
	}
	and := make([]any, len(parts))
	for i, p := range parts {
		and[i] = p
	}
	return map[string]any{"$and": and}, nil
}

// statusCondition accepts conditions every published item meets and
// refuses those that ask for drafts.
func statusCondition(cond provider.Condition) error {
	s, _ := cond.Value.(string)
	switch cond.Op {
	case provider.OpEq:
		return statusOnlyPublished("filter", s)
	case provider.OpNe:
		if s == provider.StatusPublished {
			return statusOnlyPublished("filter", provider.StatusDraft)
		}
		return nil
	case provider.OpIn:
		list, _ := cond.Value.([]any)
		for _, v := range list {
			if v == provider.StatusPublished {
				return nil
			}
		}
		return statusOnlyPublished("filter", provider.StatusDraft)
	}
	return &provider.FieldError{Field: "filter", Problem: fmt.Sprintf("status cannot be compared with %s", cond.Op), Fix: "use $eq, $ne or $in on status"}
}

// buildSort writes Cockpit's sort object with its keys in order (JSON
// object order is the sort priority). Default: newest modified first.
func buildSort(keys []provider.SortKey) (string, error) {
	if len(keys) == 0 {
		return `{"_modified":-1}`, nil
	}
	var b strings.Builder
	b.WriteString("{")
	for _, k := range keys {
		if k.Path == "status" {
			continue // every item the API shows is published
		}
		path, err := cockpitPath(k.Path, "sort")
		if err != nil {
			return "", err
		}
		if b.Len() > 1 {
			b.WriteString(",")
		}
		name, _ := json.Marshal(path)
		dir := 1
		if k.Desc {
			dir = -1
		}
		fmt.Fprintf(&b, "%s:%d", name, dir)
	}
	b.WriteString("}")
	return b.String(), nil
}

// Get returns one published item by id, or by its slug field.
func (c *Client) Get(ctx context.Context, model string, ref provider.Ref) (provider.Object, error) {
	switch {
	case ref.ID != "" && ref.Slug == "":
		it, err := c.getItem(ctx, model, ref.ID)
		if err != nil {
			return provider.Object{}, err
		}
		return it.toObject(model), nil
	case ref.Slug != "" && ref.ID == "":
		it, found, err := c.findBySlug(ctx, model, ref.Slug)
		if err != nil {
			return provider.Object{}, err
		}
		if found {
			return it.toObject(model), nil
		}
		s, err := c.sample(ctx, model)
		if err != nil {
			return provider.Object{}, err
		}
		if s.item != nil {
			if _, has := s.item["slug"]; !has {
				return provider.Object{}, noSlugField(model)
			}
		}
		return provider.Object{}, &provider.NotFoundError{What: "object", Name: ref.Slug}
	}
	return provider.Object{}, &provider.FieldError{Field: "id", Problem: "give exactly one of id and slug", Fix: "pass the id from content_list, or the slug"}
}

func noSlugField(model string) error {
	return &provider.FieldError{Field: "slug", Problem: fmt.Sprintf("the Cockpit model %q has no slug field", model),
		Fix: "use the id (content_list shows it), or add a slug field to the model in Cockpit"}
}

func (c *Client) getItem(ctx context.Context, model, id string) (item, error) {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: modelPath("item", model, id)})
	if err != nil {
		return nil, err
	}
	if resp.Status == http.StatusNotFound {
		return nil, c.notFoundOr(resp, model, id)
	}
	if !ok2xx(resp) {
		return nil, c.upstreamError(resp)
	}
	it, ok := decodeItem(resp.Body)
	if !ok {
		return nil, c.badAnswer(resp, "the item is not a JSON object")
	}
	return it, nil
}

// findBySlug asks GET /content/item/{model}?filter={"slug":S}, which
// answers the first published match or an empty 404.
func (c *Client) findBySlug(ctx context.Context, model, slug string) (item, bool, error) {
	f, _ := json.Marshal(map[string]any{"slug": slug})
	resp, err := c.send(ctx, request{method: http.MethodGet, path: modelPath("item", model), query: url.Values{"filter": {string(f)}}})
	if err != nil {
		return nil, false, err
	}
	switch {
	case emptyNotFound(resp):
		return nil, false, nil
	case resp.Status == http.StatusNotFound:
		return nil, false, c.notFoundOr(resp, model, "")
	case !ok2xx(resp):
		return nil, false, c.upstreamError(resp)
	}
	it, ok := decodeItem(resp.Body)
	if !ok {
		return nil, false, c.badAnswer(resp, "the item is not a JSON object")
	}
	return it, true, nil
}

// decodeFields decodes a fields argument that must be a JSON object whose
// keys are ordinary model fields.
func decodeFields(raw json.RawMessage) (map[string]any, error) {
	m := map[string]any{}
	if raw != nil {
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return nil, &provider.FieldError{Field: "fields", Problem: "must be a JSON object", Fix: `write {"name": value}`}
		}
	}
	for k := range m {
		switch {
		case strings.HasPrefix(k, "_"):
			return nil, &provider.FieldError{Field: "fields", Problem: fmt.Sprintf("%q is a Cockpit system field", k), Fix: "leave fields starting with _ out"}
		case k == "title" || k == "slug":
			return nil, &provider.FieldError{Field: "fields", Problem: fmt.Sprintf("%q is set with its own argument", k), Fix: "pass " + k + " as the " + k + " argument, not inside fields"}
		}
	}
	return m, nil
}

// unknownFields returns the keys of m the model does not have (known is
// the key set of one of its items; Cockpit silently drops unknown keys).
func unknownFields(m map[string]any, known item) []string {
	var out []string
	for k := range m {
		if _, ok := known[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func unknownFieldsError(model string, unknown []string, known item) error {
	return &provider.FieldError{Field: "fields", Problem: fmt.Sprintf("the Cockpit model %q has no field %s (Cockpit would silently drop it)", model, strings.Join(unknown, ", ")),
		Fix: "use the model's fields: " + strings.Join(known.userFields(), ", ")}
}

// Create posts a new, published item and returns it as Cockpit stored it.
func (c *Client) Create(ctx context.Context, n provider.NewObject) (provider.Object, error) {
	if err := statusOnlyPublished("status", n.Status); err != nil {
		return provider.Object{}, err
	}
	fields, err := decodeFields(n.Fields)
	if err != nil {
		return provider.Object{}, err
	}
	s, err := c.sample(ctx, n.Type) // the model exists, and its fields
	if err != nil {
		return provider.Object{}, err
	}
	sendSlug := n.Slug != ""
	if s.item != nil {
		if u := unknownFields(fields, s.item); len(u) > 0 {
			return provider.Object{}, unknownFieldsError(n.Type, u, s.item)
		}
		if _, ok := s.item["title"]; !ok {
			return provider.Object{}, &provider.FieldError{Field: "title", Problem: fmt.Sprintf("the Cockpit model %q has no title field, so the title would be lost", n.Type),
				Fix: "add a title field to the model in Cockpit, or create these items there"}
		}
		// A model without a slug field gets no slug; the returned object
		// then shows none.
		_, sendSlug = s.item["slug"]
		sendSlug = sendSlug && n.Slug != ""
	}
	if sendSlug {
		if _, taken, err := c.findBySlug(ctx, n.Type, n.Slug); err != nil {
			return provider.Object{}, err
		} else if taken {
			return provider.Object{}, &provider.FieldError{Field: "slug", Problem: fmt.Sprintf("slug %q is already used by another %s item", n.Slug, n.Type),
				Fix: "choose another slug, or update the existing item"}
		}
	}
	data := map[string]any{}
	for k, v := range fields {
		data[k] = v
	}
	data["title"] = n.Title
	if sendSlug {
		data["slug"] = n.Slug
	}
	// _state is left out: Cockpit publishes API-created items (_state 1).
	resp, err := c.send(ctx, request{method: http.MethodPost, path: modelPath("item", n.Type), body: map[string]any{"data": data}})
	if err != nil {
		if sendSlug {
			it, found, rerr := c.findBySlug(ctx, n.Type, n.Slug)
			if rerr == nil && found {
				if t, _ := it.str("title"); t == n.Title {
					return it.toObject(n.Type), nil
				}
			}
			if rerr == nil && !found {
				return provider.Object{}, err // nothing was created
			}
		}
		return provider.Object{}, outcomeUnknown("create", err)
	}
	if !ok2xx(resp) {
		return provider.Object{}, c.writeError(resp, n.Type, "")
	}
	it, ok := decodeItem(resp.Body)
	id, _ := it.str("_id")
	if !ok || id == "" {
		return provider.Object{}, &provider.UpstreamError{Provider: Name, Status: resp.Status, Message: "create answered without an item id", Kind: provider.ErrOutcomeUnknown}
	}
	var dropped []string
	for k := range data {
		if _, kept := it[k]; !kept && (k != "slug" || s.item != nil) {
			dropped = append(dropped, k)
		}
	}
	if len(dropped) > 0 {
		slices.Sort(dropped)
		return provider.Object{}, &provider.FieldError{Field: "fields",
			Problem: fmt.Sprintf("Cockpit created item %s but dropped %s, which the model %q does not have", id, strings.Join(dropped, ", "), n.Type),
			Fix:     "update or delete that item; use only the model's fields"}
	}
	return it.toObject(n.Type), nil
}

// Update sends the changed fields (Cockpit $sets them: a top-level merge)
// with the item's _id, then reads the item back: Cockpit echoes only the
// sent fields, and answers 200 without writing anything when the id does
// not exist.
func (c *Client) Update(ctx context.Context, p provider.Patch) (provider.Object, error) {
	if p.ExpectedVersion != nil {
		// Cockpit's _modified could stand in for a version, but the check
		// and the write would be two requests (no atomic compare) and
		// _modified has one-second resolution, so keygate does not offer it.
		return provider.Object{}, &provider.FieldError{Field: "expected_version",
			Problem: "Cockpit has no item versions, so keygate cannot check that the item is unchanged since you read it",
			Fix:     "leave expected_version out to update without the check (compare modified_at from content_get yourself if it matters)"}
	}
	if p.Status != nil {
		if err := statusOnlyPublished("status", *p.Status); err != nil {
			return provider.Object{}, err
		}
	}
	patch, err := decodeFields(p.Fields)
	if err != nil {
		return provider.Object{}, err
	}
	cur, err := c.getItem(ctx, p.Type, p.ID)
	if err != nil {
		return provider.Object{}, err
	}
	if u := unknownFields(patch, cur); len(u) > 0 {
		return provider.Object{}, unknownFieldsError(p.Type, u, cur)
	}
	data := map[string]any{}
	for k, v := range patch {
		var old any
		_ = json.Unmarshal(cur[k], &old)
		data[k] = mergePatch(old, v) // nil (null) clears the field
	}
	if p.Title != nil {
		if _, ok := cur["title"]; !ok {
			return provider.Object{}, &provider.FieldError{Field: "title", Problem: fmt.Sprintf("the Cockpit model %q has no title field", p.Type), Fix: "leave title out"}
		}
		data["title"] = *p.Title
	}
	if p.Slug != nil {
		if _, ok := cur["slug"]; !ok {
			return provider.Object{}, noSlugField(p.Type)
		}
		if curSlug, _ := cur.str("slug"); curSlug != *p.Slug {
			other, taken, err := c.findBySlug(ctx, p.Type, *p.Slug)
			if err != nil {
				return provider.Object{}, err
			}
			if oid, _ := other.str("_id"); taken && oid != p.ID {
				return provider.Object{}, &provider.FieldError{Field: "slug", Problem: fmt.Sprintf("slug %q is already used by another %s item", *p.Slug, p.Type),
					Fix: "choose another slug"}
			}
		}
		data["slug"] = *p.Slug
	}
	if len(data) == 0 {
		// Only status "published" was asked for, and the item is published.
		return cur.toObject(p.Type), nil
	}
	body := map[string]any{"_id": p.ID}
	for k, v := range data {
		body[k] = v
	}
	resp, err := c.send(ctx, request{method: http.MethodPost, path: modelPath("item", p.Type), body: map[string]any{"data": body}})
	if err != nil {
		back, rerr := c.getItem(ctx, p.Type, p.ID)
		if rerr == nil && len(mismatched(back, data)) == 0 {
			return back.toObject(p.Type), nil
		}
		return provider.Object{}, outcomeUnknown("update", err)
	}
	if !ok2xx(resp) {
		return provider.Object{}, c.writeError(resp, p.Type, p.ID)
	}
	back, err := c.getItem(ctx, p.Type, p.ID)
	if err != nil {
		// A 404 here: Cockpit answered 200 but wrote nothing (the item is
		// gone), which the NotFoundError reports.
		return provider.Object{}, err
	}
	if bad := mismatched(back, data); len(bad) > 0 {
		return provider.Object{}, &provider.UpstreamError{Provider: Name, Status: resp.Status, Kind: provider.ErrOutcomeUnknown,
			Message: "Cockpit answered success but the item does not show the new " + strings.Join(bad, ", ") + "; read it again with content_get"}
	}
	return back.toObject(p.Type), nil
}

// mismatched returns the keys of want whose stored value differs.
func mismatched(it item, want map[string]any) []string {
	var out []string
	for k, v := range want {
		var got any
		if raw, ok := it[k]; ok {
			_ = json.Unmarshal(raw, &got)
		}
		norm, _ := json.Marshal(v)
		var w any
		_ = json.Unmarshal(norm, &w)
		if !reflect.DeepEqual(got, w) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// mergePatch applies an RFC 7396 merge patch.
func mergePatch(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, _ := target.(map[string]any)
	out := make(map[string]any, len(tm)+len(pm))
	for k, v := range tm {
		out[k] = v
	}
	for k, v := range pm {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = mergePatch(out[k], v)
	}
	return out
}

// Delete checks the item exists (Cockpit answers success for any id),
// deletes it, and checks it is gone.
func (c *Client) Delete(ctx context.Context, model, id string) (provider.Object, error) {
	cur, err := c.getItem(ctx, model, id)
	if err != nil {
		return provider.Object{}, err
	}
	obj := cur.toObject(model)
	resp, err := c.send(ctx, request{method: http.MethodDelete, path: modelPath("item", model, id)})
	if err != nil {
		_, rerr := c.getItem(ctx, model, id)
		var nf *provider.NotFoundError
		switch {
		case errors.As(rerr, &nf):
			return obj, nil
		case rerr == nil:
			return provider.Object{}, err
		}
		return provider.Object{}, outcomeUnknown("delete", err)
	}
	if !ok2xx(resp) {
		return provider.Object{}, c.writeError(resp, model, id)
	}
	_, err = c.getItem(ctx, model, id)
	var nf *provider.NotFoundError
	switch {
	case errors.As(err, &nf):
		return obj, nil
	case err == nil:
		return provider.Object{}, &provider.UpstreamError{Provider: Name, Status: resp.Status, Kind: provider.ErrOutcomeUnknown,
			Message: "Cockpit answered success but the item is still there"}
	}
	return provider.Object{}, outcomeUnknown("delete", err)
}

func outcomeUnknown(what string, cause error) error {
	msg := "the " + what + " was sent but no answer came back, and reading the item back could not tell whether it was applied"
	var ue *provider.UpstreamError
	if errors.As(cause, &ue) && ue.Message != "" {
		msg += " (" + ue.Message + ")"
	}
	return &provider.UpstreamError{Provider: Name, Message: truncate(msg), Kind: provider.ErrOutcomeUnknown}
}

// writeError maps a failed write.
func (c *Client) writeError(resp *upstream.Response, model, id string) error {
	switch {
	case resp.Status == http.StatusNotFound:
		return c.notFoundOr(resp, model, id)
	case resp.Status == http.StatusPreconditionFailed && !authFailed(resp):
		m := c.message(resp)
		if m == "Item data is missing" {
			return &provider.FieldError{Field: "fields", Problem: "Cockpit found no item data", Fix: "pass at least one field"}
		}
		if strings.HasPrefix(m, "DELETE method not allowed") {
			return fmt.Errorf("%w: %s (a singleton cannot be deleted)", provider.ErrUnsupported, m)
		}
	case resp.Status == http.StatusBadRequest:
		return c.badRequest(resp)
	}
	return c.upstreamError(resp)
}
