package query

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// More is the cursor that continues one value content_get had to cut: the
// object, its version (a changed object cannot be continued), the gjson
// path of the value and where to resume (bytes of a string, items of an
// array).
type More struct {
	ID      string `json:"o"`
	Type    string `json:"t"`
	Path    string `json:"p"`
	Offset  int    `json:"n"`
	Kind    string `json:"k"`
	Version int64  `json:"v"`
}

const moreCursorPrefix = "m."

func EncodeMore(m More) string {
	b, _ := json.Marshal(m)
	return moreCursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func DecodeMore(s string) (More, bool) {
	var m More
	rest, ok := strings.CutPrefix(s, moreCursorPrefix)
	if !ok {
		return m, false
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || json.Unmarshal(b, &m) != nil || m.ID == "" || m.Path == "" || m.Offset < 0 || (m.Kind != "string" && m.Kind != "array") {
		return m, false
	}
	return m, true
}
