package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/cart"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/identity"
	"github.com/shopfront/bookstore/orders"
	"github.com/shopfront/bookstore/payment/testpsp"
	"github.com/shopfront/bookstore/pii"
	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/server"
	"github.com/shopfront/bookstore/shipping"
	"github.com/shopfront/bookstore/shipping/sim"
)

// reviewAPI is the API with orders that really reach DELIVERED: checkout over the test
// PSP, and the simulated carrier (instant steps) moving each shipment and its order.
type reviewAPI struct {
	*api
	orders  *orders.Service
	carrier *sim.Carrier
	// advance drops the response cache's entries (the catalog broadcast's OnChange);
	// nil when the cache is off.
	advance func(uint64)
}

func newReviewAPI(t *testing.T, books int, cached bool) *reviewAPI {
	t.Helper()
	ra := &reviewAPI{}
	var tokens *auth.Tokens
	ra.api = newAPIWith(t, books, func(c *server.Config) {
		// Dozens of buyers sign up from 127.0.0.1: registrations are not throttled here.
		c.Identity, tokens = newSecurityWith(t, c.DB, func(ic *identity.Config) {
			ic.RegisterPerIP, _ = auth.NewLocalLimiter(auth.PerMinute(1_000_000), auth.LocalOptions{})
		})
		c.Tokens = tokens
		c.ResponseTTL = -1
		if cached {
			c.ResponseTTL = time.Minute
			c.Cache = server.NewResponseCache(100, time.Minute, nil)
			ra.advance = c.Cache.Advance
		}
		key, _ := pii.GenerateKey()
		kr, _ := pii.NewKeyring(pii.MasterKey{ID: "k", Key: key})
		idx, _ := pii.NewBlindIndex(key)
		c.Carts = cart.New(cart.Config{Store: c.DB.Carts})
		psp := testpsp.New(c.DB.TestPSP, testpsp.Options{})
		co, err := checkout.New(checkout.Config{DB: c.DB, Carts: c.Carts, Customers: c.Identity, PSP: psp,
			PII: kr, Index: idx, Log: discardLog()})
		if err != nil {
			t.Fatal(err)
		}
		c.Checkout = co
		ra.carrier = sim.New(c.DB.Shipments, sim.Options{Seed: 3, Log: discardLog(),
			Hook: func(ctx context.Context, tx pgx.Tx, s *shipping.Shipment, ev shipping.Event) error {
				return ra.orders.ShipmentHook(ctx, tx, s, ev)
			}})
		ra.orders, err = orders.New(orders.Config{DB: c.DB, Checkout: co, PSP: psp, Carrier: ra.carrier,
			Tracking: ra.carrier, Log: discardLog()})
		if err != nil {
			t.Fatal(err)
		}
		c.Orders = ra.orders
	})
	ra.tokens = tokens
	return ra
}

// buy checks out one copy of b for the signed-in customer and returns the PAID order.
func (a *reviewAPI) buy(token string, b testBook) uuid.UUID {
	a.t.Helper()
	c := a.createCart(token, []map[string]any{line(b, 1)}).Cart
	in := guestInput(c.ID, "", "tok_visa")
	delete(in, "email")
	out := a.checkout(token, in)
	if out.Order == nil || out.Order.Status != "PAID" {
		a.t.Fatalf("checkout: %+v", out)
	}
	return rawID(a.t, "Order", out.Order.ID)
}

func rawID(t testing.TB, typ, gid string) uuid.UUID {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(gid)
	if err != nil || !strings.HasPrefix(string(raw), typ+":") {
		t.Fatalf("%s id %q: %v", typ, gid, err)
	}
	return uuid.MustParse(strings.TrimPrefix(string(raw), typ+":"))
}

func (a *reviewAPI) orderStatus(id uuid.UUID) string {
	a.t.Helper()
	var s string
	if err := a.db.Pool.QueryRow(context.Background(), `SELECT status FROM orders WHERE id = $1`, id).Scan(&s); err != nil {
		a.t.Fatal(err)
	}
	return s
}

