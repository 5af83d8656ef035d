package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/cart"
	cartredis "github.com/shopfront/bookstore/cart/redis"
	"github.com/shopfront/bookstore/server"
)

// TestCartIsNeverServedFromTheResponseCache: with the response cache on, a guest reads
// its cart after every change, and the merged guest id is gone at once; a cart answer
// is private, no-store over GET too (a CDN must not keep a capability's answer).
func TestCartIsNeverServedFromTheResponseCache(t *testing.T) {
	cartStoresWith(t, 10, func(c *server.Config) { c.ResponseTTL = time.Minute }, func(t *testing.T, a *api) {
		bs := a.cartBooks(2, 50)
		g := a.createCart("", []map[string]any{line(bs[0], 1)}).Cart
		if c, _ := a.readCart("", g.ID); c == nil || c.qty(bs[0].ID) != 1 {
			t.Fatalf("first read: %+v", c)
		}
		a.addLines("", g.ID, line(bs[0], 2), line(bs[1], 1))
		if c, _ := a.readCart("", g.ID); c == nil || c.qty(bs[0].ID) != 3 || c.qty(bs[1].ID) != 1 {
			t.Fatalf("read after cartLinesAdd is stale: %+v", c)
		}
		// Also through a fragment and alongside a catalog field.
		q := `query($id: ID!) { books(first: 1) { totalCount } ...F } fragment F on Query { cart(id: $id) { totalQuantity } }`
		for range 2 {
			a.do(q, map[string]any{"id": g.ID})
		}
		a.addLines("", g.ID, line(bs[1], 1))
		var out struct{ Cart struct{ TotalQuantity int } }
		a.ok(q, map[string]any{"id": g.ID}, &out)
		if out.Cart.TotalQuantity != 5 {
			t.Fatalf("cart through a fragment is stale: %d copies, want 5", out.Cart.TotalQuantity)
		}

		get := func(query string, vars string) *http.Response {
			t.Helper()
			u := a.url + "/graphql?query=" + url.QueryEscape(query) + "&variables=" + url.QueryEscape(vars)
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			req.Header.Set("Accept", "application/graphql-response+json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp
		}
		vars := `{"id":"` + g.ID + `"}`
		for _, q := range []string{`query($id: ID!) { cart(id: $id) { id } }`, `query($id: ID!) { node(id: $id) { id } }`,
			`query($id: ID!) { books(first: 1) { totalCount } cart(id: $id) { id } }`, `{ me { email } }`} {
			if resp := get(q, vars); resp.Header.Get("Cache-Control") != "private, no-store" {
				t.Errorf("GET %s: status %d, Cache-Control %q, want private, no-store", q, resp.StatusCode, resp.Header.Get("Cache-Control"))
			}
		}
		if resp := get(`{ books(first: 1) { totalCount } }`, `{}`); resp.Header.Get("Cache-Control") != "" {
			t.Errorf("a public catalog GET: Cache-Control %q", resp.Header.Get("Cache-Control"))
		}

		a.register("gia@example.com", "Gia")
		a.login("gia@example.com", g.ID)
		if c, code := a.readCart("", g.ID); c != nil || code != bookstore.CodeNotFound {
			t.Fatalf("guest id after merge: %+v %s (served from the cache?)", c, code)
		}
	})
}

// TestMergeKeepsEveryAcknowledgedAdd: guests keep adding new books while they sign in;
// every add the API confirmed is in me.cart afterwards, and every other add failed with
// CART_NOT_FOUND.
func TestMergeKeepsEveryAcknowledgedAdd(t *testing.T) {
	cartStores(t, 40, func(t *testing.T, a *api) {
		bs := a.cartBooks(33, 50)
		a.register("hal@example.com", "Hal")
		for round := range 3 {
			g := a.createCart("", []map[string]any{line(bs[0], 1)}).Cart
			var mu sync.Mutex
			acked := map[string]bool{bs[0].ID: true}
			var wg sync.WaitGroup
			started := make(chan struct{}, 4)
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 8 {
						b := bs[1+w*8+i]
						p := a.cartMut("", `mutation($id: ID!, $l: [CartLineInput!]!) { cartLinesAdd(cartId: $id, lines: $l) { cart { id } userErrors { code field message } } }`,
							map[string]any{"id": g.ID, "l": []map[string]any{line(b, 1)}})
						if i == 1 {
							started <- struct{}{}
						}
						switch {
						case p.Cart != nil && len(p.UserErrors) == 0:
							mu.Lock()
							acked[b.ID] = true
							mu.Unlock()
						case len(p.UserErrors) == 1 && p.UserErrors[0].Code == bookstore.CodeCartNotFound:
						default:
							t.Errorf("add during merge: %+v", p)
						}
					}
				}()
			}
			for range 4 {
				<-started
			}
			s := a.login("hal@example.com", g.ID)
			wg.Wait()
			c := a.myCart(s.AccessToken)
			for id := range acked {
				if c == nil || c.qty(id) < 1 {
					t.Fatalf("round %d: acknowledged add of %s lost by the merge (%d acknowledged, cart %+v)", round, id, len(acked), c)
				}
			}
			// Empty the customer's cart for the next round.
			for _, l := range c.Lines {
				a.updateLines(s.AccessToken, c.ID, map[string]any{"bookId": l.Book.ID, "quantity": 0})
			}
		}
	})
}

