package auth

import (
	"regexp"
	"strings"
	"sync"
)

// Kind describes a credential from its shape alone.
type Kind struct {
	ID       string `json:"id"`       // stable identifier, e.g. "cosmic_pat"
	Label    string `json:"label"`    // what a person calls it
	Provider string `json:"provider"` // which provider issues it
	Prefix   string `json:"prefix"`   // the visible prefix kept when masking
}

// knownKinds is ordered: longer prefixes first, so csk_test_ wins over
// csk_. Each kind's full shape is in kindShapes, at the same index.
var knownKinds = []Kind{
	{"keygate_pat", "keygate personal access token", "local", "kg_pat_"},
	{"cosmic_pat", "Cosmic personal access token", "cosmic", "cos_"},
	{"cosmic_agent_key", "Cosmic agent key", "cosmic", "agk_"},
	{"cockpit_api_key", "Cockpit custom API key", "cockpit", "API-"},
	{"cockpit_user_key", "Cockpit user API key", "cockpit", "USR-"},
	{"cencori_secret_test", "Cencori secret key (test)", "cencori", "csk_test_"},
	{"cencori_secret", "Cencori secret key", "cencori", "csk_"},
	{"cencori_publishable_test", "Cencori publishable key (test)", "cencori", "cpk_test_"},
	{"cencori_publishable", "Cencori publishable key", "cencori", "cpk_"},
	{"cencori_agent_key", "Cencori agent key", "cencori", "cake_"},
	{"agrenting_user_token", "Agrenting user token", "agrenting", "ap_"},
}

// kindShapes are compiled on first use: a dozen patterns with counted
// repeats cost a noticeable share of a cold start, and Mask, which every
// start calls, needs only the prefixes.
var kindShapes = sync.OnceValue(func() []*regexp.Regexp {
	return []*regexp.Regexp{
		TokenPattern(),
		regexp.MustCompile(`^cos_[A-Za-z0-9_-]{8,}$`),
		regexp.MustCompile(`^agk_[A-Za-z0-9_-]{8,}$`),
		regexp.MustCompile(`^API-[0-9a-f]{40}$`),
		regexp.MustCompile(`^USR-[0-9a-f]{40}$`),
		regexp.MustCompile(`^csk_test_[a-f0-9]{48}$`),
		regexp.MustCompile(`^csk_[a-f0-9]{48}$`),
		regexp.MustCompile(`^cpk_test_[a-f0-9]{48}$`),
		regexp.MustCompile(`^cpk_[a-f0-9]{48}$`),
		// 32 hex from the dashboard's agent setup, 48 in validateApiKey
		// (docs/providers/cencori.md, "Keys").
		regexp.MustCompile(`^cake_(?:[a-f0-9]{32}|[a-f0-9]{48})$`),
		regexp.MustCompile(`^ap_[A-Za-z0-9_-]{16,}$`),
	}
})

// UnknownKind is what Classify returns for a string it does not recognise.
var UnknownKind = Kind{ID: "unknown", Label: "unrecognised credential"}

// Classify names a credential from its prefix and shape. It never checks the
// credential with anyone.
func Classify(s string) Kind {
	for i, re := range kindShapes() {
		if re.MatchString(s) {
			return knownKinds[i]
		}
	}
	return UnknownKind
}

// Mask shows a credential as its known prefix, an ellipsis and its last four
// characters ("kg_pat_…x9Qa"). Short or unknown values keep only the last
// four, and values too short to hide anything are hidden whole.
func Mask(s string) string {
	if len(s) < 12 {
		return "****"
	}
	prefix := ""
	for _, k := range knownKinds {
		if strings.HasPrefix(s, k.Prefix) {
			prefix = k.Prefix
			break
		}
	}
	return prefix + "…" + s[len(s)-4:]
}
