package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Outbox topics. A topic names what changed; the aggregate id says which one.
const (
	// TopicBookChanged: a book's searchable data changed (created, re-imported, price,
	// stock, rating). Handlers re-read the book; a missing book means it was deleted.
	TopicBookChanged = "book.changed"
	// TopicLowStock: a book's stock fell to the low-stock alert threshold or below (the
	// payload is a LowStockPayload). Written once per crossing, not on every sale below it.
	TopicLowStock = "low_stock"
)

// Event is one outbox row.
type Event struct {
	ID          uuid.UUID
	Topic       string
	AggregateID uuid.UUID
	Payload     json.RawMessage
	CreatedAt   time.Time
	// Attempts is how many times the consumer reading it failed at it alone (PendingFor).
	Attempts int
}

// Outbox reads and retires events written by other store methods' transactions, and
// keeps each consumer's delivery state (outbox_consumers.go).
type Outbox struct{ db *DB }

// enqueue writes one event per aggregate id inside the caller's transaction.
func enqueue(ctx context.Context, tx pgx.Tx, topic string, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO outbox (topic, aggregate_id) SELECT $1, unnest($2::UUID[])`, topic, ids)
	if err != nil {
		return fmt.Errorf("enqueue %s events: %w", topic, err)
	}
	return nil
}

// enqueuePayload writes one event with a JSON payload inside the caller's transaction.
func enqueuePayload(ctx context.Context, tx pgx.Tx, topic string, id uuid.UUID, payload any) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", topic, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (topic, aggregate_id, payload) VALUES ($1, $2, $3)`, topic, id, b); err != nil {
		return fmt.Errorf("enqueue %s event: %w", topic, err)
	}
	return nil
}

// Notify writes one event per aggregate id on its own, outside any catalog change: for
// a consumer that must look again (a search hit whose book is gone).
func (o *Outbox) Notify(ctx context.Context, topic string, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := o.db.Pool.Exec(ctx, `INSERT INTO outbox (topic, aggregate_id) SELECT $1, unnest($2::UUID[])`, topic, ids); err != nil {
		return fmt.Errorf("enqueue %s events: %w", topic, err)
	}
	return nil
}

// Prune deletes events published before cutoff and reports how many it deleted. It
// deletes in batches, so that no transaction grows large after a big import (CockroachDB
// limits transaction size); each batch moves the pruned-up-to mark (Bounds) forward to
// its newest event in the same transaction, so no event is gone without the mark
// saying so.
func (o *Outbox) Prune(ctx context.Context, cutoff time.Time) (int64, error) {
	const batch = 1000
	var total int64
	for {
		var n int64
		err := o.db.ExecuteTx(ctx, func(tx pgx.Tx) error {
			n = 0
			rows, err := tx.Query(ctx, `DELETE FROM outbox WHERE id IN (
				SELECT id FROM outbox WHERE published_at IS NOT NULL AND published_at < $1 LIMIT $2)
				RETURNING id, created_at`, cutoff, batch)
			if err != nil {
				return err
			}
			var newest time.Time
			var ids []uuid.UUID
			for rows.Next() {
				var id uuid.UUID
				var t time.Time
				if err := rows.Scan(&id, &t); err != nil {
					rows.Close()
					return err
				}
				n++
				ids = append(ids, id)
				if t.After(newest) {
					newest = t
				}
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if n == 0 {
				return nil
			}
			if _, err := tx.Exec(ctx, `DELETE FROM outbox_deliveries WHERE event_id = ANY($1::UUID[])`, ids); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO outbox_pruned (singleton, up_to) VALUES (true, $1)
				ON CONFLICT (singleton) DO UPDATE SET up_to = $1 WHERE outbox_pruned.up_to < $1`, newest)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("prune outbox: %w", err)
		}
		total += n
		if n < batch {
			return total, nil
		}
	}
}

// Bounds returns the creation time of the newest event in the outbox and the
// pruned-up-to mark: the newest event Prune deleted (the zero time when neither is
// known). Both are read in one statement, so a concurrent Prune cannot make the newest
// event vanish between them.
func (o *Outbox) Bounds(ctx context.Context) (newest, prunedTo time.Time, err error) {
	var n, p *time.Time
	if err := o.db.Pool.QueryRow(ctx, `SELECT (SELECT max(created_at) FROM outbox),
		(SELECT up_to FROM outbox_pruned WHERE singleton)`).Scan(&n, &p); err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("read the outbox bounds: %w", err)
	}
	if n != nil {
		newest = *n
	}
	if p != nil {
		prunedTo = *p
	}
	return newest, prunedTo, nil
}

// AggregatesSince returns the distinct aggregate ids of topic's events created at or
// after since, published or not.
func (o *Outbox) AggregatesSince(ctx context.Context, topic string, since time.Time) ([]uuid.UUID, error) {
	rows, err := o.db.Pool.Query(ctx, `SELECT DISTINCT aggregate_id FROM outbox WHERE topic = $1 AND created_at >= $2`, topic, since)
	if err != nil {
		return nil, fmt.Errorf("read outbox since %s: %w", since, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("read outbox since %s: %w", since, err)
	}
	return ids, nil
}
