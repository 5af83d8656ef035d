package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/identity"
	"github.com/shopfront/bookstore/loaders"
	"github.com/shopfront/bookstore/server"
	"github.com/shopfront/bookstore/store"
)

func cmdServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg serveConfig
	fs := newFlagSet("serve", stderr)
	cfg.register(fs, getenv, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := requireURL(cfg.databaseURL); err != nil {
		return err
	}
	log := server.NewLogger(stdout, cfg.logLevel)
	db, err := openDB(ctx, cfg.databaseURL, cfg.maxConns)
	if err != nil {
		return err
	}
	defer db.Close()
	return serve(ctx, cfg, db, log, nil)
}

func openDB(ctx context.Context, url string, maxConns int) (*store.DB, error) {
	if maxConns <= 0 {
		// A request spends much of its time between round trips (in Go, in the network),
		// so the database stays busy only with more connections than cores: on 2 cores
		// the checkout bench held 250 purchases/s with 16 and refused 15% of them with 8.
		// At most 32: instances × pool must stay below the server's max_connections
		// (PostgreSQL's default is 100).
		maxConns = min(8*runtime.GOMAXPROCS(0), 32)
	}
	return store.Open(ctx, url, store.Options{MaxConns: int32(maxConns)})
}

// serve runs the HTTP server until ctx ends, then drains in-flight requests for up to
// cfg.shutdownTimeout. ready, if not nil, receives the bound address once listening.
func serve(ctx context.Context, cfg serveConfig, db *store.DB, log *slog.Logger, ready chan<- string) error {
	// Configuration mistakes fail here, before migrations run or anything starts.
	protect, err := cfg.protect.resolve(log)
	if err != nil {
		return err
	}
	subs, err := cfg.subs.options()
	if err != nil {
		return err
	}
	if err := cfg.payment.validate(); err != nil {
		return err
	}
	if cfg.migrate {
		n, err := db.Migrate(ctx)
		if err != nil {
			return err
		}
		log.Info("migrations applied", "count", n)
	}
	var rdb *redis.Client
	if cfg.redisURL != "" {
		opts, err := redis.ParseURL(cfg.redisURL)
		if err != nil {
			return fmt.Errorf("parse REDIS_URL: %w", err)
		}
		rdb = redis.NewClient(opts)
		defer rdb.Close()
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("connect to Redis: %w", err)
		}
	}
	if cfg.lowStock < 0 {
		return fmt.Errorf("LOW_STOCK_THRESHOLD must be >= 0, got %d", cfg.lowStock)
	}
	db.Inventory.LowStockThreshold = cfg.lowStock
	sec, err := buildSecurity(cfg.sec, cfg.getenv, db, rdb, log)
	if err != nil {
		return err
	}
	carts, err := cfg.cart.service(db, rdb, log)
	if err != nil {
		return err
	}
	orders, webhook, err := cfg.payment.checkout(db, carts, sec, log, protect.timeout)
	if err != nil {
		return err
	}
	fulfil, err := cfg.fulfil.build(db, orders, carts, log)
	if err != nil {
		return err
	}
	ix, closeIx, err := openSearch(cfg.search)
	if err != nil {
		return err
	}
	defer closeIx()
	if err := catchUp(ctx, db, ix, log); err != nil {
		return err
	}
	var cache *server.ResponseCache
	if cfg.responseTTL >= 0 {
		cache = server.NewResponseCache(10_000, cfg.responseTTL, rdb)
	}
	// The relay delivers catalog changes to the search index and drops cached responses
	// (on every instance, through Redis, when configured). It stops after the HTTP server.
	// The cache moves on twice: at once (pages read from the database), and after the
	// index has the change (search results), whatever the order the consumers run in.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	broadcast := &events.CatalogBroadcast{Redis: rdb, Log: log, OnChange: func(gen uint64) {
		if cache != nil {
			cache.Advance(gen)
		}
	}}
	relay := &events.Relay{Outbox: db.Outbox, Log: log, Handlers: []events.Handler{
		events.Then(&events.SearchIndexer{DB: db, Index: ix}, broadcast), broadcast, &events.LowStockAlerts{Log: log},
	}}
	relay.Handlers = append(relay.Handlers, fulfil.handlers...)
	// Live order subscriptions: hints from the relay (over Redis to every instance), the
	// events themselves read from the database by each subscription.
	feed := &events.OrderFeed{Redis: rdb, Log: log, Recheck: cfg.subs.recheck}
	relay.Handlers = append(relay.Handlers, feed)
	var bgDone sync.WaitGroup
	bgDone.Add(7)
	go func() { defer bgDone.Done(); feed.Listen(bg) }()
	go func() { defer bgDone.Done(); _ = relay.Run(bg) }()
	go func() { defer bgDone.Done(); broadcast.Listen(bg) }()
	go func() { defer bgDone.Done(); purgeSessions(bg, db, log, 15*time.Minute) }()
	go func() { defer bgDone.Done(); sweepCarts(bg, db, log, time.Hour) }()
	go func() { defer bgDone.Done(); _ = fulfil.carrier.Run(bg) }()
	go func() {
		defer bgDone.Done()
		orders.RunRecovery(bg, db.Outbox, checkout.RecoverOptions{After: cfg.payment.recoverAfter, Every: cfg.payment.recoverEvery})
	}()
	defer bgDone.Wait()
	defer stopBG()

	// Open subscription streams end when shutdown starts: Shutdown would wait for SSE
	// requests until its timeout, and leaves hijacked WebSockets alone.
	streams, endStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer endStreams()
	scfg := server.Config{
		Search:         ix,
		Cache:          cache,
		Identity:       sec.identity,
		Carts:          carts,
		Checkout:       orders,
		Orders:         fulfil.orders,
		StripeWebhook:  webhook,
		Tokens:         sec.tokens,
		TrustedProxies: sec.proxies,
		ResponseTTL:    cfg.responseTTL,
		Redis:          rdb,
		DB:             db,
		Log:            log,
		Loaders:        loaders.Options{Wait: cfg.loaderWait, Shipments: fulfil.carrier.ShipmentsOf},
		GraphiQL:       cfg.graphiql,
		Introspection:  cfg.introspection,
		OrderFeed:      feed,
		Subscriptions:  subs,
		StreamsDone:    streams,
	}
	if err := protect.apply(&scfg, rdb, log); err != nil {
		return err
	}
	h := server.New(scfg)
	if cfg.debugAddr != "" {
		// pprof on its own listener, never on the public one: profiles reveal internals.
		dbg := &http.Server{Addr: cfg.debugAddr, Handler: debugMux(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := dbg.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("debug listener failed", "err", err)
			}
		}()
		defer dbg.Close()
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         protect.tls,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Longer than the request deadline, so that a request cut off by it still gets
		// its answer written.
		WriteTimeout:   max(60*time.Second, protect.timeout+15*time.Second),
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	srv.RegisterOnShutdown(endStreams)
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	addr := ln.Addr().String()
	scheme := "http"
	if protect.tls != nil {
		scheme = "https"
	}
	log.Info("listening", "addr", addr, "graphql", scheme+"://"+addr+"/graphql", "graphiql", cfg.graphiql,
		"cors_origins", protect.origins, "persisted_only", protect.persistedOnly)
	if ready != nil {
		ready <- addr
	}
	errc := make(chan error, 1)
	go func() {
		if protect.tls != nil {
			errc <- srv.ServeTLS(ln, "", "") // the certificate comes from TLSConfig
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

func debugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// purgeSessions deletes the refresh tokens of ended sessions (every token rotation adds a
// row; a live session's spent tokens stay, to detect their replay) at start and then
// every interval, until ctx ends. A session's rows outlive it by SessionPurgeDelay, so a
// logged-out session's last access token stays refused until it expires. Several
// instances may purge at once: the deletes are idempotent.
func purgeSessions(ctx context.Context, db *store.DB, log *slog.Logger, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := db.RefreshTokens.DeleteExpired(ctx, time.Now().Add(-identity.SessionPurgeDelay)); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "purge ended sessions", "err", err)
		} else if n > 0 {
			log.InfoContext(ctx, "purged ended sessions' refresh tokens", "tokens", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
