package store_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/catalog"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

func mustExec(t *testing.T, db *store.DB, sql string, args ...any) {
	t.Helper()
	if _, err := db.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// R1: Adjust's closure keeps the movement of an attempt that was rolled back; when the
// retry then fails with a user-facing error, the caller gets both the error and a ledger
// entry that does not exist.
func TestInventoryReviewAdjustRetryReturnsPhantomMovement(t *testing.T) {
	// PostgreSQL only: the fault is injected with a PL/pgSQL trigger.
	func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		book := stockBooks(t, db, 1, 5)[0]
		// The first outbox insert (Adjust's book.changed: 5 -> 0 changes the status) waits a
		// little, then fails as a serialization failure would; later ones pass.
		mustExec(t, db, `CREATE SEQUENCE review_fail_once`)
		mustExec(t, db, `CREATE FUNCTION review_fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				IF nextval('review_fail_once') = 1 THEN
					PERFORM pg_sleep(0.5);
					RAISE EXCEPTION 'injected' USING ERRCODE = '40001';
				END IF;
				RETURN NEW;
			END $$`)
		mustExec(t, db, `CREATE TRIGGER review_fail_once AFTER INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION review_fail_once()`)
		admin := uuid.New()
		var wg sync.WaitGroup
		wg.Go(func() {
			// A sale that queues (a table lock) behind the first attempt, so it runs as soon
			// as that attempt rolls back and before the retry reads the stock.
			time.Sleep(200 * time.Millisecond)
			t1 := time.Now()
			defer func() { t.Logf("take finished after %v", time.Since(t1)) }()
			tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
			if err != nil {
				t.Error(err)
				return
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, `LOCK TABLE inventory IN EXCLUSIVE MODE`); err != nil {
				t.Error(err)
				return
			}
			ref := uuid.New()
			if err := db.Inventory.Take(ctx, tx, []bookstore.StockDemand{{BookID: book, Quantity: 1}}, "order", &ref); err != nil {
				t.Errorf("take: %v", err)
				return
			}
			if err := tx.Commit(ctx); err != nil {
				t.Error(err)
			}
		})
		t0 := time.Now()
		m, err := db.Inventory.Adjust(ctx, book, -5, "shrinkage", &admin)
		t.Logf("adjust done after %v: m=%+v err=%v", time.Since(t0), m, err)
		wg.Wait()
		var seq int64
		_ = db.Pool.QueryRow(ctx, `SELECT last_value FROM review_fail_once`).Scan(&seq)
		t.Logf("trigger calls: %d", seq)
		if bookstore.ErrorCode(err) != bookstore.CodeInsufficientStock {
			t.Fatalf("adjust: %v, want INSUFFICIENT_STOCK (stock is now %d)", err, stockOf(t, db, book))
		}
		if m != nil {
			var n int
			_ = db.Pool.QueryRow(ctx, `SELECT count(*) FROM stock_movements WHERE id = $1`, m.ID).Scan(&n)
			t.Fatalf("a refused adjustment returned movement %+v (rows with its id: %d)", *m, n)
		}
	}(t, testdb.New(t))
}

// R2: LOW_STOCK_THRESHOLD=0 alerts when a book sells out, not at 5 (it used to be read
// as "use the default").
func TestInventoryReviewLowStockThresholdZero(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		db.Inventory.LowStockThreshold = 0 // what serve sets for LOW_STOCK_THRESHOLD=0
		book := stockBooks(t, db, 1, 10)[0]
		if err := take(ctx, db, uuid.New(), bookstore.StockDemand{BookID: book, Quantity: 7}); err != nil {
			t.Fatal(err)
		}
		if n := pendingTopic(t, db, store.TopicLowStock, book); n != 0 {
			t.Fatalf("threshold 0, stock 10 -> 3: %d low_stock events, want 0", n)
		}
		if err := take(ctx, db, uuid.New(), bookstore.StockDemand{BookID: book, Quantity: 3}); err != nil {
			t.Fatal(err)
		}
		if n := pendingTopic(t, db, store.TopicLowStock, book); n != 1 {
			t.Fatalf("threshold 0, stock 3 -> 0: %d low_stock events, want 1", n)
		}
	})
}

// R3: an import that takes a book from above the threshold to at or below it writes no
// low_stock event (README: "when a change takes a book from above LOW_STOCK_THRESHOLD ...").
func TestInventoryReviewImportRaisesLowStock(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		recs := fixture(1)
		recs[0].Stock = 10
		load(t, db, recs)
		b, _ := db.Books.ByISBN(context.Background(), recs[0].ISBN)
		r := recs[0]
		r.Stock = 2
		load(t, db, []catalog.Record{r})
		if s := stockOf(t, db, b.ID); s != 2 {
			t.Fatalf("stock = %d", s)
		}
		if n := pendingTopic(t, db, store.TopicLowStock, b.ID); n != 1 {
			t.Fatalf("import 10 -> 2: %d low_stock events, want 1", n)
		}
	})
}

