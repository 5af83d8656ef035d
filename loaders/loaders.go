// Package loaders batches the per-object reads of one GraphQL request into one query per
// kind (graph-gophers/dataloader v7): a page of 50 books with authors, categories,
// availability and reviews costs the same number of database round trips as a page of 5.
// Loaders live for one request only (Middleware puts a fresh set in the context), so
// their caches never serve one customer's data to another or go stale.
package loaders

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/graph-gophers/dataloader/v7"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/shipping"
	"github.com/shopfront/bookstore/store"
)

// Options tune batching.
type Options struct {
	// Wait is how long a loader collects keys before it queries. gqlgen resolves the
	// fields of a list concurrently, so a short wait gathers the whole list; a longer
	// one only adds latency. Default 2ms.
	Wait time.Duration
	// MaxBatch caps the keys of one query. Default 500.
	MaxBatch int
	// Trees, when set, shares the category tree across requests (see TreeCache);
	// otherwise each request reads it once.
	Trees *TreeCache
	// Shipments reads orders' shipments with their events (the carrier's ShipmentsOf);
	// nil: orders have none.
	Shipments func(ctx context.Context, orderIDs []uuid.UUID) (map[uuid.UUID][]*shipping.Shipment, error)
}

// BookPageKey asks for one page of a parent's books (a category with its subcategories,
// or an author).
type BookPageKey struct {
	Parent uuid.UUID
	Sort   bookstore.BookSort
	First  int
	After  string
}

// ReviewPageKey asks for one page of a book's reviews.
type ReviewPageKey struct {
	Book  uuid.UUID
	First int
	After string
}

// Loaders is one request's set of loaders.
type Loaders struct {
	Book              *dataloader.Loader[uuid.UUID, *bookstore.Book]
	Author            *dataloader.Loader[uuid.UUID, *bookstore.Author]
	AuthorsByBook     *dataloader.Loader[uuid.UUID, []*bookstore.Author]
	CategoryIDsByBook *dataloader.Loader[uuid.UUID, []uuid.UUID]
	Stock             *dataloader.Loader[uuid.UUID, int64]
	Reviews           *dataloader.Loader[ReviewPageKey, *bookstore.ReviewPage]
	BooksByCategory   *dataloader.Loader[BookPageKey, *bookstore.BookPage]
	BooksByAuthor     *dataloader.Loader[BookPageKey, *bookstore.BookPage]
	// Promotion finds promotions by normalised code (nil when none).
	Promotion *dataloader.Loader[string, *bookstore.Promotion]
	// OrderEvents is an order's history; Shipments its parcels. Callers authorize the
	// order first.
	OrderEvents *dataloader.Loader[uuid.UUID, []bookstore.OrderEvent]
	Shipments   *dataloader.Loader[uuid.UUID, []*shipping.Shipment]

	db        *store.DB
	trees     *TreeCache
	treeOnce  sync.Once
	tree      *Tree
	treeError error
}

// New returns a fresh set of loaders over db.
func New(db *store.DB, o Options) *Loaders {
	if o.Wait <= 0 {
		o.Wait = 2 * time.Millisecond
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 500
	}
	l := &Loaders{db: db, trees: o.Trees}
	l.Book = newLoader(o, l.loadBooks)
	l.Author = newLoader(o, byID(db.Authors.ByIDs, func(a *bookstore.Author) uuid.UUID { return a.ID }))
	l.AuthorsByBook = newLoader(o, byMap(db.Authors.ByBooks))
	l.CategoryIDsByBook = newLoader(o, byMap(db.Categories.IDsByBooks))
	l.Stock = newLoader(o, byMap(db.Inventory.Stock))
	l.Reviews = newLoader(o, l.loadReviews)
	l.BooksByCategory = newLoader(o, l.loadBooksByCategory)
	l.BooksByAuthor = newLoader(o, l.loadBooksByAuthor)
	l.Promotion = newLoader(o, byKey(db.Promotions.ByCodes, func(p *bookstore.Promotion) string { return p.Code }))
	l.OrderEvents = newLoader(o, byMap(db.Orders.EventsOf))
	ships := o.Shipments
	if ships == nil {
		ships = func(context.Context, []uuid.UUID) (map[uuid.UUID][]*shipping.Shipment, error) {
			return map[uuid.UUID][]*shipping.Shipment{}, nil
		}
	}
	l.Shipments = newLoader(o, byMap(ships))
	return l
}

