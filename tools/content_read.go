package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/tidwall/gjson"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/query"
	"github.com/keygate/keygate/shape"
)

// ListResult is content_list's structured answer.
type ListResult struct {
	Provider   string           `json:"provider"`
	Type       string           `json:"type"`
	Objects    []map[string]any `json:"objects"`
	Count      int              `json:"count"`
	Total      int              `json:"total"`
	NextCursor string           `json:"next_cursor,omitempty"`
	// Truncated is set when the byte budget ended the page early or cut
	// values; next_cursor then resumes at the first object left out.
	Truncated bool        `json:"truncated,omitempty"`
	Cuts      []shape.Cut `json:"cuts,omitempty"`
	Content   string      `json:"content_trust"`
}

func (d *Deps) contentList(ctx context.Context, call *Call) (*mcp.CallToolResult, error) {
	args := call.Req.GetArguments()
	pr, errRes := d.Providers.Pick(call.Req.GetString("provider", ""))
	if errRes != nil {
		return errRes, nil
	}
	typ := call.Req.GetString("type", "")
	if r := typeAllowed(call, auth.ContentRead, typ); r != nil {
		return r, nil
	}
	budget, errRes := readMaxBytes(call)
	if errRes != nil {
		return errRes, nil
	}
	q := provider.ListQuery{Type: typ, Status: call.Req.GetString("status", ""), Limit: call.Req.GetInt("limit", query.DefaultLimit)}
	if q.Limit < 1 || q.Limit > query.MaxLimit {
		return shape.Error("limit", fmt.Sprintf("%d is out of range", q.Limit), "use 1 to 100"), nil
	}
	if raw, ok := args["filter"]; ok && raw != nil {
		m, ok := raw.(map[string]any)
		if !ok {
			return shape.Error("filter", "must be an object", `write {"field": value}`), nil
		}
		conds, p := query.ParseFilter(m)
		if p != nil {
			return shape.Error(p.Field, p.Problem, p.Fix), nil
		}
		q.Filter = conds
	}
	sortKeys, p := query.ParseSort(call.Req.GetString("sort", ""))
	if p != nil {
		return shape.Error(p.Field, p.Problem, p.Fix), nil
	}
	q.Sort = sortKeys
	paths := call.Req.GetStringSlice("fields", nil)
	if p := query.CheckPaths(paths); p != nil {
		return shape.Error(p.Field, p.Problem, p.Fix), nil
	}
	if len(paths) == 0 {
		paths = query.DefaultListFields
	}
	fp := query.Fingerprint(pr.Name, q)
	cur, p := query.DecodeCursor(call.Req.GetString("cursor", ""), fp)
	if p != nil {
		return shape.Error(p.Field, p.Problem, p.Fix), nil
	}
	q.Cursor = cur.Pos

	page, err := pr.Content.List(ctx, q)
	if err != nil {
		return providerError(err, typ)
	}
	objects := page.Objects[min(cur.Skip, len(page.Objects)):]
	res := ListResult{Provider: pr.Name, Type: typ, Objects: make([]map[string]any, 0, len(objects)),
		Total: page.Total, Content: shape.UntrustedNotice}
	used := shape.EnvelopeBytes
	stopped := -1 // index in objects of the first one left out
	for i, o := range objects {
		m, err := shape.Project(o, paths)
		if err != nil {
			return nil, err
		}
		size := shape.EncodedLen(m) + 1
		if used+size > budget {
			if len(res.Objects) > 0 {
				stopped = i
				break
			}
			// Even the first object alone is over the budget: cut its
			// values, say which, and go on from the next object.
			fitted, cuts, ok := shape.Fit(any(m), budget-used)
			if !ok {
				fitted, cuts = map[string]any{"id": shape.Sanitize(o.ID)}, []shape.Cut{{Path: "*", Kind: "object", Total: size, Shown: 0}}
			}
			for j := range cuts {
				cuts[j].Object = shape.Sanitize(o.ID)
			}
			res.Objects, res.Cuts, res.Truncated = append(res.Objects, fitted.(map[string]any)), cuts, true
			if i+1 < len(objects) {
				stopped = i + 1
			}
			break
		}
		used += size
		res.Objects = append(res.Objects, m)
	}
	res.Count = len(res.Objects)
	switch {
	case stopped >= 0:
		res.Truncated = true
		res.NextCursor = query.EncodeCursor(query.Cursor{Pos: cur.Pos, Skip: cur.Skip + stopped, Fp: fp})
	case page.NextCursor != "":
		res.NextCursor = query.EncodeCursor(query.Cursor{Pos: page.NextCursor, Fp: fp})
	}
	return shapedResult(call, res, func() string { return renderList(res, paths) }), nil
}

