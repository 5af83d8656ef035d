package server

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestResolveClientIP(t *testing.T) {
	lb := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for name, c := range map[string]struct {
		peer, xff string
		trusted   []netip.Prefix
		want      string
	}{
		"untrusted peer: header ignored":    {"198.51.100.7:5000", "203.0.113.9", nil, "198.51.100.7"},
		"trusted proxy: right-most hop":     {"10.1.2.3:5000", "1.1.1.1, 203.0.113.9", lb, "203.0.113.9"},
		"client-written hops are not used":  {"10.1.2.3:5000", "6.6.6.6, 203.0.113.9, 10.9.9.9", lb, "203.0.113.9"},
		"hop with a port":                   {"10.1.2.3:5000", "203.0.113.9:41234", lb, "203.0.113.9"},
		"IPv6 hop with a port":              {"10.1.2.3:5000", "[2001:db8::1]:443", lb, "2001:db8::1"},
		"malformed hop: the proxy itself":   {"10.1.2.3:5000", "not-an-ip", lb, "10.1.2.3"},
		"IPv4-mapped peer is the v4 client": {"[::ffff:198.51.100.7]:5000", "", nil, "198.51.100.7"},
	} {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.peer
			if c.xff != "" {
				r.Header.Set("X-Forwarded-For", c.xff)
			}
			if got := resolveClientIP(r, c.trusted); got != c.want {
				t.Fatalf("client IP = %s, want %s", got, c.want)
			}
		})
	}
}
