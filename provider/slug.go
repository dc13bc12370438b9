package provider

import (
	"regexp"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// MaxSlugLen is the longest slug keygate accepts or derives.
const MaxSlugLen = 128

// SlugPattern is the shape of a slug: lower-case ASCII letters and digits in
// runs joined by single hyphens. It rules out path tricks ("..", "/", "%2e")
// before a slug gets anywhere near a URL or a query.
var SlugPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// Slugify derives a slug from a title: accents are dropped ("Crème" ->
// "creme"), every other run of non-alphanumerics becomes one hyphen, and the
// result is cut to MaxSlugLen at a hyphen where possible. It returns "" when
// the title has no ASCII letter or digit to keep.
func Slugify(title string) string {
	var b strings.Builder
	hyphen := false
	for _, r := range norm.NFKD.String(title) {
		switch {
		case unicode.Is(unicode.Mn, r):
			// A combining mark left by decomposition: drop it, keep the base letter.
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			if hyphen && b.Len() > 0 {
				b.WriteByte('-')
			}
			hyphen = false
			b.WriteRune(unicode.ToLower(r))
		default:
			hyphen = true
		}
	}
	s := b.String()
	if len(s) > MaxSlugLen {
		s = s[:MaxSlugLen]
		if i := strings.LastIndexByte(s, '-'); i > MaxSlugLen/2 {
			s = s[:i]
		}
		s = strings.TrimSuffix(s, "-")
	}
	return s
}
