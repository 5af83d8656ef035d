package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/search/embedded"
	"github.com/shopfront/bookstore/store"
)

// TestCatalogNewID: `bookstore catalog new-id` gives a (copied) database a fresh
// catalog id, and an index built from it before is rebuilt at the next start rather
// than taken as current.
func TestCatalogNewID(t *testing.T) {
	ctx := context.Background()
	url := testdb.NewURL(t)
	dir := t.TempDir()
	vars := map[string]string{"DATABASE_URL": url, "SEARCH_DIR": dir}
	var out bytes.Buffer
	if err := run(ctx, []string{"reindex"}, env(vars), &out, &out); err != nil {
		t.Fatalf("reindex: %v\n%s", err, out.String())
	}
	db, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before, err := db.CatalogID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, []string{"catalog", "new-id"}, env(vars), &out, &out); err != nil {
		t.Fatalf("catalog new-id: %v\n%s", err, out.String())
	}
	after, err := db.CatalogID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after == before || !strings.Contains(out.String(), after.String()) {
		t.Fatalf("catalog id %s -> %s, output %q", before, after, out.String())
	}
	ix, err := embedded.OpenLive(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	reason, _, err := (&events.SearchIndexer{DB: db, Index: ix}).CatchUp(ctx)
	if err != nil || !strings.Contains(reason, "catalog") {
		t.Fatalf("catch up after new-id: rebuild %q, %v; want a rebuild for the other catalog", reason, err)
	}
	if err := run(ctx, []string{"catalog"}, env(vars), &out, &out); err == nil {
		t.Error("catalog without a subcommand succeeded")
	}
}
