// Package query is content_list's query language and keygate's paging
// tokens: filters ({"fields.views": {"$gt": 10}}), sort keys
// ("-modified_at,title"), projection paths, and the opaque cursors that
// resume a list (Cursor, OffsetCursor) or a value content_get had to cut
// (More). Every problem is an *Error naming the argument and the fix.
package query
