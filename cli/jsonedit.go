package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// This file edits one member of a client's JSON config and leaves every
// other byte of the file as it was: keygate init must not reformat, reorder
// or drop what the client and the user keep there (Claude Code's
// ~/.claude.json holds much besides MCP servers; VS Code's mcp.json may
// hold comments).

// maxJSONDepth bounds the nesting a config may have: the parser recurses.
const maxJSONDepth = 256

// jsonValue is one value of the document and where it is.
type jsonValue struct {
	kind       byte // '{', '[', '"', '0' (number), 'l' (true, false, null)
	start, end int  // the value is src[start:end]
	members    []jsonMember
}

// jsonMember is one "key": value of an object.
type jsonMember struct {
	key   string
	value *jsonValue
	// keyStart is where the key's opening quote is.
	keyStart int
}

// jsonDoc is a parsed config: the original text, the same text with
// comments and trailing commas blanked out (JSONC only), and the root.
type jsonDoc struct {
	src   []byte
	clean []byte
	root  *jsonValue
}

// syntaxError says where a document stops being JSON.
type syntaxError struct {
	line, col int
	problem   string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.line, e.col, e.problem)
}

func position(src []byte, offset int) (line, col int) {
	offset = min(offset, len(src))
	line = 1 + bytes.Count(src[:offset], []byte("\n"))
	col = offset - bytes.LastIndexByte(src[:offset], '\n')
	return line, col
}

// parseJSONDoc parses src. jsonc allows // and /* */ comments and trailing
// commas, as VS Code's JSON does; without it they are errors. The root
// must be an object.
func parseJSONDoc(src []byte, jsonc bool) (*jsonDoc, error) {
	clean := src
	if jsonc {
		var err error
		if clean, err = blankJSONC(src); err != nil {
			return nil, err
		}
	}
	p := &jsonParser{src: clean}
	p.space()
	if p.pos == len(clean) {
		return nil, &syntaxError{1, 1, "the file is empty"}
	}
	root, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if p.space(); p.pos != len(clean) {
		return nil, p.fail("more text after the end of the top-level value")
	}
	if root.kind != '{' {
		return nil, p.failAt(root.start, "the top level is not a JSON object")
	}
	return &jsonDoc{src: src, clean: clean, root: root}, nil
}

// blankJSONC replaces comments and trailing commas with spaces (keeping
// line breaks), so that what is left is JSON with the same offsets.
func blankJSONC(src []byte) ([]byte, error) {
	out := bytes.Clone(src)
	lastComma := -1 // a comma not yet followed by a value
	for i := 0; i < len(out); i++ {
		switch c := out[i]; {
		case c == '"':
			j, err := stringEnd(out, i)
			if err != nil {
				return nil, err
			}
			i, lastComma = j-1, -1
		case c == '/' && i+1 < len(out) && (out[i+1] == '/' || out[i+1] == '*'):
			last, err := blankComment(src, out, i)
			if err != nil {
				return nil, err
			}
			i = last
		case c == ',':
			lastComma = i
		case c == '}' || c == ']':
			if lastComma >= 0 {
				out[lastComma] = ' '
			}
			lastComma = -1
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		default:
			lastComma = -1
		}
	}
	return out, nil
}

// blankComment blanks the comment ("//" to the end of the line, or /* to
// */) that opens at out[i], keeping line breaks, and returns the offset of
// its last byte. src is the text before blanking, for error positions.
func blankComment(src, out []byte, i int) (int, error) {
	if out[i+1] == '/' {
		for ; i < len(out) && out[i] != '\n'; i++ {
			out[i] = ' '
		}
		return i - 1, nil
	}
	end := bytes.Index(out[i+2:], []byte("*/"))
	if end < 0 {
		l, col := position(src, i)
		return 0, &syntaxError{l, col, "a /* comment is never closed"}
	}
	last := i + 2 + end + 1
	for j := i; j <= last; j++ {
		if out[j] != '\n' && out[j] != '\r' {
			out[j] = ' '
		}
	}
	return last, nil
}

// stringEnd returns the offset just past the string that opens at start.
func stringEnd(src []byte, start int) (int, error) {
	for i := start + 1; i < len(src); i++ {
		switch src[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		case '\n':
			l, c := position(src, start)
			return 0, &syntaxError{l, c, "a string runs past the end of its line"}
		}
	}
	l, c := position(src, start)
	return 0, &syntaxError{l, c, "a string is never closed"}
}

type jsonParser struct {
	src []byte
	pos int
}

func (p *jsonParser) fail(problem string) error {
	if p.pos < len(p.src) && p.src[p.pos] == '/' {
		problem += " (found a comment: this file must be plain JSON, without comments)"
	}
	return p.failAt(p.pos, problem)
}

func (p *jsonParser) failAt(offset int, problem string) error {
	l, c := position(p.src, offset)
	return &syntaxError{l, c, problem}
}

