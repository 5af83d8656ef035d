package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/server"
)

// The checkout hammers go through the real HTTP handler with many clients at once: what
// they prove is what a shopper sees, plus the money and stock invariants in the database.

// hammerClient keeps enough connections alive for the hammers, so that hundreds of
// requests do not each open (and leave in TIME_WAIT) a connection of their own.
var hammerClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}, Timeout: 2 * time.Minute}

// try is as for goroutines: it returns the failure instead of failing the test.
func (a *api) try(token, query string, vars map[string]any) (gqlResponse, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, a.url+"/graphql", bytes.NewReader(body))
	if err != nil {
		return gqlResponse{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/graphql-response+json, application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hammerClient.Do(req)
	if err != nil {
		return gqlResponse{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return gqlResponse{}, err
	}
	var out gqlResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return gqlResponse{}, fmt.Errorf("response is not JSON (%d): %s", resp.StatusCode, raw)
	}
	out.status = resp.StatusCode
	return out, nil
}

const orderFields = `id number status email
  lines { book { id } title quantity unitPriceCents totalCents }
  cost { subtotalCents discountCents shippingCents taxCents totalCents currency }
  discounts { code amountCents }
  shippingAddress { recipient line1 city country }
  payment { method status brand last4 failureCode }`

type orderOut struct {
	ID, Number, Status, Email string
	Lines                     []struct {
		Book           *struct{ ID string }
		Title          string
		Quantity       int
		UnitPriceCents int64
		TotalCents     int64
	}
	Cost      cartCost
	Discounts []struct {
		Code        string
		AmountCents int64
	}
	ShippingAddress struct{ Recipient, Line1, City, Country string }
	Payment         struct {
		Method, Status, Brand, Last4 string
		FailureCode                  *string
	}
}

type checkoutOut struct {
	Order       *orderOut
	AccessToken *string
	TotalCents  *int64
	UserErrors  []userError
}

const checkoutMutation = `mutation($in: CheckoutInput!) { checkout(input: $in) { order { ` + orderFields + ` }
  accessToken totalCents userErrors { code field message } } }`

// guestInput is a guest checkout of cartID paying with the test PSP token.
func guestInput(cartID, email, token string) map[string]any {
	return map[string]any{
		"cartId": cartID, "idempotencyKey": uuid.NewString(), "email": email,
		"shippingAddress": map[string]any{"recipient": "Gus Guest", "line1": "1 Main Street", "city": "Berlin", "country": "DE"},
		"shippingMethod":  "STANDARD",
		"payment":         map[string]any{"method": "CARD", "token": token},
	}
}

// tryCheckout runs the checkout mutation; any top-level error is an error.
func (a *api) tryCheckout(token string, in map[string]any) (checkoutOut, error) {
	r, err := a.try(token, checkoutMutation, map[string]any{"in": in})
	if err != nil {
		return checkoutOut{}, err
	}
	if len(r.Errors) > 0 || r.status != http.StatusOK {
		return checkoutOut{}, fmt.Errorf("status %d, errors %+v", r.status, r.Errors)
	}
	var out struct{ Checkout checkoutOut }
	if err := json.Unmarshal(r.Data, &out); err != nil {
		return checkoutOut{}, fmt.Errorf("decode %s: %v", r.Data, err)
	}
	return out.Checkout, nil
}

func (a *api) checkout(token string, in map[string]any) checkoutOut {
	a.t.Helper()
	out, err := a.tryCheckout(token, in)
	if err != nil {
		a.t.Fatal(err)
	}
	return out
}

// guestCarts creates n guest carts through the API (16 at a time), the i-th with
// lines(i).
func (a *api) guestCarts(n int, lines func(i int) []map[string]any, codes ...string) []string {
	a.t.Helper()
	ids := make([]string, n)
	in := func(i int) map[string]any {
		m := map[string]any{"lines": lines(i)}
		if codes != nil {
			m["discountCodes"] = codes
		}
		return map[string]any{"in": m}
	}
	var mu sync.Mutex
	var failed []string
	sem := make(chan struct{}, 16)
	hammer(n, func(i int) {
		sem <- struct{}{}
		defer func() { <-sem }()
		r, err := a.try("", `mutation($in: CartCreateInput!) { cartCreate(input: $in) { cart { id } userErrors { code message } } }`, in(i))
		var out struct{ CartCreate cartPayload }
		if err == nil && len(r.Errors) == 0 {
			err = json.Unmarshal(r.Data, &out)
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil || len(r.Errors) > 0:
			failed = append(failed, fmt.Sprintf("cart %d: %v %+v", i, err, r.Errors))
		case out.CartCreate.Cart == nil || len(out.CartCreate.UserErrors) > 0:
			failed = append(failed, fmt.Sprintf("cart %d: %+v", i, out.CartCreate.UserErrors))
		default:
			ids[i] = out.CartCreate.Cart.ID
		}
	})
	if failed != nil {
		a.t.Fatalf("creating carts: %v", failed)
	}
	return ids
}

// newHammerAPI is newAPI for the hammers: the request deadline is long enough for
// hundreds of checkouts queued on one hot stock row under the race detector on two
// cores. The hammers prove invariants; how fast checkouts are is the benchmark's job.
func newHammerAPI(t *testing.T, books int) *api {
	t.Helper()
	return newAPIWith(t, books, func(c *server.Config) {
		c.ResponseTTL = -1
		c.Timeout = 2 * time.Minute
	})
}

// hammer runs fn(0..n-1) on n goroutines released at once.
func hammer(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

func (a *api) queryInt(sql string, args ...any) int64 {
	a.t.Helper()
	var n int64
	if err := a.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		a.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func (a *api) stock(b testBook) int64 {
	a.t.Helper()
	have, err := a.db.Inventory.Stock(context.Background(), []uuid.UUID{b.uuid})
	if err != nil {
		a.t.Fatal(err)
	}
	return have[b.uuid]
}

// ordersByStatus counts the orders in the database by status.
func (a *api) ordersByStatus() map[string]int64 {
	a.t.Helper()
	rows, err := a.db.Pool.Query(context.Background(), `SELECT status, count(*) FROM orders GROUP BY status`)
	if err != nil {
		a.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			a.t.Fatal(err)
		}
		out[s] = n
	}
	if err := rows.Err(); err != nil {
		a.t.Fatal(err)
	}
	return out
}

// checkCharges: every PAID order has exactly one successful charge at the PSP, for its
// total, and no other successful charge exists.
func (a *api) checkCharges() {
	a.t.Helper()
	if n := a.queryInt(`SELECT count(*) FROM test_psp_charges c LEFT JOIN orders o ON o.id::TEXT = c.idempotency_key
		WHERE c.status = 'SUCCEEDED' AND (o.id IS NULL OR o.status <> 'PAID' OR o.total_cents <> c.amount_cents)`); n != 0 {
		a.t.Errorf("%d successful charges without a PAID order of that amount", n)
	}
	if n := a.queryInt(`SELECT count(*) FROM orders o WHERE o.status = 'PAID' AND NOT EXISTS (
		SELECT 1 FROM test_psp_charges c WHERE c.idempotency_key = o.id::TEXT AND c.status = 'SUCCEEDED')`); n != 0 {
		a.t.Errorf("%d PAID orders without a successful charge", n)
	}
}

// TestCheckoutOversellHammer: 500 shoppers race for the last 50 copies of a book. Exactly
// 50 are served and charged once each; everyone else is told OUT_OF_STOCK; nothing else
// (a deadlock, a serialization failure, a timeout) reaches a client.
func TestCheckoutOversellHammer(t *testing.T) {
	const stock, shoppers = 50, 500
	a := newHammerAPI(t, 3)
	b := a.cartBooks(1, stock)[0]
	carts := a.guestCarts(shoppers, func(int) []map[string]any { return []map[string]any{line(b, 1)} })
	movementsBefore := a.queryInt(`SELECT count(*) FROM stock_movements WHERE book_id = $1`, b.uuid)

	var mu sync.Mutex
	paid, out := map[string]bool{}, 0
	began := time.Now()
	defer func() { t.Logf("%d checkouts in %s", shoppers, time.Since(began).Round(time.Millisecond)) }()
	hammer(shoppers, func(i int) {
		res, err := a.tryCheckout("", guestInput(carts[i], fmt.Sprintf("shopper%d@example.com", i), "tok_visa"))
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			t.Errorf("shopper %d: %v", i, err)
		case len(res.UserErrors) == 0 && res.Order != nil && res.Order.Status == "PAID":
			if paid[res.Order.ID] {
				t.Errorf("order %s answered twice", res.Order.ID)
			}
			paid[res.Order.ID] = true
			if res.Order.Payment.Status != "SUCCEEDED" || res.Order.Payment.Brand != "visa" || res.Order.Payment.Last4 != "4242" {
				t.Errorf("paid order's payment: %+v", res.Order.Payment)
			}
		case res.Order == nil && slices.Equal(codes(res.UserErrors), []string{bookstore.CodeOutOfStock}):
			out++
		default:
			t.Errorf("shopper %d: order %+v, userErrors %+v", i, res.Order, res.UserErrors)
		}
	})
	if len(paid) != stock || out != shoppers-stock {
		t.Errorf("%d PAID and %d OUT_OF_STOCK, want %d and %d", len(paid), out, stock, shoppers-stock)
	}
	if got := a.stock(b); got != 0 {
		t.Fatalf("stock %d after selling out, want 0", got)
	}
	if got := a.ordersByStatus(); got["PAID"] != stock || len(got) != 1 {
		t.Fatalf("orders by status: %v, want only %d PAID", got, stock)
	}
	if n := a.queryInt(`SELECT count(*) FROM test_psp_charges WHERE status = 'SUCCEEDED'`); n != stock {
		t.Fatalf("%d charges at the PSP, want %d", n, stock)
	}
	a.checkCharges()
	// The ledger: one -1 per order (no duplicate, no movement of a rolled-back attempt)
	// and the book's whole ledger still sums to its stock.
	if n := a.queryInt(`SELECT count(DISTINCT ref) FROM stock_movements WHERE book_id = $1 AND delta = -1 AND ref IN (SELECT id FROM orders)`, b.uuid); n != stock {
		t.Fatalf("%d orders in the stock ledger, want %d", n, stock)
	}
	if n := a.queryInt(`SELECT count(*) FROM stock_movements WHERE book_id = $1`, b.uuid) - movementsBefore; n != stock {
		t.Fatalf("%d stock movements by the checkouts, want %d", n, stock)
	}
	if sum := a.queryInt(`SELECT COALESCE(sum(delta), 0) FROM stock_movements WHERE book_id = $1 AND ref IS NOT NULL`, b.uuid); sum != -stock {
		t.Fatalf("the checkouts' ledger sums to %d, want %d", sum, -stock)
	}
	if sum := a.queryInt(`SELECT COALESCE(sum(delta), 0) FROM stock_movements WHERE book_id = $1`, b.uuid); sum != 0 {
		t.Fatalf("the book's ledger sums to %d, its stock is 0", sum)
	}
}

// TestCheckoutMixedCartsHammer: overlapping carts of 2-3 books with several copies each
// race for small stocks. Locks are taken in one order, so no deadlock (and no retry
// exhaustion) reaches a client; every book's units are either sold in a PAID order or
// still in stock; every paid order is charged once.
func TestCheckoutMixedCartsHammer(t *testing.T) {
	const shoppers = 300
	a := newHammerAPI(t, 10)
	initial := []int64{12, 7, 20, 5, 15, 9, 30, 11}
	bs := a.cartBooks(len(initial), 40) // carts are filled first: no cap at cart time
	carts := a.guestCarts(shoppers, func(i int) []map[string]any {
		// Deterministic overlapping picks: 2 or 3 distinct books, 1-3 copies, in any order.
		n := 2 + i%2
		var ls []map[string]any
		for j := range n {
			ls = append(ls, line(bs[(i*3+j*(1+i%5))%len(bs)], 1+(i+j)%3))
		}
		return ls
	})
	for i, b := range bs {
		a.setStock(b, initial[i])
	}
	var mu sync.Mutex
	paid := 0
	hammer(shoppers, func(i int) {
		res, err := a.tryCheckout("", guestInput(carts[i], fmt.Sprintf("mixed%d@example.com", i), "tok_mastercard"))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Errorf("shopper %d: %v", i, err)
			return
		}
		if res.Order != nil {
			if res.Order.Status != "PAID" || len(res.UserErrors) > 0 {
				t.Errorf("shopper %d: order %s %s, %+v", i, res.Order.ID, res.Order.Status, res.UserErrors)
			}
			paid++
			return
		}
		if len(res.UserErrors) == 0 {
			t.Errorf("shopper %d: neither an order nor a userError", i)
		}
		for _, u := range res.UserErrors {
			if u.Code != bookstore.CodeOutOfStock && u.Code != bookstore.CodeInsufficientStock {
				t.Errorf("shopper %d: %+v", i, u)
			}
		}
	})
	if paid == 0 || paid == shoppers {
		t.Fatalf("%d of %d checkouts paid: the stocks do not make the shoppers compete", paid, shoppers)
	}
	if got := a.ordersByStatus(); got["PAID"] != int64(paid) || len(got) != 1 {
		t.Fatalf("orders by status: %v, want only %d PAID", got, paid)
	}
	sold := 0
	for i, b := range bs {
		left := a.stock(b)
		units := a.queryInt(`SELECT COALESCE(sum(l.quantity), 0) FROM order_lines l JOIN orders o ON o.id = l.order_id
			WHERE o.status = 'PAID' AND l.book_id = $1`, b.uuid)
		if left < 0 || units+left != initial[i] {
			t.Errorf("book %d: %d sold + %d left, started with %d", i, units, left, initial[i])
		}
		if ledger := a.queryInt(`SELECT COALESCE(sum(delta), 0) FROM stock_movements WHERE book_id = $1`, b.uuid); ledger != left {
			t.Errorf("book %d: ledger sums to %d, stock is %d", i, ledger, left)
		}
		sold += int(units)
	}
	if n := a.queryInt(`SELECT count(*) FROM test_psp_charges WHERE status = 'SUCCEEDED'`); n != int64(paid) {
		t.Fatalf("%d charges for %d paid orders", n, paid)
	}
	a.checkCharges()
	t.Logf("%d of %d checkouts paid, %d units sold", paid, shoppers, sold)
}

