// Package server is the HTTP face of the bookstore: routing, middleware (request ids,
// access logs, panics, per-request loaders), health checks, the GraphQL endpoint and the
// embedded GraphiQL page, and what an API gateway would otherwise do in front of it
// (protect*.go): rate limits, request deadlines, body and operation-shape limits,
// persisted queries, CORS, security headers and TLS.
package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/cart"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/graph"
	"github.com/shopfront/bookstore/identity"
	"github.com/shopfront/bookstore/loaders"
	"github.com/shopfront/bookstore/orders"
	"github.com/shopfront/bookstore/payment/testpsp"
	"github.com/shopfront/bookstore/pii"
	"github.com/shopfront/bookstore/resolvers"
	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/store"
)

// Config is what the HTTP layer needs.
type Config struct {
	DB      *store.DB
	Log     *slog.Logger
	Loaders loaders.Options
	// GraphiQL serves the in-browser IDE at / (turn off in production).
	GraphiQL bool
	// Introspection allows schema introspection queries (GraphiQL needs it).
	Introspection bool
	// CategoryTTL is how long the category tree and listing counts are shared between
	// requests before they are read again; 0 means 10s, a negative value reads the tree
	// per request.
	CategoryTTL time.Duration
	// ResponseTTL is how long anonymous query responses are cached (ResponseCache);
	// 0 means 5s, a negative value turns the cache off.
	ResponseTTL time.Duration
	// Redis, when set, shares the response cache between instances.
	Redis *redis.Client
	// Cache, when set, is the response cache to use (its owner invalidates it on catalog
	// changes); nil makes one from ResponseTTL and Redis.
	Cache *ResponseCache
	// Search answers search and suggest.
	Search search.Index
	// Carts runs the cart use cases; nil means database carts with default settings.
	Carts *cart.Service
	// Checkout places and settles orders; nil means the embedded test PSP with
	// throwaway PII keys (tests and tools only: orders cannot be read after a restart).
	Checkout *checkout.Service
	// Orders runs what follows checkout; nil means one over Checkout without a carrier.
	Orders *orders.Service
	// StripeWebhook, when set, serves POST /webhooks/stripe (it verifies signatures
	// itself; it is rate limited like every route).
	StripeWebhook http.Handler
	// ComplexityLimit caps a query's cost (gqlgen's complexity: 1 per field, times
	// `first` for lists). 0 means DefaultComplexityLimit, a negative value none.
	ComplexityLimit int

	// Identity signs customers up and in; Tokens verifies access tokens on every request.
	Identity *identity.Service
	Tokens   auth.Verifier
	// Sessions refuses access tokens whose session ended (logout, reuse detection,
	// password or role change) on every request; nil: Identity's revocation set.
	Sessions auth.SessionChecker
	// TrustedProxies are the peers whose X-Forwarded-For is believed (a load balancer in
	// front of the service). Empty: the TCP peer is the client.
	TrustedProxies []netip.Prefix

	// RateLimit caps requests per client IP and per signed-in customer (see RateLimit);
	// the zero value sets no limit (cmd/bookstore sets them from its flags).
	RateLimit RateLimit
	// Timeout is the deadline of each /graphql request: 0 means DefaultTimeout, a
	// negative value none.
	Timeout time.Duration
	// MaxBodyBytes caps a POST body (413 above it); 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// PersistedQueries is the manifest of known operations (sha256 hex -> text, see
	// LoadPersistedQueries); PersistedOnly executes nothing else. Without PersistedOnly,
	// clients may also register operations (automatic persisted queries).
	PersistedQueries map[string]string
	PersistedOnly    bool
	// CORSOrigins are the browser origins allowed to call /graphql (see ParseOrigins);
	// empty: same-origin only.
	CORSOrigins []string
	// MaxDepth and MaxAliases bound an operation's shape (QueryLimits), MaxTokens the
	// size of its document: 0 means DefaultMaxDepth, DefaultMaxAliases and
	// DefaultMaxTokens, a negative value no limit.
	MaxDepth, MaxAliases, MaxTokens int

	// OrderFeed wakes order subscriptions when their order has new events (its owner
	// runs it as an outbox consumer and Listen); nil: a feed nobody notifies, whose
	// subscriptions see new events at its re-check only.
	OrderFeed *events.OrderFeed
	// Subscriptions configures the streaming transports (graphql-transport-ws, SSE).
	Subscriptions SubscriptionOptions
	// StreamsDone ends every open subscription stream when it ends (the server shutting
	// down: http.Server.Shutdown waits for SSE requests and ignores WebSockets); nil:
	// streams end with their clients.
	StreamsDone context.Context
}

