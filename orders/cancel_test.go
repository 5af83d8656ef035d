package orders_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/orders"
	"github.com/shopfront/bookstore/shipping"
	"github.com/shopfront/bookstore/shipping/sim"
)

func (e *env) shipment(id uuid.UUID) *shipping.Shipment {
	e.t.Helper()
	ships, err := e.svc.Shipments(ctx, []uuid.UUID{id})
	if err != nil || len(ships[id]) != 1 {
		e.t.Fatalf("shipments of %s: %v %+v", id, err, ships)
	}
	return ships[id][0]
}

func (e *env) refunds(id uuid.UUID) int64 {
	e.t.Helper()
	return e.count(`SELECT count(*) FROM test_psp_charges WHERE idempotency_key = $1 AND refunded_at IS NOT NULL`, id.String())
}

// shipped books the order's shipment: FULFILLING, its label printed.
func (e *env) shipped(o *bookstore.Order) {
	e.t.Helper()
	if err := e.svc.Ship(ctx, o.ID); err != nil {
		e.t.Fatal(err)
	}
	if s := e.status(o.ID); s != bookstore.OrderFulfilling {
		e.t.Fatalf("after the label: %s", s)
	}
}

// run advances the carrier through any route.
func (e *env) run() {
	e.t.Helper()
	for range 40 {
		e.clock.add(3 * time.Minute)
		if _, err := e.carrier.Tick(ctx); err != nil {
			e.t.Fatal(err)
		}
	}
}

// cancelDetail is the detail of the order's CANCELLED event (the last one).
func (e *env) cancelDetail(id uuid.UUID) map[string]any {
	e.t.Helper()
	evs := e.events(id)
	last := evs[len(evs)-1]
	if last.Type != bookstore.OrderEventCancelled || last.Status != bookstore.OrderCancelled {
		e.t.Fatalf("last event %+v", last)
	}
	var d map[string]any
	if err := json.Unmarshal(last.Detail, &d); err != nil {
		e.t.Fatal(err)
	}
	return d
}

var voided = []shipping.Status{shipping.StatusLabelCreated, shipping.StatusCancelled}

func statuses(evs []shipping.Event) []shipping.Status {
	var out []shipping.Status
	for _, e := range evs {
		out = append(out, e.Status)
	}
	return out
}

// An order cancelled while FULFILLING: its shipment is voided (CANCELLED, and it never
// moves again), the stock goes back and the payment is refunded, once.
func TestCancelWhileFulfillingVoidsTheShipment(t *testing.T) {
	e := newEnv(t)
	ann := e.customer()
	o := e.order(ann, 2)
	e.shipped(o)
	if _, err := e.svc.Cancel(ctx, orders.Caller{Customer: e.customer()}, o.ID, ""); bookstore.ErrorCode(err) != bookstore.CodeNotFound {
		t.Fatalf("another customer cancels: %v", err)
	}
	if s := e.shipment(o.ID); s.Status != shipping.StatusLabelCreated {
		t.Fatalf("someone else's cancel touched the shipment: %s", s.Status)
	}
	got, err := e.svc.Cancel(ctx, orders.Caller{Customer: ann}, o.ID, "too slow")
	if err != nil || got.Status != bookstore.OrderCancelled || got.Payment.Status != "REFUNDED" {
		t.Fatalf("cancel: %v %+v", err, got)
	}
	e.run()
	if s := e.shipment(o.ID); s.Status != shipping.StatusCancelled || !slices.Equal(statuses(s.Events), voided) {
		t.Fatalf("shipment %s %v", s.Status, statuses(s.Events))
	}
	if s := e.status(o.ID); s != bookstore.OrderCancelled {
		t.Fatalf("order %s", s)
	}
	if e.stock() != 20 || e.refunds(o.ID) != 1 {
		t.Fatalf("stock %d, %d refunds", e.stock(), e.refunds(o.ID))
	}
	d := e.cancelDetail(o.ID)
	if d["reason"] != "too slow" || d["by"] != "customer" || d["refundCents"] != float64(o.Cost.TotalCents) || d["carrier"] != sim.Name {
		t.Fatalf("cancel detail %v", d)
	}
	var types []bookstore.OrderEventType
	for _, ev := range e.events(o.ID) {
		types = append(types, ev.Type)
	}
	if fmt.Sprint(types) != "[PLACED PAID FULFILLING CANCELLED]" {
		t.Fatalf("events %v", types)
	}
	if _, err := e.svc.Cancel(ctx, orders.Caller{Customer: ann}, o.ID, ""); bookstore.ErrorCode(err) != orders.CodeNotCancellable {
		t.Fatalf("second cancel: %v", err)
	}
	if e.stock() != 20 || e.refunds(o.ID) != 1 {
		t.Fatalf("after a second cancel: stock %d, %d refunds", e.stock(), e.refunds(o.ID))
	}
}