// TestCheckoutPromotionUsageLimitHammer: 200 shoppers with a code limited to 10 uses
// check out at once. Exactly 10 orders carry the discount; the others are refused with
// DISCOUNT_NOT_APPLICABLE and take no stock; the promotion counts 10 uses.
func TestCheckoutPromotionUsageLimitHammer(t *testing.T) {
	const uses, shoppers, initial = 10, 200, 1000
	a := newHammerAPI(t, 3)
	limit := int64(uses)
	promo := &bookstore.Promotion{Code: "FIRST10", Kind: bookstore.DiscountPercent, Value: 20, UsageLimit: &limit, Active: true}
	if err := a.db.Promotions.Create(context.Background(), promo); err != nil {
		t.Fatal(err)
	}
	b := a.cartBooks(1, initial)[0]
	carts := a.guestCarts(shoppers, func(int) []map[string]any { return []map[string]any{line(b, 1)} }, "FIRST10")
	var mu sync.Mutex
	discounted, refused := 0, 0
	hammer(shoppers, func(i int) {
		res, err := a.tryCheckout("", guestInput(carts[i], fmt.Sprintf("promo%d@example.com", i), "tok_visa"))
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			t.Errorf("shopper %d: %v", i, err)
		case res.Order != nil && len(res.UserErrors) == 0 && res.Order.Status == "PAID":
			o := res.Order
			want := b.PriceCents * 20 / 100
			if len(o.Discounts) != 1 || o.Discounts[0].Code != "FIRST10" || o.Discounts[0].AmountCents != want || o.Cost.DiscountCents != want {
				t.Errorf("paid order %s: discounts %+v, cost %+v; want %d off", o.ID, o.Discounts, o.Cost, want)
			}
			discounted++
		case res.Order == nil && slices.Equal(codes(res.UserErrors), []string{bookstore.CodeDiscountNotApplicable}):
			refused++
		default:
			t.Errorf("shopper %d: order %+v, userErrors %+v", i, res.Order, res.UserErrors)
		}
	})
	if discounted != uses || refused != shoppers-uses {
		t.Errorf("%d discounted orders and %d refusals, want %d and %d", discounted, refused, uses, shoppers-uses)
	}
	if got := a.ordersByStatus(); got["PAID"] != uses || len(got) != 1 {
		t.Errorf("orders by status: %v, want only %d PAID", got, uses)
	}
	if n := a.queryInt(`SELECT count(*) FROM order_discounts WHERE promotion_id = $1`, promo.ID); n != uses {
		t.Errorf("%d orders hold the discount, want %d", n, uses)
	}
	p, err := a.db.Promotions.ByID(context.Background(), promo.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Used != uses {
		t.Errorf("promotion used %d times, want %d", p.Used, uses)
	}
	if got := a.stock(b); got != initial-uses {
		t.Errorf("stock %d, want %d: the refused checkouts took stock", got, initial-uses)
	}
	a.checkCharges()
}

