package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/catalog"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// stockBooks loads n books with the given stock each and returns their ids.
func stockBooks(t *testing.T, db *store.DB, n int, stock int64) []uuid.UUID {
	t.Helper()
	recs := fixture(n)
	for i := range recs {
		recs[i].Stock = stock
	}
	load(t, db, recs)
	ids := make([]uuid.UUID, n)
	for i, r := range recs {
		b, err := db.Books.ByISBN(context.Background(), r.ISBN)
		if err != nil || b == nil {
			t.Fatalf("book %s: %v", r.ISBN, err)
		}
		ids[i] = b.ID
	}
	return ids
}

func stockOf(t *testing.T, db *store.DB, id uuid.UUID) int64 {
	t.Helper()
	m, err := db.Inventory.Stock(context.Background(), []uuid.UUID{id})
	if err != nil {
		t.Fatal(err)
	}
	return m[id]
}

// ledgerSum is the sum of a book's stock movements and how many there are.
func ledgerSum(t *testing.T, db *store.DB, id uuid.UUID) (sum, n int64) {
	t.Helper()
	if err := db.Pool.QueryRow(context.Background(),
		`SELECT COALESCE(sum(delta), 0), count(*) FROM stock_movements WHERE book_id = $1`, id).Scan(&sum, &n); err != nil {
		t.Fatal(err)
	}
	return sum, n
}

