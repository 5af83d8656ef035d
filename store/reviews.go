package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
)

// Reviews reads book reviews and writes buyers' reviews.
type Reviews struct{ db *DB }

const (
	reviewPurchased = `SELECT EXISTS (SELECT 1 FROM books WHERE id = $2),
		EXISTS (SELECT 1 FROM orders o JOIN order_lines l ON l.order_id = o.id
			WHERE o.customer_id = $1 AND l.book_id = $2 AND o.status = ANY($3::TEXT[]))`
	// ON CONFLICT on the (book_id, customer_id) index: a second review by the same
	// customer inserts nothing (a concurrent one conflicts, retries and then lands here).
	insertReview = `INSERT INTO reviews (book_id, customer_id, rating, title, body, reviewer_name)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (book_id, customer_id) DO NOTHING
		RETURNING id, created_at`
	// The new mean from the old one, without reading the reviews: the seeded and imported
	// ratings have no review rows behind them. Casts to FLOAT8: CockroachDB has no
	// implicit INT8 -> FLOAT8 in arithmetic.
	addRating = `UPDATE books SET
			rating = (rating * rating_count::FLOAT8 + $2::FLOAT8) / (rating_count + 1)::FLOAT8,
			rating_count = rating_count + 1,
			updated_at = now()
		WHERE id = $1`
)

