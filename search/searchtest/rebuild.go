package searchtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/search"
)

// runIndexState runs the contract of what an index knows of the catalog it reflects
// (search.Rebuildable: meta, fresh rebuilds) and of document versions. Engines whose
// index is not a Rebuildable fail it: both production engines must be one.
func runIndexState(t *testing.T, open func(t *testing.T) search.Index) {
	tests := []struct {
		name string
		fn   func(t *testing.T, ix search.Rebuildable)
	}{
		{"RebuildLeavesExactlyTheFilledBooks", testRebuildExact},
		{"RebuildServesTheOldIndexUntilTheSwap", testRebuildServesOld},
		{"FailedRebuildKeepsTheLiveIndex", testRebuildFailure},
		{"Meta", testMeta},
		{"OlderVersionNeverReplacesNewer", testVersions},
		{"ExcludedBooksAreAbsent", testExclude},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ix, ok := open(t).(search.Rebuildable)
			if !ok {
				t.Fatalf("the engine's index is not a search.Rebuildable")
			}
			if err := ix.Upsert(context.Background(), Fixture()); err != nil {
				t.Fatalf("load fixture: %v", err)
			}
			tc.fn(t, ix)
		})
	}
}

func testMeta(t *testing.T, ix search.Rebuildable) {
	ctx := context.Background()
	if m, err := ix.Meta(ctx); err != nil || m != (search.Meta{}) {
		t.Fatalf("Meta of a new index = %+v, %v; want the zero Meta", m, err)
	}
	want := search.Meta{CatalogID: uuid.New(), Position: time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)}
	if err := ix.SetMeta(ctx, want); err != nil {
		t.Fatal(err)
	}
	if m, err := ix.Meta(ctx); err != nil || m.CatalogID != want.CatalogID || !m.Position.Equal(want.Position) {
		t.Fatalf("Meta = %+v, %v; want %+v", m, err, want)
	}
	// The meta is no document.
	if n, err := ix.Count(ctx); err != nil || n != NumFixture {
		t.Errorf("Count = %d, %v; want %d", n, err, NumFixture)
	}
}

// testRebuildExact: the fixture's first books are kept (one with a new title), the rest
// are ghosts of books the catalog no longer has; a rebuild leaves exactly the books
// written by fill, and the meta given.
func testRebuildExact(t *testing.T, ix search.Rebuildable) {
	ctx := context.Background()
	docs := Fixture()[:5]
	docs[0].Title = "Rebuilt Title Zyxwv"
	m := search.Meta{CatalogID: uuid.New(), Position: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)}
	err := ix.Rebuild(ctx, m, func(w search.Writer) error {
		if err := w.Upsert(ctx, docs[:3]); err != nil {
			return err
		}
		return w.Upsert(ctx, docs[3:])
	})
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if n, err := ix.Count(ctx); err != nil || n != len(docs) {
		t.Errorf("Count after rebuild = %d, %v; want %d", n, err, len(docs))
	}
	res := mustSearch(t, ix, search.Query{Limit: 100})
	want := make([]int, len(docs))
	for i := range docs {
		want[i] = keyOf[docs[i].ID]
	}
	wantSet(t, "browse after rebuild", res, want...)
	wantSet(t, "new title", mustSearch(t, ix, search.Query{Text: "zyxwv"}), keyOf[docs[0].ID])
	if got, err := ix.Meta(ctx); err != nil || got.CatalogID != m.CatalogID || !got.Position.Equal(m.Position) {
		t.Errorf("Meta after rebuild = %+v, %v; want %+v", got, err, m)
	}
	// The rebuilt index is the live one for writes too.
	if err := ix.Delete(ctx, []uuid.UUID{docs[1].ID}); err != nil {
		t.Fatal(err)
	}
	if n, _ := ix.Count(ctx); n != len(docs)-1 {
		t.Errorf("Count after a delete = %d, want %d", n, len(docs)-1)
	}
}

