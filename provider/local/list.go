package local

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/provider"
)

// How List pages, counts and uses indexes is described, with the SQLite
// behaviour it relies on, in docs/providers/local.md.

const (
	defaultLimit = 20
	maxLimit     = 100
	// totalCap is the most matches List counts. Up to it Total is exact;
	// beyond it Total is totalCap and TotalAtLeast is set.
	totalCap = 1000
)

// listPlan is how a page is read.
type listPlan int

const (
	planAuto listPlan = iota
	// planOrdered reads the sort order off an index. A later page is a
	// sequence of range queries (afterRanges), each an index seek.
	planOrdered
	// planSeek finds the few matches through the filter's index and sorts
	// them. The sort expressions are written +expr so that the planner
	// cannot walk the sort key's index instead and test every row it meets.
	planSeek
	// planScan is one query holding the whole position predicate: no index
	// gives the order, so SQLite sorts whatever the filter leaves.
	planScan
	// planProbe is planOrdered for many matches of conditions that pin one
	// indexed path to one value, on another path's order: each object met
	// in order is tested by a lookup of its (modified_at, id) in the
	// filter's index, which ends in them too, instead of by reading the
	// object and its JSON.
	planProbe
)

// listOptions are List's internals that tests vary. The zero value is what
// List uses.
type listOptions struct {
	totalCap     int      // 0: totalCap
	maxCursorLen int      // 0: maxCursorLen
	plan         listPlan // planAuto: chosen per query
	// trace, when set, sees every statement List runs on objects.
	trace func(query string, args []any)
}

// List returns one page of objects. A cursor is the position after the
// last object of the previous page, so a page is found with an index seek
// whatever its depth, and objects written between pages neither shift nor
// repeat the others. The count and the page are read in one snapshot.
func (s *Store) List(ctx context.Context, q provider.ListQuery) (provider.Page, error) {
	return s.list(ctx, q, listOptions{})
}

func (s *Store) list(ctx context.Context, q provider.ListQuery, opts listOptions) (provider.Page, error) {
	if opts.totalCap <= 0 {
		opts.totalCap = totalCap
	}
	if opts.maxCursorLen <= 0 {
		opts.maxCursorLen = maxCursorLen
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)

	var page provider.Page
	err := s.inReadTx(ctx, func(tx querier) error {
		declared, err := typeFields(ctx, tx, q.Type)
		if err != nil {
			return err
		}
		sp, err := buildList(s.d, q, declared)
		if err != nil {
			return err
		}
		key, err := s.cursorKey(ctx, tx)
		if err != nil {
			return err
		}
		r := listRun{ctx: ctx, tx: tx, sp: sp, opts: opts}
		pos, err := r.position(q.Cursor, key)
		if err != nil {
			return err
		}
		count := -1
		if sp.countable {
			if count, err = r.count(opts.totalCap + 1); err != nil {
				return fmt.Errorf("counting %s objects: %w", q.Type, err)
			}
		}
		var rows []listRow
		if count != 0 {
			plan := opts.plan
			if plan == planAuto {
				plan = sp.choosePlan(count, opts.totalCap)
			}
			if rows, err = r.page(plan, pos, limit+1); err != nil {
				return fmt.Errorf("listing %s objects: %w", q.Type, err)
			}
		}
		page = r.makePage(rows, limit, count, q.Cursor != "", key)
		return nil
	})
	if err != nil {
		return provider.Page{}, err
	}
	return page, nil
}

// makePage cuts the rows read (one more than the page, to learn whether
// another page follows) into the page, its cursor and its total.
func (r listRun) makePage(rows []listRow, limit, count int, resumed bool, key []byte) provider.Page {
	var page provider.Page
	hasNext := len(rows) > limit
	if hasNext {
		page.NextCursor = encodeCursor(key, r.sp, rows[limit-1], rows[limit], r.opts.maxCursorLen)
		rows = rows[:limit]
	}
	page.Objects = make([]provider.Object, len(rows))
	for i, row := range rows {
		page.Objects[i] = row.obj
	}
	switch {
	case count > r.opts.totalCap:
		page.Total, page.TotalAtLeast = r.opts.totalCap, true
	case count >= 0:
		page.Total = count
	case !resumed && !hasNext:
		// The first page holds every match.
		page.Total = len(rows)
	default:
		// Counting would test every row; say only what this page shows.
		page.Total, page.TotalAtLeast = len(rows), true
		if hasNext {
			page.Total++
		}
	}
	return page
}

