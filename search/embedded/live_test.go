package embedded

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/search/searchtest"
)

// TestLiveSurvivesRestartsAndDiscardsLeftovers: the current generation and its meta
// persist across restarts, a rebuild that never finished is removed, and an index in
// the older layout (Bleve files in the root) is discarded for a rebuild.
func TestLiveSurvivesRestartsAndDiscardsLeftovers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ix, err := OpenLive(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := search.Meta{CatalogID: uuid.New(), Position: time.Now().UTC().Truncate(time.Microsecond)}
	err = ix.Rebuild(ctx, m, func(w search.Writer) error { return w.Upsert(ctx, searchtest.Fixture()) })
	if err != nil {
		t.Fatal(err)
	}
	ix.Close()
	gens, _ := filepath.Glob(filepath.Join(dir, "gen-*"))
	if len(gens) != 1 {
		t.Fatalf("%d generations after a rebuild, want 1: %v", len(gens), gens)
	}
	leftover := filepath.Join(dir, newGen())
	if err := os.MkdirAll(filepath.Join(leftover, "store"), 0o755); err != nil {
		t.Fatal(err)
	}

	ix, err = OpenLive(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := ix.Count(ctx); n != searchtest.NumFixture {
		t.Errorf("Count after a restart = %d, want %d", n, searchtest.NumFixture)
	}
	if got, _ := ix.Meta(ctx); got.CatalogID != m.CatalogID || !got.Position.Equal(m.Position) {
		t.Errorf("Meta after a restart = %+v, want %+v", got, m)
	}
	ix.Close()
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("the unfinished generation is still there: %v", err)
	}

	old := t.TempDir()
	legacy, err := Open(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := legacy.Upsert(ctx, searchtest.Fixture()); err != nil {
		t.Fatal(err)
	}
	legacy.Close()
	ix, err = OpenLive(old)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if n, _ := ix.Count(ctx); n != 0 {
		t.Errorf("an index in the older layout was kept: %d documents", n)
	}
	if got, _ := ix.Meta(ctx); got != (search.Meta{}) {
		t.Errorf("Meta of a discarded index = %+v", got)
	}
}

// TestLiveSwapUnderSearches: searches running while generations are swapped never fail
// and always see a whole index, the old or the new.
func TestLiveSwapUnderSearches(t *testing.T) {
	ctx := context.Background()
	ix, err := OpenLive(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	all := searchtest.Fixture()
	if err := ix.Upsert(ctx, all); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				_, err := ix.Search(ctx, search.Query{Text: "the", Limit: 100})
				if err == nil {
					_, err = ix.Suggest(ctx, "tol", 5)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range 4 {
		docs := all[:len(all)-i]
		if err := ix.Rebuild(ctx, search.Meta{CatalogID: uuid.New()}, func(w search.Writer) error { return w.Upsert(ctx, docs) }); err != nil {
			t.Fatal(err)
		}
		if res, err := ix.Search(ctx, search.Query{Limit: 100}); err != nil || res.Total != len(docs) {
			t.Fatalf("after rebuild %d: %d results, %v; want %d", i, res.Total, err, len(docs))
		}
	}
	close(stop)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("a search during a swap: %v", err)
		}
	}
}
