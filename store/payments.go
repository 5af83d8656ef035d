package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPSPCharges is the embedded test PSP's ledger (package payment/testpsp): the
// charges it made, by idempotency key. It stands for a PSP's own database, so every
// method is one autocommitted statement on the pool, never part of a caller's
// transaction.
type TestPSPCharges struct{ db *DB }

// TestPSPCharge is a test_psp_charges row. Status, Method and FailureCode hold
// payment.Status, payment.Method and a bookstore error code.
type TestPSPCharge struct {
	Key         string
	ID          string
	RequestHash []byte
	Status      string
	AmountCents int64
	Currency    string
	Method      string
	Brand       string
	Last4       string
	Wallet      string
	FailureCode string
	CreatedAt   time.Time
	RefundedAt  *time.Time
}

var (
	// ErrTestChargeNotFound: no charge with this idempotency key.
	ErrTestChargeNotFound = errors.New("test PSP charge not found")
	// ErrTestChargeNotRefundable: the charge did not succeed, so there is nothing to
	// refund.
	ErrTestChargeNotRefundable = errors.New("test PSP charge did not succeed: nothing to refund")
)

const testPSPCols = `idempotency_key, id, request_hash, status, amount_cents, currency, method, brand, last4, wallet, failure_code, created_at, refunded_at`

func scanTestPSP(row pgx.Row) (TestPSPCharge, error) {
	var c TestPSPCharge
	err := row.Scan(&c.Key, &c.ID, &c.RequestHash, &c.Status, &c.AmountCents, &c.Currency, &c.Method,
		&c.Brand, &c.Last4, &c.Wallet, &c.FailureCode, &c.CreatedAt, &c.RefundedAt)
	return c, err
}

// ON CONFLICT DO NOTHING waits for a concurrent insert of the same key to commit and then
// inserts nothing, so of many racing requests exactly one row is written; the losers
// read the winner's row.
const insertTestPSP = `
INSERT INTO test_psp_charges (idempotency_key, id, request_hash, status, amount_cents, currency, method, brand, last4, wallet, failure_code)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING ` + testPSPCols

// Create records c unless a charge with c.Key exists, and returns the stored charge:
// c (created = true) or the earlier one (created = false), which may differ from c.
func (s *TestPSPCharges) Create(ctx context.Context, c TestPSPCharge) (stored TestPSPCharge, created bool, err error) {
	stored, err = scanTestPSP(s.db.Pool.QueryRow(ctx, insertTestPSP, c.Key, c.ID, c.RequestHash, c.Status,
		c.AmountCents, c.Currency, c.Method, c.Brand, c.Last4, c.Wallet, c.FailureCode))
	if err == nil {
		return stored, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return TestPSPCharge{}, false, fmt.Errorf("record test PSP charge: %w", err)
	}
	stored, err = s.ByKey(ctx, c.Key)
	return stored, false, err
}

// ByKey returns the charge with the idempotency key, ErrTestChargeNotFound if none.
func (s *TestPSPCharges) ByKey(ctx context.Context, key string) (TestPSPCharge, error) {
	c, err := scanTestPSP(s.db.Pool.QueryRow(ctx, `SELECT `+testPSPCols+` FROM test_psp_charges WHERE idempotency_key = $1`, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return TestPSPCharge{}, ErrTestChargeNotFound
	}
	if err != nil {
		return TestPSPCharge{}, fmt.Errorf("read test PSP charge: %w", err)
	}
	return c, nil
}

// A voided key's row has no request hash: no request made it.
const voidTestPSP = `
INSERT INTO test_psp_charges (idempotency_key, id, request_hash, status, amount_cents, currency, method, brand, last4, wallet, failure_code)
VALUES ($1, $2, '', 'FAILED', 0, '', '', '', '', '', 'PAYMENT_ERROR')
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING ` + testPSPCols

// Void closes the key: it records a FAILED charge with no request hash (id is its id)
// unless the key has a charge, and returns the key's charge. Create then finds that row
// instead of charging.
func (s *TestPSPCharges) Void(ctx context.Context, key, id string) (TestPSPCharge, error) {
	c, err := scanTestPSP(s.db.Pool.QueryRow(ctx, voidTestPSP, key, id))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return TestPSPCharge{}, fmt.Errorf("void test PSP charge: %w", err)
	}
	return s.ByKey(ctx, key)
}

// The status strings are payment.StatusSucceeded and payment.StatusRefunded; a refund
// keeps the first refund's time.
const refundTestPSP = `
UPDATE test_psp_charges SET status = 'REFUNDED', refunded_at = COALESCE(refunded_at, now())
WHERE idempotency_key = $1 AND status IN ('SUCCEEDED', 'REFUNDED')
RETURNING ` + testPSPCols

// Refund marks the succeeded charge with the key refunded (idempotently) and returns it.
func (s *TestPSPCharges) Refund(ctx context.Context, key string) (TestPSPCharge, error) {
	c, err := scanTestPSP(s.db.Pool.QueryRow(ctx, refundTestPSP, key))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return TestPSPCharge{}, fmt.Errorf("refund test PSP charge: %w", err)
	}
	if _, err := s.ByKey(ctx, key); err != nil {
		return TestPSPCharge{}, err
	}
	return TestPSPCharge{}, ErrTestChargeNotRefundable
}

// WebhookEvents deduplicates PSP notifications by event id.
type WebhookEvents struct{ db *DB }

// A claim succeeds for a new event, or for one whose earlier claim went stale without
// being processed (its handler crashed): then the event is handled again.
const claimWebhook = `
INSERT INTO webhook_events (provider, event_id, type) VALUES ($1, $2, $3)
ON CONFLICT (provider, event_id) DO UPDATE SET claimed_at = now()
WHERE webhook_events.processed_at IS NULL
  AND webhook_events.claimed_at < now() - $4::INT8 * INTERVAL '1 microsecond'
RETURNING event_id`

