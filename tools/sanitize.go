package tools

import (
	"strings"
	"unicode/utf8"
)

// invisible reports whether r is a character that renders as nothing or
// reorders text, and so can hide instructions from the person reading what
// the model reads: Unicode tags (ASCII smuggling), bidirectional controls
// (Trojan Source), zero-width and other invisible characters, the variation
// selectors beyond the emoji ones, and C0/C1 controls other than tab and
// line breaks. The zero-width joiner and VS15/VS16 stay: emoji need them.
func invisible(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r':
		return false
	case r < 0x20 || (r >= 0x7F && r <= 0x9F):
		return true
	case r >= 0xE0000 && r <= 0xE007F: // tags
		return true
	case r >= 0xE0100 && r <= 0xE01EF: // variation selectors 17-256
		return true
	case r >= 0xFE00 && r <= 0xFE0D: // variation selectors 1-14
		return true
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F, r == 0x061C: // bidi
		return true
	case r == 0x200B, r == 0x200C, r == 0x2060, r == 0x2061, r == 0x2062, r == 0x2063, r == 0x2064,
		r == 0xFEFF, r == 0x00AD, r == 0x180E, r == 0x034F, r == 0x115F, r == 0x1160, r == 0x3164, r == 0xFFA0:
		return true
	}
	return false
}

// sanitizeString strips invisible characters and replaces invalid UTF-8, so
// what the model reads is what a person reviewing it would see.
func sanitizeString(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || invisible(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if invisible(r) {
			return -1
		}
		return r
	}, s)
}

// sanitizeValue applies sanitizeString to every string, and every object
// key, of a decoded JSON value.
func sanitizeValue(v any) any {
	switch t := v.(type) {
	case string:
		return sanitizeString(t)
	case []any:
		for i := range t {
			t[i] = sanitizeValue(t[i])
		}
		return t
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[sanitizeString(k)] = sanitizeValue(e)
		}
		return out
	}
	return v
}
