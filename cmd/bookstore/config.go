package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/server"
)

// serveConfig is the configuration of the HTTP server. Every flag has an environment
// variable (flags win), documented in the README.
type serveConfig struct {
	addr            string
	databaseURL     string
	graphiql        bool
	introspection   bool
	migrate         bool
	logLevel        slog.Level
	shutdownTimeout time.Duration
	maxConns        int
	loaderWait      time.Duration
	debugAddr       string
	redisURL        string
	responseTTL     time.Duration
	lowStock        int64
	sec             securityConfig
	search          searchConfig
	protect         protectConfig
	cart            cartConfig
	payment         paymentConfig
	fulfil          fulfilmentConfig
	subs            subscriptionConfig
	// getenv is the environment the flags were read from (key variables are read later,
	// from it or the keys file).
	getenv func(string) string
}

func (c *serveConfig) register(fs *flag.FlagSet, getenv func(string) string, dev bool) {
	c.getenv = getenv
	c.sec.register(fs, getenv)
	c.search.register(fs, getenv)
	c.protect.register(fs, getenv)
	c.cart.register(fs, getenv)
	c.payment.register(fs, getenv, dev)
	c.fulfil.register(fs, getenv, dev)
	c.subs.register(fs, getenv)
	fs.StringVar(&c.addr, "addr", envOr(getenv, "ADDR", "127.0.0.1:8080"), "listen address (ADDR)")
	fs.StringVar(&c.databaseURL, "database-url", getenv("DATABASE_URL"), "PostgreSQL or CockroachDB URL (DATABASE_URL)")
	fs.BoolVar(&c.graphiql, "graphiql", envBool(getenv, "GRAPHIQL", dev), "serve GraphiQL at / (GRAPHIQL)")
	fs.BoolVar(&c.introspection, "introspection", envBool(getenv, "INTROSPECTION", dev), "allow schema introspection (INTROSPECTION)")
	fs.BoolVar(&c.migrate, "migrate", envBool(getenv, "MIGRATE", true), "apply pending migrations at start (MIGRATE)")
	fs.TextVar(&c.logLevel, "log-level", levelOr(getenv("LOG_LEVEL")), "debug, info, warn or error (LOG_LEVEL)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", envDuration(getenv, "SHUTDOWN_TIMEOUT", 15*time.Second), "how long to drain requests on SIGTERM (SHUTDOWN_TIMEOUT)")
	fs.IntVar(&c.maxConns, "db-max-conns", envInt(getenv, "DB_MAX_CONNS", 0), "database pool size; 0 = 8 x CPUs, at most 32; keep instances x pool below the database's max_connections (DB_MAX_CONNS)")
	fs.StringVar(&c.debugAddr, "debug-addr", getenv("DEBUG_ADDR"), "serve net/http/pprof on this address, e.g. 127.0.0.1:6060; empty = off (DEBUG_ADDR)")
	fs.StringVar(&c.redisURL, "redis-url", getenv("REDIS_URL"), "Redis URL for the response cache, rate limits and throttles shared by every instance; empty = in-process only (REDIS_URL)")
	fs.DurationVar(&c.responseTTL, "response-cache-ttl", envDuration(getenv, "RESPONSE_CACHE_TTL", 5*time.Second), "how long anonymous query responses are cached; negative = off (RESPONSE_CACHE_TTL)")
	fs.Int64Var(&c.lowStock, "low-stock-threshold", envInt64(getenv, "LOW_STOCK_THRESHOLD", 5), "a low_stock event is raised when a book's stock falls to this or below (LOW_STOCK_THRESHOLD)")
	fs.DurationVar(&c.loaderWait, "loader-wait", envDuration(getenv, "LOADER_WAIT", 2*time.Millisecond), "how long dataloaders gather keys (LOADER_WAIT)")
}

// subscriptionConfig configures the live order subscriptions (WebSocket and SSE).
type subscriptionConfig struct {
	keepAlive, idle, sessionCheck, recheck time.Duration
	perConn, perCustomer                   int
}

