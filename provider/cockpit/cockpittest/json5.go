package cockpittest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// object is a JSON object that keeps its key order, as a PHP array does:
// Cockpit's answers list keys in the order the document was built
// (docs/providers/cockpit.md J3), and a sort object's key order is the
// sort priority (Q7).
type object struct {
	keys []string
	vals map[string]any
}

func newObject() *object { return &object{vals: map[string]any{}} }

func (o *object) get(k string) (any, bool) {
	v, ok := o.vals[k]
	return v, ok
}

// Keys and Get make an object a fakekit.Object, which the query matcher
// reads.
func (o *object) Keys() []string { return o.keys }

// Get is get.
func (o *object) Get(k string) (any, bool) { return o.get(k) }

// set replaces a key in place or appends it, as assigning to a PHP array
// key does.
func (o *object) set(k string, v any) {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

func (o *object) del(k string) {
	if _, ok := o.vals[k]; !ok {
		return
	}
	delete(o.vals, k)
	for i, kk := range o.keys {
		if kk == k {
			o.keys = append(o.keys[:i:i], o.keys[i+1:]...)
			break
		}
	}
}

// clone copies o deeply.
func (o *object) clone() *object { return cloneValue(o).(*object) }

func cloneValue(v any) any {
	switch t := v.(type) {
	case *object:
		c := &object{keys: append([]string(nil), t.keys...), vals: make(map[string]any, len(t.vals))}
		for k, vv := range t.vals {
			c.vals[k] = cloneValue(vv)
		}
		return c
	case []any:
		c := make([]any, len(t))
		for i, e := range t {
			c[i] = cloneValue(e)
		}
		return c
	}
	return v
}

// merge is PHP's array_merge for string keys: b's values replace a's in
// place, b's new keys come after a's.
func merge(a, b *object) *object {
	out := a.clone()
	for _, k := range b.keys {
		out.set(k, cloneValue(b.vals[k]))
	}
	return out
}

// phpArray turns decoded JSON into what PHP's json_decode($s, true) holds:
// an object with no keys, or with the keys "0".."n-1" in order, is a list
// (PHP cannot tell them apart), so {} comes back as [] (docs J4).
func phpArray(v any) any {
	switch t := v.(type) {
	case *object:
		if isListKeys(t.keys) {
			out := make([]any, len(t.keys))
			for i, k := range t.keys {
				out[i] = phpArray(t.vals[k])
			}
			return out
		}
		for _, k := range t.keys {
			t.vals[k] = phpArray(t.vals[k])
		}
		return t
	case []any:
		for i := range t {
			t[i] = phpArray(t[i])
		}
	}
	return v
}

func isListKeys(keys []string) bool {
	for i, k := range keys {
		if k != strconv.Itoa(i) {
			return false
		}
	}
	return true
}

// decodeJSON parses s as PHP's json_decode (strict JSON) or, with json5,
// as Cockpit's json5_decode (colinodell/json5: comments, unquoted keys,
// single quotes, trailing commas, hex, Infinity and NaN; docs Q1). Objects
// come back as *object, numbers as float64.
func decodeJSON(s string, json5 bool) (any, error) {
	v, err := parseJSON(s, json5)
	if err != nil {
		return nil, err
	}
	return phpArray(v), nil
}

// parseJSON parses s keeping objects as objects (no PHP array rules).
func parseJSON(s string, json5 bool) (any, error) {
	d := &decoder{s: s, json5: json5}
	d.white()
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	d.white()
	if d.i < len(d.s) {
		return nil, d.fail("trailing data")
	}
	return v, nil
}

type decoder struct {
	s     string
	i     int
	json5 bool
}

const maxDepth = 512 // PHP's json_decode default

func (d *decoder) fail(what string) error { return fmt.Errorf("%s at offset %d", what, d.i) }

func (d *decoder) peek() byte {
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

func (d *decoder) white() {
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			d.i++
		case d.json5 && (c == '\v' || c == '\f'):
			d.i++
		case d.json5 && strings.HasPrefix(d.s[d.i:], "\u00a0"):
			d.i += 2
		case d.json5 && strings.HasPrefix(d.s[d.i:], "//"):
			end := strings.IndexAny(d.s[d.i:], "\r\n")
			if end < 0 {
				d.i = len(d.s)
			} else {
				d.i += end + 1
			}
		case d.json5 && strings.HasPrefix(d.s[d.i:], "/*"):
			end := strings.Index(d.s[d.i+2:], "*/")
			if end < 0 {
				d.i = len(d.s) + 1 // unterminated: value() fails on EOF
				return
			}
			d.i += end + 4
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, d.fail("too deep")
	}
	d.white()
	if d.i >= len(d.s) {
		return nil, d.fail("unexpected end")
	}
	switch c := d.s[d.i]; {
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"' || d.json5 && c == '\'':
		return d.str()
	case c == '-' || c >= '0' && c <= '9' || d.json5 && (c == '+' || c == '.' || c == 'I' || c == 'N'):
		return d.number()
	}
	for word, v := range map[string]any{"true": true, "false": false, "null": nil} {
		if strings.HasPrefix(d.s[d.i:], word) {
			d.i += len(word)
			return v, nil
		}
	}
	return nil, d.fail("unexpected character")
}

func (d *decoder) object(depth int) (any, error) {
	o := newObject()
	d.i++ // {
	d.white()
	if d.peek() == '}' {
		d.i++
		return o, nil
	}
	for {
		d.white()
		var key string
		switch c := d.peek(); {
		case c == '"' || d.json5 && c == '\'':
			k, err := d.str()
			if err != nil {
				return nil, err
			}
			key = k.(string)
		case d.json5:
			k, err := d.identifier()
			if err != nil {
				return nil, err
			}
			key = k
		default:
			return nil, d.fail("expected a key")
		}
		d.white()
		if d.peek() != ':' {
			return nil, d.fail("expected ':'")
		}
		d.i++
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		o.set(key, v)
		d.white()
		switch d.peek() {
		case ',':
			d.i++
			d.white()
			if d.json5 && d.peek() == '}' { // trailing comma
				d.i++
				return o, nil
			}
		case '}':
			d.i++
			return o, nil
		default:
			return nil, d.fail("expected ',' or '}'")
		}
	}
}

func (d *decoder) array(depth int) (any, error) {
	out := []any{}
	d.i++ // [
	d.white()
	if d.peek() == ']' {
		d.i++
		return out, nil
	}
	for {
		d.white()
		if d.peek() == ',' {
			return nil, d.fail("missing array element")
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		d.white()
		switch d.peek() {
		case ',':
			d.i++
			d.white()
			if d.json5 && d.peek() == ']' {
				d.i++
				return out, nil
			}
		case ']':
			d.i++
			return out, nil
		default:
			return nil, d.fail("expected ',' or ']'")
		}
	}
}

// identifier reads an unquoted JSON5 key: an ECMAScript identifier.
func (d *decoder) identifier() (string, error) {
	start := d.i
	var b strings.Builder
	for d.i < len(d.s) {
		if strings.HasPrefix(d.s[d.i:], `\u`) {
			r, ok := hex4(d.s[d.i+2:])
			if !ok {
				return "", d.fail("bad escape in key")
			}
			b.WriteRune(r)
			d.i += 6
			continue
		}
		r, n := utf8.DecodeRuneInString(d.s[d.i:])
		first := d.i == start
		if !(r == '$' || r == '_' || unicode.IsLetter(r) || unicode.Is(unicode.Nl, r) ||
			!first && (unicode.In(r, unicode.Mn, unicode.Mc, unicode.Nd, unicode.Pc) || r == '\u200c' || r == '\u200d')) {
			break
		}
		b.WriteRune(r)
		d.i += n
	}
	if d.i == start {
		return "", d.fail("bad identifier as unquoted key")
	}
	return b.String(), nil
}

func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(s[:4], 16, 16)
	return rune(n), err == nil
}

func (d *decoder) str() (any, error) {
	delim := d.s[d.i]
	d.i++
	var b strings.Builder
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == delim:
			d.i++
			return b.String(), nil
		case c == '\n' || !d.json5 && c < 0x20:
			return nil, d.fail("control character in string")
		case c != '\\':
			b.WriteByte(c)
			d.i++
			continue
		}
		d.i++ // backslash
		if d.i >= len(d.s) {
			break
		}
		if err := d.escape(&b); err != nil {
			return nil, err
		}
	}
	return nil, d.fail("unterminated string")
}

