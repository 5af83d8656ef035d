package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// expire ends lease name now, as if its holder had stalled past it.
func expire(t *testing.T, db *store.DB, name string) {
	t.Helper()
	if _, err := db.Pool.Exec(context.Background(), `UPDATE relay_leases SET expires_at = now() - INTERVAL '1 second' WHERE name = $1`, name); err != nil {
		t.Fatal(err)
	}
}

func acquire(t *testing.T, db *store.DB, name string, holder uuid.UUID) store.Lease {
	t.Helper()
	l, held, err := db.Outbox.Acquire(context.Background(), name, holder, time.Minute)
	if err != nil || !held {
		t.Fatalf("acquire %s for %s: held %v, %v", name, holder, held, err)
	}
	return l
}

func notify(t *testing.T, db *store.DB, topic string, n int) []uuid.UUID {
	t.Helper()
	ctx := context.Background()
	if err := db.Outbox.Notify(ctx, topic, make([]uuid.UUID, n)); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Pool.Query(ctx, `SELECT id FROM outbox WHERE topic = $1 ORDER BY created_at, id`, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func deliveries(t *testing.T, db *store.DB, consumer string) (done, waiting, parked int) {
	t.Helper()
	err := db.Pool.QueryRow(context.Background(), `SELECT count(done_at), count(*) FILTER (WHERE retry_at IS NOT NULL AND parked_at IS NULL AND done_at IS NULL),
		count(parked_at) FROM outbox_deliveries WHERE consumer = $1`, consumer).Scan(&done, &waiting, &parked)
	if err != nil {
		t.Fatal(err)
	}
	return done, waiting, parked
}

// TestLeaseTokensFenceStaleHolders: a holder whose lease expired and was taken over can
// neither renew it nor write under it, while the new holder can; tokens only grow, also
// across a release (which used to delete the row and restart the count).
func TestLeaseTokensFenceStaleHolders(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		const c = "mail"
		if err := db.Outbox.Register(ctx, c, []string{"order_paid"}); err != nil {
			t.Fatal(err)
		}
		ids := notify(t, db, "order_paid", 3)
		a, b := uuid.New(), uuid.New()
		la := acquire(t, db, c, a)
		if renewed := acquire(t, db, c, a); renewed.Token != la.Token {
			t.Fatalf("a renewal changed the token from %d to %d", la.Token, renewed.Token)
		}
		if held, err := db.Outbox.AcquireLease(ctx, c, b, time.Minute); err != nil || held {
			t.Fatalf("b took a live lease: %v %v", held, err)
		}
		if err := db.Outbox.Done(ctx, la, c, ids[:1]); err != nil {
			t.Fatal(err)
		}

		expire(t, db, c) // a stalls past its lease; b takes over
		lb := acquire(t, db, c, b)
		if lb.Token <= la.Token {
			t.Fatalf("takeover token %d, not above %d", lb.Token, la.Token)
		}
		if err := db.Outbox.Renew(ctx, la, time.Minute); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("stale renew: %v", err)
		}
		if err := db.Outbox.Done(ctx, la, c, ids[1:]); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("stale done: %v", err)
		}
		if _, err := db.Outbox.Failed(ctx, la, c, ids[2], "stale", store.Retry{Base: time.Second, Max: time.Minute, Attempts: 1}); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("stale failure: %v", err)
		}
		if done, waiting, parked := deliveries(t, db, c); done != 1 || waiting != 0 || parked != 0 {
			t.Fatalf("after the stale writes: %d done, %d waiting, %d parked; want only the first event done", done, waiting, parked)
		}

		// A holder whose lease merely expired (nobody took it) cannot write either.
		expire(t, db, c)
		if err := db.Outbox.Done(ctx, lb, c, ids[1:]); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("done under an expired lease: %v", err)
		}

		// b renews, releases; a comes back with a fresh token, and its old one stays dead.
		lb = acquire(t, db, c, b)
		if err := db.Outbox.Renew(ctx, lb, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := db.Outbox.ReleaseLease(ctx, c, b); err != nil {
			t.Fatal(err)
		}
		la2 := acquire(t, db, c, a)
		if la2.Token <= lb.Token {
			t.Fatalf("token after a release: %d, not above %d", la2.Token, lb.Token)
		}
		if err := db.Outbox.Done(ctx, la, c, ids[1:]); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("a's first token works again after a release: %v", err)
		}
		if err := db.Outbox.Done(ctx, la2, c, ids[1:]); err != nil {
			t.Fatal(err)
		}
		if n, err := db.Outbox.PendingCount(ctx); err != nil || n != 0 {
			t.Fatalf("%d pending, %v", n, err)
		}
	})
}