// shapedResult returns v as structured content, with the text content in
// the format the caller asked for.
func shapedResult(call *Call, v any, text func() string) *mcp.CallToolResult {
	if call.Req.GetString("format", "text") == "json" {
		b, err := json.Marshal(v)
		if err == nil {
			return mcp.NewToolResultStructured(v, string(b))
		}
	}
	return shape.OK(v, text())
}

func renderList(r ListResult, paths []string) string {
	var b strings.Builder
	if r.Total >= 0 {
		fmt.Fprintf(&b, "%d of %d %s", r.Count, r.Total, r.Type)
	} else {
		fmt.Fprintf(&b, "%d %s (total unknown)", r.Count, r.Type)
	}
	if r.NextCursor != "" {
		fmt.Fprintf(&b, " (more: next_cursor=%s)", r.NextCursor)
	}
	if len(r.Objects) > 0 {
		fmt.Fprintf(&b, "\n--- data from %s (%s) ---", r.Provider, shape.UntrustedNotice)
	}
	for _, o := range r.Objects {
		b.WriteString("\n")
		first := true
		for _, p := range paths {
			v, ok := o[p]
			if !ok {
				continue
			}
			var cell string
			switch p {
			case "id", "title", "slug", "status", "modified_at":
				cell = shape.OneLine(v)
			default:
				cell = p + "=" + shape.OneLine(v)
			}
			if first {
				cell = shape.LineStart(cell)
			} else {
				b.WriteString(" | ")
			}
			first = false
			b.WriteString(cell)
		}
	}
	if len(r.Objects) > 0 {
		b.WriteString("\n--- end of data ---")
	}
	if r.Truncated {
		b.WriteString("\nTRUNCATED: the byte budget (max_bytes) ended this page early; next_cursor resumes at the first object left out")
	}
	for _, c := range r.Cuts {
		b.WriteString("\n" + c.String())
	}
	return b.String()
}

// GetResult is content_get's structured answer.
type GetResult struct {
	Provider string         `json:"provider"`
	Object   map[string]any `json:"object"`
	// Cuts lists the values shortened to fit max_bytes, each with the
	// cursor that continues it.
	Cuts    []shape.Cut `json:"truncated,omitempty"`
	Content string      `json:"content_trust"`
}

func (d *Deps) contentGet(ctx context.Context, call *Call) (*mcp.CallToolResult, error) {
	pr, errRes := d.Providers.Pick(call.Req.GetString("provider", ""))
	if errRes != nil {
		return errRes, nil
	}
	typ := call.Req.GetString("type", "")
	if r := typeAllowed(call, auth.ContentRead, typ); r != nil {
		return r, nil
	}
	budget, errRes := readMaxBytes(call)
	if errRes != nil {
		return errRes, nil
	}
	if c := call.Req.GetString("cursor", ""); c != "" {
		return d.contentGetMore(ctx, call, pr, typ, c, budget)
	}
	ref := provider.Ref{ID: call.Req.GetString("id", ""), Slug: call.Req.GetString("slug", "")}
	if (ref.ID == "") == (ref.Slug == "") {
		return shape.Error("id", "give exactly one of id and slug", "pass the id from content_list, or the slug"), nil
	}
	paths := call.Req.GetStringSlice("fields", nil)
	if p := query.CheckPaths(paths); p != nil {
		return shape.Error(p.Field, p.Problem, p.Fix), nil
	}
	obj, err := pr.Content.Get(ctx, typ, ref)
	if err != nil {
		return providerError(err, typ)
	}
	var m map[string]any
	if len(paths) > 0 {
		m, err = shape.Project(obj, paths)
	} else {
		m, err = shape.WholeObject(obj)
	}
	if err != nil {
		return nil, err
	}
	res := GetResult{Provider: pr.Name, Object: m, Content: shape.UntrustedNotice}
	objJSON, err := shape.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding object %s: %w", obj.ID, err)
	}
	if len(objJSON) <= budget-shape.EnvelopeBytes {
		// The common case: the object fits as it is. Its JSON, needed to
		// measure it, becomes the structured content as it stands, so the
		// object is encoded once rather than three times.
		return shapedResult(call, res.encode(objJSON), func() string { return renderGet(res, objJSON) }), nil
	}
	res, ok := fitGet(res, budget, func(c shape.Cut) string {
		if len(paths) > 0 {
			return "" // a projection is not the stored shape: re-read with fields
		}
		return query.EncodeMore(query.More{ID: obj.ID, Type: typ, Path: c.Path, Offset: c.Shown, Kind: c.Kind, Version: obj.Version})
	})
	if !ok {
		return shape.Error("max_bytes", fmt.Sprintf("object %s does not fit in %d bytes even with every value shortened (it has too many fields)", obj.ID, budget),
			"raise max_bytes, or pick parts with fields, e.g. [\"title\", \"fields.body\"]"), nil
	}
	return shapedResult(call, res, func() string { return renderGet(res, nil) }), nil
}

