package cosmictest

// seed fills the demo bucket: three object types and a handful of objects
// in both statuses, with fixed ids so examples can name them.
func (s *Server) seed() {
	s.types = []ObjectType{
		{Slug: "posts", Title: "Posts", Singular: "Post", Emoji: "📝", Metafields: []Metafield{
			{Key: "body", Title: "Body", Type: "html-textarea"},
			{Key: "author", Title: "Author", Type: "text"},
			{Key: "tags", Title: "Tags", Type: "multi-select"},
			{Key: "views", Title: "Views", Type: "number"},
		}},
		{Slug: "authors", Title: "Authors", Singular: "Author", Emoji: "🧑", Metafields: []Metafield{
			{Key: "bio", Title: "Bio", Type: "textarea"},
			{Key: "email", Title: "Email", Type: "text", Required: true},
		}},
		{Slug: "pages", Title: "Pages", Singular: "Page", Emoji: "📄", Metafields: []Metafield{
			{Key: "content", Title: "Content", Type: "html-textarea"},
		}},
	}
	day := func(d int) string { return "2026-01-" + two(d) + "T09:00:00.000Z" }
	add := func(id, typ, slug, title, status string, created, modified int, meta map[string]any) {
		o := &Object{ID: id, Type: typ, Slug: slug, Title: title, Status: status, Bucket: DemoBucket,
			CreatedAt: day(created), ModifiedAt: day(modified), Metadata: meta}
		if status == "published" {
			o.PublishedAt = day(created)
		}
		s.objects = append(s.objects, o)
	}
	add("65a000000000000000000001", "posts", "hello-world", "Hello, world", "published", 2, 3,
		map[string]any{"body": "<p>The first post.</p>", "author": "ada", "tags": []any{"intro", "news"}, "views": float64(120)})
	add("65a000000000000000000002", "posts", "second-thoughts", "Second thoughts", "published", 4, 8,
		map[string]any{"body": "<p>More words.</p>", "author": "grace", "tags": []any{"opinion"}, "views": float64(45)})
	add("65a000000000000000000003", "posts", "draft-ideas", "Draft ideas", "draft", 6, 6,
		map[string]any{"body": "<p>Not ready.</p>", "author": "ada", "tags": []any{}, "views": float64(0)})
	add("65a000000000000000000004", "posts", "release-notes", "Release notes", "published", 9, 12,
		map[string]any{"body": "<p>What changed.</p>", "author": "linus", "tags": []any{"news"}, "views": float64(300)})
	add("65a000000000000000000005", "posts", "weekly-digest", "Weekly digest", "draft", 11, 14,
		map[string]any{"body": "<p>Digest.</p>", "author": "grace", "tags": []any{"news", "digest"}, "views": float64(7)})
	add("65a000000000000000000011", "authors", "ada", "Ada Lovelace", "published", 1, 1,
		map[string]any{"bio": "Wrote the first program.", "email": "ada@example.com"})
	add("65a000000000000000000012", "authors", "grace", "Grace Hopper", "published", 1, 5,
		map[string]any{"bio": "Found the first bug.", "email": "grace@example.com"})
	// "pages" has no objects: listing it gives Cosmic's empty-list 404.
}

func two(d int) string {
	if d < 10 {
		return "0" + string(rune('0'+d))
	}
	return string(rune('0'+d/10)) + string(rune('0'+d%10))
}
