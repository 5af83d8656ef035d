package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/cart"
	cartredis "github.com/shopfront/bookstore/cart/redis"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/server"
	"github.com/shopfront/bookstore/store"
)

// cartStores runs fn on an API whose carts live in the database and on one whose carts
// live in Redis: the API behaves the same on both.
func cartStores(t *testing.T, books int, fn func(t *testing.T, a *api)) {
	cartStoresWith(t, books, func(c *server.Config) { c.ResponseTTL = -1 }, fn)
}

// cartStoresWith is cartStores with the configuration changed by mod first.
func cartStoresWith(t *testing.T, books int, mod func(*server.Config), fn func(t *testing.T, a *api)) {
	for _, name := range []string{"postgres", "redis"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := newAPIWith(t, books, func(c *server.Config) {
				mod(c)
				st := cart.Store(c.DB.Carts)
				if name == "redis" {
					st = cartredis.New(testdb.Redis(t), "test:"+cart.NewID()[:12]+":")
				}
				c.Carts = cart.New(cart.Config{Store: st, Tax: bookstore.TaxRates{"DE": 1900}})
			})
			seedCodes(t, a.db)
			fn(t, a)
		})
	}
}

func seedCodes(t *testing.T, db *store.DB) {
	t.Helper()
	ten := int64(10)
	past := time.Now().AddDate(0, -1, 0)
	for _, p := range []bookstore.Promotion{
		{Code: "WELCOME10", Kind: bookstore.DiscountPercent, Value: 10, Active: true},
		{Code: "BOOKWORM5", Kind: bookstore.DiscountFixed, Value: 500, MinSubtotalCents: 3000, Active: true},
		{Code: "EXPIRED", Kind: bookstore.DiscountPercent, Value: 20, EndsAt: &past, Active: true},
		{Code: "USEDUP", Kind: bookstore.DiscountPercent, Value: 15, UsageLimit: &ten, Used: 10, Active: true},
		{Code: "STACK2", Kind: bookstore.DiscountFixed, Value: 200, Combinable: true, Active: true},
		{Code: "STACK3", Kind: bookstore.DiscountFixed, Value: 300, Combinable: true, Active: true},
	} {
		if err := db.Promotions.Ensure(context.Background(), &p); err != nil {
			t.Fatal(err)
		}
	}
}

type testBook struct {
	ID         string
	PriceCents int64
	uuid       uuid.UUID
}

// books returns n books of the catalog with their stock set to stock.
func (a *api) cartBooks(n int, stock int64) []testBook {
	a.t.Helper()
	var out struct {
		Books struct{ Edges []struct{ Node testBook } }
	}
	a.ok(`query($n: Int!) { books(first: $n, sort: TITLE) { edges { node { id priceCents } } } }`, map[string]any{"n": n}, &out)
	var bs []testBook
	for _, e := range out.Books.Edges {
		b := e.Node
		raw, _ := base64.RawURLEncoding.DecodeString(b.ID)
		b.uuid = uuid.MustParse(strings.TrimPrefix(string(raw), "Book:"))
		a.setStock(b, stock)
		bs = append(bs, b)
	}
	if len(bs) != n {
		a.t.Fatalf("%d books, want %d", len(bs), n)
	}
	return bs
}

func (a *api) setStock(b testBook, n int64) {
	a.t.Helper()
	ctx := context.Background()
	have, err := a.db.Inventory.Stock(ctx, []uuid.UUID{b.uuid})
	if err != nil {
		a.t.Fatal(err)
	}
	if _, err := a.db.Inventory.SetStock(ctx, b.uuid, n, have[b.uuid], "test", nil); err != nil {
		a.t.Fatal(err)
	}
}

const cartFields = `id totalQuantity updatedAt expiresAt
  lines { book { id title } quantity unitPriceCents totalCents availability { quantity } }
  cost { subtotalCents discountCents shippingCents taxCents totalCents currency }
  discountCodes { code applicable message discountCents }
  availableShippingMethods { code name priceCents estimatedDays }
  warnings { code message book { id } }`

type cartLine struct {
	Book struct {
		ID    string
		Title string
	}
	Quantity       int
	UnitPriceCents int64
	TotalCents     int64
	Availability   struct{ Quantity int64 }
}

type cartCost struct {
	SubtotalCents, DiscountCents, ShippingCents, TaxCents, TotalCents int64
	Currency                                                          string
}

type cartOut struct {
	ID            string
	TotalQuantity int
	UpdatedAt     time.Time
	ExpiresAt     time.Time
	Lines         []cartLine
	Cost          cartCost
	DiscountCodes []struct {
		Code          string
		Applicable    bool
		Message       string
		DiscountCents int64
	}
	AvailableShippingMethods []struct {
		Code       string
		PriceCents int64
	}
	Warnings []struct{ Code, Message string }
}

