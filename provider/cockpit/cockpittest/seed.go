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
	item := func(id string, state float64, created, modified int, fields Item) Item {
		it := Item{}
		for k, v := range fields {
			it[k] = v
		}
		it["_state"], it["_modified"], it["_mby"], it["_created"], it["_cby"], it["_id"] = state, day(modified), nil, day(created), nil, id
		return it
	}
	s.items["posts"] = []Item{
		item("6b0000000000000000000001", 1, 1, 2, Item{"title": "Hello, world", "slug": "hello-world", "body": "<p>The first post.</p>", "featured": true, "tags": []any{"intro", "news"}, "views": 120.0}),
		item("6b0000000000000000000002", 1, 3, 7, Item{"title": "Second thoughts", "slug": "second-thoughts", "body": "<p>More words.</p>", "featured": false, "tags": []any{"opinion"}, "views": 45.0}),
		item("6b0000000000000000000003", 1, 8, 11, Item{"title": "Release notes", "slug": "release-notes", "body": "<p>What changed.</p>", "featured": false, "tags": []any{"news"}, "views": 300.0}),
		item("6b0000000000000000000004", 1, 10, 13, Item{"title": "Weekly digest", "slug": "weekly-digest", "body": nil, "featured": false, "tags": nil, "views": 7.0}),
		// Unpublished: invisible to every API read.
		item("6b0000000000000000000005", 0, 12, 12, Item{"title": "Hidden draft", "slug": "hidden-draft", "body": "<p>Not ready.</p>", "featured": false, "tags": nil, "views": 0.0}),
	}
	s.items["authors"] = []Item{
		item("6b0000000000000000000011", 1, 0, 0, Item{"title": "Ada Lovelace", "slug": "ada", "bio": "Wrote the first program."}),
		item("6b0000000000000000000012", 1, 0, 4, Item{"title": "Grace Hopper", "slug": "grace", "bio": "Found the first bug."}),
	}
	s.items["pages"] = []Item{
		item("6b0000000000000000000021", 1, 0, 0, Item{"title": "About", "content": "<p>About us.</p>"}),
	}
	s.items["settings"] = []Item{
		item("6b0000000000000000000031", 1, 0, 0, Item{"site_name": "keygate demo"}),
	}
}
