package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
)

// Authors reads authors and who wrote what.
type Authors struct{ db *DB }

// ByIDs returns the authors with the given ids, in any order; missing ids are absent.
func (s *Authors) ByIDs(ctx context.Context, ids []uuid.UUID) ([]*bookstore.Author, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT id, name FROM authors WHERE id = ANY($1::UUID[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("authors by id: %w", err)
	}
	defer rows.Close()
	var out []*bookstore.Author
	for rows.Next() {
		var a bookstore.Author
		if err := rows.Scan(&a.ID, &a.Name); err != nil {
			return nil, fmt.Errorf("scan author: %w", err)
		}
		out = append(out, &a)
	}
	return out, rows.Err()
}

// ByBooks returns each book's authors in credit order.
func (s *Authors) ByBooks(ctx context.Context, bookIDs []uuid.UUID) (map[uuid.UUID][]*bookstore.Author, error) {
	rows, err := s.db.Pool.Query(ctx, `
		SELECT ba.book_id, a.id, a.name
		FROM book_authors ba JOIN authors a ON a.id = ba.author_id
		WHERE ba.book_id = ANY($1::UUID[])
		ORDER BY ba.book_id, ba.position, a.name`, bookIDs)
	if err != nil {
		return nil, fmt.Errorf("authors by book: %w", err)
	}
	defer rows.Close()
	out := make(map[uuid.UUID][]*bookstore.Author, len(bookIDs))
	for rows.Next() {
		var bookID uuid.UUID
		var a bookstore.Author
		if err := rows.Scan(&bookID, &a.ID, &a.Name); err != nil {
			return nil, fmt.Errorf("scan author: %w", err)
		}
		out[bookID] = append(out[bookID], &a)
	}
	return out, rows.Err()
}
