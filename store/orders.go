package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopfront/bookstore"
)

// Outbox topics of orders: one per order event type (OrderTopic). The aggregate id is
// the order's id; the payload an OrderEventPayload.
const (
	TopicOrderCreated       = "order_created"
	TopicOrderPaid          = "order_paid"
	TopicOrderPaymentFailed = "order_payment_failed"
)

// OrderTopic is the outbox topic of an order event type: order_created for PLACED,
// else "order_" and the type in lower case (order_paid, order_shipped, ...).
func OrderTopic(t bookstore.OrderEventType) string {
	if t == bookstore.OrderEventPlaced {
		return TopicOrderCreated
	}
	return "order_" + strings.ToLower(string(t))
}

// IsOrderTopic reports whether an outbox topic carries order events.
func IsOrderTopic(topic string) bool { return strings.HasPrefix(topic, "order_") }

// OrderEventPayload is the payload of the order topics: enough to route the event
// (status, customer, seq) without reading the order; consumers that need more read it.
type OrderEventPayload struct {
	Seq        int64                    `json:"seq"`
	Type       bookstore.OrderEventType `json:"type"`
	Status     bookstore.OrderStatus    `json:"status"`
	At         time.Time                `json:"at"`
	CustomerID *uuid.UUID               `json:"customerId,omitempty"`
	TotalCents int64                    `json:"totalCents"`
	Currency   string                   `json:"currency"`
}

// ErrTransition: the order's status does not allow the change (the state machine, or a
// concurrent change that came first).
var ErrTransition = errors.New("store: the order's status does not allow this change")

// ErrCartCheckedOut: the cart already has a live (paying or paid) order.
var ErrCartCheckedOut = errors.New("store: the cart already has a live order")

// OrderRecord is an order as stored: its personal data is one ciphertext (ContactEnc,
// sealed by the caller with pii.AAD("orders", "contact_enc", id)).
type OrderRecord struct {
	ID             uuid.UUID
	Number         string
	CustomerID     *uuid.UUID
	EmailIndex     []byte
	ContactEnc     []byte
	AccessHash     []byte
	CartRef        []byte
	Status         bookstore.OrderStatus
	Cost           bookstore.Cost
	ShippingMethod string
	Country        string
	Payment        bookstore.OrderPayment
	Lines          []bookstore.OrderLine
	Discounts      []bookstore.OrderDiscount
	CreatedAt      time.Time
	UpdatedAt      time.Time
	PaidAt         *time.Time

	// Set by Lock: the order's last event seq and the transaction's timestamp, so that
	// Settle writes its event without reading them again.
	locked   bool
	eventSeq int64
	txNow    time.Time
}

// Orders reads and writes orders. Writes take the caller's transaction: an order's
// state changes together with the stock, promotion uses and outbox rows they imply.
type Orders struct{ db *DB }

const orderCols = `id, number, customer_id, email_index, contact_enc, access_hash, cart_ref, status,
	currency, subtotal_cents, discount_cents, shipping_cents, tax_cents, total_cents, shipping_method, country,
	payment_method, payment_status, COALESCE(payment_ref, ''), COALESCE(payment_brand, ''), COALESCE(payment_last4, ''),
	COALESCE(payment_wallet, ''), COALESCE(failure_code, ''), COALESCE(failure_message, ''), created_at, updated_at, paid_at`

func scanOrder(row pgx.Row, more ...func(*OrderRecord) []any) (*OrderRecord, error) {
	var o OrderRecord
	var status string
	c, p := &o.Cost, &o.Payment
	dest := []any{&o.ID, &o.Number, &o.CustomerID, &o.EmailIndex, &o.ContactEnc, &o.AccessHash, &o.CartRef, &status,
		&c.Currency, &c.SubtotalCents, &c.DiscountCents, &c.ShippingCents, &c.TaxCents, &c.TotalCents, &o.ShippingMethod, &o.Country,
		&p.Method, &p.Status, &p.Reference, &p.Brand, &p.Last4, &p.Wallet, &p.FailureCode, &p.FailureMessage,
		&o.CreatedAt, &o.UpdatedAt, &o.PaidAt}
	for _, m := range more {
		dest = append(dest, m(&o)...)
	}
	err := row.Scan(dest...)
	o.Status = bookstore.OrderStatus(status)
	return &o, err
}

