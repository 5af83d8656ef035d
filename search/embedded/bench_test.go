package embedded

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/search/searchtest"
)

// Benchmarks. The search benchmarks use the relevance corpus (the 10,000-book demo
// catalog plus four classics) with the result cache off, so they measure the engine,
// except BenchmarkSearchCached. Each reports q/s next to ns/op; with -cpu 2 (or on a
// 2-core machine) the parallel ones show what two cores sustain:
//
//	go test -run XXX -bench . -benchtime 2s ./search/embedded/
//
// BenchmarkIndexBuild builds 10,000 and 100,000 documents into a new index (the demo
// catalog, seed 1) and reports the build time, the documents per second and the size of
// the index on disk after its segments are merged; BenchmarkOpen reopens such an index
// (loading its documents into memory). BENCH_BUILD_SIZES=10000 limits the sizes.

var (
	benchOnce sync.Once
	benchIx   *Index // the relevance corpus's index, merged into one segment
)

func benchIndex(b *testing.B) *Index {
	c := relevanceCorpus(b)
	benchOnce.Do(func() {
		if err := c.ix.Optimize(context.Background()); err != nil {
			b.Fatal(err)
		}
		benchIx = c.ix
	})
	return benchIx
}

func reportQPS(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "q/s")
}

func benchSearch(b *testing.B, ix *Index, q search.Query) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := ix.Search(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	reportQPS(b)
}

// BenchmarkSearch covers the query shapes of the issue, one at a time.
func BenchmarkSearch(b *testing.B) {
	ix := benchIndex(b)
	f := func(slugs ...string) search.Filter { return search.Filter{Categories: slugs} }
	min, max := int64(1000), int64(2000)
	for _, tc := range []struct {
		name string
		q    search.Query
	}{
		{"match-all+facets", search.Query{}},
		{"match-all+genre-filter+facets", search.Query{Filter: f("fiction")}},
		{"match-all+genre-filter+price-sort", search.Query{Filter: f("epic-fantasy"), Sort: search.SortPriceAsc}},
		{"1-term+facets", search.Query{Text: "dragon"}},
		{"1-term+genre&price-filters+facets", search.Query{Text: "dragon", Filter: search.Filter{Categories: []string{"science-fiction-fantasy"}, MinPriceCents: &min, MaxPriceCents: &max}}},
		{"2-terms+facets", search.Query{Text: "silver crown"}},
		{"typo-1", search.Query{Text: "apothecry"}},
		{"typo-2", search.Query{Text: "cartogrpher"}},
		{"typo-author", search.Query{Text: "tolkein"}},
		{"typo-2-words", search.Query{Text: "harry poter"}},
		{"as-you-type", search.Query{Text: "the hedgehog w"}},
		{"isbn", search.Query{Text: "978-0-939713-17-2"}},
		{"common-word", search.Query{Text: "the"}},
		{"no-facets", search.Query{Text: "dragon", SkipFacets: true}},
	} {
		b.Run(tc.name, func(b *testing.B) { benchSearch(b, ix, tc.q) })
	}
}

// mixedQueries is a spread of what shoppers type and click: browsing categories with
// sorts and filters, titles, authors, typos, prefixes.
var mixedQueries = func() []search.Query {
	inStock := true
	min, max := int64(1000), int64(2500)
	four := 4.0
	var qs []search.Query
	for _, text := range []string{"", "dragon", "silver crown", "murder", "cartogrpher", "tamsin vale", "harry poter",
		"the hedgehog w", "quantum", "lighthouse keeper", "neon req", "karen wallace", "space opera", "love", "war",
		"inspector hale", "tolkein", "juniper c", "history of", "die ruckkehr"} {
		qs = append(qs, search.Query{Text: text})
	}
	for _, slug := range []string{"fiction", "epic-fantasy", "cozy-mystery", "science", "picture-books", "romance"} {
		qs = append(qs,
			search.Query{Filter: search.Filter{Categories: []string{slug}}},
			search.Query{Filter: search.Filter{Categories: []string{slug}, InStock: &inStock}, Sort: search.SortPriceAsc},
			search.Query{Filter: search.Filter{Categories: []string{slug}, MinRating: &four}, Sort: search.SortRating, Offset: 20},
			search.Query{Text: "the", Filter: search.Filter{Categories: []string{slug}, MinPriceCents: &min, MaxPriceCents: &max}},
		)
	}
	return qs
}()