// TestCheckoutPaymentFailureThroughHTTP: each failing test token fails the order with its
// code, gives the stock and the promotion use back and leaves the cart as it was; then a
// retry with a new key and a good token on the same cart is paid, and the cart is gone.
func TestCheckoutPaymentFailureThroughHTTP(t *testing.T) {
	a := newAPI(t, 5)
	limit := int64(1) // one use: a use not given back would refuse the retry
	promo := &bookstore.Promotion{Code: "ONCE", Kind: bookstore.DiscountFixed, Value: 300, UsageLimit: &limit, Active: true}
	if err := a.db.Promotions.Create(context.Background(), promo); err != nil {
		t.Fatal(err)
	}
	bs := a.cartBooks(2, 5)
	c := a.createCart("", []map[string]any{line(bs[0], 2), line(bs[1], 1)}, "ONCE").Cart
	before, _ := a.readCart("", c.ID)
	for token, want := range map[string]string{
		"tok_chargeDeclined":                  bookstore.CodePaymentDeclined,
		"tok_chargeDeclinedInsufficientFunds": bookstore.CodeInsufficientFunds,
		"tok_chargeDeclinedProcessingError":   bookstore.CodePaymentError,
	} {
		res := a.checkout("", guestInput(c.ID, "decline@example.com", token))
		if res.Order == nil || res.Order.Status != "PAYMENT_FAILED" || !slices.Equal(codes(res.UserErrors), []string{want}) {
			t.Fatalf("%s: order %+v, userErrors %+v; want PAYMENT_FAILED with %s", token, res.Order, res.UserErrors, want)
		}
		if p := res.Order.Payment; p.Status != "FAILED" || p.FailureCode == nil || *p.FailureCode != want {
			t.Errorf("%s: payment %+v", token, p)
		}
		if s0, s1 := a.stock(bs[0]), a.stock(bs[1]); s0 != 5 || s1 != 5 {
			t.Errorf("%s: stock %d and %d after the failure, want 5 and 5", token, s0, s1)
		}
		if p, err := a.db.Promotions.ByID(context.Background(), promo.ID); err != nil || p.Used != 0 {
			t.Errorf("%s: promotion used %d times after the failure (%v)", token, p.Used, err)
		}
		after, code := a.readCart("", c.ID)
		if after == nil || code != "" {
			t.Fatalf("%s: the cart is gone after a failed payment (%s)", token, code)
		}
		if after.TotalQuantity != before.TotalQuantity || after.qty(bs[0].ID) != 2 || after.qty(bs[1].ID) != 1 ||
			len(after.DiscountCodes) != 1 || !after.DiscountCodes[0].Applicable || after.Cost != before.Cost {
			t.Fatalf("%s: the cart changed: %+v, was %+v", token, after, before)
		}
	}
	if n := a.queryInt(`SELECT count(*) FROM test_psp_charges WHERE status = 'SUCCEEDED'`); n != 0 {
		t.Fatalf("%d successful charges after failures", n)
	}

	res := a.checkout("", guestInput(c.ID, "decline@example.com", "tok_visa"))
	if res.Order == nil || res.Order.Status != "PAID" || len(res.UserErrors) > 0 {
		t.Fatalf("retry: order %+v, userErrors %+v", res.Order, res.UserErrors)
	}
	if res.Order.Cost.DiscountCents != 300 || res.Order.Cost.SubtotalCents != before.Cost.SubtotalCents {
		t.Errorf("retry cost %+v, cart cost was %+v", res.Order.Cost, before.Cost)
	}
	if s0, s1 := a.stock(bs[0]), a.stock(bs[1]); s0 != 3 || s1 != 4 {
		t.Errorf("stock %d and %d after the paid retry, want 3 and 4", s0, s1)
	}
	if p, err := a.db.Promotions.ByID(context.Background(), promo.ID); err != nil || p.Used != 1 {
		t.Errorf("promotion used %d times after the paid retry (%v)", p.Used, err)
	}
	if got, code := a.readCart("", c.ID); got != nil || code != bookstore.CodeNotFound {
		t.Fatalf("the paid cart is still readable: %+v %s", got, code)
	}
	again := a.checkout("", guestInput(c.ID, "decline@example.com", "tok_visa"))
	if again.Order != nil || !slices.Equal(codes(again.UserErrors), []string{bookstore.CodeCartNotFound}) {
		t.Fatalf("checking out the paid cart again: %+v", again)
	}
	if got := a.ordersByStatus(); got["PAID"] != 1 || got["PAYMENT_FAILED"] != 3 || len(got) != 2 {
		t.Fatalf("orders by status: %v", got)
	}
	a.checkCharges()
}

