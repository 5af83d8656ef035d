// Package store is the bookstore's system of record: CockroachDB in production and
// PostgreSQL in development and tests, both through pgx/v5. Every query here runs on both
// (see the portable-SQL rules in the README), and every multi-statement write goes
// through ExecuteTx, which retries serialization failures correctly on either engine.
package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxuuid "github.com/vgarvardt/pgx-google-uuid/v5"

	"github.com/shopfront/bookstore"
)

// DB is a connection pool to the catalog database plus the query groups that use it.
type DB struct {
	Pool *pgxpool.Pool
	// Cockroach reports whether the server is CockroachDB (transaction retries and
	// migration locking differ).
	Cockroach bool

	Books      *Books
	Authors    *Authors
	Categories *Categories
	Inventory  *Inventory
	Reviews    *Reviews
	Outbox     *Outbox

	Customers     *Customers
	RefreshTokens *RefreshTokens

	TestPSP    *TestPSPCharges
	Webhooks   *WebhookEvents
	Carts      *Carts
	Promotions *Promotions
	Intents    *PaymentIntents

	Orders       *Orders
	CheckoutKeys *CheckoutKeys
	Shipments    *Shipments
}

// Options tune the pool. Zero values keep pgx's defaults.
type Options struct {
	MaxConns int32
	MinConns int32
	// Tracer observes every query (tests count round trips with it).
	Tracer pgx.QueryTracer
}

// Open connects to url (postgres:// or postgresql://) and checks the connection.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgconn redacts the password in its parse errors.
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.MinConns > 0 {
		cfg.MinConns = opts.MinConns
	}
	if opts.Tracer != nil {
		cfg.ConnConfig.Tracer = opts.Tracer
	}
	// uuid.UUID as pgx's own UUID type: otherwise pgx encodes every id through its
	// driver.Valuer (a string, parsed back into 16 bytes), 5% of the server's CPU under
	// the checkout load.
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		pgxuuid.Register(c.TypeMap())
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	var version string
	if err := pool.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return newDB(pool, strings.Contains(version, "CockroachDB")), nil
}

func newDB(pool *pgxpool.Pool, cockroach bool) *DB {
	db := &DB{Pool: pool, Cockroach: cockroach}
	db.Books = &Books{db: db}
	db.Authors = &Authors{db: db}
	db.Categories = &Categories{db: db}
	db.Inventory = &Inventory{db: db, LowStockThreshold: bookstore.LowStockThreshold}
	db.Reviews = &Reviews{db: db}
	db.Outbox = &Outbox{db: db}
	db.Customers = &Customers{db: db}
	db.RefreshTokens = &RefreshTokens{db: db}
	db.TestPSP = &TestPSPCharges{db: db}
	db.Webhooks = &WebhookEvents{db: db}
	db.Carts = &Carts{db: db}
	db.Promotions = &Promotions{db: db}
	db.Intents = &PaymentIntents{db: db}
	db.Orders = &Orders{db: db}
	db.CheckoutKeys = &CheckoutKeys{db: db}
	db.Shipments = &Shipments{db: db}
	return db
}

// Close closes every connection.
func (db *DB) Close() { db.Pool.Close() }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.Pool.Ping(ctx) }

// querier is what both a pool and a transaction can do; read methods accept either so
// that they can run inside a caller's transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}
