package upstream

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"
)

// The ways an answer asks a client to wait, for a provider's Caller.Wait:
// RetryAfter (the standard header), RetryAfterMS (a member of a JSON error
// body) and ResetTime (a rate-limit header giving the end of the window).
// Which of them an API sends, and in which unit, is the provider's to say.

// maxHint caps every wait an answer asks for.
const maxHint = 24 * time.Hour

// RetryAfterMS reads a retry_after_ms member of a JSON object body, in
// milliseconds, rounded up. It reports false when there is none, or it is
// not a positive number below a day.
func RetryAfterMS(body []byte) (time.Duration, bool) {
	var b struct {
		MS *float64 `json:"retry_after_ms"`
	}
	if json.Unmarshal(body, &b) != nil || b.MS == nil || *b.MS <= 0 || *b.MS >= float64(maxHint/time.Millisecond) {
		return 0, false
	}
	return time.Duration(math.Ceil(*b.MS)) * time.Millisecond, true
}

// ResetTime reads the header name as a Unix time in unit (time.Second or
// time.Millisecond): when the rate-limit window has room again. A time
// further than window from now (a skewed clock, a misread header) is
// capped at that.
func ResetTime(h http.Header, name string, unit time.Duration, now time.Time, window time.Duration) (time.Time, bool) {
	n, err := strconv.ParseInt(h.Get(name), 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	var t time.Time
	if unit == time.Millisecond {
		t = time.UnixMilli(n)
	} else {
		t = time.Unix(n, 0)
	}
	if limit := now.Add(window); t.After(limit) {
		t = limit
	}
	return t, true
}
