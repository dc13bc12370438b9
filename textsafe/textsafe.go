// Package textsafe makes stored text safe to print on a terminal. Key
// names, audit targets and details come from whoever could create a key or
// call a tool; printed raw, an escape sequence in them could clear the
// screen, move the cursor, write the clipboard (OSC 52) or forge a row.
package textsafe

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s with every character a terminal would act on, or that
// would not show, spelled out: C0 controls and DEL as \xHH (\n, \r and \t
// by name), C1 controls, format characters (bidi overrides and isolates,
// zero-width characters, tag characters) and the line and paragraph
// separators U+2028 and U+2029 as \uXXXX (\UXXXXXXXX beyond the BMP), bytes
// that are not UTF-8 as \xHH, and the backslash itself as \\, so the
// escaped text cannot be mistaken for an escape. Anything else, including
// printable non-ASCII text, is left as it is.
func Escape(s string) string {
	i := needsEscape(s)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case special(r) && r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		case special(r):
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// needsEscape returns the index of the first byte Escape would change, or
// -1. Plain printable ASCII, the usual case, costs one pass.
func needsEscape(s string) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f || c == '\\' {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || special(r) {
			return i
		}
		i += size
	}
	return -1
}

// special reports whether a non-ASCII rune acts on a terminal or does not
// show: C1 controls (Cc), format characters (Cf: U+200B–U+200F, U+202A–
// U+202E, U+2060–U+2069, U+FEFF, tags, ...) and the separators (Zl, Zp).
func special(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
}
