package store_test

import (
	"context"
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
		claim := func(id string, stale time.Duration) bool {
			t.Helper()
			ok, err := w.Claim(ctx, "stripe", id, "payment_intent.succeeded", stale)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		steps := []struct {
			name string
			do   func() bool
			want bool
		}{
			{"first claim", func() bool { return claim("evt_1", time.Hour) }, true},
			{"duplicate while live", func() bool { return claim("evt_1", time.Hour) }, false},
			{"other provider's id is another event", func() bool {
				ok, err := w.Claim(ctx, "other", "evt_1", "x", time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}, true},
			{"stale claim taken over", func() bool { time.Sleep(5 * time.Millisecond); return claim("evt_1", time.Millisecond) }, true},
			{"released claim free at once", func() bool {
				if err := w.Release(ctx, "stripe", "evt_1"); err != nil {
					t.Fatal(err)
				}
				return claim("evt_1", time.Hour)
			}, true},
			{"processed never again", func() bool {
				if err := w.Done(ctx, "stripe", "evt_1"); err != nil {
					t.Fatal(err)
				}
				time.Sleep(5 * time.Millisecond)
				return claim("evt_1", time.Millisecond)
			}, false},
			{"release of a processed event is a no-op", func() bool {
				if err := w.Release(ctx, "stripe", "evt_1"); err != nil {
					t.Fatal(err)
				}
				return claim("evt_1", time.Millisecond)
			}, false},
		}
		for _, s := range steps {
			if got := s.do(); got != s.want {
				t.Fatalf("%s: claimed = %v, want %v", s.name, got, s.want)
			}
		}
	})
}
