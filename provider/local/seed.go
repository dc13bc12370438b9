package local

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/keygate/keygate/provider"
)

// seedPost is one example object and how long ago it was written.
type seedPost struct {
	age    time.Duration
	object provider.NewObject
	fields map[string]any
}

func seedPosts() []seedPost {
	const day = 24 * time.Hour
	return []seedPost{
		{age: 14 * day, object: provider.NewObject{Title: "Welcome to keygate", Slug: "welcome-to-keygate", Status: provider.StatusPublished},
			fields: map[string]any{
				"body":   "keygate gives AI agents scoped, revocable access to your content. This post was created on first run so there is something to list, filter and edit.",
				"author": "ada", "tags": []string{"announcements", "getting-started"}, "views": 1280,
			}},
		{age: 6 * day, object: provider.NewObject{Title: "Scoped tokens, explained", Slug: "scoped-tokens-explained", Status: provider.StatusPublished},
			fields: map[string]any{
				"body":   "A token holds only the scopes it needs: content:read to browse, content:write:posts to edit posts and nothing else. A key can mint keys only with a subset of its own scopes, and none that outlive it.",
				"author": "grace", "tags": []string{"security", "tokens"}, "views": 342,
			}},
		{age: 1 * day, object: provider.NewObject{Title: "Rotating keys without downtime", Slug: "rotating-keys-without-downtime", Status: provider.StatusDraft},
			fields: map[string]any{
				"body":   "Rotate with a grace period: the new key is stored first, then the old one keeps working for a few minutes while every client picks up the new secret.",
				"author": "ada", "tags": []string{"security", "operations"}, "views": 0,
			}},
	}
}

// Seed fills a new store with the "posts" type and three example posts, two
// published and one draft, in one transaction. It fails, changing nothing,
// when posts already exists.
func (s *Store) Seed(ctx context.Context) error {
	now := s.now()
	err := s.inWriteTx(ctx, func(tx querier) error {
		posts := provider.ContentType{Name: "posts", Description: "Blog posts", Fields: []string{"body", "author", "tags", "views"}}
		if err := insertType(ctx, tx, posts, toNanos(now)); err != nil {
			return err
		}
		for _, p := range seedPosts() {
			raw, err := json.Marshal(p.fields)
			if err != nil {
				return fmt.Errorf("encoding %s: %w", p.object.Slug, err)
			}
			p.object.Type, p.object.Fields = posts.Name, raw
			if _, err := insertObject(ctx, tx, p.object, toNanos(now.Add(-p.age))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seeding store: %w", err)
	}
	return nil
}