// Create stores a buyer's review and folds its rating into the book's rating and
// ratingCount, in one serializable transaction that also writes the book's outbox event
// (the search index and the response caches hear of the new rating when it commits).
// Concurrent reviews of one book conflict on the book row and are retried, so none is
// lost from the mean.
//
// r must be valid (r.Validate). The customer must have an order in one of
// bookstore.ReviewerStatuses containing the book (else bookstore.ErrNotPurchased), and
// no review of it yet (else bookstore.ErrAlreadyReviewed); an unknown book is
// bookstore.ErrReviewBookNotFound.
func (s *Reviews) Create(ctx context.Context, r bookstore.NewReview) (*bookstore.Review, error) {
	statuses := make([]string, len(bookstore.ReviewerStatuses))
	for i, st := range bookstore.ReviewerStatuses {
		statuses[i] = string(st)
	}
	out := &bookstore.Review{BookID: r.BookID, Rating: int32(r.Rating), Title: r.Title, Body: r.Body,
		ReviewerName: r.ReviewerName}
	err := s.db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		var exists, bought bool
		if err := tx.QueryRow(ctx, reviewPurchased, r.CustomerID, r.BookID, statuses).Scan(&exists, &bought); err != nil {
			return fmt.Errorf("check purchase of %s: %w", r.BookID, err)
		}
		switch {
		case !exists:
			return bookstore.ErrReviewBookNotFound
		case !bought:
			return bookstore.ErrNotPurchased
		}
		err := tx.QueryRow(ctx, insertReview, r.BookID, r.CustomerID, r.Rating, r.Title, r.Body, r.ReviewerName).
			Scan(&out.ID, &out.CreatedAt)
		if err == pgx.ErrNoRows {
			return bookstore.ErrAlreadyReviewed
		}
		if err != nil {
			return fmt.Errorf("insert review of %s: %w", r.BookID, err)
		}
		// Last: the book row is what concurrent reviews of the book contend for.
		tag, err := tx.Exec(ctx, addRating, r.BookID, r.Rating)
		if err != nil {
			return fmt.Errorf("add rating to %s: %w", r.BookID, err)
		}
		if tag.RowsAffected() == 0 {
			return bookstore.ErrReviewBookNotFound
		}
		return enqueue(ctx, tx, TopicBookChanged, []uuid.UUID{r.BookID})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

const reviewSort = "REVIEWS_NEWEST"

// ByBooks returns one page of each book's reviews, newest first, with each book's total,
// in one query. A cursor (from a review edge) applies to every book: it is a position in
// the (created_at, id) order.
func (s *Reviews) ByBooks(ctx context.Context, bookIDs []uuid.UUID, first int, after string) (map[uuid.UUID]*bookstore.ReviewPage, error) {
	a := args{bookIDs}
	cond := "TRUE"
	if after != "" {
		var key string
		id, err := decodeCursor(after, reviewSort, &key)
		if err != nil {
			return nil, err
		}
		at, err := time.Parse(time.RFC3339Nano, key)
		if err != nil {
			return nil, bookstore.InvalidField("after", "invalid cursor")
		}
		cond = "(t.created_at, t.id) < (" + a.add(at) + "::TIMESTAMPTZ, " + a.add(id) + "::UUID)"
	}
	q := `WITH t AS (
		SELECT r.id, r.book_id, r.rating, r.title, r.body, r.reviewer_name, r.created_at,
			count(*) OVER (PARTITION BY r.book_id) AS total
		FROM reviews r WHERE r.book_id = ANY($1::UUID[])
	), x AS (
		SELECT t.*, row_number() OVER (PARTITION BY t.book_id ORDER BY t.created_at DESC, t.id DESC) AS rn
		FROM t WHERE ` + cond + `
	)
	SELECT id, book_id, rating, title, body, reviewer_name, created_at, total
	FROM x WHERE rn <= ` + a.add(first+1) + ` ORDER BY book_id, rn`
	rows, err := s.db.Pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("reviews by book: %w", err)
	}
	defer rows.Close()
	byBook := make(map[uuid.UUID][]*bookstore.Review, len(bookIDs))
	totals := make(map[uuid.UUID]int64, len(bookIDs))
	for rows.Next() {
		var r bookstore.Review
		var total int64
		if err := rows.Scan(&r.ID, &r.BookID, &r.Rating, &r.Title, &r.Body, &r.ReviewerName, &r.CreatedAt, &total); err != nil {
			return nil, fmt.Errorf("scan review: %w", err)
		}
		byBook[r.BookID] = append(byBook[r.BookID], &r)
		totals[r.BookID] = total
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reviews by book: %w", err)
	}
	if after != "" && len(totals) < len(bookIDs) {
		// Books with nothing after the cursor returned no row to carry their total.
		if err := s.countInto(ctx, bookIDs, totals); err != nil {
			return nil, err
		}
	}
	out := make(map[uuid.UUID]*bookstore.ReviewPage, len(bookIDs))
	for _, id := range bookIDs {
		revs := byBook[id]
		hasNext := len(revs) > first
		if hasNext {
			revs = revs[:first]
		}
		p := &bookstore.ReviewPage{Edges: make([]bookstore.ReviewEdge, len(revs)), Total: totals[id]}
		cursors := make([]string, len(revs))
		for i, r := range revs {
			cursors[i] = encodeCursor(reviewSort, r.CreatedAt.UTC().Format(time.RFC3339Nano), r.ID)
			p.Edges[i] = bookstore.ReviewEdge{Cursor: cursors[i], Node: r}
		}
		p.PageInfo = bookstore.NewPageInfo(cursors, hasNext, after != "")
		out[id] = p
	}
	return out, nil
}

func (s *Reviews) countInto(ctx context.Context, bookIDs []uuid.UUID, totals map[uuid.UUID]int64) error {
	rows, err := s.db.Pool.Query(ctx, `SELECT book_id, count(*) FROM reviews WHERE book_id = ANY($1::UUID[]) GROUP BY book_id`, bookIDs)
	if err != nil {
		return fmt.Errorf("count reviews: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return fmt.Errorf("scan review count: %w", err)
		}
		totals[id] = n
	}
	return rows.Err()
}

// ByID returns the review with id, or nil when there is none.
func (s *Reviews) ByID(ctx context.Context, id uuid.UUID) (*bookstore.Review, error) {
	var r bookstore.Review
	err := s.db.Pool.QueryRow(ctx, `SELECT id, book_id, rating, title, body, reviewer_name, created_at
		FROM reviews WHERE id = $1`, id).Scan(&r.ID, &r.BookID, &r.Rating, &r.Title, &r.Body, &r.ReviewerName, &r.CreatedAt)
	if err == pgx.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("review by id: %w", err)
	}
	return &r, nil
}
