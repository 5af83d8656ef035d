package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/search/embedded"
	"github.com/shopfront/bookstore/store"
)

// searchConfig picks the search engine: Meilisearch when MEILI_URL is set, else the
// embedded engine in searchDir.
type searchConfig struct {
	dir      string
	meiliURL string
	meiliKey string
}

func (c *searchConfig) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.dir, "search-dir", getenv("SEARCH_DIR"), "where the embedded search index lives; empty = a temporary directory rebuilt at start (SEARCH_DIR)")
	fs.StringVar(&c.meiliURL, "meili-url", getenv("MEILI_URL"), "Meilisearch URL; empty = the embedded engine (MEILI_URL)")
	fs.StringVar(&c.meiliKey, "meili-key", getenv("MEILI_KEY"), "Meilisearch API key (MEILI_KEY)")
}

// openSearch opens the configured engine and returns it with a function that closes it
// (and removes a temporary index).
func openSearch(cfg searchConfig) (search.Rebuildable, func(), error) {
	if cfg.meiliURL != "" {
		return openMeili(cfg)
	}
	dir, cleanup := cfg.dir, func() {}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "bookstore-search-*")
		if err != nil {
			return nil, nil, err
		}
		dir, cleanup = tmp, func() { os.RemoveAll(tmp) }
	}
	ix, err := embedded.OpenLive(dir)
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("open search index in %s: %w", dir, err)
	}
	return ix, func() { ix.Close(); cleanup() }, nil
}

// catchUp makes the index reflect the database before the server starts (see
// events.SearchIndexer.CatchUp): rebuilt into a fresh index when it was built from
// another catalog, missed pruned events or holds another number of books; changes
// after that arrive through the outbox.
func catchUp(ctx context.Context, db *store.DB, ix search.Rebuildable, log *slog.Logger) error {
	start := time.Now()
	reason, n, err := (&events.SearchIndexer{DB: db, Index: ix}).CatchUp(ctx)
	if err != nil {
		return fmt.Errorf("catch up the search index: %w", err)
	}
	if reason != "" {
		log.Info("search index rebuilt", "reason", reason, "books", n, "duration", time.Since(start).String())
	}
	return nil
}

// cmdReindex rebuilds the search index from the database. With the embedded engine the
// server must be stopped (the index is the server's own files); with Meilisearch it can
// run beside the servers.
func cmdReindex(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reindex", stderr)
	url := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL or CockroachDB URL (DATABASE_URL)")
	var sc searchConfig
	sc.register(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := requireURL(*url); err != nil {
		return err
	}
	if sc.meiliURL == "" && sc.dir == "" {
		return fmt.Errorf("reindex: set SEARCH_DIR (the embedded index to rebuild) or MEILI_URL")
	}
	db, err := openDB(ctx, *url, 8)
	if err != nil {
		return err
	}
	defer db.Close()
	ix, closeIx, err := openSearch(sc)
	if err != nil {
		return err
	}
	defer closeIx()
	start := time.Now()
	n, err := (&events.SearchIndexer{DB: db, Index: ix}).Rebuild(ctx, func(done int) {
		if done%10_000 == 0 {
			fmt.Fprintf(stdout, "indexed %d books\n", done)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reindexed %d books in %s\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}

// cmdCatalog manages the catalog's identity. "new-id" gives the database a fresh
// catalog id: run it on a copy of a database (a restored backup used as another shop, a
// clone for staging) so that a search index built from the original is rebuilt rather
// than taken as current. A restored backup that replaces its original needs nothing:
// the index notices it applied changes the database does not have.
func cmdCatalog(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "new-id" {
		return fmt.Errorf("usage: bookstore catalog new-id [flags]")
	}
	fs := newFlagSet("catalog new-id", stderr)
	url := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL or CockroachDB URL (DATABASE_URL)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := requireURL(*url); err != nil {
		return err
	}
	db, err := openDB(ctx, *url, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	old, err := db.CatalogID(ctx)
	if err != nil {
		return err
	}
	id, err := db.NewCatalogID(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "catalog id %s (was %s): search indexes built before will be rebuilt at the next start\n", id, old)
	return nil
}