// listSpec is the SQL of one List call. The SQL text is assembled only from
// fixed fragments, JSON paths checked by jsonPath, and "?" placeholders;
// every value the caller gave is a bound argument.
type listSpec struct {
	d     *dialect
	typ   string
	where string // type, status and filters
	args  []any
	// probeWhere is where with the conditions tested in an EXISTS on the
	// filter's index (planProbe); the listing's table is named o.
	probeWhere string
	probeArgs  []any
	keys       []sortKey
	// countable: one index holds every condition as a constraint, so
	// counting the matches reads only that index and stops at the cap.
	countable bool
	// filtered: there is a condition besides the type.
	filtered bool
	// filterGivesOrder: the index the count reads also gives the sort
	// order, so seeking the matches is reading them in order.
	filterGivesOrder bool
	// pinned: every condition is on one path, an $eq or an $in of one
	// value, so its index finds an object by (value, modified_at, id).
	pinned bool
	// ordered: an index gives the order of the first sort key.
	ordered bool
}

// sortKey is one ORDER BY term.
type sortKey struct {
	path string
	// expr is the SQL of the value; for a Postgres JSON key (tuple), the
	// jsonb value, which orders as its three columns (pgjson.go).
	expr  string
	kind  valueKind
	desc  bool
	pg    bool
	tuple bool
}

func (k sortKey) ref(plus bool) string {
	if !plus {
		return k.expr
	}
	if !k.pg {
		// Unary + keeps the value and hides the expression from the
		// planner's index matching.
		return "+" + k.expr
	}
	// Postgres has no unary + for text; an operation that keeps the value
	// hides the expression the same way.
	if k.kind == kindText {
		return "(" + k.expr + " || '')"
	}
	return "(" + k.expr + " + 0)"
}

// cols returns the SQL columns k orders by: its value, or for a Postgres
// JSON key its rank, number and text (pgjson.go).
func (k sortKey) cols(plus bool) []string {
	if !k.tuple {
		return []string{k.ref(plus)}
	}
	r, n, t := pgRank(k.expr), pgNum(k.expr), pgText(k.expr)
	if plus {
		return []string{"(" + r + " + 0)", "(" + n + " + 0)", "(" + t + " || '')"}
	}
	return []string{r, n, t}
}

func buildList(d *dialect, q provider.ListQuery, declared []string) (*listSpec, error) {
	sp := &listSpec{d: d, typ: q.Type}
	var where []string
	var args []any
	var conds []condInfo
	if q.Status != "" {
		where, args = append(where, "status = ?"), append(args, q.Status)
		conds = append(conds, condInfo{path: "status", op: provider.OpEq, seekable: true, single: true})
	}
	for _, c := range q.Filter {
		sqlText, cargs, info, err := condition(d, c, declared)
		if err != nil {
			return nil, err
		}
		where, args = append(where, sqlText), append(args, cargs...)
		conds = append(conds, info)
	}
	keys, err := sortKeys(d, q.Sort)
	if err != nil {
		return nil, err
	}
	sp.keys = keys
	sp.where, sp.args = "type = ?", []any{q.Type}
	sp.probeWhere, sp.probeArgs = sp.where, sp.args
	if len(where) > 0 {
		cond := strings.Join(where, " AND ")
		sp.where, sp.args = sp.where+" AND "+cond, append(sp.args, args...)
		// +o.x: a value, not a column, so SQLite does not carry the
		// position's ranges on o into the probe and pick another index.
		// Postgres does not carry them, and has no unary + for text.
		outer := " AND modified_at = +o.modified_at AND id = +o.id)"
		if d.pg {
			outer = " AND modified_at = o.modified_at AND id = o.id)"
		}
		sp.probeWhere = "type = ? AND EXISTS (SELECT 1 FROM objects WHERE type = ? AND " + cond + outer
		sp.probeArgs = append([]any{q.Type, q.Type}, args...)
	}
	sp.filtered = len(conds) > 0
	sp.ordered = ordersByIndex(keys[0].path, declared)
	sp.countable, sp.filterGivesOrder = classify(conds, keys[0].path)
	sp.pinned = sp.filtered && sp.countable
	for _, c := range conds {
		sp.pinned = sp.pinned && c.single && c.path == conds[0].path
	}
	return sp, nil
}

// condInfo is what the planning needs to know of one condition.
type condInfo struct {
	path     string
	op       provider.Op
	seekable bool // an index holds the path, and op can seek it
	single   bool // op is $eq, or $in of one value
}

