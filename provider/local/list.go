package local

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/provider"
)

const (
	defaultLimit = 20
	maxLimit     = 100
)

// List returns one page of objects. The cursor is the decimal offset of the
// page; the count and the page are read in one snapshot, so Total and
// NextCursor agree.
func (s *Store) List(ctx context.Context, q provider.ListQuery) (provider.Page, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)

	var page provider.Page
	var offset int
	err := s.inReadTx(ctx, func(tx *sql.Tx) error {
		if _, err := typeFields(ctx, tx, q.Type); err != nil {
			return err
		}
		lq, err := buildList(q)
		if err != nil {
			return err
		}
		if offset, err = parseCursor(q.Cursor); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, lq.count, lq.args...).Scan(&page.Total); err != nil {
			return fmt.Errorf("counting %s objects: %w", q.Type, err)
		}
		page.Objects, err = queryObjects(ctx, tx, lq.page, append(lq.pageArgs(), limit, offset)...)
		if err != nil {
			return fmt.Errorf("listing %s objects: %w", q.Type, err)
		}
		return nil
	})
	if err != nil {
		return provider.Page{}, err
	}
	if next := offset + len(page.Objects); next < page.Total && len(page.Objects) > 0 {
		page.NextCursor = strconv.Itoa(next)
	}
	return page, nil
}

func parseCursor(c string) (int, error) {
	if c == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(c)
	if err != nil || n < 0 {
		return 0, &provider.FieldError{Field: "cursor", Problem: "is not a cursor from this store", Fix: "pass next_cursor from the previous page, or leave cursor out to start over"}
	}
	return n, nil
}

