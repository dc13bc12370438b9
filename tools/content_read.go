package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/tidwall/gjson"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/query"
	"github.com/keygate/keygate/shape"
)

// ListResult is content_list's structured answer.
type ListResult struct {
	Provider string           `json:"provider"`
	Type     string           `json:"type"`
	Objects  []map[string]any `json:"objects"`
	Count    int              `json:"count"`
	Total    int              `json:"total"`
	// TotalAtLeast: the provider stopped counting at Total rather than pay
	// for an exact count over a large result (provider.Page).
	TotalAtLeast bool   `json:"total_is_lower_bound,omitempty"`
	NextCursor   string `json:"next_cursor,omitempty"`
	// Truncated is set when the byte budget ended the page early or cut
	// values; next_cursor then resumes at the first object left out.
	Truncated bool        `json:"truncated,omitempty"`
	Cuts      []shape.Cut `json:"cuts,omitempty"`
	// Unmatched are the fields paths that matched nothing in any object.
	Unmatched []string `json:"unmatched_fields,omitempty"`
	Content   string   `json:"content_trust"`
}

func (c *contentTools) list(ctx context.Context, call *Call, args contentListArgs) (*mcp.CallToolResult, error) {
	pr, typ := call.Provider, args.Type
	q, paths, errRes := args.query()
	if errRes != nil {
		return errRes, nil
	}
	fp := query.Fingerprint(pr.Name, q)
	cur, qerr := query.DecodeCursor(args.Cursor, fp)
	if qerr != nil {
		return queryError(qerr), nil
	}
	q.Cursor = cur.Pos
	page, err := pr.Content.List(ctx, q)
	if err != nil {
		return providerError(err, typ)
	}
	objects := page.Objects[min(cur.Skip, len(page.Objects)):]
	projected := make([]map[string]any, len(objects))
	for i, o := range objects {
		if projected[i], err = shape.Project(o, paths); err != nil {
			return nil, err
		}
	}
	var unmatched []string
	if len(args.Fields) > 0 {
		unmatched = shape.Unmatched(paths, projected)
	}
	return shape.FitResult(args.maxBytes(), func(room int) *mcp.CallToolResult {
		res := ListResult{Provider: pr.Name, Type: typ, Total: page.Total, TotalAtLeast: page.TotalAtLeast, Content: shape.UntrustedNotice, Unmatched: unmatched}
		stopped := res.page(objects, projected, room)
		switch {
		case stopped >= 0:
			res.Truncated = true
			res.NextCursor = query.EncodeCursor(query.Cursor{Pos: cur.Pos, Skip: cur.Skip + stopped, Fp: fp})
		case page.NextCursor != "":
			res.NextCursor = query.EncodeCursor(query.Cursor{Pos: page.NextCursor, Fp: fp})
		}
		return shapedResult(args.Format, res, func() string { return renderList(res, paths) })
	}), nil
}

// query reads content_list's arguments into a provider query and the
// projection paths.
func (args contentListArgs) query() (provider.ListQuery, []string, *mcp.CallToolResult) {
	q := provider.ListQuery{Type: args.Type, Status: args.Status, Limit: query.DefaultLimit}
	if args.Limit != 0 {
		q.Limit = int(args.Limit)
	}
	var qerr *query.Error
	if args.Filter != nil {
		if q.Filter, qerr = query.ParseFilter(args.Filter); qerr != nil {
			return q, nil, queryError(qerr)
		}
	}
	if q.Sort, qerr = query.ParseSort(args.Sort); qerr != nil {
		return q, nil, queryError(qerr)
	}
	if qerr = query.CheckPaths(args.Fields); qerr != nil {
		return q, nil, queryError(qerr)
	}
	paths := args.Fields
	if len(paths) == 0 {
		paths = query.DefaultListFields
	}
	return q, paths, nil
}

// page fills r with the projected objects that fit in room bytes, and
// returns the index of the first one left out (-1: none). An object too
// large on its own is cut down, and the page ends after it.
func (r *ListResult) page(objects []provider.Object, projected []map[string]any, room int) (stopped int) {
	r.Objects = make([]map[string]any, 0, len(projected))
	used := 0
	stopped = -1
	for i, m := range projected {
		size := shape.EncodedLen(m) + 1
		if used+size <= room {
			used += size
			r.Objects = append(r.Objects, m)
			continue
		}
		if len(r.Objects) > 0 {
			stopped = i
			break
		}
		// Even the first object alone is over the budget: cut its values,
		// say which, and go on from the next object.
		id := shape.Sanitize(objects[i].ID)
		fitted, cuts, ok := shape.Fit(any(m), room-used)
		if !ok {
			fitted, cuts = map[string]any{"id": id}, []shape.Cut{{Path: "*", Kind: "object", Total: size, Shown: 0}}
		}
		for j := range cuts {
			cuts[j].Object = id
		}
		r.Objects, r.Cuts, r.Truncated = append(r.Objects, fitted.(map[string]any)), cuts, true
		if i+1 < len(projected) {
			stopped = i + 1
		}
		break
	}
	r.Count = len(r.Objects)
	return stopped
}