func (c *subscriptionConfig) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.DurationVar(&c.keepAlive, "subscription-keepalive", envDuration(getenv, "SUBSCRIPTION_KEEPALIVE", server.DefaultSubscriptionKeepAlive), "interval of the server's pings on subscription sockets and SSE streams; a socket answering none for two is dropped (SUBSCRIPTION_KEEPALIVE)")
	fs.IntVar(&c.perConn, "subscriptions-per-connection", envInt(getenv, "SUBSCRIPTIONS_PER_CONNECTION", server.DefaultSubscriptionsPerConn), "most active subscriptions on one socket (SUBSCRIPTIONS_PER_CONNECTION)")
	fs.IntVar(&c.perCustomer, "subscriptions-per-customer", envInt(getenv, "SUBSCRIPTIONS_PER_CUSTOMER", server.DefaultSubscriptionsPerCustomer), "most active subscriptions of one customer on this instance, across sockets and SSE (SUBSCRIPTIONS_PER_CUSTOMER)")
	fs.DurationVar(&c.idle, "subscription-idle-timeout", envDuration(getenv, "SUBSCRIPTION_IDLE_TIMEOUT", server.DefaultSubscriptionIdleTimeout), "close a socket without an active subscription after this long (SUBSCRIPTION_IDLE_TIMEOUT)")
	fs.DurationVar(&c.sessionCheck, "subscription-session-check", envDuration(getenv, "SUBSCRIPTION_SESSION_CHECK", server.DefaultSubscriptionSessionCheck), "how often a signed-in stream's session is checked again; it also ends when the access token expires (SUBSCRIPTION_SESSION_CHECK)")
	fs.DurationVar(&c.recheck, "subscription-recheck", envDuration(getenv, "SUBSCRIPTION_RECHECK", 10*time.Second), "how often a subscription reads its order's events without a hint (a lost pub/sub message, no Redis across instances) (SUBSCRIPTION_RECHECK)")
}

func (c subscriptionConfig) options() (server.SubscriptionOptions, error) {
	for _, d := range []time.Duration{c.keepAlive, c.idle, c.sessionCheck, c.recheck} {
		if d <= 0 {
			return server.SubscriptionOptions{}, errors.New("subscription intervals and timeouts must be positive")
		}
	}
	if c.perConn <= 0 || c.perCustomer <= 0 {
		return server.SubscriptionOptions{}, errors.New("subscription limits must be positive")
	}
	return server.SubscriptionOptions{KeepAlive: c.keepAlive, PerConnection: c.perConn, PerCustomer: c.perCustomer,
		IdleTimeout: c.idle, SessionCheck: c.sessionCheck}, nil
}

// protectConfig is what an API gateway would otherwise hold: rate limits, the request
// deadline, body and operation limits, persisted queries, CORS and TLS.
type protectConfig struct {
	rateIP, rateIPBurst     int
	rateUser, rateUserBurst int
	requestTimeout          time.Duration
	maxBodyBytes            int64
	persistedQueries        string
	persistedOnly           bool
	corsOrigins             string
	tlsCert, tlsKey         string
	maxDepth, maxAliases    int
	maxTokens, complexity   int
}

