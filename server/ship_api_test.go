package server_test

import (
	"context"
	"testing"
)

// TestShipRoundTrips counts the round trips and SQL statements of orders.Service.Ship
// for one paid order, as the order_paid consumer runs it after every checkout, BEGIN
// and COMMIT included as pgx sends them (a pipelined batch is one round trip of several
// statements): the order's row, then one transaction that inserts the shipment with its
// first event and, in the carrier's hook, locks the order and moves it to FULFILLING
// with its event and outbox row. A redelivered order_paid costs the read alone.
func TestShipRoundTrips(t *testing.T) {
	a := newReviewAPI(t, 3, false)
	b := a.cartBooks(1, 100)[0]
	ctx := context.Background()
	type count struct{ trips, stmts int64 }
	ship := func(id string) count {
		t.Helper()
		trips, stmts := a.queries.n.Load(), a.queries.stmts.Load()
		if err := a.orders.Ship(ctx, rawID(t, "Order", id)); err != nil {
			t.Fatal(err)
		}
		return count{a.queries.n.Load() - trips, a.queries.stmts.Load() - stmts}
	}
	c := a.createCart("", []map[string]any{line(b, 1)}).Cart
	res := a.checkout("", guestInput(c.ID, "ship@example.com", "tok_visa"))
	if res.Order == nil || res.Order.Status != "PAID" {
		t.Fatalf("checkout: %+v", res)
	}
	first, again := ship(res.Order.ID), ship(res.Order.ID)
	t.Logf("Ship of a paid order: %d round trips (%d statements); again: %d (%d)", first.trips, first.stmts, again.trips, again.stmts)
	id := rawID(t, "Order", res.Order.ID)
	if s := a.orderStatus(id); s != "FULFILLING" {
		t.Fatalf("the shipped order is %s", s)
	}
	var shipments, events int
	if err := a.db.Pool.QueryRow(ctx, `SELECT count(DISTINCT s.id), count(e.seq) FROM shipments s
		LEFT JOIN shipment_events e ON e.shipment_id = s.id WHERE s.order_id = $1`, id).Scan(&shipments, &events); err != nil {
		t.Fatal(err)
	}
	if shipments != 1 || events != 1 {
		t.Fatalf("%d shipments with %d events, want 1 with 1", shipments, events)
	}
	// The row; BEGIN with the shipment's pipeline; the order's lock; its transition's
	// pipeline; COMMIT (6 when BEGIN was a round trip of its own, 12 before the pipelines).
	if want := (count{5, 9}); first != want {
		t.Errorf("Ship of a paid order: %+v, want %+v", first, want)
	}
	if want := (count{1, 1}); again != want {
		t.Errorf("Ship of a fulfilling order: %+v, want %+v", again, want)
	}
}
