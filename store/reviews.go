package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
)

// Reviews reads book reviews.
type Reviews struct{ db *DB }

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
