package events_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// An event a handler answers RetryAfter, in a batch or alone, counts no attempt, is
// neither done nor parked, and is not handed again before its wait is over; the batch's
// other events are done.
func TestRetryAfterCountsNoAttempt(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	seed(t, db, 3)
	evs, err := db.Outbox.PendingFor(ctx, "x", []string{store.TopicBookChanged}, 10)
	if err != nil || len(evs) != 3 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	wait, lone := evs[0].ID, evs[1].ID
	handled := map[uuid.UUID]int{}
	h := events.HandlerFunc(func(_ context.Context, batch []store.Event) error {
		failed := map[uuid.UUID]error{}
		for _, e := range batch {
			handled[e.ID]++
			switch {
			case e.ID == wait:
				failed[e.ID] = events.RetryAfter(errors.New("claimed elsewhere"), time.Hour)
			case e.ID == lone && len(batch) == 1:
				return events.RetryAfter(errors.New("claimed elsewhere"), time.Hour)
			case e.ID == lone:
				failed[e.ID] = errors.New("connection reset") // fails in the batch, alone waits
			}
		}
		if len(failed) > 0 {
			return &events.BatchError{Failed: failed}
		}
		return nil
	})
	r := &events.Relay{Outbox: db.Outbox, Log: discard(), IsolateAfter: 1, Handlers: []events.Handler{events.Subscribe("x", h, store.TopicBookChanged)},
		Retry: store.Retry{Base: time.Millisecond, Max: time.Millisecond, Attempts: 2}}
	for range 10 {
		if _, err := r.Step(ctx); err != nil {
			t.Logf("step: %v", err)
		}
	}
	if handled[wait] != 1 {
		t.Fatalf("the waiting event handled %d times, want once (it waits an hour)", handled[wait])
	}
	var n, done int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE attempts > 0 OR parked_at IS NOT NULL), count(*) FILTER (WHERE done_at IS NOT NULL)
		FROM outbox_deliveries WHERE consumer = 'x' AND event_id = ANY($1)`, []uuid.UUID{wait, evs[2].ID}).Scan(&n, &done); err != nil {
		t.Fatal(err)
	}
	if n != 0 || done != 1 {
		t.Fatalf("%d with attempts or parked, %d done; want 0 and 1 (the third event)", n, done)
	}
	if p, _ := db.Outbox.ParkedCount(ctx); p != 0 {
		t.Fatalf("%d parked, want 0", p)
	}
	if handled[lone] > 3 {
		t.Fatalf("the lone waiting event handled %d times, want it left to wait", handled[lone])
	}
}