// simpleEscapes are the one-character escapes JSON has.
var simpleEscapes = map[byte]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// escape reads the escape after a backslash into b: JSON's, and JSON5's
// \' and escaped line break.
func (d *decoder) escape(b *strings.Builder) error {
	e := d.s[d.i]
	d.i++
	if c, ok := simpleEscapes[e]; ok {
		b.WriteByte(c)
		return nil
	}
	switch {
	case e == '\'' && d.json5:
		b.WriteByte(e)
	case e == '\n' && d.json5:
	case e == 'u':
		r, ok := hex4(d.s[d.i:])
		if !ok {
			return d.fail("bad \\u escape")
		}
		d.i += 4
		if utf16.IsSurrogate(r) && strings.HasPrefix(d.s[d.i:], `\u`) {
			if r2, ok := hex4(d.s[d.i+2:]); ok {
				if p := utf16.DecodeRune(r, r2); p != utf8.RuneError {
					r = p
					d.i += 6
				}
			}
		}
		b.WriteRune(r)
	default:
		return d.fail("bad escape")
	}
	return nil
}

func (d *decoder) number() (any, error) {
	start := d.i
	if d.json5 {
		if v, done, err := d.json5Number(); done {
			return v, err
		}
	} else if d.peek() == '-' {
		d.i++
	}
	digits := d.i
	d.skipDigits(true)
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		d.i++
		if d.i < len(d.s) && (d.s[d.i] == '+' || d.s[d.i] == '-') {
			d.i++
		}
		d.skipDigits(false)
	}
	text := d.s[start:d.i]
	if !d.json5 && !strictNumber(d.s[digits:d.i]) {
		return nil, d.fail("bad number")
	}
	f, err := strconv.ParseFloat(strings.TrimPrefix(text, "+"), 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, d.fail("bad number")
	}
	return f, nil
}

