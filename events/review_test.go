package events_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// TestBatchErrorRetriesOnlyTheFailedEvents (review): a handler that answers a
// *BatchError has the other events of the batch done at once (handled once, by the
// handler and by what Then chains after it), and only the failed one comes back, until
// it succeeds.
func TestBatchErrorRetriesOnlyTheFailedEvents(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	seed(t, db, 10)
	evs, err := db.Outbox.PendingFor(ctx, "x", []string{store.TopicBookChanged}, 100)
	if err != nil || len(evs) != 10 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	bad := evs[4].ID
	var mu sync.Mutex
	firsts, nexts := map[uuid.UUID]int{}, map[uuid.UUID]int{}
	fails := 0
	first := events.Subscribe("mailer", events.HandlerFunc(func(_ context.Context, evs []store.Event) error {
		mu.Lock()
		defer mu.Unlock()
		failed := map[uuid.UUID]error{}
		for _, e := range evs {
			if e.ID == bad && fails < 2 {
				fails++
				failed[e.ID] = errors.New("451 greylisted")
				continue
			}
			firsts[e.ID]++
		}
		if len(failed) > 0 {
			return &events.BatchError{Failed: failed}
		}
		return nil
	}), store.TopicBookChanged)
	next := events.HandlerFunc(func(_ context.Context, evs []store.Event) error {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range evs {
			nexts[e.ID]++
		}
		return nil
	})
	r := &events.Relay{Outbox: db.Outbox, Log: discard(), Handlers: []events.Handler{events.Then(first, next)},
		Retry: store.Retry{Base: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 5}}
	eventually(t, "delivered", func() bool {
		_, _ = r.Step(ctx)
		n, _ := db.Outbox.PendingCount(ctx)
		return n == 0
	})
	mu.Lock()
	defer mu.Unlock()
	for _, e := range evs {
		if firsts[e.ID] != 1 || nexts[e.ID] != 1 {
			t.Errorf("event %s handled %d times, followed %d times; want once each", e.ID, firsts[e.ID], nexts[e.ID])
		}
	}
	if fails != 2 {
		t.Fatalf("the failing event failed %d times, want 2 before it succeeded", fails)
	}
	if n, _ := db.Outbox.ParkedCount(ctx); n != 0 {
		t.Fatalf("%d events parked", n)
	}
}
