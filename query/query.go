package query

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/keygate/keygate/provider"
)

// Page sizes content_list accepts.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

const (
	maxConditions = 20
	maxInValues   = 100
)

// BuiltinPaths are the object attributes a filter or sort may name directly.
var BuiltinPaths = []string{"id", "slug", "title", "status", "version", "created_at", "modified_at"}

// isFieldPath reports whether p is "fields." followed by one to eight
// segments of 1 to 64 letters, digits or underscores. (A regexp with these
// nested counts compiles to a large program at start-up.)
func isFieldPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "fields.")
	if !ok {
		return false
	}
	segs := strings.Split(rest, ".")
	if len(segs) > 8 {
		return false
	}
	for _, seg := range segs {
		if len(seg) < 1 || len(seg) > 64 || strings.IndexFunc(seg, func(r rune) bool {
			return !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) >= 0 {
			return false
		}
	}
	return true
}

// normalizePath maps a filter or sort key to a provider path: built-ins stay,
// "fields.x.y" stays, and a bare "author" means "fields.author".
func normalizePath(p string) (string, bool) {
	if slices.Contains(BuiltinPaths, p) {
		return p, true
	}
	if !strings.HasPrefix(p, "fields.") {
		p = "fields." + p
	}
	return p, isFieldPath(p)
}

var opNames = map[string]provider.Op{
	"$eq": provider.OpEq, "$ne": provider.OpNe, "$in": provider.OpIn,
	"$gt": provider.OpGt, "$gte": provider.OpGte, "$lt": provider.OpLt, "$lte": provider.OpLte,
}

// ParseFilter turns {"status":"published","fields.views":{"$gt":10}} into
// conditions. Keys are sorted so the same filter always gives the same query
// (and the same cursor fingerprint).
func ParseFilter(raw map[string]any) ([]provider.Condition, *Error) {
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []provider.Condition
	for _, k := range keys {
		path, ok := normalizePath(k)
		if !ok {
			return nil, &Error{Field: "filter", Problem: fmt.Sprintf("cannot filter on %q", k),
				Fix: "use one of " + strings.Join(BuiltinPaths, ", ") + ", or a field path such as fields.author (letters, digits, _ and dots)"}
		}
		v := raw[k]
		ops, isOps := v.(map[string]any)
		if !isOps {
			if p := checkScalar(k, "", v); p != nil {
				return nil, p
			}
			out = append(out, provider.Condition{Path: path, Op: provider.OpEq, Value: v})
			continue
		}
		if len(ops) == 0 {
			return nil, &Error{Field: "filter", Problem: fmt.Sprintf("%q has an empty operator object", k), Fix: `use {"$eq": value} or another operator`}
		}
		opKeys := make([]string, 0, len(ops))
		for o := range ops {
			opKeys = append(opKeys, o)
		}
		sort.Strings(opKeys)
		for _, o := range opKeys {
			op, ok := opNames[o]
			if !ok {
				return nil, &Error{Field: "filter", Problem: fmt.Sprintf("unknown operator %q on %q", o, k), Fix: "use $eq, $ne, $in, $gt, $gte, $lt or $lte"}
			}
			if p := checkOperand(k, o, op, ops[o]); p != nil {
				return nil, p
			}
			out = append(out, provider.Condition{Path: path, Op: op, Value: ops[o]})
		}
	}
	if len(out) > maxConditions {
		return nil, &Error{Field: "filter", Problem: fmt.Sprintf("%d conditions is too many", len(out)), Fix: fmt.Sprintf("use at most %d", maxConditions)}
	}
	return out, nil
}

func checkOperand(key, opName string, op provider.Op, v any) *Error {
	if op != provider.OpIn {
		return checkScalar(key, opName, v)
	}
	list, ok := v.([]any)
	if !ok || len(list) == 0 || len(list) > maxInValues {
		return &Error{Field: "filter", Problem: fmt.Sprintf("%s on %q needs a list of 1 to %d values", opName, key, maxInValues), Fix: `write {"$in": ["a", "b"]}`}
	}
	for _, e := range list {
		if p := checkScalar(key, opName, e); p != nil {
			return p
		}
	}
	return nil
}

