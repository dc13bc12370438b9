package cockpit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/upstream"
)

// Get returns one item by id, or by its slug field.
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
		if len(s.fields) > 0 && !s.fields["slug"] {
			return provider.Object{}, noSlugField(model)
		}
		return provider.Object{}, &provider.NotFoundError{What: "object", Name: ref.Slug}
	}
	return provider.Object{}, &provider.FieldError{Field: "id", Problem: "give exactly one of id and slug", Fix: "pass the id from content_list, or the slug"}
}

func noSlugField(model string) error {
	return &provider.FieldError{Field: "slug", Problem: fmt.Sprintf("the Cockpit model %q has no slug field", model),
		Fix: "use the id (content_list shows it), or add a slug field to the model in Cockpit"}
}

// fetchItem reads GET /content/item/{model}/{id}: a published item, or 404
// with an empty body (R4). For a singleton Cockpit answers its one item
// whatever the id (S2).
func (c *Client) fetchItem(ctx context.Context, model, id string) (item, error) {
	resp, err := c.api.Send(ctx, c.call(http.MethodGet, modelPath("item", model, id), nil, nil))
	if err != nil {
		return nil, err
	}
	if resp.Status == http.StatusNotFound {
		return nil, c.notFoundOr(resp, model, id)
	}
	if !resp.OK() {
		return nil, c.api.Error(resp)
	}
	it, ok := decodeItem(resp.Body)
	if !ok {
		return nil, c.badAnswer(resp, "the item is not a JSON object")
	}
	return it, nil
}

// getItem is fetchItem that refuses, for a singleton, an id that is not
// its item's: Cockpit would answer the singleton for any id.
func (c *Client) getItem(ctx context.Context, model, id string) (item, error) {
	it, err := c.fetchItem(ctx, model, id)
	if err != nil || !it.isSingletonOf(model) {
		return it, err
	}
	own, _ := it.str("_id")
	switch {
	case own == "":
		return nil, &provider.FieldError{Field: "id", Problem: fmt.Sprintf("the Cockpit model %q is a singleton that has never been saved, so it has no item yet", model),
			Fix: fmt.Sprintf("create its item with content_create type=%s, or save it once in the Cockpit admin", model)}
	case own != id:
		return nil, &provider.FieldError{Field: "id", Problem: fmt.Sprintf("the Cockpit model %q is a singleton: its one item has id %s, not %s", model, own, id),
			Fix: "use id " + own + " (content_list shows it)"}
	}
	return it, nil
}