// classify reports whether one index holds every condition (countable), and
// whether that index is the one that gives the order of the first sort key.
// The indexes a listing reads are (type, key, modified_at, id), so the
// conditions on one path are held by its index, which gives that path's
// order, and, when they pin it to one value, modified order; and
// objects_type_status_modified holds a status with a time range.
func classify(conds []condInfo, first string) (countable, givesOrder bool) {
	if len(conds) == 0 {
		return true, false
	}
	paths := map[string]bool{}
	pinned := true // every condition is $eq, or $in of one value
	for _, c := range conds {
		if !c.seekable {
			return false, false
		}
		paths[c.path] = true
		pinned = pinned && c.single
	}
	if len(paths) == 1 {
		return true, paths[first] || first == "modified_at" && pinned
	}
	for p := range paths {
		if p != "status" && p != "modified_at" {
			return false, false
		}
	}
	for _, c := range conds {
		if c.path == "status" && !c.single {
			return true, false // two statuses are two runs of the index
		}
	}
	return true, first == "modified_at"
}

// ordersByIndex reports whether an index lists a type's objects in the
// order of path (then id).
func ordersByIndex(path string, declared []string) bool {
	switch path {
	case "modified_at", "created_at", "slug", "title", "status":
		return true
	}
	f, ok := topField(path)
	return ok && slices.Contains(declared, f)
}

// topField returns the field name of "fields.<name>", a path an index can
// hold; nested paths are not indexed.
func topField(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "fields.")
	if !ok || strings.Contains(rest, ".") || !fieldNamePattern().MatchString(rest) {
		return "", false
	}
	return rest, true
}

// choosePlan picks how to read the page, given the capped count (-1 when
// not counted).
func (sp *listSpec) choosePlan(count, limitCap int) listPlan {
	switch {
	case sp.countable && sp.filtered && count <= limitCap && !sp.filterGivesOrder:
		// Few matches: reading them all through the filter's index and
		// sorting them costs at most the cap, where walking the sort
		// order could test every object of the type to find them.
		return planSeek
	case sp.ordered && sp.pinned && !sp.filterGivesOrder && !sp.d.pg:
		// On Postgres the object met is read from the table anyway, and
		// its fields are tested as cheaply as a probe would be.
		return planProbe
	case sp.ordered:
		return planOrdered
	}
	return planScan
}

// listRow is an object with the values of its sort keys.
type listRow struct {
	obj  provider.Object
	keys []any
}

// listRun runs the statements of one List call in its read transaction.
type listRun struct {
	ctx  context.Context
	tx   querier
	sp   *listSpec
	opts listOptions
}

func (r listRun) trace(query string, args []any) {
	if r.opts.trace != nil {
		r.opts.trace(query, args)
	}
}

// count counts the matches, stopping at upTo.
func (r listRun) count(upTo int) (int, error) {
	query := "SELECT count(*) FROM (SELECT 1 FROM objects WHERE " + r.sp.where + " LIMIT ?) AS m"
	args := append(append([]any{}, r.sp.args...), upTo)
	r.trace(query, args)
	var n int
	err := r.tx.QueryRowContext(r.ctx, query, r.sp.d.planned(args)...).Scan(&n)
	return n, err
}

// page reads up to n objects after pos (from the start when pos is nil).
func (r listRun) page(plan listPlan, pos *position, n int) ([]listRow, error) {
	plus := plan == planSeek
	where, args := r.sp.where, r.sp.args
	if plan == planProbe {
		where, args = r.sp.probeWhere, r.sp.probeArgs
	}
	if pos == nil {
		return r.fetch(where, args, nil, 0, plus, n)
	}
	ranges := r.sp.afterRanges(*pos, plus)
	if plan != planOrdered && plan != planProbe {
		return r.fetch(where, args, r.sp.anyOf(ranges), 0, plus, n)
	}
	var out []listRow
	for _, rg := range ranges {
		rows, err := r.fetch(where, args, &rg.cond, rg.orderFrom, false, n-len(out))
		if err != nil {
			return nil, err
		}
		if out = append(out, rows...); len(out) >= n {
			break
		}
	}
	return out, nil
}