// TestCheckoutPriceChanged: the shopper saw one total, an admin changed a price since;
// a checkout with the old expectedTotalCents places nothing, charges nothing, moves no
// stock, and answers PRICE_CHANGED with the total the order would cost now.
func TestCheckoutPriceChanged(t *testing.T) {
	a := newAPI(t, 5)
	admin, _, err := a.tokens.Issue(adminIdentity())
	if err != nil {
		t.Fatal(err)
	}
	b := a.cartBooks(1, 10)[0]
	c := a.createCart("", []map[string]any{line(b, 2)}).Cart
	var shown struct {
		Cart struct{ Cost cartCost }
	}
	a.ok(`query($id: ID!) { cart(id: $id) { cost(shippingMethod: "STANDARD", country: "DE") { totalCents } } }`, map[string]any{"id": c.ID}, &shown)
	old := shown.Cart.Cost.TotalCents
	var price struct {
		SetBookPrice struct {
			Book       *struct{ PriceCents int64 }
			UserErrors []userError
		}
	}
	a.mustAsVars(admin, `mutation($id: ID!, $p: Int!) { setBookPrice(bookId: $id, priceCents: $p) { book { priceCents } userErrors { code } } }`,
		map[string]any{"id": b.ID, "p": b.PriceCents + 250}, &price)
	if price.SetBookPrice.Book == nil || price.SetBookPrice.Book.PriceCents != b.PriceCents+250 {
		t.Fatalf("setBookPrice: %+v", price.SetBookPrice)
	}

	in := guestInput(c.ID, "late@example.com", "tok_visa")
	in["expectedTotalCents"] = old
	res := a.checkout("", in)
	if res.Order != nil || !slices.Equal(codes(res.UserErrors), []string{bookstore.CodePriceChanged}) || res.TotalCents == nil {
		t.Fatalf("checkout at the old total: %+v", res)
	}
	if *res.TotalCents <= old {
		t.Fatalf("new total %d, old %d: two copies went up 250 cents each", *res.TotalCents, old)
	}
	if n := a.queryInt(`SELECT count(*) FROM orders`); n != 0 {
		t.Fatalf("%d orders after PRICE_CHANGED", n)
	}
	if n := a.queryInt(`SELECT count(*) FROM test_psp_charges`); n != 0 {
		t.Fatalf("%d charges after PRICE_CHANGED", n)
	}
	if got := a.stock(b); got != 10 {
		t.Fatalf("stock %d after PRICE_CHANGED, want 10", got)
	}

	// Confirming the new total (a new key: the request differs) places the order at it.
	in = guestInput(c.ID, "late@example.com", "tok_visa")
	in["expectedTotalCents"] = *res.TotalCents
	ok := a.checkout("", in)
	if ok.Order == nil || ok.Order.Status != "PAID" || ok.Order.Cost.TotalCents != *res.TotalCents || ok.Order.Lines[0].UnitPriceCents != b.PriceCents+250 {
		t.Fatalf("checkout at the new total %d: %+v", *res.TotalCents, ok)
	}
	if got := a.stock(b); got != 8 {
		t.Fatalf("stock %d after the paid order, want 8", got)
	}
}