// TestDeliveriesPerConsumer: an event is published only when every consumer of its topic
// is done with it; failures wait with a growing backoff and park at the last attempt;
// parked events are counted, listed and requeued; pruning removes their delivery rows.
func TestDeliveriesPerConsumer(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for c, topics := range map[string][]string{"search": {"book.changed"}, "cache": {"book.changed"}, "mail": {"order_paid"}} {
			if err := db.Outbox.Register(ctx, c, topics); err != nil {
				t.Fatal(err)
			}
		}
		books := notify(t, db, "book.changed", 4)
		orders := notify(t, db, "order_paid", 2)
		ls := acquire(t, db, "search", uuid.New())
		lc := acquire(t, db, "cache", uuid.New())
		lm := acquire(t, db, "mail", uuid.New())

		pend := func(c string, topic string) []uuid.UUID {
			t.Helper()
			evs, err := db.Outbox.PendingFor(ctx, c, []string{topic}, 100)
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]uuid.UUID, len(evs))
			for i, e := range evs {
				ids[i] = e.ID
			}
			return ids
		}
		if got := pend("mail", "order_paid"); len(got) != 2 {
			t.Fatalf("mail sees %d events, want its 2", len(got))
		}
		if err := db.Outbox.Done(ctx, lm, "mail", orders); err != nil {
			t.Fatal(err)
		}
		if err := db.Outbox.Done(ctx, ls, "search", books); err != nil {
			t.Fatal(err)
		}
		if got := pend("search", "book.changed"); len(got) != 0 {
			t.Fatalf("search still sees %d events", len(got))
		}
		if got := pend("cache", "book.changed"); len(got) != 4 {
			t.Fatalf("cache sees %d events, want 4 (search's progress is not its own)", len(got))
		}
		if n, _ := db.Outbox.PendingCount(ctx); n != 4 {
			t.Fatalf("%d events unpublished, want the 4 the cache has not handled", n)
		}

		retry := store.Retry{Base: 400 * time.Millisecond, Max: time.Hour, Attempts: 3}
		var waits []time.Duration
		for i := range 3 {
			before, _ := db.Now(ctx)
			f, err := db.Outbox.Failed(ctx, lc, "cache", books[0], "redis down", retry)
			if err != nil {
				t.Fatal(err)
			}
			if f.Attempts != i+1 || f.Parked != (i == 2) {
				t.Fatalf("failure %d: %+v", i+1, f)
			}
			if !f.Parked {
				waits = append(waits, f.RetryAt.Sub(before))
			}
			if i == 0 {
				if got := pend("cache", "book.changed"); len(got) != 3 {
					t.Fatalf("cache sees %d events while one waits for its retry, want 3", len(got))
				}
			}
		}
		if waits[0] < 300*time.Millisecond || waits[1] < 700*time.Millisecond || waits[1] > 2*time.Second {
			t.Fatalf("retry waits %v, want about 400ms then 800ms", waits)
		}
		if err := db.Outbox.Done(ctx, lc, "cache", books[1:]); err != nil {
			t.Fatal(err)
		}
		if n, _ := db.Outbox.ParkedCount(ctx); n != 1 {
			t.Fatalf("%d parked, want 1", n)
		}
		ps, err := db.Outbox.Parked(ctx, "", 10)
		if err != nil || len(ps) != 1 || ps[0].ID != books[0] || ps[0].Consumer != "cache" || ps[0].Reason != "redis down" || ps[0].Attempts != 3 {
			t.Fatalf("parked: %+v, %v", ps, err)
		}
		if n, _ := db.Outbox.PendingCount(ctx); n != 0 {
			t.Fatalf("%d pending besides the parked event", n)
		}
		if n, err := db.Outbox.Prune(ctx, time.Now().Add(time.Hour)); err != nil || n != 5 {
			t.Fatalf("pruned %d, %v; want the 5 published events (the parked one stays)", n, err)
		}
		var rows int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox_deliveries`).Scan(&rows); err != nil || rows != 2 {
			t.Fatalf("%d delivery rows after pruning, want the parked event's 2 (search done, cache parked)", rows)
		}
		_, prunedTo, err := db.Outbox.Bounds(ctx)
		if err != nil || prunedTo.IsZero() {
			t.Fatalf("prune mark %v, %v", prunedTo, err)
		}

		if n, err := db.Outbox.Requeue(ctx, "search", uuid.Nil); err != nil || n != 0 {
			t.Fatalf("requeue of another consumer: %d, %v", n, err)
		}
		if n, err := db.Outbox.Requeue(ctx, "cache", books[0]); err != nil || n != 1 {
			t.Fatalf("requeue: %d, %v", n, err)
		}
		if got := pend("cache", "book.changed"); len(got) != 1 || got[0] != books[0] {
			t.Fatalf("after requeue the cache sees %v, want the parked event", got)
		}
		if err := db.Outbox.Done(ctx, lc, "cache", books[:1]); err != nil {
			t.Fatal(err)
		}
		var published bool
		if err := db.Pool.QueryRow(ctx, `SELECT published_at IS NOT NULL FROM outbox WHERE id = $1`, books[0]).Scan(&published); err != nil || !published {
			t.Fatalf("the requeued event is not published once both consumers are done: %v", err)
		}
	})
}

// TestRetirePublishesEventsNobodyConsumes: an event of a topic no consumer registered
// for (an order topic before its mailer exists) is published by Retire, so it can be
// pruned; one a registered consumer has not handled stays.
func TestRetirePublishesEventsNobodyConsumes(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	if err := db.Outbox.Register(ctx, "search", []string{"book.changed"}); err != nil {
		t.Fatal(err)
	}
	notify(t, db, "order_created", 3)
	notify(t, db, "book.changed", 2)
	if n, err := db.Outbox.Retire(ctx, 100); err != nil || n != 3 {
		t.Fatalf("retired %d, %v; want the 3 order events", n, err)
	}
	if n, _ := db.Outbox.PendingCount(ctx); n != 2 {
		t.Fatalf("%d pending, want the 2 the search consumer has not handled", n)
	}
}

// BenchmarkPendingForBehindABacklog: what a consumer's poll costs while another consumer
// of its topic is stuck 10,000 events behind (they stay unpublished, and the poll passes
// over every one it has done), and what a consumer of another topic pays for that backlog.
func BenchmarkPendingForBehindABacklog(b *testing.B) {
	db := testdb.New(b)
	ctx := context.Background()
	for c, topics := range map[string][]string{"stuck": {"book.changed"}, "cache": {"book.changed"}, "mail": {"order_paid"}} {
		if err := db.Outbox.Register(ctx, c, topics); err != nil {
			b.Fatal(err)
		}
	}
	const backlog = 10_000
	if err := db.Outbox.Notify(ctx, "book.changed", make([]uuid.UUID, backlog)); err != nil {
		b.Fatal(err)
	}
	l, _, err := db.Outbox.Acquire(ctx, "cache", uuid.New(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	for {
		evs, err := db.Outbox.PendingFor(ctx, "cache", []string{"book.changed"}, 1000)
		if err != nil {
			b.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		ids := make([]uuid.UUID, len(evs))
		for i, e := range evs {
			ids[i] = e.ID
		}
		if err := db.Outbox.Done(ctx, l, "cache", ids); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := db.Pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	floor := time.Now()
	for _, c := range []struct {
		name, consumer, topic string
		since                 time.Time
	}{{"cache", "cache", "book.changed", time.Time{}}, {"mail", "mail", "order_paid", time.Time{}},
		{"cache-from-floor", "cache", "book.changed", floor}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				evs, err := db.Outbox.PendingSince(ctx, c.consumer, []string{c.topic}, 500, c.since)
				if err != nil || len(evs) != 0 {
					b.Fatalf("%d events, %v", len(evs), err)
				}
			}
		})
	}
}

// TestPendingSinceReadsFromTheFloor: a read from a floor returns the events created from
// it on that the consumer has to handle, and, however old, those it failed at whose retry
// is due or that an operator requeued; not the older ones it is done with, nor older
// ones it never saw (those wait for a full read: see events.Relay).
func TestPendingSinceReadsFromTheFloor(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	const topic = "book.changed"
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	at := func(d time.Duration) uuid.UUID {
		var id uuid.UUID
		if err := db.Pool.QueryRow(ctx, `INSERT INTO outbox (topic, aggregate_id, created_at) VALUES ($1, $2, $3) RETURNING id`,
			topic, uuid.New(), t0.Add(d)).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	unseen, failed, done, parked, newer, newest := at(0), at(time.Second), at(2*time.Second), at(3*time.Second), at(20*time.Second), at(30*time.Second)
	l := acquire(t, db, "c", uuid.New())
	if err := db.Outbox.Done(ctx, l, "c", []uuid.UUID{done}); err != nil {
		t.Fatal(err)
	}
	due := store.Retry{Base: 0, Max: 0, Attempts: 5}
	if _, err := db.Outbox.Failed(ctx, l, "c", failed, "boom", due); err != nil {
		t.Fatal(err)
	}
	if f, err := db.Outbox.Failed(ctx, l, "c", parked, "boom", store.Retry{Attempts: 1}); err != nil || !f.Parked {
		t.Fatalf("park: %+v %v", f, err)
	}
	got := func(since time.Time) []uuid.UUID {
		t.Helper()
		evs, err := db.Outbox.PendingSince(ctx, "c", []string{topic}, 100, since)
		if err != nil {
			t.Fatal(err)
		}
		var ids []uuid.UUID
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		return ids
	}
	same := func(what string, a, b []uuid.UUID) {
		t.Helper()
		if len(a) != len(b) {
			t.Fatalf("%s: got %v, want %v", what, a, b)
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s: got %v, want %v", what, a, b)
			}
		}
	}
	floor := t0.Add(10 * time.Second)
	same("full read", got(time.Time{}), []uuid.UUID{unseen, failed, newer, newest})
	same("from the floor", got(floor), []uuid.UUID{failed, newer, newest})
	same("floor between two new events", got(t0.Add(25*time.Second)), []uuid.UUID{failed, newest})
	if n, err := db.Outbox.Requeue(ctx, "c", parked); err != nil || n != 1 {
		t.Fatalf("requeue: %d, %v", n, err)
	}
	same("requeued behind the floor", got(floor), []uuid.UUID{failed, parked, newer, newest})
	if _, err := db.Outbox.Failed(ctx, l, "c", newer, "later", store.Retry{Base: time.Hour, Max: time.Hour, Attempts: 5}); err != nil {
		t.Fatal(err)
	}
	same("a retry not due yet", got(floor), []uuid.UUID{failed, parked, newest})
	evs, err := db.Outbox.PendingSince(ctx, "c", []string{topic}, 2, floor)
	if err != nil || len(evs) != 2 || evs[0].ID != failed || evs[1].ID != parked || evs[0].Attempts != 1 {
		t.Fatalf("limit 2: %+v, %v", evs, err)
	}
}
