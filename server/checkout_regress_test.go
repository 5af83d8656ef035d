package server_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/shopfront/bookstore/cart"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/payment"
	"github.com/shopfront/bookstore/payment/testpsp"
	"github.com/shopfront/bookstore/pii"
	"github.com/shopfront/bookstore/server"
)

// slowPSP answers after the request deadline has passed.
type slowPSP struct {
	payment.Provider
	delay time.Duration
}

func (p slowPSP) Charge(ctx context.Context, req payment.ChargeRequest) (*payment.Charge, error) {
	time.Sleep(p.delay)
	return p.Provider.Charge(context.WithoutCancel(ctx), req)
}

// A checkout whose payment outlasts the request deadline still answers its paid order
// whole: no top-level error on the lines' books (they were read on the expired deadline).
func TestPaidCheckoutPastTheDeadlineHasNoErrors(t *testing.T) {
	a := newAPIWith(t, 5, func(c *server.Config) {
		c.ResponseTTL = -1
		c.Timeout = 400 * time.Millisecond
		key, _ := pii.GenerateKey()
		kr, _ := pii.NewKeyring(pii.MasterKey{ID: "k", Key: key})
		idx, _ := pii.NewBlindIndex(key)
		c.Carts = cart.New(cart.Config{Store: c.DB.Carts})
		co, err := checkout.New(checkout.Config{DB: c.DB, Carts: c.Carts, PII: kr, Index: idx, PSPTimeout: 5 * time.Second,
			PSP: slowPSP{Provider: testpsp.New(c.DB.TestPSP, testpsp.Options{}), delay: 600 * time.Millisecond},
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		c.Checkout = co
	})
	b := a.cartBooks(1, 10)[0]
	c := a.createCart("", []map[string]any{line(b, 1)}).Cart
	out := a.checkout("", guestInput(c.ID, "late@example.com", "tok_visa"))
	if out.Order == nil || out.Order.Status != "PAID" || len(out.Order.Lines) != 1 || out.Order.Lines[0].Book == nil ||
		out.Order.Lines[0].Book.ID != b.ID {
		t.Fatalf("checkout past the deadline: %+v", out)
	}
}