func queryObjects(ctx context.Context, q querier, query string, args ...any) ([]provider.Object, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []provider.Object
	for rows.Next() {
		o, err := scanObject(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// listQuery is the SQL of one List call. The SQL text is assembled only from
// fixed fragments and "?" placeholders; every value the caller gave, field
// paths included, is a bound argument.
type listQuery struct {
	count     string
	page      string // ends in LIMIT ? OFFSET ?
	args      []any  // for the WHERE clause
	orderArgs []any  // for the ORDER BY clause
}

func (lq listQuery) pageArgs() []any {
	return append(append([]any{}, lq.args...), lq.orderArgs...)
}

func buildList(q provider.ListQuery) (listQuery, error) {
	where := []string{"type = ?"}
	args := []any{q.Type}
	if q.Status != "" {
		where, args = append(where, "status = ?"), append(args, q.Status)
	}
	for _, c := range q.Filter {
		sqlText, cargs, err := condition(c)
		if err != nil {
			return listQuery{}, err
		}
		where, args = append(where, sqlText), append(args, cargs...)
	}
	order, orderArgs, err := orderBy(q.Sort)
	if err != nil {
		return listQuery{}, err
	}
	w := strings.Join(where, " AND ")
	return listQuery{
		count:     "SELECT COUNT(*) FROM objects WHERE " + w,
		page:      "SELECT " + objectColumns + " FROM objects WHERE " + w + " ORDER BY " + order + " LIMIT ? OFFSET ?",
		args:      args,
		orderArgs: orderArgs,
	}, nil
}

// valueKind says how a path's values are stored, and so how a filter value
// is bound against it.
type valueKind int

const (
	kindText valueKind = iota
	kindInt
	kindTime
	kindJSON
)

// pathExpr maps a filter or sort path to an SQL expression over objects:
// a built-in column, or json_extract of the fields with the JSON path bound
// as an argument.
func pathExpr(path, field string) (string, []any, valueKind, error) {
	switch path {
	case "id", "slug", "title", "status":
		return path, nil, kindText, nil
	case "version":
		return path, nil, kindInt, nil
	case "created_at", "modified_at":
		return path, nil, kindTime, nil
	}
	jp, ok := jsonPath(path)
	if !ok {
		return "", nil, 0, &provider.FieldError{Field: field, Problem: fmt.Sprintf("cannot use %q", path),
			Fix: "use id, slug, title, status, version, created_at, modified_at, or fields.<name> (letters, digits and _, joined by dots)"}
	}
	return "json_extract(fields, ?)", []any{jp}, kindJSON, nil
}

// jsonPath turns "fields.a.b" into the SQLite JSON path `$."a"."b"`. Each
// segment is checked, so the quotes cannot be broken out of.
func jsonPath(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "fields.")
	if !ok {
		return "", false
	}
	var b strings.Builder
	b.WriteString("$")
	for seg := range strings.SplitSeq(rest, ".") {
		if !fieldNamePattern().MatchString(seg) {
			return "", false
		}
		b.WriteString(`."` + seg + `"`)
	}
	return b.String(), true
}

// condition renders one filter condition. Comparisons follow SQL: a missing
// field is NULL and matches no operator, $ne included. A value in the fields
// is compared only with filter values of its own JSON kind, so {"$gt": 100}
// never matches the string "abc", and "7" never equals 7.
func condition(c provider.Condition) (string, []any, error) {
	expr, pathArgs, kind, err := pathExpr(c.Path, "filter")
	if err != nil {
		return "", nil, err
	}
	op, values, err := operands(c)
	if err != nil {
		return "", nil, err
	}
	if kind != kindJSON {
		args := make([]any, 0, len(values))
		for _, v := range values {
			b, err := bindValue(c.Path, kind, v)
			if err != nil {
				return "", nil, err
			}
			args = append(args, b)
		}
		return compare(expr, op, len(args)), args, nil
	}
	// Group the values by the JSON kinds they may equal, and guard each
	// group's comparison with json_type.
	groups := map[string][]any{}
	for _, v := range values {
		kinds, ok := jsonKinds(v)
		b, err := bindValue(c.Path, kind, v)
		if err != nil || !ok {
			return "", nil, errOrBadValue(err, c.Path)
		}
		groups[kinds] = append(groups[kinds], b)
	}
	var parts []string
	var args []any
	for _, kinds := range []string{jsonText, jsonNumber, jsonBool} {
		vals := groups[kinds]
		if len(vals) == 0 {
			continue
		}
		parts = append(parts, "(json_type(fields, ?) IN ("+kinds+") AND "+compare(expr, op, len(vals))+")")
		args = append(append(append(args, pathArgs...), pathArgs...), vals...)
	}
	return "(" + strings.Join(parts, " OR ") + ")", args, nil
}

// The json_type names a filter value of each Go kind may match.
const (
	jsonText   = "'text'"
	jsonNumber = "'integer', 'real'"
	jsonBool   = "'true', 'false'"
)

func jsonKinds(v any) (string, bool) {
	switch v.(type) {
	case string:
		return jsonText, true
	case float64, int, int64, json.Number:
		return jsonNumber, true
	case bool:
		return jsonBool, true
	}
	return "", false
}

// operands returns the SQL operator of c and its values: one, or the list
// of $in.
func operands(c provider.Condition) (string, []any, error) {
	if c.Op == provider.OpIn {
		list, ok := c.Value.([]any)
		if !ok || len(list) == 0 {
			return "", nil, &provider.FieldError{Field: "filter", Problem: fmt.Sprintf("$in on %q needs a non-empty list", c.Path), Fix: `write {"$in": ["a", "b"]}`}
		}
		return "IN", list, nil
	}
	op, ok := comparison(c.Op)
	if !ok {
		return "", nil, &provider.FieldError{Field: "filter", Problem: fmt.Sprintf("unknown operator %q on %q", c.Op, c.Path), Fix: "use $eq, $ne, $in, $gt, $gte, $lt or $lte"}
	}
	return op, []any{c.Value}, nil
}

// compare renders expr against n placeholders.
func compare(expr, op string, n int) string {
	if op == "IN" {
		return expr + " IN (" + strings.Repeat("?, ", n-1) + "?)"
	}
	return expr + " " + op + " ?"
}

func comparison(op provider.Op) (string, bool) {
	switch op {
	case provider.OpEq:
		return "=", true
	case provider.OpNe:
		return "!=", true
	case provider.OpGt:
		return ">", true
	case provider.OpGte:
		return ">=", true
	case provider.OpLt:
		return "<", true
	case provider.OpLte:
		return "<=", true
	}
	return "", false
}

// bindValue converts a filter value into what SQLite compares it with.
// Booleans become 1 and 0, which is what json_extract yields for true and
// false; times become the stored nanoseconds.
func bindValue(path string, kind valueKind, v any) (any, error) {
	if kind == kindTime {
		return bindTime(path, v)
	}
	switch x := v.(type) {
	case string, float64, int64:
		return x, nil
	case int:
		return int64(x), nil
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n, nil
		}
		if f, err := x.Float64(); err == nil {
			return f, nil
		}
	}
	return nil, errOrBadValue(nil, path)
}

// errOrBadValue returns err, or when there is none the error for a filter
// value that is not a string, number or boolean.
func errOrBadValue(err error, path string) error {
	if err != nil {
		return err
	}
	return &provider.FieldError{Field: "filter", Problem: fmt.Sprintf("%q needs a string, number or boolean", path), Fix: "compare with a single value"}
}

// bindTime accepts an RFC 3339 time or a YYYY-MM-DD date, which stands for
// midnight UTC at the start of that day. Times are stored as Unix
// nanoseconds, which reach only the years 1678 to 2262: a time beyond that
// range compares as the furthest representable instant, so
// {"$gt": "9999-12-31T23:59:59Z"} matches nothing instead of wrapping round
// and matching everything.
func bindTime(path string, v any) (any, error) {
	if s, ok := v.(string); ok {
		for _, layout := range []string{time.RFC3339, time.DateOnly} {
			if t, err := time.Parse(layout, s); err == nil {
				return clampedNanos(t), nil
			}
		}
	}
	return nil, &provider.FieldError{Field: "filter", Problem: fmt.Sprintf("%q needs an RFC 3339 time or a YYYY-MM-DD date", path),
		Fix: `write e.g. "2026-01-31" or "2026-01-31T09:30:00Z"`}
}

// Bounds of what a Unix nanosecond count can hold.
var (
	minNanosTime = time.Unix(0, math.MinInt64).UTC()
	maxNanosTime = time.Unix(0, math.MaxInt64).UTC()
)

func clampedNanos(t time.Time) int64 {
	switch {
	case t.Before(minNanosTime):
		return math.MinInt64
	case t.After(maxNanosTime):
		return math.MaxInt64
	}
	return toNanos(t)
}

// orderBy renders the sort keys, newest modified first by default. id is
// always the last key, in the direction of the one before it, so the order
// is total (pages never overlap) and the default order can be read straight
// off an index.
func orderBy(keys []provider.SortKey) (string, []any, error) {
	if len(keys) == 0 {
		keys = []provider.SortKey{{Path: "modified_at", Desc: true}}
	}
	var parts []string
	var args []any
	hasID := false
	dir := "ASC"
	for _, k := range keys {
		expr, kargs, _, err := pathExpr(k.Path, "sort")
		if err != nil {
			return "", nil, err
		}
		dir = "ASC"
		if k.Desc {
			dir = "DESC"
		}
		hasID = hasID || k.Path == "id"
		parts, args = append(parts, expr+" "+dir), append(args, kargs...)
	}
	if !hasID {
		parts = append(parts, "id "+dir)
	}
	return strings.Join(parts, ", "), args, nil
}