func (p *jsonParser) space() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (*jsonValue, error) {
	if depth > maxJSONDepth {
		return nil, p.fail(fmt.Sprintf("nested deeper than %d levels", maxJSONDepth))
	}
	if p.pos >= len(p.src) {
		return nil, p.fail("the file ends where a value should be")
	}
	start := p.pos
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		end, err := stringEnd(p.src, p.pos)
		if err != nil {
			return nil, err
		}
		if !json.Valid(p.src[start:end]) {
			return nil, p.fail("a string holds an invalid escape or control character")
		}
		p.pos = end
		return &jsonValue{kind: '"', start: start, end: end}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		for p.pos < len(p.src) && strings.IndexByte("+-.0123456789eE", p.src[p.pos]) >= 0 {
			p.pos++
		}
		if !json.Valid(p.src[start:p.pos]) {
			return nil, p.failAt(start, "not a valid number")
		}
		return &jsonValue{kind: '0', start: start, end: p.pos}, nil
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(p.src[p.pos:], []byte(lit)) {
				p.pos += len(lit)
				return &jsonValue{kind: 'l', start: start, end: p.pos}, nil
			}
		}
		if c == '/' {
			return nil, p.fail("expected a value")
		}
		return nil, p.fail(fmt.Sprintf("unexpected %q", rune(c)))
	}
}

func (p *jsonParser) object(depth int) (*jsonValue, error) {
	v := &jsonValue{kind: '{', start: p.pos}
	p.pos++
	for first := true; ; first = false {
		p.space()
		if p.pos < len(p.src) && p.src[p.pos] == '}' {
			if !first {
				return nil, p.fail("a comma before }, which plain JSON does not allow")
			}
			p.pos++
			v.end = p.pos
			return v, nil
		}
		if p.pos >= len(p.src) || p.src[p.pos] != '"' {
			return nil, p.fail("expected a key in double quotes")
		}
		keyStart := p.pos
		key, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		var name string
		if err := json.Unmarshal(p.src[key.start:key.end], &name); err != nil {
			return nil, p.failAt(keyStart, "a key is not a valid string")
		}
		if p.space(); p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return nil, p.fail("expected : after a key")
		}
		p.pos++
		p.space()
		val, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v.members = append(v.members, jsonMember{key: name, value: val, keyStart: keyStart})
		p.space()
		if p.pos >= len(p.src) {
			return nil, p.fail("the file ends inside an object")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			v.end = p.pos
			return v, nil
		default:
			return nil, p.fail("expected , or } after a value")
		}
	}
}

func (p *jsonParser) array(depth int) (*jsonValue, error) {
	v := &jsonValue{kind: '[', start: p.pos}
	p.pos++
	for first := true; ; first = false {
		p.space()
		if p.pos < len(p.src) && p.src[p.pos] == ']' {
			if !first {
				return nil, p.fail("a comma before ], which plain JSON does not allow")
			}
			p.pos++
			v.end = p.pos
			return v, nil
		}
		if _, err := p.value(depth + 1); err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.src) {
			return nil, p.fail("the file ends inside an array")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			v.end = p.pos
			return v, nil
		default:
			return nil, p.fail("expected , or ] after a value")
		}
	}
}

// member finds key in object v. A key given twice is refused: which one a
// client reads is not something keygate should guess.
func (d *jsonDoc) member(v *jsonValue, key string) (*jsonMember, error) {
	var found *jsonMember
	for i := range v.members {
		if v.members[i].key != key {
			continue
		}
		if found != nil {
			l, c := position(d.src, v.members[i].keyStart)
			return nil, fmt.Errorf("%q appears twice in the same object (again at line %d, column %d); remove one", key, l, c)
		}
		found = &v.members[i]
	}
	return found, nil
}

// decode is the value of v as Go data.
func (d *jsonDoc) decode(v *jsonValue) (any, error) {
	var out any
	err := json.Unmarshal(d.clean[v.start:v.end], &out)
	return out, err
}

// sameJSON reports whether the document's value v holds the same data as
// want.
func (d *jsonDoc) sameJSON(v *jsonValue, want any) bool {
	have, err := d.decode(v)
	if err != nil {
		return false
	}
	raw, err := json.Marshal(want)
	if err != nil {
		return false
	}
	var w any
	if err := json.Unmarshal(raw, &w); err != nil {
		return false
	}
	return reflect.DeepEqual(have, w)
}

// layout is how the document is indented and which line break it uses.
type layout struct {
	unit    string // one level of indentation
	newline string
}

func (d *jsonDoc) layout() layout {
	l := layout{unit: "  ", newline: "\n"}
	if bytes.Contains(d.src, []byte("\r\n")) {
		l.newline = "\r\n"
	}
	if len(d.root.members) > 0 {
		if ind, ok := d.lineIndent(d.root.members[0].keyStart); ok && ind != "" {
			l.unit = ind
		}
	}
	return l
}

