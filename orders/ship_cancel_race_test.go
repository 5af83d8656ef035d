package orders_test

import (
	"sync"
	"testing"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/orders"
	"github.com/shopfront/bookstore/shipping"
)

// TestShipRacesCancel: the shipment's creation now runs READ COMMITTED
// (store.DB.ExecuteLockedTx) while a customer's cancel stays serializable. Racing the
// order_paid consumer's Ship against the cancel of the same PAID order, many times, the
// order has at most one shipment and is never both cancelled (refunded, restocked) and
// shipped: a cancelled order's shipment, if any, is voided and never moves on; an order
// whose cancel was refused is delivered and not refunded.
func TestShipRacesCancel(t *testing.T) {
	e := newEnv(t)
	ann := e.customer()
	const rounds = 15
	won := map[string]int{}
	for i := range rounds {
		o := e.order(ann, 1)
		before := e.stock()
		var wg sync.WaitGroup
		start := make(chan struct{})
		var shipErr, cancelErr error
		wg.Go(func() { <-start; shipErr = e.svc.Ship(ctx, o.ID) })
		wg.Go(func() { <-start; _, cancelErr = e.svc.Cancel(ctx, orders.Caller{Customer: ann}, o.ID, "race") })
		close(start)
		wg.Wait()
		if shipErr != nil {
			t.Fatalf("round %d: ship: %v", i, shipErr)
		}
		e.run()
		got, err := e.co.Order(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		n := e.count(`SELECT count(*) FROM shipments WHERE order_id = $1`, o.ID)
		if n > 1 {
			t.Fatalf("round %d: %d shipments for one order", i, n)
		}
		switch {
		case cancelErr == nil:
			if got.Status != bookstore.OrderCancelled || e.refunds(o.ID) != 1 || e.stock() != before+1 {
				t.Fatalf("round %d: the cancel won, then order %s, %d refunds, stock %d (was %d)", i, got.Status, e.refunds(o.ID), e.stock(), before)
			}
			if n == 1 {
				if s := e.shipment(o.ID); s.Status != shipping.StatusCancelled {
					t.Fatalf("round %d: a cancelled, refunded order's shipment is %s", i, s.Status)
				}
				won["cancel after the label (voided)"]++
			} else {
				won["cancel before the label"]++
			}
		case bookstore.ErrorCode(cancelErr) == orders.CodeNotCancellable:
			if got.Status != bookstore.OrderDelivered || e.refunds(o.ID) != 0 || n != 1 {
				t.Fatalf("round %d: the cancel was refused, then order %s, %d refunds, %d shipments", i, got.Status, e.refunds(o.ID), n)
			}
			won["ship"]++
		default:
			t.Fatalf("round %d: cancel: %v", i, cancelErr)
		}
	}
	t.Logf("of %d rounds: %v", rounds, won)
}
