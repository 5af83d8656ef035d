package auth

import "context"

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
