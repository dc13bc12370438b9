package auth

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// keyShapes matches strings shaped like a credential of any provider keygate
// knows, wherever they appear in a text. They are looser than the anchored
// patterns in kinds, because a leak need not be a well-formed key to be a
// leak. \b keeps words such as "map_" or "sitemap_" from matching "ap_".
var keyShapes = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`\b(?:` +
		`kg_[a-z]{2,8}_[0-9A-Za-z_]{16,}` + // keygate tokens
		`|cos_[A-Za-z0-9_-]{8,}` + // Cosmic PAT
		`|agk_[A-Za-z0-9_-]{8,}` + // Cosmic agent key
		`|(?:API|USR)-[0-9a-fA-F]{40}` + // Cockpit keys
		`|(?:csk|cpk)(?:_test)?_[0-9a-fA-F]{16,}` + // Cencori secret / publishable
		`|cake_[0-9a-fA-F]{16,}` + // Cencori agent key (32 or 48 hex when well formed)
		`|cencori_[A-Za-z0-9._-]{16,}` + // Cencori generic
		`|cen_[1-9A-HJ-NP-Za-km-z]{32}` + // Cencori legacy (base58)
		`|ap_[A-Za-z0-9_-]{16,}` + // Agrenting user token
		// Agrenting documents neither its agent keys' format nor its
		// session tokens' (docs/providers/agrenting.md, "Keys"): these are
		// the fake's stand-ins for them, masked so a leaked one never shows.
		`|agr_[A-Za-z0-9_-]{16,}` +
		`|sess_[A-Za-z0-9_-]{16,}` +
		`)`)
})

// keyPrefixes are the literal starts of every alternative in keyShapes. A
// text that contains none of them cannot match, and the regexp, which has
// no literal prefix to skip ahead to, need not scan it. Each ends in '_' or
// '-', which mayHoldKey relies on.
var keyPrefixes = []string{"kg_", "cos_", "agk_", "API-", "USR-", "csk_", "cpk_", "cake_", "cencori_", "cen_", "ap_", "agr_", "sess_"}

// mayHoldKey reports whether s contains one of keyPrefixes. Rather than
// search for each prefix in turn, it visits the '_' and '-' in s, which
// ordinary text has few of, and checks which prefix, if any, ends there.
func mayHoldKey(s string) bool {
	return prefixEndsAt(s, '_') || prefixEndsAt(s, '-')
}

func prefixEndsAt(s string, sep byte) bool {
	for i := 0; ; {
		j := strings.IndexByte(s[i:], sep)
		if j < 0 {
			return false
		}
		i += j + 1
		for _, p := range keyPrefixes {
			if p[len(p)-1] == sep && strings.HasSuffix(s[:i], p) {
				return true
			}
		}
	}
}

// sensitiveAttr names log attributes whose value is dropped whole, whatever
// it looks like.
var sensitiveAttr = regexp.MustCompile(`(?i)(^|_|-)(token|secret|password|passwd|authorization|api[_-]?key|cookie)$`)

// minSecretLen is the shortest value Add accepts: shorter strings would
// match ordinary text and redact far more than secrets.
const minSecretLen = 8

// Redactor masks secrets in text. It knows two kinds: exact values it was
// given (keygate's own tokens, upstream keys loaded from the environment),
// which it also recognises base64-, hex- and URL-encoded; and anything
// shaped like a known credential. It is the last pass over every tool result
// and every log line. It is safe for concurrent use.
type Redactor struct {
	mu       sync.RWMutex
	exact    map[string]string // encoded or plain value -> replacement
	replacer *strings.Replacer // rebuilt when exact changes
	filter   *exactFilter      // rebuilt when exact changes
}

// NewRedactor returns a Redactor that knows only the credential shapes.
func NewRedactor() *Redactor {
	return &Redactor{exact: map[string]string{}}
}