// R4a: an unbounded delta overflows stock+delta in Go: the answer is INSUFFICIENT_STOCK
// ("would leave -9223372036854775799") for an addition, not BAD_USER_INPUT.
func TestInventoryReviewAdjustHugeDelta(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		book := stockBooks(t, db, 1, 10)[0]
		_, err := db.Inventory.Adjust(context.Background(), book, math.MaxInt64, "delivery", nil)
		if bookstore.ErrorCode(err) != bookstore.CodeBadUserInput {
			t.Fatalf("adjust +MaxInt64 on 10 units: %v, want BAD_USER_INPUT", err)
		}
	})
}

// R4b: a huge (accepted) stock makes the compensation of a failed payment fail with
// "bigint out of range", and makes the next import silently zero the stock.
func TestInventoryReviewHugeStockBreaksRestoreAndImport(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		recs := fixture(1)
		recs[0].Stock = 10
		load(t, db, recs)
		b, _ := db.Books.ByISBN(ctx, recs[0].ISBN)
		order := uuid.New()
		demand := bookstore.StockDemand{BookID: b.ID, Quantity: 5}
		if err := take(ctx, db, order, demand); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Inventory.Adjust(ctx, b.ID, math.MaxInt64-5, "delivery", nil); bookstore.ErrorCode(err) != bookstore.CodeBadUserInput {
			t.Fatalf("a delta of MaxInt64-5: %v, want BAD_USER_INPUT", err)
		}
		if _, err := db.Inventory.Adjust(ctx, b.ID, bookstore.MaxStock-5, "delivery", nil); err != nil {
			t.Fatalf("adjust to the maximum: %v", err)
		}
		err := db.ExecuteTx(ctx, func(tx pgx.Tx) error {
			return db.Inventory.Restore(ctx, tx, []bookstore.StockDemand{demand}, "payment failed", &order)
		})
		if err != nil {
			t.Errorf("restore after a huge adjustment: %v", err)
		}
		r := recs[0]
		r.Stock = 11 // one more than the previous import
		load(t, db, []catalog.Record{r})
		if s := stockOf(t, db, b.ID); s != bookstore.MaxStock {
			t.Errorf("an import saying +1 on a full stock: %d, want the maximum %d", s, bookstore.MaxStock)
		}
	})
}

// R5: a stockMovements cursor of one book is accepted for another book's ledger and
// silently returns that book's rows older than the foreign cursor's time.
func TestInventoryReviewMovementsForeignCursor(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		books := stockBooks(t, db, 2, 10)
		if _, err := db.Inventory.Adjust(ctx, books[0], 1, "a", nil); err != nil {
			t.Fatal(err)
		}
		page, err := db.Inventory.Movements(ctx, books[0], 1, "")
		if err != nil {
			t.Fatal(err)
		}
		other, err := db.Inventory.Movements(ctx, books[1], 10, *page.PageInfo.EndCursor)
		if bookstore.ErrorCode(err) != bookstore.CodeBadUserInput {
			t.Fatalf("book A's cursor on book B's ledger: %d edges, err %v; want BAD_USER_INPUT on after", len(other.Edges), err)
		}
	})
}

// R6: a movement's time is the transaction's start (now()), not when the change was made:
// a transaction that began before another but changed stock after it is listed as older,
// so the "newest" entry's resulting stock is not the stock.
func TestInventoryReviewLedgerNewestFirstIsChangeOrder(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		book := stockBooks(t, db, 1, 10)[0]
		tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		time.Sleep(20 * time.Millisecond)
		if _, err := db.Inventory.Adjust(ctx, book, 5, "delivery", nil); err != nil {
			t.Fatal(err)
		}
		ref := uuid.New()
		if err := db.Inventory.Take(ctx, tx, []bookstore.StockDemand{{BookID: book, Quantity: 1}}, "order", &ref); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		page, err := db.Inventory.Movements(ctx, book, 1, "")
		if err != nil {
			t.Fatal(err)
		}
		if got, now := page.Edges[0].Node, stockOf(t, db, book); got.Stock != now {
			t.Fatalf("newest movement (%s %+d) says stock %d; the stock is %d", got.Reason, got.Delta, got.Stock, now)
		}
	})
}