// deliver ships a paid order and drives the carrier until the order is DELIVERED.
func (a *reviewAPI) deliver(id uuid.UUID) {
	a.t.Helper()
	ctx := context.Background()
	if err := a.orders.Ship(ctx, id); err != nil {
		a.t.Fatal(err)
	}
	for range 100 {
		if a.orderStatus(id) == "DELIVERED" {
			return
		}
		if _, err := a.carrier.Tick(ctx); err != nil {
			a.t.Fatal(err)
		}
	}
	a.t.Fatalf("order %s is %s after 100 carrier steps", id, a.orderStatus(id))
}

// returned moves a delivered order to RETURNED, as the state machine allows.
func (a *reviewAPI) returned(id uuid.UUID) {
	a.t.Helper()
	ctx := context.Background()
	err := a.db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		o, err := a.db.Orders.Lock(ctx, tx, id)
		if err != nil {
			return err
		}
		_, err = a.db.Orders.Transition(ctx, tx, o, bookstore.OrderReturned, bookstore.OrderEventReturned, nil)
		return err
	})
	if err != nil {
		a.t.Fatal(err)
	}
}

const reviewCreate = `mutation($in: ReviewCreateInput!) { reviewCreate(input: $in) {
  review { id rating title body reviewerName createdAt }
  book { id rating ratingCount }
  userErrors { code field message } } }`

type reviewOut struct {
	Review *struct {
		ID, Title, Body, ReviewerName string
		Rating                        int
		CreatedAt                     time.Time
	}
	Book *struct {
		ID          string
		Rating      float64
		RatingCount int64
	}
	UserErrors []userError
}

func reviewInput(b testBook, rating int, title, body string) map[string]any {
	return map[string]any{"bookId": b.ID, "rating": rating, "title": title, "body": body}
}

// tryReview runs reviewCreate; a top-level error is returned as its code.
func (a *api) tryReview(token string, in map[string]any) (reviewOut, string, error) {
	r, err := a.try(token, reviewCreate, map[string]any{"in": in})
	if err != nil {
		return reviewOut{}, "", err
	}
	if len(r.Errors) > 0 {
		if string(r.Data) != "null" && string(r.Data) != "" {
			return reviewOut{}, "", fmt.Errorf("data %s beside errors %+v", r.Data, r.Errors)
		}
		return reviewOut{}, code(r), nil
	}
	var out struct{ ReviewCreate reviewOut }
	if err := json.Unmarshal(r.Data, &out); err != nil {
		return reviewOut{}, "", fmt.Errorf("decode %s: %v", r.Data, err)
	}
	return out.ReviewCreate, "", nil
}

func (a *api) review(token string, in map[string]any) reviewOut {
	a.t.Helper()
	out, c, err := a.tryReview(token, in)
	if err != nil || c != "" {
		a.t.Fatalf("reviewCreate: %v %s", err, c)
	}
	return out
}

// bookRating reads a book's rating and ratingCount from the database.
func (a *api) bookRating(b testBook) (float64, int64) {
	a.t.Helper()
	var r float64
	var n int64
	if err := a.db.Pool.QueryRow(context.Background(), `SELECT rating, rating_count FROM books WHERE id = $1`, b.uuid).
		Scan(&r, &n); err != nil {
		a.t.Fatal(err)
	}
	return r, n
}

// setRating gives a book a known rating, as an import would.
func (a *api) setRating(b testBook, rating float64, count int64) {
	a.t.Helper()
	if _, err := a.db.Pool.Exec(context.Background(), `UPDATE books SET rating = $2, rating_count = $3 WHERE id = $1`,
		b.uuid, rating, count); err != nil {
		a.t.Fatal(err)
	}
}

func onlyError(ues []userError, code string, field ...string) bool {
	return len(ues) == 1 && ues[0].Code == code && fieldIs(ues[0], field...)
}