func (c *cartOut) qty(bookID string) int {
	for _, l := range c.Lines {
		if l.Book.ID == bookID {
			return l.Quantity
		}
	}
	return 0
}

type userError struct {
	Code    string
	Field   []string
	Message string
}

type cartPayload struct {
	Cart       *cartOut
	UserErrors []userError
}

func codes(ues []userError) []string {
	var out []string
	for _, u := range ues {
		out = append(out, u.Code)
	}
	return out
}

func line(b testBook, q int) map[string]any { return map[string]any{"bookId": b.ID, "quantity": q} }

// cartMut runs a cart mutation (one top-level field) and returns its payload.
func (a *api) cartMut(token, query string, vars map[string]any) cartPayload {
	a.t.Helper()
	r := a.as(token, query, vars)
	if len(r.Errors) > 0 {
		a.t.Fatalf("errors: %+v", r.Errors)
	}
	var m map[string]cartPayload
	if err := json.Unmarshal(r.Data, &m); err != nil || len(m) != 1 {
		a.t.Fatalf("decode %s: %v", r.Data, err)
	}
	for _, p := range m {
		return p
	}
	return cartPayload{}
}

func (a *api) createCart(token string, lines []map[string]any, codes ...string) cartPayload {
	a.t.Helper()
	in := map[string]any{"lines": lines}
	if codes != nil {
		in["discountCodes"] = codes
	}
	return a.cartMut(token, `mutation($in: CartCreateInput!) { cartCreate(input: $in) { cart { `+cartFields+` } userErrors { code field message } } }`,
		map[string]any{"in": in})
}

func (a *api) addLines(token, id string, lines ...map[string]any) cartPayload {
	a.t.Helper()
	return a.cartMut(token, `mutation($id: ID!, $l: [CartLineInput!]!) { cartLinesAdd(cartId: $id, lines: $l) { cart { `+cartFields+` } userErrors { code field message } } }`,
		map[string]any{"id": id, "l": lines})
}

func (a *api) updateLines(token, id string, lines ...map[string]any) cartPayload {
	a.t.Helper()
	return a.cartMut(token, `mutation($id: ID!, $l: [CartLineInput!]!) { cartLinesUpdate(cartId: $id, lines: $l) { cart { `+cartFields+` } userErrors { code field message } } }`,
		map[string]any{"id": id, "l": lines})
}

func (a *api) setCodes(token, id string, codes ...string) cartPayload {
	a.t.Helper()
	return a.cartMut(token, `mutation($id: ID!, $c: [String!]!) { cartDiscountCodesUpdate(cartId: $id, codes: $c) { cart { `+cartFields+` } userErrors { code field message } } }`,
		map[string]any{"id": id, "c": codes})
}

// readCart reads cart(id:) as token; nil and the error code when it is not visible.
func (a *api) readCart(token, id string) (*cartOut, string) {
	a.t.Helper()
	r := a.as(token, `query($id: ID!) { cart(id: $id) { `+cartFields+` } }`, map[string]any{"id": id})
	var out struct{ Cart *cartOut }
	if err := json.Unmarshal(r.Data, &out); err != nil {
		a.t.Fatalf("decode %s: %v", r.Data, err)
	}
	return out.Cart, code(r)
}

func (a *api) myCart(token string) *cartOut {
	a.t.Helper()
	var out struct{ Me struct{ Cart *cartOut } }
	a.mustAs(token, `{ me { cart { `+cartFields+` } } }`, &out)
	return out.Me.Cart
}

