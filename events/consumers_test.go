package events_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// ledger records which relay completed which event, and how often.
type ledger struct {
	mu   sync.Mutex
	by   map[uuid.UUID][]string
	dups int
}

func (l *ledger) complete(who string, evs []store.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.by == nil {
		l.by = map[uuid.UUID][]string{}
	}
	for _, e := range evs {
		if len(l.by[e.ID]) > 0 {
			l.dups++
		}
		l.by[e.ID] = append(l.by[e.ID], who)
	}
}

func (l *ledger) check(t *testing.T, want int) map[string]int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	per := map[string]int{}
	for id, who := range l.by {
		if len(who) != 1 {
			t.Errorf("event %s completed %d times, by %v", id, len(who), who)
		}
		per[who[0]]++
	}
	if len(l.by) != want {
		t.Errorf("%d events completed, want %d", len(l.by), want)
	}
	return per
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// run starts r until the test ends.
func run(t *testing.T, r *events.Relay) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 20s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLeaseOutlivesALongBatch: batches that take longer than the lease's TTL, with a
// second relay standing by for it: the holder renews its lease while it works, so the
// other never takes over mid-batch and no event is completed twice. (With the lease
// renewed once per batch, the standby took over after each TTL and redid the batch.)
func TestLeaseOutlivesALongBatch(t *testing.T) {
	db := testdb.New(t)
	seed(t, db, 30)
	var l ledger
	aWorks := make(chan struct{})
	var aOnce sync.Once
	slow := func(who string) events.Handler {
		return events.HandlerFunc(func(ctx context.Context, evs []store.Event) error {
			if who == "a" {
				aOnce.Do(func() { close(aWorks) })
			}
			select {
			case <-time.After(900 * time.Millisecond): // 1.5 TTLs
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			l.complete(who, evs)
			return nil
		})
	}
	relay := func(who string) *events.Relay {
		return &events.Relay{Outbox: db.Outbox, Log: discard(), Interval: 10 * time.Millisecond, LeaseTTL: 600 * time.Millisecond,
			Batch: 10, Handlers: []events.Handler{events.Subscribe("slow", slow(who), store.TopicBookChanged)}}
	}
	run(t, relay("a"))
	select { // a holds the lease and works before b stands by (a sleep was too short on a loaded machine)
	case <-aWorks:
	case <-time.After(20 * time.Second):
		t.Fatal("relay a never started a batch")
	}
	run(t, relay("b"))
	eventually(t, "drained", func() bool { n, _ := db.Outbox.PendingCount(context.Background()); return n == 0 })
	per := l.check(t, 30)
	if per["a"] != 30 {
		t.Errorf("relay a completed %d events, b %d: the lease changed hands while a was working", per["a"], per["b"])
	}
}

// partitioned is a relay's view of the outbox while the network between it and the
// database can be cut: its renewals and acquisitions fail, everyone else's work.
type partitioned struct {
	*store.Outbox
	cut  atomic.Bool
	done chan error // receives the result of every Done
}

var errUnreachable = errors.New("database unreachable")

func (p *partitioned) Acquire(ctx context.Context, name string, holder uuid.UUID, ttl time.Duration) (store.Lease, bool, error) {
	if p.cut.Load() {
		return store.Lease{}, false, errUnreachable
	}
	return p.Outbox.Acquire(ctx, name, holder, ttl)
}

func (p *partitioned) Renew(ctx context.Context, l store.Lease, ttl time.Duration) error {
	if p.cut.Load() {
		return errUnreachable
	}
	return p.Outbox.Renew(ctx, l, ttl)
}

func (p *partitioned) Done(ctx context.Context, l store.Lease, consumer string, ids []uuid.UUID) error {
	err := p.Outbox.Done(ctx, l, consumer, ids)
	if p.done != nil {
		p.done <- err
	}
	return err
}

// TestLeaseExpiresMidBatch: two relays on one consumer, and the holder's lease expires
// while its handler is in the middle of a batch.
//
// Cut off from the database, the holder cannot renew: its handler's context ends
// before the lease runs out, so when the stalled handler resumes it commits nothing,
// and the relay writes nothing for the batch. The standby takes over after the expiry
// and handles the batch: every event is completed once, by one holder.
//
// When the lease ends sooner than the holder can know (forced here), the holder's
// handler may complete, but its write is refused by the lease's token: while the new
// holder is still working on the batch, no event is marked done.
func TestLeaseExpiresMidBatch(t *testing.T) {
	const ttl = 600 * time.Millisecond
	for _, tc := range []struct {
		name   string
		forced bool
	}{{"partition", false}, {"forced expiry", true}} {
		t.Run(tc.name, func(t *testing.T) {
			db := testdb.New(t)
			ctx := context.Background()
			seed(t, db, 20)
			var l ledger
			started, resume, resumed := make(chan struct{}), make(chan struct{}), make(chan error, 1)
			var calls atomic.Int32
			a := events.HandlerFunc(func(ctx context.Context, evs []store.Event) error {
				if calls.Add(1) == 1 {
					close(started)
					<-resume // stalled, blind to ctx
					resumed <- context.Cause(ctx)
				}
				if err := ctx.Err(); err != nil {
					return err // what a handler's final write (an upsert with ctx) does
				}
				l.complete("a", evs)
				return nil
			})
			bStarted, bGo := make(chan struct{}), make(chan struct{})
			var bCalls atomic.Int32
			b := events.HandlerFunc(func(ctx context.Context, evs []store.Event) error {
				if tc.forced && bCalls.Add(1) == 1 {
					close(bStarted)
					<-bGo
				}
				l.complete("b", evs)
				return nil
			})
			pa := &partitioned{Outbox: db.Outbox, done: make(chan error, 10)}
			relay := func(o events.Outbox, h events.Handler, ttl time.Duration) *events.Relay {
				return &events.Relay{Outbox: o, Log: discard(), Interval: 10 * time.Millisecond, LeaseTTL: ttl,
					Handlers: []events.Handler{events.Subscribe("slow", h, store.TopicBookChanged)}}
			}
			ttlA := ttl
			if tc.forced {
				ttlA = time.Minute // its own clock says the lease has long to go
			}
			run(t, relay(pa, a, ttlA))
			<-started
			run(t, relay(db.Outbox, b, ttl))
			unblock := sync.OnceFunc(func() { close(resume) })
			unblockB := sync.OnceFunc(func() { close(bGo) })
			t.Cleanup(func() { unblock(); unblockB() }) // before the relays stop, also on failure
			if tc.forced {
				pa.cut.Store(true) // nor can it learn otherwise from a renewal
				if _, err := db.Pool.Exec(ctx, `UPDATE relay_leases SET expires_at = now() - INTERVAL '1 second' WHERE name = 'outbox:slow'`); err != nil {
					t.Fatal(err)
				}
				<-bStarted // the new holder works on the batch
				unblock()
				<-resumed
				if err := <-pa.done; !errors.Is(err, store.ErrLeaseLost) {
					t.Fatalf("the old holder's write: %v, want refused (lease lost)", err)
				}
				var done int
				if err := db.Pool.QueryRow(ctx, `SELECT count(done_at) FROM outbox_deliveries`).Scan(&done); err != nil || done != 0 {
					t.Fatalf("%d events done while the new holder works on them (%v): a stale write landed", done, err)
				}
				unblockB()
				eventually(t, "handled by the new holder", func() bool { n, _ := db.Outbox.PendingCount(ctx); return n == 0 })
				return
			}
			pa.cut.Store(true)
			eventually(t, "handled by the new holder", func() bool { n, _ := db.Outbox.PendingCount(ctx); return n == 0 })
			pa.cut.Store(false)
			unblock()
			if cause := <-resumed; !errors.Is(cause, store.ErrLeaseLost) {
				t.Fatalf("the stalled handler's context: %v, want ended by the lost lease", cause)
			}
			time.Sleep(200 * time.Millisecond) // the stalled relay's chance to write
			if per := l.check(t, 20); per["b"] != 20 {
				t.Errorf("completions: %v, want all 20 by b", per)
			}
			select {
			case err := <-pa.done:
				t.Fatalf("the old holder wrote its batch done (%v)", err)
			default:
			}
			var done, failed int
			if err := db.Pool.QueryRow(ctx, `SELECT count(done_at), count(*) FILTER (WHERE attempts > 0) FROM outbox_deliveries`).Scan(&done, &failed); err != nil {
				t.Fatal(err)
			}
			if done != 20 || failed != 0 {
				t.Fatalf("%d done, %d failures recorded; want 20 done and none failed", done, failed)
			}
		})
	}
}

// TestConsumersProgressIndependently: a stuck search index delays no order email, and a
// consumer whose batches fail re-runs no other consumer's work.
func TestConsumersProgressIndependently(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	seed(t, db, 20)

	stuck := events.HandlerFunc(func(ctx context.Context, evs []store.Event) error {
		<-ctx.Done() // a search engine that never answers
		return ctx.Err()
	})
	var mails atomic.Int64
	mail := events.HandlerFunc(func(_ context.Context, evs []store.Event) error {
		mails.Add(int64(len(evs)))
		return nil
	})
	r := &events.Relay{Outbox: db.Outbox, Log: discard(), Interval: 10 * time.Millisecond, LeaseTTL: 3 * time.Second, Handlers: []events.Handler{
		events.Subscribe("search", stuck, store.TopicBookChanged), events.Subscribe("mail", mail, "order_paid"),
	}}
	stop := run(t, r)
	time.Sleep(100 * time.Millisecond) // the search consumer is stuck in its first batch
	orders := make([]uuid.UUID, 5)
	for i := range orders {
		orders[i] = uuid.New()
	}
	if err := db.Outbox.Notify(ctx, "order_paid", orders); err != nil {
		t.Fatal(err)
	}
	eventually(t, "mailed", func() bool { n, _ := db.Outbox.PendingCount(ctx); return n == 20 })
	if mails.Load() != 5 {
		t.Fatalf("%d mails sent, want 5", mails.Load())
	}
	stop()

	// Now a consumer whose every batch fails, beside one that succeeds.
	var counted ledger
	failing := events.HandlerFunc(func(context.Context, []store.Event) error { return errors.New("engine down") })
	count := events.HandlerFunc(func(_ context.Context, evs []store.Event) error { counted.complete("count", evs); return nil })
	r2 := &events.Relay{Outbox: db.Outbox, Log: discard(), IsolateAfter: 2, Handlers: []events.Handler{
		events.Subscribe("search", failing, store.TopicBookChanged), events.Subscribe("cache", count, store.TopicBookChanged),
	}}
	for range 5 {
		if _, err := r2.Step(ctx); err == nil {
			t.Fatal("a step with a failing consumer succeeded")
		}
	}
	counted.check(t, 20)
	if n, _ := db.Outbox.PendingCount(ctx); n != 20 {
		t.Fatalf("%d pending, want the 20 the search consumer has not handled", n)
	}
}

// TestFlappingHandlerParksNoGoodEvent: a handler that fails now and then (each of a few
// events fails its first two attempts) delivers every event in the end and parks none:
// a failed event waits for its retry instead of being parked at its first failure alone.
func TestFlappingHandlerParksNoGoodEvent(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	seed(t, db, 40)
	evs, err := db.Outbox.PendingFor(ctx, "x", []string{store.TopicBookChanged}, 100)
	if err != nil || len(evs) != 40 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	flaky := map[uuid.UUID]int{evs[3].ID: 0, evs[17].ID: 0, evs[31].ID: 0}
	var mu sync.Mutex
	var delivered ledger
	h := events.HandlerFunc(func(_ context.Context, evs []store.Event) error {
		mu.Lock()
		defer mu.Unlock()
		fail := false
		for _, e := range evs {
			if n, ok := flaky[e.ID]; ok {
				flaky[e.ID] = n + 1
				fail = fail || n < 2
			}
		}
		if fail {
			return errors.New("timeout")
		}
		delivered.complete("h", evs)
		return nil
	})
	r := &events.Relay{Outbox: db.Outbox, Log: discard(), IsolateAfter: 1, Handlers: []events.Handler{events.Subscribe("h", h, store.TopicBookChanged)},
		Retry: store.Retry{Base: 5 * time.Millisecond, Max: 20 * time.Millisecond, Attempts: 5}}
	eventually(t, "delivered", func() bool {
		_, _ = r.Step(ctx)
		n, _ := db.Outbox.PendingCount(ctx)
		return n == 0
	})
	if n, _ := db.Outbox.ParkedCount(ctx); n != 0 {
		t.Fatalf("%d events parked, want none", n)
	}
	delivered.check(t, 40)
}