// encode is json.Marshal(r) for a result without cuts whose object is
// already encoded as obj.
func (r GetResult) encode(obj []byte) json.RawMessage {
	provider, _ := json.Marshal(r.Provider)
	trust, _ := json.Marshal(r.Content)
	b := make([]byte, 0, len(obj)+len(provider)+len(trust)+40)
	b = append(append(append(b, `{"provider":`...), provider...), `,"object":`...)
	b = append(append(append(b, obj...), `,"content_trust":`...), trust...)
	return append(b, '}')
}

// fitGet shrinks res.Object until the whole result, truncation notes
// included, fits budget in both its JSON and its text forms. Each cut gets
// the cursor that continues it.
func fitGet(res GetResult, budget int, cursorFor func(shape.Cut) string) (GetResult, bool) {
	whole := res.Object
	target := budget - shape.EnvelopeBytes
	for range 8 {
		fitted, cuts, ok := shape.Fit(any(whole), target)
		if !ok {
			return res, false
		}
		for i := range cuts {
			cuts[i].Cursor = cursorFor(cuts[i])
		}
		res.Object, res.Cuts = fitted.(map[string]any), cuts
		size := max(shape.EncodedLen(res), len(renderGet(res, nil)))
		if size <= budget {
			return res, true
		}
		target -= size - budget + 64
		if target <= 0 {
			break
		}
	}
	return res, false
}

// renderGet is content_get's text content. objJSON, when given, is
// r.Object already encoded, which spares encoding it again.
func renderGet(r GetResult, objJSON []byte) string {
	if objJSON == nil {
		objJSON, _ = shape.Marshal(r.Object)
	}
	var b strings.Builder
	b.Grow(len(objJSON) + 256)
	if h := getHeader(r.Object); h != "" {
		b.WriteString(h + "\n")
	}
	fmt.Fprintf(&b, "--- data from %s (%s) ---\n", r.Provider, shape.UntrustedNotice)
	// The rest of the object as JSON, which escapes <, > and line breaks:
	// nothing can forge the marker.
	if objJSON != nil {
		writeWithoutHeaderKeys(&b, objJSON)
	}
	b.WriteString("\n--- end of data ---")
	for _, c := range r.Cuts {
		b.WriteString("\n" + c.String())
	}
	return b.String()
}

// getHeader is the line renderGet writes above the data: type, id, title,
// [status], version and modification time, each only when the object has it
// (a projection may leave any of them out).
func getHeader(o map[string]any) string {
	var parts []string
	for _, k := range []string{"type", "id", "title", "status", "version"} {
		v, ok := o[k]
		if !ok {
			continue
		}
		s := shape.OneLine(v)
		switch k {
		case "status":
			s = "[" + s + "]"
		case "version":
			s = "v" + s
		}
		parts = append(parts, s)
	}
	h := strings.Join(parts, " ")
	if m, ok := o["modified_at"]; ok {
		if h != "" {
			h += ", "
		}
		h += "modified " + shape.OneLine(m)
	}
	return shape.LineStart(h)
}

// inGetHeader reports whether renderGet shows key k on its header line.
func inGetHeader(k string) bool {
	switch k {
	case "type", "id", "title", "status", "version", "modified_at":
		return true
	}
	return false
}