// fetch reads up to n objects meeting where and cond, ordered by the sort
// keys from orderFrom on (the keys before it are fixed by cond).
func (r listRun) fetch(where string, whereArgs []any, cond *term, orderFrom int, plus bool, n int) ([]listRow, error) {
	var b strings.Builder
	b.WriteString("SELECT " + objectColumns + r.sp.keySelect())
	b.WriteString(" FROM objects o WHERE " + where)
	args := append([]any{}, whereArgs...)
	if cond != nil {
		b.WriteString(" AND (" + cond.sql + ")")
		args = append(args, cond.args...)
	}
	if orderFrom < len(r.sp.keys) {
		b.WriteString(" ORDER BY " + r.sp.orderBy(orderFrom, plus))
	}
	b.WriteString(" LIMIT ?")
	args = append(args, n)
	query := b.String()
	r.trace(query, args)

	rows, err := r.tx.QueryContext(r.ctx, query, r.sp.d.planned(args)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []listRow
	for rows.Next() {
		row, err := r.sp.scanListRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

func (sp *listSpec) scanListRow(rows *rows) (listRow, error) {
	var o provider.Object
	var fields string
	var created, modified int64
	dest := []any{&o.ID, &o.Type, &o.Slug, &o.Title, &o.Status, &o.Version, &fields, &created, &modified}
	keyDest, keys := sp.keyDest()
	if err := rows.Scan(append(dest, keyDest...)...); err != nil {
		return listRow{}, err
	}
	o.Fields = sp.d.fieldsOut(fields)
	o.CreatedAt, o.ModifiedAt = fromNanos(created), fromNanos(modified)
	return listRow{obj: o, keys: keys()}, nil
}

// keySelect is the select list of the sort keys' values, each column
// preceded by ", ".
func (sp *listSpec) keySelect() string {
	var b strings.Builder
	for _, k := range sp.keys {
		if k.tuple {
			b.WriteString(", " + pgRank(k.expr) + ", " + pgNum(k.expr) + "::text, " + pgText(k.expr))
			continue
		}
		b.WriteString(", " + k.expr)
	}
	return b.String()
}

// keyDest returns where to scan the columns of keySelect, and a function
// that then returns one value per sort key.
func (sp *listSpec) keyDest() ([]any, func() []any) {
	values := make([]any, len(sp.keys))
	var dest []any
	var tuples []func()
	for i, k := range sp.keys {
		if !k.tuple {
			dest = append(dest, &values[i])
			continue
		}
		var rank sql.NullInt64
		var num, text sql.NullString
		dest = append(dest, &rank, &num, &text)
		tuples = append(tuples, func() {
			if rank.Valid {
				values[i] = jsonKey{rank: rank.Int64, num: num.String, text: text.String}
			}
		})
	}
	return dest, func() []any {
		for _, f := range tuples {
			f()
		}
		return values
	}
}

func (sp *listSpec) orderBy(from int, plus bool) string {
	parts := make([]string, 0, len(sp.keys)-from)
	for _, k := range sp.keys[from:] {
		dir := " ASC"
		if k.desc {
			dir = " DESC"
		}
		if k.tuple {
			// SQLite puts NULL first; Postgres must be told, on the
			// column that is NULL exactly when the value is.
			nulls := " NULLS FIRST"
			if k.desc {
				nulls = " NULLS LAST"
			}
			c := k.cols(plus)
			parts = append(parts, c[0]+dir+nulls, c[1]+dir, c[2]+dir)
			continue
		}
		parts = append(parts, k.ref(plus)+dir)
	}
	return strings.Join(parts, ", ")
}

// term is a piece of SQL with its arguments.
type term struct {
	sql  string
	args []any
}

func allOf(ts []term) term {
	var out term
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.sql
		out.args = append(out.args, t.args...)
	}
	out.sql = strings.Join(parts, " AND ")
	return out
}

func (sp *listSpec) anyOf(ranges []keyRange) *term {
	var out term
	parts := make([]string, len(ranges))
	for i, rg := range ranges {
		parts[i] = "(" + rg.cond.sql + ")"
		out.args = append(out.args, rg.cond.args...)
	}
	out.sql = strings.Join(parts, " OR ")
	if len(parts) == 0 {
		out.sql = "0" // nothing comes after the last possible position
		if sp.d.pg {
			out.sql = "FALSE"
		}
	}
	return &out
}

// position is a place in a listing's order: just after the object whose
// sort key values are values, or, when inclusive, just before it.
type position struct {
	values    []any
	inclusive bool
}

// keyRange is one run of the listing after a position: objects equal to
// the position in the keys before orderFrom (or all keys, for the object
// itself) and after it in the next.
type keyRange struct {
	cond      term
	orderFrom int
}

// afterRanges splits what comes after pos into disjoint runs, in the order
// the listing returns them: same values in every key but the last, then
// the last; ... then after in the first key. Each run is a seek on an index
// of its leading key: equal values, then one range.
func (sp *listSpec) afterRanges(pos position, plus bool) []keyRange {
	m := len(sp.keys)
	var out []keyRange
	if pos.inclusive {
		eq := make([]term, m)
		for i, k := range sp.keys {
			eq[i] = equalTo(k, pos.values[i], plus)
		}
		out = append(out, keyRange{cond: allOf(eq), orderFrom: m})
	}
	last := m
	if sp.d.pg {
		out, last = sp.pgMergedRuns(out, pos, plus)
	}
	for j := last - 1; j >= 0; j-- {
		prefix := make([]term, j, j+1)
		for i, k := range sp.keys[:j] {
			prefix[i] = equalTo(k, pos.values[i], plus)
		}
		for _, part := range after(sp.keys[j], pos.values[j], plus) {
			from := j
			if part.nulls {
				from = j + 1 // the key is NULL throughout the run
			}
			out = append(out, keyRange{cond: allOf(append(prefix[:j:j], part.term)), orderFrom: from})
		}
	}
	return out
}

// equalTo matches the values ORDER BY ranks equal to v: NULLs are equal to
// each other, and an integer equals the same real.
func equalTo(k sortKey, v any, plus bool) term {
	if k.tuple {
		c := k.cols(plus)
		if v == nil {
			return term{sql: c[0] + " IS NULL"}
		}
		jk := v.(jsonKey)
		return term{sql: c[0] + " = ? AND " + c[1] + " = " + pgNumParam + " AND " + c[2] + " = ?", args: []any{jk.rank, jk.num, jk.text}}
	}
	if v == nil {
		return term{sql: k.ref(plus) + " IS NULL"}
	}
	return term{sql: k.ref(plus) + " = ?", args: []any{v}}
}

type afterPart struct {
	term
	nulls bool
}

// negInf is below every number, and every number is below every text, so
// "x >= -Inf" holds for exactly the values that are not NULL, and unlike
// "x IS NOT NULL" it is a range an index can seek to.
var negInf = math.Inf(-1)

// after returns, in listing order, the runs of values that come after v in
// k's direction. ORDER BY puts NULL first, then numbers, then text; without
// affinity, < and > compare across those classes the same way, so one
// comparison covers them, except NULL, which compares as unknown.
func after(k sortKey, v any, plus bool) []afterPart {
	if k.tuple {
		return pgAfter(k, v, plus)
	}
	x := k.ref(plus)
	switch {
	case !k.desc && v == nil:
		return []afterPart{{term: term{sql: x + " >= ?", args: []any{negInf}}}}
	case !k.desc:
		return []afterPart{{term: term{sql: x + " > ?", args: []any{v}}}}
	case v == nil:
		return nil // NULLs come last when descending
	}
	parts := []afterPart{{term: term{sql: x + " < ?", args: []any{v}}}}
	if k.kind == kindJSON {
		// Built-in columns are never NULL.
		parts = append(parts, afterPart{term: term{sql: x + " IS NULL"}, nulls: true})
	}
	return parts
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

// pathExpr maps a filter or sort path to an SQL expression over objects: a
// built-in column, or json_extract of the fields (on Postgres, the jsonb
// value, pgjson.go). The JSON path is written into the SQL as a literal,
// because an index on an expression serves only a query holding the same
// expression; jsonPath lets through only letters, digits and _, so the
// literal cannot be broken out of.
func pathExpr(d *dialect, path, field string) (string, valueKind, error) {
	switch path {
	case "id", "slug", "title", "status":
		return path, kindText, nil
	case "version":
		return path, kindInt, nil
	case "created_at", "modified_at":
		return path, kindTime, nil
	}
	jp, ok := jsonPath(path)
	if !ok {
		return "", 0, &provider.FieldError{Field: field, Problem: fmt.Sprintf("cannot use %q", path),
			Fix: "use id, slug, title, status, version, created_at, modified_at, or fields.<name> (letters, digits and _, joined by dots)"}
	}
	if d.pg {
		return pgJSONValue(path), kindJSON, nil
	}
	return jsonExtract(jp), kindJSON, nil
}

func jsonExtract(jp string) string { return "json_extract(fields, '" + jp + "')" }
func jsonType(jp string) string    { return "json_type(fields, '" + jp + "')" }

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
func condition(d *dialect, c provider.Condition, declared []string) (string, []any, condInfo, error) {
	expr, kind, err := pathExpr(d, c.Path, "filter")
	if err != nil {
		return "", nil, condInfo{}, err
	}
	op, values, err := operands(c)
	if err != nil {
		return "", nil, condInfo{}, err
	}
	info := condInfo{path: c.Path, op: c.Op, single: c.Op == provider.OpEq || (op == "IN" && len(values) == 1)}
	if kind != kindJSON && d.pg {
		sqlText, args, err := pgBuiltinCondition(c.Path, expr, kind, op, values)
		info.seekable = builtinSeekable(c.Path, c.Op)
		return sqlText, args, info, err
	}
	if kind != kindJSON {
		args := make([]any, 0, len(values))
		for _, v := range values {
			b, err := bindValue(c.Path, kind, v)
			if err != nil {
				return "", nil, condInfo{}, err
			}
			args = append(args, b)
		}
		info.seekable = builtinSeekable(c.Path, c.Op)
		return compare(expr, op, len(args)), args, info, nil
	}
	// Group the values by the JSON kinds they may equal, and guard each
	// group's comparison with json_type. The field indexes hold json_type
	// too, so the guard is read from the index, not from the row.
	jp, _ := jsonPath(c.Path)
	groups := map[string][]any{}
	for _, v := range values {
		kinds, ok := jsonKinds(v)
		b, err := bindValue(c.Path, kind, v)
		if err != nil || !ok {
			return "", nil, condInfo{}, errOrBadValue(err, c.Path)
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
		if d.pg {
			parts = append(parts, pgJSONCondition(expr, kinds, op, len(vals)))
		} else {
			parts = append(parts, "("+jsonType(jp)+" IN ("+kinds+") AND "+compare(expr, op, len(vals))+")")
		}
		args = append(args, vals...)
	}
	f, top := topField(c.Path)
	// One kind group is one index range; $ne is no range at all.
	info.seekable = top && slices.Contains(declared, f) && len(parts) == 1 && c.Op != provider.OpNe
	return "(" + strings.Join(parts, " OR ") + ")", args, info, nil
}

// builtinSeekable reports whether an index on (type, path, ...) can seek a
// condition with op on path, and so bound the rows a count reads.
func builtinSeekable(path string, op provider.Op) bool {
	switch {
	case op == provider.OpNe:
		return false
	case path == "id":
		// The primary key finds each id; a range of ids would cross types.
		return op == provider.OpEq || op == provider.OpIn
	}
	switch path {
	case "status", "slug", "title", "created_at", "modified_at":
		return true
	}
	return false
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
func compare(expr, op string, n int) string { return compareWith(expr, op, n, "?") }

// compareWith renders expr against n copies of the placeholder ph.
func compareWith(expr, op string, n int, ph string) string {
	if op == "IN" {
		return expr + " IN (" + strings.Repeat(ph+", ", n-1) + ph + ")"
	}
	return expr + " " + op + " " + ph
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

// sortKeys resolves the sort, newest modified first by default. Ties are
// broken by modified_at, then id, in the direction of the last key: the
// order is total (a position names one place), and every index a listing
// reads in order ends in (modified_at, id), so one index serves both a sort
// by its key and a filter on one value of it listed newest first.
func sortKeys(d *dialect, keys []provider.SortKey) ([]sortKey, error) {
	if len(keys) == 0 {
		keys = []provider.SortKey{{Path: "modified_at", Desc: true}}
	}
	out := make([]sortKey, 0, len(keys)+2)
	has := map[string]bool{}
	for _, k := range keys {
		expr, kind, err := pathExpr(d, k.Path, "sort")
		if err != nil {
			return nil, err
		}
		has[k.Path] = true
		out = append(out, sortKey{path: k.Path, expr: expr, kind: kind, desc: k.Desc, pg: d.pg, tuple: d.pg && kind == kindJSON})
	}
	desc := out[len(out)-1].desc
	if !has["modified_at"] && !has["id"] {
		out = append(out, sortKey{path: "modified_at", expr: "modified_at", kind: kindTime, desc: desc, pg: d.pg})
	}
	if !has["id"] {
		out = append(out, sortKey{path: "id", expr: "id", kind: kindText, desc: desc, pg: d.pg})
	}
	return out, nil
}