// WebhookClaim is what Claim found.
type WebhookClaim int

const (
	// WebhookClaimed: the caller holds the event and handles it.
	WebhookClaimed WebhookClaim = iota + 1
	// WebhookProcessed: the event was handled already; acknowledge the delivery.
	WebhookProcessed
	// WebhookBusy: another delivery holds a live claim and may still fail; the PSP must
	// deliver again, so the delivery is not acknowledged.
	WebhookBusy
)

// Claim reserves the event for handling, unless it was processed already or another
// delivery's claim is younger than stale.
func (w *WebhookEvents) Claim(ctx context.Context, provider, eventID, typ string, stale time.Duration) (WebhookClaim, error) {
	var id string
	err := w.db.Pool.QueryRow(ctx, claimWebhook, provider, eventID, typ, stale.Microseconds()).Scan(&id)
	if err == nil {
		return WebhookClaimed, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("claim webhook event %s: %w", eventID, err)
	}
	var processed bool
	err = w.db.Pool.QueryRow(ctx, `SELECT processed_at IS NOT NULL FROM webhook_events WHERE provider = $1 AND event_id = $2`, provider, eventID).Scan(&processed)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// Released since: the PSP's next delivery claims it.
		return WebhookBusy, nil
	case err != nil:
		return 0, fmt.Errorf("read webhook event %s: %w", eventID, err)
	case processed:
		return WebhookProcessed, nil
	}
	return WebhookBusy, nil
}

// Done marks a claimed event processed: later deliveries of it are ignored.
func (w *WebhookEvents) Done(ctx context.Context, provider, eventID string) error {
	_, err := w.db.Pool.Exec(ctx, `UPDATE webhook_events SET processed_at = now() WHERE provider = $1 AND event_id = $2`, provider, eventID)
	if err != nil {
		return fmt.Errorf("mark webhook event %s processed: %w", eventID, err)
	}
	return nil
}

// Release drops the claim of an event whose handling failed, so that the PSP's next
// delivery of it is handled at once.
func (w *WebhookEvents) Release(ctx context.Context, provider, eventID string) error {
	_, err := w.db.Pool.Exec(ctx, `DELETE FROM webhook_events WHERE provider = $1 AND event_id = $2 AND processed_at IS NULL`, provider, eventID)
	if err != nil {
		return fmt.Errorf("release webhook event %s: %w", eventID, err)
	}
	return nil
}

// PaymentIntents maps idempotency keys to the PSP's payment ids (package payment/stripe):
// a PSP read by id is consistent where its search is not. Each method is one
// autocommitted statement: the row must outlive any caller's transaction.
type PaymentIntents struct{ db *DB }

// PaymentIntent is a payment_intents row. IntentID is empty for a key voided before any
// intent was made.
type PaymentIntent struct {
	Provider    string
	Key         string
	IntentID    string
	RequestHash []byte
	VoidedAt    *time.Time
	CreatedAt   time.Time
}

// ErrPaymentIntentNotFound: no intent and no void recorded for the key.
var ErrPaymentIntentNotFound = errors.New("payment intent not found")

const intentCols = `provider, idempotency_key, COALESCE(intent_id, ''), request_hash, voided_at, created_at`

func scanIntent(row pgx.Row) (PaymentIntent, error) {
	var p PaymentIntent
	err := row.Scan(&p.Provider, &p.Key, &p.IntentID, &p.RequestHash, &p.VoidedAt, &p.CreatedAt)
	return p, err
}

// Record maps the key to intentID unless the key is mapped or voided already, and
// returns the stored row, which the caller compares with what it recorded: of racing
// charges the first row wins, and a void that came first stays.
func (s *PaymentIntents) Record(ctx context.Context, provider, key, intentID string, hash []byte) (PaymentIntent, error) {
	p, err := scanIntent(s.db.Pool.QueryRow(ctx, `
INSERT INTO payment_intents (provider, idempotency_key, intent_id, request_hash) VALUES ($1, $2, $3, $4)
ON CONFLICT (provider, idempotency_key) DO NOTHING
RETURNING `+intentCols, provider, key, intentID, hash))
	if err == nil {
		return p, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return PaymentIntent{}, fmt.Errorf("record payment intent %s: %w", key, err)
	}
	return s.ByKey(ctx, provider, key)
}

// ByKey returns the key's row, ErrPaymentIntentNotFound if none.
func (s *PaymentIntents) ByKey(ctx context.Context, provider, key string) (PaymentIntent, error) {
	p, err := scanIntent(s.db.Pool.QueryRow(ctx, `SELECT `+intentCols+` FROM payment_intents WHERE provider = $1 AND idempotency_key = $2`, provider, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return PaymentIntent{}, ErrPaymentIntentNotFound
	}
	if err != nil {
		return PaymentIntent{}, fmt.Errorf("read payment intent %s: %w", key, err)
	}
	return p, nil
}

// Void marks the key voided (keeping the first void's time), recording it without an
// intent when the key has none yet, and returns the row.
func (s *PaymentIntents) Void(ctx context.Context, provider, key string) (PaymentIntent, error) {
	p, err := scanIntent(s.db.Pool.QueryRow(ctx, `
INSERT INTO payment_intents (provider, idempotency_key, voided_at) VALUES ($1, $2, now())
ON CONFLICT (provider, idempotency_key) DO UPDATE SET voided_at = COALESCE(payment_intents.voided_at, now())
RETURNING `+intentCols, provider, key))
	if err != nil {
		return PaymentIntent{}, fmt.Errorf("void payment intent %s: %w", key, err)
	}
	return p, nil
}
