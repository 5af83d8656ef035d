package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Shipments holds the simulated carrier's shipments and their tracking events (package
// shipping/sim). Statuses and methods are shipping.Status and shipping.Method strings.
type Shipments struct{ db *DB }

// Shipment is a shipments row.
type Shipment struct {
	ID             uuid.UUID
	OrderID        uuid.UUID
	Carrier        string
	TrackingNumber string
	Method         string
	Status         string
	// Seq is the seq of the shipment's last event.
	Seq int
	// Plan is the carrier's route for the shipment (JSON, read only by the carrier).
	Plan []byte
	// NextAt is when the next transition is due; nil once there is none.
	NextAt            *time.Time
	EstimatedDelivery time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// ShipmentEvent is a shipment_events row.
type ShipmentEvent struct {
	ShipmentID uuid.UUID
	Seq        int
	Status     string
	Location   string
	At         time.Time
}

// ShipmentHook runs inside the transaction that writes ev (see shipping.Hook).
type ShipmentHook func(ctx context.Context, tx pgx.Tx, s Shipment, ev ShipmentEvent) error

var (
	// ErrShipmentNotFound: no such shipment.
	ErrShipmentNotFound = errors.New("shipment not found")
	// ErrTrackingNumberTaken: another shipment has the tracking number (draw another).
	ErrTrackingNumberTaken = errors.New("tracking number taken")
)

const shipmentCols = `id, order_id, carrier, tracking_number, method, status, seq, plan, next_at, estimated_delivery, created_at, updated_at`

func scanShipment(row pgx.Row) (Shipment, error) {
	var s Shipment
	err := row.Scan(&s.ID, &s.OrderID, &s.Carrier, &s.TrackingNumber, &s.Method, &s.Status, &s.Seq,
		&s.Plan, &s.NextAt, &s.EstimatedDelivery, &s.CreatedAt, &s.UpdatedAt)
	return s, err
}

// ON CONFLICT DO NOTHING without a target covers both unique keys: a concurrent or
// earlier shipment of the order (the caller then reads it) and a tracking number drawn
// twice (the caller draws again). A concurrent insert of the same order waits for the
// first to commit and then inserts nothing.
const insertShipment = `
INSERT INTO shipments (id, order_id, carrier, tracking_number, method, status, seq, plan, next_at, estimated_delivery, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10, $10)
ON CONFLICT DO NOTHING
RETURNING ` + shipmentCols

const insertShipmentEvent = `
INSERT INTO shipment_events (shipment_id, seq, status, location, at) VALUES ($1, $2, $3, $4, $5)`

// insertFirstEvent writes the first event of the shipment with id $1 if the shipment
// exists: it goes in one pipeline with insertShipment, and inserts nothing when that
// insert did nothing (ON CONFLICT). The id is drawn by the caller, so the row it finds
// is the one the pipeline just inserted.
const insertFirstEvent = `
INSERT INTO shipment_events (shipment_id, seq, status, location, at)
SELECT id, seq, status, $2, created_at FROM shipments WHERE id = $1`

// Create inserts s with its first event (seq 1, status s.Status, at s.CreatedAt) and
// calls hook in the same transaction, unless the order has a shipment already. It
// returns the stored shipment: s as stored (created = true) or the order's earlier one
// (created = false). ErrTrackingNumberTaken means another order's shipment has s's
// tracking number and nothing was written.
//
// The shipment and its event are one pipelined round trip; the hook's own statements
// follow in the same transaction. It is an ExecuteLockedTx: one shipment per order is the
// unique order_id's, and the hook decides under the order's row lock (a label only for
// an order PAID under the lock). Serializable on PostgreSQL, the fulfilment's concurrent
// creations aborted one another and the checkouts inserting orders (page-level read
// locks on the indexes they probe), and were retried 0.6 times per order.
func (st *Shipments) Create(ctx context.Context, s Shipment, location string, hook ShipmentHook) (stored Shipment, created bool, err error) {
	err = st.db.ExecuteLockedTx(ctx, func(tx pgx.Tx) error {
		created = false
		b := &pgx.Batch{}
		b.Queue(insertShipment, s.ID, s.OrderID, s.Carrier, s.TrackingNumber, s.Method, s.Status, s.Plan, s.NextAt,
			s.EstimatedDelivery, s.CreatedAt).QueryRow(func(r pgx.Row) error {
			var err error
			stored, err = scanShipment(r)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			created = err == nil
			return err
		})
		b.Queue(insertFirstEvent, s.ID, location)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		if !created {
			return nil
		}
		first := ShipmentEvent{ShipmentID: stored.ID, Seq: stored.Seq, Status: stored.Status, Location: location, At: stored.CreatedAt}
		if hook != nil {
			return hook(ctx, tx, stored, first)
		}
		return nil
	})
	if err != nil {
		return Shipment{}, false, fmt.Errorf("create shipment: %w", err)
	}
	if created {
		return stored, true, nil
	}
	stored, err = st.ByOrder(ctx, s.OrderID)
	if errors.Is(err, ErrShipmentNotFound) {
		return Shipment{}, false, ErrTrackingNumberTaken
	}
	return stored, false, err
}

// ByOrder returns the order's shipment, ErrShipmentNotFound if none.
func (st *Shipments) ByOrder(ctx context.Context, orderID uuid.UUID) (Shipment, error) {
	return st.one(ctx, `SELECT `+shipmentCols+` FROM shipments WHERE order_id = $1`, orderID)
}

// ByTrackingNumber returns the shipment with the number, ErrShipmentNotFound if none.
func (st *Shipments) ByTrackingNumber(ctx context.Context, number string) (Shipment, error) {
	return st.one(ctx, `SELECT `+shipmentCols+` FROM shipments WHERE tracking_number = $1`, number)
}

func (st *Shipments) one(ctx context.Context, sql string, arg any) (Shipment, error) {
	s, err := scanShipment(st.db.Pool.QueryRow(ctx, sql, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return Shipment{}, ErrShipmentNotFound
	}
	if err != nil {
		return Shipment{}, fmt.Errorf("read shipment: %w", err)
	}
	return s, nil
}

// ByOrders returns the shipments of the orders (for a dataloader), in no particular
// order; orders without a shipment have none.
func (st *Shipments) ByOrders(ctx context.Context, orderIDs []uuid.UUID) ([]Shipment, error) {
	rows, err := st.db.Pool.Query(ctx, `SELECT `+shipmentCols+` FROM shipments WHERE order_id = ANY($1)`, orderIDs)
	if err != nil {
		return nil, fmt.Errorf("read shipments: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Shipment, error) { return scanShipment(r) })
	if err != nil {
		return nil, fmt.Errorf("read shipments: %w", err)
	}
	return out, nil
}

// Events returns the events of the shipments, each shipment's oldest first.
func (st *Shipments) Events(ctx context.Context, shipmentIDs []uuid.UUID) (map[uuid.UUID][]ShipmentEvent, error) {
	rows, err := st.db.Pool.Query(ctx, `
SELECT shipment_id, seq, status, location, at FROM shipment_events
WHERE shipment_id = ANY($1) ORDER BY shipment_id, seq`, shipmentIDs)
	if err != nil {
		return nil, fmt.Errorf("read shipment events: %w", err)
	}
	out := make(map[uuid.UUID][]ShipmentEvent, len(shipmentIDs))
	var e ShipmentEvent
	_, err = pgx.ForEachRow(rows, []any{&e.ShipmentID, &e.Seq, &e.Status, &e.Location, &e.At}, func() error {
		out[e.ShipmentID] = append(out[e.ShipmentID], e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read shipment events: %w", err)
	}
	return out, nil
}

// Due returns up to limit shipments whose next transition is due at now, the longest
// overdue first.
func (st *Shipments) Due(ctx context.Context, now time.Time, limit int) ([]Shipment, error) {
	rows, err := st.db.Pool.Query(ctx, `
SELECT `+shipmentCols+` FROM shipments
WHERE next_at IS NOT NULL AND next_at <= $1
ORDER BY next_at, id LIMIT $2`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("read due shipments: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Shipment, error) { return scanShipment(r) })
	if err != nil {
		return nil, fmt.Errorf("read due shipments: %w", err)
	}
	return out, nil
}

// Transition is one step of a shipment: from the event FromSeq to the event FromSeq+1.
type Transition struct {
	ShipmentID uuid.UUID
	FromSeq    int
	Status     string
	Location   string
	At         time.Time
	// NextAt is when the step after this one is due; nil when this is the last.
	NextAt            *time.Time
	EstimatedDelivery time.Time
}

// The seq condition is what makes a step happen once: of several instances advancing
// the same shipment from the same seq, one updates the row; the others wait for its
// commit and then match nothing (PostgreSQL's serializable isolation may instead abort
// them with 40001, and their retry then matches nothing).
const advanceShipment = `
UPDATE shipments SET seq = seq + 1, status = $3, next_at = $4, estimated_delivery = $5, updated_at = $6
WHERE id = $1 AND seq = $2
RETURNING ` + shipmentCols

// Advance applies t and calls hook in the same transaction, unless the shipment has
// moved past t.FromSeq already (then it returns applied = false and writes nothing).
// A hook error rolls the whole step back and is returned.
func (st *Shipments) Advance(ctx context.Context, t Transition, hook ShipmentHook) (s Shipment, applied bool, err error) {
	err = st.db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		var err error
		applied = false
		s, err = scanShipment(tx.QueryRow(ctx, advanceShipment, t.ShipmentID, t.FromSeq, t.Status, t.NextAt, t.EstimatedDelivery, t.At))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		ev := ShipmentEvent{ShipmentID: s.ID, Seq: s.Seq, Status: t.Status, Location: t.Location, At: t.At}
		if _, err := tx.Exec(ctx, insertShipmentEvent, ev.ShipmentID, ev.Seq, ev.Status, ev.Location, ev.At); err != nil {
			return err
		}
		if hook != nil {
			if err := hook(ctx, tx, s, ev); err != nil {
				return err
			}
		}
		applied = true
		return nil
	})
	if err != nil {
		return Shipment{}, false, fmt.Errorf("advance shipment %s: %w", t.ShipmentID, err)
	}
	return s, applied, nil
}

// Postpone moves the shipment's next transition to until, unless it has moved past seq
// meanwhile: a step whose hook failed is retried later, and does not hold back the
// shipments due after it.
func (st *Shipments) Postpone(ctx context.Context, id uuid.UUID, seq int, until time.Time) error {
	_, err := st.db.Pool.Exec(ctx, `UPDATE shipments SET next_at = $3 WHERE id = $1 AND seq = $2 AND next_at IS NOT NULL`, id, seq, until)
	if err != nil {
		return fmt.Errorf("postpone shipment %s: %w", id, err)
	}
	return nil
}