func TestCartLifecycle(t *testing.T) {
	cartStores(t, 20, func(t *testing.T, a *api) {
		bs := a.cartBooks(4, 5)
		b1, b2, b3, b4 := bs[0], bs[1], bs[2], bs[3]

		// Create a guest cart; codes are case-insensitive.
		p := a.createCart("", []map[string]any{line(b1, 2)}, "welcome10")
		c := p.Cart
		if len(p.UserErrors) != 0 || c == nil {
			t.Fatalf("create: %+v", p)
		}
		if raw, err := base64.RawURLEncoding.DecodeString(c.ID); err != nil || len(raw) < 16 {
			t.Fatalf("cart id %q is not a >=128-bit token", c.ID)
		}
		sub := 2 * b1.PriceCents
		if c.TotalQuantity != 2 || len(c.Lines) != 1 || c.Lines[0].UnitPriceCents != b1.PriceCents || c.Lines[0].TotalCents != sub ||
			c.Lines[0].Availability.Quantity != 5 || c.Cost.SubtotalCents != sub || c.Cost.DiscountCents != sub/10 ||
			c.Cost.TotalCents != sub-sub/10 || c.Cost.Currency != "USD" || c.Cost.ShippingCents != 0 || c.Cost.TaxCents != 0 {
			t.Fatalf("created cart: %+v", c)
		}
		if len(c.DiscountCodes) != 1 || c.DiscountCodes[0].Code != "WELCOME10" || !c.DiscountCodes[0].Applicable {
			t.Fatalf("codes: %+v", c.DiscountCodes)
		}
		if len(c.AvailableShippingMethods) != 2 || c.AvailableShippingMethods[0].Code != "STANDARD" || c.AvailableShippingMethods[1].Code != "EXPRESS" {
			t.Fatalf("shipping methods: %+v", c.AvailableShippingMethods)
		}
		if d := time.Until(c.ExpiresAt); d < 6*24*time.Hour || d > 7*24*time.Hour {
			t.Fatalf("a guest cart expires in %s, want 7 days", d)
		}
		if got, code := a.readCart("", c.ID); code != "" || got.Cost != c.Cost || got.qty(b1.ID) != 2 {
			t.Fatalf("read back: %+v %s", got, code)
		}

		// Prices are live: a price change shows in the cart at once.
		if err := a.db.Books.SetPrice(context.Background(), b1.uuid, b1.PriceCents+100); err != nil {
			t.Fatal(err)
		}
		if got, _ := a.readCart("", c.ID); got.Lines[0].UnitPriceCents != b1.PriceCents+100 {
			t.Fatalf("unit price %d after a price change to %d", got.Lines[0].UnitPriceCents, b1.PriceCents+100)
		}
		b1.PriceCents += 100

		// Stock caps: the line is left at what is available.
		p = a.addLines("", c.ID, line(b1, 4))
		if got := codes(p.UserErrors); len(got) != 1 || got[0] != bookstore.CodeInsufficientStock || !strings.Contains(p.UserErrors[0].Message, "5") ||
			strings.Join(p.UserErrors[0].Field, ".") != "lines.0.quantity" {
			t.Fatalf("insufficient stock: %+v", p.UserErrors)
		}
		if p.Cart.qty(b1.ID) != 5 {
			t.Fatalf("line holds %d, want the 5 available", p.Cart.qty(b1.ID))
		}
		a.setStock(b4, 0)
		p = a.addLines("", c.ID, line(b4, 1), line(b2, 1))
		if got := codes(p.UserErrors); len(got) != 1 || got[0] != bookstore.CodeOutOfStock || p.Cart.qty(b4.ID) != 0 || p.Cart.qty(b2.ID) != 1 {
			t.Fatalf("out of stock: %+v, cart %+v", p.UserErrors, p.Cart.Lines)
		}

		// Invalid input changes nothing.
		before, _ := a.readCart("", c.ID)
		for name, tc := range map[string]struct {
			lines []map[string]any
			code  string
		}{
			"too many":     {[]map[string]any{line(b3, 100)}, bookstore.CodeQuantityLimit},
			"zero":         {[]map[string]any{line(b3, 0)}, bookstore.CodeQuantityLimit},
			"negative":     {[]map[string]any{line(b3, 1), line(b2, -1)}, bookstore.CodeQuantityLimit},
			"huge":         {[]map[string]any{line(b3, 1<<30)}, bookstore.CodeQuantityLimit},
			"unknown book": {[]map[string]any{line(b3, 1), {"bookId": base64.RawURLEncoding.EncodeToString([]byte("Book:" + uuid.NewString())), "quantity": 1}}, bookstore.CodeUnknownBook},
			"malformed id": {[]map[string]any{{"bookId": "'; DROP TABLE carts", "quantity": 1}}, bookstore.CodeBadUserInput},
			"author id":    {[]map[string]any{{"bookId": base64.RawURLEncoding.EncodeToString([]byte("Author:" + uuid.NewString())), "quantity": 1}}, bookstore.CodeBadUserInput},
		} {
			p := a.addLines("", c.ID, tc.lines...)
			if got := codes(p.UserErrors); len(got) != 1 || got[0] != tc.code {
				t.Errorf("%s: userErrors %+v, want %s", name, p.UserErrors, tc.code)
			}
			if p.Cart == nil || p.Cart.TotalQuantity != before.TotalQuantity || p.Cart.qty(b3.ID) != 0 {
				t.Errorf("%s: the cart changed: %+v", name, p.Cart)
			}
		}
		var many []map[string]any
		for range 101 {
			many = append(many, line(b3, 1))
		}
		if p := a.addLines("", c.ID, many...); len(p.UserErrors) != 1 || p.UserErrors[0].Code != bookstore.CodeLineLimit {
			t.Errorf("101 lines: %+v", p.UserErrors)
		}

		// Update (0 removes) and remove.
		p = a.updateLines("", c.ID, line(b1, 1), line(b2, 0))
		if len(p.UserErrors) != 0 || p.Cart.qty(b1.ID) != 1 || p.Cart.qty(b2.ID) != 0 || len(p.Cart.Lines) != 1 {
			t.Fatalf("update: %+v %+v", p.UserErrors, p.Cart.Lines)
		}
		a.addLines("", c.ID, line(b3, 2))
		p = a.cartMut("", `mutation($id: ID!, $b: [ID!]!) { cartLinesRemove(cartId: $id, bookIds: $b) { cart { `+cartFields+` } userErrors { code } } }`,
			map[string]any{"id": c.ID, "b": []string{b1.ID, b4.ID}})
		if len(p.UserErrors) != 0 || len(p.Cart.Lines) != 1 || p.Cart.qty(b3.ID) != 2 {
			t.Fatalf("remove: %+v", p.Cart.Lines)
		}

		// Codes: unknown, expired and used up are refused; a valid code that does not
		// apply yet is kept and reported; stacking follows the combinable rule.
		p = a.setCodes("", c.ID, "nope", "EXPIRED", "usedup")
		if got := codes(p.UserErrors); len(got) != 3 || got[0] != bookstore.CodeInvalidDiscountCode || got[2] != bookstore.CodeInvalidDiscountCode ||
			len(p.Cart.DiscountCodes) != 0 {
			t.Fatalf("invalid codes: %+v, kept %+v", p.UserErrors, p.Cart.DiscountCodes)
		}
		if err := a.db.Books.SetPrice(context.Background(), b3.uuid, 1000); err != nil {
			t.Fatal(err)
		}
		a.updateLines("", c.ID, line(b3, 1)) // 10 USD: below BOOKWORM5's 30 USD minimum
		p = a.setCodes("", c.ID, "BOOKWORM5")
		if got := codes(p.UserErrors); len(got) != 1 || got[0] != bookstore.CodeDiscountNotApplicable || len(p.Cart.DiscountCodes) != 1 ||
			p.Cart.DiscountCodes[0].Applicable || p.Cart.Cost.DiscountCents != 0 || p.Cart.Cost.SubtotalCents != 1000 {
			t.Fatalf("inapplicable code: %+v %+v", p.UserErrors, p.Cart.DiscountCodes)
		}
		// Once the cart qualifies, the kept code applies.
		p = a.updateLines("", c.ID, line(b3, 4))
		if len(p.Cart.DiscountCodes) != 1 || !p.Cart.DiscountCodes[0].Applicable || p.Cart.Cost.DiscountCents != 500 {
			t.Fatalf("code after qualifying: %+v %+v", p.Cart.DiscountCodes, p.Cart.Cost)
		}
		p = a.setCodes("", c.ID, "STACK2", "STACK3", "WELCOME10")
		if dc := p.Cart.DiscountCodes; len(dc) != 3 || !dc[0].Applicable || !dc[1].Applicable || dc[2].Applicable ||
			p.Cart.Cost.DiscountCents != min(500, p.Cart.Cost.SubtotalCents) {
			t.Fatalf("stacking: %+v, discount %d", dc, p.Cart.Cost.DiscountCents)
		}
		if got := codes(p.UserErrors); len(got) != 1 || got[0] != bookstore.CodeDiscountNotApplicable {
			t.Fatalf("stacking userErrors: %+v", p.UserErrors)
		}

		// Shipping and tax through cost's arguments (DE taxed at 19% in this API).
		var costs struct {
			Cart struct {
				Cost, Express, Unknown cartCost
			}
		}
		a.ok(`query($id: ID!) { cart(id: $id) { cost { subtotalCents discountCents shippingCents taxCents totalCents }
			express: cost(shippingMethod: "EXPRESS", country: "de") { subtotalCents discountCents shippingCents taxCents totalCents } } }`,
			map[string]any{"id": c.ID}, &costs)
		e := costs.Cart.Express
		taxable := e.SubtotalCents - e.DiscountCents + 1499
		if e.ShippingCents != 1499 || e.TaxCents != (taxable*1900+5000)/10000 || e.TotalCents != taxable+e.TaxCents {
			t.Fatalf("express to DE: %+v", e)
		}
		if r := a.do(`query($id: ID!) { cart(id: $id) { cost(shippingMethod: "TELEPORT") { totalCents } } }`, map[string]any{"id": c.ID}); code(r) != bookstore.CodeBadUserInput {
			t.Fatalf("unknown shipping method: %+v", r.Errors)
		}

		// Stock falling below a line shows as a warning.
		a.setStock(b3, 0)
		if got, _ := a.readCart("", c.ID); len(got.Warnings) != 1 || got.Warnings[0].Code != bookstore.CodeOutOfStock {
			t.Fatalf("warnings: %+v", got.Warnings)
		}

		// Unknown and malformed cart ids.
		for _, id := range []string{cart.NewID(), "short", strings.Repeat("x", 5000)} {
			if p := a.addLines("", id, line(b1, 1)); p.Cart != nil || len(p.UserErrors) != 1 || p.UserErrors[0].Code != bookstore.CodeCartNotFound {
				t.Errorf("add to unknown cart %.10s: %+v", id, p)
			}
			if got, code := a.readCart("", id); got != nil || code != bookstore.CodeNotFound {
				t.Errorf("read unknown cart %.10s: %v %s", id, got, code)
			}
		}
	})
}