// Insert writes a new order with its lines and discounts, and its order_created event,
// inside tx. A cart that already has a live order gives ErrCartCheckedOut (tx must then
// roll back).
func (s *Orders) Insert(ctx context.Context, tx pgx.Tx, o *OrderRecord) error {
	c, p := o.Cost, o.Payment
	err := tx.QueryRow(ctx, `
		INSERT INTO orders (id, number, customer_id, email_index, contact_enc, access_hash, cart_ref, status,
			currency, subtotal_cents, discount_cents, shipping_cents, tax_cents, total_cents, shipping_method, country,
			payment_method, payment_status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
		RETURNING created_at, updated_at`,
		o.ID, o.Number, o.CustomerID, o.EmailIndex, o.ContactEnc, o.AccessHash, o.CartRef, string(o.Status),
		c.Currency, c.SubtotalCents, c.DiscountCents, c.ShippingCents, c.TaxCents, c.TotalCents, o.ShippingMethod, o.Country,
		p.Method, p.Status).Scan(&o.CreatedAt, &o.UpdatedAt)
	if isUniqueViolation(err, "orders_cart_live") {
		return ErrCartCheckedOut
	}
	if err != nil {
		return fmt.Errorf("insert order: %w", err)
	}
	n := len(o.Lines)
	pos, books, titles := make([]int64, n), make([]uuid.UUID, n), make([]string, n)
	qty, unit, total := make([]int64, n), make([]int64, n), make([]int64, n)
	for i, l := range o.Lines {
		pos[i], books[i], titles[i] = int64(i), l.BookID, l.Title
		qty[i], unit[i], total[i] = int64(l.Quantity), l.UnitPriceCents, l.TotalCents
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO order_lines (order_id, position, book_id, title, quantity, unit_price_cents, total_cents)
		SELECT $1, unnest($2::INT8[]), unnest($3::UUID[]), unnest($4::TEXT[]), unnest($5::INT8[]), unnest($6::INT8[]), unnest($7::INT8[])`,
		o.ID, pos, books, titles, qty, unit, total); err != nil {
		return fmt.Errorf("insert order lines: %w", err)
	}
	if len(o.Discounts) > 0 {
		m := len(o.Discounts)
		promos, codes, amounts := make([]uuid.UUID, m), make([]string, m), make([]int64, m)
		for i, d := range o.Discounts {
			promos[i], codes[i], amounts[i] = d.PromotionID, d.Code, d.AmountCents
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO order_discounts (order_id, promotion_id, code, amount_cents)
			SELECT $1, unnest($2::UUID[]), unnest($3::TEXT[]), unnest($4::INT8[])`, o.ID, promos, codes, amounts); err != nil {
			return fmt.Errorf("insert order discounts: %w", err)
		}
	}
	_, err = s.AppendEvent(ctx, tx, o, bookstore.OrderEventPlaced, nil)
	return err
}

// AppendEvent records an event of the order (locked by Lock, or inserted, in tx) with
// the next seq, and its outbox row, inside tx. The order's status must already be the
// one after the event.
//
// On an order read by Lock, the seq and time are known (the lock's), so the order's
// event_seq, the event and its outbox row go in one pipelined round trip.
func (s *Orders) AppendEvent(ctx context.Context, tx pgx.Tx, o *OrderRecord, typ bookstore.OrderEventType, detail any) (*bookstore.OrderEvent, error) {
	raw, err := encodeDetail(detail)
	if err != nil {
		return nil, err
	}
	if o.locked {
		return s.writeLocked(ctx, tx, o, o.Status, typ, raw)
	}
	ev := &bookstore.OrderEvent{OrderID: o.ID, Type: typ, Status: o.Status, Detail: raw}
	err = tx.QueryRow(ctx, `
		WITH n AS (UPDATE orders SET event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq)
		INSERT INTO order_events (order_id, seq, type, status, detail)
		SELECT $1, n.event_seq, $2, $3, $4 FROM n RETURNING seq, at`, o.ID, string(typ), string(o.Status), raw).Scan(&ev.Seq, &ev.At)
	if err != nil {
		return nil, fmt.Errorf("append order %s event: %w", o.ID, err)
	}
	o.eventSeq = ev.Seq
	err = enqueuePayload(ctx, tx, OrderTopic(typ), o.ID, OrderEventPayload{Seq: ev.Seq, Type: typ, Status: o.Status, At: ev.At,
		CustomerID: o.CustomerID, TotalCents: o.Cost.TotalCents, Currency: o.Cost.Currency})
	return ev, err
}

func encodeDetail(detail any) ([]byte, error) {
	if detail == nil {
		return nil, nil
	}
	raw, err := json.Marshal(detail)
	if err != nil {
		return nil, fmt.Errorf("encode order event detail: %w", err)
	}
	return raw, nil
}

// Transition moves the order (locked by Lock in tx) to status to, if the state machine
// allows it, and records the event: ErrTransition otherwise (tx must then roll back).
// The order's update, its event and the event's outbox row are one pipelined round trip.
func (s *Orders) Transition(ctx context.Context, tx pgx.Tx, o *OrderRecord, to bookstore.OrderStatus, typ bookstore.OrderEventType, detail any) (*bookstore.OrderEvent, error) {
	if !o.Status.CanBecome(to) {
		return nil, ErrTransition
	}
	if o.locked {
		raw, err := encodeDetail(detail)
		if err != nil {
			return nil, err
		}
		return s.writeLocked(ctx, tx, o, to, typ, raw)
	}
	tag, err := tx.Exec(ctx, `UPDATE orders SET status = $2, updated_at = now() WHERE id = $1 AND status = $3`,
		o.ID, string(to), string(o.Status))
	if err != nil {
		return nil, fmt.Errorf("order %s to %s: %w", o.ID, to, err)
	}
	if tag.RowsAffected() != 1 {
		return nil, ErrTransition
	}
	o.Status = to
	return s.AppendEvent(ctx, tx, o, typ, detail)
}

