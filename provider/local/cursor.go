package local

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// A list cursor is "k1" and the base64url of
//
//	mode 0 (after):  0x00, n, then n sort key values (tag, data)
//	mode 1 (anchor): 0x01, the last object's id and version, the next one's
//	then 16 bytes of HMAC-SHA256, keyed by the store's list_cursor secret,
//	over the type, the sort keys and the bytes before it.
//
// The MAC binds a cursor to its type and sort: a cursor that was forged,
// altered, made for another type or sort, or signed by another store is
// refused, never read as some other position. The values are only ever
// bound as SQL arguments.
const (
	cursorPrefix = "k1"
	// maxCursorLen bounds a cursor. The tools wrap it in their own cursor,
	// which content_list caps at 512 characters (tools/content.go); at 300
	// the wrapped cursor stays under 450. A position whose values do not fit
	// (long titles or text fields) becomes an anchor cursor instead.
	maxCursorLen = 300
	macLen       = 16

	modeAfter  = 0
	modeAnchor = 1

	tagNull  = 0
	tagInt   = 1
	tagFloat = 2
	tagText  = 3
	// tagJSON is a Postgres JSON sort value (jsonKey): rank, number, text.
	tagJSON = 4
)

// cursorSecretName names the list cursor key in store_secrets.
const cursorSecretName = "list_cursor"

func errCursor(problem string) error {
	return &provider.FieldError{Field: "cursor", Problem: problem,
		Fix: "pass next_cursor from the previous page unchanged, with the same type and sort, or leave cursor out to start over"}
}

var (
	errNotCursor = errCursor("is not a cursor from this store for this type and sort")
	// Before keyset paging a cursor was the decimal offset of the page.
	errOffsetCursor = &provider.FieldError{Field: "cursor",
		Problem: "is not a cursor this keygate accepts: it is a page offset from an older keygate, and listings now resume after the last object seen",
		Fix:     "leave cursor out to list from the start again, then pass each page's next_cursor"}
	errLostAnchor = errCursor("can no longer be resumed: the objects on both sides of the page boundary were changed or deleted since, and their sort values are too long to carry in a cursor; start over, or sort by a shorter field")
)

func (sp *listSpec) mac(key, payload []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("keygate/local list cursor 1\x00" + sp.typ + "\x00"))
	for _, k := range sp.keys {
		dir := ":a,"
		if k.desc {
			dir = ":d,"
		}
		h.Write([]byte(k.path + dir))
	}
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum(nil)[:macLen]
}

func (sp *listSpec) seal(key, payload []byte) string {
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(append(payload, sp.mac(key, payload)...))
}

// encodeCursor returns the cursor of the position after last. It carries
// last's sort key values when they fit in maxLen; otherwise it names last
// and next, the object after it, by id and version (see anchorPosition).
func encodeCursor(key []byte, sp *listSpec, last, next listRow, maxLen int) string {
	payload := []byte{modeAfter, byte(len(last.keys))}
	ok := true
	for _, v := range last.keys {
		if payload, ok = appendValue(payload, v); !ok {
			break
		}
	}
	if ok {
		if c := sp.seal(key, payload); len(c) <= maxLen {
			return c
		}
	}
	payload = []byte{modeAnchor}
	payload = appendText(binary.AppendUvarint(appendText(payload, last.obj.ID), uint64(last.obj.Version)), next.obj.ID)
	payload = binary.AppendUvarint(payload, uint64(next.obj.Version))
	return sp.seal(key, payload)
}

func appendText(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendValue encodes one value as SQLite returned it, keeping its storage
// class: an integer and the same real sort as equal, but are not the same.
// On Postgres a JSON value is its three sort columns.
func appendValue(b []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case jsonKey:
		return appendText(appendText(binary.AppendVarint(append(b, tagJSON), x.rank), x.num), x.text), true
	case nil:
		return append(b, tagNull), true
	case int64:
		return binary.AppendVarint(append(b, tagInt), x), true
	case float64:
		return binary.BigEndian.AppendUint64(append(b, tagFloat), math.Float64bits(x)), true
	case string:
		return appendText(append(b, tagText), x), true
	}
	return b, false
}