// TestReviewCreateIsForBuyersOnce: who may review (a customer with a delivered or
// returned order containing the book, once), and what a review changes.
func TestReviewCreateIsForBuyersOnce(t *testing.T) {
	a := newReviewAPI(t, 10, false)
	bs := a.cartBooks(2, 50)
	b, other := bs[0], bs[1]
	ann := a.register("ann@example.com", "Ann Marie Reader")
	bob := a.register("bob@example.com", "Bob")
	in := reviewInput(b, 4, "  Worth it  ", "Line one.\r\nLine two.")

	if _, c, err := a.tryReview("", in); err != nil || c != bookstore.CodeUnauthenticated {
		t.Fatalf("anonymous: %v %q, want UNAUTHENTICATED", err, c)
	}
	admin, _, _ := a.tokens.Issue(adminIdentity())
	if _, c, err := a.tryReview(admin, in); err != nil || c != bookstore.CodeForbidden {
		t.Fatalf("admin: %v %q, want FORBIDDEN", err, c)
	}
	if got := a.review(ann.AccessToken, in); !onlyError(got.UserErrors, bookstore.CodeNotPurchased, "input", "bookId") ||
		got.Review != nil || got.Book != nil {
		t.Fatalf("never bought: %+v", got)
	}
	unknown := testBook{ID: base64.RawURLEncoding.EncodeToString([]byte("Book:" + uuid.NewString()))}
	if got := a.review(ann.AccessToken, reviewInput(unknown, 4, "", "")); !onlyError(got.UserErrors, bookstore.CodeNotFound, "input", "bookId") {
		t.Fatalf("unknown book: %+v", got)
	}

	// A guest order with ann's email is not ann's: an email is not proof of an account.
	gc := a.createCart("", []map[string]any{line(b, 1)}).Cart
	guest := a.checkout("", guestInput(gc.ID, "ann@example.com", "tok_visa"))
	a.deliver(rawID(t, "Order", guest.Order.ID))
	if got := a.review(ann.AccessToken, in); !onlyError(got.UserErrors, bookstore.CodeNotPurchased, "input", "bookId") {
		t.Fatalf("a delivered guest order with the same email: %+v", got)
	}
	// Bob's delivered order of the book is not ann's either, nor one of another book.
	// (These come before ann orders the book: the carrier moves every due shipment.)
	a.deliver(a.buy(bob.AccessToken, b))
	a.deliver(a.buy(ann.AccessToken, other))
	if got := a.review(ann.AccessToken, in); !onlyError(got.UserErrors, bookstore.CodeNotPurchased, "input", "bookId") {
		t.Fatalf("another customer's or another book's delivered order: %+v", got)
	}

	// Bought, paid, on its way: not yet.
	order := a.buy(ann.AccessToken, b)
	if got := a.review(ann.AccessToken, in); !onlyError(got.UserErrors, bookstore.CodeNotPurchased, "input", "bookId") {
		t.Fatalf("paid, not delivered: %+v", got)
	}
	if err := a.orders.Ship(context.Background(), order); err != nil {
		t.Fatal(err)
	}
	if s := a.orderStatus(order); s != "FULFILLING" {
		t.Fatalf("after the label the order is %s", s)
	}
	if got := a.review(ann.AccessToken, in); !onlyError(got.UserErrors, bookstore.CodeNotPurchased, "input", "bookId") {
		t.Fatalf("fulfilling: %+v", got)
	}
	// Delivered: the review is created and the book's mean moves in the same request.
	a.setRating(b, 3.5, 10)
	a.deliver(order)
	before := a.queryInt(`SELECT count(*) FROM outbox WHERE topic = $1 AND aggregate_id = $2`, "book.changed", b.uuid)
	got := a.review(ann.AccessToken, in)
	if len(got.UserErrors) != 0 || got.Review == nil || got.Book == nil {
		t.Fatalf("delivered: %+v", got)
	}
	if r := got.Review; r.Rating != 4 || r.Title != "Worth it" || r.Body != "Line one.\nLine two." || r.ReviewerName != "Ann" {
		t.Fatalf("review %+v: want rating 4, trimmed title, LF body, first name only", r)
	}
	wantMean := (3.5*10 + 4) / 11
	if got.Book.ID != b.ID || got.Book.RatingCount != 11 || math.Abs(got.Book.Rating-wantMean) > 1e-12 {
		t.Fatalf("book after the review %+v, want rating %v over 11", got.Book, wantMean)
	}
	if r, n := a.bookRating(b); n != 11 || math.Abs(r-wantMean) > 1e-12 {
		t.Fatalf("stored rating %v over %d", r, n)
	}
	if n := a.queryInt(`SELECT count(*) FROM outbox WHERE topic = $1 AND aggregate_id = $2`, "book.changed", b.uuid); n != before+1 {
		t.Fatalf("book.changed events %d -> %d, want one more", before, n)
	}
	var page struct {
		Book struct {
			Reviews struct {
				Edges []struct {
					Node struct{ ID, ReviewerName string }
				}
			}
		}
	}
	a.ok(`query($id: ID!) { book(id: $id) { reviews(first: 1) { edges { node { id reviewerName } } } } }`,
		map[string]any{"id": b.ID}, &page)
	if e := page.Book.Reviews.Edges; len(e) != 1 || e[0].Node.ID != got.Review.ID || e[0].Node.ReviewerName != "Ann" {
		t.Fatalf("the book's newest review: %+v, want %s", e, got.Review.ID)
	}
	var stored uuid.UUID
	if err := a.db.Pool.QueryRow(context.Background(), `SELECT customer_id FROM reviews WHERE id = $1`,
		rawID(t, "Review", got.Review.ID)).Scan(&stored); err != nil || globalCustomer(stored) != ann.Customer.ID {
		t.Fatalf("review author %s (%v), want ann %s", stored, err, ann.Customer.ID)
	}

	// Once per book: nothing changes the second time.
	again := a.review(ann.AccessToken, reviewInput(b, 1, "Changed my mind", ""))
	if !onlyError(again.UserErrors, bookstore.CodeAlreadyReviewed, "input", "bookId") || again.Review != nil {
		t.Fatalf("second review: %+v", again)
	}
	if r, n := a.bookRating(b); n != 11 || math.Abs(r-wantMean) > 1e-12 {
		t.Fatalf("after the refused second review: %v over %d", r, n)
	}

	// A returned order counts: the buyer had the book in hand.
	carl := a.register("carl@example.com", "Carl")
	co := a.buy(carl.AccessToken, b)
	a.deliver(co)
	a.returned(co)
	if got := a.review(carl.AccessToken, reviewInput(b, 2, "", "")); len(got.UserErrors) != 0 || got.Book.RatingCount != 12 {
		t.Fatalf("returned order: %+v", got)
	}
}

