package tools

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/query"
	"github.com/keygate/keygate/shape"
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

// contentTools read and write a provider's content.
type contentTools struct {
	d *Deps
}

type contentTypesArgs struct {
	Common
	Budget
	Cursor string `json:"cursor"`
}

type contentListArgs struct {
	Common
	TypeArg
	Budget
	Filter map[string]any `json:"filter"`
	Fields []string       `json:"fields"`
	Sort   string         `json:"sort"`
	Limit  float64        `json:"limit"`
	Cursor string         `json:"cursor"`
	Status string         `json:"status"`
}

type contentGetArgs struct {
	Common
	TypeArg
	Budget
	ID     string   `json:"id"`
	Slug   string   `json:"slug"`
	Fields []string `json:"fields"`
	Cursor string   `json:"cursor"`
}

type contentCreateArgs struct {
	Common
	TypeArg
	Title  string          `json:"title"`
	Slug   string          `json:"slug"`
	Status string          `json:"status"`
	Fields json.RawMessage `json:"fields"`
}

type contentUpdateArgs struct {
	Common
	TypeArg
	ID              string          `json:"id"`
	Title           *string         `json:"title"`
	Slug            *string         `json:"slug"`
	Status          *string         `json:"status"`
	Fields          json.RawMessage `json:"fields"`
	ExpectedVersion *float64        `json:"expected_version"`
}

type contentDeleteArgs struct {
	Common
	TypeArg
	Confirmation
	ID string `json:"id"`
}

func (c *contentTools) tools() []ServerTool {
	return []ServerTool{
		newTool(ToolsetContent, auth.ContentRead, mcp.NewTool("content_types",
			mcp.WithTitleAnnotation("List content types"),
			mcp.WithDescription("List the content types you can read, with their known fields and object counts. Call this before content_list when you do not know the type names."),
			providerArg(), maxBytesArg(), formatArg(), listCursorArg(),
			mcp.WithReadOnlyHintAnnotation(true), mcp.WithDestructiveHintAnnotation(false),
			mcp.WithIdempotentHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(true)), c.types),
		newTool(ToolsetContent, auth.ContentRead, mcp.NewTool("content_list",
			mcp.WithTitleAnnotation("List content"),
			mcp.WithDescription("List objects of one type, newest first, with filtering, field selection, sorting and paging. Returns a compact summary (id, slug, title, status, modified_at) unless fields is given, the total count (exact up to 1,000; past that keygate's own store stops counting and says 1,000+ with total_is_lower_bound), and next_cursor when more pages exist."),
			providerArg(), typeArg(),
			mcp.WithObject("filter", mcp.Description(`Match field values. Keys: id, slug, title, status, version, created_at, modified_at, or a field path such as "fields.author" (a bare name means a field). Values: a value for equality, or an operator object: {"$in": [..]}, {"$ne": v}, {"$gt": v}, {"$gte": v}, {"$lt": v}, {"$lte": v}. Example: {"fields.author": "ada", "fields.views": {"$gt": 100}}.`)),
			projectionArg("Default: id, slug, title, status, modified_at."),
			mcp.WithString("sort", mcp.Description("Comma-separated keys, - for descending, e.g. \"-modified_at\" or \"fields.author,title\". Default: -modified_at."), mcp.MaxLength(200)),
			mcp.WithNumber("limit", mcp.Description("Objects per page, 1 to 100 (default 20)."), mcp.Min(1), mcp.Max(query.MaxLimit), mcp.DefaultNumber(query.DefaultLimit)),
			mcp.WithString("cursor", mcp.Description("next_cursor from the previous page of the same query."), mcp.MaxLength(512)),
			statusArg("Only objects with this status (default: any)."),
			maxBytesArg(), formatArg(),
			mcp.WithReadOnlyHintAnnotation(true), mcp.WithDestructiveHintAnnotation(false),
			mcp.WithIdempotentHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(true)), c.list),
		newTool(ToolsetContent, auth.ContentRead, mcp.NewTool("content_get",
			mcp.WithTitleAnnotation("Get content"),
			mcp.WithDescription("Get one object by id or by slug (give exactly one). Returns the whole object, including its version for content_update, unless fields is given. Values too large for max_bytes are shortened and listed under truncated, each with a cursor: call content_get again with type and that cursor (instead of id) to read the rest."),
			providerArg(), typeArg(),
			idArg(false, "The object's id."),
			mcp.WithString("slug", mcp.Description("The object's slug, instead of id."), mcp.Pattern(provider.SlugPattern.String())),
			projectionArg("Default: the whole object."),
			mcp.WithString("cursor", mcp.Description("A cursor from the truncated list of an earlier content_get: returns the next part of that value."), mcp.MaxLength(1024)),
			maxBytesArg(), formatArg(),
			mcp.WithReadOnlyHintAnnotation(true), mcp.WithDestructiveHintAnnotation(false),
			mcp.WithIdempotentHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(true)), c.get),
		newTool(ToolsetContent, auth.ContentWrite, mcp.NewTool("content_create",
			mcp.WithTitleAnnotation("Create content"),
			mcp.WithDescription("Create an object. The slug is derived from the title when left out; a slug already used in the type is refused. New objects are drafts unless status is \"published\"."),
			providerArg(), typeArg(),
			mcp.WithString("title", mcp.Required(), mcp.Description("Title, 1 to 300 characters."), mcp.MinLength(1), mcp.MaxLength(300)),
			mcp.WithString("slug", mcp.Description("URL name: lower-case letters, digits and single hyphens. Default: derived from the title."), mcp.Pattern(provider.SlugPattern.String()), mcp.MaxLength(128)),
			statusArg("draft (default) or published."),
			mcp.WithObject("fields", mcp.Description("The type's field values as a JSON object, e.g. {\"body\": \"...\", \"author\": \"ada\"}. content_types lists known fields. Default: {} (no fields).")),
			mcp.WithReadOnlyHintAnnotation(false), mcp.WithDestructiveHintAnnotation(false),
			mcp.WithIdempotentHintAnnotation(false), mcp.WithOpenWorldHintAnnotation(true)), c.create),
		newTool(ToolsetContent, auth.ContentWrite, mcp.NewTool("content_update",
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
			mcp.WithIdempotentHintAnnotation(false), mcp.WithOpenWorldHintAnnotation(true)), c.update),
		newTool(ToolsetContent, auth.ContentDelete, mcp.NewTool("content_delete",
			append([]mcp.ToolOption{
				mcp.WithTitleAnnotation("Delete content"),
				mcp.WithDescription("Delete an object for good. The user is asked to confirm; use dry_run to see what would be deleted."),
				providerArg(), typeArg(), idArg(true, "The object's id."),
				mcp.WithReadOnlyHintAnnotation(false), mcp.WithDestructiveHintAnnotation(true),
				mcp.WithIdempotentHintAnnotation(true), mcp.WithOpenWorldHintAnnotation(true),
			}, confirmArgs()...)...), c.delete),
	}
}

