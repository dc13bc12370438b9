package shape

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// invisible reports whether r is a character that renders as nothing or
// reorders text, and so can hide instructions from the person reading what
// the model reads: Unicode tags (ASCII smuggling), bidirectional controls
// (Trojan Source), zero-width and other invisible characters, the variation
// selectors beyond the emoji ones, and C0/C1 controls other than tab and
// line breaks. The zero-width joiner and VS15/VS16 stay: emoji need them.
func Invisible(r rune) bool {
	switch {
	case r == '\t' || lineBreak(r):
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

// lineBreak reports whether some client ends a line at r: besides \n and
// \r, the vertical tab, the form feed, NEL (U+0085) and the Unicode line
// and paragraph separators (U+2028, U+2029), which JavaScript, editors and
// terminals may honour. A value that kept one could start a line of its own
// in a text rendering, and so forge a fence line.
func lineBreak(r rune) bool {
	switch r {
	case '\n', '\r', '\v', '\f', 0x85, 0x2028, 0x2029:
		return true
	}
	return false
}

// Sanitize strips invisible characters, replaces invalid UTF-8, and
// turns every line break other than \n and \r\n into \n, so what the model
// reads is what a person reviewing it would see, and every line break is
// one that OneLine and JSON escaping know.
func Sanitize(s string) string {
	if IsClean(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		switch {
		case r == '\r' && i+1 < len(s) && s[i+1] == '\n':
			b.WriteByte('\r')
		case lineBreak(r):
			b.WriteByte('\n')
		case Invisible(r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// IsClean reports whether Sanitize would leave s as it is. Printable
// ASCII, most of any content, is checked a byte at a time without decoding.
func IsClean(s string) bool {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			switch {
			case c >= 0x20 && c != 0x7F, c == '\t', c == '\n':
			case c == '\r' && i+1 < len(s) && s[i+1] == '\n':
			default:
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || Invisible(r) || lineBreak(r) {
			return false
		}
		i += size
	}
	return true
}

// OneLine renders a value for its place on a line of a text rendering:
// sanitised, with every line break shown as ⏎, so it can neither end its
// line nor start one of its own. Anything but a string is shown as JSON.
func OneLine(v any) string {
	s, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		return string(b)
	}
	return sanitizedBreaks.Replace(Sanitize(s))
}

// sanitizedBreaks shows the line breaks Sanitize leaves (it turns
// every other kind into \n).
var sanitizedBreaks = strings.NewReplacer("\r\n", " ⏎ ", "\n", " ⏎ ")

// fenceLike reports whether a line that starts with s could pass for a
// fence line ("--- data from ..." and "--- end of data ---"), even to a
// reader that ignores leading spaces.
func fenceLike(s string) bool {
	return strings.HasPrefix(strings.TrimLeftFunc(s, unicode.IsSpace), "---")
}

// LineStart renders s, already on one line (OneLine), for the start of a
// line: quoted when it would otherwise look like a fence line.
func LineStart(s string) string {
	if fenceLike(s) {
		return strconv.Quote(s)
	}
	return s
}

// MaxProviderText bounds how much of a provider's own words (an error
// message, an error code) an error result repeats.
const MaxProviderText = 500

// QuoteProviderText renders text a provider wrote for a place in keygate's
// own sentences: sanitised, cut to MaxProviderText bytes, and quoted as a
// Go string literal, which escapes quotes and every line break. It stays on
// its line inside its quotes, so it can pass neither for keygate's words
// nor for a fence line.
func QuoteProviderText(s string) string {
	s = Sanitize(s)
	if len(s) > MaxProviderText {
		s = TruncateUTF8(s, MaxProviderText) + "…"
	}
	return strconv.Quote(s)
}

// clip sanitises s onto one line and cuts it to n bytes, for text a
// provider composed that keygate cannot quote apart from its own words.
func Clip(s string, n int) string {
	s = OneLine(s)
	if len(s) > n {
		s = TruncateUTF8(s, n) + "…"
	}
	return s
}

// SanitizeValue applies Sanitize to every string, and every object
// key, of a decoded JSON value. It changes slices and maps in place, and
// copies a map only when one of its keys has to change.
func SanitizeValue(v any) any {
	switch t := v.(type) {
	case string:
		return Sanitize(t)
	case []any:
		for i := range t {
			t[i] = SanitizeValue(t[i])
		}
		return t
	case map[string]any:
		for k := range t {
			if !IsClean(k) {
				return sanitizeMapCopy(t)
			}
		}
		for k, e := range t {
			t[k] = SanitizeValue(e)
		}
		return t
	}
	return v
}

func sanitizeMapCopy(t map[string]any) map[string]any {
	out := make(map[string]any, len(t))
	for k, e := range t {
		out[Sanitize(k)] = SanitizeValue(e)
	}
	return out
}

// DecodeSanitized decodes one JSON value, with numbers as json.Number, and
// sanitises every string and object key in it. The result is what
// SanitizeValue gives for encoding/json's decoding (UseNumber), at a
// quarter of the cost: gjson walks the text without reflection, and every
// object is decoded once (content_get decodes each object it returns). ok
// is false when raw is not one JSON value.
func DecodeSanitized(raw []byte) (v any, ok bool) {
	if !gjson.ValidBytes(raw) {
		return nil, false
	}
	return sanitizedValue(gjson.ParseBytes(raw)), true
}

func sanitizedValue(r gjson.Result) any {
	switch r.Type {
	case gjson.String:
		return Sanitize(replaceInvalidBytes(r.Str))
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
			out[Sanitize(replaceInvalidBytes(k.Str))] = sanitizedValue(e)
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
