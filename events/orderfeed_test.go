package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

func appendOrderEvents(t *testing.T, db *store.DB, id uuid.UUID, n int) {
	t.Helper()
	for range n {
		err := db.ExecuteTx(context.Background(), func(tx pgx.Tx) error {
			o, err := db.Orders.Lock(context.Background(), tx, id)
			if err != nil {
				return err
			}
			_, err = db.Orders.AppendEvent(context.Background(), tx, o, bookstore.OrderEventShipmentUpdated, nil)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// collect reads the stream until it has n events and checks they are seqs from+1.. in
// order.
func collect(t *testing.T, s *events.Stream, from int64, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want := from + 1
	for want <= from+int64(n) {
		evs, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("next after seq %d: %v", want-1, err)
		}
		for _, e := range evs {
			if e.Seq != want {
				t.Fatalf("seq %d, want %d", e.Seq, want)
			}
			want++
		}
	}
}

// A stream that hears no hint at all (a lost pub/sub message, no Redis across
// instances) still delivers every event, at its re-check.
func TestOrderFeedDeliversWithoutHints(t *testing.T) {
	db := testdb.New(t)
	id := testdb.Order(t, db, uuid.Nil)
	feed := &events.OrderFeed{Recheck: 20 * time.Millisecond}
	s := feed.Follow(id, 0, db.Orders.Events)
	defer s.Close()
	appendOrderEvents(t, db, id, 3)
	collect(t, s, 0, 3)
	if feed.Watchers() != 1 {
		t.Fatalf("%d watchers, want 1", feed.Watchers())
	}
	s.Close()
	if feed.Watchers() != 0 {
		t.Fatalf("%d watchers after Close, want 0", feed.Watchers())
	}
}

// The relaying instance's hint reaches another instance's stream through Redis: b's
// re-check is an hour, so only the hint can wake it.
func TestOrderFeedHintsReachOtherInstancesThroughRedis(t *testing.T) {
	db := testdb.New(t)
	rdb := testdb.Redis(t)
	id := testdb.Order(t, db, uuid.Nil)
	a := &events.OrderFeed{Redis: rdb}
	b := &events.OrderFeed{Redis: rdb, Recheck: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Listen(ctx)

	s := b.Follow(id, 0, db.Orders.Events)
	defer s.Close()
	// The first read finds nothing and waits for a hint; events are appended after it.
	appendOrderEvents(t, db, id, 2)
	evs, err := db.Outbox.PendingFor(ctx, "order-feed-test", events.OrderTopics, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d outbox events, want 2", len(evs))
	}
	// b's SUBSCRIBE may not be confirmed yet: hint until the stream has the events.
	got := make(chan struct{})
	go func() {
		for {
			_ = a.Handle(ctx, evs)
			select {
			case <-got:
				return
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	collect(t, s, 0, 2)
	close(got)
}

// BenchmarkOrderFeedNotify is the fan-out of one hint to the streams of one order, among
// 10,000 streams of other orders.
func BenchmarkOrderFeedNotify(b *testing.B) {
	feed := &events.OrderFeed{}
	id := uuid.New()
	for range 10_000 {
		s := feed.Follow(uuid.New(), 0, nil)
		defer s.Close()
	}
	for range 10 {
		s := feed.Follow(id, 0, nil)
		defer s.Close()
	}
	for b.Loop() {
		feed.Notify(id)
	}
}