// New returns the root handler.
//
// Every response carries the security headers (and HSTS over TLS). Health checks answer
// before anything else: they are never rate limited. Every other route is limited per
// client; /graphql also gets CORS (answering preflights before the limits count them),
// the request deadline and the per-request loaders, in that order.
func New(cfg Config) http.Handler {
	cfg.ComplexityLimit = orDefault(cfg.ComplexityLimit, DefaultComplexityLimit)
	cfg.MaxDepth = orDefault(cfg.MaxDepth, DefaultMaxDepth)
	cfg.MaxAliases = orDefault(cfg.MaxAliases, DefaultMaxAliases)
	cfg.MaxTokens = orDefault(cfg.MaxTokens, DefaultMaxTokens)
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	r := chi.NewRouter()
	r.Use(requestID, clientIP(cfg.TrustedProxies), accessLog(cfg.Log), securityHeaders, middleware.Recoverer)
	r.NotFound(notFound)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", readyz(cfg.DB, time.Second))

	switch {
	case cfg.CategoryTTL == 0:
		cfg.Loaders.Trees = loaders.NewTreeCache(cfg.DB, 10*time.Second)
	case cfg.CategoryTTL > 0:
		cfg.Loaders.Trees = loaders.NewTreeCache(cfg.DB, cfg.CategoryTTL)
	}
	countTTL := cfg.CategoryTTL
	if countTTL <= 0 {
		countTTL = 10 * time.Second
	}
	if cfg.Carts == nil {
		// Tests and tools that do not care about carts get database carts with the
		// defaults rather than a nil service.
		cfg.Carts = cart.New(cart.Config{Store: cfg.DB.Carts})
	}
	if cfg.Checkout == nil {
		cfg.Checkout = defaultCheckout(cfg)
	}
	if cfg.Orders == nil {
		o, err := orders.New(orders.Config{DB: cfg.DB, Checkout: cfg.Checkout, PSP: cfg.Checkout.PSP(), Log: cfg.Log})
		if err != nil {
			panic(err)
		}
		cfg.Orders = o
	}
	if cfg.Loaders.Shipments == nil {
		cfg.Loaders.Shipments = cfg.Orders.Shipments
	}
	if cfg.OrderFeed == nil {
		cfg.OrderFeed = &events.OrderFeed{Log: cfg.Log}
	}
	var sessions []auth.SessionChecker
	switch {
	case cfg.Sessions != nil:
		sessions = append(sessions, cfg.Sessions)
	case cfg.Identity != nil:
		sessions = append(sessions, cfg.Identity.Revocations())
	}
	maxBody := cfg.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	st := &streams{opts: cfg.Subscriptions.withDefaults(), tokens: cfg.Tokens, sessions: sessions, origins: cfg.CORSOrigins,
		log: cfg.Log, maxBody: maxBody, done: cfg.StreamsDone, perCustomer: map[uuid.UUID]int{}}
	res := &resolvers.Resolver{DB: cfg.DB, Log: cfg.Log, Counts: loaders.NewCountCache(cfg.DB, 10_000, countTTL),
		Identity: cfg.Identity, Index: cfg.Search, Carts: cfg.Carts, Checkouts: cfg.Checkout, OrderService: cfg.Orders,
		Feed: cfg.OrderFeed, Streams: st}
	// The guards run first, each in linear time: ValidationGuard before the validator
	// (quadratic in repeated selections), QueryLimits before the complexity walk
	// (exponential in nested fragment spreads) and the card scan. Hence the complexity
	// limit is added here, after them, not by NewGraphQL; and the executor's query cache
	// is made here, so that ValidationGuard skips the documents already validated.
	queries := lru.New[*ast.QueryDocument](1000)
	checks := []graphql.HandlerExtension{ValidationGuard{
		Cache: queries, TokenLimit: max(cfg.MaxTokens, 0), Trusted: cfg.PersistedQueries,
	}, QueryLimits{
		MaxDepth: max(cfg.MaxDepth, 0), MaxAliases: max(cfg.MaxAliases, 0), MaxCost: max(cfg.ComplexityLimit, 0),
	}}
	if cfg.ComplexityLimit > 0 {
		checks = append(checks, extension.FixedComplexityLimit(cfg.ComplexityLimit))
	}
	checks = append(checks, CredentialGuard{}, CardGuard{}, streamLoaders{db: cfg.DB, opts: cfg.Loaders})
	gql := NewGraphQL(graph.NewExecutableSchema(graph.Config{Resolvers: res, Complexity: complexity()}), GraphQLOptions{
		Introspection:    cfg.Introspection,
		ErrorPresenter:   resolvers.ErrorPresenter(cfg.Log),
		RecoverFunc:      resolvers.RecoverFunc(cfg.Log),
		Extensions:       append(checks, responseCache(cfg)...),
		MaxBodyBytes:     cfg.MaxBodyBytes,
		PersistedQueries: cfg.PersistedQueries,
		PersistedOnly:    cfg.PersistedOnly,
		Transports:       []graphql.Transport{wsTransport{st}, sseTransport{st}},
	})
	gql.SetQueryCache(queries)
	gql.SetParserTokenLimit(max(cfg.MaxTokens, 0)) // 0: no limit
	limit := rateLimit(cfg.RateLimit, cfg.Log)
	r.With(allowCORS(cfg.CORSOrigins), auth.Middleware(cfg.Tokens, sessions...), limit, requestTimeout(cfg.Timeout),
		loaders.Middleware(cfg.DB, cfg.Loaders)).Handle("/graphql", gql)
	if cfg.StripeWebhook != nil {
		r.With(limit).Method(http.MethodPost, "/webhooks/stripe", cfg.StripeWebhook)
	}
	if cfg.GraphiQL {
		g := GraphiQL("/graphql")
		r.With(limit).Handle("/", g)
		r.With(limit).Handle("/graphiql/*", g)
	}
	return r
}

