package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// TestWebhookClaims walks an event through its claim states: first claim wins, a live
// claim keeps duplicates out, a stale one is taken over (its handler died), a released
// one is free at once, and a processed event is never claimed again.
func TestWebhookClaims(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := db.Webhooks
		claim := func(provider, id string, stale time.Duration) store.WebhookClaim {
			t.Helper()
			c, err := w.Claim(ctx, provider, id, "payment_intent.succeeded", stale)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		steps := []struct {
			name string
			do   func() store.WebhookClaim
			want store.WebhookClaim
		}{
			{"first claim", func() store.WebhookClaim { return claim("stripe", "evt_1", time.Hour) }, store.WebhookClaimed},
			{"duplicate while live is busy, not done", func() store.WebhookClaim { return claim("stripe", "evt_1", time.Hour) }, store.WebhookBusy},
			{"other provider's id is another event", func() store.WebhookClaim { return claim("other", "evt_1", time.Hour) }, store.WebhookClaimed},
			{"stale claim taken over", func() store.WebhookClaim {
				time.Sleep(5 * time.Millisecond)
				return claim("stripe", "evt_1", time.Millisecond)
			}, store.WebhookClaimed},
			{"released claim free at once", func() store.WebhookClaim {
				if err := w.Release(ctx, "stripe", "evt_1"); err != nil {
					t.Fatal(err)
				}
				return claim("stripe", "evt_1", time.Hour)
			}, store.WebhookClaimed},
			{"processed never again", func() store.WebhookClaim {
				if err := w.Done(ctx, "stripe", "evt_1"); err != nil {
					t.Fatal(err)
				}
				time.Sleep(5 * time.Millisecond)
				return claim("stripe", "evt_1", time.Millisecond)
			}, store.WebhookProcessed},
			{"release of a processed event is a no-op", func() store.WebhookClaim {
				if err := w.Release(ctx, "stripe", "evt_1"); err != nil {
					t.Fatal(err)
				}
				return claim("stripe", "evt_1", time.Millisecond)
			}, store.WebhookProcessed},
		}
		for _, s := range steps {
			if got := s.do(); got != s.want {
				t.Fatalf("%s: claim = %v, want %v", s.name, got, s.want)
			}
		}
	})
}

// TestPaymentIntents: the first intent recorded for a key stays (a racing charge reads
// it back), a void keeps the intent and its first time, and a void before any intent
// makes every later Record read the closed, intent-less row.
func TestPaymentIntents(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		in := db.Intents
		if _, err := in.ByKey(ctx, "stripe", "o-1"); !errors.Is(err, store.ErrPaymentIntentNotFound) {
			t.Fatalf("ByKey of nothing: %v", err)
		}
		r, err := in.Record(ctx, "stripe", "o-1", "pi_1", []byte{1})
		if err != nil || r.IntentID != "pi_1" || r.VoidedAt != nil {
			t.Fatalf("Record = %+v, %v", r, err)
		}
		if r, err = in.Record(ctx, "stripe", "o-1", "pi_2", []byte{2}); err != nil || r.IntentID != "pi_1" || r.RequestHash[0] != 1 {
			t.Fatalf("second Record = %+v, %v; want the first row", r, err)
		}
		v, err := in.Void(ctx, "stripe", "o-1")
		if err != nil || v.IntentID != "pi_1" || v.VoidedAt == nil {
			t.Fatalf("Void = %+v, %v; want the intent, voided", v, err)
		}
		if again, err := in.Void(ctx, "stripe", "o-1"); err != nil || !again.VoidedAt.Equal(*v.VoidedAt) {
			t.Fatalf("second Void = %+v, %v; want the first void's time", again, err)
		}
		if v, err = in.Void(ctx, "stripe", "o-2"); err != nil || v.IntentID != "" || v.VoidedAt == nil {
			t.Fatalf("Void before any intent = %+v, %v", v, err)
		}
		if r, err = in.Record(ctx, "stripe", "o-2", "pi_3", []byte{3}); err != nil || r.IntentID != "" || r.VoidedAt == nil {
			t.Fatalf("Record after Void = %+v, %v; want the closed row", r, err)
		}
	})
}

// TestPaymentIntentsRace: records and voids of one key at once leave one row, and every
// Record answers that row's intent.
func TestPaymentIntentsRace(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	for round := range 10 {
		key := fmt.Sprintf("o-race-%d", round)
		var wg sync.WaitGroup
		ids := make(chan string, 8)
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i%2 == 1 {
					if _, err := db.Intents.Void(ctx, "stripe", key); err != nil {
						t.Error(err)
					}
					return
				}
				r, err := db.Intents.Record(ctx, "stripe", key, fmt.Sprintf("pi_%d", i), []byte{1})
				if err != nil {
					t.Error(err)
					return
				}
				ids <- r.IntentID
			}()
		}
		wg.Wait()
		close(ids)
		final, err := db.Intents.ByKey(ctx, "stripe", key)
		if err != nil || final.VoidedAt == nil {
			t.Fatalf("%s: %+v, %v; want a voided row", key, final, err)
		}
		for id := range ids {
			if id != final.IntentID {
				t.Fatalf("%s: a Record answered %q, the row holds %q", key, id, final.IntentID)
			}
		}
	}
}
