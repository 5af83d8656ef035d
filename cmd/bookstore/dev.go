package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/shopfront/bookstore/catalog"
	"github.com/shopfront/bookstore/internal/localcrdb"
	"github.com/shopfront/bookstore/internal/localpg"
	"github.com/shopfront/bookstore/server"
)

// cmdDev is the zero-setup stack: a private database (DATABASE_URL if set, else
// CockroachDB when a cockroach binary is on PATH, else PostgreSQL) kept in a data
// directory, migrated and seeded on first start, and the API with GraphiQL.
func cmdDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg serveConfig
	fs := newFlagSet("dev", stderr)
	cfg.register(fs, getenv, true)
	dataDir := fs.String("data-dir", envOr(getenv, "BOOKSTORE_DATA_DIR", ".bookstore-data"), "where the private database keeps its files (BOOKSTORE_DATA_DIR)")
	books := fs.Int("seed-books", envInt(getenv, "SEED_BOOKS", 10000), "books in the demo catalog loaded into an empty database (SEED_BOOKS)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := server.NewLogger(stdout, cfg.logLevel)
	if err := devKeys(&cfg, *dataDir); err != nil {
		return err
	}
	if cfg.fulfil.mailDir == "" && cfg.fulfil.smtpURL == "" {
		cfg.fulfil.mailDir = filepath.Join(*dataDir, "mail")
	}
	if cfg.search.dir == "" && cfg.search.meiliURL == "" {
		cfg.search.dir = filepath.Join(*dataDir, "search")
	}

	if cfg.databaseURL == "" {
		dir, err := filepath.Abs(*dataDir)
		if err != nil {
			return err
		}
		url, stop, err := startLocalDB(ctx, dir)
		if err != nil {
			return err
		}
		defer stop()
		cfg.databaseURL = url
		log.Info("private database started", "data_dir", dir)
	}
	db, err := openDB(ctx, cfg.databaseURL, cfg.maxConns)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}
	cfg.migrate = false
	n, err := db.Books.Count(ctx, bookstoreAll)
	if err != nil {
		return err
	}
	if n == 0 && *books > 0 {
		log.Info("seeding demo catalog", "books", *books)
		st, err := seed(ctx, db, *books, 1)
		if err == nil {
			// A few real classics, so that the demo's search box finds "tolkein".
			err = loadRecords(ctx, db, catalog.Classics())
		}
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		log.Info("demo catalog loaded", "books", st.loaded, "duration", st.took.String())
	}
	// The demo codes, also in a data directory seeded before they existed.
	if err := seedPromotions(ctx, db, time.Now()); err != nil {
		return fmt.Errorf("seed promotions: %w", err)
	}
	return serve(ctx, cfg, db, log, nil)
}

// startLocalDB starts CockroachDB when its binary is on PATH, else PostgreSQL, with data
// under dir, and returns the URL of the bookstore database and a stop function.
func startLocalDB(ctx context.Context, dir string) (string, func(), error) {
	if _, err := exec.LookPath("cockroach"); err == nil {
		srv, err := localcrdb.Start(ctx, localcrdb.Options{DataDir: filepath.Join(dir, "cockroach")})
		if err != nil {
			return "", nil, err
		}
		url, err := srv.CreateDatabase(ctx, "bookstore")
		if err != nil {
			srv.Stop()
			return "", nil, err
		}
		return url, func() { srv.Stop() }, nil
	}
	if err := localpg.Available(); err != nil {
		return "", nil, err
	}
	srv, err := localpg.Start(ctx, localpg.Options{DataDir: filepath.Join(dir, "postgres")})
	if err != nil {
		return "", nil, err
	}
	url, err := srv.CreateDatabase(ctx, "bookstore")
	if err != nil {
		srv.Stop()
		return "", nil, err
	}
	// The server is on this host: its Unix socket costs less CPU per round trip than
	// loopback TCP.
	return srv.SocketURL(url), func() { srv.Stop() }, nil
}

// devKeys gives the dev stack key material when none is configured: generated once and
// kept in the data directory beside the database whose PII it encrypts.
func devKeys(cfg *serveConfig, dataDir string) error {
	if cfg.sec.keysFile != "" {
		return nil
	}
	configured := true
	for _, k := range keyVars {
		if cfg.getenv(k) == "" {
			configured = false
		}
	}
	if configured {
		return nil
	}
	// Traversable by others (0711): the private PostgreSQL runs as its own user and must
	// reach its directory inside; the keys file itself is 0600.
	if err := os.MkdirAll(dataDir, 0o711); err != nil {
		return err
	}
	cfg.sec.keysFile = filepath.Join(dataDir, "keys.env")
	return ensureKeysFile(cfg.sec.keysFile)
}
