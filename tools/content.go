package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/keygate/keygate/shape"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/query"
)

func typeArg() mcp.ToolOption {
	return mcp.WithString("type", mcp.Required(),
		mcp.Description("Content type name, e.g. \"posts\" (see content_types)."), mcp.Pattern(auth.TypeNamePattern().String()))
}

func idArg(required bool, desc string) mcp.ToolOption {
	opts := []mcp.PropertyOption{mcp.Description(desc), mcp.Pattern(`^[A-Za-z0-9_-]{1,64}$`)}
	if required {
		opts = append(opts, mcp.Required())
	}
	return mcp.WithString("id", opts...)
}

func projectionArg(def string) mcp.ToolOption {
	return mcp.WithArray("fields",
		mcp.Description("Field paths to return for each object (gjson syntax): e.g. [\"id\", \"title\", \"fields.author\", \"fields.tags.#\"]. "+def),
		mcp.WithStringItems(mcp.MaxLength(200)), mcp.MaxItems(50))
}

func statusArg(desc string) mcp.ToolOption {
	return mcp.WithString("status", mcp.Description(desc), mcp.Enum(provider.StatusDraft, provider.StatusPublished))
}

func contentTools(d *Deps) []ServerTool {
	return []ServerTool{
		{
			Toolset: ToolsetContent, Needs: auth.ContentRead, Handler: d.contentTypes,
			Tool: mcp.NewTool("content_types",
				mcp.WithTitleAnnotation("List content types"),
				mcp.WithDescription("List the content types you can read, with their known fields and object counts. Call this before content_list when you do not know the type names."),
				providerArg(), maxBytesArg(), formatArg(), listCursorArg(),
				mcp.WithReadOnlyHintAnnotation(true), mcp.WithDestructiveHintAnnotation(false),
				mcp.WithIdempotentHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(true)),
		},
		{
			Toolset: ToolsetContent, Needs: auth.ContentRead, Handler: d.contentList,
			Tool: mcp.NewTool("content_list",
				mcp.WithTitleAnnotation("List content"),
				mcp.WithDescription("List objects of one type, newest first, with filtering, field selection, sorting and paging. Returns a compact summary (id, slug, title, status, modified_at) unless fields is given, the total count, and next_cursor when more pages exist."),
				providerArg(), typeArg(),
				mcp.WithObject("filter", mcp.Description(`Match field values. Keys: id, slug, title, status, version, created_at, modified_at, or a field path such as "fields.author" (a bare name means a field). Values: a value for equality, or an operator object: {"$in": [..]}, {"$ne": v}, {"$gt": v}, {"$gte": v}, {"$lt": v}, {"$lte": v}. Example: {"fields.author": "ada", "fields.views": {"$gt": 100}}.`)),
				projectionArg("Default: id, slug, title, status, modified_at."),
				mcp.WithString("sort", mcp.Description("Comma-separated keys, - for descending, e.g. \"-modified_at\" or \"fields.author,title\". Default: -modified_at."), mcp.MaxLength(200)),
				mcp.WithNumber("limit", mcp.Description("Objects per page, 1 to 100 (default 20)."), mcp.Min(1), mcp.Max(query.MaxLimit), mcp.DefaultNumber(query.DefaultLimit)),
				mcp.WithString("cursor", mcp.Description("next_cursor from the previous page of the same query."), mcp.MaxLength(512)),
				statusArg("Only objects with this status (default: any)."),
				maxBytesArg(), formatArg(),
				mcp.WithReadOnlyHintAnnotation(true), mcp.WithDestructiveHintAnnotation(false),
				mcp.WithIdempotentHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(true)),
		},
		{
			Toolset: ToolsetContent, Needs: auth.ContentRead, Handler: d.contentGet,
			Tool: mcp.NewTool("content_get",
				mcp.WithTitleAnnotation("Get content"),
				mcp.WithDescription("Get one object by id or by slug (give exactly one). Returns the whole object, including its version for content_update, unless fields is given. Values too large for max_bytes are shortened and listed under truncated, each with a cursor: call content_get again with type and that cursor (instead of id) to read the rest."),
				providerArg(), typeArg(),
				idArg(false, "The object's id."),
				mcp.WithString("slug", mcp.Description("The object's slug, instead of id."), mcp.Pattern(provider.SlugPattern.String())),
				projectionArg("Default: the whole object."),
				mcp.WithString("cursor", mcp.Description("A cursor from the truncated list of an earlier content_get: returns the next part of that value."), mcp.MaxLength(1024)),
				maxBytesArg(), formatArg(),
				mcp.WithReadOnlyHintAnnotation(true), mcp.WithDestructiveHintAnnotation(false),
				mcp.WithIdempotentHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(true)),
		},
		{
			Toolset: ToolsetContent, Needs: auth.ContentWrite, Handler: d.contentCreate,
			Tool: mcp.NewTool("content_create",
				mcp.WithTitleAnnotation("Create content"),
				mcp.WithDescription("Create an object. The slug is derived from the title when left out; a slug already used in the type is refused. New objects are drafts unless status is \"published\"."),
				providerArg(), typeArg(),
				mcp.WithString("title", mcp.Required(), mcp.Description("Title, 1 to 300 characters."), mcp.MinLength(1), mcp.MaxLength(300)),
				mcp.WithString("slug", mcp.Description("URL name: lower-case letters, digits and single hyphens. Default: derived from the title."), mcp.Pattern(provider.SlugPattern.String()), mcp.MaxLength(128)),
				statusArg("draft (default) or published."),
				mcp.WithObject("fields", mcp.Required(), mcp.Description("The type's field values as a JSON object, e.g. {\"body\": \"...\", \"author\": \"ada\"}. content_types lists known fields.")),
				mcp.WithReadOnlyHintAnnotation(false), mcp.WithDestructiveHintAnnotation(false),
				mcp.WithIdempotentHintAnnotation(false), mcp.WithOpenWorldHintAnnotation(true)),
		},
		{
			Toolset: ToolsetContent, Needs: auth.ContentWrite, Handler: d.contentUpdate,
			Tool: mcp.NewTool("content_update",
				mcp.WithTitleAnnotation("Update content"),
				mcp.WithDescription("Change some attributes of an object; what you leave out stays. fields is merged key by key (null removes a key). Pass expected_version (from content_get) to refuse the update if someone changed the object meanwhile."),
				providerArg(), typeArg(),
				idArg(true, "The object's id."),
				mcp.WithString("title", mcp.Description("New title."), mcp.MinLength(1), mcp.MaxLength(300)),
				mcp.WithString("slug", mcp.Description("New slug."), mcp.Pattern(provider.SlugPattern.String()), mcp.MaxLength(128)),
				statusArg("New status."),
				mcp.WithObject("fields", mcp.Description("Field values to set; null removes a field.")),
				mcp.WithNumber("expected_version", mcp.Description("The version you read; the update is refused if the object has moved on."), mcp.Min(1)),
				mcp.WithReadOnlyHintAnnotation(false), mcp.WithDestructiveHintAnnotation(false),
				mcp.WithIdempotentHintAnnotation(false), mcp.WithOpenWorldHintAnnotation(true)),
		},
		{
			Toolset: ToolsetContent, Needs: auth.ContentDelete, Handler: d.contentDelete,
			Tool: mcp.NewTool("content_delete",
				append([]mcp.ToolOption{
					mcp.WithTitleAnnotation("Delete content"),
					mcp.WithDescription("Delete an object for good. The user is asked to confirm; use dry_run to see what would be deleted."),
					providerArg(), typeArg(), idArg(true, "The object's id."),
					mcp.WithReadOnlyHintAnnotation(false), mcp.WithDestructiveHintAnnotation(true),
					mcp.WithIdempotentHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(true),
				}, confirmArgs()...)...),
		},
	}
}