func TestCartAuthorization(t *testing.T) {
	cartStores(t, 10, func(t *testing.T, a *api) {
		bs := a.cartBooks(2, 50)
		ann := a.register("ann@example.com", "Ann")
		bob := a.register("bob@example.com", "Bob")

		mine := a.createCart(ann.AccessToken, []map[string]any{line(bs[0], 1)}).Cart
		if d := time.Until(mine.ExpiresAt); d < 29*24*time.Hour {
			t.Fatalf("a customer cart expires in %s, want 30 days", d)
		}
		if got := a.myCart(ann.AccessToken); got == nil || got.ID != mine.ID {
			t.Fatalf("me.cart = %+v, want %s", got, mine.ID)
		}
		// Another customer or a guest presenting the id: NOT_FOUND, nothing changes.
		for who, tok := range map[string]string{"bob": bob.AccessToken, "guest": ""} {
			if got, code := a.readCart(tok, mine.ID); got != nil || code != bookstore.CodeNotFound {
				t.Errorf("%s reads ann's cart: %v %s", who, got, code)
			}
			p := a.addLines(tok, mine.ID, line(bs[1], 3))
			if p.Cart != nil || len(p.UserErrors) != 1 || p.UserErrors[0].Code != bookstore.CodeCartNotFound {
				t.Errorf("%s adds to ann's cart: %+v", who, p)
			}
			p = a.setCodes(tok, mine.ID, "WELCOME10")
			if p.Cart != nil || p.UserErrors[0].Code != bookstore.CodeCartNotFound {
				t.Errorf("%s sets ann's codes: %+v", who, p)
			}
		}
		if got, _ := a.readCart(ann.AccessToken, mine.ID); got.TotalQuantity != 1 || len(got.DiscountCodes) != 0 {
			t.Fatalf("ann's cart changed: %+v", got)
		}
		if got := a.myCart(bob.AccessToken); got != nil {
			t.Fatalf("bob's me.cart = %+v, want null", got)
		}

		// A guest cart is a capability: a signed-in customer holding its id may use it,
		// and it stays a guest cart (not adopted, not bob's me.cart) until merged at sign-in.
		guest := a.createCart("", []map[string]any{line(bs[1], 1)}).Cart
		if p := a.addLines(bob.AccessToken, guest.ID, line(bs[1], 1)); len(p.UserErrors) != 0 || p.Cart.qty(bs[1].ID) != 2 {
			t.Fatalf("bob adds to a guest cart: %+v", p)
		}
		if got, code := a.readCart("", guest.ID); code != "" || got.qty(bs[1].ID) != 2 {
			t.Fatalf("the guest cart after bob's add: %+v %s", got, code)
		}
		if got := a.myCart(bob.AccessToken); got != nil {
			t.Fatalf("bob's me.cart = %+v after using a guest cart", got)
		}
	})
}

