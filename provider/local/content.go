package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/provider"
)

// fieldNamePattern is the shape of a field name, the same as one segment of a
// "fields.a.b" path in a filter or sort.
var fieldNamePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`) })

const objectColumns = "id, type, slug, title, status, version, fields, created_at, modified_at"

// CreateType adds a content type. An empty field list allows any field.
func (s *Store) CreateType(ctx context.Context, t provider.ContentType) error {
	if err := checkType(t); err != nil {
		return err
	}
	_, now := s.nowNanos()
	return s.inWriteTx(ctx, func(tx querier) error { return insertType(ctx, tx, t, now) })
}

func checkType(t provider.ContentType) error {
	if !auth.TypeNamePattern().MatchString(t.Name) {
		return &provider.FieldError{Field: "type", Problem: "a type name must be a lower-case letter followed by up to 63 lower-case letters, digits, _ or -",
			Fix: `choose a name such as "posts" or "case-studies"`}
	}
	for i, f := range t.Fields {
		if !fieldNamePattern().MatchString(f) || slices.Contains(t.Fields[:i], f) {
			return &provider.FieldError{Field: "fields", Problem: fmt.Sprintf("field %d must be a unique name of 1 to 64 letters, digits or _", i+1),
				Fix: `list field names such as "body" or "author"`}
		}
	}
	return nil
}

func insertType(ctx context.Context, tx querier, t provider.ContentType, now int64) error {
	if err := tx.d.checkStorable("description", t.Description); err != nil {
		return err
	}
	fields, err := json.Marshal(nonNil(t.Fields))
	if err != nil {
		return fmt.Errorf("encoding fields of type %s: %w", t.Name, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO content_types (name, description, fields, created_at) VALUES (?, ?, ?, ?)`,
		t.Name, t.Description, string(fields), now)
	if tx.d.violates(err, typeNameTaken) {
		return &provider.FieldError{Field: "type", Problem: fmt.Sprintf("content type %q already exists", t.Name),
			Fix: "choose another name, or use the existing type"}
	}
	if err != nil {
		return fmt.Errorf("creating content type %s: %w", t.Name, err)
	}
	return createFieldIndexes(ctx, tx, t.Name, t.Fields)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Types lists the content types by name, each with its number of objects.
func (s *Store) Types(ctx context.Context) ([]provider.ContentType, error) {
	rows, err := s.ro.QueryContext(ctx, `
		SELECT t.name, t.description, t.fields, (SELECT COUNT(*) FROM objects o WHERE o.type = t.name)
		FROM content_types t ORDER BY t.name`)
	if err != nil {
		return nil, fmt.Errorf("listing content types: %w", err)
	}
	defer rows.Close()
	var out []provider.ContentType
	for rows.Next() {
		var t provider.ContentType
		var fields string
		if err := rows.Scan(&t.Name, &t.Description, &fields, &t.Count); err != nil {
			return nil, fmt.Errorf("listing content types: %w", err)
		}
		if err := json.Unmarshal([]byte(fields), &t.Fields); err != nil {
			return nil, fmt.Errorf("listing content types: fields of %s: %w", t.Name, err)
		}
		if len(t.Fields) == 0 {
			t.Fields = nil
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing content types: %w", err)
	}
	return out, nil
}

// typeFields returns the known fields of typ (empty: any field), or a
// NotFoundError when the type does not exist.
func typeFields(ctx context.Context, q querier, typ string) ([]string, error) {
	var raw string
	err := q.QueryRowContext(ctx, `SELECT fields FROM content_types WHERE name = ?`, typ).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, &provider.NotFoundError{What: "content type", Name: typ}
	}
	if err != nil {
		return nil, fmt.Errorf("reading content type %s: %w", typ, err)
	}
	var fields []string
	if err := json.Unmarshal([]byte(raw), &fields); err != nil {
		return nil, fmt.Errorf("reading content type %s: fields: %w", typ, err)
	}
	return fields, nil
}