// findBySlug asks GET /content/item/{model}?filter={"slug":S}, which
// answers the first published match or an empty 404 (R5). The answer's
// slug is checked: a singleton answers whatever the filter (S2).
func (c *Client) findBySlug(ctx context.Context, model, slug string) (item, bool, error) {
	f, _ := json.Marshal(map[string]any{"slug": slug})
	resp, err := c.api.Send(ctx, c.call(http.MethodGet, modelPath("item", model), url.Values{"filter": {string(f)}}, nil))
	if err != nil {
		return nil, false, err
	}
	switch {
	case emptyNotFound(resp):
		return nil, false, nil
	case resp.Status == http.StatusNotFound:
		return nil, false, c.notFoundOr(resp, model, "")
	case !resp.OK():
		return nil, false, c.api.Error(resp)
	}
	it, ok := decodeItem(resp.Body)
	if !ok {
		return nil, false, c.badAnswer(resp, "the item is not a JSON object")
	}
	if got, _ := it.str("slug"); got != slug {
		return nil, false, nil
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

// fieldCheck is what keygate knows about which keys of a write the model
// has.
type fieldCheck struct {
	lacking []string        // keys the model does not have (sorted)
	known   map[string]bool // every key known to be a field
	checked bool            // false: Cockpit could not be asked; check after writing
}

// checkFields finds out which of keys the model has. Keys an item shows
// are fields. For the others keygate asks Cockpit (K2): an update of an id
// that cannot exist, carrying those keys, changes nothing, and Cockpit's
// echo leaves out the keys the model lacks (W3, W6). That needs the update
// permission; without it (403) checked is false.
func (c *Client) checkFields(ctx context.Context, model string, keys []string, seen map[string]bool) (fieldCheck, error) {
	fc := fieldCheck{known: map[string]bool{}, checked: true}
	for k := range seen {
		fc.known[k] = true
	}
	var unknown []string
	for _, k := range keys {
		if !seen[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return fc, nil
	}
	data := map[string]any{"_id": probeID}
	for _, k := range unknown {
		data[k] = nil
	}
	resp, err := c.api.Send(ctx, c.call(http.MethodPost, modelPath("item", model), nil, map[string]any{"data": data}))
	if err != nil {
		return fieldCheck{}, err
	}
	if !resp.OK() {
		werr := c.writeError(resp, model, "")
		if errors.Is(werr, provider.ErrPermission) && !authFailed(resp) {
			fc.checked = false
			return fc, nil
		}
		return fieldCheck{}, werr
	}
	echo, ok := decodeItem(resp.Body)
	if !ok {
		return fieldCheck{}, c.badAnswer(resp, "the answer is not a JSON object")
	}
	for _, k := range unknown {
		if _, kept := echo[k]; kept {
			fc.known[k] = true
		} else {
			fc.lacking = append(fc.lacking, k)
		}
	}
	slices.Sort(fc.lacking)
	return fc, nil
}

func (fc fieldCheck) lacks(k string) bool { return slices.Contains(fc.lacking, k) }

// others are the lacking keys other than title and slug.
func (fc fieldCheck) others() []string {
	return slices.DeleteFunc(slices.Clone(fc.lacking), func(k string) bool { return k == "title" || k == "slug" })
}

func unknownFieldsError(model string, unknown []string, known map[string]bool) error {
	fields := "the model's fields, as the Cockpit admin shows them"
	if names := userFields(known); len(names) > 0 {
		fields = "the model's fields (" + strings.Join(names, ", ") + ")"
	}
	return &provider.FieldError{Field: "fields", Problem: fmt.Sprintf("the Cockpit model %q has no field %s (Cockpit would silently drop it)", model, strings.Join(unknown, ", ")),
		Fix: "use " + fields + ", or add the field to the model in the Cockpit admin"}
}

func noTitleField(model string) error {
	return &provider.FieldError{Field: "title", Problem: fmt.Sprintf("the Cockpit model %q has no title field, so the title would be lost", model),
		Fix: "add a title field to the model in Cockpit, or leave title out"}
}

// Create posts a new, published item and returns it as Cockpit stored it.
// Fields the model lacks are refused before writing when Cockpit can be
// asked (K2), and reported after writing when it cannot.
func (c *Client) Create(ctx context.Context, n provider.NewObject) (provider.Object, error) {
	if err := statusOnlyPublished("status", n.Status); err != nil {
		return provider.Object{}, err
	}
	fields, err := decodeFields(n.Fields)
	if err != nil {
		return provider.Object{}, err
	}
	s, err := c.sample(ctx, n.Type) // the model exists, and the fields its items show
	if err != nil {
		return provider.Object{}, err
	}
	if err := oneSingletonItem(n.Type, s); err != nil {
		return provider.Object{}, err
	}
	data := maps.Clone(fields)
	if n.Title != "" {
		data["title"] = n.Title
	}
	if n.Slug != "" {
		data["slug"] = n.Slug
	}
	fc, err := c.checkFields(ctx, n.Type, slices.Sorted(maps.Keys(data)), s.fields)
	if err != nil {
		return provider.Object{}, err
	}
	if err := fc.fitCreate(n.Type, data); err != nil {
		return provider.Object{}, err
	}
	if err := c.slugFreeForCreate(ctx, n, data); err != nil {
		return provider.Object{}, err
	}
	// _state is left out: Cockpit publishes API-created items (W2).
	resp, err := c.api.Send(ctx, c.call(http.MethodPost, modelPath("item", n.Type), nil, map[string]any{"data": data}))
	if err != nil {
		return c.settleCreate(ctx, n, data, err)
	}
	if !resp.OK() {
		return provider.Object{}, c.writeError(resp, n.Type, "")
	}
	return c.created(resp, n.Type, data, fc)
}

// oneSingletonItem refuses a second item of a singleton that has one.
func oneSingletonItem(model string, s modelSample) error {
	if s.singleton == nil || !s.saved() {
		return nil
	}
	id, _ := s.singleton.str("_id")
	return &provider.FieldError{Field: "type",
		Problem: fmt.Sprintf("the Cockpit model %q is a singleton: it has exactly one item (id %s), and content_create cannot add another", model, id),
		Fix:     fmt.Sprintf("change it with content_update type=%s id=%s", model, id)}
}

// fitCreate refuses a create's keys the model lacks: a title, or any
// field. A slug the model lacks is dropped from data: the new item then
// has none.
func (fc fieldCheck) fitCreate(model string, data map[string]any) error {
	if fc.lacks("title") {
		return noTitleField(model)
	}
	if u := fc.others(); len(u) > 0 {
		return unknownFieldsError(model, u, fc.known)
	}
	if fc.lacks("slug") {
		delete(data, "slug")
	}
	return nil
}

// slugFreeForCreate refuses a slug another item of the model has.
func (c *Client) slugFreeForCreate(ctx context.Context, n provider.NewObject, data map[string]any) error {
	if _, sendSlug := data["slug"]; !sendSlug {
		return nil
	}
	_, taken, err := c.findBySlug(ctx, n.Type, n.Slug)
	switch {
	case err != nil:
		return err
	case taken:
		return &provider.FieldError{Field: "slug", Problem: fmt.Sprintf("slug %q is already used by another %s item", n.Slug, n.Type),
			Fix: "choose another slug, or update the existing item"}
	}
	return nil
}

// settleCreate looks, by its slug, for the item of a create whose answer
// was lost.
func (c *Client) settleCreate(ctx context.Context, n provider.NewObject, data map[string]any, cause error) (provider.Object, error) {
	if _, sentSlug := data["slug"]; sentSlug {
		it, found, rerr := c.findBySlug(ctx, n.Type, n.Slug)
		if rerr == nil && found {
			if t, _ := it.str("title"); t == n.Title {
				return it.toObject(n.Type), nil
			}
		}
		if rerr == nil && !found {
			return provider.Object{}, cause // nothing was created
		}
	}
	return provider.Object{}, c.api.Unsettled("create", "item", cause)
}

// created reads a create's answer, the whole new item (W1): a key of data
// it lacks was dropped.
func (c *Client) created(resp *upstream.Response, model string, data map[string]any, fc fieldCheck) (provider.Object, error) {
	it, ok := decodeItem(resp.Body)
	id, _ := it.str("_id")
	if !ok || id == "" {
		return provider.Object{}, c.api.BadAnswer(resp, true, "create answered without an item id")
	}
	var dropped []string
	for k := range data {
		if _, kept := it[k]; !kept && (k != "slug" || fc.checked) {
			dropped = append(dropped, k)
		}
	}
	if len(dropped) > 0 {
		slices.Sort(dropped)
		return provider.Object{}, &provider.FieldError{Field: "fields",
			Problem: fmt.Sprintf("Cockpit created item %s but dropped %s, which the model %q does not have", id, strings.Join(dropped, ", "), model),
			Fix:     fmt.Sprintf("update that item or remove it (content_delete type=%s id=%s); use only the model's fields (%s)", model, id, strings.Join(userFields(it.keys()), ", "))}
	}
	return it.toObject(model), nil
}

// Update sends the changed fields (Cockpit $sets them: a top-level merge)
// with the item's _id, then reads the item back: Cockpit echoes only the
// sent fields, and answers 200 without writing anything when the id does
// not exist (W6).
func (c *Client) Update(ctx context.Context, p provider.Patch) (provider.Object, error) {
	if err := checkPatch(p); err != nil {
		return provider.Object{}, err
	}
	patch, err := decodeFields(p.Fields)
	if err != nil {
		return provider.Object{}, err
	}
	cur, err := c.getItem(ctx, p.Type, p.ID)
	if err != nil {
		return provider.Object{}, err
	}
	data := changes(cur, patch, p)
	if len(data) == 0 {
		// Only status "published" was asked for, and the item is published.
		return cur.toObject(p.Type), nil
	}
	if err := c.fitUpdate(ctx, p.Type, data, cur); err != nil {
		return provider.Object{}, err
	}
	if err := c.slugFreeForUpdate(ctx, p, cur); err != nil {
		return provider.Object{}, err
	}
	body := map[string]any{"_id": p.ID}
	maps.Copy(body, data)
	resp, err := c.api.Send(ctx, c.call(http.MethodPost, modelPath("item", p.Type), nil, map[string]any{"data": body}))
	if err != nil {
		back, rerr := c.getItem(ctx, p.Type, p.ID)
		if rerr == nil && len(mismatched(back, data)) == 0 {
			return back.toObject(p.Type), nil
		}
		return provider.Object{}, c.api.Unsettled("update", "item", err)
	}
	if !resp.OK() {
		return provider.Object{}, c.writeError(resp, p.Type, p.ID)
	}
	return c.updated(ctx, resp, p, data)
}

// checkPatch refuses what Cockpit cannot do: a version check, and a draft.
func checkPatch(p provider.Patch) error {
	if p.ExpectedVersion != nil {
		// Cockpit's _modified could stand in for a version, but the check
		// and the write would be two requests (no atomic compare) and
		// _modified has one-second resolution, so keygate does not offer it.
		return &provider.FieldError{Field: "expected_version",
			Problem: "Cockpit has no item versions, so keygate cannot check that the item is unchanged since you read it",
			Fix:     "leave expected_version out to update without the check (compare modified_at from content_get yourself if it matters)"}
	}
	if p.Status != nil {
		return statusOnlyPublished("status", *p.Status)
	}
	return nil
}

// changes are the fields an update sends: each key of patch merged into
// the item's value (a null clears the field), and the title and slug.
func changes(cur item, patch map[string]any, p provider.Patch) map[string]any {
	data := map[string]any{}
	for k, v := range patch {
		var old any
		_ = json.Unmarshal(cur[k], &old)
		data[k] = provider.MergePatch(old, v)
	}
	if p.Title != nil {
		data["title"] = *p.Title
	}
	if p.Slug != nil {
		data["slug"] = *p.Slug
	}
	return data
}

// fitUpdate refuses an update's keys the model lacks, and an update the
// key may not make.
func (c *Client) fitUpdate(ctx context.Context, model string, data map[string]any, cur item) error {
	fc, err := c.checkFields(ctx, model, slices.Sorted(maps.Keys(data)), cur.keys())
	switch {
	case err != nil:
		return err
	case !fc.checked:
		// The key may not update: the write would be refused all the same.
		return &provider.UpstreamError{Provider: Name, Status: http.StatusForbidden, Message: "Permission denied", Kind: provider.ErrPermission}
	case fc.lacks("title"):
		return &provider.FieldError{Field: "title", Problem: fmt.Sprintf("the Cockpit model %q has no title field", model), Fix: "leave title out"}
	case fc.lacks("slug"):
		return noSlugField(model)
	case len(fc.others()) > 0:
		// The newest items may show fields this one lacks, for the fix.
		if s, err := c.sample(ctx, model); err == nil {
			for k := range s.fields {
				fc.known[k] = true
			}
		}
		return unknownFieldsError(model, fc.others(), fc.known)
	}
	return nil
}

// slugFreeForUpdate refuses a new slug another item of the model has.
func (c *Client) slugFreeForUpdate(ctx context.Context, p provider.Patch, cur item) error {
	if p.Slug == nil {
		return nil
	}
	if curSlug, _ := cur.str("slug"); curSlug == *p.Slug {
		return nil
	}
	other, taken, err := c.findBySlug(ctx, p.Type, *p.Slug)
	if err != nil {
		return err
	}
	if oid, _ := other.str("_id"); taken && oid != p.ID {
		return &provider.FieldError{Field: "slug", Problem: fmt.Sprintf("slug %q is already used by another %s item", *p.Slug, p.Type),
			Fix: "choose another slug"}
	}
	return nil
}

// updated reads the item back after a successful update and checks that
// it shows every change.
func (c *Client) updated(ctx context.Context, resp *upstream.Response, p provider.Patch, data map[string]any) (provider.Object, error) {
	back, err := c.getItem(ctx, p.Type, p.ID)
	if err != nil {
		// A 404 here: Cockpit answered 200 but wrote nothing (the item is
		// gone), which the NotFoundError reports.
		return provider.Object{}, err
	}
	var dropped []string
	for k := range data {
		if _, kept := back[k]; !kept && data[k] != nil {
			dropped = append(dropped, k)
		}
	}
	if len(dropped) > 0 {
		slices.Sort(dropped)
		return provider.Object{}, &provider.FieldError{Field: "fields",
			Problem: fmt.Sprintf("Cockpit saved item %s but dropped %s, which the model %q does not have", p.ID, strings.Join(dropped, ", "), p.Type),
			Fix:     "use only the model's fields (" + strings.Join(userFields(back.keys()), ", ") + "); the other changes were saved"}
	}
	if bad := mismatched(back, data); len(bad) > 0 {
		return provider.Object{}, &provider.UpstreamError{Provider: Name, Status: resp.Status, Kind: provider.ErrOutcomeUnknown,
			Message: "Cockpit answered success but the item does not show the new " + strings.Join(bad, ", ") + "; read it again with content_get"}
	}
	return back.toObject(p.Type), nil
}

// mismatched returns the keys of want whose stored value differs. Both
// sides are compared as PHP holds them: Cockpit stores {} as [] and an
// object keyed "0".."n-1" as a list (J4).
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
		if !reflect.DeepEqual(phpArray(got), phpArray(w)) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// phpArray is a decoded JSON value as PHP's json_decode($s, true) and
// json_encode would give it back: an empty object, or one whose keys are
// "0".."n-1" in order, becomes a list.
func phpArray(v any) any {
	switch t := v.(type) {
	case map[string]any:
		if list, ok := asList(t); ok {
			return list
		}
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = phpArray(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = phpArray(e)
		}
		return out
	}
	return v
}

// asList reads an object keyed "0".."n-1" as a list. Go maps have no
// order, so the keys' order in the JSON is not checked.
func asList(m map[string]any) ([]any, bool) {
	out := make([]any, len(m))
	for k, e := range m {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= len(m) || strconv.Itoa(i) != k {
			return nil, false
		}
		out[i] = phpArray(e)
	}
	return out, true
}

// Delete checks the item exists (Cockpit answers success for any id, W9),
// deletes it, and checks it is gone. A singleton's item cannot be deleted
// (S4), so that is refused without asking.
func (c *Client) Delete(ctx context.Context, model, id string) (provider.Object, error) {
	cur, err := c.fetchItem(ctx, model, id)
	if err != nil {
		return provider.Object{}, err
	}
	if cur.isSingletonOf(model) {
		return provider.Object{}, fmt.Errorf("%w: the Cockpit model %q is a singleton, whose item cannot be deleted (Cockpit answers 412 \"DELETE method not allowed for <%s>\"); clear its fields with content_update instead",
			provider.ErrUnsupported, model, model)
	}
	obj := cur.toObject(model)
	resp, err := c.api.Send(ctx, c.call(http.MethodDelete, modelPath("item", model, id), nil, nil))
	if err != nil {
		_, rerr := c.getItem(ctx, model, id)
		var nf *provider.NotFoundError
		switch {
		case errors.As(rerr, &nf):
			return obj, nil
		case rerr == nil:
			return provider.Object{}, err
		}
		return provider.Object{}, c.api.Unsettled("delete", "item", err)
	}
	if !resp.OK() {
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
	return provider.Object{}, c.api.Unsettled("delete", "item", err)
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
			return fmt.Errorf("%w: %s (a singleton's item cannot be deleted)", provider.ErrUnsupported, m)
		}
	case resp.Status == http.StatusBadRequest:
		return c.badRequest(resp)
	}
	return c.api.Error(resp)
}