func (c *contentTools) types(ctx context.Context, call *Call, args contentTypesArgs) (*mcp.CallToolResult, error) {
	pr := call.Provider
	offset, errRes := readOffsetCursor(args.Cursor, "types/"+pr.Name)
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
	return shape.FitResult(args.maxBytes(), func(room int) *mcp.CallToolResult {
		types, next := shape.PageItems(readable, offset, room)
		if types == nil {
			types = []provider.ContentType{}
		}
		out := map[string]any{"provider": pr.Name, "types": types, "content_trust": shape.UntrustedNotice}
		if next > 0 {
			out["next_cursor"], out["truncated"] = query.OffsetCursor("types/"+pr.Name, next), true
		}
		return shapedResult(args.Format, out, func() string { return renderTypes(pr.Name, types, len(readable), out["next_cursor"]) })
	}), nil
}

// renderTypes is content_types' text: type names, descriptions and field
// names are the provider's words, fenced as data like content.
func renderTypes(providerName string, types []provider.ContentType, readable int, next any) string {
	var b strings.Builder
	if len(types) > 0 {
		fmt.Fprintf(&b, "--- data from %s (%s) ---\n", providerName, shape.UntrustedNotice)
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
	if readable == 0 {
		b.WriteString("no content types you can read")
	}
	if next != nil {
		fmt.Fprintf(&b, "TRUNCATED: %d of %d types shown (max_bytes); next_cursor=%s", len(types), readable, next)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// writeResult answers a write with the object as stored, shaped like a
// content_get result within the default budget: a write of a 1 MB body must
// not echo 1 MB back to the model.
func writeResult(pr Provider, verb string, obj provider.Object) (*mcp.CallToolResult, error) {
	m, err := shape.WholeObject(obj)
	if err != nil {
		return nil, err
	}
	return shape.FitResult(shape.DefaultMaxBytes, func(room int) *mcp.CallToolResult {
		res := GetResult{Provider: pr.Name, Object: m, Content: shape.UntrustedNotice}
		if shape.EncodedLen(m) > room {
			if fitted, cuts, ok := shape.Fit(any(m), room); ok {
				res.Object, res.Cuts = fitted.(map[string]any), cuts
			} else {
				res.Object = shape.Summary(obj)
			}
		}
		out := map[string]any{"provider": pr.Name, verb: true, "object": res.Object, "content_trust": shape.UntrustedNotice}
		if len(res.Cuts) > 0 {
			out["truncated"] = res.Cuts
		}
		return shape.OK(out, verb+" "+renderGet(res, nil))
	}), nil
}

// objectFields is a fields argument as JSON; JSON null is no fields.
func objectFields(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

func (c *contentTools) create(ctx context.Context, call *Call, args contentCreateArgs) (*mcp.CallToolResult, error) {
	title := strings.TrimSpace(args.Title)
	if title == "" {
		return shape.Error("title", "is required and cannot be blank", "give the object a title"), nil
	}
	slug := args.Slug
	if slug == "" {
		// Slugify the redacted title: a key pasted into a title must not
		// live on, lower-cased and hyphenated, in the slug where no key
		// pattern would recognise it.
		if slug = provider.Slugify(c.d.Redactor.Redact(title)); slug == "" {
			return shape.Error("slug", "cannot be derived from this title (no letters or digits)", "pass a slug such as \"my-post\""), nil
		}
	}
	fields := objectFields(args.Fields)
	if fields == nil {
		fields = json.RawMessage(`{}`) // a title-only object
	}
	status := cmp.Or(args.Status, provider.StatusDraft)
	obj, err := call.Provider.Content.Create(ctx, provider.NewObject{Type: args.Type, Title: title, Slug: slug, Status: status, Fields: fields})
	if err != nil {
		return providerError(err, args.Type)
	}
	return writeResult(call.Provider, "created", obj)
}

func (c *contentTools) update(ctx context.Context, call *Call, args contentUpdateArgs) (*mcp.CallToolResult, error) {
	p := provider.Patch{Type: args.Type, ID: args.ID, Title: args.Title, Slug: args.Slug, Status: args.Status, Fields: objectFields(args.Fields)}
	if p.Title != nil && strings.TrimSpace(*p.Title) == "" {
		return shape.Error("title", "cannot be blank", "leave title out to keep it, or give a new one"), nil
	}
	if args.ExpectedVersion != nil {
		v := int64(*args.ExpectedVersion)
		p.ExpectedVersion = &v
	}
	if p.Title == nil && p.Slug == nil && p.Status == nil && p.Fields == nil {
		return shape.Error("", "nothing to update", "pass at least one of title, slug, status or fields"), nil
	}
	obj, err := call.Provider.Content.Update(ctx, p)
	if err != nil {
		return providerError(err, args.Type)
	}
	return writeResult(call.Provider, "updated", obj)
}

func (c *contentTools) delete(ctx context.Context, call *Call, args contentDeleteArgs) (*mcp.CallToolResult, error) {
	pr, typ := call.Provider, args.Type
	obj, err := pr.Content.Get(ctx, typ, provider.Ref{ID: args.ID})
	if err != nil {
		return providerError(err, typ)
	}
	if args.DryRun {
		return shape.OK(map[string]any{"provider": pr.Name, "dry_run": true, "would_delete": shape.Summary(obj)},
			fmt.Sprintf("dry run: would delete %s %s %s [%s] v%d; nothing was changed", typ, shape.OneLine(obj.ID), shape.OneLine(obj.Title), shape.OneLine(obj.Status), obj.Version)), nil
	}
	what := fmt.Sprintf("Delete %s %s %q (%s, version %d)? This cannot be undone.", typ, shape.OneLine(obj.ID), shape.OneLine(obj.Title), shape.OneLine(obj.Status), obj.Version)
	if r := confirmDestructive(ctx, call, args.Confirmation, what); r != nil {
		return r, nil
	}
	deleted, err := pr.Content.Delete(ctx, typ, args.ID)
	if err != nil {
		return providerError(err, typ)
	}
	return shape.OK(map[string]any{"provider": pr.Name, "deleted": true, "object": shape.Summary(deleted)},
		fmt.Sprintf("deleted %s %s %q", typ, shape.OneLine(deleted.ID), shape.OneLine(deleted.Title))), nil
}
