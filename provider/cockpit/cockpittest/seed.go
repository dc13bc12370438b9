package cockpittest

// seed creates the demo site: three collections and a singleton, roles
// "editor" (everything on posts and authors, no publish on pages) and
// "reader" (read only), and the four demo keys.
func (s *Server) seed() {
	s.models = []Model{
		{Name: "posts", Fields: []Field{{Name: "title", Type: "text"}, {Name: "slug", Type: "text"}, {Name: "body", Type: "wysiwyg"},
			{Name: "featured", Type: "boolean", Default: false}, {Name: "tags", Type: "set"}, {Name: "views", Type: "number"}}},
		{Name: "authors", Fields: []Field{{Name: "title", Type: "text"}, {Name: "slug", Type: "text"}, {Name: "bio", Type: "text"}}},
		// pages has no slug field: get-by-slug is refused on it.
		{Name: "pages", Fields: []Field{{Name: "title", Type: "text"}, {Name: "content", Type: "wysiwyg"}}},
		{Name: "settings", Singleton: true, Fields: []Field{{Name: "site_name", Type: "text"}}},
	}
	editor, reader := map[string]bool{}, map[string]bool{}
	for _, m := range []string{"posts", "authors", "pages", "settings"} {
		for _, p := range []string{"read", "create", "update", "delete", "publish"} {
			editor["content/"+m+"/"+p] = !(m == "pages" && p == "publish")
		}
		reader["content/"+m+"/read"] = true
	}
	s.roles["editor"], s.roles["reader"] = editor, reader
	rw, ro := "editor", "reader"
	s.keys[DemoRWKey], s.keys[DemoROKey], s.keys[DemoNoRoleKey] = &rw, &ro, nil
	s.users = []user{{id: "6a00000000000000000000a1", name: "apiuser", role: "editor", apiKey: DemoUserKey}}

	day := func(d int) float64 { return float64(1767258000 + d*86400) } // 2026-01-01T09:00:00Z + d days
	// item builds a document in the key order Cockpit writes (docs J3).
	item := func(id string, state float64, created, modified int, fields ...any) *object {
		it := pairs(fields...)
		for i, v := range it.vals {
			it.vals[i] = fromGo(v)
		}
		for _, kv := range [][2]any{{"_state", state}, {"_modified", day(modified)}, {"_mby", nil}, {"_created", day(created)}, {"_cby", nil}, {"_id", id}} {
			it.set(kv[0].(string), kv[1])
		}
		return it
	}
	s.items["posts"] = []*object{
		item("6b0000000000000000000001", 1, 1, 2, "title", "Hello, world", "slug", "hello-world", "body", "<p>The first post.</p>", "featured", true, "tags", []any{"intro", "news"}, "views", 120.0),
		item("6b0000000000000000000002", 1, 3, 7, "title", "Second thoughts", "slug", "second-thoughts", "body", "<p>More words.</p>", "featured", false, "tags", []any{"opinion"}, "views", 45.0),
		item("6b0000000000000000000003", 1, 8, 11, "title", "Release notes", "slug", "release-notes", "body", "<p>What changed.</p>", "featured", false, "tags", []any{"news"}, "views", 300.0),
		item("6b0000000000000000000004", 1, 10, 13, "title", "Weekly digest", "slug", "weekly-digest", "body", nil, "featured", false, "tags", nil, "views", 7.0),
		// Unpublished: invisible to every API read.
		item("6b0000000000000000000005", 0, 12, 12, "title", "Hidden draft", "slug", "hidden-draft", "body", "<p>Not ready.</p>", "featured", false, "tags", nil, "views", 0.0),
	}
	s.items["authors"] = []*object{
		item("6b0000000000000000000011", 1, 0, 0, "title", "Ada Lovelace", "slug", "ada", "bio", "Wrote the first program."),
		item("6b0000000000000000000012", 1, 0, 4, "title", "Grace Hopper", "slug", "grace", "bio", "Found the first bug."),
	}
	s.items["pages"] = []*object{
		item("6b0000000000000000000021", 1, 0, 0, "title", "About", "content", "<p>About us.</p>"),
	}
	// A singleton's document carries _model after its fields (docs S3).
	s.items["settings"] = []*object{
		item("6b0000000000000000000031", 1, 0, 0, "site_name", "keygate demo", "_model", "settings"),
	}
}
