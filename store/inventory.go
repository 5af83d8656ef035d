package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
)

// Inventory reads and changes units on hand. Stock changes only by deltas, each written
// to the stock_movements ledger in the same transaction: an admin's adjustment (Adjust),
// an admin's recount (SetStock, a compare-and-set), an import, or an order taking units
// (Take) and giving them back (Restore).
type Inventory struct {
	db *DB
	// LowStockThreshold: when a change leaves a book at or below it, having been above,
	// a TopicLowStock event is written with the change (0: when a book sells out).
	// Open sets bookstore.LowStockThreshold; main overrides it from configuration.
	LowStockThreshold int64
}

// Stock returns units on hand per book; a book without an inventory row has none.
func (s *Inventory) Stock(ctx context.Context, bookIDs []uuid.UUID) (map[uuid.UUID]int64, error) {
	return stockOf(ctx, s.db.Pool, bookIDs)
}

// stockSQL reads the stock of books $1 (a book without an inventory row has none).
const stockSQL = `SELECT book_id, stock FROM inventory WHERE book_id = ANY($1::UUID[])`

func stockOf(ctx context.Context, q querier, bookIDs []uuid.UUID) (map[uuid.UUID]int64, error) {
	rows, err := q.Query(ctx, stockSQL, bookIDs)
	if err != nil {
		return nil, fmt.Errorf("stock: %w", err)
	}
	return collectStock(rows, len(bookIDs))
}

// collectStock reads stockSQL's rows: 0 for the books it has no row of.
func collectStock(rows pgx.Rows, n int) (map[uuid.UUID]int64, error) {
	defer rows.Close()
	out := make(map[uuid.UUID]int64, n)
	for rows.Next() {
		var id uuid.UUID
		var stock int64
		if err := rows.Scan(&id, &stock); err != nil {
			return nil, fmt.Errorf("scan stock: %w", err)
		}
		out[id] = stock
	}
	return out, rows.Err()
}

// Adjust changes a book's stock by delta (received units, damage, a count correction) and
// returns the ledger entry. A delta that would leave fewer than zero units is refused with
// INSUFFICIENT_STOCK, changing nothing.
func (s *Inventory) Adjust(ctx context.Context, bookID uuid.UUID, delta int64, reason string, actor *uuid.UUID) (*bookstore.StockMovement, error) {
	if delta == 0 || delta > bookstore.MaxStock || delta < -bookstore.MaxStock {
		return nil, bookstore.InvalidField("delta", "must be between -%d and %d, and not 0", bookstore.MaxStock, bookstore.MaxStock)
	}
	var m *bookstore.StockMovement
	err := s.db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		m = nil // a retried attempt must not return what a rolled-back one wrote
		before, ok, err := lockStock(ctx, tx, bookID)
		if err != nil {
			return err
		}
		if !ok {
			return bookstore.Errorf(bookstore.CodeNotFound, "no book with this id")
		}
		if before+delta < 0 {
			return &bookstore.Error{Code: bookstore.CodeInsufficientStock, Field: "delta",
				Message: fmt.Sprintf("only %d units on hand; the delta would leave %d", before, before+delta)}
		}
		if before+delta > bookstore.MaxStock {
			return bookstore.InvalidField("delta", "would leave %d units, more than the maximum %d", before+delta, bookstore.MaxStock)
		}
		m, err = s.apply(ctx, tx, bookID, before, before+delta, reason, actor, nil)
		return err
	})
	return m, err
}

