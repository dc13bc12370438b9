package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/keygate/keygate/auth"
)

// Listing on Postgres orders and compares JSON values exactly as SQLite's
// json_extract does (docs/providers/local.md, "Order"): NULL (a missing
// field or JSON null) first, then numbers and booleans by value (true is 1,
// false 0), then strings, arrays and objects by their text, byte by byte.
// jsonb orders differently (by type first, and booleans after strings), so
// each JSON sort key is three columns of the jsonb value v:
//
//	rank  NULL, 1 (number, boolean) or 2 (string, array, object)
//	num   the number, 1 or 0 for a boolean, 0 for rank 2
//	text  the string, the JSON of an array or object, '' for rank 1
//
// compared as a row, the text in the "C" collation (bytes, as SQLite's
// BINARY). The field indexes hold the same three columns. Each is written
// out as a CASE, not as a function: Postgres would parse a SQL function's
// body again each time it plans a statement that calls it.

func pgRank(v string) string {
	return "(CASE jsonb_typeof(" + v + ") WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 WHEN 'string' THEN 2 WHEN 'array' THEN 2 WHEN 'object' THEN 2 END::smallint)"
}

func pgNum(v string) string {
	return "(CASE jsonb_typeof(" + v + ") WHEN 'number' THEN (" + v + ")::numeric WHEN 'boolean' THEN CASE WHEN (" + v +
		")::boolean THEN 1 ELSE 0 END WHEN 'string' THEN 0 WHEN 'array' THEN 0 WHEN 'object' THEN 0 END)"
}

func pgText(v string) string {
	return "(CASE jsonb_typeof(" + v + ") WHEN 'string' THEN (" + v + ") #>> '{}' WHEN 'array' THEN (" + v + ")::text WHEN 'object' THEN (" + v +
		`)::text WHEN 'number' THEN '' WHEN 'boolean' THEN '' END COLLATE "C")`
}

// pgNumParam is a numeric parameter bound as its exact decimal text.
const pgNumParam = "CAST(CAST(? AS text) AS numeric)"

// pgJSONValue turns "fields.a.b" into `fields -> 'a' -> 'b'`. The path was
// checked by jsonPath: letters, digits and _ only. Each step is a key
// lookup, which an array does not answer, as SQLite's `$."a"."b"`.
func pgJSONValue(path string) string {
	rest, _ := strings.CutPrefix(path, "fields.")
	var b strings.Builder
	b.WriteString("fields")
	for seg := range strings.SplitSeq(rest, ".") {
		b.WriteString(" -> '" + seg + "'")
	}
	return b.String()
}

// jsonKey is the sort value of a JSON field on Postgres (nil stands for a
// missing field or JSON null).
type jsonKey struct {
	rank int64
	num  string // exact decimal text
	text string
}

// pgAfter is after for a Postgres JSON key: the three columns compare as a
// row, which an index on them seeks.
func pgAfter(k sortKey, v any, plus bool) []afterPart {
	c := k.cols(plus)
	row := "ROW(" + strings.Join(c, ", ") + ")"
	switch {
	case !k.desc && v == nil:
		return []afterPart{{term: term{sql: c[0] + " > ?", args: []any{int64(0)}}}}
	case !k.desc:
		jk := v.(jsonKey)
		return []afterPart{{term: term{sql: row + " > ROW(?, " + pgNumParam + ", ?)", args: []any{jk.rank, jk.num, jk.text}}}}
	case v == nil:
		return nil // NULLs come last when descending
	}
	jk := v.(jsonKey)
	return []afterPart{
		{term: term{sql: row + " < ROW(?, " + pgNumParam + ", ?)", args: []any{jk.rank, jk.num, jk.text}}},
		{term: term{sql: c[0] + " IS NULL"}, nulls: true},
	}
}