// loadBooks reads the books with their stock in one round trip and primes the stock
// loader: a response that shows a book nearly always says whether it is in stock (a
// cart's cost warns of a short line), and the stock was one round trip more.
func (l *Loaders) loadBooks(ctx context.Context, keys []uuid.UUID) []*dataloader.Result[*bookstore.Book] {
	books, stock, err := l.db.Books.ByIDsWithStock(ctx, keys)
	if err != nil {
		return errorResults[*bookstore.Book](len(keys), err)
	}
	m := make(map[uuid.UUID]*bookstore.Book, len(books))
	for _, b := range books {
		m[b.ID] = b
		l.Stock.Prime(ctx, b.ID, stock[b.ID])
	}
	out := make([]*dataloader.Result[*bookstore.Book], len(keys))
	for i, k := range keys {
		out[i] = &dataloader.Result[*bookstore.Book]{Data: m[k]}
	}
	return out
}

func newLoader[K comparable, V any](o Options, fn dataloader.BatchFunc[K, V]) *dataloader.Loader[K, V] {
	return dataloader.NewBatchedLoader(fn,
		dataloader.WithWait[K, V](o.Wait),
		dataloader.WithBatchCapacity[K, V](o.MaxBatch),
		// The default input buffer (1000 slots) is allocated per batch, per loader, per
		// request: a measurable share of CPU under load. A page holds at most
		// MaxPageSize parents, and a full buffer only makes Load wait for the batcher.
		dataloader.WithInputCapacity[K, V](bookstore.MaxPageSize))
}

type ctxKey struct{}

// Middleware gives every request its own Loaders.
func Middleware(db *store.DB, o Options) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(With(r.Context(), New(db, o))))
		})
	}
}

// With returns ctx carrying l.
func With(ctx context.Context, l *Loaders) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// For returns the request's loaders. It panics when Middleware (or With) did not run,
// which is a wiring bug, not a runtime condition.
func For(ctx context.Context) *Loaders {
	l, ok := ctx.Value(ctxKey{}).(*Loaders)
	if !ok {
		panic("loaders: no loaders in context; wrap the handler with loaders.Middleware")
	}
	return l
}

// byID adapts a "fetch these ids" store method: results in key order, nil for a missing
// id (callers turn that into null or NOT_FOUND as the field requires).
func byID[V any](fetch func(context.Context, []uuid.UUID) ([]V, error), id func(V) uuid.UUID) dataloader.BatchFunc[uuid.UUID, V] {
	return func(ctx context.Context, keys []uuid.UUID) []*dataloader.Result[V] {
		vals, err := fetch(ctx, keys)
		if err != nil {
			return errorResults[V](len(keys), err)
		}
		m := make(map[uuid.UUID]V, len(vals))
		for _, v := range vals {
			m[id(v)] = v
		}
		out := make([]*dataloader.Result[V], len(keys))
		for i, k := range keys {
			out[i] = &dataloader.Result[V]{Data: m[k]}
		}
		return out
	}
}

// byKey is byID for any key type.
func byKey[K comparable, V any](fetch func(context.Context, []K) ([]V, error), key func(V) K) dataloader.BatchFunc[K, V] {
	return func(ctx context.Context, keys []K) []*dataloader.Result[V] {
		vals, err := fetch(ctx, keys)
		if err != nil {
			return errorResults[V](len(keys), err)
		}
		m := make(map[K]V, len(vals))
		for _, v := range vals {
			m[key(v)] = v
		}
		out := make([]*dataloader.Result[V], len(keys))
		for i, k := range keys {
			out[i] = &dataloader.Result[V]{Data: m[k]}
		}
		return out
	}
}

// byMap adapts a store method that returns a value per key (zero when absent).
func byMap[V any](fetch func(context.Context, []uuid.UUID) (map[uuid.UUID]V, error)) dataloader.BatchFunc[uuid.UUID, V] {
	return func(ctx context.Context, keys []uuid.UUID) []*dataloader.Result[V] {
		m, err := fetch(ctx, keys)
		if err != nil {
			return errorResults[V](len(keys), err)
		}
		out := make([]*dataloader.Result[V], len(keys))
		for i, k := range keys {
			out[i] = &dataloader.Result[V]{Data: m[k]}
		}
		return out
	}
}