func fieldIs(u userError, want ...string) bool {
	return strings.Join(u.Field, ".") == strings.Join(want, ".")
}

// TestCartCodeInputErrors: malformed codes (a NUL above all) are INVALID_DISCOUNT_CODE at
// their input position, never INTERNAL; error paths name the input as sent.
func TestCartCodeInputErrors(t *testing.T) {
	cartStores(t, 10, func(t *testing.T, a *api) {
		bs := a.cartBooks(1, 50)
		g := a.createCart("", []map[string]any{line(bs[0], 1)}).Cart
		for _, bad := range []string{"WEL\x00COME10", "\x00", "WELCOME 10", "ÄPFEL", strings.Repeat("A", 65)} {
			p := a.setCodes("", g.ID, "WELCOME10", bad)
			if len(p.UserErrors) != 1 || p.UserErrors[0].Code != bookstore.CodeInvalidDiscountCode || !fieldIs(p.UserErrors[0], "codes", "1") {
				t.Errorf("cartDiscountCodesUpdate %q: %+v", bad, p.UserErrors)
			}
			p = a.createCart("", []map[string]any{line(bs[0], 1)}, bad)
			if p.Cart != nil || len(p.UserErrors) != 1 || p.UserErrors[0].Code != bookstore.CodeInvalidDiscountCode ||
				!fieldIs(p.UserErrors[0], "input", "discountCodes", "0") {
				t.Errorf("cartCreate %q: %+v", bad, p)
			}
		}

		// Input positions survive duplicates; inapplicable codes carry theirs.
		p := a.createCart("", []map[string]any{line(bs[0], 1)}, "welcome10", "WELCOME10", "NOPE", "BOOKWORM5")
		want := map[string][]string{bookstore.CodeInvalidDiscountCode: {"input", "discountCodes", "2"},
			bookstore.CodeDiscountNotApplicable: {"input", "discountCodes", "3"}}
		if len(p.UserErrors) != 2 {
			t.Fatalf("cartCreate with a duplicate: %+v", p.UserErrors)
		}
		for _, u := range p.UserErrors {
			if !fieldIs(u, want[u.Code]...) {
				t.Errorf("%s at %v, want %v", u.Code, u.Field, want[u.Code])
			}
		}
		p = a.setCodes("", g.ID, "STACK2", "stack2", "BOOKWORM5")
		if len(p.UserErrors) != 1 || p.UserErrors[0].Code != bookstore.CodeDiscountNotApplicable || !fieldIs(p.UserErrors[0], "codes", "2") {
			t.Errorf("inapplicable code path: %+v", p.UserErrors)
		}

		// An empty cart reports an inapplicable code at creation as the update does.
		p = a.createCart("", nil, "WELCOME10")
		if p.Cart == nil || len(p.UserErrors) != 1 || p.UserErrors[0].Code != bookstore.CodeDiscountNotApplicable ||
			!fieldIs(p.UserErrors[0], "input", "discountCodes", "0") {
			t.Errorf("cartCreate of an empty cart with a code: %+v", p)
		}
		e := a.setCodes("", p.Cart.ID, "WELCOME10")
		if len(e.UserErrors) != 1 || e.UserErrors[0].Code != bookstore.CodeDiscountNotApplicable {
			t.Errorf("cartDiscountCodesUpdate on the empty cart: %+v", e.UserErrors)
		}

		// CART_NOT_FOUND names the cartId argument.
		if p := a.addLines("", cart.NewID(), line(bs[0], 1)); len(p.UserErrors) != 1 || p.UserErrors[0].Code != bookstore.CodeCartNotFound ||
			!fieldIs(p.UserErrors[0], "cartId") {
			t.Errorf("missing cart: %+v", p.UserErrors)
		}
		if p := a.setCodes("", "not-a-cart-id", "WELCOME10"); len(p.UserErrors) != 1 || !fieldIs(p.UserErrors[0], "cartId") {
			t.Errorf("malformed cart id: %+v", p.UserErrors)
		}

		// A code that takes nothing off is not applicable.
		if err := a.db.Promotions.Ensure(context.Background(), &bookstore.Promotion{Code: "ALLOFF", Kind: bookstore.DiscountFixed,
			Value: 100_000_000, Combinable: true, Active: true}); err != nil {
			t.Fatal(err)
		}
		p = a.setCodes("", g.ID, "ALLOFF", "STACK2")
		if c := p.Cart; c == nil || !c.DiscountCodes[0].Applicable || c.DiscountCodes[1].Applicable || c.DiscountCodes[1].DiscountCents != 0 ||
			c.Cost.DiscountCents != c.Cost.SubtotalCents {
			t.Fatalf("a code taking nothing off: %+v", p)
		}
		if len(p.UserErrors) != 1 || p.UserErrors[0].Code != bookstore.CodeDiscountNotApplicable || !fieldIs(p.UserErrors[0], "codes", "1") {
			t.Errorf("a code taking nothing off: %+v", p.UserErrors)
		}
	})
}

