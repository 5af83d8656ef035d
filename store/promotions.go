package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopfront/bookstore"
)

// Promotions stores discount codes and their redemption ledger. The ledger is strongly
// consistent: Claim and Release run inside the caller's transaction (checkout's tx 1 and
// its compensation), so a use is counted exactly when the order that uses it commits.
type Promotions struct{ db *DB }

// ErrPromotionUnavailable: Claim found the promotion used up, inactive, outside its
// window, or already used as often as the redeemer may.
var ErrPromotionUnavailable = &bookstore.Error{Code: bookstore.CodeDiscountNotApplicable, Message: "this discount code can no longer be used"}

const promotionCols = `id, code, description, kind, value, min_subtotal_cents, category_id, starts_at, ends_at,
	usage_limit, per_customer_limit, used, combinable, active, created_at, updated_at`

func scanPromotion(row pgx.Row) (*bookstore.Promotion, error) {
	var p bookstore.Promotion
	err := row.Scan(&p.ID, &p.Code, &p.Description, &p.Kind, &p.Value, &p.MinSubtotalCents, &p.CategoryID,
		&p.StartsAt, &p.EndsAt, &p.UsageLimit, &p.PerCustomerLimit, &p.Used, &p.Combinable, &p.Active,
		&p.CreatedAt, &p.UpdatedAt)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// ByCodes returns the promotions with these (normalised) codes, in no order.
func (s *Promotions) ByCodes(ctx context.Context, codes []string) ([]*bookstore.Promotion, error) {
	return s.ByCodesIn(ctx, s.db.Pool, codes)
}

// ByCodesIn is ByCodes inside a transaction (checkout re-prices in its tx).
func (s *Promotions) ByCodesIn(ctx context.Context, q querier, codes []string) ([]*bookstore.Promotion, error) {
	rows, err := q.Query(ctx, `SELECT `+promotionCols+` FROM promotions WHERE code = ANY($1::TEXT[])`, codes)
	if err != nil {
		return nil, fmt.Errorf("promotions by code: %w", err)
	}
	defer rows.Close()
	var out []*bookstore.Promotion
	for rows.Next() {
		p, err := scanPromotion(rows)
		if err != nil {
			return nil, fmt.Errorf("scan promotion: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// ByID returns a promotion, or NOT_FOUND.
func (s *Promotions) ByID(ctx context.Context, id uuid.UUID) (*bookstore.Promotion, error) {
	p, err := scanPromotion(s.db.Pool.QueryRow(ctx, `SELECT `+promotionCols+` FROM promotions WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, bookstore.Errorf(bookstore.CodeNotFound, "no promotion with this id")
	}
	return p, err
}

// List pages through promotions by code.
func (s *Promotions) List(ctx context.Context, first int, after string) ([]*bookstore.Promotion, bool, error) {
	q := `SELECT ` + promotionCols + ` FROM promotions ORDER BY code LIMIT $1`
	args := []any{first + 1}
	if after != "" {
		var code string
		if _, err := decodeCursor(after, "promotion", &code); err != nil {
			return nil, false, err
		}
		q = `SELECT ` + promotionCols + ` FROM promotions WHERE code > $2 ORDER BY code LIMIT $1`
		args = append(args, code)
	}
	rows, err := s.db.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("list promotions: %w", err)
	}
	defer rows.Close()
	var out []*bookstore.Promotion
	for rows.Next() {
		p, err := scanPromotion(rows)
		if err != nil {
			return nil, false, fmt.Errorf("scan promotion: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	more := len(out) > first
	if more {
		out = out[:first]
	}
	return out, more, nil
}

// PromotionCursor is the cursor of a promotion in List's order.
func PromotionCursor(p *bookstore.Promotion) string { return encodeCursor("promotion", p.Code, p.ID) }

// Create stores a new promotion (validated by the caller). A taken code is CONFLICT.
func (s *Promotions) Create(ctx context.Context, p *bookstore.Promotion) error {
	err := s.db.Pool.QueryRow(ctx, `INSERT INTO promotions (code, description, kind, value, min_subtotal_cents,
		category_id, starts_at, ends_at, usage_limit, per_customer_limit, used, combinable, active)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id, created_at, updated_at`,
		p.Code, p.Description, p.Kind, p.Value, p.MinSubtotalCents, p.CategoryID, p.StartsAt, p.EndsAt,
		p.UsageLimit, p.PerCustomerLimit, p.Used, p.Combinable, p.Active).Scan(&p.ID, &p.CreatedAt, &p.UpdatedAt)
	return promotionWriteErr(err)
}

// Ensure creates the promotion unless its code exists (seeding).
func (s *Promotions) Ensure(ctx context.Context, p *bookstore.Promotion) error {
	_, err := s.db.Pool.Exec(ctx, `INSERT INTO promotions (code, description, kind, value, min_subtotal_cents,
		category_id, starts_at, ends_at, usage_limit, per_customer_limit, used, combinable, active)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (code) DO NOTHING`,
		p.Code, p.Description, p.Kind, p.Value, p.MinSubtotalCents, p.CategoryID, p.StartsAt, p.EndsAt,
		p.UsageLimit, p.PerCustomerLimit, p.Used, p.Combinable, p.Active)
	return promotionWriteErr(err)
}

// Update replaces a promotion's terms (not its use count).
func (s *Promotions) Update(ctx context.Context, p *bookstore.Promotion, active *bool) error {
	// active nil keeps the stored state: an edit that does not mention it must not undo a
	// deactivation.
	err := s.db.Pool.QueryRow(ctx, `UPDATE promotions SET code = $2, description = $3, kind = $4, value = $5,
		min_subtotal_cents = $6, category_id = $7, starts_at = $8, ends_at = $9, usage_limit = $10,
		per_customer_limit = $11, combinable = $12, active = COALESCE($13, active), updated_at = now()
		WHERE id = $1 RETURNING used, active, created_at, updated_at`,
		p.ID, p.Code, p.Description, p.Kind, p.Value, p.MinSubtotalCents, p.CategoryID, p.StartsAt, p.EndsAt,
		p.UsageLimit, p.PerCustomerLimit, p.Combinable, active).Scan(&p.Used, &p.Active, &p.CreatedAt, &p.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return bookstore.Errorf(bookstore.CodeNotFound, "no promotion with this id")
	}
	return promotionWriteErr(err)
}

// Deactivate turns a promotion off for good (codes already in carts stop applying).
func (s *Promotions) Deactivate(ctx context.Context, id uuid.UUID) error {
	tag, err := s.db.Pool.Exec(ctx, `UPDATE promotions SET active = false, updated_at = now() WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("deactivate promotion: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return bookstore.Errorf(bookstore.CodeNotFound, "no promotion with this id")
	}
	return nil
}

func promotionWriteErr(err error) error {
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe) && pe.Code == "23505":
		return &bookstore.Error{Code: bookstore.CodeConflict, Field: "code", Message: "a promotion with this code exists"}
	case errors.As(err, &pe) && pe.Code == "23503":
		return bookstore.InvalidField("categoryId", "no such category")
	}
	return fmt.Errorf("write promotion: %w", err)
}

// Claim counts one use of the promotion for the order inside tx: a conditional increment
// that fails once usage_limit uses are taken, plus, for a per-customer limited promotion
// (redeemer is the blind index of the normalised email), the (promotion, redeemer) row's
// conditional increment, and a claim row keyed by the order. Claiming again for an order
// that holds a claim changes nothing (a retried checkout). On ErrPromotionUnavailable
// the caller must roll tx back (the first increment may have happened). Concurrent
// claims serialise on the promotion's row, so no more than usage_limit ever commit.
func (s *Promotions) Claim(ctx context.Context, tx pgx.Tx, id, order uuid.UUID, redeemer []byte, now time.Time) error {
	tag, err := tx.Exec(ctx, `INSERT INTO promotion_claims (promotion_id, order_id, redeemer) VALUES ($1, $2, $3)
		ON CONFLICT (promotion_id, order_id) DO NOTHING`, id, order, redeemer)
	if err != nil {
		return fmt.Errorf("claim promotion %s for order %s: %w", id, order, err)
	}
	if tag.RowsAffected() == 0 {
		return nil // this order already holds its use
	}
	var perCustomer *int64
	err = tx.QueryRow(ctx, `UPDATE promotions SET used = used + 1
		WHERE id = $1 AND active AND (usage_limit IS NULL OR used < usage_limit)
		AND (starts_at IS NULL OR starts_at <= $2) AND (ends_at IS NULL OR ends_at > $2)
		RETURNING per_customer_limit`, id, now).Scan(&perCustomer)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrPromotionUnavailable
	}
	if err != nil {
		return fmt.Errorf("claim promotion %s: %w", id, err)
	}
	if perCustomer == nil {
		return nil
	}
	if len(redeemer) == 0 {
		return errors.New("claim promotion: a per-customer limited promotion needs the redeemer")
	}
	var uses int64
	err = tx.QueryRow(ctx, `INSERT INTO promotion_redemptions (promotion_id, redeemer, uses) VALUES ($1, $2, 1)
		ON CONFLICT (promotion_id, redeemer) DO UPDATE SET uses = promotion_redemptions.uses + 1
		WHERE promotion_redemptions.uses < $3 RETURNING uses`, id, redeemer, *perCustomer).Scan(&uses)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrPromotionUnavailable
	}
	if err != nil {
		return fmt.Errorf("claim promotion %s for redeemer: %w", id, err)
	}
	return nil
}

// Release gives back the use the order claimed (an order that failed to pay or was
// cancelled), with its per-customer count. It is idempotent: an order that holds no
// claim (never claimed, or released already) gives back nothing.
func (s *Promotions) Release(ctx context.Context, tx pgx.Tx, id, order uuid.UUID) error {
	var redeemer []byte
	err := tx.QueryRow(ctx, `DELETE FROM promotion_claims WHERE promotion_id = $1 AND order_id = $2 RETURNING redeemer`,
		id, order).Scan(&redeemer)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release promotion %s for order %s: %w", id, order, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE promotions SET used = used - 1 WHERE id = $1 AND used > 0`, id); err != nil {
		return fmt.Errorf("release promotion %s: %w", id, err)
	}
	if len(redeemer) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE promotion_redemptions SET uses = uses - 1
		WHERE promotion_id = $1 AND redeemer = $2 AND uses > 0`, id, redeemer); err != nil {
		return fmt.Errorf("release promotion %s for redeemer: %w", id, err)
	}
	return nil
}
