package loaders

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/store"
)

// CountCache remembers how many books match a filter for a short TTL. A listing's
// totalCount is a count over every matching book — milliseconds of database CPU for a
// large category — while shoppers read it as "about how many"; a figure a few seconds
// old is worth the thousands of requests per second it saves. Bounded: least recently
// used filters are evicted first.
type CountCache struct {
	db    *store.DB
	cache *expirable.LRU[string, int64]
}

// NewCountCache caches up to size counts for ttl each.
func NewCountCache(db *store.DB, size int, ttl time.Duration) *CountCache {
	return &CountCache{db: db, cache: expirable.NewLRU[string, int64](size, nil, ttl)}
}

// Count returns the number of books matching f.
func (c *CountCache) Count(ctx context.Context, f bookstore.BookFilter) (int64, error) {
	key := filterKey(f)
	if n, ok := c.cache.Get(key); ok {
		return n, nil
	}
	n, err := c.db.Books.Count(ctx, f)
	if err != nil {
		return 0, err
	}
	c.cache.Add(key, n)
	return n, nil
}

func filterKey(f bookstore.BookFilter) string {
	return fmt.Sprintf("%v|%v|%v|%v|%v|%v", f.CategoryIDs, deref(f.AuthorID), deref(f.MinPriceCents),
		deref(f.MaxPriceCents), deref(f.MinRating), deref(f.InStock))
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
