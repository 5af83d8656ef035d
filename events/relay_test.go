package events_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

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
		ix, err := embedded.Open(t.TempDir())
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