// position decodes a cursor into a position of this listing; nil for none.
func (r listRun) position(c string, key []byte) (*position, error) {
	if c == "" {
		return nil, nil
	}
	payload, err := r.sp.open(c, key)
	if err != nil {
		return nil, err
	}
	d := decoder{b: payload[1:]}
	switch payload[0] {
	case modeAfter:
		values, ok := d.values(r.sp.keys, r.sp.d.pg)
		if !ok {
			return nil, errNotCursor
		}
		return &position{values: values}, nil
	case modeAnchor:
		lastID, lastVersion := d.text(), d.uvarint()
		nextID, nextVersion := d.text(), d.uvarint()
		if !d.done() {
			return nil, errNotCursor
		}
		return r.anchorPosition(lastID, lastVersion, nextID, nextVersion)
	}
	return nil, errNotCursor
}

// open checks a cursor's MAC and returns what it carries.
func (sp *listSpec) open(c string, key []byte) ([]byte, error) {
	if isOffset(c) {
		return nil, errOffsetCursor
	}
	body, ok := strings.CutPrefix(c, cursorPrefix)
	if !ok || len(c) > maxCursorLen+len(cursorPrefix) {
		return nil, errNotCursor
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) < 1+macLen {
		return nil, errNotCursor
	}
	payload, mac := raw[:len(raw)-macLen], raw[len(raw)-macLen:]
	if !hmac.Equal(mac, sp.mac(key, payload)) {
		return nil, errNotCursor
	}
	return payload, nil
}

