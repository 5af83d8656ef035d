package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

var settleBook = uuid.New()

// pendingOrder inserts a PENDING_PAYMENT order of one line (total 2,500 USD cents) with
// its PLACED event, as checkout's tx 1 leaves it; brand, when set, is a card already on
// the order.
func pendingOrder(t *testing.T, db *store.DB, customer *uuid.UUID, brand string) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	id := uuid.New()
	o := &store.OrderRecord{ID: id, Number: "BK-" + id.String()[:13], CustomerID: customer, EmailIndex: []byte{1},
		ContactEnc: []byte{2}, AccessHash: []byte{3}, CartRef: id[:], Status: bookstore.OrderPendingPayment,
		Cost:           bookstore.Cost{Currency: "USD", SubtotalCents: 2000, ShippingCents: 500, TotalCents: 2500},
		ShippingMethod: "STANDARD", Country: "GB", Payment: bookstore.OrderPayment{Method: "CARD", Status: "PENDING"},
		Lines: []bookstore.OrderLine{{BookID: settleBook, Title: "T", Quantity: 2, UnitPriceCents: 1000, TotalCents: 2000}}}
	if err := db.ExecuteTx(ctx, func(tx pgx.Tx) error { return db.Orders.Insert(ctx, tx, o) }); err != nil {
		t.Fatal(err)
	}
	if brand != "" {
		if _, err := db.Pool.Exec(ctx, `UPDATE orders SET payment_brand = $2, payment_last4 = '1111' WHERE id = $1`, id, brand); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// settledState is what settling wrote for an order, with what differs between two
// orders (ids, numbers, times) checked and then cleared.
type settledState struct {
	Order    *store.OrderRecord
	Seq      int64
	Events   []bookstore.OrderEvent
	Payloads []map[string]any
}

func settledOf(t *testing.T, db *store.DB, id uuid.UUID) settledState {
	t.Helper()
	ctx := context.Background()
	o, err := db.Orders.ByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := db.Orders.LastEventSeq(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := db.Orders.Events(ctx, id, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if o.PaidAt == nil || !o.PaidAt.Equal(o.UpdatedAt) {
		t.Errorf("order %s: paid_at %v, updated_at %v: want both the settlement's time", id, o.PaidAt, o.UpdatedAt)
	}
	at := o.UpdatedAt
	for i := range evs {
		if i > 0 && !evs[i].At.Equal(at) {
			t.Errorf("order %s: event %d at %v, want the settlement's time %v", id, evs[i].Seq, evs[i].At, at)
		}
		evs[i].OrderID, evs[i].At = uuid.Nil, time.Time{}
	}
	rows, err := db.Pool.Query(ctx, `SELECT payload FROM outbox WHERE aggregate_id = $1 AND topic = $2 ORDER BY created_at, id`,
		id, store.TopicOrderPaid)
	if err != nil {
		t.Fatal(err)
	}
	raws, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	var payloads []map[string]any
	for _, raw := range raws {
		// Consumers decode the payload into OrderEventPayload: every field is one of its
		// own and at is a time.Time.
		var p store.OrderEventPayload
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("order %s payload %s: %v", id, raw, err)
		}
		if !p.At.Equal(at) || p.Seq != seq || (p.CustomerID == nil) != (o.CustomerID == nil) ||
			(p.CustomerID != nil && *p.CustomerID != *o.CustomerID) {
			t.Errorf("order %s payload %s (%+v): want seq %d, at %v, customer %v", id, raw, p, seq, at, o.CustomerID)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "at")
		payloads = append(payloads, m)
	}
	o.ID, o.Number, o.CartRef, o.CreatedAt, o.UpdatedAt, o.PaidAt = uuid.Nil, "", nil, time.Time{}, time.Time{}, nil
	return settledState{Order: o, Seq: seq, Events: evs, Payloads: payloads}
}

// SettlePaid writes what Lock and Settle write for a paid order: the same order row,
// event and outbox payload, for every shape of order and charge.
func TestSettlePaidWritesWhatTheLockedSettleWrites(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		customer := uuid.New()
		idx := make([]byte, 32)
		copy(idx, customer[:])
		if err := db.Customers.Create(ctx, &store.Customer{ID: customer, EmailIndex: idx, EmailEnc: []byte{1},
			NameEnc: []byte{1}, PasswordHash: "x"}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name     string
			customer *uuid.UUID
			onOrder  string // card brand the order has already
			charge   bookstore.OrderPayment
			amount   int64
			currency string
		}{
			{"guest, card", nil, "", bookstore.OrderPayment{Status: "SUCCEEDED", Reference: "pi_1", Brand: "visa", Last4: "4242"}, 2500, "USD"},
			{"customer, wallet", &customer, "", bookstore.OrderPayment{Status: "SUCCEEDED", Reference: "pi_2", Brand: "visa", Last4: "4242", Wallet: "apple_pay"}, 2500, "usd"},
			{"no card details keeps the order's", nil, "amex", bookstore.OrderPayment{Status: "SUCCEEDED", Reference: "pi_3"}, 0, ""},
			{"card details replace the order's", &customer, "amex", bookstore.OrderPayment{Status: "SUCCEEDED", Brand: "mastercard", Last4: "4444"}, 2500, "USD"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				fast, slow := pendingOrder(t, db, tc.customer, tc.onOrder), pendingOrder(t, db, tc.customer, tc.onOrder)
				got, ok, err := db.Orders.SettlePaid(ctx, fast, tc.charge, tc.amount, tc.currency, "")
				if err != nil || !ok {
					t.Fatalf("SettlePaid: %v, %v", ok, err)
				}
				var locked *store.OrderRecord
				err = db.ExecuteTx(ctx, func(tx pgx.Tx) error {
					o, err := db.Orders.Lock(ctx, tx, slow)
					if err != nil {
						return err
					}
					// checkout.Settle's payment for a succeeded charge.
					p := o.Payment
					p.Status, p.Reference = tc.charge.Status, tc.charge.Reference
					if tc.charge.Brand != "" {
						p.Brand, p.Last4, p.Wallet = tc.charge.Brand, tc.charge.Last4, tc.charge.Wallet
					}
					locked = o
					return db.Orders.Settle(ctx, tx, o, bookstore.OrderPaid, p)
				})
				if err != nil {
					t.Fatal(err)
				}
				// The records returned say what was written.
				for _, r := range []*store.OrderRecord{got, locked} {
					if r.Status != bookstore.OrderPaid || r.PaidAt == nil || !r.PaidAt.Equal(r.UpdatedAt) {
						t.Errorf("record returned: %s, paid %v, updated %v", r.Status, r.PaidAt, r.UpdatedAt)
					}
				}
				if got.Payment != locked.Payment {
					t.Errorf("payment returned: %+v by SettlePaid, %+v by Settle", got.Payment, locked.Payment)
				}
				stored, err := db.Orders.ByID(ctx, fast)
				if err != nil {
					t.Fatal(err)
				}
				if stored.Payment != got.Payment || !stored.UpdatedAt.Equal(got.UpdatedAt) || !stored.PaidAt.Equal(*got.PaidAt) ||
					!reflect.DeepEqual(stored.CustomerID, got.CustomerID) || stored.Cost != got.Cost {
					t.Errorf("SettlePaid returned %+v, stored %+v", got, stored)
				}
				f, s := settledOf(t, db, fast), settledOf(t, db, slow)
				if f.Seq != 2 || len(f.Events) != 2 || f.Events[1].Type != bookstore.OrderEventPaid || len(f.Payloads) != 1 {
					t.Errorf("fast path wrote seq %d, events %+v, %d order_paid rows", f.Seq, f.Events, len(f.Payloads))
				}
				if !reflect.DeepEqual(f, s) {
					t.Errorf("the one-statement settle wrote\n%+v\n%+v\n%+v\nthe locked settle\n%+v\n%+v\n%+v",
						f.Order, f.Events, f.Payloads, s.Order, s.Events, s.Payloads)
				}
			})
		}
	})
}