// json5Number reads JSON5's sign and, after it, the numbers JSON lacks
// (Infinity, NaN, hex); done is false when a decimal number follows, to
// be read as JSON's. A leading zero before a digit is an octal literal,
// which JSON5 refuses.
func (d *decoder) json5Number() (v any, done bool, err error) {
	sign := 1.0
	switch d.peek() {
	case '-':
		sign = -1
		d.i++
	case '+':
		d.i++
	}
	rest := d.s[d.i:]
	switch {
	case strings.HasPrefix(rest, "Infinity"):
		d.i += len("Infinity")
		return sign * math.Inf(1), true, nil
	case strings.HasPrefix(rest, "NaN"):
		d.i += len("NaN")
		return math.NaN(), true, nil
	case strings.HasPrefix(rest, "0x") || strings.HasPrefix(rest, "0X"):
		d.i += 2
		h := d.i
		for d.i < len(d.s) && strings.IndexByte("0123456789abcdefABCDEF", d.s[d.i]) >= 0 {
			d.i++
		}
		n, err := strconv.ParseUint(d.s[h:d.i], 16, 64)
		if err != nil {
			return nil, true, d.fail("bad hex number")
		}
		return sign * float64(n), true, nil
	case d.peek() == '0' && d.i+1 < len(d.s) && d.s[d.i+1] >= '0' && d.s[d.i+1] <= '9':
		return nil, true, d.fail("octal literal")
	}
	return nil, false, nil
}

// skipDigits moves past digits (and points, with dots).
func (d *decoder) skipDigits(dots bool) {
	for d.i < len(d.s) && (d.s[d.i] >= '0' && d.s[d.i] <= '9' || dots && d.s[d.i] == '.') {
		d.i++
	}
}

// strictNumber checks JSON's number grammar after the minus sign: an
// integer without leading zeros, then an optional fraction and exponent,
// each with at least one digit.
func strictNumber(s string) bool {
	i := 0
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = afterDigits(s, i)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		if i = afterDigits(s, i+1); s[i-1] == '.' {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		n := i
		if i = afterDigits(s, i); i == n {
			return false
		}
	}
	return i == len(s)
}

// afterDigits is the index after the digits of s from i.
func afterDigits(s string, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