// globalCustomer is a customer's global id.
func globalCustomer(id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte("Customer:" + id.String()))
}

// TestReviewCreateInvalidInput: every malformed field is a BAD_USER_INPUT userError with
// its path, all of them at once, and nothing is written — even for a buyer.
func TestReviewCreateInvalidInput(t *testing.T) {
	a := newReviewAPI(t, 5, false)
	b := a.cartBooks(1, 10)[0]
	ann := a.register("ann@example.com", "Ann")
	a.deliver(a.buy(ann.AccessToken, b))
	long := func(n int) string { return strings.Repeat("é", n) } // 2 bytes each: lengths are in characters
	for _, c := range []struct {
		name   string
		in     map[string]any
		fields [][]string
	}{
		{"rating 0", reviewInput(b, 0, "", ""), [][]string{{"input", "rating"}}},
		{"rating 6", reviewInput(b, 6, "", ""), [][]string{{"input", "rating"}}},
		{"rating -1", reviewInput(b, -1, "", ""), [][]string{{"input", "rating"}}},
		{"title of 121 characters", reviewInput(b, 3, long(121), ""), [][]string{{"input", "title"}}},
		{"title with a line break", reviewInput(b, 3, "two\nlines", ""), [][]string{{"input", "title"}}},
		{"title with a bell", reviewInput(b, 3, "ding\a", ""), [][]string{{"input", "title"}}},
		{"body of 5001 characters", reviewInput(b, 3, "", long(5001)), [][]string{{"input", "body"}}},
		{"body with NUL", reviewInput(b, 3, "", "a\x00b"), [][]string{{"input", "body"}}},
		{"body with an escape sequence", reviewInput(b, 3, "", "red \x1b[31m text"), [][]string{{"input", "body"}}},
		{"body with DEL", reviewInput(b, 3, "", "a\x7fb"), [][]string{{"input", "body"}}},
		{"body with a C1 control", reviewInput(b, 3, "", "a\u0085b"), [][]string{{"input", "body"}}},
		{"malformed book id", map[string]any{"bookId": "nope", "rating": 3}, [][]string{{"input", "bookId"}}},
		{"an author id", map[string]any{"bookId": base64.RawURLEncoding.EncodeToString([]byte("Author:" + b.uuid.String())), "rating": 3},
			[][]string{{"input", "bookId"}}},
		{"everything at once", map[string]any{"bookId": "nope", "rating": 9, "title": long(200), "body": "\x01"},
			[][]string{{"input", "bookId"}, {"input", "rating"}, {"input", "title"}, {"input", "body"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := a.review(ann.AccessToken, c.in)
			if got.Review != nil || got.Book != nil || len(got.UserErrors) != len(c.fields) {
				t.Fatalf("got %+v, want userErrors on %v", got, c.fields)
			}
			for i, f := range c.fields {
				if got.UserErrors[i].Code != bookstore.CodeBadUserInput || !fieldIs(got.UserErrors[i], f...) {
					t.Errorf("userError %d = %+v, want BAD_USER_INPUT on %v", i, got.UserErrors[i], f)
				}
			}
		})
	}
	if n := a.queryInt(`SELECT count(*) FROM reviews WHERE customer_id IS NOT NULL`); n != 0 {
		t.Fatalf("%d reviews written by invalid requests", n)
	}
	// The limits are inclusive, after trimming.
	ok := a.review(ann.AccessToken, reviewInput(b, 5, " \t"+long(120)+"  ", long(5000)+"\n\n"))
	if len(ok.UserErrors) != 0 || ok.Review == nil || ok.Review.Title != long(120) || ok.Review.Body != long(5000) {
		t.Fatalf("at the limits: %+v", ok.UserErrors)
	}
}

// TestConcurrentReviewsOfOneBook: 50 buyers review one book at once: every review
// counts and the rating is the mean of them all; one buyer reviewing in ten requests at
// once gets one review.
func TestConcurrentReviewsOfOneBook(t *testing.T) {
	a := newReviewAPI(t, 5, false)
	bs := a.cartBooks(3, 200)
	b := bs[0]
	const n = 50
	tokens := make([]string, n)
	for i := range n {
		s := a.register(fmt.Sprintf("buyer%d@example.com", i), fmt.Sprintf("Buyer %d", i))
		a.deliver(a.buy(s.AccessToken, b))
		tokens[i] = s.AccessToken
	}
	a.setRating(b, 0, 0)
	// The statements of one review alone, to tell how many the contention adds.
	solo := a.register("solo@example.com", "Solo")
	a.deliver(a.buy(solo.AccessToken, bs[2]))
	q0 := a.queries.n.Load()
	a.review(solo.AccessToken, reviewInput(bs[2], 3, "", ""))
	one := a.queries.n.Load() - q0
	rating := func(i int) int { return (i*7)%5 + 1 }
	var mu sync.Mutex
	var failed []string
	start, q1 := time.Now(), a.queries.n.Load()
	hammer(n, func(i int) {
		got, c, err := a.tryReview(tokens[i], reviewInput(b, rating(i), fmt.Sprintf("Review %d", i), ""))
		if err != nil || c != "" || len(got.UserErrors) != 0 || got.Review == nil {
			mu.Lock()
			failed = append(failed, fmt.Sprintf("buyer %d: %v %s %+v", i, err, c, got.UserErrors))
			mu.Unlock()
		}
	})
	t.Logf("%d concurrent reviews of one book in %s, %.1f SQL statements each (%d for one alone)",
		n, time.Since(start).Round(time.Millisecond), float64(a.queries.n.Load()-q1)/n, one)
	if failed != nil {
		t.Fatalf("concurrent reviews failed: %v", failed)
	}
	sum := 0
	for i := range n {
		sum += rating(i)
	}
	r, count := a.bookRating(b)
	if want := float64(sum) / n; count != n || math.Abs(r-want) > 1e-9 {
		t.Fatalf("rating %v over %d, want the mean %v over %d", r, count, want, n)
	}
	if got := a.queryInt(`SELECT count(*) FROM reviews WHERE book_id = $1 AND customer_id IS NOT NULL`, b.uuid); got != n {
		t.Fatalf("%d reviews stored, want %d", got, n)
	}

	// One buyer, ten requests at once: one review, nine ALREADY_REVIEWED.
	other := bs[1]
	a.setRating(other, 0, 0)
	s := a.register("eager@example.com", "Eager")
	a.deliver(a.buy(s.AccessToken, other))
	codes := map[string]int{}
	hammer(10, func(i int) {
		got, c, err := a.tryReview(s.AccessToken, reviewInput(other, 5, "", ""))
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil || c != "":
			codes[fmt.Sprintf("error %v %s", err, c)]++
		case len(got.UserErrors) == 0:
			codes["created"]++
		default:
			codes[got.UserErrors[0].Code]++
		}
	})
	if codes["created"] != 1 || codes[bookstore.CodeAlreadyReviewed] != 9 {
		t.Fatalf("ten concurrent reviews by one buyer: %v", codes)
	}
	if r, c := a.bookRating(other); c != 1 || r != 5 {
		t.Fatalf("after one buyer's ten requests: %v over %d", r, c)
	}
}