func (a *api) login(email, cartID string) session {
	a.t.Helper()
	in := map[string]any{"email": email, "password": "a long enough passphrase"}
	if cartID != "" {
		in["cartId"] = cartID
	}
	var out struct{ Login session }
	a.ok(`mutation($in: LoginInput!) { login(input: $in) { `+authFields+` } }`, map[string]any{"in": in}, &out)
	if len(out.Login.UserErrors) > 0 {
		a.t.Fatalf("login %s: %+v", email, out.Login.UserErrors)
	}
	return out.Login
}

// TestCartMergeAtSignIn checks every merge rule of LoginInput.cartId.
func TestCartMergeAtSignIn(t *testing.T) {
	cartStores(t, 20, func(t *testing.T, a *api) {
		bs := a.cartBooks(6, 50)
		both, custOnly, guestOnly, gone, capped, lowered := bs[0], bs[1], bs[2], bs[3], bs[4], bs[5]
		a.setStock(capped, 500)
		ann := a.register("ann@example.com", "Ann")
		mine := a.createCart(ann.AccessToken, []map[string]any{line(both, 2), line(custOnly, 1), line(capped, 60), line(lowered, 3)}, "STACK2").Cart

		guest := a.createCart("", []map[string]any{line(both, 3), line(guestOnly, 1), line(gone, 1), line(capped, 60), line(lowered, 1)},
			"WELCOME10", "STACK3").Cart
		a.setStock(both, 4)    // 2 + 3 capped at stock 4
		a.setStock(gone, 0)    // guest-only and out of stock: not carried over
		a.setStock(lowered, 1) // the customer's 3 stay although stock is 1

		s := a.login("ann@example.com", guest.ID)
		got := a.myCart(s.AccessToken)
		if got == nil || got.ID != mine.ID {
			t.Fatalf("merged into %+v, want ann's cart %s", got, mine.ID)
		}
		for _, want := range []struct {
			name string
			b    testBook
			q    int
		}{{"in both: summed, capped at stock", both, 4}, {"customer only: kept", custOnly, 1}, {"guest only: appended", guestOnly, 1},
			{"out of stock guest line: dropped", gone, 0}, {"summed, capped at the per-line limit", capped, 99},
			{"customer line never lowered", lowered, 3}} {
			if q := got.qty(want.b.ID); q != want.q {
				t.Errorf("%s: quantity %d, want %d", want.name, q, want.q)
			}
		}
		if len(got.Lines) != 5 {
			t.Errorf("%d lines after merge, want 5: %+v", len(got.Lines), got.Lines)
		}
		// The customer's code stays; WELCOME10 does not combine with it (dropped);
		// STACK3 combines (kept).
		var cs []string
		for _, d := range got.DiscountCodes {
			cs = append(cs, d.Code)
		}
		if strings.Join(cs, ",") != "STACK2,STACK3" {
			t.Errorf("codes after merge: %v, want STACK2,STACK3", cs)
		}
		// The guest cart is gone.
		if c, code := a.readCart("", guest.ID); c != nil || code != bookstore.CodeNotFound {
			t.Fatalf("guest cart after merge: %+v %s", c, code)
		}
		if c, code := a.readCart(s.AccessToken, guest.ID); c != nil || code != bookstore.CodeNotFound {
			t.Fatalf("guest cart after merge, as ann: %+v %s", c, code)
		}
		if p := a.addLines("", guest.ID, line(both, 1)); p.Cart != nil || p.UserErrors[0].Code != bookstore.CodeCartNotFound {
			t.Fatalf("add to merged guest cart: %+v", p)
		}

		// Signing in again with the spent id, or with another customer's cart id,
		// merges nothing and still signs in.
		bob := a.register("bob@example.com", "Bob")
		bobs := a.createCart(bob.AccessToken, []map[string]any{line(custOnly, 2)}).Cart
		a.login("ann@example.com", guest.ID)
		a.login("ann@example.com", bobs.ID)
		if c := a.myCart(s.AccessToken); c.TotalQuantity != got.TotalQuantity {
			t.Fatalf("ann's cart changed: %d, want %d", c.TotalQuantity, got.TotalQuantity)
		}
		if c, _ := a.readCart(bob.AccessToken, bobs.ID); c == nil || c.qty(custOnly.ID) != 2 {
			t.Fatalf("bob's cart after ann presented its id: %+v", c)
		}

		// Register with a guest cart: it becomes the new customer's cart under a new id.
		g2 := a.createCart("", []map[string]any{line(guestOnly, 2)}, "WELCOME10").Cart
		var reg struct{ Register session }
		a.ok(`mutation($in: RegisterInput!) { register(input: $in) { `+authFields+` } }`, map[string]any{"in": map[string]any{
			"email": "cy@example.com", "password": "a long enough passphrase", "name": "Cy", "cartId": g2.ID}}, &reg)
		c := a.myCart(reg.Register.AccessToken)
		if c == nil || c.ID == g2.ID || c.qty(guestOnly.ID) != 2 || len(c.DiscountCodes) != 1 || !c.DiscountCodes[0].Applicable {
			t.Fatalf("cart after register: %+v", c)
		}
		if old, code := a.readCart(reg.Register.AccessToken, g2.ID); old != nil || code != bookstore.CodeNotFound {
			t.Fatalf("guest id after register: %+v %s", old, code)
		}
	})
}

