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

// userFields are the model's own fields among keys: no system field
// (_id, _state, _model, ...), and not title or slug, which keygate carries
// as attributes of their own.
func userFields(keys map[string]bool) []string {
	out := []string{}
	for k := range keys {
		if !strings.HasPrefix(k, "_") && k != "title" && k != "slug" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func (it item) keys() map[string]bool {
	out := make(map[string]bool, len(it))
	for k := range it {
		out[k] = true
	}
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
	for _, k := range userFields(it.keys()) {
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
// each with its number of items and the fields its newest items show.
// Cockpit's public API cannot list models (docs/providers/cockpit.md K1).
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
		ct := provider.ContentType{Name: m, Count: s.total, Fields: userFields(s.fields)}
		if s.singleton != nil {
			ct.Count = 0
			if s.saved() {
				ct.Count = 1
			}
		}
		out = append(out, ct)
	}
	return out, nil
}

// sampleSize is how many of a model's newest items keygate reads to learn
// its fields.
const sampleSize = 5

// modelSample is what a model's newest items tell about it.
type modelSample struct {
	total int
	// fields are the keys of the sampled items together: a model's items
	// carry every field the model had when they were made, but not the
	// ones added later (docs W8), so the set may lack new fields.
	fields map[string]bool
	// singleton is the model's one item when the model is a singleton.
	singleton item
}

func (s modelSample) saved() bool {
	id, _ := s.singleton.str("_id")
	return id != ""
}

// sample reads a model's newest items (limit and skip give the total, K3).
// A singleton answers no items but a total of 1 (S1); its item is then
// read with GET /content/item/{model} (S2).
func (c *Client) sample(ctx context.Context, model string) (modelSample, error) {
	resp, err := c.api.Send(ctx, c.call(http.MethodGet, modelPath("items", model), url.Values{"limit": {strconv.Itoa(sampleSize)}, "skip": {"0"}, "sort": {`{"_created":-1}`}}, nil))
	if err != nil {
		return modelSample{}, err
	}
	if !resp.OK() {
		if resp.Status == http.StatusNotFound {
			return modelSample{}, c.notFoundOr(resp, model, "")
		}
		return modelSample{}, c.api.Error(resp)
	}
	items, total, err := c.decodeList(resp)
	if err != nil {
		return modelSample{}, err
	}
	s := modelSample{total: total, fields: map[string]bool{}}
	for _, it := range items {
		for k := range it {
			s.fields[k] = true
		}
	}
	if len(items) == 0 && total > 0 {
		one, isSingleton, err := c.singletonItem(ctx, model)
		if err != nil {
			return modelSample{}, err
		}
		if isSingleton {
			s.singleton = one
			for k := range one {
				s.fields[k] = true
			}
		}
	}
	return s, nil
}

// singletonItem reads GET /content/item/{model}: for a singleton, its item
// (or, never saved, the model's defaults) marked with _model (S2).
func (c *Client) singletonItem(ctx context.Context, model string) (item, bool, error) {
	resp, err := c.api.Send(ctx, c.call(http.MethodGet, modelPath("item", model), nil, nil))
	if err != nil {
		return nil, false, err
	}
	switch {
	case emptyNotFound(resp):
		return nil, false, nil // a collection whose items went away meanwhile
	case !resp.OK():
		return nil, false, c.notFoundOr(resp, model, "")
	}
	it, ok := decodeItem(resp.Body)
	if !ok {
		return nil, false, c.badAnswer(resp, "the item is not a JSON object")
	}
	return it, it.isSingletonOf(model), nil
}

// isSingletonOf reports whether it is the item of the singleton model:
// Cockpit marks a singleton's item with _model (S2); a collection's items
// carry no _model.
func (it item) isSingletonOf(model string) bool {
	m, ok := it.str("_model")
	return ok && m == model
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

// badAnswer is a 2xx whose body is not what a read expects: the URL may
// point at something that is not Cockpit.
func (c *Client) badAnswer(resp *upstream.Response, what string) error {
	return c.api.BadAnswer(resp, false, what+" (check "+EnvURL+")")
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
	limit, skip, err := upstream.Offset(q, defaultLimit, maxLimit)
	if err != nil {
		return provider.Page{}, err
	}
	params, err := listParams(q, limit, skip)
	if err != nil {
		return provider.Page{}, err
	}
	resp, err := c.api.Send(ctx, c.call(http.MethodGet, modelPath("items", q.Type), params, nil))
	switch {
	case err != nil:
		return provider.Page{}, err
	case resp.Status == http.StatusNotFound:
		return provider.Page{}, c.notFoundOr(resp, q.Type, "")
	case resp.Status == http.StatusBadRequest:
		return provider.Page{}, c.badRequest(resp)
	case !resp.OK():
		return provider.Page{}, c.api.Error(resp)
	}
	items, total, err := c.decodeList(resp)
	if err != nil {
		return provider.Page{}, err
	}
	if len(items) == 0 && total > skip {
		// No items and yet a total: a singleton (S1), or items that went
		// away meanwhile.
		one, isSingleton, err := c.singletonItem(ctx, q.Type)
		if err != nil {
			return provider.Page{}, err
		}
		if isSingleton {
			return singletonPage(q, one, skip)
		}
	}
	return listPage(q.Type, items, total, skip, limit), nil
}

// listParams are a list's filter, sort, limit and skip as Cockpit reads
// them (Q1-Q8).
func listParams(q provider.ListQuery, limit, skip int) (url.Values, error) {
	filter, err := buildFilter(q.Filter)
	if err != nil {
		return nil, err
	}
	sort, err := buildSort(q.Sort)
	if err != nil {
		return nil, err
	}
	params := url.Values{"sort": {sort}, "limit": {strconv.Itoa(limit)}, "skip": {strconv.Itoa(skip)}}
	if len(filter) > 0 {
		b, err := json.Marshal(filter)
		if err != nil {
			return nil, &provider.FieldError{Field: "filter", Problem: "cannot be encoded as JSON", Fix: "compare with strings, numbers or booleans"}
		}
		params.Set("filter", string(b))
	}
	return params, nil
}

// listPage is a page of items, with the next page's cursor when the total
// (or, without one, a full page) says there is more.
func listPage(model string, items []item, total, skip, limit int) provider.Page {
	page := provider.Page{Objects: make([]provider.Object, 0, len(items)), Total: total}
	for _, it := range items {
		page.Objects = append(page.Objects, it.toObject(model))
	}
	next := skip + len(items)
	if len(items) > 0 && (total >= 0 && next < total || total < 0 && len(items) == limit) {
		page.NextCursor = strconv.Itoa(next)
	}
	return page
}

// singletonPage is a singleton's one item as a page. Cockpit ignores
// filters on a singleton (S2), so keygate refuses them rather than show an
// item that does not match.
func singletonPage(q provider.ListQuery, one item, skip int) (provider.Page, error) {
	if slices.ContainsFunc(q.Filter, func(c provider.Condition) bool { return c.Path != "status" }) {
		return provider.Page{}, &provider.FieldError{Field: "filter", Problem: fmt.Sprintf("the Cockpit model %q is a singleton: it has one item, which Cockpit does not filter", q.Type),
			Fix: "leave filter out and read the item"}
	}
	page := provider.Page{Objects: []provider.Object{}}
	if id, _ := one.str("_id"); id != "" {
		page.Total = 1
		if skip == 0 {
			page.Objects = append(page.Objects, one.toObject(q.Type))
		}
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
