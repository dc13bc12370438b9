package authserver

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// limiter counts events per client address in fixed windows. It tracks at
// most maxKeys addresses: when that many are in their window, a new address
// is refused until one window ends, so an attacker with many addresses
// costs memory in proportion to maxKeys, never more. IPv6 addresses count
// by their /64, the block one host usually holds.
type limiter struct {
	now     func() time.Time
	window  time.Duration
	max     int
	maxKeys int

	mu      sync.Mutex
	entries map[string]*window
}

type window struct {
	start time.Time
	n     int
}

func newLimiter(now func() time.Time, max int, per time.Duration, maxKeys int) *limiter {
	return &limiter{now: now, window: per, max: max, maxKeys: maxKeys, entries: map[string]*window{}}
}

// allow counts one event for addr and reports whether it is within the
// limit.
func (l *limiter) allow(addr string) bool {
	key := addressKey(addr)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.entries[key]
	if ok && now.Sub(w.start) >= l.window {
		w.start, w.n = now, 0
	}
	if !ok {
		if len(l.entries) >= l.maxKeys {
			l.sweepLocked(now)
		}
		if len(l.entries) >= l.maxKeys {
			return false
		}
		w = &window{start: now}
		l.entries[key] = w
	}
	if w.n >= l.max {
		return false
	}
	w.n++
	return true
}

// spent reports whether addr has used up its events, without counting one.
func (l *limiter) spent(addr string) bool {
	key := addressKey(addr)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.entries[key]
	return ok && now.Sub(w.start) < l.window && w.n >= l.max
}

func (l *limiter) sweepLocked(now time.Time) {
	for k, w := range l.entries {
		if now.Sub(w.start) >= l.window {
			delete(l.entries, k)
		}
	}
}

// addressKey is the unit a limit counts: an IPv4 address, an IPv6 /64, or
// the string itself when it is not an IP.
func addressKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

type addressCtxKey struct{}

func withAddress(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, addressCtxKey{}, addr)
}

// addressFrom returns the client address the server's middleware put on
// the request context.
func addressFrom(ctx context.Context) string {
	a, _ := ctx.Value(addressCtxKey{}).(string)
	return a
}
