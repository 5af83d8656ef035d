package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/cors"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
)

// This file holds what an API gateway would otherwise do in front of the service, done in
// process so that every deployment (one binary, no gateway) gets it: rate limits, the
// per-request deadline, CORS and security headers. The operation-shape limits are in
// protect_limits.go, TLS in protect_tls.go, the persisted-query manifest in
// protect_persisted.go.

// DefaultTimeout is the deadline of a /graphql request when Config.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// RateLimit holds the request budgets. A signed-in request (a valid access token) spends
// from its customer's budget, any other request from its client IP's (IPv6 clients by
// /64, the block one subscriber gets, so rotating addresses within it gains nothing).
// Signed-in requests are not counted per IP, so customers behind one NAT do not throttle
// each other; the accounts themselves are throttled at registration. A nil limiter sets
// no limit, except that with PerUser nil signed-in requests spend from PerIP like anonymous
// ones. Health checks are never limited.
type RateLimit struct {
	PerIP   auth.Limiter
	PerUser auth.Limiter
}

// NewRateLimiter returns the limiter of one budget, l per key: in Redis when rdb is not
// nil, so that it holds across every instance (falling back to a per-instance limit
// while Redis fails, rather than refusing or admitting everything), in process
// otherwise. name separates budgets in Redis ("api-ip", "api-user").
func NewRateLimiter(rdb *redis.Client, name string, l auth.Limit, log *slog.Logger) (auth.Limiter, error) {
	local, err := auth.NewLocalLimiter(l, auth.LocalOptions{})
	if err != nil {
		return nil, fmt.Errorf("rate limit %s: %w", name, err)
	}
	if rdb == nil {
		return local, nil
	}
	remote, err := auth.NewRedisLimiter(rdb, "bookstore:throttle:"+name, l)
	if err != nil {
		return nil, fmt.Errorf("rate limit %s: %w", name, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var lastWarn atomic.Int64 // unix nanoseconds: one warning per 10s, not one per request
	onErr := func(err error) {
		now := time.Now().UnixNano()
		last := lastWarn.Load()
		if now-last < int64(10*time.Second) || !lastWarn.CompareAndSwap(last, now) {
			return
		}
		log.Warn("redis rate limiter unavailable; limiting per instance", "limiter", name, "err", err)
	}
	return auth.WithFallback(remote, local, onErr), nil
}

// rateLimit refuses requests over their budget with 429, a Retry-After header and a
// GraphQL-shaped body (extensions.code RATE_LIMITED). It runs after auth.Middleware and
// clientIP, whose results it keys on. A limiter that fails lets the request through:
// an outage of the limiter must not become an outage of the shop.
func rateLimit(rl RateLimit, log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if rl.PerIP == nil && rl.PerUser == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			lim, key := rl.PerIP, auth.IPBucket(auth.ClientIP(ctx))
			if id, ok := auth.FromContext(ctx); ok && rl.PerUser != nil {
				lim, key = rl.PerUser, id.CustomerID.String()
			}
			if lim != nil {
				ok, retry, err := lim.Allow(ctx, key)
				switch {
				case err != nil:
					if ctx.Err() == nil {
						log.WarnContext(ctx, "rate limiter failed; request admitted", "err", err)
					}
				case !ok:
					tooManyRequests(w, r, retry)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

func tooManyRequests(w http.ResponseWriter, r *http.Request, retry time.Duration) {
	secs := max(int64((retry+time.Second-1)/time.Second), 1)
	media, ok := negotiate(r.Header.Values("Accept"))
	if !ok {
		media = typeJSON
	}
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	// ThrottledError words the message as every other throttle does, with the same rounding.
	writeRequestError(w, media, http.StatusTooManyRequests, auth.CodeRateLimited,
		bookstore.ErrorMessage(&auth.ThrottledError{RetryAfter: time.Duration(secs) * time.Second}))
}

// requestTimeout gives each request a deadline. Resolvers, loaders and the database stop
// at it, and the request is answered with UNAVAILABLE errors (see
// resolvers.ErrorPresenter) instead of holding a connection and a database session.
func requestTimeout(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if d <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isStream(r) {
				// Subscriptions last as long as their client wants (within the
				// transports' own limits: idle timeout, session checks, keep-alive).
				next.ServeHTTP(w, r)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// HSTS is sent on responses served over TLS: browsers then refuse plain HTTP to this host
// (and its subdomains) for two years. Never over plain HTTP, as RFC 6797 requires.
const HSTS = "max-age=63072000; includeSubDomains"

// apiCSP forbids a browser to render or frame anything an API response holds; the
// GraphiQL page replaces it with its own policy.
const apiCSP = "default-src 'none'; frame-ancestors 'none'"

// securityHeaders sets the headers every response carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", apiCSP)
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", HSTS)
		}
		next.ServeHTTP(w, r)
	})
}

// corsHeaders are the request headers a browser app may send cross-origin: the bearer
// token, the JSON content type and Accept, and the headers Apollo clients send (client
// awareness, and the two that Apollo's CSRF prevention asks of simple requests).
// Automatic persisted queries travel in the body's extensions and need no header.
var corsHeaders = []string{
	"Authorization", "Content-Type", "Accept",
	"Apollographql-Client-Name", "Apollographql-Client-Version",
	"Apollo-Require-Preflight", "X-Apollo-Operation-Name",
}

// CORSMaxAge is how long browsers may cache a preflight answer (Chromium caps it at 2h).
const CORSMaxAge = 2 * time.Hour

// allowCORS lets the allowed origins call the endpoint from a browser (github.com/rs/cors).
// No origins: no CORS headers at all, so browsers allow same-origin calls only (rs/cors
// would read an empty list as "any origin"). Credentials are not allowed: the access
// token travels in the Authorization header, never in a cookie, so a page of another
// origin has nothing ambient to ride on. Retry-After is exposed so that a browser app
// can honour a 429.
func allowCORS(origins []string) func(http.Handler) http.Handler {
	if len(origins) == 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	return cors.New(cors.Options{
		AllowedOrigins:   origins,
		AllowedMethods:   []string{http.MethodGet, http.MethodPost},
		AllowedHeaders:   corsHeaders,
		ExposedHeaders:   []string{"Retry-After", "X-Request-Id"},
		AllowCredentials: false,
		MaxAge:           int(CORSMaxAge / time.Second),
	}).Handler
}

// ParseOrigins reads a comma-separated CORS allowlist. Each entry is an origin as
// browsers send it, scheme://host[:port] (http or https, no path), optionally with one
// "*" for any subdomain (https://*.example.com); a lone "*" allows every origin.
func ParseOrigins(s string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(s, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o != "*" {
			if err := checkOrigin(o); err != nil {
				return nil, err
			}
		}
		out = append(out, strings.ToLower(o))
	}
	return out, nil
}

func checkOrigin(o string) error {
	if strings.Count(o, "*") > 1 {
		return fmt.Errorf("CORS origin %q: at most one wildcard", o)
	}
	if scheme, host, _ := strings.Cut(o, "://"); strings.Contains(o, "*") &&
		(strings.Contains(scheme, "*") || !strings.HasPrefix(host, "*.")) {
		// "https://*example.com" would also allow https://evilexample.com.
		return fmt.Errorf("CORS origin %q: a wildcard must be a whole leftmost label, as in https://*.example.com", o)
	}
	u, err := url.Parse(strings.Replace(o, "*", "wildcard", 1))
	switch {
	case err != nil:
		return fmt.Errorf("CORS origin %q: %w", o, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("CORS origin %q: want http(s)://host[:port]", o)
	case u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("CORS origin %q: want scheme://host[:port] without path, query or credentials", o)
	case strings.HasSuffix(o, "/"):
		return fmt.Errorf("CORS origin %q: remove the trailing slash (browsers send none)", o)
	}
	return nil
}

// notFound answers unknown paths in the API's error shape.
func notFound(w http.ResponseWriter, _ *http.Request) {
	writeRequestError(w, typeJSON, http.StatusNotFound, bookstore.CodeNotFound, "no such endpoint; the API is at /graphql")
}

var errBadLimit = errors.New("must not be negative")

// PerMinuteLimit is the budget of n requests a minute in bursts of up to burst; burst 0
// means ten seconds' worth (n/6, at least 1). n == 0 returns ok == false: no limit.
func PerMinuteLimit(n, burst int) (l auth.Limit, ok bool, err error) {
	if n < 0 || burst < 0 {
		return auth.Limit{}, false, errBadLimit
	}
	if n == 0 {
		return auth.Limit{}, false, nil
	}
	if burst == 0 {
		burst = max(n/6, 1)
	}
	return auth.Limit{Rate: n, Period: time.Minute, Burst: burst}, true, nil
}