func errorResults[V any](n int, err error) []*dataloader.Result[V] {
	out := make([]*dataloader.Result[V], n)
	for i := range out {
		out[i] = &dataloader.Result[V]{Error: err}
	}
	return out
}

// groupBy splits keys by their page arguments (first, after, sort): keys in one group
// share one query. In practice a request has one group per field.
func groupBy[K comparable, G comparable](keys []K, group func(K) G) map[G][]int {
	out := map[G][]int{}
	for i, k := range keys {
		g := group(k)
		out[g] = append(out[g], i)
	}
	return out
}

func (l *Loaders) loadReviews(ctx context.Context, keys []ReviewPageKey) []*dataloader.Result[*bookstore.ReviewPage] {
	out := make([]*dataloader.Result[*bookstore.ReviewPage], len(keys))
	type args struct {
		first int
		after string
	}
	for g, idx := range groupBy(keys, func(k ReviewPageKey) args { return args{k.First, k.After} }) {
		ids := make([]uuid.UUID, len(idx))
		for j, i := range idx {
			ids[j] = keys[i].Book
		}
		pages, err := l.db.Reviews.ByBooks(ctx, ids, g.first, g.after)
		for _, i := range idx {
			out[i] = &dataloader.Result[*bookstore.ReviewPage]{Data: pages[keys[i].Book], Error: err}
		}
	}
	return out
}

type pageArgs struct {
	sort  bookstore.BookSort
	first int
	after string
}

func pageArgsOf(k BookPageKey) pageArgs { return pageArgs{k.Sort, k.First, k.After} }

func (l *Loaders) loadBooksByCategory(ctx context.Context, keys []BookPageKey) []*dataloader.Result[*bookstore.BookPage] {
	out := make([]*dataloader.Result[*bookstore.BookPage], len(keys))
	tree, err := l.Tree(ctx)
	if err != nil {
		return errorResults[*bookstore.BookPage](len(keys), err)
	}
	for g, idx := range groupBy(keys, pageArgsOf) {
		groups := make([]store.Group, len(idx))
		for j, i := range idx {
			groups[j] = store.Group{Key: keys[i].Parent, Members: tree.Subtree(keys[i].Parent)}
		}
		l.fillPages(ctx, out, keys, idx, groups, store.ByCategory, g)
	}
	return out
}

func (l *Loaders) loadBooksByAuthor(ctx context.Context, keys []BookPageKey) []*dataloader.Result[*bookstore.BookPage] {
	out := make([]*dataloader.Result[*bookstore.BookPage], len(keys))
	for g, idx := range groupBy(keys, pageArgsOf) {
		groups := make([]store.Group, len(idx))
		for j, i := range idx {
			groups[j] = store.Group{Key: keys[i].Parent, Members: []uuid.UUID{keys[i].Parent}}
		}
		l.fillPages(ctx, out, keys, idx, groups, store.ByAuthor, g)
	}
	return out
}

// fillPages lists the groups' books. A single parent (the usual category or author page)
// takes the plain keyset query, which stops after one page and counts only if asked; many
// parents take one windowed query for all of them.
func (l *Loaders) fillPages(ctx context.Context, out []*dataloader.Result[*bookstore.BookPage], keys []BookPageKey, idx []int, groups []store.Group, kind store.GroupKind, g pageArgs) {
	if len(groups) == 1 {
		f := bookstore.BookFilter{CategoryIDs: groups[0].Members}
		if kind == store.ByAuthor {
			f = bookstore.BookFilter{AuthorID: &groups[0].Key}
		}
		page, err := l.db.Books.List(ctx, f, g.sort, g.first, g.after)
		out[idx[0]] = &dataloader.Result[*bookstore.BookPage]{Data: page, Error: err}
		return
	}
	pages, err := l.db.Books.ListGrouped(ctx, kind, groups, g.sort, g.first, g.after)
	for _, i := range idx {
		out[i] = &dataloader.Result[*bookstore.BookPage]{Data: pages[keys[i].Parent], Error: err}
	}
}