func isOffset(c string) bool {
	for _, r := range c {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// anchorPosition finds the position an anchor cursor names: after the last
// object of the page while it is unchanged (same id and version, so the same
// sort values), else before the object that followed it while that one is
// unchanged. Objects changed between pages may move; no other object is
// skipped or repeated. When both have changed the position is lost.
func (r listRun) anchorPosition(lastID string, lastVersion uint64, nextID string, nextVersion uint64) (*position, error) {
	for _, a := range []struct {
		id        string
		version   uint64
		inclusive bool
	}{{lastID, lastVersion, false}, {nextID, nextVersion, true}} {
		values, ok, err := r.anchorValues(a.id, a.version)
		if err != nil {
			return nil, fmt.Errorf("resuming %s listing: %w", r.sp.typ, err)
		}
		if ok {
			return &position{values: values, inclusive: a.inclusive}, nil
		}
	}
	return nil, errLostAnchor
}

func (r listRun) anchorValues(id string, version uint64) ([]any, bool, error) {
	query := "SELECT version" + r.sp.keySelect() + " FROM objects WHERE type = ? AND id = ?"
	var got int64
	keyDest, values := r.sp.keyDest()
	err := r.tx.QueryRowContext(r.ctx, query, r.sp.d.planned([]any{r.sp.typ, id})...).Scan(append([]any{&got}, keyDest...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return values(), uint64(got) == version, nil
}

// decoder reads a cursor's payload; any malformation sets bad.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) done() bool { return !d.bad && len(d.b) == 0 }

func (d *decoder) readByte() byte {
	if len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) text() string {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// values reads one value per sort key, each of a class the key can hold
// in the dialect (pg: Postgres).
func (d *decoder) values(keys []sortKey, pg bool) ([]any, bool) {
	if int(d.readByte()) != len(keys) {
		return nil, false
	}
	out := make([]any, len(keys))
	for i, k := range keys {
		var v any
		switch d.readByte() {
		case tagNull:
			v = nil
		case tagInt:
			n, size := binary.Varint(d.b)
			if size <= 0 {
				return nil, false
			}
			d.b, v = d.b[size:], n
		case tagFloat:
			if len(d.b) < 8 {
				return nil, false
			}
			f := math.Float64frombits(binary.BigEndian.Uint64(d.b))
			if math.IsNaN(f) {
				return nil, false
			}
			d.b, v = d.b[8:], f
		case tagText:
			v = d.text()
		case tagJSON:
			rank, size := binary.Varint(d.b)
			if size <= 0 {
				return nil, false
			}
			d.b = d.b[size:]
			v = jsonKey{rank: rank, num: d.text(), text: d.text()}
		default:
			return nil, false
		}
		if d.bad || !holds(k.kind, v, pg) {
			return nil, false
		}
		out[i] = v
	}
	return out, d.done()
}

// holds reports whether a key of kind can have the value v. A JSON value
// on Postgres is a jsonKey, and only there.
func holds(kind valueKind, v any, pg bool) bool {
	if jk, ok := v.(jsonKey); ok {
		return pg && kind == kindJSON && (jk.rank == 1 || jk.rank == 2) && sqliteNumeric().MatchString(jk.num)
	}
	if pg && kind == kindJSON {
		return v == nil
	}
	switch kind {
	case kindText:
		_, ok := v.(string)
		return ok
	case kindInt, kindTime:
		_, ok := v.(int64)
		return ok
	}
	return true
}

// cursorKey returns the key that signs list cursors, read once.
func (s *Store) cursorKey(ctx context.Context, q querier) ([]byte, error) {
	if k := s.listKey.Load(); k != nil {
		return *k, nil
	}
	var k []byte
	if err := q.QueryRowContext(ctx, `SELECT value FROM store_secrets WHERE name = ?`, cursorSecretName).Scan(&k); err != nil {
		return nil, fmt.Errorf("reading the list cursor key: %w", err)
	}
	if len(k) != 32 {
		return nil, fmt.Errorf("reading the list cursor key: it has %d bytes, want 32", len(k))
	}
	s.listKey.Store(&k)
	return k, nil
}

// syncListSchema makes what listing needs and the numbered migrations
// cannot, being derived from data: the cursor key, and the field indexes of
// every content type. It is idempotent; migrate runs it whenever it applies
// a step.
func syncListSchema(ctx context.Context, tx querier) error {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("making the list cursor key: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO store_secrets (name, value) VALUES (?, ?)`, cursorSecretName, secret); err != nil {
		return fmt.Errorf("storing the list cursor key: %w", err)
	}
	types, err := declaredFields(ctx, tx)
	if err != nil {
		return err
	}
	// SQLite refuses to change the schema while a statement reads it, so
	// the indexes are made once the rows are closed.
	for name, fields := range types {
		if err := createFieldIndexes(ctx, tx, name, fields); err != nil {
			return err
		}
	}
	return nil
}

// declaredFields reads each content type's declared fields. Its rows are
// closed when it returns, so the caller may change the schema.
func declaredFields(ctx context.Context, tx querier) (map[string][]string, error) {
	types := map[string][]string{}
	rows, err := tx.QueryContext(ctx, `SELECT name, fields FROM content_types`)
	if err != nil {
		return nil, fmt.Errorf("reading content types: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, raw string
		var fields []string
		if err := rows.Scan(&name, &raw); err != nil {
			return nil, fmt.Errorf("reading content types: %w", err)
		}
		if err := json.Unmarshal([]byte(raw), &fields); err != nil {
			return nil, fmt.Errorf("reading content type %s: fields: %w", name, err)
		}
		types[name] = fields
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading content types: %w", err)
	}
	return types, nil
}

// createFieldIndexes indexes each declared field of a type, as a partial
// index over the type's objects: (type, value, modified_at, id, JSON type).
// The leading type lets the planner see the index as selective as the
// type's other indexes. modified_at and id make it give the listing order,
// both when sorting by the field and when filtering it by one value and
// listing newest first. The JSON type lets a filter's type guard be read
// from the index. The type and field names are written
// into the DDL, which takes no parameters, so both are checked here again.
func createFieldIndexes(ctx context.Context, q querier, typ string, fields []string) error {
	if q.d.pg {
		return pgCreateFieldIndexes(ctx, q, typ, fields)
	}
	if !auth.TypeNamePattern().MatchString(typ) {
		return fmt.Errorf("indexing content type %q: not a type name", typ)
	}
	for _, f := range fields {
		jp, ok := jsonPath("fields." + f)
		if !ok || strings.Contains(f, ".") {
			return fmt.Errorf("indexing field %q of content type %s: not a field name", f, typ)
		}
		ddl := `CREATE INDEX IF NOT EXISTS "` + fieldIndexName(typ, f) + `" ON objects (type, ` + jsonExtract(jp) + `, modified_at, id, ` + jsonType(jp) + `) WHERE type = '` + typ + `'`
		if _, err := q.ExecContext(ctx, ddl); err != nil {
			return fmt.Errorf("indexing field %s of content type %s: %w", f, typ, err)
		}
	}
	return nil
}

// fieldIndexName is "objects:<type>:<field>". SQLite compares index names
// without case, and field names have case, so an upper-case letter is
// written ^ and its lower case: "myField" and "myfield" stay two indexes.
func fieldIndexName(typ, field string) string {
	var b strings.Builder
	b.WriteString("objects:" + typ + ":")
	for _, r := range field {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('^')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