// R7: merged demand is summed without overflow checks: two lines of MaxInt64 wrap to -2
// and the "take" adds two units.
func TestInventoryReviewTakeDemandOverflow(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		book := stockBooks(t, db, 1, 10)[0]
		err := take(ctx, db, uuid.New(),
			bookstore.StockDemand{BookID: book, Quantity: math.MaxInt64},
			bookstore.StockDemand{BookID: book, Quantity: math.MaxInt64})
		if s := stockOf(t, db, book); s != 10 {
			t.Fatalf("take of 2*MaxInt64: err %v, stock 10 -> %d", err, s)
		}
		if err == nil {
			t.Fatalf("take of 2*MaxInt64 succeeded")
		}
	})
}

// R10: a book whose inventory row has no import baseline (every row that existed before
// the ledger migration, and rows created by adjustStock/setStock for books imported without a
// stock column) has its stock overwritten by the next import: units sold are given back.
func TestInventoryReviewImportWithoutBaselineKeepsUnitsSold(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		recs := fixture(1)
		recs[0].StockUnknown = true // a price list: no stock column
		load(t, db, recs)
		b, _ := db.Books.ByISBN(ctx, recs[0].ISBN)
		if _, err := db.Inventory.Adjust(ctx, b.ID, 10, "delivery", nil); err != nil {
			t.Fatal(err)
		}
		if err := take(ctx, db, uuid.New(), bookstore.StockDemand{BookID: b.ID, Quantity: 3}); err != nil {
			t.Fatal(err)
		}
		r := recs[0]
		r.StockUnknown, r.Stock = false, 10 // the full catalog, exported after the delivery
		load(t, db, []catalog.Record{r})
		if s := stockOf(t, db, b.ID); s != 7 {
			t.Fatalf("stock = %d after an import saying 10 (the delivery); 3 units were sold, want 7", s)
		}
	})
}

// Hammer: imports (books in shuffled order), takes, restores and adjustments of the same
// books at once: no error but a shortage reaches a caller (no retries exhausted, no
// deadlock), and the ledger sums to the stock.
func TestInventoryReviewMixedWritersHammer(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		recs := fixture(6)
		for i := range recs {
			recs[i].Stock = 30
		}
		load(t, db, recs)
		ids := make([]uuid.UUID, len(recs))
		for i, r := range recs {
			b, _ := db.Books.ByISBN(ctx, r.ISBN)
			ids[i] = b.ID
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		errs := map[string]int{}
		note := func(kind string, err error) {
			var se *store.ShortageError
			if err == nil || bookstore.ErrorCode(err) == bookstore.CodeInsufficientStock {
				return
			}
			if errors.As(err, &se) {
				return
			}
			mu.Lock()
			errs[kind+": "+err.Error()]++
			mu.Unlock()
		}
		deadline := time.Now().Add(2 * time.Second)
		for w := range 6 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), 1))
				for time.Now().Before(deadline) {
					var d []bookstore.StockDemand
					for _, j := range r.Perm(len(ids))[:2+r.IntN(3)] {
						d = append(d, bookstore.StockDemand{BookID: ids[j], Quantity: 1 + r.Int64N(2)})
					}
					order := uuid.New()
					err := take(ctx, db, order, d...)
					note("take", err)
					if err == nil && r.IntN(2) == 0 {
						note("restore", db.ExecuteTx(ctx, func(tx pgx.Tx) error {
							return db.Inventory.Restore(ctx, tx, d, "payment failed", &order)
						}))
					}
				}
			})
		}
		{
			wg.Go(func() {
				r := rand.New(rand.NewPCG(99, 1))
				for time.Now().Before(deadline) {
					batch := make([]catalog.Record, len(recs))
					for i, j := range r.Perm(len(recs)) {
						batch[i] = recs[j]
						batch[i].Stock = 30 + r.Int64N(5)
					}
					_, err := db.Load(ctx, batch)
					note("import", err)
				}
			})
		}
		wg.Go(func() {
			r := rand.New(rand.NewPCG(98, 1))
			for time.Now().Before(deadline) {
				_, err := db.Inventory.Adjust(ctx, ids[r.IntN(len(ids))], 1+r.Int64N(3), "delivery", nil)
				note("adjust", err)
			}
		})
		wg.Wait()
		for k, n := range errs {
			t.Errorf("%d x %s", n, k)
		}
		for _, id := range ids {
			s := stockOf(t, db, id)
			if sum, _ := ledgerSum(t, db, id); sum != s || s < 0 {
				t.Errorf("book %s: ledger %d, stock %d", id, sum, s)
			}
		}
	})
}
