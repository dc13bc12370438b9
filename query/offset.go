package query

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// OffsetCursor is the cursor of a list keygate pages itself (types, keys):
// where to resume, tied to the tool and provider it came from.
func OffsetCursor(scope string, offset int) string {
	if offset == 0 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(scope + ":" + strconv.Itoa(offset)))
}

// ParseOffsetCursor reads a cursor OffsetCursor issued for scope; "" is
// the start of the list.
func ParseOffsetCursor(c, scope string) (int, *Error) {
	if c == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	rest, ok := strings.CutPrefix(string(b), scope+":")
	n, nerr := strconv.Atoi(rest)
	if err != nil || !ok || nerr != nil || n <= 0 {
		return 0, &Error{Field: "cursor", Problem: "not a cursor this tool issued for this provider", Fix: "pass next_cursor from the previous result unchanged, or leave it out to start over"}
	}
	return n, nil
}
