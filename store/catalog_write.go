package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
)

// SetPrice changes a book's price. The change and its outbox event commit together, so
// the search index and caches hear of it exactly when it is true.
func (s *Books) SetPrice(ctx context.Context, id uuid.UUID, cents int64) error {
	if cents < 0 {
		return bookstore.InvalidField("priceCents", "must be >= 0")
	}
	return s.db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE books SET price_cents = $2, updated_at = now() WHERE id = $1`, id, cents)
		if err != nil {
			return fmt.Errorf("set price of %s: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return bookstore.Errorf(bookstore.CodeNotFound, "no book with this id")
		}
		return enqueue(ctx, tx, TopicBookChanged, []uuid.UUID{id})
	})
}

// IDsAfter returns up to limit book ids greater than after, in id order: a keyset scan
// over the whole catalog for rebuilding the search index. uuid.Nil starts at the beginning.
func (s *Books) IDsAfter(ctx context.Context, after uuid.UUID, limit int) ([]uuid.UUID, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT id FROM books WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("scan book ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("scan book ids: %w", err)
	}
	return ids, nil
}