// Get returns one object by id or by slug. It is the hottest read keygate
// has (every content_get), so it is one prepared statement, not a
// transaction of two: the join checks that the type exists and reads the
// object in the same statement, hence the same snapshot. A type that exists
// gives one row, with NULLs when the object does not.
func (s *Store) Get(ctx context.Context, typ string, ref provider.Ref) (provider.Object, error) {
	var st *lazyStmt
	name := ref.ID
	switch {
	case ref.ID != "" && ref.Slug == "":
		st = &s.getByID
	case ref.Slug != "" && ref.ID == "":
		st, name = &s.getBySlug, ref.Slug
	default:
		return provider.Object{}, &provider.FieldError{Field: "id", Problem: "give exactly one of id and slug", Fix: "pass the id from content_list, or the slug"}
	}
	stmt, err := st.get(ctx, s.d, s.roDB)
	if err != nil {
		return provider.Object{}, fmt.Errorf("reading %s object %s: %w", typ, name, err)
	}
	var id, otype, slug, title, status, fields sql.NullString
	var version, created, modified sql.NullInt64
	// On SQLite a lookup by key takes microseconds, and a reader never
	// waits for the writer under WAL; watching ctx for cancellation would
	// start two goroutines per call (database/sql's and the driver's) for
	// nothing. Postgres is across a network, so there ctx is watched.
	qctx := ctx
	if !s.d.pg {
		qctx = context.WithoutCancel(ctx)
	}
	r := &row{d: s.d, tries: s.ro.tries(), run: func() *sql.Row { return stmt.QueryRowContext(qctx, name, typ) }}
	err = r.Scan(&id, &otype, &slug, &title, &status, &version, &fields, &created, &modified)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return provider.Object{}, &provider.NotFoundError{What: "content type", Name: typ}
	case err != nil:
		return provider.Object{}, fmt.Errorf("reading %s object %s: %w", typ, name, err)
	case !id.Valid:
		return provider.Object{}, &provider.NotFoundError{What: "object", Name: name}
	}
	return provider.Object{ID: id.String, Type: otype.String, Slug: slug.String, Title: title.String, Status: status.String,
		Version: version.Int64, Fields: s.d.fieldsOut(fields.String), CreatedAt: fromNanos(created.Int64), ModifiedAt: fromNanos(modified.Int64)}, nil
}

// getObjectSQL is Get's statement; the placeholder in on is the id or the
// slug, the last one the type.
func getObjectSQL(on string) string {
	return `SELECT o.id, o.type, o.slug, o.title, o.status, o.version, o.fields, o.created_at, o.modified_at
		FROM content_types t LEFT JOIN objects o ON o.type = t.name AND ` + on + `
		WHERE t.name = ?`
}

