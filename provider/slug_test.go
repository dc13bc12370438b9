package provider

import (
	"strings"
	"testing"
)

func TestSlugify(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Hello, World!", "hello-world"},
		{"  Leading and trailing  ", "leading-and-trailing"},
		{"Crème brûlée à la carte", "creme-brulee-a-la-carte"},
		{"../../etc/passwd", "etc-passwd"},
		{"%2e%2e%2f", "2e-2e-2f"},
		{"Ünïcödé", "unicode"},
		{"!!!", ""},
		{"日本語", ""},
		{"v1.2.3 release", "v1-2-3-release"},
		{"ﬁne ligature", "fine-ligature"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got := Slugify(tc.in)
			if got != tc.want {
				t.Errorf("Slugify(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got != "" && !SlugPattern.MatchString(got) {
				t.Errorf("Slugify(%q) = %q does not match SlugPattern", tc.in, got)
			}
		})
	}
}

func TestSlugifyCapsLength(t *testing.T) {
	got := Slugify(strings.Repeat("word ", 100))
	if len(got) > MaxSlugLen || !SlugPattern.MatchString(got) {
		t.Errorf("long title gave %d-byte slug %q", len(got), got)
	}
}

func TestSlugPatternRejectsPathTricks(t *testing.T) {
	for _, s := range []string{"", "..", "a/b", "a--b", "-a", "a-", "A", "a b", "a%2fb", "a\x00", "a.b"} {
		if SlugPattern.MatchString(s) {
			t.Errorf("SlugPattern accepts %q", s)
		}
	}
}
