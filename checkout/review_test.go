package checkout_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/store"
)

// TestReviewPerCustomerLimitCountsTheCustomer (review): a promotion limited to one use
// per customer counts a signed-in customer by the email of the order, which the
// customer types: a second order of the same account with "ann+2@example.com" (or any
// other address) takes the discount again. A signed-in customer is one redeemer whatever
// contact email their orders give, and a guest checkout with the account's email is
// that same redeemer.
func TestReviewPerCustomerLimitCountsTheCustomer(t *testing.T) {
	e := newEnv(t, 20)
	ann := uuid.New()
	idx := make([]byte, 32)
	copy(idx, ann[:])
	if err := e.db.Customers.Create(ctx, &store.Customer{ID: ann, EmailIndex: idx, EmailEnc: []byte{1}, NameEnc: []byte{1},
		PasswordHash: "x", Role: "CUSTOMER"}); err != nil {
		t.Fatal(err)
	}
	e.cfg.Customers = customers{ann: "ann@example.com"}
	svc := e.service(e.cfg)
	once, total := int64(1), int64(100)
	p := &bookstore.Promotion{ID: uuid.New(), Code: "ONCE", Kind: bookstore.DiscountPercent, Value: 10, UsageLimit: &total,
		PerCustomerLimit: &once, Combinable: true, Active: true}
	if err := e.db.Promotions.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	discounted := 0
	for i, who := range []struct {
		customer uuid.UUID
		email    string
	}{{ann, ""}, {ann, "ann+2@example.com"}, {ann, "someone.else@example.net"}, {uuid.Nil, "ann@example.com"}} {
		var owner *uuid.UUID
		if who.customer != uuid.Nil {
			owner = &who.customer
		}
		in := input(e.cart(owner, []string{"ONCE"}, [2]int{0, 1}), fmt.Sprint("key-", i), "tok_visa")
		in.Email = who.email
		res, err := svc.Checkout(ctx, who.customer, in)
		if err != nil {
			t.Fatal(err)
		}
		if res.Order != nil && res.Order.Status == bookstore.OrderPaid && res.Order.Cost.DiscountCents > 0 {
			discounted++
		}
	}
	if discounted != 1 {
		t.Fatalf("%d orders of one customer took a one-per-customer discount (used = %d), want 1", discounted,
			e.scalar(`SELECT used FROM promotions WHERE id = $1`, p.ID))
	}
}