// typeAllowed refuses a call on a type the caller's scopes do not reach.
func typeAllowed(call *Call, a auth.Action, typ string) *mcp.CallToolResult {
	if call.Caller.Scopes.Allows(a, typ) {
		return nil
	}
	return shape.Error("type", fmt.Sprintf("insufficient_scope: your credential does not grant %s on %q (it holds %s)", a, typ, scopeList(call.Caller.Scopes)),
		fmt.Sprintf("use a type you may access, or a key with %s:%s", a, typ))
}

func (d *Deps) contentTypes(ctx context.Context, call *Call) (*mcp.CallToolResult, error) {
	pr, errRes := d.Providers.Pick(call.Req.GetString("provider", ""))
	if errRes != nil {
		return errRes, nil
	}
	budget, errRes := readMaxBytes(call)
	if errRes != nil {
		return errRes, nil
	}
	offset, errRes := readOffsetCursor(call, "types/"+pr.Name)
	if errRes != nil {
		return errRes, nil
	}
	all, err := pr.Content.Types(ctx)
	if err != nil {
		return providerError(err, "")
	}
	readable := []provider.ContentType{}
	for _, t := range all {
		if call.Caller.Scopes.Allows(auth.ContentRead, t.Name) {
			readable = append(readable, shape.SanitizeType(t))
		}
	}
	types, next := shape.PageItems(readable, offset, budget-shape.EnvelopeBytes)
	if types == nil {
		types = []provider.ContentType{}
	}
	out := map[string]any{"provider": pr.Name, "types": types, "content_trust": shape.UntrustedNotice}
	var b strings.Builder
	// Type names, descriptions and field names are the provider's words:
	// fenced as data, like content.
	if len(types) > 0 {
		fmt.Fprintf(&b, "--- data from %s (%s) ---\n", pr.Name, shape.UntrustedNotice)
	}
	for _, t := range types {
		b.WriteString(shape.LineStart(t.Name))
		if t.Count >= 0 {
			fmt.Fprintf(&b, " (%d objects)", t.Count)
		} else {
			b.WriteString(" (count unknown)")
		}
		if len(t.Fields) > 0 {
			fmt.Fprintf(&b, ": %s", strings.Join(t.Fields, ", "))
		}
		if t.Description != "" {
			fmt.Fprintf(&b, " - %s", shape.OneLine(t.Description))
		}
		b.WriteString("\n")
	}
	if len(types) > 0 {
		b.WriteString("--- end of data ---\n")
	}
	if len(readable) == 0 {
		b.WriteString("no content types you can read")
	}
	if next > 0 {
		out["next_cursor"], out["truncated"] = query.OffsetCursor("types/"+pr.Name, next), true
		fmt.Fprintf(&b, "TRUNCATED: %d of %d types shown (max_bytes); next_cursor=%s", len(types), len(readable), out["next_cursor"])
	}
	return shapedResult(call, out, func() string { return strings.TrimSuffix(b.String(), "\n") }), nil
}