// The carrier refuses the void (the parcel has left, and the order has not heard yet):
// nothing is refunded or restocked, and the customer is told ORDER_NOT_CANCELLABLE.
func TestCancelRefusedByTheCarrier(t *testing.T) {
	e := newEnv(t)
	ann := e.customer()
	o := e.order(ann, 1)
	e.shipped(o)
	// Another instance of the carrier whose notices do not reach the order (a carrier
	// whose webhook is late) moves the parcel on.
	deaf := sim.New(e.db.Shipments, sim.Options{Seed: 7, Step: time.Minute, Now: e.clock.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	e.clock.add(3 * time.Minute)
	if n, err := deaf.Tick(ctx); err != nil || n != 1 {
		t.Fatalf("tick: %d %v", n, err)
	}
	if _, err := e.svc.Cancel(ctx, orders.Caller{Customer: ann}, o.ID, ""); bookstore.ErrorCode(err) != orders.CodeNotCancellable {
		t.Fatalf("cancel in transit: %v", err)
	}
	if s := e.status(o.ID); s != bookstore.OrderFulfilling {
		t.Fatalf("order %s", s)
	}
	if e.stock() != 19 || e.refunds(o.ID) != 0 {
		t.Fatalf("refused cancel: stock %d, %d refunds", e.stock(), e.refunds(o.ID))
	}
	if s := e.shipment(o.ID); s.Status != shipping.StatusInTransit {
		t.Fatalf("shipment %s", s.Status)
	}
}

// The process stops between the void and the cancel (here: the void's notice does not
// reach the order). The order stays FULFILLING with a voided shipment that never moves;
// asking again finishes it (the void is idempotent); and the carrier's notice alone
// finishes it too, as a cancellation by the carrier.
func TestCancelAfterAVoidThatDidNotFinish(t *testing.T) {
	e := newEnv(t)
	ann := e.customer()
	deaf := sim.New(e.db.Shipments, sim.Options{Seed: 7, Step: time.Minute, Now: e.clock.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})

	retried := e.order(ann, 1)
	e.shipped(retried)
	if err := deaf.Cancel(ctx, retried.ID); err != nil {
		t.Fatal(err)
	}
	e.run()
	if s := e.status(retried.ID); s != bookstore.OrderFulfilling || e.stock() != 19 || e.refunds(retried.ID) != 0 {
		t.Fatalf("after a void alone: %s, stock %d, %d refunds", s, e.stock(), e.refunds(retried.ID))
	}
	got, err := e.svc.Cancel(ctx, orders.Caller{Customer: ann}, retried.ID, "again")
	if err != nil || got.Status != bookstore.OrderCancelled || got.Payment.Status != "REFUNDED" {
		t.Fatalf("cancel again: %v %+v", err, got)
	}
	if e.stock() != 20 || e.refunds(retried.ID) != 1 {
		t.Fatalf("stock %d, %d refunds", e.stock(), e.refunds(retried.ID))
	}
	if d := e.cancelDetail(retried.ID); d["reason"] != "again" || d["by"] != "customer" {
		t.Fatalf("cancel detail %v", d)
	}
	if s := e.shipment(retried.ID); !slices.Equal(statuses(s.Events), voided) {
		t.Fatalf("shipment events %v", statuses(s.Events))
	}

	// The void's notice (the hook) with no Cancel behind it: the carrier cancelled it.
	// The refund is the order_cancelled consumer's (RefundCancelled).
	noticed := e.order(ann, 1)
	e.shipped(noticed)
	if err := e.carrier.Cancel(ctx, noticed.ID); err != nil {
		t.Fatal(err)
	}
	if s := e.status(noticed.ID); s != bookstore.OrderCancelled || e.stock() != 20 {
		t.Fatalf("after the notice: %s, stock %d", s, e.stock())
	}
	if d := e.cancelDetail(noticed.ID); d["by"] != "carrier" || d["trackingNumber"] != e.shipment(noticed.ID).TrackingNumber {
		t.Fatalf("cancel detail %v", d)
	}
	if err := e.svc.RefundCancelled(ctx, noticed.ID); err != nil || e.refunds(noticed.ID) != 1 {
		t.Fatalf("refund: %v, %d refunds", err, e.refunds(noticed.ID))
	}
}

// A customer's cancel racing the carrier's next step (the first scan in transit), many
// times: either the cancel wins (refunded, restocked, the shipment CANCELLED and never
// moved again) or the step wins (ORDER_NOT_CANCELLABLE, and the order is delivered,
// paid); never refunded and delivered.
func TestCancelRacesTheCarrier(t *testing.T) {
	e := newEnv(t)
	ann := e.customer()
	const rounds = 20
	won := map[bool]int{}
	for i := range rounds {
		if _, err := e.db.Inventory.Adjust(ctx, e.book, 1, "restock", nil); err != nil {
			t.Fatal(err)
		}
		o := e.order(ann, 1)
		e.shipped(o)
		before := e.stock()
		e.clock.add(3 * time.Minute) // the IN_TRANSIT step is due
		var wg sync.WaitGroup
		start := make(chan struct{})
		var cancelErr, tickErr error
		wg.Go(func() { <-start; _, cancelErr = e.svc.Cancel(ctx, orders.Caller{Customer: ann}, o.ID, "race") })
		wg.Go(func() { <-start; _, tickErr = e.carrier.Tick(ctx) })
		close(start)
		wg.Wait()
		if tickErr != nil {
			t.Fatalf("round %d: tick: %v", i, tickErr)
		}
		e.run()
		got, err := e.co.Order(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		s := e.shipment(o.ID)
		switch {
		case cancelErr == nil:
			if got.Status != bookstore.OrderCancelled || got.Payment.Status != "REFUNDED" || e.refunds(o.ID) != 1 ||
				e.stock() != before+1 || !slices.Equal(statuses(s.Events), voided) {
				t.Fatalf("round %d: the cancel won, then order %s (payment %s, %d refunds), stock %d (was %d), shipment %v",
					i, got.Status, got.Payment.Status, e.refunds(o.ID), e.stock(), before, statuses(s.Events))
			}
		case bookstore.ErrorCode(cancelErr) == orders.CodeNotCancellable:
			if got.Status != bookstore.OrderDelivered || got.Payment.Status == "REFUNDED" || e.refunds(o.ID) != 0 ||
				e.stock() != before || s.Status != shipping.StatusDelivered || slices.Contains(statuses(s.Events), shipping.StatusCancelled) {
				t.Fatalf("round %d: the step won, then order %s (payment %s, %d refunds), stock %d (was %d), shipment %v",
					i, got.Status, got.Payment.Status, e.refunds(o.ID), e.stock(), before, statuses(s.Events))
			}
		default:
			t.Fatalf("round %d: cancel: %v", i, cancelErr)
		}
		won[cancelErr == nil]++
	}
	t.Logf("of %d rounds the cancel won %d, the carrier's step %d", rounds, won[true], won[false])
}
