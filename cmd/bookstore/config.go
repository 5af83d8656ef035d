package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"
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
}

func (c *serveConfig) register(fs *flag.FlagSet, getenv func(string) string, dev bool) {
	fs.StringVar(&c.addr, "addr", envOr(getenv, "ADDR", "127.0.0.1:8080"), "listen address (ADDR)")
	fs.StringVar(&c.databaseURL, "database-url", getenv("DATABASE_URL"), "PostgreSQL or CockroachDB URL (DATABASE_URL)")
	fs.BoolVar(&c.graphiql, "graphiql", envBool(getenv, "GRAPHIQL", dev), "serve GraphiQL at / (GRAPHIQL)")
	fs.BoolVar(&c.introspection, "introspection", envBool(getenv, "INTROSPECTION", dev), "allow schema introspection (INTROSPECTION)")
	fs.BoolVar(&c.migrate, "migrate", envBool(getenv, "MIGRATE", true), "apply pending migrations at start (MIGRATE)")
	fs.TextVar(&c.logLevel, "log-level", levelOr(getenv("LOG_LEVEL")), "debug, info, warn or error (LOG_LEVEL)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", envDuration(getenv, "SHUTDOWN_TIMEOUT", 15*time.Second), "how long to drain requests on SIGTERM (SHUTDOWN_TIMEOUT)")
	fs.IntVar(&c.maxConns, "db-max-conns", envInt(getenv, "DB_MAX_CONNS", 0), "database pool size; 0 = max(4, 4 x CPUs) (DB_MAX_CONNS)")
	fs.StringVar(&c.debugAddr, "debug-addr", getenv("DEBUG_ADDR"), "serve net/http/pprof on this address, e.g. 127.0.0.1:6060; empty = off (DEBUG_ADDR)")
	fs.StringVar(&c.redisURL, "redis-url", getenv("REDIS_URL"), "Redis URL for the shared response cache; empty = in-process only (REDIS_URL)")
	fs.DurationVar(&c.responseTTL, "response-cache-ttl", envDuration(getenv, "RESPONSE_CACHE_TTL", 5*time.Second), "how long anonymous query responses are cached; negative = off (RESPONSE_CACHE_TTL)")
	fs.DurationVar(&c.loaderWait, "loader-wait", envDuration(getenv, "LOADER_WAIT", 2*time.Millisecond), "how long dataloaders gather keys (LOADER_WAIT)")
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
