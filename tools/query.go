package tools

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/tidwall/gjson"

	"github.com/keygate/keygate/provider"
)

const (
	maxConditions = 20
	maxInValues   = 100
)

// builtinPaths are the object attributes a filter or sort may name directly.
var builtinPaths = []string{"id", "slug", "title", "status", "version", "created_at", "modified_at"}

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
	if slices.Contains(builtinPaths, p) {
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

// parseFilter turns {"status":"published","fields.views":{"$gt":10}} into
// conditions. Keys are sorted so the same filter always gives the same query
// (and the same cursor fingerprint).
func parseFilter(raw map[string]any) ([]provider.Condition, *Problem) {
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []provider.Condition
	for _, k := range keys {
		path, ok := normalizePath(k)
		if !ok {
			return nil, &Problem{Field: "filter", Problem: fmt.Sprintf("cannot filter on %q", k),
				Fix: "use one of " + strings.Join(builtinPaths, ", ") + ", or a field path such as fields.author (letters, digits, _ and dots)"}
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
			return nil, &Problem{Field: "filter", Problem: fmt.Sprintf("%q has an empty operator object", k), Fix: `use {"$eq": value} or another operator`}
		}
		opKeys := make([]string, 0, len(ops))
		for o := range ops {
			opKeys = append(opKeys, o)
		}
		sort.Strings(opKeys)
		for _, o := range opKeys {
			op, ok := opNames[o]
			if !ok {
				return nil, &Problem{Field: "filter", Problem: fmt.Sprintf("unknown operator %q on %q", o, k), Fix: "use $eq, $ne, $in, $gt, $gte, $lt or $lte"}
			}
			if p := checkOperand(k, o, op, ops[o]); p != nil {
				return nil, p
			}
			out = append(out, provider.Condition{Path: path, Op: op, Value: ops[o]})
		}
	}
	if len(out) > maxConditions {
		return nil, &Problem{Field: "filter", Problem: fmt.Sprintf("%d conditions is too many", len(out)), Fix: fmt.Sprintf("use at most %d", maxConditions)}
	}
	return out, nil
}

func checkOperand(key, opName string, op provider.Op, v any) *Problem {
	if op != provider.OpIn {
		return checkScalar(key, opName, v)
	}
	list, ok := v.([]any)
	if !ok || len(list) == 0 || len(list) > maxInValues {
		return &Problem{Field: "filter", Problem: fmt.Sprintf("%s on %q needs a list of 1 to %d values", opName, key, maxInValues), Fix: `write {"$in": ["a", "b"]}`}
	}
	for _, e := range list {
		if p := checkScalar(key, opName, e); p != nil {
			return p
		}
	}
	return nil
}

func checkScalar(key, opName string, v any) *Problem {
	switch v.(type) {
	case string, float64, bool, json.Number, int, int64:
		return nil
	case []any:
		return &Problem{Field: "filter", Problem: fmt.Sprintf("%q was given a list", key), Fix: `to match any of several values write {"$in": [...]}`}
	}
	where := key
	if opName != "" {
		where = key + "." + opName
	}
	return &Problem{Field: "filter", Problem: fmt.Sprintf("%q needs a string, number or boolean", where), Fix: "compare with a single value"}
}

// parseSort reads "-modified_at,title" (a leading - means descending).
func parseSort(s string) ([]provider.SortKey, *Problem) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []provider.SortKey
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		desc := strings.HasPrefix(part, "-")
		path, ok := normalizePath(strings.TrimPrefix(part, "-"))
		if !ok || part == "" {
			return nil, &Problem{Field: "sort", Problem: fmt.Sprintf("cannot sort by %q", part),
				Fix: "use a comma-separated list of " + strings.Join(builtinPaths, ", ") + " or fields.<name>, each optionally prefixed with - for descending"}
		}
		out = append(out, provider.SortKey{Path: path, Desc: desc})
	}
	if len(out) > 4 {
		return nil, &Problem{Field: "sort", Problem: "too many sort keys", Fix: "use at most 4"}
	}
	return out, nil
}