func pendingTopic(t *testing.T, db *store.DB, topic string, id uuid.UUID) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM outbox WHERE topic = $1 AND aggregate_id = $2`, topic, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func take(ctx context.Context, db *store.DB, ref uuid.UUID, demand ...bookstore.StockDemand) error {
	return db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		return db.Inventory.Take(ctx, tx, demand, "order", &ref)
	})
}

// TestTakeNeverOversells: 200 goroutines each buy one copy of a book with 50: exactly 50
// succeed, the rest are told the book is short, stock ends at 0 and the ledger accounts
// for every unit. The low-stock alert is raised once, when the stock crossed the threshold.
func TestTakeNeverOversells(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		const initial, buyers = 50, 200
		book := stockBooks(t, db, 1, initial)[0]
		var mu sync.Mutex
		sold, short := 0, 0
		var wg sync.WaitGroup
		for range buyers {
			wg.Go(func() {
				err := take(ctx, db, uuid.New(), bookstore.StockDemand{BookID: book, Quantity: 1})
				var se *store.ShortageError
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					sold++
				case errors.As(err, &se):
					if len(se.Shortages) != 1 || se.Shortages[0].BookID != book || se.Shortages[0].Available != 0 || se.Shortages[0].Wanted != 1 {
						t.Errorf("shortage = %+v", se.Shortages)
					}
					short++
				default:
					t.Errorf("take: %v", err)
				}
			})
		}
		wg.Wait()
		if sold != initial || short != buyers-initial {
			t.Fatalf("sold %d, short %d; want %d and %d", sold, short, initial, buyers-initial)
		}
		if got := stockOf(t, db, book); got != 0 {
			t.Fatalf("stock = %d, want 0", got)
		}
		// The import that created the book is the first movement; every sale is one more.
		if sum, n := ledgerSum(t, db, book); sum != 0 || n != initial+1 {
			t.Fatalf("ledger: sum %d over %d rows, want 0 over %d", sum, n, initial+1)
		}
		if n := pendingTopic(t, db, store.TopicLowStock, book); n != 1 {
			t.Fatalf("%d low_stock events, want 1", n)
		}
	})
}

// TestTakeMixedCartsKeepTheBooks: overlapping multi-book orders with demands in random
// order run concurrently; none fails for any reason but a shortage (no deadlock reaches the
// caller), and for every book sold + remaining = initial and the ledger agrees.
func TestTakeMixedCartsKeepTheBooks(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		const initial, orders = 40, 150
		books := stockBooks(t, db, 5, initial)
		var mu sync.Mutex
		sold := make(map[uuid.UUID]int64)
		var wg sync.WaitGroup
		for i := range orders {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(i), 7))
				var demand []bookstore.StockDemand
				for _, j := range r.Perm(len(books))[:2+r.IntN(2)] {
					demand = append(demand, bookstore.StockDemand{BookID: books[j], Quantity: 1 + r.Int64N(3)})
				}
				if r.IntN(4) == 0 { // the same book twice in one order: demand is summed
					demand = append(demand, demand[0])
				}
				err := take(ctx, db, uuid.New(), demand...)
				var se *store.ShortageError
				if err != nil && !errors.As(err, &se) {
					t.Errorf("order %d: %v", i, err)
					return
				}
				if err == nil {
					mu.Lock()
					for _, d := range demand {
						sold[d.BookID] += d.Quantity
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for _, b := range books {
			left := stockOf(t, db, b)
			if left < 0 || sold[b]+left != initial {
				t.Errorf("book %s: sold %d + remaining %d != %d", b, sold[b], left, initial)
			}
			if sum, _ := ledgerSum(t, db, b); sum != left {
				t.Errorf("book %s: ledger sums to %d, stock is %d", b, sum, left)
			}
		}
	})
}

// TestTakeIsAllOrNothing: an order one of whose books is short takes nothing, and the
// error names every short book with what is left.
func TestTakeIsAllOrNothing(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		books := stockBooks(t, db, 3, 2)
		err := take(ctx, db, uuid.New(),
			bookstore.StockDemand{BookID: books[0], Quantity: 1},
			bookstore.StockDemand{BookID: books[1], Quantity: 3},
			bookstore.StockDemand{BookID: books[2], Quantity: 2},
			bookstore.StockDemand{BookID: books[2], Quantity: 1})
		var se *store.ShortageError
		if !errors.As(err, &se) {
			t.Fatalf("err = %v, want a ShortageError", err)
		}
		got := map[uuid.UUID]bookstore.Shortage{}
		for _, s := range se.Shortages {
			got[s.BookID] = s
		}
		if len(got) != 2 || got[books[1]].Available != 2 || got[books[1]].Wanted != 3 || got[books[2]].Wanted != 3 {
			t.Fatalf("shortages = %+v", se.Shortages)
		}
		for _, b := range books {
			if s := stockOf(t, db, b); s != 2 {
				t.Fatalf("stock of %s = %d after a failed order, want 2", b, s)
			}
			if _, n := ledgerSum(t, db, b); n != 1 {
				t.Fatalf("a failed order left %d ledger rows besides the import's", n-1)
			}
		}
		if err := take(ctx, db, uuid.New(), bookstore.StockDemand{BookID: books[0], Quantity: 0}); err == nil || errors.As(err, &se) {
			t.Fatalf("a zero demand = %v, want a plain error", err)
		}
	})
}

// TestRestoreGivesUnitsBack: a failed payment's compensation returns exactly what was
// taken, with its own ledger rows, and a book back in stock is announced.
func TestRestoreGivesUnitsBack(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		books := stockBooks(t, db, 2, 3)
		order := uuid.New()
		demand := []bookstore.StockDemand{{BookID: books[0], Quantity: 3}, {BookID: books[1], Quantity: 1}}
		if err := take(ctx, db, order, demand...); err != nil {
			t.Fatal(err)
		}
		changedBefore := pendingTopic(t, db, store.TopicBookChanged, books[0])
		if err := db.ExecuteTx(ctx, func(tx pgx.Tx) error {
			return db.Inventory.Restore(ctx, tx, demand, "payment failed", &order)
		}); err != nil {
			t.Fatal(err)
		}
		for _, b := range books {
			if s := stockOf(t, db, b); s != 3 {
				t.Fatalf("stock = %d after restore, want 3", s)
			}
			if sum, n := ledgerSum(t, db, b); sum != 3 || n != 3 {
				t.Fatalf("ledger: sum %d over %d rows, want 3 over 3 (import, take, restore)", sum, n)
			}
		}
		if pendingTopic(t, db, store.TopicBookChanged, books[0]) != changedBefore+1 {
			t.Fatal("a book back in stock raised no book.changed event")
		}
	})
}

// TestAdjustIsAudited: admins' deltas are applied atomically under concurrency, refused
// when they would go below zero, and each leaves a ledger row naming the admin and reason.
func TestAdjustIsAudited(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		// 40 units to start: any order of the 20 removals of 2 leaves stock >= 0, so
		// every adjustment must succeed (from 10 the removals could come first).
		book := stockBooks(t, db, 1, 40)[0]
		admin := uuid.New()
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				delta := int64(3)
				if i%2 == 1 {
					delta = -2
				}
				if _, err := db.Inventory.Adjust(ctx, book, delta, fmt.Sprintf("count %d", i), &admin); err != nil {
					t.Errorf("adjust %+d: %v", delta, err)
				}
			})
		}
		wg.Wait()
		if s := stockOf(t, db, book); s != 40+20*3-20*2 {
			t.Fatalf("stock = %d, want %d", s, 40+20*3-20*2)
		}
		_, err := db.Inventory.Adjust(ctx, book, -61, "shrinkage", &admin)
		if bookstore.ErrorCode(err) != bookstore.CodeInsufficientStock {
			t.Fatalf("over-removal: %v, want INSUFFICIENT_STOCK", err)
		}
		m, err := db.Inventory.Adjust(ctx, book, -60, "shrinkage", &admin)
		if err != nil || m.Stock != 0 || m.Delta != -60 || m.Reason != "shrinkage" || *m.ActorID != admin {
			t.Fatalf("adjust = %+v, %v", m, err)
		}
		if sum, n := ledgerSum(t, db, book); sum != 0 || n != 42 {
			t.Fatalf("ledger: sum %d over %d rows, want 0 over 42", sum, n)
		}
		if _, err := db.Inventory.Adjust(ctx, uuid.New(), 1, "x", &admin); bookstore.ErrorCode(err) != bookstore.CodeNotFound {
			t.Fatalf("unknown book: %v", err)
		}
		if _, err := db.Inventory.Adjust(ctx, book, 0, "x", &admin); bookstore.ErrorCode(err) != bookstore.CodeBadUserInput {
			t.Fatalf("zero delta: %v", err)
		}
		page, err := db.Inventory.Movements(ctx, book, 40, "")
		if err != nil || len(page.Edges) != 40 || !page.PageInfo.HasNextPage || page.Edges[0].Node.Reason != "shrinkage" {
			t.Fatalf("first page: %d edges, next %v, %v", len(page.Edges), page.PageInfo.HasNextPage, err)
		}
		rest, err := db.Inventory.Movements(ctx, book, 40, *page.PageInfo.EndCursor)
		if err != nil || len(rest.Edges) != 2 || rest.PageInfo.HasNextPage || rest.Edges[1].Node.Reason != "import" {
			t.Fatalf("second page: %+v, %v", rest, err)
		}
	})
}

// TestSetStockIsCompareAndSet: a recount applies only over the stock the admin read, so
// a sale in between makes it fail instead of giving the sold units back.
func TestSetStockIsCompareAndSet(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		book := stockBooks(t, db, 1, 10)[0]
		read := stockOf(t, db, book)
		if err := take(ctx, db, uuid.New(), bookstore.StockDemand{BookID: book, Quantity: 4}); err != nil {
			t.Fatal(err)
		}
		_, err := db.Inventory.SetStock(ctx, book, 12, read, "recount", nil)
		var be *bookstore.Error
		if !errors.As(err, &be) || be.Code != bookstore.CodeConflict || be.Field != "expectedQuantity" {
			t.Fatalf("stale recount: %v, want CONFLICT on expectedQuantity", err)
		}
		if s := stockOf(t, db, book); s != 6 {
			t.Fatalf("a refused recount changed stock to %d", s)
		}
		m, err := db.Inventory.SetStock(ctx, book, 12, 6, "recount", nil)
		if err != nil || m.Delta != 6 || m.Stock != 12 {
			t.Fatalf("recount = %+v, %v", m, err)
		}
		if m, err := db.Inventory.SetStock(ctx, book, 12, 12, "recount", nil); err != nil || m != nil {
			t.Fatalf("a no-op recount = %+v, %v; want no ledger row", m, err)
		}
	})
}

// TestImportKeepsUnitsSold: re-importing a catalog applies only the change in the file's
// counts since its previous import; units that checkout took in between stay taken.
func TestImportKeepsUnitsSold(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		recs := fixture(2)
		recs[0].Stock, recs[1].Stock = 10, 1
		load(t, db, recs)
		b, _ := db.Books.ByISBN(ctx, recs[0].ISBN)
		if err := take(ctx, db, uuid.New(), bookstore.StockDemand{BookID: b.ID, Quantity: 3}); err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			name   string
			count  int64
			absent bool
			want   int64
		}{
			{"the same file again", 10, false, 7},
			{"the file says 15 (5 received)", 15, false, 12},
			{"a file without a stock column", 0, true, 12},
			{"the file says 2 (13 fewer)", 2, false, 0},
			{"the file says 4 (2 more)", 4, false, 2},
		}
		for _, st := range steps {
			r := recs[0]
			r.Stock, r.StockUnknown = st.count, st.absent
			load(t, db, []catalog.Record{r})
			if got := stockOf(t, db, b.ID); got != st.want {
				t.Fatalf("%s: stock = %d, want %d", st.name, got, st.want)
			}
		}
		// +10 imported, -3 sold, +5, -12 (clamped at 0), +2: the ledger sums to the stock.
		if sum, n := ledgerSum(t, db, b.ID); sum != 2 || n != 5 {
			t.Fatalf("ledger: sum %d over %d rows, want 2 over 5", sum, n)
		}
	})
}

// TestImportWithoutCategoriesKeepsThem: a price list (no categories column) re-imported
// over the catalog keeps every book's categories; an empty cell in a categories column
// still clears them.
func TestImportWithoutCategoriesKeepsThem(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		recs := fixture(3)
		load(t, db, recs)
		count := func() int {
			var n int
			if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM book_categories`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := count()
		if before == 0 {
			t.Fatal("the fixture has no categories")
		}
		prices := make([]catalog.Record, len(recs))
		for i, r := range recs {
			prices[i] = catalog.Record{ISBN: r.ISBN, Title: r.Title, Authors: r.Authors, PriceCents: r.PriceCents + 1,
				Language: r.Language, CategoriesUnknown: true, StockUnknown: true}
		}
		load(t, db, prices)
		if n := count(); n != before {
			t.Fatalf("a file without a categories column left %d category links of %d", n, before)
		}
		cleared := prices[0]
		cleared.CategoriesUnknown = false
		load(t, db, []catalog.Record{cleared})
		if n := count(); n >= before {
			t.Fatalf("an empty categories cell kept the book's categories (%d links)", n)
		}
	})
}