// TestCheckoutIdempotencyRaceThroughHTTP: a client retrying one checkout 20 times at
// once (same key, same request) gets one order and one charge, every answer naming it;
// the key with another request is refused.
func TestCheckoutIdempotencyRaceThroughHTTP(t *testing.T) {
	const racers = 20
	a := newHammerAPI(t, 3)
	b := a.cartBooks(1, 10)[0]
	c := a.createCart("", []map[string]any{line(b, 1)}).Cart
	in := guestInput(c.ID, "twice@example.com", "tok_visa")
	var mu sync.Mutex
	ids := map[string]int{}
	tokens := map[string]bool{}
	hammer(racers, func(i int) {
		res, err := a.tryCheckout("", in)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			t.Errorf("racer %d: %v", i, err)
		case res.Order == nil || len(res.UserErrors) > 0 || res.AccessToken == nil:
			t.Errorf("racer %d: %+v", i, res)
		case res.Order.Status != "PAID" && res.Order.Status != "PENDING_PAYMENT":
			t.Errorf("racer %d: order %s is %s", i, res.Order.ID, res.Order.Status)
		default:
			ids[res.Order.ID]++
			tokens[*res.AccessToken] = true
		}
	})
	if len(ids) != 1 || len(tokens) != 1 {
		t.Fatalf("orders answered: %v (%d access tokens), want one order", ids, len(tokens))
	}
	if got := a.ordersByStatus(); got["PAID"] != 1 || len(got) != 1 {
		t.Fatalf("orders by status: %v, want one PAID", got)
	}
	if n := a.queryInt(`SELECT count(*) FROM test_psp_charges`); n != 1 {
		t.Fatalf("%d charges, want 1", n)
	}
	a.checkCharges()
	if got := a.stock(b); got != 9 {
		t.Fatalf("stock %d, want 9", got)
	}
	other := guestInput(c.ID, "twice@example.com", "tok_visa")
	other["idempotencyKey"] = in["idempotencyKey"]
	other["shippingAddress"] = map[string]any{"recipient": "Gus Guest", "line1": "2 Other Street", "city": "Hamburg", "country": "DE"}
	res := a.checkout("", other)
	if res.Order != nil || !slices.Equal(codes(res.UserErrors), []string{bookstore.CodeIdempotencyKeyReused}) {
		t.Fatalf("the key with another address: %+v", res)
	}
	if n := a.queryInt(`SELECT count(*) FROM orders`); n != 1 {
		t.Fatalf("%d orders after the reused key", n)
	}
}

