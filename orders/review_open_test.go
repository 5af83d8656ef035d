package orders_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/orders"
	"github.com/shopfront/bookstore/shipping"
)

// TestReviewCancelledWhileFulfillingIsNotDelivered (review, open): the state machine
// lets a customer cancel a FULFILLING order (the carrier has printed the label): the
// stock goes back and the payment is refunded, but nothing tells the carrier
// (shipping.Carrier has no cancellation), and ShipmentHook ignores a cancelled order's
// tracking, so the parcel goes on to DELIVERED. The books are delivered, and refunded.
// Either the carrier's shipment is cancelled with the order, or a FULFILLING order can
// no longer be cancelled by the customer.
func TestReviewCancelledWhileFulfillingIsNotDelivered(t *testing.T) {
	e := newEnv(t)
	ann := e.customer()
	o := e.order(ann, 1)
	if err := e.svc.Ship(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	if s := e.status(o.ID); s != bookstore.OrderFulfilling {
		t.Fatalf("after the label: %s", s)
	}
	_, cancelErr := e.svc.Cancel(ctx, orders.Caller{Customer: ann}, o.ID, "too slow")
	for range 40 {
		e.clock.add(3 * time.Minute)
		if _, err := e.carrier.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ships, err := e.svc.Shipments(ctx, []uuid.UUID{o.ID})
	if err != nil {
		t.Fatal(err)
	}
	if cancelErr == nil && len(ships[o.ID]) == 1 && ships[o.ID][0].Status == shipping.StatusDelivered {
		t.Fatalf("order %s: cancelled (refunded, restocked, status %s) and its parcel DELIVERED all the same", o.ID, e.status(o.ID))
	}
}
