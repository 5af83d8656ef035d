package checkout_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/cart"
	cartredis "github.com/shopfront/bookstore/cart/redis"
	"github.com/shopfront/bookstore/internal/testdb"
)

// The key is read inside tx 1 (with its first statements), so a retry whose cart is
// still there replays the first checkout instead of placing another: a declined
// payment leaves the cart intact. A retry whose cart is gone or emptied since is
// still a replay, not CART_NOT_FOUND or EMPTY_CART.
func TestReplayWhileTheCartRemains(t *testing.T) {
	e := newEnv(t, 10)
	id := e.cart(nil, nil, [2]int{0, 2})
	in := input(id, "declined-once", "tok_chargeDeclined")
	first, err := e.svc.Checkout(ctx, uuid.Nil, in)
	if err != nil || first.Order == nil || first.Order.Status != bookstore.OrderPaymentFailed {
		t.Fatalf("first checkout: %v %+v", err, first)
	}
	if _, err := e.carts.Get(ctx, id, uuid.Nil); err != nil {
		t.Fatalf("the declined checkout's cart: %v", err)
	}
	check := func(name string) {
		t.Helper()
		again, err := e.svc.Checkout(ctx, uuid.Nil, in)
		if err != nil || !again.Replayed || again.Order == nil || again.Order.ID != first.Order.ID ||
			again.Order.Status != bookstore.OrderPaymentFailed {
			t.Fatalf("%s: %v %+v, want the replay of order %s", name, err, again, first.Order.ID)
		}
		if n := e.scalar(`SELECT count(*) FROM orders`); n != 1 {
			t.Fatalf("%s: %d orders, want 1", name, n)
		}
		if n := e.scalar(`SELECT count(*) FROM test_psp_charges`); n != 1 {
			t.Fatalf("%s: %d charges, want 1", name, n)
		}
		if s := e.stock(0); s != 10 {
			t.Fatalf("%s: stock %d, want 10", name, s)
		}
	}
	check("the same request with the cart intact")

	if _, err := e.db.Pool.Exec(ctx, `UPDATE carts SET lines = '[]' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	check("the same request after the cart was emptied")

	if _, err := e.db.Carts.Take(ctx, id); err != nil {
		t.Fatal(err)
	}
	check("the same request after the cart was deleted")

	// A new key places a new order from a cart of its own.
	id2 := e.cart(nil, nil, [2]int{0, 1})
	res, err := e.svc.Checkout(ctx, uuid.Nil, input(id2, "declined-once-2", "tok_visa"))
	if err != nil || res.Replayed || res.Order == nil || res.Order.Status != bookstore.OrderPaid {
		t.Fatalf("a new key: %v %+v", err, res)
	}
}

// The paid cart is deleted by the statement that pays the order when the carts are in
// the order's database, and after it when they are elsewhere (Redis); a failed payment
// keeps it either way.
func TestPaidCartIsDeletedWhereverCartsAreKept(t *testing.T) {
	for _, where := range []string{"postgres", "redis"} {
		t.Run(where, func(t *testing.T) {
			e := newEnv(t, 10)
			st := cart.Store(e.db.Carts)
			if where == "redis" {
				st = cartredis.New(testdb.Redis(t), "keyfold:"+uuid.NewString()+":")
				e.carts = cart.New(cart.Config{Store: st})
				e.cfg.Carts = e.carts
				e.svc = e.service(e.cfg)
			}
			mk := func() string {
				now := time.Now()
				c := &bookstore.Cart{ID: cart.NewID(), Lines: []bookstore.CartLine{{BookID: e.books[0].ID, Quantity: 1}},
					CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}
				if err := st.Create(ctx, c); err != nil {
					t.Fatal(err)
				}
				return c.ID
			}
			failed := mk()
			res, err := e.svc.Checkout(ctx, uuid.Nil, input(failed, "f-"+where, "tok_chargeDeclined"))
			if err != nil || res.Order == nil || res.Order.Status != bookstore.OrderPaymentFailed {
				t.Fatalf("declined: %v %+v", err, res)
			}
			if _, err := st.Get(ctx, failed); err != nil {
				t.Fatalf("the declined order's cart: %v, want it kept", err)
			}
			paid := mk()
			res, err = e.svc.Checkout(ctx, uuid.Nil, input(paid, "p-"+where, "tok_visa"))
			if err != nil || res.Order == nil || res.Order.Status != bookstore.OrderPaid {
				t.Fatalf("paid: %v %+v", err, res)
			}
			if _, err := st.Get(ctx, paid); !errors.Is(err, bookstore.ErrCartNotFound) {
				t.Fatalf("the paid order's cart: %v, want ErrCartNotFound", err)
			}
			if _, err := st.Get(ctx, failed); err != nil {
				t.Fatalf("another cart after a paid checkout: %v", err)
			}
		})
	}
}