// pgJSONCondition is a filter's comparison with the values of one JSON
// kind (jsonKinds), guarded by jsonb_typeof as SQLite's is by json_type.
// The rank and the constant column are pinned too, so that the field index
// seeks the values and, for one value, gives the listing order.
func pgJSONCondition(v, kinds, op string, n int) string {
	r, num, text, typ := pgRank(v), pgNum(v), pgText(v), "jsonb_typeof("+v+")"
	switch kinds {
	case jsonText:
		return "(" + r + " = 2 AND " + num + " = 0 AND " + typ + " = 'string' AND " + compare(text, op, n) + ")"
	case jsonNumber:
		return "(" + r + " = 1 AND " + text + " = '' AND " + typ + " = 'number' AND " + compare(num, op, n) + ")"
	}
	return "(" + r + " = 1 AND " + text + " = '' AND " + typ + " = 'boolean' AND " + compare(num, op, n) + ")"
}

// pgBuiltinCondition is a filter on a built-in attribute on Postgres. SQLite
// converts a value of another type to the column's before comparing (type
// affinity: a number compared with title is compared as its text, a string
// compared with version as its number when it is one); Postgres refuses
// to compare them, so the conversion is made here.
func pgBuiltinCondition(path, expr string, kind valueKind, op string, values []any) (string, []any, error) {
	args := make([]any, 0, len(values))
	for _, v := range values {
		b, err := bindValue(path, kind, v)
		if err != nil {
			return "", nil, err
		}
		switch kind {
		case kindText:
			args = append(args, sqliteText(b))
		case kindInt:
			if n, ok := sqliteNumber(b); ok {
				args = append(args, n)
			} else if op != "IN" {
				// A text that is no number sorts after every number.
				switch op {
				case "!=", "<", "<=":
					return "TRUE", nil, nil
				}
				return "FALSE", nil, nil
			}
		default:
			args = append(args, b)
		}
	}
	switch {
	case len(args) == 0:
		return "FALSE", nil, nil // an $in of texts that are no numbers
	case kind == kindInt:
		return compareWith(expr, op, len(args), pgNumParam), args, nil
	}
	return compare(expr, op, len(args)), args, nil
}

// sqliteText is a bound value as SQLite writes it when it compares it with
// a text column. A real is written with at least one decimal, as SQLite
// does; beyond 15 significant digits SQLite's digits may differ
// (docs/providers/local.md, "What differs").
func sqliteText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatFloat(x, 'f', 0, 64) + ".0"
		}
		s := strconv.FormatFloat(x, 'g', 15, 64)
		if f, _ := strconv.ParseFloat(s, 64); f != x {
			s = strconv.FormatFloat(x, 'g', 17, 64)
		}
		mant, exp, hasExp := strings.Cut(s, "e")
		if !strings.Contains(mant, ".") {
			mant += ".0"
		}
		if hasExp {
			return mant + "e" + exp
		}
		return mant
	}
	return fmt.Sprint(v)
}