// TestOrderAuthorization: an order is visible to its customer, and to a guest presenting
// its email and access token; to anyone else it is null with NOT_FOUND, exactly like an
// order that does not exist, through order(id:) and node(id:) alike.
func TestOrderAuthorization(t *testing.T) {
	a := newAPI(t, 5)
	bs := a.cartBooks(2, 10)
	ann := a.register("ann@example.com", "Ann")
	bob := a.register("bob@example.com", "Bob")

	mine := a.createCart(ann.AccessToken, []map[string]any{line(bs[0], 1)}).Cart
	in := guestInput(mine.ID, "", "tok_visa")
	delete(in, "email") // the account's email
	annOrder := a.checkout(ann.AccessToken, in)
	if annOrder.Order == nil || annOrder.Order.Status != "PAID" || annOrder.Order.Email != "ann@example.com" {
		t.Fatalf("ann's checkout: %+v", annOrder)
	}
	gc := a.createCart("", []map[string]any{line(bs[1], 1)}).Cart
	guest := a.checkout("", guestInput(gc.ID, "Gus@Example.com", "tok_visa"))
	if guest.Order == nil || guest.Order.Status != "PAID" || guest.AccessToken == nil {
		t.Fatalf("guest checkout: %+v", guest)
	}
	unknown := base64.RawURLEncoding.EncodeToString([]byte("Order:" + uuid.NewString()))

	const byID = `query($id: ID!, $e: String, $t: String) { order(id: $id, email: $e, accessToken: $t) { id number status email } }`
	const byNode = `query($id: ID!) { node(id: $id) { id ... on Order { number email } } }`
	read := func(token, q, id string, vars map[string]any) (json.RawMessage, string) {
		t.Helper()
		v := map[string]any{"id": id}
		for k, x := range vars {
			v[k] = x
		}
		r := a.as(token, q, v)
		var out map[string]json.RawMessage
		if err := json.Unmarshal(r.Data, &out); err != nil {
			t.Fatalf("decode %s: %v", r.Data, err)
		}
		for _, x := range out {
			return x, code(r)
		}
		return nil, code(r)
	}
	hidden := func(name, token, q, id string, vars map[string]any) {
		t.Helper()
		got, c := read(token, q, id, vars)
		if string(got) != "null" || c != bookstore.CodeNotFound {
			t.Errorf("%s: %s %s, want null with NOT_FOUND", name, got, c)
		}
	}
	visible := func(name, token, q, id string, vars map[string]any) {
		t.Helper()
		got, c := read(token, q, id, vars)
		var o struct{ ID, Email string }
		if err := json.Unmarshal(got, &o); err != nil || c != "" || o.ID != id {
			t.Errorf("%s: %s %s, want the order", name, got, c)
		}
	}

	ao, gt := annOrder.Order.ID, *guest.AccessToken
	gid := guest.Order.ID
	visible("ann reads her order", ann.AccessToken, byID, ao, nil)
	visible("ann reads her order by node", ann.AccessToken, byNode, ao, nil)
	visible("the guest with email and token", "", byID, gid, map[string]any{"e": "gus@example.com", "t": gt})
	for _, c := range []struct {
		name, token, q, id string
		vars               map[string]any
	}{
		{"bob reads ann's order", bob.AccessToken, byID, ao, nil},
		{"bob reads ann's order by node", bob.AccessToken, byNode, ao, nil},
		{"anonymous reads ann's order", "", byID, ao, nil},
		{"anonymous reads ann's order by node", "", byNode, ao, nil},
		{"ann's order with the email and another order's token", "", byID, ao, map[string]any{"e": "ann@example.com", "t": gt}},
		{"the guest's order with a wrong email", "", byID, gid, map[string]any{"e": "bob@example.com", "t": gt}},
		{"the guest's order with a wrong token", "", byID, gid, map[string]any{"e": "gus@example.com", "t": gt + "x"}},
		{"the guest's order with the email only", "", byID, gid, map[string]any{"e": "gus@example.com"}},
		{"the guest's order by node, even with a session", ann.AccessToken, byNode, gid, nil},
		{"anonymous reads the guest's order by node", "", byNode, gid, nil},
		{"an order that does not exist", ann.AccessToken, byID, unknown, nil},
		{"an order that does not exist by node", ann.AccessToken, byNode, unknown, nil},
		{"an order that does not exist with a token", "", byID, unknown, map[string]any{"e": "gus@example.com", "t": gt}},
	} {
		hidden(c.name, c.token, c.q, c.id, c.vars)
	}
}