// SettlePaid changes nothing, and says so, for an order it may not pay: the locked
// path then decides.
func TestSettlePaidRefuses(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		charge := bookstore.OrderPayment{Status: "SUCCEEDED", Reference: "pi_1", Brand: "visa", Last4: "4242"}
		paid := pendingOrder(t, db, nil, "")
		if _, ok, err := db.Orders.SettlePaid(ctx, paid, charge, 2500, "USD", ""); err != nil || !ok {
			t.Fatalf("SettlePaid: %v, %v", ok, err)
		}
		before := settledOf(t, db, paid)
		for _, tc := range []struct {
			name     string
			id       uuid.UUID
			amount   int64
			currency string
		}{
			{"another amount", pendingOrder(t, db, nil, ""), 2499, "USD"},
			{"another currency", pendingOrder(t, db, nil, ""), 2500, "EUR"},
			{"settled already", paid, 2500, "USD"},
			{"no such order", uuid.New(), 2500, "USD"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				o, ok, err := db.Orders.SettlePaid(ctx, tc.id, charge, tc.amount, tc.currency, "")
				if err != nil || ok || o != nil {
					t.Fatalf("SettlePaid: %v, %v, %v; want false", o, ok, err)
				}
				if tc.id == paid {
					if after := settledOf(t, db, paid); !reflect.DeepEqual(after, before) {
						t.Errorf("a second settle changed the paid order:\n%+v\n%+v", before, after)
					}
					return
				}
				var events, rows int64
				if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM order_events WHERE order_id = $1 AND type = 'PAID'),
					(SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND topic = 'order_paid')`, tc.id).Scan(&events, &rows); err != nil {
					t.Fatal(err)
				}
				if events != 0 || rows != 0 {
					t.Errorf("%d PAID events, %d order_paid rows", events, rows)
				}
				o, err = db.Orders.ByID(ctx, tc.id)
				if bookstore.ErrorCode(err) == bookstore.CodeNotFound && tc.name == "no such order" {
					return
				}
				seq, serr := db.Orders.LastEventSeq(ctx, tc.id)
				if err != nil || serr != nil || o.Status != bookstore.OrderPendingPayment || o.Payment.Status != "PENDING" ||
					o.Payment.Reference != "" || o.PaidAt != nil || seq != 1 {
					t.Errorf("refused order: %v %v, %+v, seq %d", err, serr, o, seq)
				}
			})
		}
	})
}

// SettlePaid deletes the order's cart only when it pays the order: a refusal (another
// amount, settled already) leaves the cart as it is.
func TestSettlePaidDeletesTheCartOnlyWhenItPays(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		charge := bookstore.OrderPayment{Status: "SUCCEEDED", Reference: "pi_1"}
		mkCart := func() string {
			now := time.Now()
			c := &bookstore.Cart{ID: uuid.NewString(), Lines: []bookstore.CartLine{{BookID: settleBook, Quantity: 1}},
				CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}
			if err := db.Carts.Create(ctx, c); err != nil {
				t.Fatal(err)
			}
			return c.ID
		}
		exists := func(id string) bool {
			var n int
			if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM carts WHERE id = $1`, id).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n == 1
		}
		refused, other := pendingOrder(t, db, nil, ""), mkCart()
		if _, ok, err := db.Orders.SettlePaid(ctx, refused, charge, 2499, "USD", other); err != nil || ok {
			t.Fatalf("SettlePaid of another amount: %v, %v", ok, err)
		}
		if !exists(other) {
			t.Fatal("a refused settlement deleted the cart")
		}
		paid, spent := pendingOrder(t, db, nil, ""), mkCart()
		if _, ok, err := db.Orders.SettlePaid(ctx, paid, charge, 2500, "USD", spent); err != nil || !ok {
			t.Fatalf("SettlePaid: %v, %v", ok, err)
		}
		if exists(spent) {
			t.Fatal("the paid order's cart is still there")
		}
		if _, ok, err := db.Orders.SettlePaid(ctx, paid, charge, 2500, "USD", other); err != nil || ok {
			t.Fatalf("SettlePaid of a paid order: %v, %v", ok, err)
		}
		if !exists(other) {
			t.Fatal("settling a paid order again deleted a cart")
		}
	})
}
