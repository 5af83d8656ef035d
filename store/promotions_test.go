package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// claims remembers which orders claimed a promotion for a redeemer, so tests can release
// a given redeemer's use.
var (
	claimsMu sync.Mutex
	claims   = map[string][]uuid.UUID{} // promotion id + redeemer -> orders
)

func claim(db *store.DB, p *bookstore.Promotion, redeemer []byte) error {
	order := uuid.New()
	err := db.ExecuteTx(context.Background(), func(tx pgx.Tx) error {
		return db.Promotions.Claim(context.Background(), tx, p.ID, order, redeemer, time.Now())
	})
	if err == nil {
		claimsMu.Lock()
		k := p.ID.String() + string(redeemer)
		claims[k] = append(claims[k], order)
		claimsMu.Unlock()
	}
	return err
}

// release gives back one use claimed for redeemer (by the oldest order holding one).
func release(db *store.DB, p *bookstore.Promotion, redeemer []byte) error {
	claimsMu.Lock()
	k := p.ID.String() + string(redeemer)
	orders := claims[k]
	if len(orders) == 0 {
		claimsMu.Unlock()
		return errors.New("no claim to release")
	}
	claims[k] = orders[1:]
	claimsMu.Unlock()
	return releaseOrder(db, p, orders[0])
}

func releaseOrder(db *store.DB, p *bookstore.Promotion, order uuid.UUID) error {
	return db.ExecuteTx(context.Background(), func(tx pgx.Tx) error {
		return db.Promotions.Release(context.Background(), tx, p.ID, order)
	})
}

func used(t *testing.T, db *store.DB, p *bookstore.Promotion) int64 {
	t.Helper()
	got, err := db.Promotions.ByID(context.Background(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got.Used
}

// TestPromotionLedgerHammer: 200 concurrent claims of a code limited to 10 uses get
// exactly 10, and releases give the uses back.
func TestPromotionLedgerHammer(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		limit := int64(10)
		p := &bookstore.Promotion{Code: "HAMMER", Kind: bookstore.DiscountPercent, Value: 10, UsageLimit: &limit, Active: true}
		if err := db.Promotions.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		var won, refused atomic.Int32
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := claim(db, p, []byte{byte(i), byte(i >> 8)})
				switch {
				case err == nil:
					won.Add(1)
				case errors.Is(err, store.ErrPromotionUnavailable):
					refused.Add(1)
				default:
					t.Errorf("claim: %v", err)
				}
			}()
		}
		wg.Wait()
		if won.Load() != 10 || refused.Load() != 190 || used(t, db, p) != 10 {
			t.Fatalf("claims: %d won, %d refused, used %d; want 10, 190, 10", won.Load(), refused.Load(), used(t, db, p))
		}
		claimsMu.Lock()
		var held []uuid.UUID
		for k, orders := range claims {
			if k[:36] == p.ID.String() {
				held = append(held, orders...)
			}
		}
		claimsMu.Unlock()
		for _, order := range held[:3] {
			if err := releaseOrder(db, p, order); err != nil {
				t.Fatal(err)
			}
			// Releasing the same order again gives back nothing more.
			if err := releaseOrder(db, p, order); err != nil {
				t.Fatal(err)
			}
		}
		// An order that never claimed gives back nothing.
		if err := releaseOrder(db, p, uuid.New()); err != nil {
			t.Fatal(err)
		}
		if n := used(t, db, p); n != 7 {
			t.Fatalf("used %d after 3 releases, want 7", n)
		}
		won.Store(0)
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if claim(db, p, nil) == nil {
					won.Add(1)
				}
			}()
		}
		wg.Wait()
		if won.Load() != 3 || used(t, db, p) != 10 {
			t.Fatalf("after releases: %d more claims won (used %d), want 3 (10)", won.Load(), used(t, db, p))
		}
	})
}

func TestPromotionClaimRules(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		one := int64(1)
		per := &bookstore.Promotion{Code: "ONCE", Kind: bookstore.DiscountFixed, Value: 100, PerCustomerLimit: &one, Active: true}
		past := time.Now().Add(-time.Hour)
		expired := &bookstore.Promotion{Code: "OLD", Kind: bookstore.DiscountFixed, Value: 100, EndsAt: &past, Active: true}
		off := &bookstore.Promotion{Code: "OFF", Kind: bookstore.DiscountFixed, Value: 100, Active: true}
		for _, p := range []*bookstore.Promotion{per, expired, off} {
			if err := db.Promotions.Create(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Promotions.Deactivate(ctx, off.ID); err != nil {
			t.Fatal(err)
		}
		ann, bob := []byte("ann-index"), []byte("bob-index")

		// Per-customer: once per redeemer, concurrently too, and a refused second claim
		// leaves the total count alone (its transaction rolled back).
		var won atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if claim(db, per, ann) == nil {
					won.Add(1)
				}
			}()
		}
		wg.Wait()
		if won.Load() != 1 || used(t, db, per) != 1 {
			t.Fatalf("ann claimed %d times (used %d), want once", won.Load(), used(t, db, per))
		}
		if err := claim(db, per, bob); err != nil {
			t.Fatalf("bob's first claim: %v", err)
		}
		if err := release(db, per, ann); err != nil {
			t.Fatal(err)
		}
		if err := claim(db, per, ann); err != nil {
			t.Fatalf("ann's claim after her release: %v", err)
		}
		if err := claim(db, per, nil); err == nil {
			t.Fatal("a per-customer limited claim without a redeemer succeeded")
		}
		for name, p := range map[string]*bookstore.Promotion{"expired": expired, "deactivated": off} {
			if err := claim(db, p, nil); !errors.Is(err, store.ErrPromotionUnavailable) {
				t.Errorf("%s: %v, want ErrPromotionUnavailable", name, err)
			}
		}

		// Codes are unique; ByCodes finds normalised codes.
		if err := db.Promotions.Create(ctx, &bookstore.Promotion{Code: "ONCE", Kind: bookstore.DiscountFixed, Value: 1, Active: true}); bookstore.ErrorCode(err) != bookstore.CodeConflict {
			t.Fatalf("duplicate code: %v", err)
		}
		ps, err := db.Promotions.ByCodes(ctx, []string{"ONCE", "OLD", "NOPE"})
		if err != nil || len(ps) != 2 {
			t.Fatalf("by codes: %d, %v", len(ps), err)
		}
	})
}
