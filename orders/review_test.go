package orders_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/cart"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/mail"
	"github.com/shopfront/bookstore/orders"
	"github.com/shopfront/bookstore/payment"
	"github.com/shopfront/bookstore/shipping"
	"github.com/shopfront/bookstore/store"
)

// TestReviewNoShipmentForACancelledOrder (review): Ship reads the order, sees PAID and
// books the carrier's shipment without holding the order; a cancel that commits in
// between (the customer's orderCancel racing the order_paid consumer) refunds the order
// and puts its stock back, and the carrier's LABEL_CREATED hook, finding it CANCELLED,
// returns nil, so the shipment is created and goes on to DELIVERED: the books ship for
// free. The call below is Ship's second half, made after the cancel committed: the
// carrier's transaction must refuse a cancelled order.
func TestReviewNoShipmentForACancelledOrder(t *testing.T) {
	e := newEnv(t)
	ann := e.customer()
	o := e.order(ann, 1)
	if _, err := e.svc.Cancel(ctx, orders.Caller{Customer: ann}, o.ID, "changed my mind"); err != nil {
		t.Fatal(err)
	}
	// What Ship does once it has read the order as PAID.
	a := o.ShippingAddress
	_, err := e.carrier.CreateShipment(ctx, shipping.ShipmentRequest{OrderID: o.ID, Method: shipping.Method(o.ShippingMethod),
		Recipient: shipping.Address{Name: a.Recipient, Line1: a.Line1, City: a.City, Country: a.Country}})
	n := e.count(`SELECT count(*) FROM shipments WHERE order_id = $1`, o.ID)
	if n != 0 {
		t.Fatalf("the carrier booked %d shipments for a cancelled (refunded, restocked) order (err %v)", n, err)
	}
}

// flakyMail fails one recipient's email with a temporary error (greylisting: a 4xx
// that every mail server sends new senders) and counts what it sends per recipient.
type flakyMail struct {
	mu   sync.Mutex
	sent map[string]int
	fail string
}

func (f *flakyMail) Send(_ context.Context, m mail.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m.To[0].Address == f.fail {
		return errors.New("451 4.7.1 greylisted, try again later")
	}
	f.sent[m.To[0].Address]++
	return nil
}

// TestReviewOneFailingEmailResendsNoOtherEmail (review): OrderMail handles a batch of
// order events and fails the whole batch when one email fails for now; the relay then
// hands it the whole batch again (IsolateAfter times, then once more event by event), so
// every other customer of the batch is mailed again at each retry. Mail servers do not
// drop a copy because it has the same Message-ID. Here one greylisted recipient makes
// the other customer's confirmation go out several times.
func TestReviewOneFailingEmailResendsNoOtherEmail(t *testing.T) {
	e := newEnv(t)
	ann := e.customer()
	e.orderWithEmail(ann, "ann@example.com")
	e.orderWithEmail(ann, "greylisted@example.com")
	sender := &flakyMail{sent: map[string]int{}, fail: "greylisted@example.com"}
	r := &events.Relay{Outbox: e.db.Outbox, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Handlers: []events.Handler{&events.OrderMail{Checkout: e.co, DB: e.db, Sender: sender, From: "shop@example.com",
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))}},
		Retry: store.Retry{Base: time.Millisecond, Max: time.Millisecond, Attempts: 3}}
	for range 8 {
		_, _ = r.Step(ctx)
	}
	if n := sender.sent["ann@example.com"]; n != 1 {
		t.Fatalf("ann's order confirmation was sent %d times while another recipient's failed, want once", n)
	}
}

func (e *env) orderWithEmail(customer uuid.UUID, email string) *bookstore.Order {
	e.t.Helper()
	now := time.Now()
	c := &bookstore.Cart{ID: cart.NewID(), CustomerID: &customer, Lines: []bookstore.CartLine{{BookID: e.book, Quantity: 1}},
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := e.db.Carts.Create(ctx, c); err != nil {
		e.t.Fatal(err)
	}
	res, err := e.co.Checkout(ctx, customer, checkout.Input{CartID: c.ID, IdempotencyKey: uuid.NewString(), Email: email,
		ShippingAddress: bookstore.Address{Recipient: "Ann", Line1: "1 Road", City: "Leeds", Country: "GB"},
		ShippingMethod:  "STANDARD", Method: payment.MethodCard, Token: "tok_visa"})
	if err != nil || len(res.Problems) > 0 || res.Order.Status != bookstore.OrderPaid {
		e.t.Fatalf("checkout: %v %+v", err, res)
	}
	return res.Order
}