// shapedResult returns v as structured content, with the text content in
// the format the caller asked for.
func shapedResult(format string, v any, text func() string) *mcp.CallToolResult {
	if format == "json" {
		b, err := json.Marshal(v)
		if err == nil {
			return mcp.NewToolResultStructured(v, string(b))
		}
	}
	return shape.OK(v, text())
}

func renderList(r ListResult, paths []string) string {
	var b strings.Builder
	switch {
	case r.Total >= 0 && r.TotalAtLeast:
		fmt.Fprintf(&b, "%d of %d+ %s", r.Count, r.Total, r.Type)
	case r.Total >= 0:
		fmt.Fprintf(&b, "%d of %d %s", r.Count, r.Total, r.Type)
	default:
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
	writeUnmatched(&b, r.Unmatched)
	return b.String()
}

// writeUnmatched names the fields paths that matched nothing, so a
// misspelt path is not taken for a missing value.
func writeUnmatched(b *strings.Builder, paths []string) {
	if len(paths) > 0 {
		fmt.Fprintf(b, "\nNO MATCH: fields %s matched nothing; content_types lists each type's fields", strings.Join(paths, ", "))
	}
}

// GetResult is content_get's structured answer.
type GetResult struct {
	Provider string         `json:"provider"`
	Object   map[string]any `json:"object"`
	// Cuts lists the values shortened to fit max_bytes, each with the
	// cursor that continues it.
	Cuts []shape.Cut `json:"truncated,omitempty"`
	// Unmatched are the fields paths that matched nothing in the object.
	Unmatched []string `json:"unmatched_fields,omitempty"`
	Content   string   `json:"content_trust"`
}

func (c *contentTools) get(ctx context.Context, call *Call, args contentGetArgs) (*mcp.CallToolResult, error) {
	if args.Cursor != "" {
		return c.getMore(ctx, call, args)
	}
	pr, typ := call.Provider, args.Type
	ref := provider.Ref{ID: args.ID, Slug: args.Slug}
	if (ref.ID == "") == (ref.Slug == "") {
		return shape.Error("id", "give exactly one of id and slug", "pass the id from content_list, or the slug"), nil
	}
	if qerr := query.CheckPaths(args.Fields); qerr != nil {
		return queryError(qerr), nil
	}
	obj, err := pr.Content.Get(ctx, typ, ref)
	if err != nil {
		return providerError(err, typ)
	}
	var m map[string]any
	if len(args.Fields) > 0 {
		m, err = shape.Project(obj, args.Fields)
	} else {
		m, err = shape.WholeObject(obj)
	}
	if err != nil {
		return nil, err
	}
	res := GetResult{Provider: pr.Name, Object: m, Content: shape.UntrustedNotice}
	if len(args.Fields) > 0 {
		res.Unmatched = shape.Unmatched(args.Fields, []map[string]any{m})
	}
	objJSON, err := shape.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding object %s: %w", obj.ID, err)
	}
	cursorFor := func(cut shape.Cut) string {
		if len(args.Fields) > 0 {
			return "" // a projection is not the stored shape: re-read with fields
		}
		return query.EncodeMore(query.More{ID: obj.ID, Type: typ, Path: cut.Path, Offset: cut.Shown, Kind: cut.Kind, Version: obj.Version})
	}
	return shape.FitResult(args.maxBytes(), func(room int) *mcp.CallToolResult {
		if len(objJSON) <= room && res.Unmatched == nil {
			// The common case: the object fits as it is. Its JSON, needed
			// to measure it, becomes the structured content as it stands,
			// so the object is encoded once rather than three times.
			return shapedResult(args.Format, res.encode(objJSON), func() string { return renderGet(res, objJSON) })
		}
		fitted, ok := fitGet(res, room, cursorFor)
		if !ok {
			return shape.Error("max_bytes", fmt.Sprintf("object %s does not fit in %d bytes even with every value shortened (it has too many fields)", obj.ID, args.maxBytes()),
				"raise max_bytes, or pick parts with fields, e.g. [\"title\", \"fields.body\"]")
		}
		return shapedResult(args.Format, fitted, func() string { return renderGet(fitted, nil) })
	}), nil
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

// fitGet shrinks res.Object to room bytes; each cut gets the cursor that
// continues it.
func fitGet(res GetResult, room int, cursorFor func(shape.Cut) string) (GetResult, bool) {
	fitted, cuts, ok := shape.Fit(any(res.Object), room)
	if !ok {
		return res, false
	}
	for i := range cuts {
		cuts[i].Cursor = cursorFor(cuts[i])
	}
	res.Object, res.Cuts = fitted.(map[string]any), cuts
	return res, true
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
	writeUnmatched(&b, r.Unmatched)
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

func (c *contentTools) getMore(ctx context.Context, call *Call, args contentGetArgs) (*mcp.CallToolResult, error) {
	pr, typ := call.Provider, args.Type
	m, ok := query.DecodeMore(args.Cursor)
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
	val, err := storedValue(obj, m.Path)
	if err != nil {
		return nil, err
	}
	return shape.FitResult(args.maxBytes(), func(room int) *mcp.CallToolResult {
		res := MoreResult{Provider: pr.Name, Object: shape.Sanitize(m.ID), Path: shape.Sanitize(m.Path), Offset: m.Offset, Content: shape.UntrustedNotice}
		var next int
		var errRes *mcp.CallToolResult
		switch {
		case m.Kind == "string" && val.Type == gjson.String:
			next, errRes = res.stringPart(val.String(), m.Offset, room)
		case m.Kind == "array" && val.IsArray():
			next, errRes = res.arrayPart(val.Array(), m, room)
		default:
			return shape.Error("cursor", "the value the cursor points to no longer exists or changed kind", "call content_get again without cursor")
		}
		if errRes != nil {
			return errRes
		}
		if next < res.Total {
			more := m
			more.Offset = next
			res.NextCursor = query.EncodeMore(more)
		}
		return shapedResult(args.Format, res, func() string { return renderMore(res, m, next) })
	}), nil
}

// storedValue reads the value at path straight from the stored JSON, so a
// continuation sanitises just that value, not the whole object each time.
// Paths built from keys that sanitising changed exist only in the
// sanitised object.
func storedValue(obj provider.Object, path string) (gjson.Result, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return gjson.Result{}, fmt.Errorf("encoding object %s: %w", obj.ID, err)
	}
	if val := gjson.GetBytes(raw, path); val.Exists() {
		return val, nil
	}
	whole, err := shape.WholeObject(obj)
	if err != nil {
		return gjson.Result{}, err
	}
	raw, _ = json.Marshal(whole)
	return gjson.GetBytes(raw, path), nil
}

// stringPart sets r.Part to as much of s from offset as fits in room, and
// returns where the next part starts.
func (r *MoreResult) stringPart(s string, offset, room int) (int, *mcp.CallToolResult) {
	s = shape.Sanitize(s)
	r.Total = len(s)
	if offset > len(s) {
		return 0, shape.Error("cursor", "the cursor points past the end of the value", "call content_get again without cursor")
	}
	// JSON escaping can grow a string up to six times; measure it.
	part := shape.TruncateUTF8(s[offset:], room)
	for len(part) > 0 && shape.EncodedLen(part) > room {
		part = shape.TruncateUTF8(part, len(part)*3/4)
	}
	if len(part) == 0 && offset < len(s) {
		return 0, shape.Error("max_bytes", "too small to return any of this value", "raise max_bytes")
	}
	r.Part = part
	return offset + len(part), nil
}

// arrayPart sets r.Part to the items from m.Offset that fit in room, and
// returns where the next part starts.
func (r *MoreResult) arrayPart(items []gjson.Result, m query.More, room int) (int, *mcp.CallToolResult) {
	r.Total = len(items)
	if m.Offset > len(items) {
		return 0, shape.Error("cursor", "the cursor points past the end of the value", "call content_get again without cursor")
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
			return 0, shape.Error("max_bytes", fmt.Sprintf("item %d of %s alone is larger than max_bytes", m.Offset, m.Path),
				fmt.Sprintf("raise max_bytes, or read it with fields: [\"%s.%d\"]", m.Path, m.Offset))
		}
		used += size
		part = append(part, v)
	}
	r.Part = part
	return m.Offset + len(part), nil
}

// renderMore is the text of a continuation: which value, which part, and
// the part fenced as data.
func renderMore(r MoreResult, m query.More, end int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s of %s, from %d to %d of %d", shape.LineStart(shape.OneLine(m.Path)), shape.OneLine(m.ID), m.Offset, end, r.Total)
	if r.NextCursor != "" {
		fmt.Fprintf(&b, " (more: content_get cursor=%s)", r.NextCursor)
	}
	enc, _ := json.Marshal(r.Part)
	fmt.Fprintf(&b, "\n--- data from %s (%s) ---\n%s\n--- end of data ---", r.Provider, shape.UntrustedNotice, enc)
	return b.String()
}