// writeLocked records the event typ of o (read by Lock in tx), which leaves it in status
// to, in one pipelined round trip: the order's row, the event with the next seq at the
// transaction's time (Lock's now(), what the column's default would write), and its
// outbox row. A change of status (to != o.Status) updates the row on the condition that
// it still has the status Lock read, and stamps updated_at; under the lock the
// condition always holds, and if it did not, the caller's ErrTransition rolls the event
// rows back with tx. An event without a change (AppendEvent) only moves event_seq.
func (s *Orders) writeLocked(ctx context.Context, tx pgx.Tx, o *OrderRecord, to bookstore.OrderStatus, typ bookstore.OrderEventType, detail []byte) (*bookstore.OrderEvent, error) {
	from, seq := o.Status, o.eventSeq+1
	b := &pgx.Batch{}
	var rows int64
	count := func(ct pgconn.CommandTag) error { rows = ct.RowsAffected(); return nil }
	if to != from {
		b.Queue(`UPDATE orders SET status = $2, updated_at = now(), event_seq = $3 WHERE id = $1 AND status = $4`,
			o.ID, string(to), seq, string(from)).Exec(count)
	} else {
		b.Queue(`UPDATE orders SET event_seq = $2 WHERE id = $1`, o.ID, seq).Exec(count)
	}
	o.Status = to
	if err := s.queueEventDetail(b, o, seq, o.txNow, typ, detail); err != nil {
		o.Status = from
		return nil, err
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		o.Status = from
		return nil, fmt.Errorf("order %s event %s: %w", o.ID, typ, err)
	}
	if rows != 1 {
		o.Status = from
		return nil, ErrTransition
	}
	if to != from {
		o.UpdatedAt = o.txNow
	}
	o.eventSeq = seq
	return &bookstore.OrderEvent{OrderID: o.ID, Seq: seq, Type: typ, Status: to, Detail: detail, At: o.txNow}, nil
}