func (c *protectConfig) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.IntVar(&c.rateIP, "rate-limit-ip", envInt(getenv, "RATE_LIMIT_IP", 600), "requests a minute per client IP (IPv6: per /64) without a valid access token; 0 = unlimited (RATE_LIMIT_IP)")
	fs.IntVar(&c.rateIPBurst, "rate-limit-ip-burst", envInt(getenv, "RATE_LIMIT_IP_BURST", 0), "requests a client IP may send at once; 0 = 10 seconds' worth of --rate-limit-ip (RATE_LIMIT_IP_BURST)")
	fs.IntVar(&c.rateUser, "rate-limit-user", envInt(getenv, "RATE_LIMIT_USER", 1200), "requests a minute per signed-in customer; 0 = count them per IP like anonymous ones (RATE_LIMIT_USER)")
	fs.IntVar(&c.rateUserBurst, "rate-limit-user-burst", envInt(getenv, "RATE_LIMIT_USER_BURST", 0), "requests a customer may send at once; 0 = 10 seconds' worth of --rate-limit-user (RATE_LIMIT_USER_BURST)")
	fs.DurationVar(&c.requestTimeout, "request-timeout", envDuration(getenv, "REQUEST_TIMEOUT", server.DefaultTimeout), "deadline of each /graphql request (then UNAVAILABLE errors); 0 = none (REQUEST_TIMEOUT)")
	fs.Int64Var(&c.maxBodyBytes, "max-body-bytes", envInt64(getenv, "MAX_BODY_BYTES", server.DefaultMaxBodyBytes), "largest POST body accepted; larger ones get 413 (MAX_BODY_BYTES)")
	fs.StringVar(&c.persistedQueries, "persisted-queries", getenv("PERSISTED_QUERIES"), "JSON file mapping sha256 hex -> operation text, served by hash; clients may still register others (APQ) unless --persisted-only (PERSISTED_QUERIES)")
	fs.BoolVar(&c.persistedOnly, "persisted-only", envBool(getenv, "PERSISTED_ONLY", false), "execute only the operations of --persisted-queries (PERSISTED_ONLY)")
	fs.StringVar(&c.corsOrigins, "cors-origins", getenv("CORS_ORIGINS"), "comma-separated browser origins allowed to call the API, e.g. https://shop.example.com,https://*.example.com; empty = same-origin only (CORS_ORIGINS)")
	fs.StringVar(&c.tlsCert, "tls-cert", getenv("TLS_CERT"), "PEM certificate chain: serve HTTPS (TLS 1.2+, HSTS), reloaded when the file changes; needs --tls-key (TLS_CERT)")
	fs.StringVar(&c.tlsKey, "tls-key", getenv("TLS_KEY"), "PEM private key of --tls-cert (TLS_KEY)")
	fs.IntVar(&c.maxDepth, "max-depth", envInt(getenv, "MAX_DEPTH", server.DefaultMaxDepth), "deepest field nesting of an operation (introspection aside); 0 = no limit (MAX_DEPTH)")
	fs.IntVar(&c.maxAliases, "max-aliases", envInt(getenv, "MAX_ALIASES", server.DefaultMaxAliases), "most aliased fields in an operation; 0 = no limit (MAX_ALIASES)")
	fs.IntVar(&c.maxTokens, "max-tokens", envInt(getenv, "MAX_TOKENS", server.DefaultMaxTokens), "most lexical tokens in a GraphQL document; 0 = no limit (MAX_TOKENS)")
	fs.IntVar(&c.complexity, "complexity-limit", envInt(getenv, "COMPLEXITY_LIMIT", server.DefaultComplexityLimit), "highest operation cost (1 per field, times the page size for lists); 0 = no limit (COMPLEXITY_LIMIT)")
}

// protection is protectConfig checked and loaded, before anything starts.
type protection struct {
	ipLimit, userLimit     auth.Limit
	limitIP, limitUser     bool
	origins                []string
	manifest               map[string]string
	tls                    *tls.Config
	timeout                time.Duration
	maxBody                int64
	depth, aliases, tokens int
	complexity             int
	persistedOnly          bool
}

