// Package testdb gives each test its own migrated database on the real servers that the
// test command (`make test`, which runs cmd/testenv) started: PostgreSQL always, and
// CockroachDB too when BOOKSTORE_TEST_COCKROACH_URL is set. Nothing is mocked.
//
// Run outside `make test` (plain `go test`), Main starts a private PostgreSQL for the
// package's test binary; under CI a missing server is a failure, never a skip.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore/internal/localpg"
	"github.com/shopfront/bookstore/store"
)

// Environment variables set by cmd/testenv.
const (
	EnvPostgres  = "BOOKSTORE_TEST_DATABASE_URL"
	EnvCockroach = "BOOKSTORE_TEST_COCKROACH_URL"
	EnvRedis     = "BOOKSTORE_TEST_REDIS_URL"
	EnvStripe    = "BOOKSTORE_TEST_STRIPE_URL"
)

// Main runs a package's tests, first starting a private PostgreSQL when the test command
// did not provide one. Call it from TestMain.
func Main(m *testing.M) {
	if os.Getenv(EnvPostgres) == "" && os.Getenv("CI") == "" {
		srv, err := localpg.Start(context.Background(), localpg.Options{Fast: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, "testdb: start PostgreSQL:", err)
			os.Exit(1)
		}
		os.Setenv(EnvPostgres, srv.URL())
		code := m.Run()
		srv.Stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// Backend is one database engine the tests run against.
type Backend struct {
	Name      string // "postgres" or "cockroach"
	serverURL string
}

// Backends returns the engines available to this test run; PostgreSQL is always one,
// and its absence fails the test.
func Backends(t testing.TB) []Backend {
	t.Helper()
	pg := os.Getenv(EnvPostgres)
	if pg == "" {
		t.Fatalf("%s is not set: run the tests with `make test` (it starts PostgreSQL and Redis)", EnvPostgres)
	}
	bs := []Backend{{Name: "postgres", serverURL: pg}}
	if c := os.Getenv(EnvCockroach); c != "" {
		bs = append(bs, Backend{Name: "cockroach", serverURL: c})
	}
	return bs
}

// Each runs fn as a subtest on every backend, each with its own fresh database.
func Each(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, b := range Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			fn(t, b.Open(t))
		})
	}
}

// New returns a fresh migrated database on PostgreSQL (tests that exercise the HTTP API
// rather than SQL semantics use it).
func New(t testing.TB) *store.DB {
	t.Helper()
	return Backends(t)[0].Open(t)
}

// NewWith is New with pool options (a query tracer, say).
func NewWith(t testing.TB, opts store.Options) *store.DB {
	t.Helper()
	return Backends(t)[0].OpenWith(t, opts)
}

// Open creates a fresh migrated database on the backend, closed and dropped when the
// test ends.
func (b Backend) Open(t testing.TB) *store.DB {
	t.Helper()
	return b.OpenWith(t, store.Options{})
}

// NewURL creates a fresh migrated PostgreSQL database and returns its URL, for tests
// that run the binary's commands.
func NewURL(t testing.TB) string {
	t.Helper()
	b := Backends(t)[0]
	db := b.Open(t)
	db.Close()
	return b.urlOf(db)
}

func (b Backend) urlOf(db *store.DB) string {
	return withDatabase(b.serverURL, db.Pool.Config().ConnConfig.Database)
}

// OpenWith is Open with pool options.
func (b Backend) OpenWith(t testing.TB, opts store.Options) *store.DB {
	t.Helper()
	if opts.MaxConns == 0 {
		opts.MaxConns = 16
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := "t_" + randomHex(8)
	admin, err := pgx.Connect(ctx, b.serverURL)
	if err != nil {
		t.Fatalf("connect to %s: %v", b.Name, err)
	}
	defer admin.Close(ctx)
	cockroach := b.Name == "cockroach"
	if cockroach {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			t.Fatalf("create database: %v", err)
		}
	} else {
		tmpl, err := template(ctx, b.serverURL)
		if err != nil {
			t.Fatalf("template database: %v", err)
		}
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+tmpl); err != nil {
			t.Fatalf("create database: %v", err)
		}
	}
	db, err := store.Open(ctx, withDatabase(b.serverURL, name), opts)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	if cockroach {
		if _, err := db.Migrate(ctx); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	} else if _, err := db.NewCatalogID(ctx); err != nil {
		// A copy of the template is its own catalog, as a database migrated anew is.
		t.Fatalf("new catalog id: %v", err)
	}
	t.Cleanup(func() {
		db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, b.serverURL); err == nil {
			drop := "DROP DATABASE IF EXISTS " + name
			if !cockroach {
				drop += " WITH (FORCE)"
			}
			_, _ = c.Exec(ctx, drop)
			c.Close(ctx)
		}
	})
	return db
}

var templates sync.Map // server URL -> *templateOnce

type templateOnce struct {
	once sync.Once
	name string
	err  error
}

// template returns a PostgreSQL database holding the migrated schema, created once per
// server: copying it (CREATE DATABASE ... TEMPLATE) takes milliseconds, migrating anew
// takes far longer. Test binaries of several packages share it, so its creation is
// serialised by an advisory lock and it is named after the test run's server.
func template(ctx context.Context, serverURL string) (string, error) {
	v, _ := templates.LoadOrStore(serverURL, &templateOnce{})
	to := v.(*templateOnce)
	to.once.Do(func() { to.name, to.err = makeTemplate(ctx, serverURL) })
	return to.name, to.err
}

func makeTemplate(ctx context.Context, serverURL string) (string, error) {
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(7342001)"); err != nil {
		return "", err
	}
	defer admin.Exec(context.Background(), "SELECT pg_advisory_unlock(7342001)")
	// The migrations are compiled into this binary; a template from another build of them
	// would be wrong, so the name carries the migration set's fingerprint.
	name := "tmpl_" + store.MigrationsFingerprint()[:16]
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return "", err
	}
	db, err := store.Open(ctx, withDatabase(serverURL, building), store.Options{MaxConns: 2})
	if err != nil {
		return "", err
	}
	_, err = db.Migrate(ctx)
	db.Close()
	if err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+name); err != nil {
		return "", err
	}
	return name, nil
}

func withDatabase(serverURL, name string) string {
	u, err := url.Parse(serverURL)
	if err != nil {
		return serverURL
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(hex.EncodeToString(b))
}
