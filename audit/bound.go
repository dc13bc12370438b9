package audit

import (
	"crypto/sha256"
	"fmt"
	"unicode/utf8"
)

// FieldLimit is the longest a string of a record may be, as JSON, to be
// kept as it is. A longer one (a 180 KB tool argument, say) is replaced by
// its length and the start of its SHA-256, which still tells two values
// apart and matches a value one already has.
const FieldLimit = 256

// MaxRecordBytes bounds one line of the journal: nine capped strings, two
// times and a count, with their names, fit well within it.
const MaxRecordBytes = 4 << 10

// bound returns s, or "[N bytes sha256:<12 hex digits>]" when s would take
// more than FieldLimit bytes in JSON.
func bound(s string) string {
	if len(s) <= FieldLimit/6 || jsonLen(s) <= FieldLimit {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return fmt.Sprintf("[%d bytes sha256:%x]", len(s), sum[:6])
}

// jsonLen is the length of s inside a JSON string as encoding/json writes
// it: controls, <, > and & as \u00XX, quote and backslash doubled, bytes
// that are not UTF-8 as \ufffd, U+2028 and U+2029 as \u202X. It stops
// counting past FieldLimit.
func jsonLen(s string) int {
	n := 0
	for i := 0; i < len(s) && n <= FieldLimit; {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
				n += 2
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
			n += 6
		} else {
			n += size
		}
		i += size
	}
	return n
}
