package events_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/search/embedded"
	"github.com/shopfront/bookstore/store"
)

// indexedIDs returns every id the index holds (browsing the whole of it).
func indexedIDs(t *testing.T, ix search.Index) []uuid.UUID {
	t.Helper()
	res, err := ix.Search(context.Background(), search.Query{Limit: search.MaxLimit, SkipFacets: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hits) != res.Total {
		t.Fatalf("index too large to list: %d of %d", len(res.Hits), res.Total)
	}
	ids := make([]uuid.UUID, len(res.Hits))
	for i, h := range res.Hits {
		ids[i] = h.ID
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	return ids
}

func bookIDs(t *testing.T, db *store.DB) []uuid.UUID {
	t.Helper()
	ids, err := db.Books.IDsAfter(context.Background(), uuid.Nil, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	return ids
}

// TestCatchUpKnowsWhichCatalogTheIndexReflects: one search directory, two databases
// with the same number of books (the demo's ids are random per database). Every start
// on the other database rebuilds, and the index then holds exactly that database's
// books; a start on the same database does not rebuild.
func TestCatchUpKnowsWhichCatalogTheIndexReflects(t *testing.T) {
	ctx := context.Background()
	db1, db2 := testdb.New(t), testdb.New(t)
	seed(t, db1, 40)
	seed(t, db2, 40)
	dir := t.TempDir()
	start := func(db *store.DB) string {
		t.Helper()
		ix, err := embedded.OpenLive(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer ix.Close()
		reason, _, err := (&events.SearchIndexer{DB: db, Index: ix}).CatchUp(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := indexedIDs(t, ix), bookIDs(t, db); !slices.Equal(got, want) {
			t.Fatalf("index holds %d books, %d of them not in the database; want its %d", len(got), len(got)-countIn(got, want), len(want))
		}
		return reason
	}
	steps := []struct {
		db      *store.DB
		rebuild string // part of the reason, "" for no rebuild
	}{
		{db1, "no catalog"},
		{db1, ""},
		{db2, "reflects catalog"},
		{db2, ""},
		{db1, "reflects catalog"},
	}
	for i, s := range steps {
		reason := start(s.db)
		if s.rebuild == "" && reason != "" || !strings.Contains(reason, s.rebuild) {
			t.Errorf("start %d: rebuild reason %q, want %q", i+1, reason, s.rebuild)
		}
	}
}

func countIn(ids, in []uuid.UUID) int {
	n := 0
	for _, id := range ids {
		if slices.Contains(in, id) {
			n++
		}
	}
	return n
}

// TestRebuildDeletesGhosts: books deleted by SQL behind the server's back (no events)
// are gone from the index after `bookstore reindex`, and the next start is content.
func TestRebuildDeletesGhosts(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	seed(t, db, 60)
	ix, err := embedded.OpenLive(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	x := &events.SearchIndexer{DB: db, Index: ix}
	if _, err := x.Rebuild(ctx, nil); err != nil {
		t.Fatal(err)
	}
	ids := bookIDs(t, db)
	if _, err := db.Pool.Exec(ctx, `DELETE FROM books WHERE id = ANY($1)`, ids[:7]); err != nil {
		t.Fatal(err)
	}
	n, err := x.Rebuild(ctx, nil)
	if err != nil || n != 53 {
		t.Fatalf("rebuild: %d, %v", n, err)
	}
	if got := indexedIDs(t, ix); !slices.Equal(got, ids[7:]) {
		t.Fatalf("index holds %d books after the rebuild, want the database's %d", len(got), len(ids)-7)
	}
	if reason, _, err := x.CatchUp(ctx); err != nil || reason != "" {
		t.Errorf("start after the rebuild: rebuild %q, %v; want none", reason, err)
	}
}

// TestCatchUpRebuildsAfterAGhostAppears: a book deleted by SQL behind the server's back
// makes the counts differ, and the start-up rebuild cures it for good.
func TestCatchUpRebuildsAfterAGhostAppears(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	seed(t, db, 30)
	ix, err := embedded.OpenLive(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	x := &events.SearchIndexer{DB: db, Index: ix}
	if _, _, err := x.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	ids := bookIDs(t, db)
	if _, err := db.Pool.Exec(ctx, `DELETE FROM books WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if reason, _, err := x.CatchUp(ctx); err != nil || !strings.Contains(reason, "30 documents") {
		t.Fatalf("start with a ghost: rebuild %q, %v", reason, err)
	}
	if reason, _, err := x.CatchUp(ctx); err != nil || reason != "" {
		t.Errorf("the next start rebuilds again: %q, %v", reason, err)
	}
	if got := indexedIDs(t, ix); !slices.Equal(got, ids[1:]) {
		t.Errorf("index holds %d books, want %d", len(got), len(ids)-1)
	}
}

// racingIndex changes a book's price and lets the relay index it into the live index
// while a rebuild is reading the catalog: the rebuild's read of that book is older
// than the live index's.
type racingIndex struct {
	*embedded.Live
	during func()
}

func (r *racingIndex) Rebuild(ctx context.Context, m search.Meta, fill func(search.Writer) error) error {
	return r.Live.Rebuild(ctx, m, func(w search.Writer) error {
		err := fill(w)
		r.during()
		return err
	})
}

// TestRebuildKeepsChangesMadeWhileItRead: a price change handled by the relay while a
// rebuild was reading the catalog is not undone by the swap.
func TestRebuildKeepsChangesMadeWhileItRead(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	seed(t, db, 20)
	live, err := embedded.OpenLive(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	relay := &events.Relay{Outbox: db.Outbox, Handlers: []events.Handler{&events.SearchIndexer{DB: db, Index: live}}}
	if err := relay.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	id := bookIDs(t, db)[3]
	const price = 123_45
	ix := &racingIndex{Live: live, during: func() {
		if err := db.Books.SetPrice(ctx, id, price); err != nil {
			t.Fatal(err)
		}
		if err := relay.Drain(ctx); err != nil {
			t.Fatal(err)
		}
	}}
	if _, err := (&events.SearchIndexer{DB: db, Index: ix}).Rebuild(ctx, nil); err != nil {
		t.Fatal(err)
	}
	p := int64(price)
	res, err := live.Search(ctx, search.Query{Filter: search.Filter{MinPriceCents: &p, MaxPriceCents: &p}, SkipFacets: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hits) != 1 || res.Hits[0].ID != id {
		t.Errorf("after the rebuild the new price finds %d books, want the changed one", len(res.Hits))
	}
}

// TestCatchUpReplaysWhatAnotherProcessHandled: events handled (and published) by
// another process's relay are re-read at start, and an index whose position predates
// every published event kept (those after it may be pruned) is rebuilt.
func TestCatchUpReplaysWhatAnotherProcessHandled(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	seed(t, db, 20)
	ix, err := embedded.OpenLive(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	x := &events.SearchIndexer{DB: db, Index: ix}
	if _, _, err := x.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	// Another process, with its own index, handles a price change.
	other, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	id := bookIDs(t, db)[5]
	const price = 98_76
	if err := db.Books.SetPrice(ctx, id, price); err != nil {
		t.Fatal(err)
	}
	relay := &events.Relay{Outbox: db.Outbox, Handlers: []events.Handler{&events.SearchIndexer{DB: db, Index: other}}}
	if err := relay.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if pending, _ := db.Outbox.PendingCount(ctx); pending != 0 {
		t.Fatalf("%d events pending", pending)
	}
	reason, _, err := x.CatchUp(ctx)
	if err != nil || reason != "" {
		t.Fatalf("catch up: rebuild %q, %v; want a replay", reason, err)
	}
	p := int64(price)
	res, err := ix.Search(ctx, search.Query{Filter: search.Filter{MinPriceCents: &p, MaxPriceCents: &p}, SkipFacets: true})
	if err != nil || len(res.Hits) != 1 || res.Hits[0].ID != id {
		t.Fatalf("the price handled elsewhere is not in the index: %+v, %v", res.Hits, err)
	}

	// The events after the index's position are pruned (retention passed: emulated by
	// a cutoff in the future): it cannot know what it missed.
	if n, err := db.Outbox.Prune(ctx, time.Now().Add(time.Hour)); err != nil || n == 0 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	if reason, _, err := x.CatchUp(ctx); err != nil || !strings.Contains(reason, "pruned") {
		t.Fatalf("catch up from a position before pruned events: rebuild %q, %v", reason, err)
	}
}

// TestCatchUpAfterEveryPublishedEventIsPruned: a change handled and published by
// another process, whose event was then pruned with every other published event, is
// not missed: the pruned-up-to mark Prune keeps says events were pruned (an outbox
// with no published event left used to read as "nothing pruned").
func TestCatchUpAfterEveryPublishedEventIsPruned(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	seed(t, db, 20)
	ix, err := embedded.OpenLive(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	x := &events.SearchIndexer{DB: db, Index: ix}
	if _, _, err := x.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	other, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	id := bookIDs(t, db)[5]
	const price = 98_76
	if err := db.Books.SetPrice(ctx, id, price); err != nil {
		t.Fatal(err)
	}
	relay := &events.Relay{Outbox: db.Outbox, Handlers: []events.Handler{&events.SearchIndexer{DB: db, Index: other}}}
	if err := relay.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := db.Outbox.Prune(ctx, time.Now().Add(time.Hour)); err != nil || n == 0 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	var left int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d events left after pruning, %v: the test needs none", left, err)
	}
	reason, _, err := x.CatchUp(ctx)
	if err != nil || !strings.Contains(reason, "pruned") {
		t.Fatalf("catch up: rebuild %q, %v; want a rebuild for pruned events", reason, err)
	}
	p := int64(price)
	res, err := ix.Search(ctx, search.Query{Filter: search.Filter{MinPriceCents: &p, MaxPriceCents: &p}, SkipFacets: true})
	if err != nil || len(res.Hits) != 1 || res.Hits[0].ID != id {
		t.Fatalf("the price change is missing from the index: %+v, %v", res.Hits, err)
	}
	// Nothing pruned since: the next start replays.
	if reason, _, err := x.CatchUp(ctx); err != nil || reason != "" {
		t.Fatalf("second catch up: rebuild %q, %v; want a replay", reason, err)
	}
}

// TestCatchUpAfterRestoringABackup: a backup restored into the database keeps its
// catalog id; an index that applied changes made after the backup was taken has a
// position later than any event the database knows, and is rebuilt, losing the
// changes the database lost.
func TestCatchUpAfterRestoringABackup(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	seed(t, db, 20)
	ix, err := embedded.OpenLive(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	x := &events.SearchIndexer{DB: db, Index: ix}
	if _, _, err := x.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	relay := &events.Relay{Outbox: db.Outbox, Handlers: []events.Handler{x}}
	if err := relay.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	id := bookIDs(t, db)[4]
	var oldPrice int64
	if err := db.Pool.QueryRow(ctx, `SELECT price_cents FROM books WHERE id = $1`, id).Scan(&oldPrice); err != nil {
		t.Fatal(err)
	}
	backup, err := db.Now(ctx) // the backup is taken here
	if err != nil {
		t.Fatal(err)
	}
	const price = 55_55
	if err := db.Books.SetPrice(ctx, id, price); err != nil {
		t.Fatal(err)
	}
	if err := relay.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	// The relay records its position every few seconds; record it now.
	var pos time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT max(created_at) FROM outbox`).Scan(&pos); err != nil {
		t.Fatal(err)
	}
	m, err := ix.Meta(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m.Position = pos
	if err := ix.SetMeta(ctx, m); err != nil {
		t.Fatal(err)
	}
	// Restore the backup: the book's price and the outbox as they were.
	if _, err := db.Pool.Exec(ctx, `UPDATE books SET price_cents = $2 WHERE id = $1`, id, oldPrice); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `DELETE FROM outbox WHERE created_at > $1`, backup); err != nil {
		t.Fatal(err)
	}
	reason, _, err := x.CatchUp(ctx)
	if err != nil || !strings.Contains(reason, "later than the database's newest") {
		t.Fatalf("catch up after a restore: rebuild %q, %v", reason, err)
	}
	p := int64(price)
	res, err := ix.Search(ctx, search.Query{Filter: search.Filter{MinPriceCents: &p, MaxPriceCents: &p}, SkipFacets: true})
	if err != nil || len(res.Hits) != 0 {
		t.Fatalf("after restoring a backup the index still has the price the database lost: %+v, %v", res.Hits, err)
	}
	if reason, _, err := x.CatchUp(ctx); err != nil || reason != "" {
		t.Fatalf("second catch up: rebuild %q, %v; want a replay", reason, err)
	}
}