// Add registers a secret value. Values shorter than 8 bytes are ignored.
func (r *Redactor) Add(secret string) {
	if len(secret) < minSecretLen {
		return
	}
	forms := map[string]string{secret: placeholder(secret)}
	enc := "[REDACTED:encoded]"
	for _, f := range []string{
		base64.StdEncoding.EncodeToString([]byte(secret)),
		base64.RawStdEncoding.EncodeToString([]byte(secret)),
		base64.URLEncoding.EncodeToString([]byte(secret)),
		base64.RawURLEncoding.EncodeToString([]byte(secret)),
		hex.EncodeToString([]byte(secret)),
		strings.ToUpper(hex.EncodeToString([]byte(secret))),
		url.QueryEscape(secret),
		url.PathEscape(secret),
		jsonEscaped(secret),
	} {
		if f != secret {
			forms[f] = enc
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for f, rep := range forms {
		if _, ok := r.exact[f]; !ok {
			r.exact[f], changed = rep, true
		}
	}
	if changed {
		r.replacer = r.buildReplacer()
		r.filter = newExactFilter(r.exact)
	}
}

// jsonEscaped is the secret as it appears inside a JSON string, which
// differs from the plain value when it holds quotes, backslashes or <>&.
func jsonEscaped(secret string) string {
	b, err := json.Marshal(secret)
	if err != nil {
		return secret
	}
	return string(b[1 : len(b)-1])
}

// buildReplacer orders the values longest first, so that a secret that
// contains another is replaced whole.
func (r *Redactor) buildReplacer() *strings.Replacer {
	vals := make([]string, 0, len(r.exact))
	for v := range r.exact {
		vals = append(vals, v)
	}
	slices.SortFunc(vals, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(vals))
	for _, v := range vals {
		pairs = append(pairs, v, r.exact[v])
	}
	return strings.NewReplacer(pairs...)
}

// exactFilter tells, in one pass over a text, whether any of the exact
// values can occur in it, so that the replacer, which costs far more per
// byte, runs only on texts that hold one (almost none do). It indexes the
// first filterWindow bytes of every value: a text in which no such window
// occurs holds no value.
type exactFilter struct {
	bits   [filterBits / 64]uint64 // a hash of each window, for a quick no
	starts map[uint64][]string     // window -> the values that start with it
}

// filterWindow is the length of the indexed start of each value; no value
// is shorter (minSecretLen, and encodings only lengthen).
const filterWindow = 8

// The hash table has 1<<filterLog bits, 2 KB: few false hits even for
// hundreds of values, and it stays in the L1 cache.
const (
	filterLog  = 14
	filterBits = 1 << filterLog
)

func newExactFilter(values map[string]string) *exactFilter {
	f := &exactFilter{starts: map[uint64][]string{}}
	for v := range values {
		if len(v) < filterWindow {
			return nil // cannot happen (Add refuses short values); a nil filter passes everything
		}
		w := window(v[:filterWindow])
		f.starts[w] = append(f.starts[w], v)
		h := windowHash(w)
		f.bits[h/64] |= 1 << (h % 64)
	}
	return f
}

// mayHold reports whether one of the values occurs in s. A nil filter
// always says yes.
func (f *exactFilter) mayHold(s string) bool {
	if f == nil {
		return true
	}
	for i := 0; i+filterWindow <= len(s); i++ {
		w := window(s[i : i+filterWindow])
		if h := windowHash(w); f.bits[h/64]&(1<<(h%64)) == 0 {
			continue
		}
		for _, v := range f.starts[w] {
			if strings.HasPrefix(s[i:], v) {
				return true
			}
		}
	}
	return false
}

// window reads the filterWindow bytes of s as one number.
func window(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func windowHash(w uint64) uint64 {
	return (w * 0x9E3779B97F4A7C15) >> (64 - filterLog) // Fibonacci hashing: the top bits mix all eight bytes
}

// placeholder is what a secret becomes: its kind's prefix and last four
// characters, the same masking keygate uses everywhere it shows a key.
func placeholder(secret string) string {
	return "[REDACTED:" + Mask(secret) + "]"
}

// Redact returns s with every known secret and every credential-shaped
// string replaced. Its output contains no quote or backslash that was not in
// s, so redacting JSON text keeps it valid JSON.
func (r *Redactor) Redact(s string) string {
	r.mu.RLock()
	rep, filter := r.replacer, r.filter
	r.mu.RUnlock()
	if rep != nil && filter.mayHold(s) {
		s = rep.Replace(s)
	}
	if !mayHoldKey(s) {
		return s
	}
	return keyShapes().ReplaceAllStringFunc(s, placeholder)
}

// SlogReplaceAttr is a slog.HandlerOptions.ReplaceAttr that drops the value
// of attributes named like secrets and redacts every other string, error
// and message, so a secret cannot reach a log line by any attribute.
func (r *Redactor) SlogReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Key != slog.MessageKey && sensitiveAttr.MatchString(a.Key) {
		return slog.String(a.Key, "[REDACTED]")
	}
	switch a.Value.Kind() {
	case slog.KindString:
		return slog.String(a.Key, r.Redact(a.Value.String()))
	case slog.KindAny:
		return slog.String(a.Key, r.Redact(fmt.Sprint(a.Value.Any())))
	}
	return a
}