// TestPromotionDescriptionInput: a NUL in a description is BAD_USER_INPUT, and the limit
// counts characters, not bytes.
func TestPromotionDescriptionInput(t *testing.T) {
	a := newAPI(t, 5)
	admin, _, err := a.tokens.Issue(adminIdentity())
	if err != nil {
		t.Fatal(err)
	}
	const create = `mutation($in: PromotionInput!) { promotionCreate(input: $in) { promotion { code description } userErrors { code field message } } }`
	for i, tc := range []struct {
		desc string
		ok   bool
	}{{"ten\x00percent", false}, {strings.Repeat("é", 500), true}, {strings.Repeat("é", 501), false}} {
		var out struct {
			PromotionCreate struct {
				Promotion  *struct{ Code, Description string }
				UserErrors []userError
			}
		}
		a.mustAsVars(admin, create, map[string]any{"in": map[string]any{"code": fmt.Sprintf("D%d", i), "kind": "PERCENT", "value": 5, "description": tc.desc}}, &out)
		p := out.PromotionCreate
		if tc.ok && (p.Promotion == nil || p.Promotion.Description != tc.desc) {
			t.Errorf("description %d: %+v", i, p)
		}
		if !tc.ok && (p.Promotion != nil || len(p.UserErrors) != 1 || p.UserErrors[0].Code != bookstore.CodeBadUserInput ||
			!fieldIs(p.UserErrors[0], "input", "description")) {
			t.Errorf("description %d: %+v", i, p)
		}
	}
}