// TestCartRoundTripsDoNotGrowWithLines: a cart of 50 lines costs as many SQL round trips
// to read as a cart of 2.
func TestCartRoundTripsDoNotGrowWithLines(t *testing.T) {
	a := newAPIWith(t, 60, func(c *server.Config) { c.ResponseTTL = -1 })
	seedCodes(t, a.db)
	bs := a.cartBooks(50, 100)
	var lines []map[string]any
	for _, b := range bs {
		lines = append(lines, line(b, 1))
	}
	small := a.createCart("", lines[:2], "WELCOME10").Cart
	large := a.createCart("", lines, "WELCOME10").Cart
	if len(large.Lines) != 50 {
		t.Fatalf("%d lines", len(large.Lines))
	}
	const q = `query($id: ID!) { cart(id: $id) { id lines { book { title authors { name } } quantity totalCents availability { quantity } }
		cost { totalCents } discountCodes { applicable } warnings { code } } }`
	trips := func(id string) int64 {
		var out struct{ Cart *cartOut }
		before := a.queries.n.Load()
		a.ok(q, map[string]any{"id": id}, &out)
		if out.Cart == nil || out.Cart.ID != id {
			t.Fatalf("cart %s not read", id)
		}
		return a.queries.n.Load() - before
	}
	fewest := func(id string) int64 {
		n := trips(id)
		for range 2 {
			n = min(n, trips(id))
		}
		return n
	}
	trips(small.ID)
	s, l := fewest(small.ID), fewest(large.ID)
	if s != l {
		t.Fatalf("round trips: %d for 2 lines, %d for 50", s, l)
	}
	// cart, books with their stock (one pipeline), promotions, authors.
	if s > 4 {
		t.Fatalf("%d round trips to read a cart; expected 4: the cart, its books with their stock, promotions, authors", s)
	}
	t.Logf("%d round trips per cart read, for 2 and for 50 lines", s)
}

