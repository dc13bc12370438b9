package tools

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
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
	if isClean(s) {
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

// isClean reports whether sanitizeString would leave s as it is. Printable
// ASCII, most of any content, is checked a byte at a time without decoding.
func isClean(s string) bool {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || invisible(r) {
			return false
		}
		i += size
	}
	return true
}

// sanitizeValue applies sanitizeString to every string, and every object
// key, of a decoded JSON value. It changes slices and maps in place, and
// copies a map only when one of its keys has to change.
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
		for k := range t {
			if !isClean(k) {
				return sanitizeMapCopy(t)
			}
		}
		for k, e := range t {
			t[k] = sanitizeValue(e)
		}
		return t
	}
	return v
}

func sanitizeMapCopy(t map[string]any) map[string]any {
	out := make(map[string]any, len(t))
	for k, e := range t {
		out[sanitizeString(k)] = sanitizeValue(e)
	}
	return out
}

// decodeSanitized decodes one JSON value, with numbers as json.Number, and
// sanitises every string and object key in it. The result is what
// sanitizeValue gives for encoding/json's decoding (UseNumber), at a
// quarter of the cost: gjson walks the text without reflection, and every
// object is decoded once (content_get decodes each object it returns). ok
// is false when raw is not one JSON value.
func decodeSanitized(raw []byte) (v any, ok bool) {
	if !gjson.ValidBytes(raw) {
		return nil, false
	}
	return sanitizedValue(gjson.ParseBytes(raw)), true
}

func sanitizedValue(r gjson.Result) any {
	switch r.Type {
	case gjson.String:
		return sanitizeString(replaceInvalidBytes(r.Str))
	case gjson.Number:
		return json.Number(r.Raw)
	case gjson.True:
		return true
	case gjson.False:
		return false
	case gjson.JSON:
		if r.IsArray() {
			out := []any{}
			r.ForEach(func(_, e gjson.Result) bool {
				out = append(out, sanitizedValue(e))
				return true
			})
			return out
		}
		out := map[string]any{}
		r.ForEach(func(k, e gjson.Result) bool {
			out[sanitizeString(replaceInvalidBytes(k.Str))] = sanitizedValue(e)
			return true
		})
		return out
	}
	return nil
}

// replaceInvalidBytes replaces each byte of s that is not part of valid
// UTF-8 with U+FFFD, as encoding/json does when it decodes a string
// (strings.ToValidUTF8 would replace a run of them with one).
func replaceInvalidBytes(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s {
		b.WriteRune(r) // an invalid byte comes out of range as utf8.RuneError, one each
	}
	return b.String()
}