func (c protectConfig) resolve(log *slog.Logger) (*protection, error) {
	p := &protection{persistedOnly: c.persistedOnly, maxBody: c.maxBodyBytes}
	var err error
	if p.ipLimit, p.limitIP, err = server.PerMinuteLimit(c.rateIP, c.rateIPBurst); err != nil {
		return nil, fmt.Errorf("--rate-limit-ip: %w", err)
	}
	if p.userLimit, p.limitUser, err = server.PerMinuteLimit(c.rateUser, c.rateUserBurst); err != nil {
		return nil, fmt.Errorf("--rate-limit-user: %w", err)
	}
	if p.origins, err = server.ParseOrigins(c.corsOrigins); err != nil {
		return nil, fmt.Errorf("--cors-origins: %w", err)
	}
	switch {
	case c.persistedQueries != "":
		if p.manifest, err = server.LoadPersistedQueries(c.persistedQueries); err != nil {
			return nil, err
		}
	case c.persistedOnly:
		return nil, errors.New("--persisted-only needs --persisted-queries (the manifest of the operations to serve)")
	}
	switch {
	case c.tlsCert != "" && c.tlsKey != "":
		if p.tls, err = server.TLSConfig(c.tlsCert, c.tlsKey, log); err != nil {
			return nil, err
		}
	case c.tlsCert != "" || c.tlsKey != "":
		return nil, errors.New("set both --tls-cert and --tls-key (TLS_CERT, TLS_KEY) to serve HTTPS")
	}
	if c.maxBodyBytes <= 0 {
		return nil, errors.New("--max-body-bytes must be positive")
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"max-depth", c.maxDepth}, {"max-aliases", c.maxAliases}, {"max-tokens", c.maxTokens}, {"complexity-limit", c.complexity}} {
		if f.v < 0 {
			return nil, fmt.Errorf("--%s must not be negative (0 = no limit)", f.name)
		}
	}
	// Flags say 0 for "none"; server.Config says negative (its 0 is "the default").
	none := func(v int) int {
		if v == 0 {
			return -1
		}
		return v
	}
	p.depth, p.aliases, p.tokens, p.complexity = none(c.maxDepth), none(c.maxAliases), none(c.maxTokens), none(c.complexity)
	p.timeout = c.requestTimeout
	if p.timeout <= 0 {
		p.timeout = -1
	}
	return p, nil
}

// apply sets the protection in the server configuration, with rate limits in Redis when
// rdb is not nil.
func (p *protection) apply(sc *server.Config, rdb *redis.Client, log *slog.Logger) error {
	var err error
	if p.limitIP {
		if sc.RateLimit.PerIP, err = server.NewRateLimiter(rdb, "api-ip", p.ipLimit, log); err != nil {
			return err
		}
	}
	if p.limitUser {
		if sc.RateLimit.PerUser, err = server.NewRateLimiter(rdb, "api-user", p.userLimit, log); err != nil {
			return err
		}
	}
	sc.CORSOrigins, sc.PersistedQueries, sc.PersistedOnly = p.origins, p.manifest, p.persistedOnly
	sc.Timeout, sc.MaxBodyBytes = p.timeout, p.maxBody
	sc.MaxDepth, sc.MaxAliases, sc.MaxTokens, sc.ComplexityLimit = p.depth, p.aliases, p.tokens, p.complexity
	return nil
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func envBool(getenv func(string) string, key string, def bool) bool {
	if b, err := strconv.ParseBool(getenv(key)); err == nil {
		return b
	}
	return def
}

func envInt(getenv func(string) string, key string, def int) int {
	if n, err := strconv.Atoi(getenv(key)); err == nil {
		return n
	}
	return def
}

func envInt64(getenv func(string) string, key string, def int64) int64 {
	if n, err := strconv.ParseInt(getenv(key), 10, 64); err == nil {
		return n
	}
	return def
}

func envDuration(getenv func(string) string, key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(getenv(key)); err == nil {
		return d
	}
	return def
}

func levelOr(s string) *slog.Level {
	l := slog.LevelInfo
	if s != "" {
		if err := l.UnmarshalText([]byte(s)); err != nil {
			l = slog.LevelInfo
		}
	}
	return &l
}

func requireURL(url string) error {
	if url == "" {
		return fmt.Errorf("no database: set DATABASE_URL or --database-url (or use `bookstore dev` for a private one)")
	}
	return nil
}
