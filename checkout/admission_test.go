package checkout_test

import (
	"context"
	"testing"
	"time"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/payment"
)

// heldPSP is the test PSP whose charges wait until release is closed.
type heldPSP struct {
	payment.Provider
	charging chan struct{}
	release  chan struct{}
}

func (p *heldPSP) Charge(ctx context.Context, req payment.ChargeRequest) (*payment.Charge, error) {
	p.charging <- struct{}{}
	<-p.release
	return p.Provider.Charge(ctx, req)
}

// TestAdmissionRefusesCheckoutsBeyondItsSlots: with one slot, a checkout that waits
// longer than the queue wait while another places its order is refused with UNAVAILABLE
// and nothing of it is written; its retry with the same key succeeds. A checkout waiting
// for its charge holds no slot.
func TestAdmissionRefusesCheckoutsBeyondItsSlots(t *testing.T) {
	e := newEnv(t, 10, 10)
	cfg := e.cfg
	cfg.Admission = checkout.Admission{Concurrency: 1, QueueWait: 100 * time.Millisecond}
	held := &heldPSP{Provider: e.psp, charging: make(chan struct{}, 4), release: make(chan struct{})}
	cfg.PSP = held
	cfg.PSPTimeout = time.Minute
	svc := e.service(cfg)

	// A: its order placed, waiting for the PSP: the slot is free again.
	doneA := make(chan *checkout.Result, 1)
	go func() {
		res, err := svc.Checkout(ctx, [16]byte{}, input(e.cart(nil, nil, [2]int{0, 1}), "key-a", "tok_visa"))
		if err != nil {
			t.Error(err)
		}
		doneA <- res
	}()
	<-held.charging
	// B: placed while A waits for its charge.
	doneB := make(chan *checkout.Result, 1)
	go func() {
		res, err := svc.Checkout(ctx, [16]byte{}, input(e.cart(nil, nil, [2]int{0, 1}), "key-b", "tok_visa"))
		if err != nil {
			t.Error(err)
		}
		doneB <- res
	}()
	<-held.charging
	close(held.release)
	for _, ch := range []chan *checkout.Result{doneA, doneB} {
		if res := <-ch; res == nil || res.Order == nil || res.Order.Status != bookstore.OrderPaid {
			t.Fatalf("checkout: %+v", res)
		}
	}

	// C holds the slot inside tx 1: its stock row is locked by another transaction.
	svc = e.service(func() checkout.Config { c := e.cfg; c.Admission = cfg.Admission; return c }())
	lock, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx)
	if _, err := lock.Exec(ctx, `SELECT stock FROM inventory WHERE book_id = $1 FOR UPDATE`, e.books[1].ID); err != nil {
		t.Fatal(err)
	}
	doneC := make(chan *checkout.Result, 1)
	go func() {
		res, err := svc.Checkout(ctx, [16]byte{}, input(e.cart(nil, nil, [2]int{1, 1}), "key-c", "tok_visa"))
		if err != nil {
			t.Error(err)
		}
		doneC <- res
	}()
	for e.scalar(`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`) == 0 {
		time.Sleep(5 * time.Millisecond) // until C waits for the row lock, holding the slot
	}
	cartD := e.cart(nil, nil, [2]int{0, 2})
	orders, stock := e.scalar(`SELECT count(*) FROM orders`), e.stock(0)
	res, err := svc.Checkout(ctx, [16]byte{}, input(cartD, "key-d", "tok_visa"))
	if bookstore.ErrorCode(err) != bookstore.CodeUnavailable || res != nil {
		t.Fatalf("a checkout beyond the slots: %+v, %v; want UNAVAILABLE", res, err)
	}
	if n, s := e.scalar(`SELECT count(*) FROM orders`), e.stock(0); n != orders || s != stock {
		t.Fatalf("the refused checkout wrote: orders %d -> %d, stock %d -> %d", orders, n, stock, s)
	}
	if n := e.scalar(`SELECT count(*) FROM checkout_keys WHERE key = 'key-d'`); n != 0 {
		t.Fatalf("the refused checkout stored its key")
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if res := <-doneC; res == nil || res.Order == nil || res.Order.Status != bookstore.OrderPaid {
		t.Fatalf("checkout C: %+v", res)
	}
	res, err = svc.Checkout(ctx, [16]byte{}, input(cartD, "key-d", "tok_visa"))
	if err != nil || res.Order == nil || res.Order.Status != bookstore.OrderPaid || res.Replayed {
		t.Fatalf("the retry with the same key: %+v, %v", res, err)
	}
	if s := e.stock(0); s != stock-2 {
		t.Fatalf("stock %d, want %d", s, stock-2)
	}
}
