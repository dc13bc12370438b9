package cockpittest

import (
	"bytes"
	"fmt"
	"math"
	"sort"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// encodePHP writes v as PHP's json_encode with no flags, which is how
// Cockpit answers (lib/Lime/Response.php): slashes escaped as \/, every
// non-ASCII character as \uXXXX, an empty or list-shaped array as [...]
// (docs/providers/cockpit.md J1, J2, J4).
func encodePHP(v any) []byte {
	var b bytes.Buffer
	writePHP(&b, v)
	return b.Bytes()
}

func writePHP(b *bytes.Buffer, v any) {
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if t {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case float64:
		b.WriteString(phpNumber(t))
	case int:
		b.WriteString(strconv.Itoa(t))
	case string:
		writePHPString(b, t)
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			writePHP(b, e)
		}
		b.WriteByte(']')
	case *object:
		if isListKeys(t.keys) {
			list := make([]any, len(t.keys))
			for i, k := range t.keys {
				list[i] = t.vals[k]
			}
			writePHP(b, list)
			return
		}
		b.WriteByte('{')
		for i, k := range t.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writePHPString(b, k)
			b.WriteByte(':')
			writePHP(b, t.vals[k])
		}
		b.WriteByte('}')
	case map[string]any:
		writePHP(b, objectFromMap(t))
	case Item:
		writePHP(b, objectFromMap(t))
	default:
		writePHPString(b, fmt.Sprint(t))
	}
}

// phpNumber formats a number: integers without a fraction. Unknown: PHP
// writes a float with an integral value as 1.0 and big ones as 1.0e+25;
// the fake keeps no int/float distinction (docs "Not reproduced").
func phpNumber(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "0" // json_encode fails on these; Cockpit never stores them
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func writePHPString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '/':
			b.WriteString(`\/`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			fmt.Fprintf(b, `\u%04x`, r)
		case r < utf8.RuneSelf:
			b.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(b, `\u%04x`, r)
		}
	}
	b.WriteByte('"')
}

// objectFromMap orders a Go map's keys (sorted: Go maps have no order).
func objectFromMap(m map[string]any) *object {
	o := newObject()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		o.set(k, fromGo(m[k]))
	}
	return o
}

// fromGo converts a Go value (as tests and seeds write them) to the
// fake's representation: *object for maps, float64 for numbers.
func fromGo(v any) any {
	switch t := v.(type) {
	case Item:
		return objectFromMap(t)
	case map[string]any:
		return objectFromMap(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = fromGo(e)
		}
		return out
	case []string:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = e
		}
		return out
	case int:
		return float64(t)
	case int64:
		return float64(t)
	case float32:
		return float64(t)
	case *object:
		return t.clone()
	}
	return v
}

// toGo converts the fake's representation back to plain Go values.
func toGo(v any) any {
	switch t := v.(type) {
	case *object:
		m := make(map[string]any, len(t.keys))
		for _, k := range t.keys {
			m[k] = toGo(t.vals[k])
		}
		return m
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = toGo(e)
		}
		return out
	}
	return v
}