func TestPromotionAdmin(t *testing.T) {
	a := newAPI(t, 10)
	admin, _, err := a.tokens.Issue(adminIdentity())
	if err != nil {
		t.Fatal(err)
	}
	cust := a.register("ann@example.com", "Ann")
	const create = `mutation($in: PromotionInput!) { promotionCreate(input: $in) { promotion { id code kind value usageLimit used active category { slug } }
		userErrors { code field message } } }`
	in := map[string]any{"code": "spring-25", "kind": "PERCENT", "value": 25, "usageLimit": 100}
	if r := a.as(cust.AccessToken, create, map[string]any{"in": in}); code(r) != bookstore.CodeForbidden {
		t.Fatalf("customer creates a promotion: %+v", r.Errors)
	}
	if r := a.as("", create, map[string]any{"in": in}); code(r) != bookstore.CodeUnauthenticated {
		t.Fatalf("anonymous creates a promotion: %+v", r.Errors)
	}
	type promo struct {
		ID, Code, Kind string
		Value          int
		UsageLimit     *int
		Active         bool
		Category       *struct{ Slug string }
	}
	var out struct {
		PromotionCreate struct {
			Promotion  *promo
			UserErrors []userError
		}
	}
	a.mustAsVars(admin, create, map[string]any{"in": in}, &out)
	p := out.PromotionCreate.Promotion
	if p == nil || p.Code != "SPRING-25" || p.Kind != "PERCENT" || p.Value != 25 || *p.UsageLimit != 100 || !p.Active {
		t.Fatalf("created: %+v %+v", p, out.PromotionCreate.UserErrors)
	}
	for name, bad := range map[string]map[string]any{
		"duplicate":     {"code": "Spring-25", "kind": "PERCENT", "value": 10},
		"percent > 100": {"code": "X1", "kind": "PERCENT", "value": 101},
		"bad code":      {"code": "no spaces", "kind": "FIXED_AMOUNT", "value": 100},
		"window":        {"code": "X2", "kind": "FIXED_AMOUNT", "value": 100, "startsAt": "2026-02-01T00:00:00Z", "endsAt": "2026-01-01T00:00:00Z"},
		"category":      {"code": "X3", "kind": "FIXED_AMOUNT", "value": 100, "categorySlug": "no-such-genre"},
	} {
		a.mustAsVars(admin, create, map[string]any{"in": bad}, &out)
		if out.PromotionCreate.Promotion != nil || len(out.PromotionCreate.UserErrors) != 1 {
			t.Errorf("%s: %+v", name, out.PromotionCreate)
		}
	}

	// A live cart with the code; deactivating it stops it applying there.
	bs := a.cartBooks(1, 10)
	c := a.createCart("", []map[string]any{line(bs[0], 1)}, "spring-25").Cart
	if !c.DiscountCodes[0].Applicable {
		t.Fatalf("code not applicable: %+v", c.DiscountCodes)
	}
	var deact struct {
		PromotionDeactivate struct{ Promotion promo }
	}
	a.mustAsVars(admin, `mutation($id: ID!) { promotionDeactivate(id: $id) { promotion { id active } userErrors { code } } }`, map[string]any{"id": p.ID}, &deact)
	if deact.PromotionDeactivate.Promotion.Active {
		t.Fatal("still active")
	}
	if got, _ := a.readCart("", c.ID); got.DiscountCodes[0].Applicable || got.Cost.DiscountCents != 0 {
		t.Fatalf("deactivated code still applies: %+v", got.DiscountCodes)
	}

	var upd struct {
		PromotionUpdate struct {
			Promotion  *promo
			UserErrors []userError
		}
	}
	a.mustAsVars(admin, `mutation($id: ID!, $in: PromotionInput!) { promotionUpdate(id: $id, input: $in) { promotion { id code value active } userErrors { code } } }`,
		map[string]any{"id": p.ID, "in": map[string]any{"code": "SPRING-25", "kind": "PERCENT", "value": 30}}, &upd)
	if u := upd.PromotionUpdate.Promotion; u == nil || u.Value != 30 || u.Active {
		t.Fatalf("an update without active re-activated the promotion (or failed): %+v", upd.PromotionUpdate)
	}
	a.mustAsVars(admin, `mutation($id: ID!, $in: PromotionInput!) { promotionUpdate(id: $id, input: $in) { promotion { id code value active } userErrors { code } } }`,
		map[string]any{"id": p.ID, "in": map[string]any{"code": "SPRING-25", "kind": "PERCENT", "value": 30, "active": true}}, &upd)
	if u := upd.PromotionUpdate.Promotion; u == nil || !u.Active {
		t.Fatalf("explicit re-activation: %+v", upd.PromotionUpdate)
	}
	var list struct {
		Promotions struct {
			Edges    []struct{ Node promo }
			PageInfo struct{ HasNextPage bool }
		}
	}
	a.mustAsVars(admin, `{ promotions(first: 10) { edges { node { code } } pageInfo { hasNextPage } } }`, nil, &list)
	if len(list.Promotions.Edges) != 1 || list.Promotions.Edges[0].Node.Code != "SPRING-25" {
		t.Fatalf("promotions: %+v", list.Promotions)
	}
	if r := a.as(cust.AccessToken, `{ promotions { edges { node { code } } } }`, nil); code(r) != bookstore.CodeForbidden {
		t.Fatalf("customer lists promotions: %+v", r.Errors)
	}
}