// SetStock sets a book's units on hand to qty after a recount, only if it still holds
// expected: a checkout that took units since the admin read the stock makes it fail with
// CONFLICT (naming the current stock) instead of silently giving those units back.
func (s *Inventory) SetStock(ctx context.Context, bookID uuid.UUID, qty, expected int64, reason string, actor *uuid.UUID) (*bookstore.StockMovement, error) {
	if qty < 0 || qty > bookstore.MaxStock {
		return nil, bookstore.InvalidField("quantity", "must be between 0 and %d", bookstore.MaxStock)
	}
	var m *bookstore.StockMovement
	err := s.db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		m = nil
		before, ok, err := lockStock(ctx, tx, bookID)
		if err != nil {
			return err
		}
		if !ok {
			return bookstore.Errorf(bookstore.CodeNotFound, "no book with this id")
		}
		if before != expected {
			return &bookstore.Error{Code: bookstore.CodeConflict, Field: "expectedQuantity",
				Message: fmt.Sprintf("the stock changed: it is now %d, not %d; read it again and retry", before, expected)}
		}
		if qty == before {
			return nil // nothing to change, nothing to record
		}
		m, err = s.apply(ctx, tx, bookID, before, qty, reason, actor, nil)
		return err
	})
	return m, err
}

// lockStock reads a book's stock for update; ok is false when the book does not exist.
// A book without an inventory row has 0 units.
func lockStock(ctx context.Context, tx pgx.Tx, bookID uuid.UUID) (stock int64, ok bool, err error) {
	err = tx.QueryRow(ctx, `SELECT stock FROM inventory WHERE book_id = $1 FOR UPDATE`, bookID).Scan(&stock)
	if err == nil {
		return stock, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, false, fmt.Errorf("read stock of %s: %w", bookID, err)
	}
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM books WHERE id = $1)`, bookID).Scan(&ok); err != nil {
		return 0, false, fmt.Errorf("find book %s: %w", bookID, err)
	}
	return 0, ok, nil
}

// apply writes a book's new stock, its ledger entry and the events the change causes.
func (s *Inventory) apply(ctx context.Context, tx pgx.Tx, bookID uuid.UUID, before, after int64, reason string, actor, ref *uuid.UUID) (*bookstore.StockMovement, error) {
	if _, err := tx.Exec(ctx, `
		INSERT INTO inventory (book_id, stock) VALUES ($1, $2)
		ON CONFLICT (book_id) DO UPDATE SET stock = excluded.stock, updated_at = now()`, bookID, after); err != nil {
		return nil, fmt.Errorf("set stock of %s: %w", bookID, err)
	}
	m := &bookstore.StockMovement{BookID: bookID, Delta: after - before, Reason: reason, ActorID: actor, Ref: ref, Stock: after}
	if err := tx.QueryRow(ctx, `
		INSERT INTO stock_movements (book_id, delta, reason, actor_id, ref, stock, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp())
		RETURNING id, created_at`, bookID, m.Delta, reason, actor, ref, after).Scan(&m.ID, &m.At); err != nil {
		return nil, fmt.Errorf("record stock movement of %s: %w", bookID, err)
	}
	return m, s.stockEvents(ctx, tx, bookID, before, after)
}

// stockEvents writes the outbox events of one stock change: TopicBookChanged when what
// shoppers see changes (in stock, low stock, out of stock; a sale that leaves a book
// plentiful does not churn the search index and the response cache), and TopicLowStock
// when the stock falls to the alert threshold or below from above it.
func (s *Inventory) stockEvents(ctx context.Context, tx pgx.Tx, bookID uuid.UUID, before, after int64) error {
	if bookstore.AvailabilityOf(before).Status != bookstore.AvailabilityOf(after).Status {
		if err := enqueue(ctx, tx, TopicBookChanged, []uuid.UUID{bookID}); err != nil {
			return err
		}
	}
	return s.lowStockEvent(ctx, tx, bookID, before, after)
}

// lowStockEvent writes TopicLowStock when a change crosses the alert threshold downwards.
func (s *Inventory) lowStockEvent(ctx context.Context, tx pgx.Tx, bookID uuid.UUID, before, after int64) error {
	if t := s.LowStockThreshold; before > t && after <= t {
		return enqueuePayload(ctx, tx, TopicLowStock, bookID, LowStockPayload{Stock: after, Threshold: t})
	}
	return nil
}

// LowStockPayload is the payload of a TopicLowStock event.
type LowStockPayload struct {
	Stock     int64 `json:"stock"`
	Threshold int64 `json:"threshold"`
}

// ShortageError is returned by Take when some book has fewer units than demanded; the
// caller's transaction must then roll back (returning the error from an ExecuteTx closure
// does that), so an order takes all its units or none.
type ShortageError struct{ Shortages []bookstore.Shortage }

func (e *ShortageError) Error() string {
	return fmt.Sprintf("%d books are short of stock", len(e.Shortages))
}

// Take removes an order's units inside the caller's (serializable) transaction. Demand
// for the same book is summed, and books are updated one at a time in id order, so two
// orders always lock rows in the same order and never deadlock each other. Each update is
// conditional (stock >= wanted): whatever else runs concurrently, stock cannot go below
// zero. It returns a *ShortageError naming every short book, with what is available.
func (s *Inventory) Take(ctx context.Context, tx pgx.Tx, demand []bookstore.StockDemand, reason string, ref *uuid.UUID) error {
	merged, err := mergeDemand(demand)
	if err != nil {
		return err
	}
	var short []bookstore.Shortage
	var mBook []uuid.UUID
	var mDelta, mStock []int64
	for _, d := range merged {
		var after int64
		err := tx.QueryRow(ctx, `
			UPDATE inventory SET stock = stock - $2, updated_at = now()
			WHERE book_id = $1 AND stock >= $2 RETURNING stock`, d.BookID, d.Quantity).Scan(&after)
		if errors.Is(err, pgx.ErrNoRows) {
			have, err := stockOf(ctx, tx, []uuid.UUID{d.BookID})
			if err != nil {
				return err
			}
			short = append(short, bookstore.Shortage{BookID: d.BookID, Wanted: d.Quantity, Available: have[d.BookID]})
			continue
		}
		if err != nil {
			return fmt.Errorf("take stock of %s: %w", d.BookID, err)
		}
		if len(short) > 0 {
			continue // the order fails anyway; find every short book, write nothing more
		}
		mBook, mDelta, mStock = append(mBook, d.BookID), append(mDelta, -d.Quantity), append(mStock, after)
		if err := s.stockEvents(ctx, tx, d.BookID, after+d.Quantity, after); err != nil {
			return err
		}
	}
	if len(short) > 0 {
		return &ShortageError{Shortages: short}
	}
	return recordMovements(ctx, tx, mBook, mDelta, mStock, reason, nil, ref)
}

// Restore gives an order's units back (a failed payment, a cancellation) inside the
// caller's transaction, in the same lock order as Take.
func (s *Inventory) Restore(ctx context.Context, tx pgx.Tx, demand []bookstore.StockDemand, reason string, ref *uuid.UUID) error {
	merged, err := mergeDemand(demand)
	if err != nil {
		return err
	}
	var mBook []uuid.UUID
	var mDelta, mStock []int64
	for _, d := range merged {
		var after int64
		err := tx.QueryRow(ctx, `
			INSERT INTO inventory (book_id, stock) SELECT id, $2 FROM books WHERE id = $1
			ON CONFLICT (book_id) DO UPDATE SET stock = inventory.stock + excluded.stock, updated_at = now()
			RETURNING stock`, d.BookID, d.Quantity).Scan(&after)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // the book was deleted since: nothing to give back to
		}
		if err != nil {
			return fmt.Errorf("restore stock of %s: %w", d.BookID, err)
		}
		mBook, mDelta, mStock = append(mBook, d.BookID), append(mDelta, d.Quantity), append(mStock, after)
		if err := s.stockEvents(ctx, tx, d.BookID, after-d.Quantity, after); err != nil {
			return err
		}
	}
	return recordMovements(ctx, tx, mBook, mDelta, mStock, reason, nil, ref)
}

// mergeDemand sums demand per book and sorts it by book id (the global lock order).
func mergeDemand(demand []bookstore.StockDemand) ([]bookstore.StockDemand, error) {
	sum := make(map[uuid.UUID]int64, len(demand))
	for _, d := range demand {
		if d.Quantity <= 0 || d.Quantity > bookstore.MaxStock {
			return nil, fmt.Errorf("stock demand for %s: quantity %d is not in 1..%d", d.BookID, d.Quantity, bookstore.MaxStock)
		}
		if sum[d.BookID] += d.Quantity; sum[d.BookID] > bookstore.MaxStock {
			return nil, fmt.Errorf("stock demand for %s: %d units in total, more than %d", d.BookID, sum[d.BookID], bookstore.MaxStock)
		}
	}
	out := make([]bookstore.StockDemand, 0, len(sum))
	for id, q := range sum {
		out = append(out, bookstore.StockDemand{BookID: id, Quantity: q})
	}
	slices.SortFunc(out, func(a, b bookstore.StockDemand) int { return compareUUID(a.BookID, b.BookID) })
	return out, nil
}

// compareUUID orders ids as the database orders UUIDs (bytewise).
func compareUUID(a, b uuid.UUID) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// recordMovements appends ledger entries in one statement.
func recordMovements(ctx context.Context, tx pgx.Tx, books []uuid.UUID, deltas, stocks []int64, reason string, actor, ref *uuid.UUID) error {
	if len(books) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO stock_movements (book_id, delta, stock, reason, actor_id, ref, created_at)
		SELECT b, d, s, $4::TEXT, $5::UUID, $6::UUID, clock_timestamp()
		FROM unnest($1::UUID[], $2::INT8[], $3::INT8[]) AS t(b, d, s)`,
		books, deltas, stocks, reason, actor, ref)
	if err != nil {
		return fmt.Errorf("record %d stock movements: %w", len(books), err)
	}
	return nil
}