// defaultCheckout is checkout over the embedded test PSP with keys made up for this
// process, for tests and tools that build a server without configuring payments.
func defaultCheckout(cfg Config) *checkout.Service {
	key, err := pii.GenerateKey()
	if err != nil {
		panic(err)
	}
	kr, err := pii.NewKeyring(pii.MasterKey{ID: "ephemeral", Key: key})
	if err != nil {
		panic(err)
	}
	idx, err := pii.NewBlindIndex(key)
	if err != nil {
		panic(err)
	}
	c := checkout.Config{DB: cfg.DB, Carts: cfg.Carts, PSP: testpsp.New(cfg.DB.TestPSP, testpsp.Options{}),
		PII: kr, Index: idx, Log: cfg.Log}
	if cfg.Identity != nil {
		c.Customers = cfg.Identity
	}
	svc, err := checkout.New(c)
	if err != nil {
		panic(err)
	}
	return svc
}

// orDefault: 0 means def; other values (negative: "none") are kept.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func responseCache(cfg Config) []graphql.HandlerExtension {
	if cfg.Cache != nil {
		return []graphql.HandlerExtension{cfg.Cache}
	}
	ttl := cfg.ResponseTTL
	switch {
	case ttl < 0:
		return nil
	case ttl == 0:
		ttl = 5 * time.Second
	}
	return []graphql.HandlerExtension{NewResponseCache(10_000, ttl, cfg.Redis)}
}

// readyz answers 200 when the database answers and every migration is applied, so a
// load balancer sends no traffic to an instance that cannot serve it; its detail counts
// the outbox events consumers parked (outbox_parked). The answer is
// cached for ttl: probes (or anyone, the route is public) cannot turn into a database
// ping and a migration-table read each.
func readyz(db *store.DB, ttl time.Duration) http.HandlerFunc {
	var mu sync.Mutex
	var at time.Time
	var status int
	var body map[string]string
	check := func(ctx context.Context) (int, map[string]string) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := db.Ping(ctx); err != nil {
			return http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "database": "unreachable"}
		}
		if pending, err := db.Pending(ctx); err != nil || pending {
			return http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "database": "migrations pending"}
		}
		// Parked events need an operator (`bookstore outbox requeue`), not another
		// instance: they are reported, and leave the instance ready.
		parked := "unknown"
		if n, err := db.Outbox.ParkedCount(ctx); err == nil {
			parked = strconv.FormatInt(n, 10)
		}
		return http.StatusOK, map[string]string{"status": "ok", "outbox_parked": parked}
	}
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock() // one check at a time; the others wait for its answer
		if time.Since(at) >= ttl {
			status, body = check(context.WithoutCancel(r.Context()))
			at = time.Now()
		}
		st, b := status, body
		mu.Unlock()
		writeJSON(w, st, b)
	}
}

// requestID takes the client's X-Request-Id when it is a short safe token (so a proxy's
// id joins our logs to its own) and makes one otherwise, so that forged or huge ids
// (control characters, 64 KiB log lines) never reach a log; the id goes back in the
// response's X-Request-Id.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(middleware.RequestIDHeader)
		if !safeRequestID(id) {
			id = uuid.NewString()
		}
		w.Header().Set(middleware.RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), middleware.RequestIDKey, id)))
	})
}

// safeRequestID: 1 to 64 characters of [A-Za-z0-9._:-] (UUIDs, ULIDs, trace ids).
func safeRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// accessLog writes one line per request, with the request id, after it completes.
func accessLog(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", ww.Status()),
				slog.Int("bytes", ww.BytesWritten()),
				slog.Duration("duration", time.Since(start)))
		})
	}
}
