package textsafe

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain ASCII", "ci publisher (prod)", "ci publisher (prod)"},
		{"printable non-ASCII stays", "clé café 日本 🔑", "clé café 日本 🔑"},
		{"empty", "", ""},
		{"clear screen", "a\x1b[2Jb", `a\x1b[2Jb`},
		{"OSC 52 clipboard write", "\x1b]52;c;cHduZWQ=\x07", `\x1b]52;c;cHduZWQ=\x07`},
		{"newline, return, tab", "a\nb\rc\td", `a\nb\rc\td`},
		{"NUL and DEL", "\x00\x7f", `\x00\x7f`},
		{"C1 controls (CSI, NEL)", "\u009b2J\u0085", `\u009b2J\u0085`},
		{"bidi override and isolate", "\u202eevil\u2066x\u2069", `\u202eevil\u2066x\u2069`},
		{"zero-width", "a\u200bb\u200dc\ufeff", `a\u200bb\u200dc\ufeff`},
		{"line and paragraph separators", "a\u2028b\u2029c", `a\u2028b\u2029c`},
		{"tag characters", "x\U000e0041", `x\U000e0041`},
		{"invalid UTF-8", "a\xffb\xc3", `a\xffb\xc3`},
		{"backslash is escaped, so escapes cannot be forged", `a\x1b`, `a\\x1b`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Escape(tc.in); got != tc.want {
				t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestEscapeLeavesNothingActive runs every rune of the first planes, and
// every byte, through Escape: the result is valid UTF-8 with no control,
// format or separator character.
func TestEscapeLeavesNothingActive(t *testing.T) {
	var in strings.Builder
	for r := rune(0); r < 0x30000; r++ {
		if utf8.ValidRune(r) {
			in.WriteRune(r)
		}
	}
	for b := range 256 {
		in.WriteByte(byte(b))
	}
	in.WriteRune(0xe0001)
	out := Escape(in.String())
	if !utf8.ValidString(out) {
		t.Fatal("output is not valid UTF-8")
	}
	for _, r := range out {
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
			t.Fatalf("%U survived", r)
		}
	}
}

func BenchmarkEscapePlain(b *testing.B) {
	s := strings.Repeat("ci publisher ", 8)
	for b.Loop() {
		_ = Escape(s)
	}
}
