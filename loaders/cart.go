package loaders

import (
	"context"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
)

// Catalog is the cart service's view of the live catalog (cart.Catalog), read through
// the request's loaders: the books, stock and promotions of every cart in a response are
// fetched in one query each, and shared with the rest of the request.
type Catalog struct{}

// Books returns the books found, by id.
func (Catalog) Books(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]*bookstore.Book, error) {
	return loadMap(For(ctx).Book.LoadMany(ctx, ids), ids, func(b *bookstore.Book) bool { return b != nil })
}

// Stock returns units on hand by book.
func (Catalog) Stock(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]int64, error) {
	return loadMap(For(ctx).Stock.LoadMany(ctx, ids), ids, func(int64) bool { return true })
}

// Promotions returns the promotions found, by code.
func (Catalog) Promotions(ctx context.Context, codes []string) (map[string]*bookstore.Promotion, error) {
	return loadMap(For(ctx).Promotion.LoadMany(ctx, codes), codes, func(p *bookstore.Promotion) bool { return p != nil })
}

// Categories returns each book's categories with their ancestors.
func (Catalog) Categories(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID][]uuid.UUID, error) {
	l := For(ctx)
	tree, err := l.Tree(ctx)
	if err != nil {
		return nil, err
	}
	direct, err := loadMap(l.CategoryIDsByBook.LoadMany(ctx, ids), ids, func([]uuid.UUID) bool { return true })
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID][]uuid.UUID, len(direct))
	for b, cats := range direct {
		var all []uuid.UUID
		for _, c := range cats {
			for n := tree.ByID(c); n != nil; {
				all = append(all, n.ID)
				if n.ParentID == nil {
					break
				}
				n = tree.ByID(*n.ParentID)
			}
		}
		out[b] = all
	}
	return out, nil
}

func loadMap[K comparable, V any](thunk func() ([]V, []error), keys []K, keep func(V) bool) (map[K]V, error) {
	vals, errs := thunk()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	out := make(map[K]V, len(keys))
	for i, k := range keys {
		if keep(vals[i]) {
			out[k] = vals[i]
		}
	}
	return out, nil
}
