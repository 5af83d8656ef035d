package events_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopfront/bookstore/catalog"
	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/search/embedded"
	"github.com/shopfront/bookstore/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// crashingIndex writes the first half of a batch and then fails, once: an indexer that
// dies mid-batch.
type crashingIndex struct {
	search.Index
	crashed atomic.Bool
}

var errCrash = errors.New("indexer killed mid-batch")

func (c *crashingIndex) Upsert(ctx context.Context, docs []search.Document) error {
	if c.crashed.Swap(true) {
		return c.Index.Upsert(ctx, docs)
	}
	if err := c.Index.Upsert(ctx, docs[:len(docs)/2]); err != nil {
		return err
	}
	return errCrash
}

func seed(t *testing.T, db *store.DB, n int) {
	t.Helper()
	ctx := context.Background()
	b := db.NewBatcher(500)
	if err := catalog.Generate(7, n, func(r catalog.Record) error { return b.Add(ctx, r) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestIndexCatchesUpAfterACrashMidBatch: the relay retires events only after every
// handler succeeded, so an indexer that dies halfway through a batch leaves the batch
// pending, and the next run indexes every book, missing none.
func TestIndexCatchesUpAfterACrashMidBatch(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		const n = 1200
		seed(t, db, n)
		ix, err := embedded.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer ix.Close()
		log := slog.New(slog.NewTextHandler(io.Discard, nil))

		crashing := &crashingIndex{Index: ix}
		relay := &events.Relay{Outbox: db.Outbox, Log: log, Handlers: []events.Handler{&events.SearchIndexer{DB: db, Index: crashing}}}
		if _, err := relay.Step(ctx); !errors.Is(err, errCrash) {
			t.Fatalf("step with a crashing indexer: %v", err)
		}
		pending, err := db.Outbox.PendingCount(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if half, _ := ix.Count(ctx); pending != n || half == 0 || half >= n {
			t.Fatalf("after the crash: %d events pending (want %d), %d books indexed (want some, not all)", pending, n, half)
		}

		// The indexer comes back: everything is indexed, every event retired.
		if err := relay.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		if got, _ := ix.Count(ctx); got != n {
			t.Fatalf("%d books indexed after catching up, want %d", got, n)
		}
		if pending, _ := db.Outbox.PendingCount(ctx); pending != 0 {
			t.Fatalf("%d events still pending", pending)
		}
		// Every book is findable by its ISBN, i.e. its document is complete.
		ids, err := db.Books.IDsAfter(ctx, [16]byte{}, n)
		if err != nil {
			t.Fatal(err)
		}
		books, err := db.Books.ByIDs(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range books {
			res, err := ix.Search(ctx, search.Query{Text: b.ISBN, SkipFacets: true})
			if err != nil || res.Total != 1 || res.Hits[0].ID != b.ID {
				t.Fatalf("ISBN %s: %+v %v", b.ISBN, res, err)
			}
		}
	})
}

// TestRebuildMatchesTheCatalogAndDeletesVanishedBooks: Rebuild indexes every book; an
// event for a book that no longer exists removes it from the index.
func TestRebuildMatchesTheCatalogAndDeletesVanishedBooks(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		seed(t, db, 600)
		ix, err := embedded.OpenLive(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer ix.Close()
		x := &events.SearchIndexer{DB: db, Index: ix}
		n, err := x.Rebuild(ctx, nil)
		if err != nil || n != 600 {
			t.Fatalf("rebuild: %d, %v", n, err)
		}
		ids, _ := db.Books.IDsAfter(ctx, [16]byte{}, 1)
		if _, err := db.Pool.Exec(ctx, `DELETE FROM books WHERE id = $1`, ids[0]); err != nil {
			t.Fatal(err)
		}
		if err := x.Handle(ctx, []store.Event{{Topic: store.TopicBookChanged, AggregateID: ids[0]}}); err != nil {
			t.Fatal(err)
		}
		if got, _ := ix.Count(ctx); got != 599 {
			t.Fatalf("%d documents after deleting a book, want 599", got)
		}
	})
}

// countingHandler counts the events it handled.
type countingHandler struct{ n atomic.Int64 }

func (c *countingHandler) Handle(_ context.Context, evs []store.Event) error {
	c.n.Add(int64(len(evs)))
	return nil
}

// TestOneRelayAtATime: relays of several instances share a lease, so one handles every
// event (in order) while the other stands by, and takes over when the first stops.
func TestOneRelayAtATime(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		seed(t, db, 600)
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		var a, b countingHandler
		ra := &events.Relay{Outbox: db.Outbox, Log: log, Interval: 10 * time.Millisecond, LeaseTTL: 2 * time.Second,
			Handlers: []events.Handler{events.Subscribe("count", &a, store.TopicBookChanged)}}
		rb := &events.Relay{Outbox: db.Outbox, Log: log, Interval: 10 * time.Millisecond, LeaseTTL: 2 * time.Second,
			Handlers: []events.Handler{events.Subscribe("count", &b, store.TopicBookChanged)}}
		ctxA, stopA := context.WithCancel(ctx)
		ctxB, stopB := context.WithCancel(ctx)
		doneA, doneB := make(chan struct{}), make(chan struct{})
		go func() { defer close(doneA); _ = ra.Run(ctxA) }()
		time.Sleep(50 * time.Millisecond) // a takes the lease first
		go func() { defer close(doneB); _ = rb.Run(ctxB) }()
		t.Cleanup(func() { stopA(); stopB(); <-doneA; <-doneB })
		waitPending(t, db, 0)
		time.Sleep(100 * time.Millisecond)
		if a.n.Load() != 600 || b.n.Load() != 0 {
			t.Fatalf("relay a handled %d events, b %d: want 600 and 0", a.n.Load(), b.n.Load())
		}
		stopA()
		<-doneA
		seed2(t, db)
		waitPending(t, db, 0)
		if b.n.Load() == 0 {
			t.Fatal("the standing-by relay did not take over")
		}
	})
}

