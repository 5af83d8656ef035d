package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
)

// Carts stores carts in the database, for deployments without Redis. Writes are
// optimistic: Update re-reads and retries when another writer bumped the version in
// between, so two devices editing one cart never lose an update.
type Carts struct{ db *DB }

const cartCols = `id, customer_id, lines, codes, version, created_at, updated_at, expires_at`

func scanCart(row pgx.Row) (*bookstore.Cart, error) {
	var c bookstore.Cart
	var lines, codes []byte
	if err := row.Scan(&c.ID, &c.CustomerID, &lines, &codes, &c.Version, &c.CreatedAt, &c.UpdatedAt, &c.ExpiresAt); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, bookstore.ErrCartNotFound
		}
		return nil, fmt.Errorf("scan cart: %w", err)
	}
	if err := json.Unmarshal(lines, &c.Lines); err != nil {
		return nil, fmt.Errorf("decode cart lines: %w", err)
	}
	if err := json.Unmarshal(codes, &c.DiscountCodes); err != nil {
		return nil, fmt.Errorf("decode cart codes: %w", err)
	}
	return &c, nil
}

func cartJSON(c *bookstore.Cart) ([]byte, []byte) {
	lines, codes := c.Lines, c.DiscountCodes
	if lines == nil {
		lines = []bookstore.CartLine{}
	}
	if codes == nil {
		codes = []string{}
	}
	l, _ := json.Marshal(lines)
	d, _ := json.Marshal(codes)
	return l, d
}

// Create inserts a new cart (version 1).
func (s *Carts) Create(ctx context.Context, c *bookstore.Cart) error {
	l, d := cartJSON(c)
	c.Version = 1
	_, err := s.db.Pool.Exec(ctx, `INSERT INTO carts (`+cartCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		c.ID, c.CustomerID, l, d, c.Version, c.CreatedAt, c.UpdatedAt, c.ExpiresAt)
	if err != nil {
		return fmt.Errorf("create cart: %w", err)
	}
	return nil
}

// Get returns a live cart, or bookstore.ErrCartNotFound.
func (s *Carts) Get(ctx context.Context, id string) (*bookstore.Cart, error) {
	return scanCart(s.db.Pool.QueryRow(ctx, `SELECT `+cartCols+` FROM carts WHERE id = $1 AND expires_at > now()`, id))
}

// Current returns the customer's most recently created live cart, or
// bookstore.ErrCartNotFound.
func (s *Carts) Current(ctx context.Context, customer uuid.UUID) (*bookstore.Cart, error) {
	return scanCart(s.db.Pool.QueryRow(ctx, `SELECT `+cartCols+` FROM carts
		WHERE customer_id = $1 AND expires_at > now() ORDER BY created_at DESC, id DESC LIMIT 1`, customer))
}

// Update applies fn to the cart and stores the result if nobody wrote it meanwhile,
// retrying with a fresh read otherwise. fn may run several times and must only change
// the cart it is given; an error from fn aborts without writing.
func (s *Carts) Update(ctx context.Context, id string, fn func(*bookstore.Cart) error) (*bookstore.Cart, error) {
	for attempt := 0; ; attempt++ {
		c, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := fn(c); err != nil {
			return nil, err
		}
		l, d := cartJSON(c)
		tag, err := s.db.Pool.Exec(ctx, `UPDATE carts SET lines = $3, codes = $4, version = version + 1,
			customer_id = $5, updated_at = $6, expires_at = $7 WHERE id = $1 AND version = $2`,
			id, c.Version, l, d, c.CustomerID, c.UpdatedAt, c.ExpiresAt)
		if err != nil {
			return nil, fmt.Errorf("update cart: %w", err)
		}
		if tag.RowsAffected() == 1 {
			c.Version++
			return c, nil
		}
		if err := casBackoff(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

// Take deletes the cart and returns it as it was: of two concurrent Takes, one gets the
// cart and the other bookstore.ErrCartNotFound (a guest cart merges once).
func (s *Carts) Take(ctx context.Context, id string) (*bookstore.Cart, error) {
	return scanCart(s.db.Pool.QueryRow(ctx, `DELETE FROM carts WHERE id = $1 AND expires_at > now() RETURNING `+cartCols, id))
}

// DeleteExpired removes up to limit carts that expired before now and reports how many.
func (s *Carts) DeleteExpired(ctx context.Context, now time.Time, limit int) (int64, error) {
	tag, err := s.db.Pool.Exec(ctx, `DELETE FROM carts WHERE id IN (
		SELECT id FROM carts WHERE expires_at <= $1 LIMIT $2)`, now, limit)
	if err != nil {
		return 0, fmt.Errorf("delete expired carts: %w", err)
	}
	return tag.RowsAffected(), nil
}

// casBackoff waits a little, growing and jittered, before a compare-and-set is retried,
// so writers racing on one cart spread out instead of colliding again at once.
func casBackoff(ctx context.Context, attempt int) error {
	if attempt >= 200 {
		return errors.New("cart update: too much contention")
	}
	d := time.Duration(1+rand.IntN(min(attempt+1, 20))) * 100 * time.Microsecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
