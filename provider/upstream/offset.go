package upstream

import (
	"strconv"

	"github.com/keygate/keygate/provider"
)

// Offset reads the page a list query asks of an API that pages by offset,
// whose cursor keygate issues as the decimal offset of the next page: the
// limit (def when q gives none, at most most) and the offset. A cursor
// keygate did not issue is the caller's to fix.
func Offset(q provider.ListQuery, def, most int) (limit, skip int, err error) {
	limit = q.Limit
	if limit <= 0 {
		limit = def
	}
	limit = min(limit, most)
	if q.Cursor == "" {
		return limit, 0, nil
	}
	n, err := strconv.Atoi(q.Cursor)
	if err != nil || n < 0 {
		return 0, 0, &provider.FieldError{Field: "cursor", Problem: "not a position this provider issued",
			Fix: "pass next_cursor from the previous page unchanged, or leave it out to start over"}
	}
	return limit, n, nil
}