// sqliteNumeric is the shape of a text SQLite reads as a number when it
// compares it with an integer column.
var sqliteNumeric = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$`)
})

// sqliteNumber is a bound value as the number SQLite compares with an
// integer column, in exact decimal text, or false for a text that is not a
// number (which sorts after every number).
func sqliteNumber(v any) (string, bool) {
	switch x := v.(type) {
	case int64:
		return strconv.FormatInt(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case string:
		t := strings.Trim(x, " \t\n\f\r")
		if !sqliteNumeric().MatchString(t) {
			return "", false
		}
		if n, err := strconv.ParseInt(t, 10, 64); err == nil {
			return strconv.FormatInt(n, 10), true
		}
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return "", false
		}
		return strconv.FormatFloat(f, 'g', -1, 64), true
	}
	return "", false
}

// pgIdentMax is the longest identifier Postgres keeps; it cuts longer ones.
const pgIdentMax = 63

// pgFieldIndexName is "objects:<type>:<field>" (Postgres names are case
// sensitive when quoted), or, when that is longer than Postgres keeps,
// "objects:#" and a hash of the two, which no type name can collide with.
func pgFieldIndexName(typ, field string) string {
	name := "objects:" + typ + ":" + field
	if len(name) <= pgIdentMax {
		return name
	}
	sum := sha256.Sum256([]byte(typ + ":" + field))
	return "objects:#" + hex.EncodeToString(sum[:12])
}

// pgCreateFieldIndexes is createFieldIndexes for Postgres: per declared
// field, a partial index (rank NULLS FIRST, number, text, modified_at, id,
// jsonb_typeof) over the type's objects. Unlike SQLite's it does not lead
// with type: Postgres drops from a scan's conditions those the index's
// predicate implies (type = 't'), and a scan with no condition on the first
// column could not seek the others.
func pgCreateFieldIndexes(ctx context.Context, q querier, typ string, fields []string) error {
	if !auth.TypeNamePattern().MatchString(typ) {
		return fmt.Errorf("indexing content type %q: not a type name", typ)
	}
	for _, f := range fields {
		if _, ok := jsonPath("fields." + f); !ok || strings.Contains(f, ".") {
			return fmt.Errorf("indexing field %q of content type %s: not a field name", f, typ)
		}
		v := pgJSONValue("fields." + f)
		name := pgFieldIndexName(typ, f)
		index := `CREATE INDEX IF NOT EXISTS "` + name + `" ON objects (` + pgRank(v) + ` NULLS FIRST, ` +
			pgNum(v) + `, ` + pgText(v) + `, modified_at, id, jsonb_typeof(` + v + `)) WHERE type = '` + typ + `'`
		// Postgres keeps no statistics for a partial index's columns, and
		// without them it guesses how many objects a filter matches, and
		// guesses wrong when it multiplies the guesses of the columns,
		// which always go together. These statistics give it the values
		// and how they depend on each other (and on the type).
		stats := `CREATE STATISTICS IF NOT EXISTS "` + name + `" (dependencies, mcv) ON type, ` + pgRank(v) + `, ` +
			pgNum(v) + `, ` + pgText(v) + `, jsonb_typeof(` + v + `) FROM objects`
		for _, ddl := range []string{index, stats} {
			if _, err := q.ExecContext(ctx, ddl); err != nil {
				return fmt.Errorf("indexing field %s of content type %s: %w", f, typ, err)
			}
		}
	}
	return nil
}

// pgMergedRuns appends to out the runs after pos in the longest suffix of
// the sort keys that one row comparison can seek, and returns where that
// suffix starts (afterRanges splits the keys before it as on SQLite). On
// Postgres ROW(a, b) > ROW(x, y) is one index seek over (a, b), so keys
// sharing a direction need not be a run each, and a later page is one
// statement, like the first. The suffix's keys share a direction, and
// hold no NULL at pos; only its first key may be a JSON value, whose NULLs
// come last when descending and are then a run of their own.
func (sp *listSpec) pgMergedRuns(out []keyRange, pos position, plus bool) ([]keyRange, int) {
	m := len(sp.keys)
	if pos.values[m-1] == nil {
		return out, m
	}
	s := m - 1
	for s > 0 && sp.keys[s-1].desc == sp.keys[m-1].desc && pos.values[s-1] != nil && !sp.keys[s].tuple {
		s--
	}
	prefix := make([]term, s, s+1)
	for i, k := range sp.keys[:s] {
		prefix[i] = equalTo(k, pos.values[i], plus)
	}
	var cols, marks []string
	var args []any
	for i, k := range sp.keys[s:] {
		cols = append(cols, k.cols(plus)...)
		if k.tuple {
			jk := pos.values[s+i].(jsonKey)
			marks, args = append(marks, "?", pgNumParam, "?"), append(args, jk.rank, jk.num, jk.text)
			continue
		}
		marks, args = append(marks, "?"), append(args, pos.values[s+i])
	}
	op := " > "
	if sp.keys[m-1].desc {
		op = " < "
	}
	row := term{sql: "ROW(" + strings.Join(cols, ", ") + ")" + op + "ROW(" + strings.Join(marks, ", ") + ")", args: args}
	out = append(out, keyRange{cond: allOf(append(prefix[:s:s], row)), orderFrom: s})
	if k := sp.keys[s]; k.tuple && k.desc {
		nulls := term{sql: k.cols(plus)[0] + " IS NULL"}
		out = append(out, keyRange{cond: allOf(append(prefix[:s:s], nulls)), orderFrom: s + 1})
	}
	return out, s
}