// TestReviewReachesSearchAndCachedPages: the review's outbox event, relayed as the
// server does (search index, then the cache broadcast), puts the new rating in the
// search index and replaces the cached anonymous page of the book.
func TestReviewReachesSearchAndCachedPages(t *testing.T) {
	a := newReviewAPI(t, 10, true)
	b := a.cartBooks(1, 10)[0]
	ann := a.register("ann@example.com", "Ann")
	a.deliver(a.buy(ann.AccessToken, b))
	ctx := context.Background()
	relay := &events.Relay{Outbox: a.db.Outbox, Log: discardLog(), Handlers: []events.Handler{
		events.Then(&events.SearchIndexer{DB: a.db, Index: a.index}, &events.CatalogBroadcast{OnChange: a.advance})}}
	// A rating of 1 over 1, known to the index.
	a.setRating(b, 1, 1)
	if err := a.db.Outbox.Notify(ctx, "book.changed", []uuid.UUID{b.uuid}); err != nil {
		t.Fatal(err)
	}
	if err := relay.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	minRating := 2.9
	rated := func() bool {
		t.Helper()
		res, err := a.index.Search(ctx, search.Query{Filter: search.Filter{MinRating: &minRating}, Limit: search.MaxLimit, SkipFacets: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range res.Hits {
			if h.ID == b.uuid {
				return true
			}
		}
		return false
	}
	if rated() {
		t.Fatal("the book is rated >= 2.9 in the index before its review")
	}
	const page = `query($id: ID!) { book(id: $id) { rating ratingCount reviews(first: 5) { totalCount } } }`
	type bookPage struct {
		Book struct {
			Rating      float64
			RatingCount int64
			Reviews     struct{ TotalCount int64 }
		}
	}
	var cached bookPage
	a.ok(page, map[string]any{"id": b.ID}, &cached)
	q := a.queries.n.Load()
	var again bookPage
	a.ok(page, map[string]any{"id": b.ID}, &again)
	if a.queries.n.Load() != q || cached.Book.RatingCount != 1 || cached.Book.Rating != 1 {
		t.Fatalf("the anonymous book page is not served from the cache (%d queries): %+v", a.queries.n.Load()-q, cached)
	}

	if got := a.review(ann.AccessToken, reviewInput(b, 5, "Great", "")); len(got.UserErrors) != 0 || got.Book.RatingCount != 2 {
		t.Fatalf("review: %+v", got)
	}
	var stale bookPage
	a.ok(page, map[string]any{"id": b.ID}, &stale)
	if stale != cached || rated() {
		t.Fatalf("before the relay ran: page %+v (cached %+v), index rated %v; the event is what updates them", stale, cached, rated())
	}
	if err := relay.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	var fresh bookPage
	a.ok(page, map[string]any{"id": b.ID}, &fresh)
	if fresh.Book.RatingCount != 2 || fresh.Book.Rating != 3 || fresh.Book.Reviews.TotalCount != cached.Book.Reviews.TotalCount+1 {
		t.Fatalf("the book page after the event %+v, want rating 3 over 2 and one more review than %+v", fresh, cached)
	}
	if !rated() {
		t.Fatal("the search index does not have the book's new rating 3 after the event")
	}
}
