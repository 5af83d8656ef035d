package checkout_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/payment"
)

// lostOrder places an order of two copies of book 0 with the code TEN whose charge
// succeeded at the PSP but whose answer was lost: PENDING_PAYMENT, holding its stock and
// promotion use. It returns the order and the PSP's charge.
func (e *env) lostOrder(key string) (uuid.UUID, *payment.Charge) {
	e.t.Helper()
	cfg := e.cfg
	cfg.PSP = &flaky{Provider: e.psp, chargeThenLose: true, voidFails: true}
	id := e.cart(nil, []string{"TEN"}, [2]int{0, 2})
	res, err := e.service(cfg).Checkout(ctx, uuid.Nil, input(id, key, "tok_visa"))
	if err != nil || res.Order == nil || res.Order.Status != bookstore.OrderPendingPayment {
		e.t.Fatalf("lost answer: %v %+v", err, res)
	}
	ch, err := e.psp.Lookup(ctx, res.Order.ID.String())
	if err != nil || ch.Status != payment.StatusSucceeded {
		e.t.Fatalf("the PSP's charge: %v %+v", err, ch)
	}
	return res.Order.ID, ch
}

// The request, the webhook and the recovery loop settling one order at once, with
// failure notices among them (a PSP that contradicts itself): whoever comes first
// settles it, once. One settlement event and outbox row, seq 1 and 2 only; a PAID order
// keeps its stock and promotion use, a failed one gave both back and its charge is
// refunded; the stock ledger agrees with the stock.
func TestRacingSettlesSettleOnceWhateverTheOutcome(t *testing.T) {
	const rounds, initial = 8, 40
	e := newEnv(t, initial)
	p := e.promotion("TEN", 100)
	ledger := func() int64 {
		return e.scalar(`SELECT COALESCE(sum(delta), 0)::INT8 FROM stock_movements WHERE book_id = $1`, e.books[0].ID)
	}
	ledger0 := ledger()
	outcomes := map[bookstore.OrderStatus]int{}
	for r := range rounds {
		order, ch := e.lostOrder(fmt.Sprint("race-", r))
		failed := payment.Charge{IdempotencyKey: order.String(), Status: payment.StatusFailed,
			FailureCode: bookstore.CodePaymentDeclined, FailureMessage: "declined"}
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				switch i % 5 {
				case 0:
					_, err = e.svc.Settle(ctx, order, ch)
				case 1:
					err = e.svc.HandleEvent(ctx, payment.Event{ID: fmt.Sprint("evt_ok_", r, i), Type: payment.EventSucceeded,
						Charge: payment.Charge{IdempotencyKey: order.String(), AmountCents: ch.AmountCents, Currency: ch.Currency}})
				case 2:
					_, err = e.svc.Recover(ctx, checkout.RecoverOptions{After: time.Millisecond})
				case 3:
					if r%2 == 0 || i == 3 {
						_, err = e.svc.Settle(ctx, order, &failed)
					}
				default:
					if r%2 == 0 {
						err = e.svc.HandleEvent(ctx, payment.Event{ID: fmt.Sprint("evt_ko_", r, i), Type: payment.EventFailed,
							Charge: payment.Charge{IdempotencyKey: order.String()}})
					}
				}
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		got, err := e.svc.Order(ctx, order)
		if err != nil {
			t.Fatal(err)
		}
		outcomes[got.Status]++
		var paidEvents, failedEvents, events, paidRows, failedRows int64
		if err := e.db.Pool.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM order_events WHERE order_id = $1 AND type = 'PAID'),
				(SELECT count(*) FROM order_events WHERE order_id = $1 AND type = 'PAYMENT_FAILED'),
				(SELECT count(*) FROM order_events WHERE order_id = $1 AND seq IN (1, 2)),
				(SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND topic = 'order_paid'),
				(SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND topic = 'order_payment_failed')`, order).
			Scan(&paidEvents, &failedEvents, &events, &paidRows, &failedRows); err != nil {
			t.Fatal(err)
		}
		seq, err := e.db.Orders.LastEventSeq(ctx, order)
		if err != nil || seq != 2 || events != 2 {
			t.Errorf("round %d: last seq %d (%v), %d events with seq 1 or 2; want 2 and 2", r, seq, err, events)
		}
		switch got.Status {
		case bookstore.OrderPaid:
			if paidEvents != 1 || paidRows != 1 || failedEvents != 0 || failedRows != 0 || got.Payment.Last4 != "4242" || got.PaidAt == nil {
				t.Errorf("round %d: PAID with %d/%d paid and %d/%d failed events/rows, payment %+v", r,
					paidEvents, paidRows, failedEvents, failedRows, got.Payment)
			}
		case bookstore.OrderPaymentFailed:
			if paidEvents != 0 || paidRows != 0 || failedEvents != 1 || failedRows != 1 || got.PaidAt != nil {
				t.Errorf("round %d: PAYMENT_FAILED with %d/%d paid and %d/%d failed events/rows", r,
					paidEvents, paidRows, failedEvents, failedRows)
			}
			// Every succeeded settle that came later refunded the charge.
			if c, err := e.psp.Lookup(ctx, order.String()); err != nil || c.Status != payment.StatusRefunded {
				t.Errorf("round %d: a failed order's charge is %+v (%v), want refunded", r, c, err)
			}
		default:
			t.Fatalf("round %d: order %s", r, got.Status)
		}
	}
	paid := int64(outcomes[bookstore.OrderPaid])
	t.Logf("outcomes over %d rounds: %v", rounds, outcomes)
	if paid == 0 {
		t.Errorf("no round paid its order: %v", outcomes)
	}
	if s := e.stock(0); s != initial-2*paid || ledger()-ledger0 != s-initial {
		t.Errorf("stock %d, ledger moved %d; want %d after %d paid orders", s, ledger()-ledger0, initial-2*paid, paid)
	}
	if used := e.scalar(`SELECT used FROM promotions WHERE id = $1`, p.ID); used != paid {
		t.Errorf("promotion used %d times, want %d", used, paid)
	}
}

// A succeeded charge of another amount or currency than the order's never pays it (the
// one-statement settle refuses it and the locked path reports it, as before); the
// currency is compared without case, and a charge without an amount pays.
func TestSettleRefusesAnotherAmount(t *testing.T) {
	e := newEnv(t, 10)
	e.promotion("TEN", 100)
	order, ch := e.lostOrder("amount")
	for _, wrong := range []payment.Charge{
		func(c payment.Charge) payment.Charge { c.AmountCents++; return c }(*ch),
		func(c payment.Charge) payment.Charge { c.Currency = "EUR"; return c }(*ch),
	} {
		if _, err := e.svc.Settle(ctx, order, &wrong); err == nil || !strings.Contains(err.Error(), "the PSP charged") {
			t.Errorf("charge of %d %s for %d %s: %v, want refused", wrong.AmountCents, wrong.Currency, ch.AmountCents, ch.Currency, err)
		}
		o, err := e.svc.Order(ctx, order)
		if err != nil || o.Status != bookstore.OrderPendingPayment || o.PaidAt != nil {
			t.Fatalf("after a charge of %d %s: %v %+v", wrong.AmountCents, wrong.Currency, err, o)
		}
		if n := e.scalar(`SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND topic = 'order_paid'`, order); n != 0 {
			t.Fatalf("%d order_paid events after a charge of another amount", n)
		}
		if n := e.scalar(`SELECT count(*) FROM order_events WHERE order_id = $1`, order); n != 1 {
			t.Fatalf("%d events after a charge of another amount, want the PLACED one", n)
		}
	}
	if e.stock(0) != 8 {
		t.Fatalf("stock %d after refused charges, want 8 (still held)", e.stock(0))
	}
	right := *ch
	right.Currency = strings.ToLower(ch.Currency)
	rec, err := e.svc.Settle(ctx, order, &right)
	if err != nil || rec.Status != bookstore.OrderPaid || rec.PaidAt == nil || !rec.PaidAt.Equal(rec.UpdatedAt) {
		t.Fatalf("charge in %s: %v %+v", right.Currency, err, rec)
	}
	if n := e.scalar(`SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND topic = 'order_paid'`, order); n != 1 {
		t.Fatalf("%d order_paid events, want 1", n)
	}
	// A charge without an amount (a PSP notice) pays a pending order too.
	other, ch2 := e.lostOrder("no-amount")
	noAmount := payment.Charge{IdempotencyKey: ch2.IdempotencyKey, Status: payment.StatusSucceeded, ID: ch2.ID}
	if rec, err := e.svc.Settle(ctx, other, &noAmount); err != nil || rec.Status != bookstore.OrderPaid || rec.Payment.Reference != ch2.ID {
		t.Fatalf("charge without an amount: %v %+v", err, rec)
	}
}
