// Package server is the HTTP face of the bookstore: routing, middleware (request ids,
// access logs, panics, per-request loaders), health checks, the GraphQL endpoint and the
// embedded GraphiQL page.
package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/shopfront/bookstore/graph"
	"github.com/shopfront/bookstore/loaders"
	"github.com/shopfront/bookstore/resolvers"
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
	// ComplexityLimit caps a query's cost (gqlgen's complexity: 1 per field, times
	// `first` for lists). 0 means the default.
	ComplexityLimit int
}

// New returns the root handler.
func New(cfg Config) http.Handler {
	if cfg.ComplexityLimit == 0 {
		cfg.ComplexityLimit = 5000
	}
	r := chi.NewRouter()
	r.Use(middleware.RequestID, accessLog(cfg.Log), middleware.Recoverer)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", readyz(cfg.DB))

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
	res := &resolvers.Resolver{DB: cfg.DB, Log: cfg.Log, Counts: loaders.NewCountCache(cfg.DB, 10_000, countTTL)}
	gql := NewGraphQL(graph.NewExecutableSchema(graph.Config{Resolvers: res, Complexity: complexity()}), GraphQLOptions{
		Introspection:   cfg.Introspection,
		ComplexityLimit: cfg.ComplexityLimit,
		ErrorPresenter:  resolvers.ErrorPresenter(cfg.Log),
		RecoverFunc:     resolvers.RecoverFunc(cfg.Log),
		Extensions:      responseCache(cfg),
	})
	r.With(loaders.Middleware(cfg.DB, cfg.Loaders)).Handle("/graphql", gql)
	if cfg.GraphiQL {
		g := GraphiQL("/graphql")
		r.Handle("/", g)
		r.Handle("/graphiql/*", g)
	}
	return r
}

func responseCache(cfg Config) []graphql.HandlerExtension {
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
// load balancer sends no traffic to an instance that cannot serve it.
func readyz(db *store.DB) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := db.Ping(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "database": "unreachable"})
			return
		}
		pending, err := db.Pending(ctx)
		if err != nil || pending {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "database": "migrations pending"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
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
