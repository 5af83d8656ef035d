package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
)

// Categories reads the category tree.
type Categories struct{ db *DB }

// All returns every category, parents before children, siblings by name. The tree is
// small (tens of rows), so callers load it whole and walk it in memory.
func (s *Categories) All(ctx context.Context) ([]*bookstore.Category, error) {
	rows, err := s.db.Pool.Query(ctx, `
		SELECT c.id, c.slug, c.name, c.parent_id
		FROM categories c LEFT JOIN categories p ON p.id = c.parent_id
		ORDER BY (c.parent_id IS NOT NULL), p.name, c.name`)
	if err != nil {
		return nil, fmt.Errorf("categories: %w", err)
	}
	defer rows.Close()
	var out []*bookstore.Category
	for rows.Next() {
		var c bookstore.Category
		if err := rows.Scan(&c.ID, &c.Slug, &c.Name, &c.ParentID); err != nil {
			return nil, fmt.Errorf("scan category: %w", err)
		}
		out = append(out, &c)
	}
	return out, rows.Err()
}

// IDsByBooks returns the ids of each book's categories.
func (s *Categories) IDsByBooks(ctx context.Context, bookIDs []uuid.UUID) (map[uuid.UUID][]uuid.UUID, error) {
	rows, err := s.db.Pool.Query(ctx, `
		SELECT book_id, category_id FROM book_categories
		WHERE book_id = ANY($1::UUID[]) ORDER BY book_id, category_id`, bookIDs)
	if err != nil {
		return nil, fmt.Errorf("categories by book: %w", err)
	}
	defer rows.Close()
	return collectBookCategories(rows, len(bookIDs))
}

// collectBookCategories reads (book_id, category_id) rows into each book's categories.
func collectBookCategories(rows pgx.Rows, books int) (map[uuid.UUID][]uuid.UUID, error) {
	out := make(map[uuid.UUID][]uuid.UUID, books)
	for rows.Next() {
		var b, c uuid.UUID
		if err := rows.Scan(&b, &c); err != nil {
			return nil, fmt.Errorf("scan book category: %w", err)
		}
		out[b] = append(out[b], c)
	}
	return out, rows.Err()
}
