package cockpittest

import (
	"bytes"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/keygate/keygate/provider/internal/fakekit"
)

// Cockpit 2.13.2 stores items in SQLite through MongoLite. A filter is
// turned into SQL by lib/MongoLite/QueryOptimizer.php when it can be;
// otherwise PHP evaluates it (lib/MongoLite/UtilArrayQuery.php). Sorting
// is SQLite's ORDER BY over document_key() (lib/MongoLite/Database.php).
// docs/providers/cockpit.md Q2-Q9 has the rules reproduced here.

// sqlNull stands for SQL NULL in comparisons; other SQL values are
// float64 (INTEGER or REAL) and string (TEXT).
type sqlNull struct{}

// matches reports whether doc passes criteria the way Cockpit decides it:
// in SQL when the optimizer can translate the filter (Q2), else in PHP.
func matches(doc *object, criteria *object) bool {
	if optimizable(criteria) {
		return sqlQueries.Match(doc, criteria)
	}
	return phpQueries.Match(doc, criteria)
}

func asObject(v any) (fakekit.Object, bool) {
	o, ok := v.(*object)
	return o, ok
}

// sqlQueries evaluates a filter as the SQL QueryOptimizer makes of it:
// top-level fields, every condition object an operator object, and an
// empty $or matching nothing, an empty $and everything (Q3, Q4, Q6).
var sqlQueries = &fakekit.Dialect{
	Object:              asObject,
	Lookup:              func(doc fakekit.Object, field string) (any, bool) { return doc.Get(field) },
	Operators:           func(fakekit.Object) bool { return true },
	Equal:               func(val any, exists bool, want any) bool { return newSQLField(val, exists).equals(want) },
	Ops:                 sqlOps,
	EmptyListIsCriteria: true,
}

// phpQueries evaluates a filter as UtilArrayQuery does (Q5): dotted paths
// into objects and lists, an operator object whose first key is one, and
// an empty list among $and, $or and $nor as empty criteria.
var phpQueries = &fakekit.Dialect{
	Object:              asObject,
	Lookup:              func(doc fakekit.Object, path string) (any, bool) { return nestedValue(doc, path) },
	Operators:           func(o fakekit.Object) bool { keys := o.Keys(); return len(keys) > 0 && strings.HasPrefix(keys[0], "$") },
	Equal:               phpEqual,
	Condition:           func(val any, exists bool, cond fakekit.Object) bool { return phpCondition(val, exists, cond.(*object)) },
	EmptyListIsCriteria: true,
}

// optimizable mirrors QueryOptimizer::optimize returning null (docs Q2):
// only top-level fields without dots, $and/$or of such, and the operators
// $eq $ne $gt $gte $lt $lte $in $nin $exists $size $type with scalar
// operands are turned into SQL.
func optimizable(c *object) bool {
	for _, k := range c.keys {
		v := c.vals[k]
		switch {
		case k == "$and" || k == "$or":
			list, ok := v.([]any)
			if !ok {
				return false
			}
			for _, sub := range list {
				if !optimizableSub(sub) {
					return false
				}
			}
		case strings.HasPrefix(k, "$"), strings.Contains(k, "."):
			return false
		default:
			if !optimizableCondition(v) {
				return false
			}
		}
	}
	return true
}

func optimizableSub(sub any) bool {
	switch t := sub.(type) {
	case *object:
		return optimizable(t)
	case []any:
		return len(t) == 0 // an empty array is empty criteria
	}
	return false
}