// testRebuildServesOld: while fill runs, searches see the old index, whole.
func testRebuildServesOld(t *testing.T, ix search.Rebuildable) {
	ctx := context.Background()
	err := ix.Rebuild(ctx, search.Meta{CatalogID: uuid.New()}, func(w search.Writer) error {
		if err := w.Upsert(ctx, Fixture()[:1]); err != nil {
			return err
		}
		if res := mustSearch(t, ix, search.Query{Limit: 100}); res.Total != NumFixture || len(res.Hits) != NumFixture {
			t.Errorf("during the rebuild: total %d, %d hits; want the old index's %d", res.Total, len(res.Hits), NumFixture)
		}
		if m, err := ix.Meta(ctx); err != nil || m != (search.Meta{}) {
			t.Errorf("Meta during the rebuild = %+v, %v; want the old index's", m, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res := mustSearch(t, ix, search.Query{Limit: 100}); res.Total != 1 {
		t.Errorf("after the rebuild: total %d, want 1", res.Total)
	}
}

func testRebuildFailure(t *testing.T, ix search.Rebuildable) {
	ctx := context.Background()
	old := search.Meta{CatalogID: uuid.New(), Position: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := ix.SetMeta(ctx, old); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("the database went away")
	err := ix.Rebuild(ctx, search.Meta{CatalogID: uuid.New()}, func(w search.Writer) error {
		if err := w.Upsert(ctx, Fixture()[:2]); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Rebuild = %v, want the fill's error", err)
	}
	if n, err := ix.Count(ctx); err != nil || n != NumFixture {
		t.Errorf("Count after a failed rebuild = %d, %v; want %d", n, err, NumFixture)
	}
	if m, err := ix.Meta(ctx); err != nil || m.CatalogID != old.CatalogID {
		t.Errorf("Meta after a failed rebuild = %+v, %v; want %+v", m, err, old)
	}
}

// testVersions: a writer that read a book earlier (lower Version) cannot bring its older
// state back, whether its write arrives in another call or in the same batch.
func testVersions(t *testing.T, ix search.Rebuildable) {
	ctx := context.Background()
	doc := func(price, version int64) search.Document {
		d := Fixture()[Hobbit]
		d.PriceCents, d.Version = price, version
		return d
	}
	price := func() int64 {
		t.Helper()
		res := mustSearch(t, ix, search.Query{Text: FixtureISBN(Hobbit), SkipFacets: true})
		if len(res.Hits) != 1 {
			t.Fatalf("ISBN search: %d hits", len(res.Hits))
		}
		for _, p := range []int64{100, 200, 300, 400, 500} {
			if mustSearch(t, ix, search.Query{Text: FixtureISBN(Hobbit), Filter: search.Filter{MinPriceCents: &p, MaxPriceCents: &p}}).Total == 1 {
				return p
			}
		}
		return -1
	}
	steps := []struct {
		name  string
		docs  []search.Document
		price int64
	}{
		{"first version", []search.Document{doc(200, 20)}, 200},
		{"older version", []search.Document{doc(100, 10)}, 200},
		{"newer version", []search.Document{doc(300, 30)}, 300},
		{"equal version replaces", []search.Document{doc(400, 30)}, 400},
		{"newest of a batch wins", []search.Document{doc(500, 50), doc(100, 40)}, 500},
		{"unversioned replaces", []search.Document{doc(100, 0)}, 100},
	}
	for _, s := range steps {
		if err := ix.Upsert(ctx, s.docs); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := price(); got != s.price {
			t.Errorf("%s: price %d, want %d", s.name, got, s.price)
		}
	}
}

// testExclude: books a search excludes are absent from its hits, Total and facets alike,
// so that counts and pages agree.
func testExclude(t *testing.T, ix search.Rebuildable) {
	ex := []uuid.UUID{FixtureID(Hobbit), FixtureID(LOTR), uuid.New()} // and an unknown id
	all := mustSearch(t, ix, search.Query{Limit: 100})
	got := mustSearch(t, ix, search.Query{Limit: 100, Exclude: ex})
	var want []int
	for k := range NumFixture {
		if k != Hobbit && k != LOTR {
			want = append(want, k)
		}
	}
	wantSet(t, "browse excluding two", got, want...)
	sum := func(f search.Facets) (n int) {
		for _, p := range f.Prices {
			n += p.Count
		}
		return n
	}
	if sum(got.Facets) != got.Total || sum(all.Facets)-sum(got.Facets) != 2 {
		t.Errorf("price facets count %d of %d results (all: %d of %d)", sum(got.Facets), got.Total, sum(all.Facets), all.Total)
	}
	tolkien := facetMap(got.Facets.Authors)[author("J.R.R. Tolkien").String()]
	if tolkien != facetMap(all.Facets.Authors)[author("J.R.R. Tolkien").String()]-2 {
		t.Errorf("author facet still counts excluded books: %d", tolkien)
	}
	// With text, and paged: the excluded never appear on any page.
	text := mustSearch(t, ix, search.Query{Text: "tolkien", Exclude: ex[:1]})
	wantSet(t, "text excluding one", text, LOTR)
	if p := mustSearch(t, ix, search.Query{Limit: 1, Offset: NumFixture - 3, Exclude: ex}); len(p.Hits) != 1 || p.Total != NumFixture-2 {
		t.Errorf("last page excluding two: %d hits of %d", len(p.Hits), p.Total)
	}
}
