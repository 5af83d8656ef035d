package cart_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/cart"
	cartredis "github.com/shopfront/bookstore/cart/redis"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// stores runs fn against every cart store: the database's and Redis's (each with its own
// database or key prefix), so both keep the same contract.
func stores(t *testing.T, fn func(t *testing.T, s cart.Store, db *store.DB)) {
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		fn(t, db.Carts, db)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t) // for customers (carts reference them in the database store only)
		fn(t, cartredis.New(testdb.Redis(t), "test:"+cart.NewID()[:12]+":"), db)
	})
}

func newCustomer(t *testing.T, db *store.DB) uuid.UUID {
	t.Helper()
	id := uuid.New()
	idx := make([]byte, 32)
	copy(idx, id[:])
	err := db.Customers.Create(context.Background(), &store.Customer{ID: id, EmailIndex: idx, EmailEnc: []byte{1}, NameEnc: []byte{1},
		PasswordHash: "x", Role: "CUSTOMER"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newCart(owner *uuid.UUID, ttl time.Duration, lines ...bookstore.CartLine) *bookstore.Cart {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return &bookstore.Cart{ID: cart.NewID(), CustomerID: owner, Lines: lines, DiscountCodes: []string{"WELCOME10"},
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(ttl)}
}

func TestStoreContract(t *testing.T) {
	stores(t, func(t *testing.T, s cart.Store, db *store.DB) {
		ctx := context.Background()
		book := uuid.New()
		cust := newCustomer(t, db)

		c := newCart(nil, time.Hour, bookstore.CartLine{BookID: book, Quantity: 2})
		if err := s.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.CustomerID != nil || len(got.Lines) != 1 || got.Lines[0] != c.Lines[0] || got.DiscountCodes[0] != "WELCOME10" ||
			got.Version != 1 || !got.ExpiresAt.Equal(c.ExpiresAt) || !got.CreatedAt.Equal(c.CreatedAt) {
			t.Fatalf("round trip: got %+v, want %+v", got, c)
		}

		if _, err := s.Get(ctx, cart.NewID()); !errors.Is(err, bookstore.ErrCartNotFound) {
			t.Fatalf("missing cart: %v, want ErrCartNotFound", err)
		}
		old := newCart(nil, -time.Second)
		if err := s.Create(ctx, old); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, old.ID); !errors.Is(err, bookstore.ErrCartNotFound) {
			t.Fatalf("expired cart: %v, want ErrCartNotFound", err)
		}

		// An error from fn writes nothing; a write bumps the version and the expiry.
		boom := errors.New("boom")
		if _, err := s.Update(ctx, c.ID, func(c *bookstore.Cart) error { c.Lines = nil; return boom }); !errors.Is(err, boom) {
			t.Fatalf("update error: %v", err)
		}
		later := c.ExpiresAt.Add(time.Hour)
		up, err := s.Update(ctx, c.ID, func(c *bookstore.Cart) error {
			c.Lines[0].Quantity = 5
			c.ExpiresAt = later
			return nil
		})
		if err != nil || up.Version != 2 {
			t.Fatalf("update: %v, version %d", err, up.Version)
		}
		got, _ = s.Get(ctx, c.ID)
		if got.Lines[0].Quantity != 5 || got.Version != 2 || !got.ExpiresAt.Equal(later) {
			t.Fatalf("after update: %+v", got)
		}
		if _, err := s.Update(ctx, cart.NewID(), func(*bookstore.Cart) error { return nil }); !errors.Is(err, bookstore.ErrCartNotFound) {
			t.Fatalf("update of a missing cart: %v", err)
		}

		// Current: the customer's latest cart.
		if _, err := s.Current(ctx, cust); !errors.Is(err, bookstore.ErrCartNotFound) {
			t.Fatalf("no cart yet: %v", err)
		}
		first := newCart(&cust, time.Hour)
		second := newCart(&cust, time.Hour)
		second.CreatedAt = first.CreatedAt.Add(time.Millisecond)
		for _, x := range []*bookstore.Cart{first, second} {
			if err := s.Create(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		cur, err := s.Current(ctx, cust)
		if err != nil || cur.ID != second.ID || cur.CustomerID == nil || *cur.CustomerID != cust {
			t.Fatalf("current: %+v, %v; want %s", cur, err, second.ID)
		}
		// The latest created stays current: updating an older cart does not move it,
		// and a newer cart that expired gives way to the latest live one.
		if _, err := s.Update(ctx, first.ID, func(c *bookstore.Cart) error {
			c.Lines = []bookstore.CartLine{{BookID: book, Quantity: 1}}
			c.UpdatedAt, c.ExpiresAt = time.Now().UTC(), time.Now().UTC().Add(2*time.Hour)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		expired := newCart(&cust, -time.Second)
		expired.CreatedAt = second.CreatedAt.Add(time.Millisecond)
		if err := s.Create(ctx, expired); err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second time after Redis forgot the expired cart
			if cur, err := s.Current(ctx, cust); err != nil || cur.ID != second.ID {
				t.Fatalf("current after updating the older cart: %+v, %v; want %s", cur, err, second.ID)
			}
		}

		// Take: exactly one of many concurrent takes gets the cart.
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := s.Take(ctx, c.ID)
				switch {
				case err == nil && got.Lines[0].Quantity == 5:
					wins.Add(1)
				case !errors.Is(err, bookstore.ErrCartNotFound):
					t.Errorf("take: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d takes got the cart, want 1", wins.Load())
		}
		if _, err := s.Get(ctx, c.ID); !errors.Is(err, bookstore.ErrCartNotFound) {
			t.Fatalf("taken cart still there: %v", err)
		}
	})
}

// TestConcurrentEditsLoseNothing: many devices add to one cart at once; every increment
// is in the final quantities.
func TestConcurrentEditsLoseNothing(t *testing.T) {
	stores(t, func(t *testing.T, s cart.Store, _ *store.DB) {
		ctx := context.Background()
		c := newCart(nil, time.Hour)
		if err := s.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
		books := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
		const workers, each = 16, 20
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					b := books[(w+i)%len(books)]
					_, err := s.Update(ctx, c.ID, func(c *bookstore.Cart) error {
						if at := c.Line(b); at >= 0 {
							c.Lines[at].Quantity++
						} else {
							c.Lines = append(c.Lines, bookstore.CartLine{BookID: b, Quantity: 1})
						}
						return nil
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		got, err := s.Get(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Lines) != len(books) {
			t.Fatalf("%d lines, want %d", len(got.Lines), len(books))
		}
		for _, l := range got.Lines {
			if l.Quantity != workers*each/len(books) {
				t.Errorf("book %s: quantity %d, want %d", l.BookID, l.Quantity, workers*each/len(books))
			}
		}
		if got.Version != 1+workers*each {
			t.Errorf("version %d, want %d (one per write)", got.Version, 1+workers*each)
		}
	})
}