// writeResult answers a write with the object as stored, shaped like a
// content_get result within the default budget: a write of a 1 MB body must
// not echo 1 MB back to the model.
func writeResult(pr Provider, verb string, obj provider.Object) (*mcp.CallToolResult, error) {
	m, err := shape.WholeObject(obj)
	if err != nil {
		return nil, err
	}
	res := GetResult{Provider: pr.Name, Object: m, Content: shape.UntrustedNotice}
	if shape.EncodedLen(m) > shape.DefaultMaxBytes-shape.EnvelopeBytes {
		if fitted, cuts, ok := shape.Fit(any(m), shape.DefaultMaxBytes-shape.EnvelopeBytes); ok {
			res.Object, res.Cuts = fitted.(map[string]any), cuts
		} else {
			res.Object = shape.Summary(obj)
		}
	}
	out := map[string]any{"provider": pr.Name, verb: true, "object": res.Object, "content_trust": shape.UntrustedNotice}
	if len(res.Cuts) > 0 {
		out["truncated"] = res.Cuts
	}
	return shape.OK(out, verb+" "+renderGet(res, nil)), nil
}

// objectFields reads the fields argument as a JSON object.
func objectFields(args map[string]any) (json.RawMessage, *mcp.CallToolResult) {
	raw, ok := args["fields"]
	if !ok || raw == nil {
		return nil, nil
	}
	if _, ok := raw.(map[string]any); !ok {
		return nil, shape.Error("fields", "must be a JSON object", `write {"name": value}`)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, shape.Error("fields", "cannot be encoded as JSON", "send plain strings, numbers, booleans, lists and objects")
	}
	return b, nil
}