// TestGuestCartsAreBounded: an empty cart lives a day, not a week, until a line is
// added; cart creation is rate limited per client IP.
func TestGuestCartsAreBounded(t *testing.T) {
	cartStoresWith(t, 5, func(c *server.Config) { c.ResponseTTL = -1 }, func(t *testing.T, a *api) {
		bs := a.cartBooks(1, 50)
		e := a.createCart("", nil).Cart
		if d := time.Until(e.ExpiresAt); d > 25*time.Hour || d < 23*time.Hour {
			t.Fatalf("an empty cart expires in %v, want a day", d)
		}
		if d := time.Until(a.addLines("", e.ID, line(bs[0], 1)).Cart.ExpiresAt); d < 6*24*time.Hour {
			t.Fatalf("a cart with a line expires in %v, want the guest TTL", d)
		}
	})
	lim, err := auth.NewLocalLimiter(auth.Limit{Rate: 3, Period: time.Hour, Burst: 3}, auth.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := newAPIWith(t, 5, func(c *server.Config) {
		c.Carts = cart.New(cart.Config{Store: c.DB.Carts, CreateLimit: lim})
	})
	for i := range 3 {
		if p := a.createCart("", nil); p.Cart == nil {
			t.Fatalf("creation %d refused: %+v", i, p)
		}
	}
	// A userError like every expected failure of a mutation (not a top-level error
	// answered with HTTP 200 and no Retry-After: black-box finding).
	if p := a.createCart("", nil); p.Cart != nil || len(p.UserErrors) != 1 || p.UserErrors[0].Code != auth.CodeRateLimited ||
		!strings.Contains(p.UserErrors[0].Message, "retry in") {
		t.Fatalf("a fourth cart from one IP within the hour: %+v", p)
	}
	// A customer spends their own budget, not the IP's.
	s := a.register("ida@example.com", "Ida")
	if p := a.createCart(s.AccessToken, nil); p.Cart == nil {
		t.Fatalf("a customer's cart refused with the IP's budget spent: %+v", p)
	}
}

// TestCartLineCaps: an add never lowers a line; a capped line reports only the cap that
// bound, with the quantity it ends with; at the line limit, removals count first.
func TestCartLineCaps(t *testing.T) {
	cartStores(t, 10, func(t *testing.T, a *api) {
		bs := a.cartBooks(3, 10)
		g := a.createCart("", []map[string]any{line(bs[0], 5), line(bs[1], 3)}).Cart
		a.setStock(bs[0], 2)
		a.setStock(bs[1], 0)
		p := a.addLines("", g.ID, line(bs[0], 1), line(bs[1], 1))
		if p.Cart.qty(bs[0].ID) != 5 || p.Cart.qty(bs[1].ID) != 3 {
			t.Fatalf("an add lowered existing lines: %+v", p.Cart.Lines)
		}
		if strings.Join(codes(p.UserErrors), ",") != "INSUFFICIENT_STOCK,OUT_OF_STOCK" || !strings.Contains(p.UserErrors[0].Message, "holds 5") {
			t.Fatalf("userErrors: %+v", p.UserErrors)
		}
		var warn []string
		for _, w := range p.Cart.Warnings {
			warn = append(warn, w.Code)
		}
		if strings.Join(warn, ",") != "INSUFFICIENT_STOCK,OUT_OF_STOCK" {
			t.Fatalf("warnings: %+v", p.Cart.Warnings)
		}

		// Both caps: only the binding one, with the true final quantity.
		a.setStock(bs[2], 50)
		p = a.addLines("", g.ID, line(bs[2], 99), line(bs[2], 99))
		if p.Cart.qty(bs[2].ID) != 50 || len(p.UserErrors) != 1 || p.UserErrors[0].Code != bookstore.CodeInsufficientStock ||
			!strings.Contains(p.UserErrors[0].Message, "holds 50") {
			t.Fatalf("stock below the per-line limit: %+v %d", p.UserErrors, p.Cart.qty(bs[2].ID))
		}
		a.setStock(bs[2], 500)
		p = a.addLines("", g.ID, line(bs[2], 99))
		if p.Cart.qty(bs[2].ID) != 99 || len(p.UserErrors) != 1 || p.UserErrors[0].Code != bookstore.CodeQuantityLimit ||
			!strings.Contains(p.UserErrors[0].Message, "holds 99") {
			t.Fatalf("per-line limit below stock: %+v %d", p.UserErrors, p.Cart.qty(bs[2].ID))
		}
	})
	lim, err := auth.NewLocalLimiter(auth.PerMinute(100), auth.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := newAPIWith(t, 5, func(c *server.Config) {
		c.Carts = cart.New(cart.Config{Store: c.DB.Carts, CreateLimit: lim, Limits: bookstore.CartLimits{MaxLines: 2}})
	})
	bs := a.cartBooks(3, 10)
	for _, order := range [][]map[string]any{{line(bs[2], 1), line(bs[0], 0)}, {line(bs[1], 0), line(bs[2], 1)}} {
		g := a.createCart("", []map[string]any{line(bs[0], 1), line(bs[1], 1)}).Cart
		if p := a.updateLines("", g.ID, order...); len(p.UserErrors) != 0 || len(p.Cart.Lines) != 2 || p.Cart.qty(bs[2].ID) != 1 {
			t.Errorf("replace a line at the limit, %v: %+v", order, p)
		}
	}
}

// TestCartsWithRedisDown: cart operations answer UNAVAILABLE, not INTERNAL, while Redis
// cannot be reached; timestamps of a mutation equal a later read's.
func TestCartsWithRedisDown(t *testing.T) {
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { dead.Close() })
	a := newAPIWith(t, 5, func(c *server.Config) {
		c.ResponseTTL = -1
		c.Carts = cart.New(cart.Config{Store: cartredis.New(dead, "x:")})
	})
	bs := a.cartBooks(1, 5)
	r := a.do(`mutation($l: [CartLineInput!]) { cartCreate(input: {lines: $l}) { cart { id } } }`, map[string]any{"l": []map[string]any{line(bs[0], 1)}})
	if code(r) != bookstore.CodeUnavailable {
		t.Fatalf("cartCreate with Redis down: %+v", r.Errors)
	}
	if _, c := a.readCart("", cart.NewID()); c != bookstore.CodeUnavailable {
		t.Fatalf("cart read with Redis down: %s", c)
	}

	cartStores(t, 5, func(t *testing.T, a *api) {
		bs := a.cartBooks(1, 5)
		p := a.createCart("", []map[string]any{line(bs[0], 1)})
		p2 := a.addLines("", p.Cart.ID, line(bs[0], 1))
		got, _ := a.readCart("", p.Cart.ID)
		if !got.UpdatedAt.Equal(p2.Cart.UpdatedAt) || !got.ExpiresAt.Equal(p2.Cart.ExpiresAt) {
			t.Fatalf("mutation said %v/%v, read says %v/%v", p2.Cart.UpdatedAt, p2.Cart.ExpiresAt, got.UpdatedAt, got.ExpiresAt)
		}
	})
}