// writeWithoutHeaderKeys writes a JSON object, as json.Marshal encodes a
// map, without the keys renderGet's header line shows. The members kept are
// copied as they are, so what it writes is what json.Marshal gives for the
// map without those keys.
func writeWithoutHeaderKeys(b *strings.Builder, obj []byte) {
	b.WriteByte('{')
	first := true
	gjson.ParseBytes(obj).ForEach(func(k, v gjson.Result) bool {
		if inGetHeader(k.Str) {
			return true
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(k.Raw)
		b.WriteByte(':')
		b.WriteString(v.Raw)
		return true
	})
	b.WriteByte('}')
}

// MoreResult is content_get's answer to a continuation cursor: the next
// part of one value.
type MoreResult struct {
	Provider   string `json:"provider"`
	Object     string `json:"object"`
	Path       string `json:"path"`
	Offset     int    `json:"offset"`
	Total      int    `json:"total"`
	Part       any    `json:"part"`
	NextCursor string `json:"next_cursor,omitempty"`
	Content    string `json:"content_trust"`
}

func (d *Deps) contentGetMore(ctx context.Context, call *Call, pr Provider, typ, c string, budget int) (*mcp.CallToolResult, error) {
	m, ok := query.DecodeMore(c)
	if !ok || m.Type != typ {
		return shape.Error("cursor", "not a content_get continuation cursor for this type", "pass a cursor from the truncated list of a content_get result, with the same type"), nil
	}
	obj, err := pr.Content.Get(ctx, typ, provider.Ref{ID: m.ID})
	if err != nil {
		return providerError(err, typ)
	}
	if obj.Version != m.Version {
		return shape.Error("cursor", fmt.Sprintf("object %s changed since the cursor was issued (version %d, now %d)", m.ID, m.Version, obj.Version),
			"call content_get again without cursor and continue from its new cursors"), nil
	}
	// Read the value straight from the stored JSON and sanitise just that
	// value, which gives what content_get showed without re-sanitising
	// the whole object on every continuation. Paths built from keys that
	// sanitising changed only exist in the sanitised object.
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding object %s: %w", obj.ID, err)
	}
	val := gjson.GetBytes(raw, m.Path)
	if !val.Exists() {
		whole, err := shape.WholeObject(obj)
		if err != nil {
			return nil, err
		}
		raw, _ = json.Marshal(whole)
		val = gjson.GetBytes(raw, m.Path)
	}
	room := budget - shape.EnvelopeBytes
	res := MoreResult{Provider: pr.Name, Object: shape.Sanitize(m.ID), Path: shape.Sanitize(m.Path), Offset: m.Offset, Content: shape.UntrustedNotice}
	next := m
	switch {
	case m.Kind == "string" && val.Type == gjson.String:
		s := shape.Sanitize(val.String())
		res.Total = len(s)
		if m.Offset > len(s) {
			return shape.Error("cursor", "the cursor points past the end of the value", "call content_get again without cursor"), nil
		}
		// JSON escaping can grow a string up to six times; measure it.
		part := shape.TruncateUTF8(s[m.Offset:], room)
		for len(part) > 0 && shape.EncodedLen(part) > room {
			part = shape.TruncateUTF8(part, len(part)*3/4)
		}
		res.Part, next.Offset = part, m.Offset+len(part)
		if len(part) == 0 && m.Offset < len(s) {
			return shape.Error("max_bytes", "too small to return any of this value", "raise max_bytes"), nil
		}
	case m.Kind == "array" && val.IsArray():
		items := val.Array()
		res.Total = len(items)
		if m.Offset > len(items) {
			return shape.Error("cursor", "the cursor points past the end of the value", "call content_get again without cursor"), nil
		}
		var part []any
		used := 2
		for _, it := range items[m.Offset:] {
			v := shape.SanitizeValue(it.Value())
			size := shape.EncodedLen(v) + 1
			if used+size > room && len(part) > 0 {
				break
			}
			if used+size > room {
				return shape.Error("max_bytes", fmt.Sprintf("item %d of %s alone is larger than max_bytes", m.Offset, m.Path),
					fmt.Sprintf("raise max_bytes, or read it with fields: [\"%s.%d\"]", m.Path, m.Offset)), nil
			}
			used += size
			part = append(part, v)
		}
		res.Part, next.Offset = part, m.Offset+len(part)
	default:
		return shape.Error("cursor", "the value the cursor points to no longer exists or changed kind", "call content_get again without cursor"), nil
	}
	if next.Offset < res.Total {
		res.NextCursor = query.EncodeMore(next)
	}
	return shapedResult(call, res, func() string {
		var b strings.Builder
		end := next.Offset
		fmt.Fprintf(&b, "%s of %s, from %d to %d of %d", shape.LineStart(shape.OneLine(m.Path)), shape.OneLine(m.ID), m.Offset, end, res.Total)
		if res.NextCursor != "" {
			fmt.Fprintf(&b, " (more: content_get cursor=%s)", res.NextCursor)
		}
		enc, _ := json.Marshal(res.Part)
		fmt.Fprintf(&b, "\n--- data from %s (%s) ---\n%s\n--- end of data ---", pr.Name, shape.UntrustedNotice, enc)
		return b.String()
	}), nil
}
