package auth

import (
	"context"
	"net/netip"
)

type clientIPKey struct{}

// WithClientIP records the request's client address, as the HTTP layer resolved it (the
// peer address, or the forwarded address when the peer is a trusted proxy). Throttles key
// on it, so it must never come straight from a client-supplied header.
func WithClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, clientIPKey{}, ip)
}

// ClientIP returns the address recorded by WithClientIP, or "unknown": callers without
// one share a single throttle bucket rather than escaping throttling.
func ClientIP(ctx context.Context) string {
	if ip, ok := ctx.Value(clientIPKey{}).(string); ok && ip != "" {
		return ip
	}
	return "unknown"
}

// IPBucket is the throttling key of a client address: the address itself for IPv4, its
// /64 for IPv6 — one subscriber's allocation, whose 2^64 addresses would otherwise each
// get a fresh budget. Every throttle keyed by client address (rate limits, login and
// registration throttles) must use it.
func IPBucket(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip // "unknown": such requests share one budget rather than escaping it
	}
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.Unmap().String()
}
