package authserver

import (
	"fmt"

	"github.com/keygate/keygate/auth"
)

// scopeWords says in plain words what each keygate scope lets a client do,
// for the consent page. The tools each scope unlocks are in README.md
// ("Tools").
var scopeWords = map[auth.Action]string{
	auth.ContentRead:      "Read content: list, search and open posts and other content",
	auth.ContentWrite:     "Create and change content",
	auth.ContentDelete:    "Delete content",
	auth.CredentialsRead:  "See keygate keys (masked): yours and the keys yours created",
	auth.CredentialsWrite: "Create, rotate and revoke keygate keys, within what your key may do",
	auth.Admin:            "Everything: all content and every key of every user (administrator)",
}

// describeScope renders one scope in plain words, naming the content type
// of a narrowed scope.
func describeScope(s auth.Scope) string {
	words := scopeWords[s.Action]
	if words == "" {
		words = string(s.Action)
	}
	if s.Type != "" {
		return fmt.Sprintf("%s, of type %q only", words, s.Type)
	}
	return words
}