func checkScalar(key, opName string, v any) *Error {
	switch v.(type) {
	case string, float64, bool, json.Number, int, int64:
		return nil
	case []any:
		return &Error{Field: "filter", Problem: fmt.Sprintf("%q was given a list", key), Fix: `to match any of several values write {"$in": [...]}`}
	}
	where := key
	if opName != "" {
		where = key + "." + opName
	}
	return &Error{Field: "filter", Problem: fmt.Sprintf("%q needs a string, number or boolean", where), Fix: "compare with a single value"}
}

// ParseSort reads "-modified_at,title" (a leading - means descending).
func ParseSort(s string) ([]provider.SortKey, *Error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []provider.SortKey
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		desc := strings.HasPrefix(part, "-")
		path, ok := normalizePath(strings.TrimPrefix(part, "-"))
		if !ok || part == "" {
			return nil, &Error{Field: "sort", Problem: fmt.Sprintf("cannot sort by %q", part),
				Fix: "use a comma-separated list of " + strings.Join(BuiltinPaths, ", ") + " or fields.<name>, each optionally prefixed with - for descending"}
		}
		out = append(out, provider.SortKey{Path: path, Desc: desc})
	}
	if len(out) > 4 {
		return nil, &Error{Field: "sort", Problem: "too many sort keys", Fix: "use at most 4"}
	}
	return out, nil
}

// Cursor is keygate's opaque paging token: the provider's own position of
// a page, how many objects of that page were already returned (a byte
// budget can stop mid-page), and a fingerprint of the query, so a cursor
// cannot silently be reused with a different filter.
type Cursor struct {
	Pos  string `json:"p,omitempty"`
	Skip int    `json:"s,omitempty"`
	Fp   string `json:"q"`
}

func Fingerprint(providerName string, q provider.ListQuery) string {
	b, _ := json.Marshal(struct {
		P string
		T string
		S string
		L int
		F []provider.Condition
		O []provider.SortKey
	}{providerName, q.Type, q.Status, q.Limit, q.Filter, q.Sort})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// EncodeCursor returns "" for the start of the list, which is the end of
// paging when it is the next position.
func EncodeCursor(c Cursor) string {
	if c.Pos == "" && c.Skip == 0 {
		return ""
	}
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func DecodeCursor(s, fp string) (Cursor, *Error) {
	if s == "" {
		return Cursor{Fp: fp}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c Cursor
	if err != nil || json.Unmarshal(b, &c) != nil || (c.Pos == "" && c.Skip == 0) || c.Skip < 0 || c.Skip > MaxLimit {
		return Cursor{}, &Error{Field: "cursor", Problem: "not a cursor keygate issued", Fix: "pass next_cursor from the previous content_list result unchanged, or leave it out to start over"}
	}
	if c.Fp != fp {
		return Cursor{}, &Error{Field: "cursor", Problem: "the cursor belongs to a different query (type, status, filter, sort or limit changed)", Fix: "repeat the original query with this cursor, or leave cursor out to start over"}
	}
	return c, nil
}

// DefaultListFields is the compact summary content_list returns without fields.
var DefaultListFields = []string{"id", "slug", "title", "status", "modified_at"}

var projectionPathPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_#*?\-]+(\.[A-Za-z0-9_#*?\-]+){0,15}$`) })

// CheckPaths validates gjson paths for the fields argument.
func CheckPaths(paths []string) *Error {
	for i, p := range paths {
		if len(p) > 200 || !projectionPathPattern().MatchString(p) {
			return &Error{Field: fmt.Sprintf("fields[%d]", i), Problem: fmt.Sprintf("%q is not a field path", p),
				Fix: "use dotted paths such as title, fields.author or fields.tags.# (letters, digits, _, -, #, * and ?)"}
		}
	}
	return nil
}

// Error is a query argument keygate cannot use: which field, what is wrong
// with it and how to fix it. It never quotes more of the value than the
// caller needs to find it.
type Error struct {
	Field   string
	Problem string
	Fix     string
}

func (e *Error) Error() string { return e.Field + ": " + e.Problem }
