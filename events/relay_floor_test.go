package events_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// TestRelayDeliversAnEventCommittedBehindItsFloor: a consumer reads from a floor behind
// the oldest event it last read; an event whose transaction began before the floor passed
// it and committed after is not in those reads, and the full read delivers it.
func TestRelayDeliversAnEventCommittedBehindItsFloor(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		var mu sync.Mutex
		var seen []uuid.UUID
		h := events.HandlerFunc(func(_ context.Context, evs []store.Event) error {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range evs {
				seen = append(seen, e.AggregateID)
			}
			return nil
		})
		handled := func(id uuid.UUID) bool {
			mu.Lock()
			defer mu.Unlock()
			return slices.Contains(seen, id)
		}
		r := &events.Relay{Outbox: db.Outbox, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			FloorMargin: time.Millisecond, FullReadEvery: time.Hour,
			Handlers: []events.Handler{events.Subscribe("late", h, store.TopicBookChanged)}}
		if _, err := r.Step(ctx); err != nil { // the first read is a full one
			t.Fatal(err)
		}
		late, newer := uuid.New(), uuid.New()
		tx, err := db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `INSERT INTO outbox (topic, aggregate_id) VALUES ($1, $2)`, store.TopicBookChanged, late); err != nil {
			t.Fatal(err)
		}
		// Committed at once, created a second after the open transaction's event.
		if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox (topic, aggregate_id, created_at) VALUES ($1, $2, now() + INTERVAL '1 second')`,
			store.TopicBookChanged, newer); err != nil {
			t.Fatal(err)
		}
		if n, err := r.Step(ctx); err != nil || n != 1 || !handled(newer) {
			t.Fatalf("step: %d, %v; handled %v", n, err, seen)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := r.Step(ctx); err != nil || n != 0 || handled(late) {
			t.Fatalf("a read from the floor: %d, %v; handled %v (the event is behind the floor)", n, err, seen)
		}
		r.FullReadEvery = time.Nanosecond // the next read is a full one
		if n, err := r.Step(ctx); err != nil || n != 1 || !handled(late) {
			t.Fatalf("full read: %d, %v; handled %v", n, err, seen)
		}
		if n, err := db.Outbox.PendingCount(ctx); err != nil || n != 0 {
			t.Fatalf("%d events pending, %v", n, err)
		}
	})
}

// TestRelayRetriesAndRequeuesBehindItsFloor: an event that failed, or that an operator
// requeued after it was parked, is handed again while the consumer's floor has moved
// past it, without waiting for a full read.
func TestRelayRetriesAndRequeuesBehindItsFloor(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		poison := uuid.New()
		var mu sync.Mutex
		fail, attempts := true, 0
		h := events.HandlerFunc(func(_ context.Context, evs []store.Event) error {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range evs {
				if e.AggregateID == poison {
					attempts++
					if fail {
						return events.Permanent(errors.New("refused for good"))
					}
				}
			}
			return nil
		})
		r := &events.Relay{Outbox: db.Outbox, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			FloorMargin: time.Millisecond, FullReadEvery: time.Hour, IsolateAfter: 1,
			Handlers: []events.Handler{events.Subscribe("floor", h, store.TopicBookChanged)}}
		if err := db.Outbox.Notify(ctx, store.TopicBookChanged, []uuid.UUID{poison}); err != nil {
			t.Fatal(err)
		}
		for range 3 { // the batch fails, then the event alone, and is parked (Permanent)
			_, _ = r.Step(ctx)
		}
		if n, err := db.Outbox.ParkedCount(ctx); err != nil || n != 1 {
			t.Fatalf("%d parked, %v", n, err)
		}
		// Newer events move the floor past the parked one.
		if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox (topic, aggregate_id, created_at) VALUES ($1, $2, now() + INTERVAL '1 minute')`,
			store.TopicBookChanged, uuid.New()); err != nil {
			t.Fatal(err)
		}
		if n, err := r.Step(ctx); err != nil || n != 1 {
			t.Fatalf("step: %d, %v", n, err)
		}
		mu.Lock()
		fail, before := false, attempts
		mu.Unlock()
		if n, err := db.Outbox.Requeue(ctx, "floor", uuid.Nil); err != nil || n != 1 {
			t.Fatalf("requeue: %d, %v", n, err)
		}
		if n, err := r.Step(ctx); err != nil || n != 1 {
			t.Fatalf("step after the requeue: %d, %v", n, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if attempts != before+1 {
			t.Fatalf("the requeued event was handled %d times after the requeue, want 1", attempts-before)
		}
		if n, err := db.Outbox.PendingCount(ctx); err != nil || n != 0 {
			t.Fatalf("%d events pending, %v", n, err)
		}
	})
}

// TestQuietConsumerReadsFromItsClock: a consumer whose reads return nothing moves its
// floor to a margin before the database's time of the read, so its reads do not start
// again from the oldest unpublished event; what commits behind that comes with the
// full read.
func TestQuietConsumerReadsFromItsClock(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		var n atomic.Int64
		h := events.HandlerFunc(func(_ context.Context, evs []store.Event) error { n.Add(int64(len(evs))); return nil })
		r := &events.Relay{Outbox: db.Outbox, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			FloorMargin: time.Second, FullReadEvery: time.Hour,
			Handlers: []events.Handler{events.Subscribe("quiet", h, store.TopicBookChanged)}}
		if got, err := r.Step(ctx); err != nil || got != 0 {
			t.Fatalf("first step: %d, %v", got, err)
		}
		// Committed now, stamped as a transaction open for a minute would have stamped it.
		if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox (topic, aggregate_id, created_at) VALUES ($1, $2, now() - INTERVAL '1 minute')`,
			store.TopicBookChanged, uuid.New()); err != nil {
			t.Fatal(err)
		}
		fresh := uuid.New()
		if err := db.Outbox.Notify(ctx, store.TopicBookChanged, []uuid.UUID{fresh}); err != nil {
			t.Fatal(err)
		}
		if got, err := r.Step(ctx); err != nil || got != 1 || n.Load() != 1 {
			t.Fatalf("a read from the floor: %d, %v (handled %d): want the fresh event only", got, err, n.Load())
		}
		r.FullReadEvery = time.Nanosecond
		if got, err := r.Step(ctx); err != nil || got != 1 || n.Load() != 2 {
			t.Fatalf("full read: %d, %v (handled %d): want the late event", got, err, n.Load())
		}
	})
}