// EventsOf returns the events of several orders, oldest first, in one query.
func (s *Orders) EventsOf(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID][]bookstore.OrderEvent, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT order_id, seq, type, status, detail, at FROM order_events
		WHERE order_id = ANY($1::UUID[]) ORDER BY order_id, seq`, ids)
	if err != nil {
		return nil, fmt.Errorf("order events: %w", err)
	}
	evs, err := pgx.CollectRows(rows, scanOrderEvent)
	if err != nil {
		return nil, fmt.Errorf("order events: %w", err)
	}
	out := make(map[uuid.UUID][]bookstore.OrderEvent, len(ids))
	for _, e := range evs {
		out[e.OrderID] = append(out[e.OrderID], e)
	}
	return out, nil
}

func scanOrderEvent(r pgx.CollectableRow) (bookstore.OrderEvent, error) {
	var e bookstore.OrderEvent
	var typ, status string
	err := r.Scan(&e.OrderID, &e.Seq, &typ, &status, &e.Detail, &e.At)
	e.Type, e.Status = bookstore.OrderEventType(typ), bookstore.OrderStatus(status)
	return e, err
}

// Events returns the order's events after seq afterSeq, oldest first, at most limit.
func (s *Orders) Events(ctx context.Context, id uuid.UUID, afterSeq int64, limit int) ([]bookstore.OrderEvent, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT order_id, seq, type, status, detail, at FROM order_events
		WHERE order_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, id, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("order %s events: %w", id, err)
	}
	return pgx.CollectRows(rows, scanOrderEvent)
}

// ByID returns the order with its lines and discounts, or NOT_FOUND.
func (s *Orders) ByID(ctx context.Context, id uuid.UUID) (*OrderRecord, error) {
	o, err := s.get(ctx, s.db.Pool, id, false)
	if err != nil {
		return nil, err
	}
	return o, s.LoadItems(ctx, s.db.Pool, o)
}

// Row returns the order's row alone, without its lines and discounts (LoadItems), or
// NOT_FOUND: one query, for callers that need its status, contact or totals only.
func (s *Orders) Row(ctx context.Context, id uuid.UUID) (*OrderRecord, error) {
	return s.get(ctx, s.db.Pool, id, false)
}

// Lock reads the order (without its lines: LoadItems) inside tx and locks its row until
// tx ends: concurrent completions of one order (the checkout request, the webhook, the
// recovery loop) serialise on it, and the second sees the first's result.
func (s *Orders) Lock(ctx context.Context, tx pgx.Tx, id uuid.UUID) (*OrderRecord, error) {
	return s.get(ctx, tx, id, true)
}

func (s *Orders) get(ctx context.Context, q querier, id uuid.UUID, lock bool) (*OrderRecord, error) {
	sql := "SELECT " + orderCols + " FROM orders WHERE id = $1"
	var more []func(*OrderRecord) []any
	if lock {
		sql = "SELECT " + orderCols + ", event_seq, now() FROM orders WHERE id = $1 FOR UPDATE"
		more = append(more, func(o *OrderRecord) []any { o.locked = true; return []any{&o.eventSeq, &o.txNow} })
	}
	o, err := scanOrder(q.QueryRow(ctx, sql, id), more...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, bookstore.Errorf(bookstore.CodeNotFound, "no such order")
	}
	if err != nil {
		return nil, fmt.Errorf("order %s: %w", id, err)
	}
	return o, nil
}

// LoadItems reads the order's lines and discounts through q (a pool or a transaction).
func (s *Orders) LoadItems(ctx context.Context, q querier, o *OrderRecord) error {
	return s.loadItemsOf(ctx, q, []*OrderRecord{o})
}

// Settle moves a PENDING_PAYMENT order locked by Lock to PAID or PAYMENT_FAILED with
// what the PSP reported, and records the event, inside tx: one pipelined round trip
// (the order's row, its event and the event's outbox row).
func (s *Orders) Settle(ctx context.Context, tx pgx.Tx, o *OrderRecord, status bookstore.OrderStatus, p bookstore.OrderPayment) error {
	typ := bookstore.OrderEventPaid
	if status == bookstore.OrderPaymentFailed {
		typ = bookstore.OrderEventPaymentFailed
	}
	if !o.Status.CanBecome(status) {
		return ErrTransition
	}
	if !o.locked {
		return fmt.Errorf("settle order %s: the order was not read by Lock", o.ID)
	}
	from, seq := o.Status, o.eventSeq+1
	b := &pgx.Batch{}
	var rows int64
	b.Queue(`
		UPDATE orders SET status = $10, updated_at = now(), event_seq = $11, payment_status = $2, payment_ref = NULLIF($3, ''),
			payment_brand = NULLIF($4, ''), payment_last4 = NULLIF($5, ''), payment_wallet = NULLIF($6, ''),
			failure_code = NULLIF($7, ''), failure_message = NULLIF($8, ''), paid_at = CASE WHEN $9 THEN now() ELSE paid_at END
		WHERE id = $1 AND status = $12`,
		o.ID, p.Status, p.Reference, p.Brand, p.Last4, p.Wallet, p.FailureCode, p.FailureMessage, status == bookstore.OrderPaid,
		string(status), seq, string(from)).Exec(func(ct pgconn.CommandTag) error {
		rows = ct.RowsAffected()
		return nil
	})
	o.Status = status
	if err := s.queueEvent(b, o, seq, o.txNow, typ); err != nil {
		o.Status = from
		return err
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		o.Status = from
		return fmt.Errorf("settle order %s: %w", o.ID, err)
	}
	if rows != 1 {
		// Cannot happen under Lock's row lock; the event rows are rolled back with tx.
		o.Status = from
		return ErrTransition
	}
	o.Payment, o.UpdatedAt, o.eventSeq = p, o.txNow, seq
	if status == bookstore.OrderPaid {
		at := o.txNow
		o.PaidAt = &at
	}
	return nil
}

// settlePaidSQL is SettlePaid's statement. The order's update, its event and the event's
// outbox row are one atomic statement of data-modifying CTEs (PostgreSQL, and
// CockroachDB, which allows them when each CTE writes another table). The event and the
// payload are those Settle writes for PAID: seq is the order's event_seq + 1, at is
// now() (the statement's transaction timestamp, like updated_at and paid_at), and the
// payload has OrderEventPayload's fields (customerId omitted when there is none; a
// TIMESTAMPTZ in JSON is an RFC 3339 string on both engines, which time.Time decodes).
// The WHERE clause is the whole decision: PENDING_PAYMENT, and the charge's amount and
// currency (when the PSP gave them) match the order; card details only when given.
const settlePaidSQL = `
	WITH u AS (
		UPDATE orders SET status = $2, event_seq = event_seq + 1, updated_at = now(), paid_at = now(),
			payment_status = $3, payment_ref = NULLIF($4, ''),
			payment_brand = CASE WHEN $5 = '' THEN payment_brand ELSE $5 END,
			payment_last4 = CASE WHEN $5 = '' THEN payment_last4 ELSE NULLIF($6, '') END,
			payment_wallet = CASE WHEN $5 = '' THEN payment_wallet ELSE NULLIF($7, '') END
		WHERE id = $1 AND status = $8
			AND ($9::INT8 = 0 OR (total_cents = $9::INT8 AND lower(currency) = lower($10::TEXT)))
		RETURNING *),
	e AS (
		INSERT INTO order_events (order_id, seq, type, status, at)
		SELECT id, event_seq, $11::TEXT, status, updated_at FROM u),
	x AS (
		INSERT INTO outbox (topic, aggregate_id, payload)
		SELECT $12::TEXT, id, jsonb_build_object('seq', event_seq, 'type', $11::TEXT, 'status', status, 'at', updated_at,
			'totalCents', total_cents, 'currency', currency)
			|| CASE WHEN customer_id IS NULL THEN '{}'::JSONB ELSE jsonb_build_object('customerId', customer_id) END
		FROM u),
	c AS (
		DELETE FROM carts WHERE id = $13::TEXT AND EXISTS (SELECT 1 FROM u))
	SELECT ` + orderCols + `, event_seq, updated_at FROM u`

// SettlePaid is Settle to PAID for the common case, in one autocommit statement (one
// round trip instead of BEGIN, Lock, Settle's pipeline and COMMIT): if the order is
// PENDING_PAYMENT and amountCents is 0 (the PSP did not say) or the order's total in
// currency (case-insensitively), it becomes PAID with p's status and reference (and
// card details when p.Brand is set; else the order keeps its own) and its PAID event
// and outbox row are written, exactly as Lock and Settle write them. It reports false,
// changing nothing, otherwise (no such order, settled already, another amount): the
// caller then takes the locked path, which tells these apart.
//
// Running outside a serializable transaction is safe because every other writer of an
// order's status takes its row lock (Lock) or updates conditionally on the status
// (Transition, Settle): on PostgreSQL this read-committed update waits for such a lock
// and re-checks its WHERE against the committed row, and a serializable transaction
// that locks the row after this statement changed it fails with 40001 and is retried
// by ExecuteTx. The statement itself is retried on 40001 and 40P01 like ExecuteTx's
// transactions.
//
// The record returned has no lines or discounts (as Lock's), and UpdatedAt and PaidAt
// are the statement's timestamp.
//
// cart, unless "", is the id of the cart the order was placed from, kept in Carts: the
// statement deletes it when it pays the order (a paid order's cart is spent), instead of
// a round trip of its own after it.
func (s *Orders) SettlePaid(ctx context.Context, id uuid.UUID, p bookstore.OrderPayment, amountCents int64, currency, cart string) (*OrderRecord, bool, error) {
	var o *OrderRecord
	var err error
	for attempt := range maxAttempts {
		if attempt > 0 {
			if werr := sleep(ctx, backoff(attempt)); werr != nil {
				return nil, false, fmt.Errorf("settle order %s paid: %w (last attempt: %w)", id, werr, err)
			}
		}
		o, err = scanOrder(s.db.Pool.QueryRow(ctx, settlePaidSQL, id, string(bookstore.OrderPaid), p.Status, p.Reference,
			p.Brand, p.Last4, p.Wallet, string(bookstore.OrderPendingPayment), amountCents, currency,
			string(bookstore.OrderEventPaid), TopicOrderPaid, cart),
			func(o *OrderRecord) []any { return []any{&o.eventSeq, &o.txNow} })
		if !retryable(err) {
			break
		}
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("settle order %s paid: %w", id, err)
	}
	return o, true, nil
}

// SetPaymentStatus records the charge's state at the PSP (REFUNDED after a
// cancellation's refund) inside tx.
func (s *Orders) SetPaymentStatus(ctx context.Context, tx pgx.Tx, o *OrderRecord, status string) error {
	if _, err := tx.Exec(ctx, `UPDATE orders SET payment_status = $2, updated_at = now() WHERE id = $1`, o.ID, status); err != nil {
		return fmt.Errorf("order %s payment status: %w", o.ID, err)
	}
	o.Payment.Status = status
	return nil
}

// Pending returns the ids of orders still PENDING_PAYMENT that are older than age by
// the database's clock (the one that stamped created_at), oldest first.
func (s *Orders) Pending(ctx context.Context, age time.Duration, limit int) ([]uuid.UUID, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT id FROM orders
		WHERE status = 'PENDING_PAYMENT' AND created_at < now() - ($1::INT8 * INTERVAL '1 millisecond')
		ORDER BY created_at LIMIT $2`, age.Milliseconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("pending orders: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

// CheckoutKey is a stored checkout idempotency key.
type CheckoutKey struct {
	RequestHash []byte
	OrderID     uuid.UUID
}

// CheckoutKeys are the idempotency keys of checkouts.
type CheckoutKeys struct{ db *DB }

// Insert stores the key for the order inside the transaction that creates it. It
// reports false, writing nothing, when the scope already has the key (a concurrent
// request with the same key committed first): tx must then roll back.
func (s *CheckoutKeys) Insert(ctx context.Context, tx pgx.Tx, scope []byte, key string, hash []byte, order uuid.UUID) (bool, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO checkout_keys (scope, key, request_hash, order_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (scope, key) DO NOTHING`, scope, key, hash, order)
	if err != nil {
		return false, fmt.Errorf("store checkout key: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

const checkoutKeySQL = `SELECT request_hash, order_id FROM checkout_keys WHERE scope = $1 AND key = $2`

// Get returns the scope's key, or NOT_FOUND.
func (s *CheckoutKeys) Get(ctx context.Context, scope []byte, key string) (*CheckoutKey, error) {
	var k CheckoutKey
	err := s.db.Pool.QueryRow(ctx, checkoutKeySQL, scope, key).Scan(&k.RequestHash, &k.OrderID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, bookstore.Errorf(bookstore.CodeNotFound, "no such checkout key")
	}
	if err != nil {
		return nil, fmt.Errorf("checkout key: %w", err)
	}
	return &k, nil
}

// BooksIn returns the books with the given ids read inside q (checkout's transaction).
func (s *Books) BooksIn(ctx context.Context, q querier, ids []uuid.UUID) ([]*bookstore.Book, error) {
	rows, err := q.Query(ctx, "SELECT "+bookCols+" FROM books b WHERE b.id = ANY($1::UUID[])", ids)
	if err != nil {
		return nil, fmt.Errorf("books by id: %w", err)
	}
	return collectBooks(rows)
}

// CategoriesIn returns each book's categories with all their ancestors, read inside q
// (checkout prices category-scoped codes with it).
func (s *Categories) CategoriesIn(ctx context.Context, q querier, bookIDs []uuid.UUID) (map[uuid.UUID][]uuid.UUID, error) {
	rows, err := q.Query(ctx, `
		WITH RECURSIVE up (book_id, category_id) AS (
			SELECT book_id, category_id FROM book_categories WHERE book_id = ANY($1::UUID[])
			UNION ALL
			SELECT up.book_id, c.parent_id FROM up JOIN categories c ON c.id = up.category_id
			WHERE c.parent_id IS NOT NULL
		)
		SELECT book_id, category_id FROM up`, bookIDs)
	if err != nil {
		return nil, fmt.Errorf("categories by book: %w", err)
	}
	defer rows.Close()
	return collectBookCategories(rows, len(bookIDs))
}

// StockIn returns units on hand by book, read inside q.
func (s *Inventory) StockIn(ctx context.Context, q querier, bookIDs []uuid.UUID) (map[uuid.UUID]int64, error) {
	return stockOf(ctx, q, bookIDs)
}

// Demand is the stock the order holds.
func (o *OrderRecord) Demand() []bookstore.StockDemand {
	return (&bookstore.Order{Lines: o.Lines}).Demand()
}

// OrderCursor is the keyset cursor of an order in a customer's list (newest first).
func OrderCursor(o *OrderRecord) string { return encodeCursor("orders", o.CreatedAt.UTC(), o.ID) }

// ByCustomer returns a page of the customer's orders, newest first (created_at, id
// descending), optionally only those in status, after the cursor, and whether more
// follow.
func (s *Orders) ByCustomer(ctx context.Context, customer uuid.UUID, status *bookstore.OrderStatus, first int, after string) ([]*OrderRecord, bool, error) {
	args := []any{customer, first + 1}
	where := "customer_id = $1"
	if status != nil {
		args = append(args, string(*status))
		where += fmt.Sprintf(" AND status = $%d", len(args))
	}
	if after != "" {
		var at time.Time
		id, err := decodeCursor(after, "orders", &at)
		if err != nil {
			return nil, false, err
		}
		args = append(args, at, id)
		where += fmt.Sprintf(" AND (created_at, id) < ($%d, $%d)", len(args)-1, len(args))
	}
	rows, err := s.db.Pool.Query(ctx, "SELECT "+orderCols+" FROM orders WHERE "+where+
		" ORDER BY created_at DESC, id DESC LIMIT $2", args...)
	if err != nil {
		return nil, false, fmt.Errorf("orders of customer: %w", err)
	}
	defer rows.Close()
	var out []*OrderRecord
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, false, fmt.Errorf("scan order: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	more := len(out) > first
	if more {
		out = out[:first]
	}
	if err := s.loadItemsOf(ctx, s.db.Pool, out); err != nil {
		return nil, false, err
	}
	return out, more, nil
}

// loadItemsOf fills the lines and discounts of several orders in two queries, read
// through q (a transaction, or the pool).
func (s *Orders) loadItemsOf(ctx context.Context, q querier, recs []*OrderRecord) error {
	if len(recs) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(recs))
	byID := make(map[uuid.UUID]*OrderRecord, len(recs))
	for i, o := range recs {
		ids[i], byID[o.ID] = o.ID, o
		o.Lines, o.Discounts = []bookstore.OrderLine{}, []bookstore.OrderDiscount{}
	}
	rows, err := q.Query(ctx, `SELECT order_id, book_id, title, quantity, unit_price_cents, total_cents
		FROM order_lines WHERE order_id = ANY($1::UUID[]) ORDER BY order_id, position`, ids)
	if err != nil {
		return fmt.Errorf("order lines: %w", err)
	}
	for rows.Next() {
		var id uuid.UUID
		var l bookstore.OrderLine
		var qty int64
		if err := rows.Scan(&id, &l.BookID, &l.Title, &qty, &l.UnitPriceCents, &l.TotalCents); err != nil {
			rows.Close()
			return fmt.Errorf("scan order line: %w", err)
		}
		l.Quantity = int(qty)
		byID[id].Lines = append(byID[id].Lines, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = q.Query(ctx, `SELECT order_id, promotion_id, code, amount_cents FROM order_discounts
		WHERE order_id = ANY($1::UUID[]) ORDER BY order_id, code`, ids)
	if err != nil {
		return fmt.Errorf("order discounts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var d bookstore.OrderDiscount
		if err := rows.Scan(&id, &d.PromotionID, &d.Code, &d.AmountCents); err != nil {
			return fmt.Errorf("scan order discount: %w", err)
		}
		byID[id].Discounts = append(byID[id].Discounts, d)
	}
	return rows.Err()
}

// PlaceKey is the checkout idempotency key stored with a new order (see CheckoutKeys).
type PlaceKey struct {
	Scope, Hash []byte
	Key         string
}

// ErrKeyTaken: the scope has the idempotency key already (a concurrent request with the
// same key committed first). tx must roll back.
var ErrKeyTaken = errors.New("store: the checkout key is taken")

// BooksInAt is BooksIn plus the transaction's timestamp (now(), which stamps every row
// the transaction writes by default) and the checkout key of scope, read in one round
// trip (with BEGIN: the transaction's first): Place needs the timestamp to write the
// order_created event's outbox payload in the same pipeline as the event, and checkout
// needs the key first, to replay the checkout that holds it (a cart whose payment failed
// keeps its cart) rather than place another. The key is nil when the scope does not hold
// it.
func (s *Books) BooksInAt(ctx context.Context, tx pgx.Tx, ids []uuid.UUID, scope []byte, key string) ([]*bookstore.Book, time.Time, *CheckoutKey, error) {
	var now time.Time
	var books []*bookstore.Book
	var held *CheckoutKey
	b := &pgx.Batch{}
	b.Queue(checkoutKeySQL, scope, key).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			held = &CheckoutKey{}
			if err := rows.Scan(&held.RequestHash, &held.OrderID); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	b.Queue(`SELECT now()`).QueryRow(func(r pgx.Row) error { return r.Scan(&now) })
	b.Queue("SELECT "+bookCols+" FROM books b WHERE b.id = ANY($1::UUID[])", ids).Query(func(rows pgx.Rows) error {
		var err error
		books, err = collectBooks(rows)
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, now, nil, fmt.Errorf("books by id: %w", err)
	}
	return books, now, held, nil
}

// Place is checkout's write: inside tx (serializable, at timestamp at: BooksInAt) it
// inserts the order PENDING_PAYMENT with its lines and discounts, its order_created event
// (seq 1) and outbox row, and its idempotency key, then takes its stock exactly as
// Inventory.Take does (demand summed per book, books updated one at a time in id order,
// each update conditional on the stock, a ledger row per book) — all of it in one
// pipelined round trip. A stock change that shoppers must hear about (availability
// status, low-stock alert) costs one more, a shortage one more to read what is left.
//
// Errors (tx must then roll back): ErrCartCheckedOut when the cart already has a live
// order, ErrKeyTaken when the key's scope has it, a *ShortageError naming every short
// book.
func (s *Orders) Place(ctx context.Context, tx pgx.Tx, o *OrderRecord, key PlaceKey, at time.Time) error {
	demand, err := mergeDemand(o.Demand())
	if err != nil {
		return err
	}
	c, p := o.Cost, o.Payment
	o.CreatedAt, o.UpdatedAt = at, at
	b := &pgx.Batch{}
	b.Queue(`
		INSERT INTO orders (id, number, customer_id, email_index, contact_enc, access_hash, cart_ref, status,
			currency, subtotal_cents, discount_cents, shipping_cents, tax_cents, total_cents, shipping_method, country,
			payment_method, payment_status, created_at, updated_at, event_seq)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $19, 1)`,
		o.ID, o.Number, o.CustomerID, o.EmailIndex, o.ContactEnc, o.AccessHash, o.CartRef, string(o.Status),
		c.Currency, c.SubtotalCents, c.DiscountCents, c.ShippingCents, c.TaxCents, c.TotalCents, o.ShippingMethod, o.Country,
		p.Method, p.Status, at)
	n := len(o.Lines)
	pos, books, titles := make([]int64, n), make([]uuid.UUID, n), make([]string, n)
	qty, unit, total := make([]int64, n), make([]int64, n), make([]int64, n)
	for i, l := range o.Lines {
		pos[i], books[i], titles[i] = int64(i), l.BookID, l.Title
		qty[i], unit[i], total[i] = int64(l.Quantity), l.UnitPriceCents, l.TotalCents
	}
	b.Queue(`
		INSERT INTO order_lines (order_id, position, book_id, title, quantity, unit_price_cents, total_cents)
		SELECT $1, unnest($2::INT8[]), unnest($3::UUID[]), unnest($4::TEXT[]), unnest($5::INT8[]), unnest($6::INT8[]), unnest($7::INT8[])`,
		o.ID, pos, books, titles, qty, unit, total)
	if m := len(o.Discounts); m > 0 {
		promos, codes, amounts := make([]uuid.UUID, m), make([]string, m), make([]int64, m)
		for i, d := range o.Discounts {
			promos[i], codes[i], amounts[i] = d.PromotionID, d.Code, d.AmountCents
		}
		b.Queue(`
			INSERT INTO order_discounts (order_id, promotion_id, code, amount_cents)
			SELECT $1, unnest($2::UUID[]), unnest($3::TEXT[]), unnest($4::INT8[])`, o.ID, promos, codes, amounts)
	}
	if err := s.queueEvent(b, o, 1, at, bookstore.OrderEventPlaced); err != nil {
		return err
	}
	// A plain INSERT: ON CONFLICT's probe of the key's index page would be a
	// serializable read that conflicts with every concurrent checkout writing to it.
	b.Queue(`INSERT INTO checkout_keys (scope, key, request_hash, order_id) VALUES ($1, $2, $3, $4)`,
		key.Scope, key.Key, key.Hash, o.ID)
	after := make([]int64, len(demand))
	short := make([]bool, len(demand))
	for i, d := range demand {
		// The update and its ledger row in one statement; no row back means short.
		b.Queue(`
			WITH u AS (
				UPDATE inventory SET stock = stock - $2, updated_at = now()
				WHERE book_id = $1 AND stock >= $2 RETURNING book_id, stock)
			INSERT INTO stock_movements (book_id, delta, stock, reason, actor_id, ref, created_at)
			SELECT book_id, -$2::INT8, stock, $3::TEXT, NULL, $4::UUID, clock_timestamp() FROM u
			RETURNING stock`, d.BookID, d.Quantity, "checkout", o.ID).QueryRow(func(r pgx.Row) error {
			err := r.Scan(&after[i])
			if errors.Is(err, pgx.ErrNoRows) {
				short[i] = true
				return nil
			}
			return err
		})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		switch {
		case isUniqueViolation(err, "orders_cart_live"):
			return ErrCartCheckedOut
		case isUniqueViolation(err, "checkout_keys_pkey"):
			return ErrKeyTaken
		}
		return fmt.Errorf("place order %s: %w", o.ID, err)
	}
	var shortIDs []uuid.UUID
	for i, d := range demand {
		if short[i] {
			shortIDs = append(shortIDs, d.BookID)
		}
	}
	if len(shortIDs) > 0 {
		have, err := stockOf(ctx, tx, shortIDs)
		if err != nil {
			return err
		}
		var out []bookstore.Shortage
		for i, d := range demand {
			if short[i] {
				out = append(out, bookstore.Shortage{BookID: d.BookID, Wanted: d.Quantity, Available: have[d.BookID]})
			}
		}
		return &ShortageError{Shortages: out}
	}
	for i, d := range demand {
		if err := s.db.Inventory.stockEvents(ctx, tx, d.BookID, after[i]+d.Quantity, after[i]); err != nil {
			return err
		}
	}
	return nil
}

// queueEvent queues the order's event number seq (the order's event_seq is set to seq
// by the caller's statement) at the transaction's timestamp at, and its outbox row.
func (s *Orders) queueEvent(b *pgx.Batch, o *OrderRecord, seq int64, at time.Time, typ bookstore.OrderEventType) error {
	return s.queueEventDetail(b, o, seq, at, typ, nil)
}

// queueEventDetail is queueEvent with the event's detail (JSON, or nil for none).
func (s *Orders) queueEventDetail(b *pgx.Batch, o *OrderRecord, seq int64, at time.Time, typ bookstore.OrderEventType, detail []byte) error {
	payload, err := json.Marshal(OrderEventPayload{Seq: seq, Type: typ, Status: o.Status, At: at,
		CustomerID: o.CustomerID, TotalCents: o.Cost.TotalCents, Currency: o.Cost.Currency})
	if err != nil {
		return fmt.Errorf("encode %s event: %w", OrderTopic(typ), err)
	}
	b.Queue(`INSERT INTO order_events (order_id, seq, type, status, detail, at) VALUES ($1, $2, $3, $4, $5, $6)`,
		o.ID, seq, string(typ), string(o.Status), detail, at)
	b.Queue(`INSERT INTO outbox (topic, aggregate_id, payload) VALUES ($1, $2, $3)`, OrderTopic(typ), o.ID, payload)
	return nil
}

// LastEventSeq returns the seq of the order's latest event (0 if it has none), or
// NOT_FOUND.
func (s *Orders) LastEventSeq(ctx context.Context, id uuid.UUID) (int64, error) {
	var seq int64
	err := s.db.Pool.QueryRow(ctx, `SELECT event_seq FROM orders WHERE id = $1`, id).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, bookstore.Errorf(bookstore.CodeNotFound, "no such order")
	}
	if err != nil {
		return 0, fmt.Errorf("order %s last event: %w", id, err)
	}
	return seq, nil
}
