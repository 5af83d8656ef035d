package main

import (
	"context"
	"fmt"
	"time"

	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/search/meili"
)

// openMeili connects to Meilisearch and applies the index settings (waiting for them, so
// the first search sees them).
func openMeili(cfg searchConfig) (search.Rebuildable, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ix, err := meili.Open(ctx, meili.Config{URL: cfg.meiliURL, Key: cfg.meiliKey})
	if err != nil {
		return nil, nil, fmt.Errorf("open Meilisearch at %s: %w", cfg.meiliURL, err)
	}
	return ix, func() { ix.Close() }, nil
}