// TestCheckoutRoundTrips counts the round trips and SQL statements of one guest checkout
// through the API (the whole request: key lookup, cart, tx 1, PSP ledger, tx 2, cart
// deletion and the response's books), BEGIN and COMMIT included as pgx sends them; a
// pipelined batch is one round trip of several statements. It guards both against
// growth: every round trip holds a pooled connection inside a transaction, and every
// statement is work for the database, that each checkout pays under load.
func TestCheckoutRoundTrips(t *testing.T) {
	a := newAPI(t, 5)
	seedCodes(t, a.db)
	bs := a.cartBooks(3, 1000)
	type count struct{ trips, stmts int64 }
	trips := func(n int, codes ...string) count {
		t.Helper()
		var ls []map[string]any
		for _, b := range bs[:n] {
			ls = append(ls, line(b, 1))
		}
		c := a.createCart("", ls, codes...).Cart
		trips, stmts := a.queries.n.Load(), a.queries.stmts.Load()
		res := a.checkout("", guestInput(c.ID, "count@example.com", "tok_visa"))
		if res.Order == nil || res.Order.Status != "PAID" || (codes != nil) != (res.Order.Cost.DiscountCents > 0) {
			t.Fatalf("checkout with codes %v: %+v", codes, res)
		}
		return count{a.queries.n.Load() - trips, a.queries.stmts.Load() - stmts}
	}
	one, three, coded := trips(1), trips(3), trips(3, "WELCOME10")
	t.Logf("round trips (statements) per checkout: %d (%d) with 1 book, %d (%d) with 3 books, %d (%d) with 3 books and a discount code",
		one.trips, one.stmts, three.trips, three.stmts, coded.trips, coded.stmts)
	// Tx 1 pipelines the order, its lines, event, outbox row, key and every book's stock
	// update with its ledger row; the settlement is one statement. More
	// books add statements to the pipeline, not round trips.
	if three.trips != one.trips {
		t.Errorf("%d round trips for 3 books, %d for 1: the stock updates are not pipelined", three.trips, one.trips)
	}
	if three.stmts-one.stmts > 2 {
		t.Errorf("%d statements for 3 books, %d for 1: more than one per extra book", three.stmts, one.stmts)
	}
	// 7 round trips and 16 statements today (9 and 17 when the key was looked up before
	// tx 1 and the paid cart deleted after the settlement; 10 when BEGIN was a round trip
	// of its own, 13 and 21 when tx 2 was a locked transaction, 22 of each before the
	// pipelines): the cart, tx 1 (BEGIN with the key, the books and the transaction's
	// time; the pipelined writes; COMMIT), the PSP's ledger, the settlement (one
	// statement: the order, its event and outbox row, the cart's deletion) and the
	// response's books.
	if one.trips > 7 || one.stmts > 16 {
		t.Errorf("%d round trips and %d statements for a one-book checkout", one.trips, one.stmts)
	}
	// A response that does not ask for the lines' books does not read them (a fragment
	// that does, does).
	for _, c := range []struct {
		selection string
		want      int64
	}{
		{`order { id status lines { quantity } } userErrors { code }`, one.trips - 1},
		{`...on CheckoutPayload { order { ...L } } userErrors { code }`, one.trips},
	} {
		cart := a.createCart("", []map[string]any{line(bs[0], 1)}).Cart
		before := a.queries.n.Load()
		doc := `mutation($in: CheckoutInput!) { checkout(input: $in) { ` + c.selection + ` } }`
		if strings.Contains(c.selection, "...L") {
			doc += ` fragment L on Order { lines { book { title } } }`
		}
		r := a.as("", doc, map[string]any{"in": guestInput(cart.ID, "count@example.com", "tok_visa")})
		if len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"status"`) && !strings.Contains(string(r.Data), `"title"`) {
			t.Fatalf("checkout selecting %s: %s %+v", c.selection, r.Data, r.Errors)
		}
		if got := a.queries.n.Load() - before; got != c.want {
			t.Errorf("checkout selecting %s: %d round trips, want %d", c.selection, got, c.want)
		}
	}
}

// TestCheckoutUUIDKeysAreNotCards: the schema tells clients to send a UUID as the
// idempotency key. About one random UUID in 1,400 has leading hex groups that are all
// digits and, read as "6208 8322 3099 4413", pass the Luhn check: the card guard must not
// refuse those checkouts as carrying a card number.
func TestCheckoutUUIDKeysAreNotCards(t *testing.T) {
	a := newAPI(t, 3)
	b := a.cartBooks(1, 10)[0]
	// Two UUIDs, and keys made from Unix times in ms and ns that pass Luhn (found by a
	// black-box test: one such key in ten was refused as a card).
	for _, key := range []string{"62088322-3099-4413-b3c7-de4e9337d680", "85e6c430-5734-4405-8255-e0e8c00a5fd5",
		"cart-1796227229491", "smoke-1796227224279358092-1"} {
		c := a.createCart("", []map[string]any{line(b, 1)}).Cart
		in := guestInput(c.ID, "uuid@example.com", "tok_visa")
		in["idempotencyKey"] = key
		res := a.checkout("", in)
		if res.Order == nil || res.Order.Status != "PAID" {
			t.Errorf("key %s: %+v", key, res)
		}
	}
	// A card number is still refused in the key, and in a UUID-shaped search that is not one.
	c := a.createCart("", []map[string]any{line(b, 1)}).Cart
	in := guestInput(c.ID, "uuid@example.com", "tok_visa")
	in["idempotencyKey"] = "4111 1111 1111 1111"
	if r := a.as("", checkoutMutation, map[string]any{"in": in}); code(r) != bookstore.CodeBadUserInput {
		t.Errorf("a card number as the key: %s %+v", r.Data, r.Errors)
	}
	if r := a.as("", `query($q: String!) { search(query: $q) { totalCount } }`, map[string]any{"q": "62088322-3099-4413-b3c7"}); code(r) != bookstore.CodeBadUserInput {
		t.Errorf("a card number in a UUID-like search: %s %+v", r.Data, r.Errors)
	}
}

// TestCheckoutAnswersTheStockItLeft: the request's loaders may hold a book's stock from an
// earlier field of the same request (the book loader reads it with the book); the
// checkout's answer shows the stock after its decrement, not that (found in review).
func TestCheckoutAnswersTheStockItLeft(t *testing.T) {
	a := newAPI(t, 3)
	b := a.cartBooks(1, 10)[0]
	other := a.createCart("", []map[string]any{line(b, 1)}).Cart
	c := a.createCart("", []map[string]any{line(b, 3)}).Cart
	r := a.as("", `mutation($other: ID!, $l: [CartLineInput!]!, $in: CheckoutInput!) {
		cartLinesAdd(cartId: $other, lines: $l) { cart { lines { book { title availability { quantity } } } } }
		checkout(input: $in) { order { status lines { book { availability { quantity } } } } userErrors { code } } }`,
		map[string]any{"other": other.ID, "l": []map[string]any{line(b, 1)}, "in": guestInput(c.ID, "stock@example.com", "tok_visa")})
	if len(r.Errors) > 0 {
		t.Fatalf("%+v", r.Errors)
	}
	var out struct {
		Checkout struct {
			Order struct {
				Status string
				Lines  []struct {
					Book struct{ Availability struct{ Quantity int } }
				}
			}
		}
	}
	if err := json.Unmarshal(r.Data, &out); err != nil || out.Checkout.Order.Status != "PAID" || len(out.Checkout.Order.Lines) != 1 {
		t.Fatalf("%s: %v", r.Data, err)
	}
	if q := out.Checkout.Order.Lines[0].Book.Availability.Quantity; q != 7 {
		t.Fatalf("the checkout's answer shows %d copies left, want 7 (10 - 3)", q)
	}
}
