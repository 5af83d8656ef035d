package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// TestLockedEvents: on an order read by Lock, Transition and AppendEvent write in one
// pipeline what the order's history needs: the next seq on the order and its event, at
// the transaction's time, with the detail, and the event's outbox row; a transition
// stamps updated_at, a bare event does not; a change the state machine refuses writes
// nothing.
func TestLockedEvents(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		id := testdb.Order(t, db, uuid.Nil) // PAID, no events yet
		type row struct {
			seq             int64
			typ, status     string
			detail          map[string]any
			at              string
			topic           string
			payloadSeq      int64
			payloadStatus   string
			payloadAt       string
			payloadTotal    int64
			payloadCurrency string
		}
		read := func() ([]row, string, int64, time.Time) {
			t.Helper()
			rows, err := db.Pool.Query(ctx, `
				SELECT e.seq, e.type, e.status, e.detail, e.at, x.topic, x.payload
				FROM order_events e JOIN outbox x ON x.aggregate_id = e.order_id AND (x.payload->>'seq')::INT8 = e.seq
				WHERE e.order_id = $1 ORDER BY e.seq`, id)
			if err != nil {
				t.Fatal(err)
			}
			var out []row
			for rows.Next() {
				var r row
				var detail, payload []byte
				var at time.Time
				if err := rows.Scan(&r.seq, &r.typ, &r.status, &detail, &at, &r.topic, &payload); err != nil {
					t.Fatal(err)
				}
				if detail != nil {
					if err := json.Unmarshal(detail, &r.detail); err != nil {
						t.Fatal(err)
					}
				}
				var p store.OrderEventPayload
				if err := json.Unmarshal(payload, &p); err != nil {
					t.Fatal(err)
				}
				r.at, r.payloadSeq, r.payloadStatus, r.payloadAt = stamp(at), p.Seq, string(p.Status), stamp(p.At)
				r.payloadTotal, r.payloadCurrency = p.TotalCents, p.Currency
				out = append(out, r)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			var status string
			var seq int64
			var updated time.Time
			if err := db.Pool.QueryRow(ctx, `SELECT status, event_seq, updated_at FROM orders WHERE id = $1`, id).Scan(&status, &seq, &updated); err != nil {
				t.Fatal(err)
			}
			return out, status, seq, updated
		}
		_, _, _, before := read()

		var returned []*bookstore.OrderEvent
		var txTime time.Time
		err := db.ExecuteTx(ctx, func(tx pgx.Tx) error {
			returned = nil
			if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&txTime); err != nil {
				return err
			}
			o, err := db.Orders.Lock(ctx, tx, id)
			if err != nil {
				return err
			}
			for _, step := range []func() (*bookstore.OrderEvent, error){
				func() (*bookstore.OrderEvent, error) {
					return db.Orders.Transition(ctx, tx, o, bookstore.OrderFulfilling, bookstore.OrderEventFulfilling, map[string]any{"trackingNumber": "SIM1"})
				},
				func() (*bookstore.OrderEvent, error) {
					return db.Orders.AppendEvent(ctx, tx, o, bookstore.OrderEventShipmentUpdated, map[string]any{"location": "Hub"})
				},
				func() (*bookstore.OrderEvent, error) {
					return db.Orders.Transition(ctx, tx, o, bookstore.OrderShipped, bookstore.OrderEventShipped, nil)
				},
			} {
				ev, err := step()
				if err != nil {
					return err
				}
				returned = append(returned, ev)
			}
			if o.Status != bookstore.OrderShipped {
				return fmt.Errorf("the record is %s after the steps", o.Status)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, status, seq, updated := read()
		at := stamp(txTime)
		want := []row{
			{1, "FULFILLING", "FULFILLING", map[string]any{"trackingNumber": "SIM1"}, at, "order_fulfilling", 1, "FULFILLING", at, 1000, "USD"},
			{2, "SHIPMENT_UPDATED", "FULFILLING", map[string]any{"location": "Hub"}, at, "order_shipment_updated", 2, "FULFILLING", at, 1000, "USD"},
			{3, "SHIPPED", "SHIPPED", nil, at, "order_shipped", 3, "SHIPPED", at, 1000, "USD"},
		}
		if len(got) != len(want) {
			t.Fatalf("events %+v, want %+v", got, want)
		}
		for i := range want {
			if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
				t.Errorf("event %d:\n got %+v\nwant %+v", i+1, got[i], want[i])
			}
			r := returned[i]
			if r.OrderID != id || r.Seq != want[i].seq || string(r.Type) != want[i].typ || string(r.Status) != want[i].status || !r.At.Equal(txTime) {
				t.Errorf("returned event %d: %+v", i+1, r)
			}
		}
		if status != "SHIPPED" || seq != 3 || !updated.Equal(txTime) || !updated.After(before) {
			t.Fatalf("order %s, event_seq %d, updated_at %v (tx %v, before %v)", status, seq, updated, txTime, before)
		}

		// A bare event leaves updated_at alone; a refused change writes nothing.
		err = db.ExecuteTx(ctx, func(tx pgx.Tx) error {
			o, err := db.Orders.Lock(ctx, tx, id)
			if err != nil {
				return err
			}
			_, err = db.Orders.AppendEvent(ctx, tx, o, bookstore.OrderEventShipmentUpdated, nil)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		err = db.ExecuteTx(ctx, func(tx pgx.Tx) error {
			o, err := db.Orders.Lock(ctx, tx, id)
			if err != nil {
				return err
			}
			_, err = db.Orders.Transition(ctx, tx, o, bookstore.OrderPaid, bookstore.OrderEventPaid, nil)
			return err
		})
		if !errors.Is(err, store.ErrTransition) {
			t.Fatalf("SHIPPED to PAID: %v, want ErrTransition", err)
		}
		got, status, seq, after := read()
		if len(got) != 4 || got[3].typ != "SHIPMENT_UPDATED" || got[3].detail != nil || status != "SHIPPED" || seq != 4 || !after.Equal(updated) {
			t.Fatalf("after a bare event and a refused change: %d events (last %+v), %s, event_seq %d, updated_at %v (was %v)",
				len(got), got[len(got)-1], status, seq, after, updated)
		}
	})
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
