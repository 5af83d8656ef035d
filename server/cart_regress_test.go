package server_test

import (
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/shopfront/bookstore"
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
