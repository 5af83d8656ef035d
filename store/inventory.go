package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// Inventory reads and changes units on hand.
type Inventory struct{ db *DB }

// Stock returns units on hand per book; a book without an inventory row has none.
func (s *Inventory) Stock(ctx context.Context, bookIDs []uuid.UUID) (map[uuid.UUID]int64, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT book_id, stock FROM inventory WHERE book_id = ANY($1::UUID[])`, bookIDs)
	if err != nil {
		return nil, fmt.Errorf("stock: %w", err)
	}
	defer rows.Close()
	out := make(map[uuid.UUID]int64, len(bookIDs))
	for rows.Next() {
		var id uuid.UUID
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("scan stock: %w", err)
		}
		out[id] = n
	}
	return out, rows.Err()
}