func optimizableCondition(v any) bool {
	ops, isOps := v.(*object)
	if !isOps {
		_, isList := v.([]any)
		return !isList // Unknown: an array value goes to PHP (docs Unknown)
	}
	for _, op := range ops.keys {
		arg := ops.vals[op]
		switch op {
		case "$eq", "$ne":
			if !isScalarOrNull(arg) {
				return false
			}
		case "$gt", "$gte", "$lt", "$lte":
			if !isScalar(arg) {
				return false
			}
		case "$in", "$nin":
			list, ok := arg.([]any)
			if !ok {
				return false
			}
			for _, e := range list {
				if !isScalarOrNull(e) {
					return false
				}
			}
		case "$exists":
		case "$size":
			f, ok := arg.(float64)
			if !ok || f != math.Trunc(f) {
				return false
			}
		case "$type":
			if _, ok := jsonTypes(arg); !ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func isScalar(v any) bool {
	switch v.(type) {
	case bool, float64, string:
		return true
	}
	return false
}

func isScalarOrNull(v any) bool { return v == nil || isScalar(v) }

// sqlField is a field as SQLite sees it, with no type affinity (Q3, Q4):
// json_extract's value and json_each's values.
type sqlField struct {
	raw     any
	present bool
	ext     any
	each    []any
}

func newSQLField(raw any, present bool) sqlField {
	return sqlField{raw: raw, present: present, ext: sqlValue(raw, present), each: eachValues(raw, present)}
}

func (f sqlField) isNull() bool { return f.ext == sqlNull{} }

// eq is "json_extract = q OR EXISTS (json_each ... value = q)".
func (f sqlField) eq(q any) bool {
	return sqlEq(f.ext, q) || slices.ContainsFunc(f.each, func(e any) bool { return sqlEq(e, q) })
}

// equals is {"field": want}: null matches a missing or null field.
func (f sqlField) equals(want any) bool {
	if want == nil {
		return f.isNull()
	}
	return f.eq(quoteSQL(want))
}

// in reports "x IN list" for the value or any element.
func (f sqlField) in(list []any) bool {
	return inList(f.ext, list) == 1 || slices.ContainsFunc(f.each, func(e any) bool { return inList(e, list) == 1 })
}

// sqlOp is an operator the optimizer translates, on a field.
func sqlOp(eval func(f sqlField, arg any) bool) fakekit.Op {
	return func(val any, exists bool, arg any, _ fakekit.Object) bool { return eval(newSQLField(val, exists), arg) }
}

// sqlCompareOp is $gt and friends: NULL compares to nothing.
func sqlCompareOp(holds func(c int) bool) fakekit.Op {
	return sqlOp(func(f sqlField, arg any) bool {
		c, comparable := sqlCompare(f.ext, quoteSQL(arg))
		return comparable && holds(c)
	})
}

// sqlOps are the operators of docs Q2 as SQL evaluates them.
var sqlOps = map[string]fakekit.Op{
	"$eq": sqlOp(func(f sqlField, arg any) bool { return f.equals(arg) }),
	"$ne": sqlOp(func(f sqlField, arg any) bool {
		if arg == nil {
			return !f.isNull()
		}
		q := quoteSQL(arg)
		return (sqlNe(f.ext, q) || f.isNull()) && !slices.ContainsFunc(f.each, func(e any) bool { return sqlEq(e, q) })
	}),
	"$gt":  sqlCompareOp(func(c int) bool { return c > 0 }),
	"$gte": sqlCompareOp(func(c int) bool { return c >= 0 }),
	"$lt":  sqlCompareOp(func(c int) bool { return c < 0 }),
	"$lte": sqlCompareOp(func(c int) bool { return c <= 0 }),
	"$in": sqlOp(func(f sqlField, arg any) bool {
		list := quoteList(arg.([]any))
		return len(list) > 0 && f.in(list)
	}),
	"$nin": sqlOp(func(f sqlField, arg any) bool {
		list := quoteList(arg.([]any))
		return len(list) == 0 || (inList(f.ext, list) == 0 || f.isNull()) && !slices.ContainsFunc(f.each, func(e any) bool { return inList(e, list) == 1 })
	}),
	"$exists": sqlOp(func(f sqlField, arg any) bool { return f.present == phpTruthy(arg) }),
	"$size": sqlOp(func(f sqlField, arg any) bool {
		list, isList := f.raw.([]any)
		return f.present && isList && float64(len(list)) == arg.(float64)
	}),
	"$type": sqlOp(func(f sqlField, arg any) bool {
		want, _ := jsonTypes(arg)
		return f.present && slices.Contains(want, jsonType(f.raw))
	}),
}

// sqlValue is json_extract(document, '$.field'): NULL for a missing key
// or null, 1/0 for booleans, JSON text for arrays and objects.
func sqlValue(v any, present bool) any {
	if !present {
		return sqlNull{}
	}
	switch t := v.(type) {
	case nil:
		return sqlNull{}
	case bool:
		if t {
			return 1.0
		}
		return 0.0
	case float64, string:
		return t
	}
	return string(storedJSON(v))
}

// eachValues is the value column of json_each(document, '$.field'): the
// elements of an array, the values of an object, or the value itself.
func eachValues(v any, present bool) []any {
	if !present {
		return nil
	}
	var out []any
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			out = append(out, sqlValue(e, true))
		}
	case *object:
		for _, k := range t.keys {
			out = append(out, sqlValue(t.vals[k], true))
		}
	default:
		out = append(out, sqlValue(v, true))
	}
	return out
}

// storedJSON is a value as the SQLite document holds it: PHP's json_encode
// with JSON_UNESCAPED_UNICODE (lib/MongoLite/Collection.php). Unknown:
// whether json_extract re-renders escapes (docs Unknown).
func storedJSON(v any) []byte {
	var b bytes.Buffer
	writePHP(&b, v)
	return unescapeUnicode(b.Bytes())
}

func unescapeUnicode(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u`)) {
		return b
	}
	// Re-decode each string's \u escapes except control characters.
	var out bytes.Buffer
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+5 < len(b) && b[i+1] == 'u' {
			if r, ok := hex4(string(b[i+2 : i+6])); ok && r >= 0x20 {
				if r >= 0xd800 && r < 0xdc00 && i+11 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
					if r2, ok := hex4(string(b[i+8 : i+12])); ok {
						out.WriteRune((r-0xd800)<<10 + (r2 - 0xdc00) + 0x10000)
						i += 11
						continue
					}
				}
				out.WriteRune(r)
				i += 5
				continue
			}
		}
		if b[i] == '\\' && i+1 < len(b) {
			out.WriteByte(b[i])
			i++
		}
		out.WriteByte(b[i])
	}
	return out.Bytes()
}

// quoteSQL is QueryOptimizer::quote: numbers as they are, booleans as 1/0,
// null as NULL, anything else as a TEXT literal.
func quoteSQL(v any) any {
	switch t := v.(type) {
	case nil:
		return sqlNull{}
	case bool:
		if t {
			return 1.0
		}
		return 0.0
	case float64, string:
		return t
	}
	return "Array"
}

func quoteList(list []any) []any {
	out := make([]any, len(list))
	for i, e := range list {
		out[i] = quoteSQL(e)
	}
	return out
}

// sqlCompare orders two SQL values with no affinity: NULL compares to
// nothing; numbers before text; text by bytes (BINARY collation).
func sqlCompare(a, b any) (int, bool) {
	if a == (sqlNull{}) || b == (sqlNull{}) {
		return 0, false
	}
	return sqlOrder(a, b), true
}

func sqlOrder(a, b any) int {
	fa, aNum := a.(float64)
	fb, bNum := b.(float64)
	switch {
	case aNum && bNum:
		switch {
		case fa < fb:
			return -1
		case fa > fb:
			return 1
		}
		return 0
	case aNum:
		return -1
	case bNum:
		return 1
	}
	return strings.Compare(a.(string), b.(string))
}

func sqlEq(a, b any) bool { c, ok := sqlCompare(a, b); return ok && c == 0 }
func sqlNe(a, b any) bool { c, ok := sqlCompare(a, b); return ok && c != 0 }

// inList is SQL's "x IN (list)": 1 true, 0 false, -1 NULL.
func inList(x any, list []any) int {
	if x == (sqlNull{}) {
		return -1
	}
	hasNull := false
	for _, e := range list {
		if e == (sqlNull{}) {
			hasNull = true
		} else if sqlEq(x, e) {
			return 1
		}
	}
	if hasNull {
		return -1
	}
	return 0
}

// jsonType is SQLite's json_type of a stored value. Unknown: the fake
// keeps no int/float distinction, so an integral number is 'integer'.
func jsonType(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case bool:
		if t {
			return "true"
		}
		return "false"
	case float64:
		if t == math.Trunc(t) {
			return "integer"
		}
		return "real"
	case string:
		return "text"
	case []any:
		return "array"
	}
	return "object"
}

// jsonTypes maps a $type operand as QueryOptimizer does.
func jsonTypes(arg any) ([]string, bool) {
	byName := map[string][]string{"double": {"real"}, "string": {"text"}, "object": {"object"}, "array": {"array"},
		"bool": {"true", "false"}, "boolean": {"true", "false"}, "null": {"null"}, "int": {"integer"}, "integer": {"integer"},
		"long": {"integer"}, "number": {"integer", "real"}}
	byCode := map[float64][]string{1: {"real"}, 2: {"text"}, 3: {"object"}, 4: {"array"}, 8: {"true", "false"}, 10: {"null"}, 16: {"integer"}, 18: {"integer"}}
	switch t := arg.(type) {
	case string:
		v, ok := byName[t]
		return v, ok
	case float64:
		v, ok := byCode[t]
		return v, ok
	}
	return nil, false
}

// phpCondition is UtilArrayQuery::evaluateCondition for an operator
// object, which covers the operators of docs Q5 (others match nothing,
// docs "Not reproduced"): $exists tests the key, and the other operators
// need it.
func phpCondition(val any, exists bool, ops *object) bool {
	e, has := ops.get("$exists")
	if !has {
		return phpCheck(val, ops)
	}
	if exists != phpTruthy(e) {
		return false
	}
	rest := ops.clone()
	rest.del("$exists")
	return len(rest.keys) == 0 || exists && phpCheck(val, rest)
}

// phpEqual is a field compared with a value (not an operator object) in
// PHP: null matches a missing or null field; a list field contains the
// value; a list value contains the field's.
func phpEqual(val any, exists bool, v any) bool {
	switch {
	case v == nil:
		return !exists || val == nil
	case !exists:
		return false
	}
	if list, isList := val.([]any); isList && !isArray(v) {
		return arrayContains(list, v)
	}
	if list, isList := v.([]any); isList && !isArray(val) {
		return slices.ContainsFunc(list, func(e any) bool { return phpLooseEqual(val, e) })
	}
	return phpLooseEqual(val, v)
}

func isArray(v any) bool {
	switch v.(type) {
	case []any, *object:
		return true
	}
	return false
}

func arrayContains(list []any, v any) bool {
	for _, e := range list {
		if sub, ok := e.([]any); ok {
			if arrayContains(sub, v) {
				return true
			}
		} else if phpLooseEqual(e, v) {
			return true
		}
	}
	return false
}

// nestedValue is UtilArrayQuery::getNestedValue: a dotted path walks into
// objects and, where a list lacks the key, into the list's elements.
func nestedValue(doc any, key string) (any, bool) {
	values := []any{doc}
	for _, part := range strings.Split(key, ".") {
		var next []any
		for _, v := range values {
			switch t := v.(type) {
			case *object:
				if e, ok := t.get(part); ok {
					next = append(next, e)
				}
			case []any:
				if i, err := strconv.Atoi(part); err == nil && i >= 0 && i < len(t) {
					next = append(next, t[i])
					continue
				}
				for _, el := range t {
					if o, ok := el.(*object); ok {
						if e, ok := o.get(part); ok {
							next = append(next, e)
						}
					}
				}
			}
		}
		if len(next) == 0 {
			return nil, false
		}
		values = next
	}
	if len(values) == 1 {
		return values[0], true
	}
	return values, true
}

// phpCheck is UtilArrayQuery::check: on an array, any element matching
// every operator is enough.
func phpCheck(val any, ops *object) bool {
	if list, ok := val.([]any); ok {
		for _, e := range list {
			if sub, ok := e.([]any); ok {
				if phpCheck(sub, ops) {
					return true
				}
				continue
			}
			if phpAllOps(e, ops) {
				return true
			}
		}
		return false
	}
	return phpAllOps(val, ops)
}

func phpAllOps(val any, ops *object) bool {
	for _, op := range ops.keys {
		if op == "$options" {
			continue
		}
		if !phpEvaluate(op, val, ops.vals[op], ops) {
			return false
		}
	}
	return true
}

func phpEvaluate(op string, a, b any, ops *object) bool {
	if a == nil && op != "$exists" {
		return false
	}
	switch op {
	case "$eq":
		return phpLooseEqual(a, b)
	case "$ne":
		return !phpLooseEqual(a, b)
	case "$gt", "$gte", "$lt", "$lte":
		c := phpCompareForOp(a, b)
		return op == "$gt" && c > 0 || op == "$gte" && c >= 0 || op == "$lt" && c < 0 || op == "$lte" && c <= 0
	case "$in", "$nin":
		list, ok := b.([]any)
		return ok && slices.ContainsFunc(list, func(e any) bool { return phpLooseEqual(a, e) }) == (op == "$in")
	case "$exists":
		return true
	case "$regex":
		return phpRegex(a, b, ops)
	case "$not":
		sub, ok := b.(*object)
		return ok && !phpCheck(a, sub)
	}
	return false // Unknown operator: Cockpit throws (a 500); the fake matches nothing
}

// phpRegex is $regex: a string matches the pattern, which Cockpit wraps as
// /pattern/iu when it has no slashes; an i flag or $options i ignores case.
func phpRegex(a, b any, ops *object) bool {
	pat, ok := b.(string)
	s, isStr := a.(string)
	if !ok || !isStr {
		return false
	}
	if !strings.HasPrefix(pat, "/") {
		pat = "(?i)" + pat
	} else if end := strings.LastIndex(pat, "/"); end > 0 {
		flags := pat[end+1:]
		pat = pat[1:end]
		if strings.Contains(flags, "i") {
			pat = "(?i)" + pat
		}
	}
	if o, _ := ops.get("$options"); o != nil {
		if os, _ := o.(string); strings.Contains(os, "i") && !strings.HasPrefix(pat, "(?i)") {
			pat = "(?i)" + pat
		}
	}
	re, err := regexp.Compile(pat)
	return err == nil && re.MatchString(s)
}

// phpCompareForOp is the comparison UtilArrayQuery uses for $gt and
// friends: numbers numerically, strings as PHP compares them, else the
// string forms.
func phpCompareForOp(a, b any) int {
	fa, aNum := phpNumeric(a)
	fb, bNum := phpNumeric(b)
	_, aStr := a.(string)
	_, bStr := b.(string)
	switch {
	case aNum && bNum:
		return cmpFloat(fa, fb)
	case aStr && bStr:
		return strings.Compare(a.(string), b.(string))
	}
	return strings.Compare(phpString(a), phpString(b))
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// phpNumeric is is_numeric: numbers, and strings that read as one
// (PHP 8 allows blanks around them).
func phpNumeric(v any) (float64, bool) {
	switch t := v.(type) {
	case float64:
		return t, true
	case string:
		if !numericString.MatchString(t) {
			return 0, false
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		return f, err == nil
	}
	return 0, false
}

var numericString = regexp.MustCompile(`^[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?[ \t\n\r\v\f]*$`)

func phpString(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case bool:
		if t {
			return "1"
		}
		return ""
	case float64:
		return phpNumber(t)
	case string:
		return t
	}
	return "Array"
}

func phpTruthy(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		return t
	case float64:
		return t != 0
	case string:
		return t != "" && t != "0"
	case []any:
		return len(t) > 0
	case *object:
		return len(t.keys) > 0
	}
	return true
}

// phpLooseEqual is PHP 8's ==.
func phpLooseEqual(a, b any) bool {
	switch {
	case a == nil || b == nil:
		if a == nil && b == nil {
			return true
		}
		other := a
		if a == nil {
			other = b
		}
		if _, ok := other.(string); ok {
			return other == ""
		}
		return !phpTruthy(other)
	}
	if ab, ok := a.(bool); ok {
		return ab == phpTruthy(b)
	}
	if bb, ok := b.(bool); ok {
		return bb == phpTruthy(a)
	}
	fa, aNum := a.(float64)
	fb, bNum := b.(float64)
	sa, aStr := a.(string)
	sb, bStr := b.(string)
	switch {
	case aNum && bNum:
		return fa == fb
	case aNum && bStr:
		if f, ok := phpNumeric(sb); ok {
			return fa == f
		}
		return phpNumber(fa) == sb
	case aStr && bNum:
		return phpLooseEqual(b, a)
	case aStr && bStr:
		fa, okA := phpNumeric(sa)
		fb, okB := phpNumeric(sb)
		if okA && okB {
			return fa == fb
		}
		return sa == sb
	}
	return bytes.Equal(encodePHP(a), encodePHP(b))
}

// sortKey is document_key(field, document) as SQLite sees it (docs Q7):
// a missing or null field, and false, are the empty text; true is "1"; arrays
// and objects are their json_encode text; numbers stay numbers (the PDO
// function result keeps ints and floats, and turns the rest to strings).
func sortKey(doc *object, field string) any {
	var val any
	found := true
	if strings.Contains(field, ".") {
		var cur any = doc
		for _, part := range strings.Split(field, ".") {
			var next any
			ok := false
			switch t := cur.(type) {
			case *object:
				next, ok = t.get(part)
			case []any:
				if i, err := strconv.Atoi(part); err == nil && i >= 0 && i < len(t) {
					next, ok = t[i], true
				}
			}
			if !ok || next == nil { // isset() is false for null
				found = false
				break
			}
			cur = next
		}
		val = cur
	} else {
		val, found = doc.get(field)
	}
	if !found || val == nil {
		return ""
	}
	switch t := val.(type) {
	case bool:
		if t {
			return "1"
		}
		return ""
	case float64, string:
		return t
	}
	return string(encodePHP(val))
}

type sortField struct {
	path string
	desc bool
}

// sortFields reads a sort object: direction -1 (compared loosely, so "-1"
// and true also count) is DESC, anything else ASC (lib/MongoLite/Cursor.php).
func sortFields(v any) []sortField {
	o, ok := v.(*object)
	if !ok {
		return nil
	}
	out := make([]sortField, 0, len(o.keys))
	for _, k := range o.keys {
		out = append(out, sortField{path: k, desc: phpLooseEqual(o.vals[k], -1.0)})
	}
	return out
}

func sortDocs(docs []*object, fields []sortField) {
	if len(fields) == 0 {
		return
	}
	// Unknown: SQLite's order for ties; the fake keeps insertion order.
	slices.SortStableFunc(docs, func(a, b *object) int {
		for _, f := range fields {
			if c := sqlOrder(sortKey(a, f.path), sortKey(b, f.path)); c != 0 {
				if f.desc {
					return -c
				}
				return c
			}
		}
		return 0
	})
}

// window applies limit and skip as MongoHybrid and MongoLite's Cursor do
// (docs Q8): a zero limit means none; skip counts only with a limit; a
// negative limit has no bound and a negative skip counts as zero (SQLite).
func window(docs []*object, limit, skip int) []*object {
	if limit == 0 {
		return docs
	}
	if skip > 0 {
		docs = docs[min(skip, len(docs)):]
	}
	if limit > 0 {
		docs = docs[:min(limit, len(docs))]
	}
	return docs
}

// project is MongoLite's Projection::onDocuments (docs Q9): with any
// truthy value it keeps the fields set to 1, else it drops those set to
// 0; _id is kept, first, unless _id is 0.
func project(doc *object, fields *object) *object {
	if fields == nil || len(fields.keys) == 0 {
		return doc
	}
	inclusion := hasInclusion(fields)
	out := projectObject(doc, fields, inclusion)
	if id, ok := doc.get("_id"); ok && phpTruthy(id) {
		keep := true
		if v, has := fields.get("_id"); has && v != nil {
			keep = phpTruthy(v)
		}
		if keep {
			withID := newObject()
			withID.set("_id", id)
			for _, k := range out.keys {
				withID.set(k, out.vals[k])
			}
			out = withID
		}
	}
	return out
}

func hasInclusion(fields *object) bool {
	for _, k := range fields.keys {
		switch v := fields.vals[k].(type) {
		case *object:
			if hasInclusion(v) {
				return true
			}
		default:
			if phpTruthy(v) {
				return true
			}
		}
	}
	return false
}

func projectObject(doc *object, fields *object, inclusion bool) *object {
	out := newObject()
	for _, k := range doc.keys {
		v := doc.vals[k]
		spec, has := fields.get(k)
		if sub, ok := spec.(*object); ok && isArray(v) {
			out.set(k, projectValue(v, sub, inclusion))
			continue
		}
		switch {
		case inclusion && has && phpLooseEqual(spec, 1.0):
			out.set(k, v)
		case !inclusion && (!has || spec == nil || !phpLooseEqual(spec, 0.0)):
			out.set(k, v)
		}
	}
	return out
}

// projectValue projects a nested array: an object by its keys, a list
// element by element.
func projectValue(v any, fields *object, inclusion bool) any {
	switch t := v.(type) {
	case *object:
		return projectObject(t, fields, inclusion)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = projectValue(e, fields, inclusion)
		}
		return out
	}
	return v
}