func (d *Deps) contentCreate(ctx context.Context, call *Call) (*mcp.CallToolResult, error) {
	args := call.Req.GetArguments()
	pr, errRes := d.Providers.Pick(call.Req.GetString("provider", ""))
	if errRes != nil {
		return errRes, nil
	}
	typ := call.Req.GetString("type", "")
	if r := typeAllowed(call, auth.ContentWrite, typ); r != nil {
		return r, nil
	}
	title := strings.TrimSpace(call.Req.GetString("title", ""))
	if title == "" {
		return shape.Error("title", "is required and cannot be blank", "give the object a title"), nil
	}
	slug := call.Req.GetString("slug", "")
	if slug == "" {
		// Slugify the redacted title: a key pasted into a title must not
		// live on, lower-cased and hyphenated, in the slug where no key
		// pattern would recognise it.
		if slug = provider.Slugify(d.Redactor.Redact(title)); slug == "" {
			return shape.Error("slug", "cannot be derived from this title (no letters or digits)", "pass a slug such as \"my-post\""), nil
		}
	}
	fields, r := objectFields(args)
	if r != nil {
		return r, nil
	}
	if fields == nil {
		return shape.Error("fields", "is required", "pass the field values as an object, {} if there are none"), nil
	}
	obj, err := pr.Content.Create(ctx, provider.NewObject{Type: typ, Title: title, Slug: slug,
		Status: call.Req.GetString("status", provider.StatusDraft), Fields: fields})
	if err != nil {
		return providerError(err, typ)
	}
	return writeResult(pr, "created", obj)
}

func (d *Deps) contentUpdate(ctx context.Context, call *Call) (*mcp.CallToolResult, error) {
	args := call.Req.GetArguments()
	pr, errRes := d.Providers.Pick(call.Req.GetString("provider", ""))
	if errRes != nil {
		return errRes, nil
	}
	typ := call.Req.GetString("type", "")
	if r := typeAllowed(call, auth.ContentWrite, typ); r != nil {
		return r, nil
	}
	p := provider.Patch{Type: typ, ID: call.Req.GetString("id", "")}
	for name, dst := range map[string]**string{"title": &p.Title, "slug": &p.Slug, "status": &p.Status} {
		if v, ok := args[name].(string); ok {
			*dst = &v
		}
	}
	if p.Title != nil && strings.TrimSpace(*p.Title) == "" {
		return shape.Error("title", "cannot be blank", "leave title out to keep it, or give a new one"), nil
	}
	fields, r := objectFields(args)
	if r != nil {
		return r, nil
	}
	p.Fields = fields
	if _, ok := args["expected_version"]; ok {
		v := int64(call.Req.GetInt("expected_version", 0))
		p.ExpectedVersion = &v
	}
	if p.Title == nil && p.Slug == nil && p.Status == nil && p.Fields == nil {
		return shape.Error("", "nothing to update", "pass at least one of title, slug, status or fields"), nil
	}
	obj, err := pr.Content.Update(ctx, p)
	if err != nil {
		return providerError(err, typ)
	}
	return writeResult(pr, "updated", obj)
}

func (d *Deps) contentDelete(ctx context.Context, call *Call) (*mcp.CallToolResult, error) {
	pr, errRes := d.Providers.Pick(call.Req.GetString("provider", ""))
	if errRes != nil {
		return errRes, nil
	}
	typ := call.Req.GetString("type", "")
	if r := typeAllowed(call, auth.ContentDelete, typ); r != nil {
		return r, nil
	}
	id := call.Req.GetString("id", "")
	obj, err := pr.Content.Get(ctx, typ, provider.Ref{ID: id})
	if err != nil {
		return providerError(err, typ)
	}
	what := fmt.Sprintf("Delete %s %s %q (%s, version %d)? This cannot be undone.", typ, shape.OneLine(obj.ID), shape.OneLine(obj.Title), shape.OneLine(obj.Status), obj.Version)
	if call.Req.GetBool("dry_run", false) {
		return shape.OK(map[string]any{"provider": pr.Name, "dry_run": true, "would_delete": shape.Summary(obj)},
			fmt.Sprintf("dry run: would delete %s %s %s [%s] v%d; nothing was changed", typ, shape.OneLine(obj.ID), shape.OneLine(obj.Title), shape.OneLine(obj.Status), obj.Version)), nil
	}
	if r := confirmDestructive(ctx, call.Req, what); r != nil {
		return r, nil
	}
	deleted, err := pr.Content.Delete(ctx, typ, id)
	if err != nil {
		return providerError(err, typ)
	}
	return shape.OK(map[string]any{"provider": pr.Name, "deleted": true, "object": shape.Summary(deleted)},
		fmt.Sprintf("deleted %s %s %q", typ, shape.OneLine(deleted.ID), shape.OneLine(deleted.Title))), nil
}