// movementsCursor names one book's ledger, so that a cursor of another book's is refused.
func movementsCursor(bookID uuid.UUID) string { return "movements:" + bookID.String() }

// Movements returns a page of a book's stock ledger, newest first, after the cursor.
// A book that does not exist is NOT_FOUND.
func (s *Inventory) Movements(ctx context.Context, bookID uuid.UUID, first int, after string) (*bookstore.StockMovementPage, error) {
	args := []any{bookID, first + 1}
	where := ""
	if after != "" {
		var at time.Time
		id, err := decodeCursor(after, movementsCursor(bookID), &at)
		if err != nil {
			return nil, err
		}
		where = ` AND (created_at, id) < ($3, $4)`
		args = append(args, at, id)
	}
	rows, err := s.db.Pool.Query(ctx, `
		SELECT id, book_id, delta, reason, actor_id, ref, stock, created_at FROM stock_movements
		WHERE book_id = $1`+where+` ORDER BY created_at DESC, id DESC LIMIT $2`, args...)
	if err != nil {
		return nil, fmt.Errorf("read stock movements: %w", err)
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*bookstore.StockMovement, error) {
		var m bookstore.StockMovement
		err := r.Scan(&m.ID, &m.BookID, &m.Delta, &m.Reason, &m.ActorID, &m.Ref, &m.Stock, &m.At)
		return &m, err
	})
	if err != nil {
		return nil, fmt.Errorf("read stock movements: %w", err)
	}
	if len(ms) == 0 {
		var exists bool
		if err := s.db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM books WHERE id = $1)`, bookID).Scan(&exists); err != nil {
			return nil, fmt.Errorf("find book %s: %w", bookID, err)
		}
		if !exists {
			return nil, bookstore.Errorf(bookstore.CodeNotFound, "no book with this id")
		}
	}
	page := &bookstore.StockMovementPage{Edges: []bookstore.StockMovementEdge{}}
	if len(ms) > first {
		ms, page.PageInfo.HasNextPage = ms[:first], true
	}
	for _, m := range ms {
		page.Edges = append(page.Edges, bookstore.StockMovementEdge{Cursor: encodeCursor(movementsCursor(bookID), m.At, m.ID), Node: m})
	}
	if n := len(page.Edges); n > 0 {
		page.PageInfo.StartCursor, page.PageInfo.EndCursor = &page.Edges[0].Cursor, &page.Edges[n-1].Cursor
	}
	return page, nil
}
