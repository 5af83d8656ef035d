package orders_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/cart"
	"github.com/shopfront/bookstore/catalog"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/orders"
	"github.com/shopfront/bookstore/payment"
	"github.com/shopfront/bookstore/payment/testpsp"
	"github.com/shopfront/bookstore/pii"
	"github.com/shopfront/bookstore/shipping"
	"github.com/shopfront/bookstore/shipping/sim"
	"github.com/shopfront/bookstore/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

var ctx = context.Background()

type env struct {
	t       *testing.T
	db      *store.DB
	co      *checkout.Service
	svc     *orders.Service
	carrier *sim.Carrier
	clock   *clock
	book    uuid.UUID
	psp     *testpsp.PSP
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type customers map[uuid.UUID]string

func newEnv(t *testing.T) *env {
	t.Helper()
	db := testdb.New(t)
	if failed, err := db.Load(ctx, []catalog.Record{{Line: 2, ISBN: "9780000000001", Title: "Book", Authors: []string{"Ann"},
		Categories: [][]string{{"Fiction"}}, PriceCents: 1000, Stock: 20, Language: "en"}}); err != nil || len(failed) > 0 {
		t.Fatal(err, failed)
	}
	b, err := db.Books.ByISBN(ctx, "9780000000001")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pii.GenerateKey()
	kr, _ := pii.NewKeyring(pii.MasterKey{ID: "k", Key: key})
	idx, _ := pii.NewBlindIndex(key)
	e := &env{t: t, db: db, book: b.ID, clock: &clock{t: time.Now()}}
	e.psp = testpsp.New(db.TestPSP, testpsp.Options{})
	carts := cart.New(cart.Config{Store: db.Carts})
	e.co, err = checkout.New(checkout.Config{DB: db, Carts: carts, PSP: e.psp, PII: kr, Index: idx,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e.carrier = sim.New(db.Shipments, sim.Options{Seed: 7, Step: time.Minute, Now: e.clock.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Hook: func(ctx context.Context, tx pgx.Tx, s *shipping.Shipment, ev shipping.Event) error {
			return e.svc.ShipmentHook(ctx, tx, s, ev)
		}})
	e.svc, err = orders.New(orders.Config{DB: db, Checkout: e.co, PSP: e.psp, Carrier: e.carrier, Tracking: e.carrier})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) customer() uuid.UUID {
	e.t.Helper()
	id := uuid.New()
	idx := make([]byte, 32)
	copy(idx, id[:])
	if err := e.db.Customers.Create(ctx, &store.Customer{ID: id, EmailIndex: idx, EmailEnc: []byte{1}, NameEnc: []byte{1},
		PasswordHash: "x", Role: "CUSTOMER"}); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// order places a paid order of qty copies for the customer.
func (e *env) order(customer uuid.UUID, qty int) *bookstore.Order {
	e.t.Helper()
	now := time.Now()
	c := &bookstore.Cart{ID: cart.NewID(), CustomerID: &customer, Lines: []bookstore.CartLine{{BookID: e.book, Quantity: qty}},
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := e.db.Carts.Create(ctx, c); err != nil {
		e.t.Fatal(err)
	}
	res, err := e.co.Checkout(ctx, customer, checkout.Input{CartID: c.ID, IdempotencyKey: uuid.NewString(), Email: "ann@example.com",
		ShippingAddress: bookstore.Address{Recipient: "Ann", Line1: "1 Road", City: "Leeds", Country: "GB"},
		ShippingMethod:  "STANDARD", Method: payment.MethodCard, Token: "tok_visa"})
	if err != nil || len(res.Problems) > 0 || res.Order.Status != bookstore.OrderPaid {
		e.t.Fatalf("checkout: %v %+v", err, res)
	}
	return res.Order
}

func (e *env) stock() int64 {
	e.t.Helper()
	m, err := e.db.Inventory.Stock(ctx, []uuid.UUID{e.book})
	if err != nil {
		e.t.Fatal(err)
	}
	return m[e.book]
}

func (e *env) status(id uuid.UUID) bookstore.OrderStatus {
	e.t.Helper()
	o, err := e.co.Order(ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return o.Status
}

func (e *env) events(id uuid.UUID) []bookstore.OrderEvent {
	e.t.Helper()
	evs, err := e.svc.Events(ctx, id, 0, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			e.t.Fatalf("event %d has seq %d: gap or duplicate", i, ev.Seq)
		}
	}
	return evs
}

// Every edge of the state machine, allowed and refused, by the one table.
func TestStateMachine(t *testing.T) {
	all := []bookstore.OrderStatus{bookstore.OrderPendingPayment, bookstore.OrderPaid, bookstore.OrderPaymentFailed,
		bookstore.OrderFulfilling, bookstore.OrderShipped, bookstore.OrderDelivered, bookstore.OrderCancelled, bookstore.OrderReturned}
	allowed := map[[2]bookstore.OrderStatus]bool{
		{bookstore.OrderPendingPayment, bookstore.OrderPaid}:          true,
		{bookstore.OrderPendingPayment, bookstore.OrderPaymentFailed}: true,
		{bookstore.OrderPaid, bookstore.OrderFulfilling}:              true,
		{bookstore.OrderPaid, bookstore.OrderCancelled}:               true,
		{bookstore.OrderFulfilling, bookstore.OrderShipped}:           true,
		{bookstore.OrderFulfilling, bookstore.OrderCancelled}:         true,
		{bookstore.OrderShipped, bookstore.OrderDelivered}:            true,
		{bookstore.OrderDelivered, bookstore.OrderReturned}:           true,
	}
	e := newEnv(t)
	for _, from := range all {
		for _, to := range all {
			want := allowed[[2]bookstore.OrderStatus{from, to}]
			if got := from.CanBecome(to); got != want {
				t.Errorf("%s -> %s: CanBecome %v, want %v", from, to, got, want)
			}
			// The store enforces the same table in the transaction.
			id := testdb.Order(t, e.db, uuid.Nil)
			if _, err := e.db.Pool.Exec(ctx, `UPDATE orders SET status = $2 WHERE id = $1`, id, string(from)); err != nil {
				t.Fatal(err)
			}
			err := e.db.ExecuteTx(ctx, func(tx pgx.Tx) error {
				o, err := e.db.Orders.Lock(ctx, tx, id)
				if err != nil {
					return err
				}
				_, err = e.db.Orders.Transition(ctx, tx, o, to, bookstore.OrderEventType(to), nil)
				return err
			})
			if (err == nil) != want {
				t.Errorf("store %s -> %s: %v, allowed %v", from, to, err, want)
			}
			if n := e.count(`SELECT count(*) FROM order_events WHERE order_id = $1`, id); (n == 1) != want {
				t.Errorf("store %s -> %s wrote %d events", from, to, n)
			}
			if n := e.count(`SELECT count(*) FROM outbox WHERE aggregate_id = $1`, id); (n == 1) != want {
				t.Errorf("store %s -> %s wrote %d outbox rows", from, to, n)
			}
		}
	}
}

func (e *env) count(q string, args ...any) int64 {
	e.t.Helper()
	var n int64
	if err := e.db.Pool.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestCancelGivesStockBackAndRefunds(t *testing.T) {
	e := newEnv(t)
	ann, bob := e.customer(), e.customer()
	o := e.order(ann, 3)
	if e.stock() != 17 {
		t.Fatalf("stock %d", e.stock())
	}
	if _, err := e.svc.Cancel(ctx, orders.Caller{Customer: bob}, o.ID, ""); bookstore.ErrorCode(err) != bookstore.CodeNotFound {
		t.Fatalf("another customer cancels: %v, want NOT_FOUND", err)
	}
	if _, err := e.svc.Cancel(ctx, orders.Caller{}, o.ID, ""); bookstore.ErrorCode(err) != bookstore.CodeNotFound {
		t.Fatalf("nobody cancels: %v, want NOT_FOUND", err)
	}
	got, err := e.svc.Cancel(ctx, orders.Caller{Customer: ann}, o.ID, "changed my mind")
	if err != nil || got.Status != bookstore.OrderCancelled || got.Payment.Status != "REFUNDED" {
		t.Fatalf("cancel: %v %+v", err, got)
	}
	if e.stock() != 20 {
		t.Fatalf("stock %d after the cancellation, want 20", e.stock())
	}
	if n := e.count(`SELECT count(*) FROM test_psp_charges WHERE idempotency_key = $1 AND refunded_at IS NOT NULL`, o.ID.String()); n != 1 {
		t.Fatalf("%d refunded charges", n)
	}
	evs := e.events(o.ID)
	if last := evs[len(evs)-1]; last.Type != bookstore.OrderEventCancelled || last.Status != bookstore.OrderCancelled {
		t.Fatalf("last event %+v", last)
	}
	// Twice: refused, nothing given back twice.
	if _, err := e.svc.Cancel(ctx, orders.Caller{Customer: ann}, o.ID, ""); bookstore.ErrorCode(err) != orders.CodeNotCancellable {
		t.Fatalf("second cancel: %v", err)
	}
	if err := e.svc.RefundCancelled(ctx, o.ID); err != nil || e.stock() != 20 {
		t.Fatalf("refund again: %v, stock %d", err, e.stock())
	}
}

// Many cancellations of one order at once: one wins, the stock comes back once.
func TestConcurrentCancelsRestoreOnce(t *testing.T) {
	e := newEnv(t)
	ann := e.customer()
	o := e.order(ann, 4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			who := orders.Caller{Customer: ann, Admin: i%2 == 0}
			_, err := e.svc.Cancel(ctx, who, o.ID, fmt.Sprint(i))
			switch bookstore.ErrorCode(err) {
			case "":
				mu.Lock()
				won++
				mu.Unlock()
			case orders.CodeNotCancellable:
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || e.stock() != 20 {
		t.Fatalf("%d cancellations won, stock %d; want 1 and 20", won, e.stock())
	}
	if n := e.count(`SELECT count(*) FROM order_events WHERE order_id = $1 AND type = 'CANCELLED'`, o.ID); n != 1 {
		t.Fatalf("%d CANCELLED events", n)
	}
}

// The carrier moves the order: FULFILLING at the label, SHIPPED at the first scan,
// DELIVERED at delivery, each once and in order; a shipped order cannot be cancelled.
func TestCarrierMovesTheOrderToDelivered(t *testing.T) {
	e := newEnv(t)
	ann := e.customer()
	o := e.order(ann, 1)
	if err := e.svc.Ship(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Ship(ctx, o.ID); err != nil { // a redelivered order_paid
		t.Fatal(err)
	}
	if s := e.status(o.ID); s != bookstore.OrderFulfilling {
		t.Fatalf("after the label: %s", s)
	}
	for range 40 {
		e.clock.add(3 * time.Minute)
		if _, err := e.carrier.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if e.status(o.ID) == bookstore.OrderShipped {
			if _, err := e.svc.Cancel(ctx, orders.Caller{Customer: ann}, o.ID, ""); bookstore.ErrorCode(err) != orders.CodeNotCancellable {
				t.Fatalf("cancel a shipped order: %v", err)
			}
		}
	}
	if s := e.status(o.ID); s != bookstore.OrderDelivered {
		t.Fatalf("after the route: %s", s)
	}
	var types []bookstore.OrderEventType
	for _, ev := range e.events(o.ID) {
		if ev.Type != bookstore.OrderEventShipmentUpdated {
			types = append(types, ev.Type)
		}
	}
	if fmt.Sprint(types) != "[PLACED PAID FULFILLING SHIPPED DELIVERED]" {
		t.Fatalf("status events %v", types)
	}
	ships, err := e.svc.Shipments(ctx, []uuid.UUID{o.ID})
	if err != nil || len(ships[o.ID]) != 1 || ships[o.ID][0].Status != shipping.StatusDelivered {
		t.Fatalf("shipments: %v %+v", err, ships)
	}
	// A cancelled order is not shipped.
	c := e.order(ann, 1)
	if _, err := e.svc.Cancel(ctx, orders.Caller{Customer: ann}, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Ship(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if ships, _ := e.svc.Shipments(ctx, []uuid.UUID{c.ID}); len(ships[c.ID]) != 0 {
		t.Fatal("a cancelled order was shipped")
	}
}

func TestMarkShipped(t *testing.T) {
	e := newEnv(t)
	ann := e.customer()
	o := e.order(ann, 1)
	if _, err := e.svc.MarkShipped(ctx, orders.Caller{Customer: ann}, o.ID, "DHL", "123"); bookstore.ErrorCode(err) != bookstore.CodeForbidden {
		t.Fatalf("customer marks shipped: %v", err)
	}
	admin := orders.Caller{Customer: uuid.New(), Admin: true}
	for _, bad := range [][2]string{{"", "1"}, {"DHL", ""}, {"DHL", "12\n3"}, {string(make([]byte, 200)), "1"}} {
		if _, err := e.svc.MarkShipped(ctx, admin, o.ID, bad[0], bad[1]); bookstore.ErrorCode(err) != bookstore.CodeBadUserInput {
			t.Fatalf("bad input %q: %v", bad, err)
		}
	}
	got, err := e.svc.MarkShipped(ctx, admin, o.ID, "DHL", "JJD000390007")
	if err != nil || got.Status != bookstore.OrderShipped {
		t.Fatalf("mark shipped: %v %+v", err, got)
	}
	if _, err := e.svc.MarkShipped(ctx, admin, o.ID, "DHL", "JJD000390007"); bookstore.ErrorCode(err) != orders.CodeInvalidTransition {
		t.Fatalf("again: %v", err)
	}
	evs := e.events(o.ID)
	if evs[len(evs)-1].Type != bookstore.OrderEventShipped || evs[len(evs)-2].Type != bookstore.OrderEventFulfilling {
		t.Fatalf("events %+v", evs)
	}
}

func TestListIsTheCustomersNewestFirst(t *testing.T) {
	e := newEnv(t)
	ann, bob := e.customer(), e.customer()
	var ids []uuid.UUID
	for range 5 {
		ids = append(ids, e.order(ann, 1).ID)
	}
	e.order(bob, 1)
	if _, err := e.svc.Cancel(ctx, orders.Caller{Customer: ann}, ids[1], ""); err != nil {
		t.Fatal(err)
	}
	var seen []uuid.UUID
	after := ""
	for {
		p, err := e.svc.List(ctx, ann, nil, 2, after)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range p.Orders {
			seen = append(seen, o.ID)
		}
		if !p.HasNextPage {
			break
		}
		after = p.Cursors[len(p.Cursors)-1]
	}
	if len(seen) != 5 {
		t.Fatalf("walked %d orders, want 5", len(seen))
	}
	for i := range seen {
		if seen[i] != ids[4-i] {
			t.Fatalf("order %d is %s, want %s (newest first)", i, seen[i], ids[4-i])
		}
	}
	cancelled := bookstore.OrderCancelled
	p, err := e.svc.List(ctx, ann, &cancelled, 10, "")
	if err != nil || len(p.Orders) != 1 || p.Orders[0].ID != ids[1] {
		t.Fatalf("cancelled only: %v %+v", err, p)
	}
	if _, err := e.svc.List(ctx, ann, nil, 2, "garbage"); bookstore.ErrorCode(err) != bookstore.CodeBadUserInput {
		t.Fatalf("bad cursor: %v", err)
	}
	if _, err := e.svc.List(ctx, ann, nil, 101, ""); bookstore.ErrorCode(err) != bookstore.CodeBadUserInput {
		t.Fatalf("first 101: %v", err)
	}
}