func getObject(ctx context.Context, q querier, typ string, ref provider.Ref) (provider.Object, error) {
	var row *row
	name := ref.ID
	switch {
	case ref.ID != "" && ref.Slug == "":
		row = q.QueryRowContext(ctx, `SELECT `+objectColumns+` FROM objects WHERE type = ? AND id = ?`, typ, ref.ID)
	case ref.Slug != "" && ref.ID == "":
		name = ref.Slug
		row = q.QueryRowContext(ctx, `SELECT `+objectColumns+` FROM objects WHERE type = ? AND slug = ?`, typ, ref.Slug)
	default:
		return provider.Object{}, &provider.FieldError{Field: "id", Problem: "give exactly one of id and slug", Fix: "pass the id from content_list, or the slug"}
	}
	obj, err := scanObject(q.d, row)
	if errors.Is(err, sql.ErrNoRows) {
		return provider.Object{}, &provider.NotFoundError{What: "object", Name: name}
	}
	if err != nil {
		return provider.Object{}, fmt.Errorf("reading %s object %s: %w", typ, name, err)
	}
	return obj, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanObject(d *dialect, r scanner) (provider.Object, error) {
	var o provider.Object
	var fields string
	var created, modified int64
	if err := r.Scan(&o.ID, &o.Type, &o.Slug, &o.Title, &o.Status, &o.Version, &fields, &created, &modified); err != nil {
		return provider.Object{}, err
	}
	o.Fields = d.fieldsOut(fields)
	o.CreatedAt, o.ModifiedAt = fromNanos(created), fromNanos(modified)
	return o, nil
}

// Create stores a new object at version 1. A nil Fields means no fields.
func (s *Store) Create(ctx context.Context, n provider.NewObject) (provider.Object, error) {
	_, now := s.nowNanos()
	var obj provider.Object
	err := s.inWriteTx(ctx, func(tx querier) error {
		var err error
		obj, err = insertObject(ctx, tx, n, now)
		return err
	})
	return obj, err
}

func insertObject(ctx context.Context, tx querier, n provider.NewObject, now int64) (provider.Object, error) {
	known, err := typeFields(ctx, tx, n.Type)
	if err != nil {
		return provider.Object{}, err
	}
	if err := checkTitle(n.Title); err != nil {
		return provider.Object{}, err
	}
	if err := tx.d.checkStorable("title", n.Title); err != nil {
		return provider.Object{}, err
	}
	if err := checkSlug(n.Slug); err != nil {
		return provider.Object{}, err
	}
	if err := checkStatus(n.Status); err != nil {
		return provider.Object{}, err
	}
	if n.Fields == nil {
		n.Fields = json.RawMessage(`{}`)
	}
	fields, values, err := parseFields(n.Fields)
	if err != nil {
		return provider.Object{}, err
	}
	if err := checkKnownFields(n.Type, known, keysOf(values, false)); err != nil {
		return provider.Object{}, err
	}
	if err := tx.d.checkStorableJSON(fields); err != nil {
		return provider.Object{}, err
	}
	obj, err := scanObject(tx.d, tx.QueryRowContext(ctx, `
		INSERT INTO objects (id, type, slug, title, status, version, fields, created_at, modified_at)
		VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)
		RETURNING `+objectColumns,
		newObjectID(), n.Type, n.Slug, n.Title, n.Status, fields, now, now))
	return obj, slugError(tx.d, err, n.Type, n.Slug, "creating")
}

// newObjectID returns "obj_" and 16 random lower-case letters and digits.
func newObjectID() string {
	return "obj_" + strings.ToLower(rand.Text())[:16]
}

// slugError maps the UNIQUE (type, slug) violation to an error the caller
// can fix. Relying on the constraint, not a prior SELECT, leaves no window
// for two writers to take the same slug.
func slugError(d *dialect, err error, typ, slug, doing string) error {
	switch {
	case err == nil:
		return nil
	case d.violates(err, objectSlugTaken):
		return &provider.FieldError{Field: "slug", Problem: fmt.Sprintf("slug %q is already used by another %s object", slug, typ),
			Fix: "choose another slug, or update the existing object"}
	}
	return fmt.Errorf("%s %s object: %w", doing, typ, err)
}

// Update applies a patch atomically: the version check and the write happen
// in one write transaction, so of two updates sent with the same
// ExpectedVersion exactly one wins.
func (s *Store) Update(ctx context.Context, p provider.Patch) (provider.Object, error) {
	_, now := s.nowNanos()
	var obj provider.Object
	err := s.inWriteTx(ctx, func(tx querier) error {
		var err error
		obj, err = updateObject(ctx, tx, p, now)
		return err
	})
	return obj, err
}

func updateObject(ctx context.Context, tx querier, p provider.Patch, now int64) (provider.Object, error) {
	known, err := typeFields(ctx, tx, p.Type)
	if err != nil {
		return provider.Object{}, err
	}
	if err := checkPatch(p); err != nil {
		return provider.Object{}, err
	}
	if p.Title != nil {
		if err := tx.d.checkStorable("title", *p.Title); err != nil {
			return provider.Object{}, err
		}
	}
	var patch any // NULL leaves the fields alone
	if p.Fields != nil {
		compact, values, err := parseFields(p.Fields)
		if err != nil {
			return provider.Object{}, err
		}
		// A null removes a key, so removing one the type does not list is fine.
		if err := checkKnownFields(p.Type, known, keysOf(values, true)); err != nil {
			return provider.Object{}, err
		}
		if err := tx.d.checkStorableJSON(compact); err != nil {
			return provider.Object{}, err
		}
		patch = compact
	}
	cur, err := getObject(ctx, tx, p.Type, provider.Ref{ID: p.ID})
	if err != nil {
		return provider.Object{}, err
	}
	if p.ExpectedVersion != nil && *p.ExpectedVersion != cur.Version {
		return provider.Object{}, &provider.VersionConflictError{Expected: *p.ExpectedVersion, Current: cur.Version}
	}
	// json_patch is RFC 7396 merge patch: objects merge, null deletes.
	// Postgres has none, so there the patch is applied here, to the fields
	// this transaction read.
	setFields, fieldArgs := `CASE WHEN ? IS NULL THEN fields ELSE json_patch(fields, ?) END`, []any{patch, patch}
	if tx.d.pg {
		var merged any
		if patch != nil {
			if merged, err = mergePatch(cur.Fields, json.RawMessage(patch.(string))); err != nil {
				return provider.Object{}, fmt.Errorf("updating %s object %s: %w", p.Type, p.ID, err)
			}
		}
		setFields, fieldArgs = `coalesce(CAST(? AS jsonb), fields)`, []any{merged}
	}
	args := append([]any{nullable(p.Title), nullable(p.Slug), nullable(p.Status)}, fieldArgs...)
	args = append(args, now, p.Type, p.ID, cur.Version)
	obj, err := scanObject(tx.d, tx.QueryRowContext(ctx, `
		UPDATE objects SET
			title = coalesce(?, title),
			slug = coalesce(?, slug),
			status = coalesce(?, status),
			fields = `+setFields+`,
			version = version + 1,
			modified_at = ?
		WHERE type = ? AND id = ? AND version = ?
		RETURNING `+objectColumns, args...))
	if errors.Is(err, sql.ErrNoRows) {
		// Unreachable while the transaction holds the write lock (SQLite)
		// or is serializable (Postgres); kept so a lost race can never
		// pass for a successful update.
		return provider.Object{}, &provider.VersionConflictError{Expected: cur.Version, Current: cur.Version + 1}
	}
	slug := cur.Slug
	if p.Slug != nil {
		slug = *p.Slug
	}
	return obj, slugError(tx.d, err, p.Type, slug, "updating")
}

func checkPatch(p provider.Patch) error {
	if p.Title != nil {
		if err := checkTitle(*p.Title); err != nil {
			return err
		}
	}
	if p.Slug != nil {
		if err := checkSlug(*p.Slug); err != nil {
			return err
		}
	}
	if p.Status != nil {
		return checkStatus(*p.Status)
	}
	return nil
}

// nullable binds a missing value as SQL NULL.
func nullable(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// Delete removes an object and returns it as it was.
func (s *Store) Delete(ctx context.Context, typ, id string) (provider.Object, error) {
	var obj provider.Object
	err := s.inWriteTx(ctx, func(tx querier) error {
		if _, err := typeFields(ctx, tx, typ); err != nil {
			return err
		}
		var err error
		obj, err = scanObject(tx.d, tx.QueryRowContext(ctx, `DELETE FROM objects WHERE type = ? AND id = ? RETURNING `+objectColumns, typ, id))
		if errors.Is(err, sql.ErrNoRows) {
			return &provider.NotFoundError{What: "object", Name: id}
		}
		if err != nil {
			return fmt.Errorf("deleting %s object %s: %w", typ, id, err)
		}
		return nil
	})
	return obj, err
}

func checkTitle(title string) error {
	if strings.TrimSpace(title) == "" {
		return &provider.FieldError{Field: "title", Problem: "cannot be blank", Fix: "give the object a title"}
	}
	return nil
}

func checkSlug(slug string) error {
	if len(slug) > provider.MaxSlugLen || !provider.SlugPattern.MatchString(slug) {
		return &provider.FieldError{Field: "slug", Problem: fmt.Sprintf("must be lower-case letters and digits joined by single hyphens, at most %d characters", provider.MaxSlugLen),
			Fix: `use a slug such as "my-first-post"`}
	}
	return nil
}

func checkStatus(status string) error {
	if status != provider.StatusDraft && status != provider.StatusPublished {
		return &provider.FieldError{Field: "status", Problem: "must be draft or published", Fix: `use "draft" or "published"`}
	}
	return nil
}

// parseFields checks that raw is a JSON object and returns it compacted, as
// the text SQLite's JSON functions read (never a BLOB, which SQLite would
// take for its binary JSONB), and its top-level values.
func parseFields(raw json.RawMessage) (string, map[string]json.RawMessage, error) {
	var values map[string]json.RawMessage
	// A JSON null decodes into a nil map without error, so check for it too.
	if err := json.Unmarshal(raw, &values); err != nil || values == nil {
		return "", nil, &provider.FieldError{Field: "fields", Problem: "must be a JSON object", Fix: `write {"name": value}`}
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return "", nil, &provider.FieldError{Field: "fields", Problem: "must be a JSON object", Fix: `write {"name": value}`}
	}
	return b.String(), values, nil
}

// keysOf returns the sorted keys of values, leaving out those set to null
// when skipNull.
func keysOf(values map[string]json.RawMessage, skipNull bool) []string {
	keys := make([]string, 0, len(values))
	for k, v := range values {
		if skipNull && string(bytes.TrimSpace(v)) == "null" {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkKnownFields refuses keys a type does not list; a type that lists no
// fields takes any.
func checkKnownFields(typ string, known, keys []string) error {
	if len(known) == 0 {
		return nil
	}
	var unknown []string
	for _, k := range keys {
		if !slices.Contains(known, k) {
			unknown = append(unknown, fmt.Sprintf("%q", k))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	what := "field"
	if len(unknown) > 1 {
		what = "fields"
	}
	return &provider.FieldError{Field: "fields", Problem: fmt.Sprintf("unknown %s %s for type %s", what, strings.Join(unknown, ", "), typ),
		Fix: fmt.Sprintf("use only: %s (see content_types)", strings.Join(known, ", "))}
}

// mergePatch applies the RFC 7396 merge patch patch to the JSON object
// target, as SQLite's json_patch does: objects merge key by key, a null
// removes a key, anything else replaces.
func mergePatch(target, patch json.RawMessage) (string, error) {
	merged, err := mergeValue(target, patch)
	if err != nil {
		return "", err
	}
	return string(merged), nil
}

func mergeValue(target, patch json.RawMessage) (json.RawMessage, error) {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(patch, &p); err != nil || p == nil {
		return patch, nil // not an object: it replaces the target
	}
	var t map[string]json.RawMessage
	if err := json.Unmarshal(target, &t); err != nil || t == nil {
		t = map[string]json.RawMessage{}
	}
	for k, v := range p {
		if string(bytes.TrimSpace(v)) == "null" {
			delete(t, k)
			continue
		}
		m, err := mergeValue(t[k], v)
		if err != nil {
			return nil, err
		}
		t[k] = m
	}
	out, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("merging fields: %w", err)
	}
	return out, nil
}
