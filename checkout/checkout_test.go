package checkout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	stripeapi "github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/cart"
	"github.com/shopfront/bookstore/catalog"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/identity"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/payment"
	"github.com/shopfront/bookstore/payment/stripe"
	"github.com/shopfront/bookstore/payment/testpsp"
	"github.com/shopfront/bookstore/pii"
	"github.com/shopfront/bookstore/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

var ctx = context.Background()

type env struct {
	t     *testing.T
	db    *store.DB
	carts *cart.Service
	psp   *testpsp.PSP
	svc   *checkout.Service
	cfg   checkout.Config
	books []*bookstore.Book
}

// customers is the account service as checkout sees it: the email of a signed-in
// customer.
type customers map[uuid.UUID]string

func (c customers) Customer(_ context.Context, id uuid.UUID) (*identity.Customer, error) {
	e, ok := c[id]
	if !ok {
		return nil, bookstore.Errorf(bookstore.CodeNotFound, "no such customer")
	}
	return &identity.Customer{ID: id, Email: e}, nil
}

func newEnv(t *testing.T, stock ...int64) *env {
	t.Helper()
	db := testdb.New(t)
	recs := make([]catalog.Record, len(stock))
	for i := range recs {
		recs[i] = catalog.Record{Line: i + 2, ISBN: fmt.Sprintf("978%010d", i), Title: fmt.Sprintf("Book %d", i),
			Authors: []string{"Ann Author"}, Categories: [][]string{{"Fiction"}}, PriceCents: int64(1000 + 100*i),
			Stock: stock[i], Language: "en"}
	}
	if failed, err := db.Load(ctx, recs); err != nil || len(failed) > 0 {
		t.Fatalf("load: %v %v", err, failed)
	}
	e := &env{t: t, db: db}
	for _, r := range recs {
		b, err := db.Books.ByISBN(ctx, r.ISBN)
		if err != nil {
			t.Fatal(err)
		}
		e.books = append(e.books, b)
	}
	e.carts = cart.New(cart.Config{Store: db.Carts, Tax: bookstore.TaxRates{"DE": 1900}})
	e.psp = testpsp.New(db.TestPSP, testpsp.Options{SlowDelay: 5 * time.Second})
	key, _ := pii.GenerateKey()
	kr, err := pii.NewKeyring(pii.MasterKey{ID: "k1", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := pii.NewBlindIndex(key)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = checkout.Config{DB: db, Carts: e.carts, PSP: e.psp, PII: kr, Index: idx, PSPTimeout: 300 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Customers: customers{}}
	e.svc = e.service(e.cfg)
	return e
}

func (e *env) service(cfg checkout.Config) *checkout.Service {
	e.t.Helper()
	s, err := checkout.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// cart stores a cart of (book index, quantity) pairs with codes.
func (e *env) cart(owner *uuid.UUID, codes []string, lines ...[2]int) string {
	e.t.Helper()
	now := time.Now()
	c := &bookstore.Cart{ID: cart.NewID(), CustomerID: owner, DiscountCodes: codes, CreatedAt: now, UpdatedAt: now,
		ExpiresAt: now.Add(time.Hour)}
	for _, l := range lines {
		c.Lines = append(c.Lines, bookstore.CartLine{BookID: e.books[l[0]].ID, Quantity: l[1]})
	}
	if err := e.db.Carts.Create(ctx, c); err != nil {
		e.t.Fatal(err)
	}
	return c.ID
}

func (e *env) stock(i int) int64 {
	e.t.Helper()
	m, err := e.db.Inventory.Stock(ctx, []uuid.UUID{e.books[i].ID})
	if err != nil {
		e.t.Fatal(err)
	}
	return m[e.books[i].ID]
}

func (e *env) scalar(q string, args ...any) int64 {
	e.t.Helper()
	var n int64
	if err := e.db.Pool.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

func (e *env) promotion(code string, limit int64) *bookstore.Promotion {
	e.t.Helper()
	p := &bookstore.Promotion{ID: uuid.New(), Code: code, Kind: bookstore.DiscountPercent, Value: 10, UsageLimit: &limit,
		Combinable: true, Active: true}
	if err := e.db.Promotions.Create(ctx, p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func input(cartID, key, token string) checkout.Input {
	return checkout.Input{CartID: cartID, IdempotencyKey: key, Email: "Ann.Reader@Example.com",
		ShippingAddress: bookstore.Address{Recipient: "Annabel Quillfeather", Line1: "12 Lantern Row", City: "Bristol",
			PostalCode: "BS1 4DJ", Country: "gb", Phone: "+44 20 7946 0958"},
		ShippingMethod: "STANDARD", Method: payment.MethodCard, Token: token}
}

func codes(res *checkout.Result) []string {
	var out []string
	for _, p := range res.Problems {
		out = append(out, p.Code)
	}
	return out
}

func wantProblem(t *testing.T, res *checkout.Result, err error, code, field string) {
	t.Helper()
	if err != nil {
		t.Fatalf("checkout: %v", err)
	}
	if len(res.Problems) != 1 || res.Problems[0].Code != code || (field != "" && res.Problems[0].Field != field) {
		t.Fatalf("problems %+v, want one %s on %q", res.Problems, code, field)
	}
}

func TestCheckoutPaysTakesStockAndDeletesTheCart(t *testing.T) {
	e := newEnv(t, 10, 10)
	id := e.cart(nil, nil, [2]int{0, 2}, [2]int{1, 1})
	res, err := e.svc.Checkout(ctx, uuid.Nil, input(id, "key-1", "tok_mastercard"))
	if err != nil || len(res.Problems) > 0 {
		t.Fatalf("checkout: %v %+v", err, res.Problems)
	}
	o := res.Order
	// 2 x 1000 + 1 x 1100 + 499 shipping, no tax for GB here.
	if o.Status != bookstore.OrderPaid || o.Cost.TotalCents != 3599 || o.Cost.ShippingCents != 499 || len(o.Lines) != 2 ||
		o.Payment.Brand != "mastercard" || o.Payment.Last4 != "4444" || o.Payment.Status != "SUCCEEDED" ||
		o.Email != "Ann.Reader@Example.com" || o.ShippingAddress.Country != "GB" || !strings.HasPrefix(o.Number, "BK-") {
		t.Fatalf("order %+v", o)
	}
	if e.stock(0) != 8 || e.stock(1) != 9 {
		t.Fatalf("stock %d %d, want 8 9", e.stock(0), e.stock(1))
	}
	if n := e.scalar(`SELECT count(*) FROM test_psp_charges WHERE idempotency_key = $1 AND status = 'SUCCEEDED' AND amount_cents = 3599`, o.ID.String()); n != 1 {
		t.Fatalf("%d charges, want 1", n)
	}
	if _, err := e.carts.Get(ctx, id, uuid.Nil); !errors.Is(err, bookstore.ErrCartNotFound) {
		t.Fatalf("paid cart: %v, want ErrCartNotFound", err)
	}
	if n := e.scalar(`SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND topic IN ('order_created', 'order_paid')`, o.ID); n != 2 {
		t.Fatalf("%d order events, want order_created and order_paid", n)
	}
	// The ledger names the order.
	if n := e.scalar(`SELECT COALESCE(sum(delta), 0) FROM stock_movements WHERE ref = $1`, o.ID); n != -3 {
		t.Fatalf("ledger delta %d, want -3", n)
	}

	// Read back: the guest with email (any case) and token; nobody else.
	got, err := e.svc.Find(ctx, o.ID, uuid.Nil, "ann.reader@example.com", res.AccessToken)
	if err != nil || got.Number != o.Number || got.ShippingAddress.Phone != "+44 20 7946 0958" || len(got.Lines) != 2 {
		t.Fatalf("find: %v %+v", err, got)
	}
	for name, probe := range map[string]func() error{
		"wrong token": func() error { _, err := e.svc.Find(ctx, o.ID, uuid.Nil, o.Email, res.AccessToken+"x"); return err },
		"wrong email": func() error {
			_, err := e.svc.Find(ctx, o.ID, uuid.Nil, "bob@example.com", res.AccessToken)
			return err
		},
		"no token":       func() error { _, err := e.svc.Find(ctx, o.ID, uuid.Nil, o.Email, ""); return err },
		"other customer": func() error { _, err := e.svc.Find(ctx, o.ID, uuid.New(), "", ""); return err },
		"unknown order":  func() error { _, err := e.svc.Find(ctx, uuid.New(), uuid.Nil, o.Email, res.AccessToken); return err },
		"another's token": func() error {
			_, err := e.svc.Find(ctx, o.ID, uuid.Nil, o.Email, e.svc.AccessToken(uuid.New()))
			return err
		},
	} {
		if code := bookstore.ErrorCode(probe()); code != bookstore.CodeNotFound {
			t.Errorf("%s: %s, want NOT_FOUND", name, code)
		}
	}
}

func TestCustomerChecksOutOwnCartWithAccountEmail(t *testing.T) {
	e := newEnv(t, 5)
	ann, bob := uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{ann, bob} {
		idx := make([]byte, 32)
		copy(idx, id[:])
		if err := e.db.Customers.Create(ctx, &store.Customer{ID: id, EmailIndex: idx, EmailEnc: []byte{1}, NameEnc: []byte{1},
			PasswordHash: "x", Role: "CUSTOMER"}); err != nil {
			t.Fatal(err)
		}
	}
	e.cfg.Customers = customers{ann: "ann@example.com", bob: "bob@example.com"}
	svc := e.service(e.cfg)
	id := e.cart(&ann, nil, [2]int{0, 1})
	in := input(id, "k", "tok_visa")
	in.Email = ""
	res, err := svc.Checkout(ctx, bob, in)
	wantProblem(t, res, err, bookstore.CodeCartNotFound, "cartId")
	anon := in
	anon.Email = "ann@example.com"
	res, err = svc.Checkout(ctx, uuid.Nil, anon)
	wantProblem(t, res, err, bookstore.CodeCartNotFound, "cartId")
	res, err = svc.Checkout(ctx, ann, in)
	if err != nil || len(res.Problems) > 0 || res.Order.Email != "ann@example.com" || *res.Order.CustomerID != ann {
		t.Fatalf("own cart: %v %+v %+v", err, res.Problems, res.Order)
	}
	if _, err := svc.Find(ctx, res.Order.ID, ann, "", ""); err != nil {
		t.Fatalf("owner reads the order: %v", err)
	}
	if _, err := svc.Find(ctx, res.Order.ID, bob, "", ""); bookstore.ErrorCode(err) != bookstore.CodeNotFound {
		t.Fatalf("another customer: %v, want NOT_FOUND", err)
	}
	// Bob's key "k" is his own: the same key in another scope is a new checkout.
	bobCart := e.cart(&bob, nil, [2]int{0, 1})
	in.CartID = bobCart
	if res, err := svc.Checkout(ctx, bob, in); err != nil || len(res.Problems) > 0 || res.Replayed {
		t.Fatalf("bob with the same key: %v %+v replayed=%v", err, res.Problems, res.Replayed)
	}
}

// Every payment failure fails the order and gives everything back; the cart stays, and
// a retry with a new key pays.
func TestPaymentFailuresRestoreStockAndPromotion(t *testing.T) {
	cases := []struct{ token, code string }{
		{"tok_chargeDeclined", bookstore.CodePaymentDeclined},
		{"tok_chargeDeclinedInsufficientFunds", bookstore.CodeInsufficientFunds},
		{"tok_chargeDeclinedProcessingError", bookstore.CodePaymentError},
		{testpsp.SlowToken, bookstore.CodePaymentError}, // times out after 300 ms, then voided
		{"tok_unknown", bookstore.CodePaymentError},     // refused by the PSP
	}
	for _, c := range cases {
		t.Run(c.token, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 3)
			p := e.promotion("ONCE", 1)
			id := e.cart(nil, []string{"ONCE"}, [2]int{0, 2})
			res, err := e.svc.Checkout(ctx, uuid.Nil, input(id, "first", c.token))
			if err != nil {
				t.Fatal(err)
			}
			if res.Order == nil || res.Order.Status != bookstore.OrderPaymentFailed || fmt.Sprint(codes(res)) != "["+c.code+"]" ||
				res.Order.Payment.FailureCode != c.code {
				t.Fatalf("order %+v problems %v, want PAYMENT_FAILED with %s", res.Order, codes(res), c.code)
			}
			if e.stock(0) != 3 {
				t.Fatalf("stock %d after a failed payment, want 3", e.stock(0))
			}
			if n := e.scalar(`SELECT used FROM promotions WHERE id = $1`, p.ID); n != 0 {
				t.Fatalf("promotion used %d after a failed payment, want 0", n)
			}
			if n := e.scalar(`SELECT count(*) FROM test_psp_charges WHERE idempotency_key = $1 AND status = 'SUCCEEDED'`, res.Order.ID.String()); n != 0 {
				t.Fatalf("%d succeeded charges for a failed order", n)
			}
			if n := e.scalar(`SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND topic = 'order_payment_failed'`, res.Order.ID); n != 1 {
				t.Fatalf("%d order_payment_failed events, want 1", n)
			}
			kept, err := e.carts.Get(ctx, id, uuid.Nil)
			if err != nil || len(kept.Lines) != 1 || kept.Lines[0].Quantity != 2 || len(kept.DiscountCodes) != 1 {
				t.Fatalf("cart after failure: %v %+v", err, kept)
			}
			// The same request again answers the same failure, charging nothing.
			again, err := e.svc.Checkout(ctx, uuid.Nil, input(id, "first", c.token))
			if err != nil || !again.Replayed || again.Order.ID != res.Order.ID || fmt.Sprint(codes(again)) != "["+c.code+"]" {
				t.Fatalf("replay: %v %+v", err, again)
			}
			ok, err := e.svc.Checkout(ctx, uuid.Nil, input(id, "second", "tok_visa"))
			if err != nil || len(ok.Problems) > 0 || ok.Order.Status != bookstore.OrderPaid || ok.Order.Cost.DiscountCents != 200 {
				t.Fatalf("retry with a new key: %v %+v %+v", err, ok.Problems, ok.Order)
			}
			if e.stock(0) != 1 || e.scalar(`SELECT used FROM promotions WHERE id = $1`, p.ID) != 1 {
				t.Fatalf("after the paid retry: stock %d, used %d", e.stock(0), e.scalar(`SELECT used FROM promotions WHERE id = $1`, p.ID))
			}
		})
	}
}

func TestIdempotency(t *testing.T) {
	e := newEnv(t, 100)
	id := e.cart(nil, nil, [2]int{0, 1})
	first, err := e.svc.Checkout(ctx, uuid.Nil, input(id, "same", "tok_visa"))
	if err != nil || len(first.Problems) > 0 {
		t.Fatal(err, first.Problems)
	}
	again, err := e.svc.Checkout(ctx, uuid.Nil, input(id, "same", "tok_visa"))
	if err != nil || !again.Replayed || again.Order.ID != first.Order.ID || again.AccessToken != first.AccessToken ||
		again.Order.Status != bookstore.OrderPaid {
		t.Fatalf("replay: %v %+v", err, again)
	}
	other := input(id, "same", "tok_visa")
	other.ShippingAddress.Line1 = "13 Lantern Row"
	res, err := e.svc.Checkout(ctx, uuid.Nil, other)
	wantProblem(t, res, err, bookstore.CodeIdempotencyKeyReused, "idempotencyKey")
	if n := e.scalar(`SELECT count(*) FROM test_psp_charges`); n != 1 {
		t.Fatalf("%d charges, want 1", n)
	}

	// Racing requests with one key: one order, one charge, every answer that order.
	id = e.cart(nil, nil, [2]int{0, 1})
	const n = 20
	var wg sync.WaitGroup
	got := make([]*checkout.Result, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = e.svc.Checkout(ctx, uuid.Nil, input(id, "race", "tok_visa"))
		}()
	}
	wg.Wait()
	var order uuid.UUID
	for i := range n {
		if errs[i] != nil || len(got[i].Problems) > 0 || got[i].Order == nil {
			t.Fatalf("request %d: %v %+v", i, errs[i], got[i])
		}
		if order == uuid.Nil {
			order = got[i].Order.ID
		}
		if got[i].Order.ID != order {
			t.Fatalf("request %d got order %s, another %s", i, got[i].Order.ID, order)
		}
	}
	if c := e.scalar(`SELECT count(*) FROM test_psp_charges WHERE idempotency_key = $1`, order.String()); c != 1 {
		t.Fatalf("%d charges for the raced order", c)
	}
	if c := e.scalar(`SELECT count(*) FROM orders`); c != 2 || e.stock(0) != 98 {
		t.Fatalf("%d orders, stock %d; want 2 and 98", c, e.stock(0))
	}
}

func TestPriceChangedChargesNothing(t *testing.T) {
	e := newEnv(t, 5)
	id := e.cart(nil, nil, [2]int{0, 1})
	in := input(id, "k", "tok_visa")
	shown := int64(1000 + 499)
	in.ExpectedTotalCents = &shown
	if _, err := e.db.Pool.Exec(ctx, `UPDATE books SET price_cents = 1250 WHERE id = $1`, e.books[0].ID); err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.Checkout(ctx, uuid.Nil, in)
	wantProblem(t, res, err, bookstore.CodePriceChanged, "expectedTotalCents")
	if res.TotalCents == nil || *res.TotalCents != 1749 || res.Order != nil {
		t.Fatalf("result %+v, want the new total 1749 and no order", res)
	}
	if e.scalar(`SELECT count(*) FROM orders`) != 0 || e.scalar(`SELECT count(*) FROM test_psp_charges`) != 0 ||
		e.scalar(`SELECT count(*) FROM checkout_keys`) != 0 || e.stock(0) != 5 {
		t.Fatal("a PRICE_CHANGED checkout left an order, a charge, a key or took stock")
	}
	// Confirming the new total pays it, with the same key (nothing was stored for it).
	shown = 1749
	if res, err := e.svc.Checkout(ctx, uuid.Nil, in); err != nil || len(res.Problems) > 0 || res.Order.Cost.TotalCents != 1749 {
		t.Fatalf("confirmed total: %v %+v", err, res)
	}
}

func TestRefusedBeforeAnythingMoves(t *testing.T) {
	e := newEnv(t, 2, 0)
	expired := time.Now().Add(-time.Hour)
	p := &bookstore.Promotion{ID: uuid.New(), Code: "OLD", Kind: bookstore.DiscountPercent, Value: 10, EndsAt: &expired, Active: true}
	if err := e.db.Promotions.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("k", 256)
	cases := []struct {
		name, code, field string
		edit              func(*checkout.Input)
		cart              func() string
	}{
		{"guest without email", bookstore.CodeInvalidAddress, "email", func(in *checkout.Input) { in.Email = "" }, nil},
		{"bad email", bookstore.CodeInvalidAddress, "email", func(in *checkout.Input) { in.Email = "not an email" }, nil},
		{"bad country", bookstore.CodeInvalidAddress, "shippingAddress.country", func(in *checkout.Input) { in.ShippingAddress.Country = "Narnia" }, nil},
		{"no street", bookstore.CodeInvalidAddress, "shippingAddress.line1", func(in *checkout.Input) { in.ShippingAddress.Line1 = " " }, nil},
		{"bad phone", bookstore.CodeInvalidAddress, "shippingAddress.phone", func(in *checkout.Input) { in.ShippingAddress.Phone = "call me" }, nil},
		{"huge recipient", bookstore.CodeInvalidAddress, "shippingAddress.recipient", func(in *checkout.Input) { in.ShippingAddress.Recipient = strings.Repeat("x", 10_000) }, nil},
		{"unknown shipping", bookstore.CodeBadUserInput, "shippingMethod", func(in *checkout.Input) { in.ShippingMethod = "TELEPORT" }, nil},
		{"no token", bookstore.CodeBadUserInput, "payment.token", func(in *checkout.Input) { in.Token = "" }, nil},
		{"bad method", bookstore.CodeBadUserInput, "payment.method", func(in *checkout.Input) { in.Method = "CASH" }, nil},
		{"long key", bookstore.CodeBadUserInput, "idempotencyKey", func(in *checkout.Input) { in.IdempotencyKey = long }, nil},
		{"control key", bookstore.CodeBadUserInput, "idempotencyKey", func(in *checkout.Input) { in.IdempotencyKey = "a\nb" }, nil},
		{"bad cart id", bookstore.CodeCartNotFound, "cartId", func(in *checkout.Input) { in.CartID = "nope" }, nil},
		{"unknown cart", bookstore.CodeCartNotFound, "cartId", func(in *checkout.Input) { in.CartID = cart.NewID() }, nil},
		{"empty cart", bookstore.CodeEmptyCart, "cartId", nil, func() string { return e.cart(nil, nil) }},
		{"out of stock", bookstore.CodeOutOfStock, "cartId", nil, func() string { return e.cart(nil, nil, [2]int{1, 1}) }},
		{"short of stock", bookstore.CodeInsufficientStock, "cartId", nil, func() string { return e.cart(nil, nil, [2]int{0, 3}) }},
		{"expired code", bookstore.CodeDiscountNotApplicable, "cartId", nil, func() string { return e.cart(nil, []string{"OLD"}, [2]int{0, 1}) }},
	}
	for _, c := range cases {
		id := e.cart(nil, nil, [2]int{0, 1})
		if c.cart != nil {
			id = c.cart()
		}
		in := input(id, "k-"+c.name, "tok_visa")
		if c.edit != nil {
			c.edit(&in)
		}
		res, err := e.svc.Checkout(ctx, uuid.Nil, in)
		if err != nil || len(res.Problems) != 1 || res.Problems[0].Code != c.code || res.Problems[0].Field != c.field || res.Order != nil {
			t.Errorf("%s: %v %+v, want %s on %s", c.name, err, res, c.code, c.field)
		}
	}
	if e.scalar(`SELECT count(*) FROM orders`) != 0 || e.scalar(`SELECT count(*) FROM test_psp_charges`) != 0 || e.stock(0) != 2 {
		t.Fatal("a refused checkout left an order or a charge, or took stock")
	}
}

// A second checkout of a cart whose order is paying or paid is refused, whatever its key;
// after a failed payment the cart can be checked out again.
func TestOneLiveOrderPerCart(t *testing.T) {
	e := newEnv(t, 10)
	id := e.cart(nil, nil, [2]int{0, 1})
	// Stall the first checkout inside the PSP call.
	slow := e.cfg
	slow.PSPTimeout = 2 * time.Second
	svc := e.service(slow)
	done := make(chan *checkout.Result)
	go func() {
		res, _ := svc.Checkout(ctx, uuid.Nil, input(id, "slow", testpsp.SlowToken))
		done <- res
	}()
	deadline := time.Now().Add(5 * time.Second)
	for e.scalar(`SELECT count(*) FROM orders`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slow checkout placed no order")
		}
		time.Sleep(10 * time.Millisecond)
	}
	res, err := e.svc.Checkout(ctx, uuid.Nil, input(id, "second tab", "tok_visa"))
	wantProblem(t, res, err, bookstore.CodeCheckoutInProgress, "cartId")
	if first := <-done; first == nil || first.Order.Status != bookstore.OrderPaymentFailed {
		t.Fatalf("slow checkout: %+v", first)
	}
	res, err = e.svc.Checkout(ctx, uuid.Nil, input(id, "after failure", "tok_visa"))
	if err != nil || len(res.Problems) > 0 || res.Order.Status != bookstore.OrderPaid {
		t.Fatalf("after the failed payment: %v %+v", err, res)
	}
	if e.stock(0) != 9 || e.scalar(`SELECT count(*) FROM test_psp_charges WHERE status = 'SUCCEEDED'`) != 1 {
		t.Fatalf("stock %d, want 9 and one charge", e.stock(0))
	}
}

// The webhook, the recovery loop and the request settling one order at once settle it
// once: one state change, one event, stock untouched.
func TestConcurrentSettlesSettleOnce(t *testing.T) {
	e := newEnv(t, 10)
	lost := e.cfg
	lost.PSP = &flaky{Provider: e.psp, chargeThenLose: true, voidFails: true}
	id := e.cart(nil, nil, [2]int{0, 2})
	res, err := e.service(lost).Checkout(ctx, uuid.Nil, input(id, "k", "tok_visa"))
	if err != nil || res.Order.Status != bookstore.OrderPendingPayment {
		t.Fatalf("lost answer: %v %+v", err, res)
	}
	order := res.Order.ID
	ch, err := e.psp.Lookup(ctx, order.String())
	if err != nil || ch.Status != payment.StatusSucceeded {
		t.Fatalf("the PSP's charge: %v %+v", err, ch)
	}
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			switch i % 3 {
			case 0:
				_, err = e.svc.Settle(ctx, order, ch)
			case 1:
				err = e.svc.HandleEvent(ctx, payment.Event{ID: fmt.Sprint("evt_", i), Type: payment.EventSucceeded,
					Charge: payment.Charge{IdempotencyKey: order.String(), AmountCents: ch.AmountCents, Currency: ch.Currency}})
			default:
				_, err = e.svc.Recover(ctx, checkout.RecoverOptions{After: time.Millisecond})
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := e.svc.Order(ctx, order)
	if err != nil || got.Status != bookstore.OrderPaid || got.Payment.Last4 != "4242" {
		t.Fatalf("settled order: %v %+v", err, got)
	}
	if n := e.scalar(`SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND topic = 'order_paid'`, order); n != 1 {
		t.Fatalf("%d order_paid events, want 1", n)
	}
	if e.stock(0) != 8 {
		t.Fatalf("stock %d, want 8", e.stock(0))
	}
	// A failure notice for a paid order changes nothing.
	if err := e.svc.HandleEvent(ctx, payment.Event{ID: "evt_late", Type: payment.EventFailed,
		Charge: payment.Charge{IdempotencyKey: order.String()}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.svc.Order(ctx, order); got.Status != bookstore.OrderPaid || e.stock(0) != 8 {
		t.Fatalf("late failure notice moved the order to %s, stock %d", got.Status, e.stock(0))
	}
	// Events for keys that are not orders are ignored.
	for _, key := range []string{"not-a-uuid", uuid.NewString()} {
		if err := e.svc.HandleEvent(ctx, payment.Event{ID: "evt_x", Type: payment.EventSucceeded, Charge: payment.Charge{IdempotencyKey: key}}); err != nil {
			t.Fatalf("event for %q: %v", key, err)
		}
	}
}

func TestRecoveryResolvesStuckOrders(t *testing.T) {
	e := newEnv(t, 10)
	p := e.promotion("TEN", 10)
	carts := map[uuid.UUID]string{}
	stuck := func(f *flaky, key string) uuid.UUID {
		cfg := e.cfg
		cfg.PSP = f
		id := e.cart(nil, []string{"TEN"}, [2]int{0, 3})
		res, err := e.service(cfg).Checkout(ctx, uuid.Nil, input(id, key, "tok_visa"))
		if err != nil || res.Order.Status != bookstore.OrderPendingPayment {
			t.Fatalf("stuck checkout: %v %+v", err, res)
		}
		carts[res.Order.ID] = id
		return res.Order.ID
	}
	charged := stuck(&flaky{Provider: e.psp, chargeThenLose: true, voidFails: true}, "a")
	never := stuck(&flaky{Provider: e.psp, loseCharge: true, voidFails: true}, "b")
	defer func() {
		// Whoever settles an order PAID deletes its cart; a failed one keeps it.
		if _, err := e.carts.Get(ctx, carts[charged], uuid.Nil); !errors.Is(err, bookstore.ErrCartNotFound) {
			t.Errorf("the cart of the order the loop paid: %v, want deleted", err)
		}
		if _, err := e.carts.Get(ctx, carts[never], uuid.Nil); err != nil {
			t.Errorf("the cart of the order the loop failed: %v, want kept", err)
		}
	}()
	if e.stock(0) != 4 || e.scalar(`SELECT used FROM promotions WHERE id = $1`, p.ID) != 2 {
		t.Fatalf("stuck orders hold stock %d and uses %d", e.stock(0), e.scalar(`SELECT used FROM promotions WHERE id = $1`, p.ID))
	}
	// Too young for the loop: untouched.
	if n, err := e.svc.Recover(ctx, checkout.RecoverOptions{After: time.Hour}); err != nil || n != 0 {
		t.Fatalf("young orders: settled %d, %v", n, err)
	}
	n, err := e.svc.Recover(ctx, checkout.RecoverOptions{After: time.Millisecond})
	if err != nil || n != 2 {
		t.Fatalf("recover: settled %d, %v", n, err)
	}
	if o, _ := e.svc.Order(ctx, charged); o.Status != bookstore.OrderPaid {
		t.Fatalf("charged order %s, want PAID", o.Status)
	}
	if o, _ := e.svc.Order(ctx, never); o.Status != bookstore.OrderPaymentFailed {
		t.Fatalf("never-charged order %s, want PAYMENT_FAILED", o.Status)
	}
	// The voided key can never be charged now.
	ch, err := e.psp.Charge(ctx, payment.ChargeRequest{IdempotencyKey: never.String(), AmountCents: 3199, Currency: "USD",
		Method: payment.MethodCard, Token: "tok_visa"})
	if err == nil && ch.Status == payment.StatusSucceeded {
		t.Fatal("a voided order's key took a charge")
	}
	if e.stock(0) != 7 || e.scalar(`SELECT used FROM promotions WHERE id = $1`, p.ID) != 1 {
		t.Fatalf("after recovery stock %d, uses %d; want 7 and 1", e.stock(0), e.scalar(`SELECT used FROM promotions WHERE id = $1`, p.ID))
	}
	if n, err := e.svc.Recover(ctx, checkout.RecoverOptions{After: time.Millisecond}); err != nil || n != 0 {
		t.Fatalf("second pass settled %d, %v", n, err)
	}
}

// The contact data is nowhere in plaintext: not in the order, its lines, its key, its
// events.
func TestOrderPIIIsEncryptedAtRest(t *testing.T) {
	e := newEnv(t, 5)
	id := e.cart(nil, nil, [2]int{0, 1})
	if res, err := e.svc.Checkout(ctx, uuid.Nil, input(id, "k", "tok_visa")); err != nil || len(res.Problems) > 0 {
		t.Fatal(err, res.Problems)
	}
	secrets := []string{"ann.reader", "Annabel", "Quillfeather", "Lantern", "Bristol", "BS1 4DJ", "7946", "tok_visa"}
	for _, table := range []string{"orders", "order_lines", "order_discounts", "checkout_keys", "outbox", "test_psp_charges", "stock_movements"} {
		rows, err := e.db.Pool.Query(ctx, `SELECT row_to_json(t)::TEXT FROM `+table+` t`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var row string
			if err := rows.Scan(&row); err != nil {
				t.Fatal(err)
			}
			for _, s := range secrets {
				if strings.Contains(strings.ToLower(row), strings.ToLower(s)) {
					t.Errorf("%s holds %q in plaintext: %s", table, s, row)
				}
			}
		}
		rows.Close()
	}
	// A sealed contact moved to another order does not open.
	if _, err := e.db.Pool.Exec(ctx, `INSERT INTO orders (id, number, email_index, contact_enc, access_hash, cart_ref, status,
		currency, subtotal_cents, discount_cents, shipping_cents, tax_cents, total_cents, shipping_method, country, payment_method, payment_status)
		SELECT gen_random_uuid(), 'BK-COPY', email_index, contact_enc, access_hash, 'x', 'PAID', currency, subtotal_cents,
		discount_cents, shipping_cents, tax_cents, total_cents, shipping_method, country, payment_method, payment_status FROM orders`); err != nil {
		t.Fatal(err)
	}
	var copied uuid.UUID
	if err := e.db.Pool.QueryRow(ctx, `SELECT id FROM orders WHERE number = 'BK-COPY'`).Scan(&copied); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Order(ctx, copied); err == nil {
		t.Fatal("a contact ciphertext copied to another order opened")
	}
}

// flaky wraps the test PSP to lose answers: the crash-free way to leave an order
// PENDING_PAYMENT (the SIGKILL tests in cmd/bookstore do it with a real process).
type flaky struct {
	payment.Provider
	chargeThenLose bool // charge, then report a network error
	loseCharge     bool // report a network error without charging
	voidFails      bool
}

var errNetwork = errors.New("connection reset by peer")

func (f *flaky) Charge(ctx context.Context, req payment.ChargeRequest) (*payment.Charge, error) {
	switch {
	case f.loseCharge:
		return nil, errNetwork
	case f.chargeThenLose:
		if _, err := f.Provider.Charge(ctx, req); err != nil {
			return nil, err
		}
		return nil, errNetwork
	}
	return f.Provider.Charge(ctx, req)
}

func (f *flaky) Void(ctx context.Context, key string) (*payment.Charge, error) {
	if f.voidFails {
		return nil, errNetwork
	}
	return f.Provider.Void(ctx, key)
}

// Through the Stripe adapter against stripe-mock: the saga's requests are accepted by
// Stripe's API shape (stripe-mock never declines, so outcomes are the test PSP's tests).
func TestCheckoutThroughStripeMock(t *testing.T) {
	e := newEnv(t, 5)
	p, err := stripe.New(stripe.Options{SecretKey: "sk_test_123", URL: testdb.StripeURL(t), Intents: e.db.Intents})
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.PSP = p
	cfg.PSPTimeout = 10 * time.Second
	id := e.cart(nil, nil, [2]int{0, 1})
	res, err := e.service(cfg).Checkout(ctx, uuid.Nil, input(id, "k", "tok_visa"))
	if err != nil || res.Order == nil {
		t.Fatalf("checkout through Stripe: %v %+v", err, res)
	}
	// Its fixture intent is "requires_payment_method": a decline, settled at once.
	if res.Order.Status != bookstore.OrderPaymentFailed || !strings.HasPrefix(res.Order.Payment.Reference, "pi_") ||
		fmt.Sprint(codes(res)) != "[PAYMENT_DECLINED]" || e.stock(0) != 5 {
		t.Fatalf("stripe-mock's answer settled as %+v %v, stock %d", res.Order, codes(res), e.stock(0))
	}
	row, err := e.db.Intents.ByKey(ctx, "stripe", res.Order.ID.String())
	if err != nil || !strings.HasPrefix(row.IntentID, "pi_") {
		t.Fatalf("intent of the order: %+v %v", row, err)
	}
}

// POST /webhooks/stripe settles an order whose checkout lost the PSP's answer, once:
// the signed delivery, its redelivery and a late contrary event.
func TestWebhookSettlesThroughTheSharedCompletion(t *testing.T) {
	e := newEnv(t, 5)
	cfg := e.cfg
	cfg.PSP = &flaky{Provider: e.psp, chargeThenLose: true, voidFails: true}
	id := e.cart(nil, nil, [2]int{0, 1})
	res, err := e.service(cfg).Checkout(ctx, uuid.Nil, input(id, "k", "tok_visa"))
	if err != nil || res.Order.Status != bookstore.OrderPendingPayment {
		t.Fatalf("lost answer: %v %+v", err, res)
	}
	const secret = "whsec_checkout_test"
	h, err := stripe.WebhookHandler(stripe.WebhookOptions{Secret: secret, Dedup: e.db.Webhooks, Handle: e.svc.HandleEvent})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	deliver := func(evID string, typ stripeapi.EventType, sig string) int {
		body, _ := json.Marshal(map[string]any{
			"id": evID, "object": "event", "api_version": stripeapi.APIVersion, "created": time.Now().Unix(), "type": typ,
			"data": map[string]any{"object": map[string]any{"id": "pi_x", "object": "payment_intent", "amount": res.Order.Cost.TotalCents,
				"currency": "usd", "status": "succeeded", "metadata": map[string]string{"order_id": res.Order.ID.String(), "method": "CARD"}}},
		})
		if sig == "" {
			sig = webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()}).Header
		}
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := deliver("evt_forged", stripeapi.EventTypePaymentIntentSucceeded, "t=1,v1=00"); code != http.StatusBadRequest {
		t.Fatalf("unsigned delivery: %d, want 400", code)
	}
	if o, _ := e.svc.Order(ctx, res.Order.ID); o.Status != bookstore.OrderPendingPayment {
		t.Fatalf("a forged event settled the order: %s", o.Status)
	}
	for range 2 {
		if code := deliver("evt_1", stripeapi.EventTypePaymentIntentSucceeded, ""); code != http.StatusOK {
			t.Fatalf("delivery: %d, want 200", code)
		}
	}
	if code := deliver("evt_2", stripeapi.EventTypePaymentIntentPaymentFailed, ""); code != http.StatusOK {
		t.Fatalf("late failure: %d", code)
	}
	o, err := e.svc.Order(ctx, res.Order.ID)
	if err != nil || o.Status != bookstore.OrderPaid || o.Payment.Brand != "visa" || e.stock(0) != 4 {
		t.Fatalf("after the webhook: %v %+v, stock %d", err, o, e.stock(0))
	}
	if n := e.scalar(`SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND topic = 'order_paid'`, o.ID); n != 1 {
		t.Fatalf("%d order_paid events", n)
	}
}