// lineIndent is the whitespace before offset on its line, if nothing else
// precedes it there.
func (d *jsonDoc) lineIndent(offset int) (string, bool) {
	i := offset
	for i > 0 && (d.src[i-1] == ' ' || d.src[i-1] == '\t') {
		i--
	}
	if i > 0 && d.src[i-1] != '\n' {
		return "", false
	}
	return string(d.src[i:offset]), true
}

// indentOf is the indentation of the line that object v opens on.
func (d *jsonDoc) indentOf(v *jsonValue) string {
	i := v.start
	for i > 0 && d.src[i-1] != '\n' {
		i--
	}
	j := i
	for j < len(d.src) && (d.src[j] == ' ' || d.src[j] == '\t') {
		j++
	}
	return string(d.src[i:j])
}

// encodeJSON renders v indented for a place whose line starts with prefix,
// without escaping <, > and & (paths may hold them).
func encodeJSON(v any, prefix string, l layout) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent(prefix, l.unit)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if l.newline != "\n" {
		out = bytes.ReplaceAll(out, []byte("\n"), []byte(l.newline))
	}
	return out, nil
}

// edit is one replacement of src[start:end].
type edit struct {
	start, end int
	text       []byte
}

func applyEdits(src []byte, edits ...edit) []byte {
	out := make([]byte, 0, len(src)+256)
	at := 0
	for _, e := range edits { // in order, not overlapping
		out = append(out, src[at:e.start]...)
		out = append(out, e.text...)
		at = e.end
	}
	return append(out, src[at:]...)
}

// setMember returns the document with obj's member key set to value: the
// member's value replaced if it exists, otherwise a new member added after
// the last one, in the file's own indentation.
func (d *jsonDoc) setMember(obj *jsonValue, key string, value any) ([]byte, error) {
	l := d.layout()
	m, err := d.member(obj, key)
	if err != nil {
		return nil, err
	}
	if m != nil {
		ind, ok := d.lineIndent(m.keyStart)
		if !ok {
			ind = d.indentOf(obj) + l.unit
		}
		text, err := encodeJSON(value, ind, l)
		if err != nil {
			return nil, err
		}
		return applyEdits(d.src, edit{m.value.start, m.value.end, text}), nil
	}
	return d.addMember(obj, key, value, l)
}

func (d *jsonDoc) addMember(obj *jsonValue, key string, value any, l layout) ([]byte, error) {
	name, err := encodeJSON(key, "", l)
	if err != nil {
		return nil, err
	}
	closing := obj.end - 1 // the }
	outer := d.indentOf(obj)
	if len(obj.members) == 0 {
		ind := outer + l.unit
		text, err := encodeJSON(value, ind, l)
		if err != nil {
			return nil, err
		}
		member := ind + string(name) + ": " + string(text)
		// Whatever stood between the braces (blanks, a comment) stays.
		if lineStart, own := d.ownLine(closing); own {
			return applyEdits(d.src, edit{lineStart, lineStart, []byte(member + l.newline)}), nil
		}
		return applyEdits(d.src, edit{closing, closing, []byte(l.newline + member + l.newline + outer)}), nil
	}
	last := obj.members[len(obj.members)-1]
	ind, ok := d.lineIndent(last.keyStart)
	if !ok { // a one-line object stays on one line
		text, err := json.Marshal(value)
		if err != nil {
			return nil, err
		}
		return applyEdits(d.src, edit{last.value.end, last.value.end, []byte(", " + string(name) + ": " + string(text))}), nil
	}
	text, err := encodeJSON(value, ind, l)
	if err != nil {
		return nil, err
	}
	member := ind + string(name) + ": " + string(text)
	var edits []edit
	// A trailing comma (JSONC) already separates the new member; else one
	// goes right after the last value, before any comment on its line.
	if !d.trailingComma(last.value.end, closing) {
		edits = append(edits, edit{last.value.end, last.value.end, []byte(",")})
	}
	if lineStart, own := d.ownLine(closing); own {
		edits = append(edits, edit{lineStart, lineStart, []byte(member + l.newline)})
	} else {
		edits = append(edits, edit{closing, closing, []byte(l.newline + member + l.newline + outer)})
	}
	return applyEdits(d.src, edits...), nil
}

// trailingComma reports whether the original text has a comma between
// from and to (blanked out in the clean text).
func (d *jsonDoc) trailingComma(from, to int) bool {
	for i := from; i < to; i++ {
		if d.src[i] == ',' && d.clean[i] == ' ' {
			return true
		}
	}
	return false
}

// ownLine reports whether only blanks precede offset on its line, and
// where that line starts.
func (d *jsonDoc) ownLine(offset int) (int, bool) {
	i := offset
	for i > 0 && (d.src[i-1] == ' ' || d.src[i-1] == '\t') {
		i--
	}
	return i, i == 0 || d.src[i-1] == '\n'
}