// BenchmarkSearchMixed cycles through mixedQueries, uncached.
func BenchmarkSearchMixed(b *testing.B) {
	ix := benchIndex(b)
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := ix.Search(ctx, mixedQueries[i%len(mixedQueries)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		reportQPS(b)
	})
	b.Run("parallel", func(b *testing.B) {
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := next.Add(1)
				if _, err := ix.Search(ctx, mixedQueries[int(i)%len(mixedQueries)]); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportQPS(b)
	})
}

// BenchmarkSearchCached repeats one search with the result cache on.
func BenchmarkSearchCached(b *testing.B) {
	ix := benchIndex(b)
	old := ix.cache
	ix.cache = newLRU(2048)
	defer func() { ix.cache = old }()
	benchSearch(b, ix, search.Query{Text: "silver crown", Filter: search.Filter{Categories: []string{"fantasy"}}})
}

// BenchmarkSuggest measures search-as-you-type suggestions (cache off).
func BenchmarkSuggest(b *testing.B) {
	ix := benchIndex(b)
	ctx := context.Background()
	for _, prefix := range []string{"s", "sil", "silver cr", "tamsin v", "the hedgehog", "harry pot"} {
		b.Run(prefix, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ix.Suggest(ctx, prefix, 8); err != nil {
					b.Fatal(err)
				}
			}
			reportQPS(b)
		})
	}
}

func buildSizes() []int {
	if s := os.Getenv("BENCH_BUILD_SIZES"); s != "" {
		var out []int
		for _, f := range strings.Split(s, ",") {
			var n int
			fmt.Sscan(f, &n)
			if n > 0 {
				out = append(out, n)
			}
		}
		return out
	}
	return []int{10_000, 100_000}
}

var (
	demoMu   sync.Mutex
	demoDocs []search.Document
)

func demo(b *testing.B, n int) []search.Document {
	demoMu.Lock()
	defer demoMu.Unlock()
	if len(demoDocs) < n {
		docs, err := searchtest.DemoDocuments(1, n)
		if err != nil {
			b.Fatal(err)
		}
		demoDocs = docs
	}
	return demoDocs[:n]
}

// BenchmarkIndexBuild builds an index of n documents per iteration, in batches of 500
// as the reindex command sends them.
func BenchmarkIndexBuild(b *testing.B) {
	for _, n := range buildSizes() {
		b.Run(fmt.Sprintf("docs=%d", n), func(b *testing.B) {
			docs := demo(b, n)
			ctx := context.Background()
			var size int64
			var build time.Duration
			for b.Loop() {
				dir := b.TempDir()
				start := time.Now()
				ix, err := Open(dir, Options{CacheSize: -1})
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < len(docs); i += 500 {
					if err := ix.Upsert(ctx, docs[i:min(i+500, len(docs))]); err != nil {
						b.Fatal(err)
					}
				}
				build = time.Since(start)
				if err := ix.Optimize(ctx); err != nil {
					b.Fatal(err)
				}
				if size, err = ix.DiskSize(); err != nil {
					b.Fatal(err)
				}
				ix.Close()
			}
			b.ReportMetric(build.Seconds(), "build-s")
			b.ReportMetric(float64(n)/build.Seconds(), "docs/s")
			b.ReportMetric(float64(size)/(1<<20), "disk-MiB")
		})
	}
}

// BenchmarkOpen reopens an index of n documents (Bleve opens its segments; the engine
// reads every stored document back into memory).
func BenchmarkOpen(b *testing.B) {
	for _, n := range buildSizes() {
		b.Run(fmt.Sprintf("docs=%d", n), func(b *testing.B) {
			docs := demo(b, n)
			dir := b.TempDir()
			ix, err := Open(dir, Options{CacheSize: -1})
			if err != nil {
				b.Fatal(err)
			}
			if err := ix.Upsert(context.Background(), docs); err != nil {
				b.Fatal(err)
			}
			ix.Close()
			b.ResetTimer()
			for b.Loop() {
				ix, err := Open(dir)
				if err != nil {
					b.Fatal(err)
				}
				if c, _ := ix.Count(context.Background()); c != n {
					b.Fatalf("reopened %d documents, want %d", c, n)
				}
				ix.Close()
			}
		})
	}
}
