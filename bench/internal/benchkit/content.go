package benchkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
)

var sentences = []string{
	"Scoped tokens let an agent read what it needs and nothing more.",
	"Rotation with a grace period keeps every client working while the new secret spreads.",
	"A revoked key stops working on the very next call, not at the next deploy.",
	"Content written by third parties is data, never instructions, however it is phrased.",
	"The store keeps only a digest of each secret, so a copied database leaks no keys.",
	"Most reads want a summary first and the full body only for the one item that matters.",
	"Byte budgets keep a single large object from crowding everything else out of the context.",
	"Filters on fields such as the author or the view count run inside the store.",
}

// RealisticPost is post i of a blog: a title, a body of 4 to 15 sentences
// in two or three paragraphs (about 0.3 to 1.3 KB), an author, tags and a
// view count — the fields the seeded "posts" type knows.
func RealisticPost(i int) provider.NewObject {
	n := 4 + (i*7)%12
	var b strings.Builder
	for j := range n {
		if j > 0 {
			if j%5 == 0 {
				b.WriteString("\n\n")
			} else {
				b.WriteString(" ")
			}
		}
		b.WriteString(sentences[(i+j*3)%len(sentences)])
	}
	authors := []string{"ada", "grace", "linus", "barbara", "ken"}
	tags := [][]string{{"security", "tokens"}, {"operations"}, {"agents", "mcp", "content"}, {"announcements"}}
	fields, _ := json.Marshal(map[string]any{
		"body": b.String(), "author": authors[i%len(authors)], "tags": tags[i%len(tags)], "views": (i * 7919) % 5000,
	})
	status := provider.StatusPublished
	if i%4 == 3 {
		status = provider.StatusDraft
	}
	return provider.NewObject{Type: "posts", Title: fmt.Sprintf("Notes on running agents safely, part %d", i+1),
		Slug: fmt.Sprintf("notes-on-running-agents-safely-part-%d", i+1), Status: status, Fields: fields}
}

// AddPosts opens the instance's store and creates n realistic posts.
func (in Instance) AddPosts(ctx context.Context, n int) (err error) {
	s, err := local.Open(ctx, in.Store, local.Options{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	for i := range n {
		if _, err := s.Create(ctx, RealisticPost(i)); err != nil {
			return err
		}
	}
	return nil
}