func (a *api) mustAsVars(token, query string, vars map[string]any, v any) {
	a.t.Helper()
	r := a.as(token, query, vars)
	if len(r.Errors) > 0 {
		a.t.Fatalf("errors: %+v", r.Errors)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		a.t.Fatalf("decode %s: %v", r.Data, err)
	}
}

// TestTwoDevicesLoseNoUpdate: many devices of one customer add to the same cart at once
// through the API; every copy is in the final cart.
func TestTwoDevicesLoseNoUpdate(t *testing.T) {
	cartStores(t, 10, func(t *testing.T, a *api) {
		bs := a.cartBooks(3, 1000)
		ann := a.register("ann@example.com", "Ann")
		c := a.createCart(ann.AccessToken, nil).Cart
		const devices, each = 8, 6
		var wg sync.WaitGroup
		for d := range devices {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					b := bs[(d+i)%len(bs)]
					r := a.as(ann.AccessToken, `mutation($id: ID!, $l: [CartLineInput!]!) { cartLinesAdd(cartId: $id, lines: $l) { userErrors { code } } }`,
						map[string]any{"id": c.ID, "l": []map[string]any{line(b, 1)}})
					if len(r.Errors) > 0 || strings.Contains(string(r.Data), `"code"`) {
						t.Errorf("add: %s %+v", r.Data, r.Errors)
					}
				}
			}()
		}
		wg.Wait()
		got := a.myCart(ann.AccessToken)
		if got.TotalQuantity != devices*each {
			t.Fatalf("total quantity %d, want %d", got.TotalQuantity, devices*each)
		}
		for _, b := range bs {
			if q := got.qty(b.ID); q != devices*each/len(bs) {
				t.Errorf("book %s: %d, want %d", b.ID, q, devices*each/len(bs))
			}
		}
	})
}

// TestCartCreateRoundTrips: creating a cart and answering its cost reads the books with
// their stock in one round trip and writes the cart in another.
func TestCartCreateRoundTrips(t *testing.T) {
	a := newAPI(t, 5)
	bs := a.cartBooks(3, 1000)
	var fewest int64 = -1
	for range 3 { // the fewest of three: a loader batch split by a slow goroutine is not the code's count
		before := a.queries.n.Load()
		r := a.do(`mutation($in: CartCreateInput!) { cartCreate(input: $in) { cart { id cost(shippingMethod: "STANDARD", country: "DE") { totalCents } } userErrors { code } } }`,
			map[string]any{"in": map[string]any{"lines": []map[string]any{line(bs[0], 1), line(bs[1], 2)}}})
		if len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"totalCents"`) {
			t.Fatalf("cartCreate: %s %+v", r.Data, r.Errors)
		}
		if n := a.queries.n.Load() - before; fewest < 0 || n < fewest {
			fewest = n
		}
	}
	if fewest != 2 {
		t.Fatalf("cartCreate with its cost: %d round trips, want 2 (books with stock, the insert)", fewest)
	}
}