func seed2(t *testing.T, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	b := db.NewBatcher(500)
	if err := catalog.Generate(8, 50, func(r catalog.Record) error { return b.Add(ctx, r) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func waitPending(t *testing.T, db *store.DB, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := db.Outbox.PendingCount(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events pending after 10s, want %d", n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPoisonEventIsParked: an event that fails on its own is parked after its attempts,
// with its error, and every other event is delivered; when every event fails (the
// handler's backend is down) nothing is counted against the events.
func TestPoisonEventIsParked(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		seed(t, db, 30)
		evs, err := db.Outbox.PendingFor(ctx, "h", []string{store.TopicBookChanged}, 100)
		if err != nil || len(evs) != 30 {
			t.Fatalf("%d events, %v", len(evs), err)
		}
		poison := evs[7].AggregateID
		down := atomic.Bool{}
		down.Store(true)
		var delivered countingHandler
		h := events.HandlerFunc(func(ctx context.Context, evs []store.Event) error {
			if down.Load() {
				return errors.New("backend down")
			}
			for _, e := range evs {
				if e.AggregateID == poison {
					return errors.New("document rejected")
				}
			}
			return delivered.Handle(ctx, evs)
		})
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		r := &events.Relay{Outbox: db.Outbox, Log: log, IsolateAfter: 2, Handlers: []events.Handler{events.Subscribe("h", h, store.TopicBookChanged)},
			Retry: store.Retry{Base: time.Millisecond, Max: time.Millisecond, Attempts: 3}}
		for range 6 { // a backend down: every attempt fails, isolation included
			if _, err := r.Step(ctx); err == nil {
				t.Fatal("a step succeeded with the backend down")
			}
		}
		var attempts int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox_deliveries`).Scan(&attempts); err != nil || attempts != 0 {
			t.Fatalf("%d failures recorded with the backend down, want none (%v)", attempts, err)
		}
		down.Store(false)
		if _, err := r.Step(ctx); err == nil {
			t.Fatal("the batch with the poison event succeeded")
		}
		if n, err := r.Step(ctx); err != nil || n != 30 {
			t.Fatalf("isolating step: %d, %v", n, err)
		}
		if delivered.n.Load() != 29 {
			t.Fatalf("%d events delivered, want 29", delivered.n.Load())
		}
		for i := 0; ; i++ { // the poison event alone now: its attempts run out
			if n, _ := db.Outbox.ParkedCount(ctx); n == 1 {
				break
			}
			if i == 100 {
				t.Fatal("the poison event is not parked after 100 steps")
			}
			_, _ = r.Step(ctx)
			time.Sleep(2 * time.Millisecond)
		}
		ps, err := db.Outbox.Parked(ctx, "", 10)
		if err != nil || len(ps) != 1 || ps[0].AggregateID != poison || ps[0].Reason != "document rejected" || ps[0].Attempts != 3 {
			t.Fatalf("parked %+v, %v", ps, err)
		}
		if n, _ := db.Outbox.PendingCount(ctx); n != 0 {
			t.Fatalf("%d pending, want 0", n)
		}
		if delivered.n.Load() != 29 {
			t.Fatalf("%d events delivered, want 29", delivered.n.Load())
		}
	})
}
