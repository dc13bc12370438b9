package shape

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Byte budgets bound what one read tool returns to the model: models pay for
// every byte, and a 1 MB object would crowd out everything else.
const (
	DefaultMaxBytes = 16 << 10
	MinMaxBytes     = 1 << 10
	MaxMaxBytes     = 1 << 20
	// EnvelopeBytes is kept back from the budget for the result's own
	// fields (provider, counts, cursor, truncation notes).
	EnvelopeBytes = 512
)

// Cut records one value that was shortened to fit the budget.
type Cut struct {
	Object string `json:"object,omitempty"` // id, in lists
	Path   string `json:"path"`             // gjson path of the value
	Kind   string `json:"kind"`             // "string" (bytes) or "array" (items)
	Total  int    `json:"total"`
	Shown  int    `json:"shown"`
	// Cursor continues this value with content_get (set when the tool can
	// resume it).
	Cursor string `json:"cursor,omitempty"`
}

func (c Cut) String() string {
	unit := "bytes"
	if c.Kind == "array" {
		unit = "items"
	}
	// The path is made of the object's keys, and the id is the provider's:
	// keep both on this line.
	s := fmt.Sprintf("TRUNCATED %s: showing %d of %d %s", OneLine(c.Path), c.Shown, c.Total, unit)
	if c.Object != "" {
		s = fmt.Sprintf("TRUNCATED %s of %s: showing %d of %d %s", OneLine(c.Path), OneLine(c.Object), c.Shown, c.Total, unit)
	}
	if c.Cursor != "" {
		s += "; continue with content_get cursor=" + c.Cursor
	}
	return s
}

func EncodedLen(v any) int {
	// Only the length is wanted: encode into a reused buffer. content_list
	// measures every object it returns, and fit many candidate cuts.
	bp := lenBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBuf {
			lenBufs.Put(bp)
		}
	}()
	b, ok := appendValue((*bp)[:0], v)
	*bp = b[:0]
	if ok {
		return len(b)
	}
	enc, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	return len(enc)
}

// lenBufs holds EncodedLen's buffers; one larger than maxPooledBuf is let go
// rather than kept for a rare large object.
var lenBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxPooledBuf = 64 << 10

// fit shrinks a decoded JSON value until it encodes within budget bytes. It
// caps every string at c bytes (cut on a UTF-8 boundary) and every array at
// c/32 items (at least one), choosing the largest c that fits by binary
// search, so short values are never touched while long ones share what is
// left. It returns the shrunken copy and what was cut; ok is false when even
// the smallest cap does not fit (too many keys), and the caller must drop the
// value.
func Fit(v any, budget int) (out any, cuts []Cut, ok bool) {
	if EncodedLen(v) <= budget {
		return v, nil, true
	}
	lo, hi := 16, largestLeaf(v)
	if hi < lo {
		hi = lo
	}
	var best any
	var bestCuts []Cut
	for lo <= hi {
		c := lo + (hi-lo)/2
		var cc []Cut
		capped := capValue(v, "", c, &cc)
		if EncodedLen(capped) <= budget {
			best, bestCuts = capped, cc
			lo = c + 1
		} else {
			hi = c - 1
		}
	}
	if best == nil {
		return nil, nil, false
	}
	sort.Slice(bestCuts, func(i, j int) bool { return bestCuts[i].Path < bestCuts[j].Path })
	return best, bestCuts, true
}

// largestLeaf is the largest string length or 32 × array length in v, the
// cap above which fit changes nothing.
func largestLeaf(v any) int {
	switch t := v.(type) {
	case string:
		return len(t)
	case []any:
		m := len(t) * 32
		for _, e := range t {
			m = max(m, largestLeaf(e))
		}
		return m
	case map[string]any:
		m := 0
		for _, e := range t {
			m = max(m, largestLeaf(e))
		}
		return m
	}
	return 0
}

func capValue(v any, path string, c int, cuts *[]Cut) any {
	switch t := v.(type) {
	case string:
		if len(t) <= c {
			return t
		}
		cut := TruncateUTF8(t, c)
		*cuts = append(*cuts, Cut{Path: path, Kind: "string", Total: len(t), Shown: len(cut)})
		return cut
	case []any:
		n := max(1, c/32)
		items := t
		if len(t) > n {
			items = t[:n]
			*cuts = append(*cuts, Cut{Path: path, Kind: "array", Total: len(t), Shown: n})
		}
		out := make([]any, len(items))
		for i, e := range items {
			out[i] = capValue(e, JoinPath(path, strconv.Itoa(i)), c, cuts)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = capValue(e, JoinPath(path, k), c, cuts)
		}
		return out
	}
	return v
}

// JoinPath extends a gjson path, escaping the characters gjson gives a
// meaning, so a key such as "a.b" stays one key.
func JoinPath(base, key string) string {
	var b strings.Builder
	for _, r := range key {
		if strings.ContainsRune(`.*?#|@\!=<>%`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	if base == "" {
		return b.String()
	}
	return base + "." + b.String()
}

// TruncateUTF8 cuts s to at most n bytes without splitting a character.
func TruncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// PageItems returns the items from offset on whose JSON fits in room bytes
// (always at least one, so paging moves), and the offset the next page
// starts at, 0 when none are left.
func PageItems[T any](items []T, offset, room int) (page []T, next int) {
	if offset >= len(items) {
		return nil, 0
	}
	used := 2
	for i := offset; i < len(items); i++ {
		size := EncodedLen(items[i]) + 1
		if used+size > room && len(page) > 0 {
			return page, i
		}
		used += size
		page = append(page, items[i])
	}
	return page, 0
}