// cursor is keygate's opaque paging token: the provider's own position of
// a page, how many objects of that page were already returned (a byte
// budget can stop mid-page), and a fingerprint of the query, so a cursor
// cannot silently be reused with a different filter.
type cursor struct {
	Pos  string `json:"p,omitempty"`
	Skip int    `json:"s,omitempty"`
	Fp   string `json:"q"`
}

func queryFingerprint(providerName string, q provider.ListQuery) string {
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

// encodeCursor returns "" for the start of the list, which is the end of
// paging when it is the next position.
func encodeCursor(c cursor) string {
	if c.Pos == "" && c.Skip == 0 {
		return ""
	}
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s, fp string) (cursor, *Problem) {
	if s == "" {
		return cursor{Fp: fp}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c cursor
	if err != nil || json.Unmarshal(b, &c) != nil || (c.Pos == "" && c.Skip == 0) || c.Skip < 0 || c.Skip > maxLimit {
		return cursor{}, &Problem{Field: "cursor", Problem: "not a cursor keygate issued", Fix: "pass next_cursor from the previous content_list result unchanged, or leave it out to start over"}
	}
	if c.Fp != fp {
		return cursor{}, &Problem{Field: "cursor", Problem: "the cursor belongs to a different query (type, status, filter, sort or limit changed)", Fix: "repeat the original query with this cursor, or leave cursor out to start over"}
	}
	return c, nil
}

// defaultListFields is the compact summary content_list returns without fields.
var defaultListFields = []string{"id", "slug", "title", "status", "modified_at"}

var projectionPathPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_#*?\-]+(\.[A-Za-z0-9_#*?\-]+){0,15}$`) })

// checkPaths validates gjson paths for the fields argument.
func checkPaths(paths []string) *Problem {
	for i, p := range paths {
		if len(p) > 200 || !projectionPathPattern().MatchString(p) {
			return &Problem{Field: fmt.Sprintf("fields[%d]", i), Problem: fmt.Sprintf("%q is not a field path", p),
				Fix: "use dotted paths such as title, fields.author or fields.tags.# (letters, digits, _, -, #, * and ?)"}
		}
	}
	return nil
}

// project picks paths out of an object's JSON. Each path becomes a key of
// the result; a missing path is left out rather than reported as null, so
// the model sees only what exists.
func project(obj provider.Object, paths []string) (map[string]any, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding object %s: %w", obj.ID, err)
	}
	out := make(map[string]any, len(paths))
	for _, p := range paths {
		r := gjson.GetBytes(b, p)
		if r.Exists() {
			out[p] = sanitizeValue(r.Value())
		}
	}
	return out, nil
}

// wholeObject decodes an object into a JSON value with every string
// sanitised: what content_get returns when no fields are asked for. It is
// the value json.Marshal(obj) would decode to (numbers as json.Number),
// built directly: only Fields is JSON to decode.
func wholeObject(obj provider.Object) (map[string]any, error) {
	created, err := obj.CreatedAt.MarshalText()
	if err != nil {
		return nil, fmt.Errorf("encoding object %s: %w", obj.ID, err)
	}
	modified, err := obj.ModifiedAt.MarshalText()
	if err != nil {
		return nil, fmt.Errorf("encoding object %s: %w", obj.ID, err)
	}
	var fields any
	if len(obj.Fields) > 0 {
		var ok bool
		if fields, ok = decodeSanitized(obj.Fields); !ok {
			return nil, fmt.Errorf("decoding object %s: its fields are not JSON", obj.ID)
		}
	}
	return map[string]any{
		"id":          sanitizeString(obj.ID),
		"type":        sanitizeString(obj.Type),
		"slug":        sanitizeString(obj.Slug),
		"title":       sanitizeString(obj.Title),
		"status":      sanitizeString(obj.Status),
		"version":     json.Number(strconv.FormatInt(obj.Version, 10)),
		"fields":      fields,
		"created_at":  string(created),
		"modified_at": string(modified),
	}, nil
}
