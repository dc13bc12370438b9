package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// tableFile names the table where a SkippedLine names a file; its Line is
// the row's id.
const tableFile = "table " + TableName

// ReadTable calls fn for each record of the journal table that matches o,
// in the order they were inserted (by every replica): oldest first, as
// ReadWith reads the file. A database without the table holds no records.
// Rows that hold no record are skipped as SkippedLine (File "table
// keygate_audit", Line the row's id) as ReadWith skips lines; o.Rotated
// does not apply: the table has no older parts. An error from fn stops the
// reading and is returned.
func ReadTable(ctx context.Context, db *sql.DB, o ReadOptions, fn func(Record) error) error {
	ok, err := tableReadable(ctx, db)
	if !ok || err != nil {
		return err
	}
	var skipped []error
	skip := o.Skipped
	if skip == nil {
		skip = func(s SkippedLine) { skipped = append(skipped, s) }
	}
	// The columns narrow the rows; Filter.match then decides on the record
	// itself, so the table and the file select alike to the nanosecond.
	args := []any{maxLine}
	var where []string
	if !o.Since.IsZero() {
		args = append(args, o.Since.Truncate(time.Microsecond)) // timestamptz keeps microseconds
		where = append(where, "last_at >= $"+strconv.Itoa(len(args)))
	}
	if o.Tool != "" {
		args = append(args, o.Tool)
		where = append(where, "tool = $"+strconv.Itoa(len(args)))
	}
	q := `SELECT id, octet_length(record::text), CASE WHEN octet_length(record::text) <= $1 THEN record::text END FROM keygate_audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id"
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("audit journal table: reading: %w", scrub(err))
	}
	defer rows.Close()
	for rows.Next() {
		var id, size int64
		var doc sql.NullString
		if err := rows.Scan(&id, &size, &doc); err != nil {
			return fmt.Errorf("audit journal table: reading: %w", scrub(err))
		}
		var rec Record
		switch {
		case !doc.Valid:
			skip(SkippedLine{File: tableFile, Line: int(id), Reason: fmt.Sprintf("is %d bytes long, over %d; skipped", size, maxLine)})
		case json.Unmarshal([]byte(doc.String), &rec) != nil:
			skip(SkippedLine{File: tableFile, Line: int(id), Reason: "cannot be parsed; skipped"})
		case o.match(rec):
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit journal table: reading: %w", scrub(err))
	}
	return errors.Join(skipped...)
}

// tableReadable reports whether the database holds a journal table this
// keygate can read: none is an empty journal, a newer one is refused.
func tableReadable(ctx context.Context, db *sql.DB) (bool, error) {
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT to_regclass('keygate_schema') IS NOT NULL AND to_regclass('keygate_audit') IS NOT NULL`).Scan(&exists); err != nil {
		return false, fmt.Errorf("audit journal table: reading: %w", scrub(err))
	}
	if !exists {
		return false, nil
	}
	var version int
	err := db.QueryRowContext(ctx, `SELECT version FROM keygate_schema WHERE component = 'audit'`).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("audit journal table: reading its schema version: %w", scrub(err))
	case version > len(tableSchema):
		return false, fmt.Errorf("the audit journal table is at schema version %d but this keygate knows only up to %d; upgrade keygate", version, len(tableSchema))
	}
	return true, nil
}

// dsnPasswords finds a password in a connection string, as a URL's user
// info (postgres://user:pw@host) or as a key=value (password=pw).
var dsnPasswords = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)(://[^/@:\s]*:)[^@\s]*@|(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&'"]+)`)
})

// scrub takes any connection-string password out of err's message. The
// database's errors come from the driver, which may quote the connection
// string; keygate's errors and logs must not carry the password. A
// scrubbed error keeps only its message.
func scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := dsnPasswords().ReplaceAllStringFunc(msg, func(m string) string {
		sub := dsnPasswords().FindStringSubmatch(m)
		if sub[1] != "" {
			return sub[1] + "xxxxx@"
		}
		return sub[2] + "xxxxx"
	})
	if clean == msg {
		return err
	}
	return errors.New(clean)
}
