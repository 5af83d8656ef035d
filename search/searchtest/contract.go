package searchtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/search"
)

// Run runs the engine contract against indexes made by open, which must return a new,
// empty index for each call (and arrange its cleanup with t.Cleanup). Each subtest loads
// Fixture() into its own index.
func Run(t *testing.T, open func(t *testing.T) search.Index) {
	tests := []struct {
		name string
		fn   func(t *testing.T, ix search.Index)
	}{
		{"Count", testCount},
		{"Browse", testBrowse},
		{"Sorts", testSorts},
		{"Paging", testPaging},
		{"Filters", testFilters},
		{"FacetsBrowse", testFacetsBrowse},
		{"DisjunctiveGenres", testDisjunctiveGenres},
		{"DisjunctivePrice", testDisjunctivePrice},
		{"DisjunctiveRatingAndAuthors", testDisjunctiveRatingAuthors},
		{"Text", testText},
		{"TextWithFilters", testTextWithFilters},
		{"Highlights", testHighlights},
		{"HighlightsAfterUpdates", testHighlightsAfterUpdates},
		{"ShortPrefixes", testShortPrefixes},
		{"CountsFollowWrites", testCountsFollowWrites},
		{"TyposInLetters", testTyposInLetters},
		{"QuerySyntax", testQuerySyntax},
		{"SuggestPopularity", testSuggestPopularity},
		{"SuggestAuthorSalesTypoNeighbours", testSuggestAuthorSalesTypoNeighbours},
		{"Suggest", testSuggest},
		{"Delete", testDelete},
		{"UpsertReplaces", testUpsertReplaces},
		{"DeleteIsVersioned", testDeleteIsVersioned},
		{"Escaping", testEscaping},
		{"EdgeInputs", testEdgeInputs},
		{"InvalidDocument", testInvalidDocument},
	}
	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		testEmpty(t, open(t))
	})
	runIndexState(t, open)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ix := open(t)
			if err := ix.Upsert(context.Background(), Fixture()); err != nil {
				t.Fatalf("load fixture: %v", err)
			}
			tc.fn(t, ix)
		})
	}
}

// Helpers ------------------------------------------------------------------------------

var keyOf = func() map[uuid.UUID]int {
	m := map[uuid.UUID]int{}
	for k := range NumFixture {
		m[FixtureID(k)] = k
	}
	return m
}()

var fixtureNames = [NumFixture]string{
	HP1: "HP1", HP2: "HP2", Hobbit: "Hobbit", LOTR: "LOTR", Orient: "Orient", Ackroyd: "Ackroyd",
	Brief: "Brief", Sapiens: "Sapiens", Guns: "Guns", Zauberberg: "Zauberberg", Prince: "Prince",
	Omens: "Omens", Cosmos: "Cosmos", Debut: "Debut", Quotes: "Quotes",
}

func names(keys []int) string {
	var s []string
	for _, k := range keys {
		if k >= 0 && k < NumFixture {
			s = append(s, fixtureNames[k])
		} else {
			s = append(s, "?")
		}
	}
	return "[" + strings.Join(s, " ") + "]"
}

func hitKeys(res search.Result) []int {
	out := make([]int, len(res.Hits))
	for i, h := range res.Hits {
		k, ok := keyOf[h.ID]
		if !ok {
			k = -1
		}
		out[i] = k
	}
	return out
}

func mustSearch(t *testing.T, ix search.Index, q search.Query) search.Result {
	t.Helper()
	res, err := ix.Search(context.Background(), q)
	if err != nil {
		t.Fatalf("Search(%+v): %v", q, err)
	}
	return res
}

// wantOrder checks the hits are exactly keys, in order.
func wantOrder(t *testing.T, what string, res search.Result, keys ...int) {
	t.Helper()
	if got := hitKeys(res); !slices.Equal(got, keys) {
		t.Errorf("%s: hits %s, want %s", what, names(got), names(keys))
	}
}

// wantSet checks the hits and the total are exactly keys, in any order.
func wantSet(t *testing.T, what string, res search.Result, keys ...int) {
	t.Helper()
	got := hitKeys(res)
	slices.Sort(got)
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(got, want) || res.Total != len(keys) {
		t.Errorf("%s: total %d hits %s, want %d %s", what, res.Total, names(got), len(keys), names(want))
	}
}

func i64(v int64) *int64           { return &v }
func f64(v float64) *float64       { return &v }
func boolp(v bool) *bool           { return &v }
func author(name string) uuid.UUID { return FixtureAuthorID(name) }

func facetMap(fc []search.FacetCount) map[string]int {
	m := map[string]int{}
	for _, f := range fc {
		m[f.Value] = f.Count
	}
	return m
}

func wantFacets(t *testing.T, what string, got []search.FacetCount, want map[string]int) {
	t.Helper()
	if g := facetMap(got); !mapsEqual(g, want) {
		t.Errorf("%s = %v, want %v", what, g, want)
	}
	if !slices.IsSortedFunc(got, func(a, b search.FacetCount) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Value, b.Value)
	}) {
		t.Errorf("%s not sorted by count, then value: %v", what, got)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func wantPrices(t *testing.T, f search.Facets, counts [5]int, lo, hi int64) {
	t.Helper()
	if len(f.Prices) != len(search.PriceBuckets) {
		t.Fatalf("price buckets = %v", f.Prices)
	}
	for i, p := range f.Prices {
		if p.MinCents != search.PriceBuckets[i].MinCents || p.MaxCents != search.PriceBuckets[i].MaxCents || p.Count != counts[i] {
			t.Errorf("price bucket %d = %+v, want %+v count %d", i, p, search.PriceBuckets[i], counts[i])
		}
	}
	if f.MinPriceCents != lo || f.MaxPriceCents != hi {
		t.Errorf("price range = %d..%d, want %d..%d", f.MinPriceCents, f.MaxPriceCents, lo, hi)
	}
}

func wantRatings(t *testing.T, f search.Facets, counts [4]int) {
	t.Helper()
	if len(f.Ratings) != len(search.RatingThresholds) {
		t.Fatalf("rating buckets = %v", f.Ratings)
	}
	for i, r := range f.Ratings {
		if r.MinRating != search.RatingThresholds[i] || r.Count != counts[i] {
			t.Errorf("rating bucket %d = %+v, want %v+ count %d", i, r, search.RatingThresholds[i], counts[i])
		}
	}
}

// Tests ---------------------------------------------------------------------------------

func testEmpty(t *testing.T, ix search.Index) {
	ctx := context.Background()
	if n, err := ix.Count(ctx); err != nil || n != 0 {
		t.Errorf("Count = %d, %v; want 0", n, err)
	}
	res := mustSearch(t, ix, search.Query{})
	if res.Total != 0 || len(res.Hits) != 0 {
		t.Errorf("browse empty index: %+v", res)
	}
	wantPrices(t, res.Facets, [5]int{}, 0, 0)
	res = mustSearch(t, ix, search.Query{Text: "anything"})
	if res.Total != 0 || len(res.Hits) != 0 {
		t.Errorf("search empty index: %+v", res)
	}
	if s, err := ix.Suggest(ctx, "any", 5); err != nil || len(s) != 0 {
		t.Errorf("Suggest on empty index = %v, %v", s, err)
	}
}

func testCount(t *testing.T, ix search.Index) {
	if n, err := ix.Count(context.Background()); err != nil || n != NumFixture {
		t.Errorf("Count = %d, %v; want %d", n, err, NumFixture)
	}
}

// bestselling is the fixture in SortBestselling order (also browsing by relevance).
var bestselling = []int{HP1, HP2, Hobbit, LOTR, Sapiens, Brief, Prince, Orient, Omens, Ackroyd, Cosmos, Guns, Zauberberg, Quotes, Debut}

func testBrowse(t *testing.T, ix search.Index) {
	res := mustSearch(t, ix, search.Query{})
	if res.Total != NumFixture {
		t.Errorf("Total = %d, want %d", res.Total, NumFixture)
	}
	wantOrder(t, "browse by relevance (best sellers first)", res, bestselling...)
	for _, h := range res.Hits {
		if len(h.Highlights) != 0 {
			t.Errorf("browse hit %s has highlights %v", fixtureNames[keyOf[h.ID]], h.Highlights)
		}
	}
	res = mustSearch(t, ix, search.Query{Text: "   "})
	wantOrder(t, "blank text browses", res, bestselling...)
}

func testSorts(t *testing.T, ix search.Index) {
	for _, tc := range []struct {
		sort search.Sort
		want []int
	}{
		{search.SortBestselling, bestselling},
		{search.SortPriceAsc, []int{Debut, Prince, HP1, Ackroyd, HP2, Orient, Hobbit, Quotes, Omens, Brief, Zauberberg, Sapiens, LOTR, Guns, Cosmos}},
		{search.SortPriceDesc, []int{Cosmos, Guns, LOTR, Sapiens, Zauberberg, Brief, Omens, Quotes, Hobbit, Orient, HP2, Ackroyd, HP1, Prince, Debut}},
		// Ties on rating go to the book with more ratings.
		{search.SortRating, []int{LOTR, HP1, Prince, HP2, Hobbit, Cosmos, Brief, Omens, Sapiens, Ackroyd, Orient, Guns, Zauberberg, Quotes, Debut}},
		// Unknown publication dates come last.
		{search.SortNewest, []int{Sapiens, Quotes, HP2, HP1, Omens, Brief, Cosmos, Guns, LOTR, Prince, Hobbit, Orient, Ackroyd, Zauberberg, Debut}},
	} {
		res := mustSearch(t, ix, search.Query{Sort: tc.sort, Limit: 50})
		wantOrder(t, tc.sort.String(), res, tc.want...)
	}
	// Sorting applies to text matches too.
	res := mustSearch(t, ix, search.Query{Text: "harry", Sort: search.SortPriceDesc})
	wantOrder(t, "harry by price descending", res, HP2, HP1)
	res = mustSearch(t, ix, search.Query{Text: "the", Sort: search.SortNewest, Limit: 3})
	if got := hitKeys(res); len(got) != 3 || got[0] != Sapiens {
		t.Errorf(`"the" newest first: %s`, names(got))
	}
}

func testPaging(t *testing.T, ix search.Index) {
	byPrice := []int{Debut, Prince, HP1, Ackroyd, HP2, Orient, Hobbit, Quotes, Omens, Brief, Zauberberg, Sapiens, LOTR, Guns, Cosmos}
	for _, tc := range []struct{ offset, limit int }{
		{0, 4}, {4, 4}, {8, 4}, {12, 4}, {3, 4}, {5, 3}, {13, 7}, {14, 1}, {15, 5}, {1000, 5}, {-3, 2},
	} {
		res := mustSearch(t, ix, search.Query{Sort: search.SortPriceAsc, Offset: tc.offset, Limit: tc.limit})
		from := min(max(tc.offset, 0), len(byPrice))
		to := min(from+tc.limit, len(byPrice))
		wantOrder(t, fmt.Sprintf("offset %d limit %d", tc.offset, tc.limit), res, byPrice[from:to]...)
		if res.Total != NumFixture {
			t.Errorf("offset %d: Total = %d", tc.offset, res.Total)
		}
	}
	// Pages of a text search cover its results once each.
	var seen []int
	for off := 0; off < 20; off += 2 {
		res := mustSearch(t, ix, search.Query{Text: "the", Offset: off, Limit: 2})
		seen = append(seen, hitKeys(res)...)
		if res.Total == 0 || off >= res.Total {
			break
		}
	}
	all := mustSearch(t, ix, search.Query{Text: "the", Limit: 50})
	if !slices.Equal(seen, hitKeys(all)) {
		t.Errorf(`pages of "the" = %s, one page = %s`, names(seen), names(hitKeys(all)))
	}
}

func testFilters(t *testing.T, ix search.Index) {
	for _, tc := range []struct {
		name string
		f    search.Filter
		want []int
	}{
		{"fantasy", search.Filter{Categories: []string{"fantasy"}}, []int{HP1, HP2, Hobbit, LOTR, Prince, Omens}},
		{"fantasy or mystery", search.Filter{Categories: []string{"fantasy", "mystery"}}, []int{HP1, HP2, Hobbit, LOTR, Prince, Omens, Orient, Ackroyd, Debut}},
		{"parent category", search.Filter{Categories: []string{"fiction"}}, []int{HP1, HP2, Hobbit, LOTR, Orient, Ackroyd, Zauberberg, Prince, Omens, Debut}},
		{"unknown category", search.Filter{Categories: []string{"nope"}}, nil},
		{"category case", search.Filter{Categories: []string{" Fantasy "}}, []int{HP1, HP2, Hobbit, LOTR, Prince, Omens}},
		{"author", search.Filter{AuthorIDs: []uuid.UUID{author("J.R.R. Tolkien")}}, []int{Hobbit, LOTR}},
		{"co-author", search.Filter{AuthorIDs: []uuid.UUID{author("Neil Gaiman")}}, []int{Omens}},
		{"authors", search.Filter{AuthorIDs: []uuid.UUID{author("Neil Gaiman"), author("Carl Sagan")}}, []int{Omens, Cosmos}},
		{"price range", search.Filter{MinPriceCents: i64(1000), MaxPriceCents: i64(2000)}, []int{Hobbit, Orient, Brief, Omens, Quotes}},
		{"price bounds inclusive", search.Filter{MinPriceCents: i64(899), MaxPriceCents: i64(999)}, []int{HP1, Ackroyd, HP2}},
		{"min price", search.Filter{MinPriceCents: i64(5000)}, []int{Cosmos}},
		{"max price", search.Filter{MaxPriceCents: i64(899)}, []int{Debut, Prince, HP1}},
		{"empty price range", search.Filter{MinPriceCents: i64(2000), MaxPriceCents: i64(1000)}, nil},
		{"rating threshold", search.Filter{MinRating: f64(4.5)}, []int{HP1, HP2, Hobbit, LOTR, Brief, Sapiens, Prince, Omens, Cosmos}},
		{"rating between thresholds", search.Filter{MinRating: f64(4.75)}, []int{HP1, LOTR, Prince}},
		{"rating 4", search.Filter{MinRating: f64(4)}, []int{HP1, HP2, Hobbit, LOTR, Orient, Ackroyd, Brief, Sapiens, Guns, Zauberberg, Prince, Omens, Cosmos}},
		{"in stock", search.Filter{InStock: boolp(true)}, []int{HP1, HP2, Hobbit, Orient, Brief, Sapiens, Guns, Zauberberg, Prince, Omens, Debut, Quotes}},
		{"out of stock", search.Filter{InStock: boolp(false)}, []int{LOTR, Ackroyd, Cosmos}},
		{"language", search.Filter{Language: "de"}, []int{Zauberberg}},
		{"language case", search.Filter{Language: "FR"}, []int{Prince}},
		{"language en", search.Filter{Language: "en"}, []int{HP1, HP2, Hobbit, LOTR, Orient, Ackroyd, Brief, Sapiens, Guns, Omens, Cosmos, Debut}},
		{"combined", search.Filter{Categories: []string{"fantasy"}, InStock: boolp(true), MaxPriceCents: i64(1000)}, []int{HP1, HP2, Prince}},
		{"disjoint", search.Filter{Categories: []string{"fantasy"}, AuthorIDs: []uuid.UUID{author("Agatha Christie")}}, nil},
		{"weird slug", search.Filter{Categories: []string{WeirdSlug}}, []int{Quotes}},
	} {
		res := mustSearch(t, ix, search.Query{Filter: tc.f, Limit: 50})
		wantSet(t, tc.name, res, tc.want...)
	}
}

func testFacetsBrowse(t *testing.T, ix search.Index) {
	res := mustSearch(t, ix, search.Query{Limit: 1})
	f := res.Facets
	wantFacets(t, "genres", f.Genres, map[string]int{
		"fiction": 10, "fantasy": 6, "mystery": 3, "nonfiction": 4, "history": 2, "science": 2, WeirdSlug: 1,
	})
	wantFacets(t, "languages", f.Languages, map[string]int{"en": 12, "de": 1, "fr": 1, "es": 1})
	wantPrices(t, f, [5]int{5, 5, 3, 1, 1}, 299, 5499)
	wantRatings(t, f, [4]int{13, 14, 14, 14})
	if f.InStock != 12 {
		t.Errorf("in stock = %d, want 12", f.InStock)
	}
	a := facetMap(f.Authors)
	if len(f.Authors) != search.AuthorFacetLimit {
		t.Errorf("authors facet has %d entries, want %d", len(f.Authors), search.AuthorFacetLimit)
	}
	for _, name := range []string{"J.K. Rowling", "J.R.R. Tolkien", "Agatha Christie"} {
		if a[author(name).String()] != 2 {
			t.Errorf("author facet %s = %d, want 2 (facet %v)", name, a[author(name).String()], f.Authors)
		}
	}
	res = mustSearch(t, ix, search.Query{Limit: 1, SkipFacets: true})
	if res.Total != NumFixture || len(res.Facets.Genres) != 0 || len(res.Facets.Prices) != 0 {
		t.Errorf("SkipFacets: total %d facets %+v", res.Total, res.Facets)
	}
}

// testDisjunctiveGenres checks the counts of the fixture's header comment by hand: with
// "fantasy" and "in stock" selected, the genre counts are those of the in-stock books.
func testDisjunctiveGenres(t *testing.T, ix search.Index) {
	res := mustSearch(t, ix, search.Query{Filter: search.Filter{Categories: []string{"fantasy"}, InStock: boolp(true)}})
	wantSet(t, "fantasy in stock", res, HP1, HP2, Hobbit, Prince, Omens)
	f := res.Facets
	// In stock: HP1 HP2 Hobbit Orient Brief Sapiens Guns Zauberberg Prince Omens Debut Quotes.
	wantFacets(t, "genres", f.Genres, map[string]int{
		"fiction": 8, "fantasy": 5, "mystery": 2, "nonfiction": 3, "history": 2, "science": 1, WeirdSlug: 1,
	})
	// The stock count ignores the stock filter: 5 of the 6 fantasy books are in stock.
	if f.InStock != 5 {
		t.Errorf("in stock = %d, want 5", f.InStock)
	}
	// Other groups count the results: 899 999 1250 700 1599.
	wantPrices(t, f, [5]int{3, 2, 0, 0, 0}, 700, 1599)
	wantRatings(t, f, [4]int{5, 5, 5, 5})
	wantFacets(t, "languages", f.Languages, map[string]int{"en": 4, "fr": 1})
	wantFacets(t, "authors", f.Authors, map[string]int{
		author("J.K. Rowling").String(): 2, author("J.R.R. Tolkien").String(): 1,
		author("Antoine de Saint-Exupéry").String(): 1, author("Terry Pratchett").String(): 1,
		author("Neil Gaiman").String(): 1,
	})

	// Two genres selected: each one's count is what it would add alone.
	res = mustSearch(t, ix, search.Query{Filter: search.Filter{Categories: []string{"mystery", "science"}}})
	wantSet(t, "mystery or science", res, Orient, Ackroyd, Debut, Brief, Cosmos)
	wantFacets(t, "genres", res.Facets.Genres, map[string]int{
		"fiction": 10, "fantasy": 6, "mystery": 3, "nonfiction": 4, "history": 2, "science": 2, WeirdSlug: 1,
	})
	// A selected genre without books is still listed.
	res = mustSearch(t, ix, search.Query{Filter: search.Filter{Categories: []string{"nope"}}})
	if facetMap(res.Facets.Genres)["nope"] != 0 || !slices.ContainsFunc(res.Facets.Genres, func(c search.FacetCount) bool { return c.Value == "nope" }) {
		t.Errorf("selected unknown genre missing from facet: %v", res.Facets.Genres)
	}
}

func testDisjunctivePrice(t *testing.T, ix search.Index) {
	res := mustSearch(t, ix, search.Query{Filter: search.Filter{MinPriceCents: i64(1000), MaxPriceCents: i64(2000)}})
	wantSet(t, "10-20 dollars", res, Hobbit, Orient, Brief, Omens, Quotes)
	f := res.Facets
	// The price facet and range ignore the price filter: every book counts.
	wantPrices(t, f, [5]int{5, 5, 3, 1, 1}, 299, 5499)
	wantFacets(t, "genres", f.Genres, map[string]int{
		"fiction": 3, "fantasy": 2, "mystery": 1, "nonfiction": 1, "science": 1, WeirdSlug: 1,
	})
	// Ratings 4.7 4.3 4.6 4.6 3.5.
	wantRatings(t, f, [4]int{4, 5, 5, 5})
	if f.InStock != 5 {
		t.Errorf("in stock = %d, want 5", f.InStock)
	}
}

func testDisjunctiveRatingAuthors(t *testing.T, ix search.Index) {
	res := mustSearch(t, ix, search.Query{Filter: search.Filter{MinRating: f64(4.5)}})
	if res.Total != 9 {
		t.Errorf("rated 4.5+: total %d, want 9", res.Total)
	}
	// The rating facet ignores the rating filter.
	wantRatings(t, res.Facets, [4]int{13, 14, 14, 14})

	tolkien := author("J.R.R. Tolkien")
	res = mustSearch(t, ix, search.Query{Filter: search.Filter{AuthorIDs: []uuid.UUID{tolkien}}})
	wantSet(t, "Tolkien", res, Hobbit, LOTR)
	a := facetMap(res.Facets.Authors)
	if len(res.Facets.Authors) != search.AuthorFacetLimit || a[tolkien.String()] != 2 || a[author("J.K. Rowling").String()] != 2 {
		t.Errorf("authors facet with Tolkien selected = %v", res.Facets.Authors)
	}
	wantFacets(t, "genres", res.Facets.Genres, map[string]int{"fiction": 2, "fantasy": 2})

	// A selected author outside the top ones is listed anyway.
	unknown := uuid.NewSHA1(uuid.NameSpaceOID, []byte("nobody"))
	res = mustSearch(t, ix, search.Query{Filter: search.Filter{AuthorIDs: []uuid.UUID{unknown}}})
	if res.Total != 0 || !slices.ContainsFunc(res.Facets.Authors, func(c search.FacetCount) bool { return c.Value == unknown.String() && c.Count == 0 }) {
		t.Errorf("unknown selected author: total %d facet %v", res.Total, res.Facets.Authors)
	}
}

func testText(t *testing.T, ix search.Index) {
	hp1 := FixtureISBN(HP1)
	dashed := hp1[:3] + "-" + hp1[3:4] + "-" + hp1[4:9] + "-" + hp1[9:12] + "-" + hp1[12:]
	for _, tc := range []struct {
		text  string
		want  []int
		first int // -1: any order
	}{
		{"harry poter", []int{HP1, HP2}, -1},            // a typo
		{"tolkein", []int{Hobbit, LOTR}, -1},            // a transposition, in an author name
		{"TOLKIEN", []int{Hobbit, LOTR}, -1},            // case
		{"hobbit", []int{Hobbit}, Hobbit},               // title
		{"hobit", []int{Hobbit}, Hobbit},                // deletion
		{"brief history", []int{Brief, Sapiens}, -1},    // two words, both must match
		{"harry potter chamber", []int{HP2}, HP2},       // AND
		{"murder", []int{Orient, Ackroyd}, -1},          // title words
		{"poirot", []int{Orient, Ackroyd}, -1},          // description words
		{"saint exupery", []int{Prince}, Prince},        // accents folded
		{"Saint-Exupéry", []int{Prince}, Prince},        // as written
		{"gaiman pratchett", []int{Omens}, Omens},       // across co-authors
		{"space", []int{Brief, Cosmos}, -1},             // description
		{"petit prin", []int{Prince}, Prince},           // the last word is a prefix
		{"the lord of the r", []int{LOTR}, LOTR},        // search as you type
		{"philosopher's", []int{HP1}, HP1},              // apostrophes
		{"philosophers stone", []int{HP1}, HP1},         // ... joined
		{hp1, []int{HP1}, HP1},                          // ISBN-13
		{dashed, []int{HP1}, HP1},                       // ISBN-13 with dashes
		{isbn10(hp1), []int{HP1}, HP1},                  // ISBN-10
		{"zzqqxxjj", nil, -1},                           // nothing
		{"harry zzqqxxjj", nil, -1},                     // one word matching nothing
		{`"quotes" & <escapes>`, []int{Quotes}, Quotes}, // punctuation is not syntax
	} {
		res := mustSearch(t, ix, search.Query{Text: tc.text})
		wantSet(t, fmt.Sprintf("%q", tc.text), res, tc.want...)
		if tc.first >= 0 && len(res.Hits) > 0 && keyOf[res.Hits[0].ID] != tc.first {
			t.Errorf("%q: first hit %s, want %s", tc.text, names(hitKeys(res)), fixtureNames[tc.first])
		}
	}
	// Title matches rank before description matches.
	res := mustSearch(t, ix, search.Query{Text: "magic school"})
	wantSet(t, "magic school", res, HP1, HP2)
}

// isbn10 converts a 978 ISBN-13 to its ISBN-10.
func isbn10(isbn13 string) string {
	body := isbn13[3:12]
	sum := 0
	for i := 0; i < 9; i++ {
		sum += (10 - i) * int(body[i]-'0')
	}
	check := (11 - sum%11) % 11
	if check == 10 {
		return body + "X"
	}
	return body + string(rune('0'+check))
}

func testTextWithFilters(t *testing.T, ix search.Index) {
	res := mustSearch(t, ix, search.Query{Text: "harry", Filter: search.Filter{InStock: boolp(false)}})
	wantSet(t, "harry out of stock", res)
	res = mustSearch(t, ix, search.Query{Text: "tolkien", Filter: search.Filter{InStock: boolp(true)}})
	wantSet(t, "tolkien in stock", res, Hobbit)
	// Facets of a text search count its matches.
	if f := facetMap(res.Facets.Genres); f["fantasy"] != 1 || f["fiction"] != 1 || len(f) != 2 {
		t.Errorf("genres of tolkien in stock = %v", f)
	}
	if res.Facets.InStock != 1 {
		t.Errorf("in stock facet = %d, want 1 (of 2 Tolkien books, ignoring the stock filter)", res.Facets.InStock)
	}
	res = mustSearch(t, ix, search.Query{Text: "the", Filter: search.Filter{Categories: []string{"mystery"}}})
	wantSet(t, "the, mystery", res, Orient, Ackroyd, Debut)
}

func testHighlights(t *testing.T, ix search.Index) {
	hl := func(res search.Result, key int) map[string]string {
		for _, h := range res.Hits {
			if keyOf[h.ID] == key {
				m := map[string]string{}
				for _, x := range h.Highlights {
					m[x.Field] = x.Snippet
				}
				return m
			}
		}
		t.Fatalf("no hit %s in %s", fixtureNames[key], names(hitKeys(res)))
		return nil
	}
	res := mustSearch(t, ix, search.Query{Text: "hobbit"})
	if got := hl(res, Hobbit)["title"]; got != "The <mark>Hobbit</mark>" {
		t.Errorf("title highlight = %q", got)
	}
	res = mustSearch(t, ix, search.Query{Text: "tolkien"})
	if got := hl(res, LOTR); got["authors"] != "J.R.R. <mark>Tolkien</mark>" || got["title"] != "" {
		t.Errorf("author highlight = %q", got)
	}
	// Markup in the data is escaped; only the marks are HTML.
	res = mustSearch(t, ix, search.Query{Text: "escapes"})
	want := `Quotes &amp; <mark>Escapes</mark> &lt;i&gt;&#34;Vol. 1&#34;&lt;/i&gt;`
	if got := hl(res, Quotes)["title"]; got != want {
		t.Errorf("escaped title highlight = %q, want %q", got, want)
	}
	// A word found only in the description shows the description.
	res = mustSearch(t, ix, search.Query{Text: "reeds"})
	if got := hl(res, Debut); !strings.Contains(got["description"], "<mark>reeds</mark>") || got["title"] != "" {
		t.Errorf("description highlight = %q", got)
	}
	res = mustSearch(t, ix, search.Query{Text: "script"})
	if got := hl(res, Quotes)["description"]; strings.Contains(got, "<script>") || !strings.Contains(got, "&lt;<mark>script</mark>&gt;") {
		t.Errorf("description with markup = %q", got)
	}
}

func testSuggest(t *testing.T, ix search.Index) {
	ctx := context.Background()
	sug := func(prefix string, n int) []search.Suggestion {
		t.Helper()
		s, err := ix.Suggest(ctx, prefix, n)
		if err != nil {
			t.Fatalf("Suggest(%q): %v", prefix, err)
		}
		if len(s) > search.SuggestLimit(n) {
			t.Errorf("Suggest(%q, %d) returned %d", prefix, n, len(s))
		}
		return s
	}
	has := func(s []search.Suggestion, kind search.SuggestionKind, text, id string) bool {
		return slices.ContainsFunc(s, func(x search.Suggestion) bool { return x.Kind == kind && x.Text == text && x.ID == id })
	}
	s := sug("harr", 5)
	if !has(s, search.SuggestTitle, "Harry Potter and the Philosopher's Stone", FixtureID(HP1).String()) ||
		!has(s, search.SuggestTitle, "Harry Potter and the Chamber of Secrets", FixtureID(HP2).String()) {
		t.Errorf(`Suggest("harr") = %v`, s)
	}
	s = sug("tolk", 5)
	if len(s) == 0 || s[0] != (search.Suggestion{Kind: search.SuggestAuthor, Text: "J.R.R. Tolkien", ID: author("J.R.R. Tolkien").String()}) {
		t.Errorf(`Suggest("tolk") = %v`, s)
	}
	s = sug("fant", 5)
	if len(s) == 0 || s[0] != (search.Suggestion{Kind: search.SuggestCategory, Text: "Fantasy", ID: "fantasy"}) {
		t.Errorf(`Suggest("fant") = %v`, s)
	}
	s = sug("murder on", 5)
	if !has(s, search.SuggestTitle, "Murder on the Orient Express", FixtureID(Orient).String()) {
		t.Errorf(`Suggest("murder on") = %v`, s)
	}
	s = sug("Saint-Ex", 5)
	if !has(s, search.SuggestAuthor, "Antoine de Saint-Exupéry", author("Antoine de Saint-Exupéry").String()) {
		t.Errorf(`Suggest("Saint-Ex") = %v`, s)
	}
	// Kinds come in order: categories, authors, titles.
	s = sug("s", 20)
	last := 0
	rank := map[search.SuggestionKind]int{search.SuggestCategory: 0, search.SuggestAuthor: 1, search.SuggestTitle: 2}
	for _, x := range s {
		if rank[x.Kind] < last {
			t.Errorf(`Suggest("s") kinds out of order: %v`, s)
			break
		}
		last = rank[x.Kind]
	}
	if len(sug("   ", 5)) != 0 || len(sug("", 5)) != 0 {
		t.Error("blank prefix suggests something")
	}
	if got := sug("zzqqxx", 5); len(got) != 0 {
		t.Errorf(`Suggest("zzqqxx") = %v`, got)
	}
	if got := sug("h", 1); len(got) != 1 {
		t.Errorf(`Suggest("h", 1) = %v`, got)
	}
}

func testDelete(t *testing.T, ix search.Index) {
	ctx := context.Background()
	if err := ix.Delete(ctx, []uuid.UUID{FixtureID(HP2), uuid.New()}); err != nil {
		t.Fatal(err)
	}
	if n, _ := ix.Count(ctx); n != NumFixture-1 {
		t.Errorf("Count after delete = %d", n)
	}
	wantSet(t, "harry after delete", mustSearch(t, ix, search.Query{Text: "harry"}), HP1)
	res := mustSearch(t, ix, search.Query{Filter: search.Filter{Categories: []string{"fantasy"}}})
	wantSet(t, "fantasy after delete", res, HP1, Hobbit, LOTR, Prince, Omens)
	if a := facetMap(res.Facets.Authors); a[author("J.K. Rowling").String()] != 1 {
		t.Errorf("Rowling after delete = %d", a[author("J.K. Rowling").String()])
	}
	if s, _ := ix.Suggest(ctx, "harry potter and the ch", 5); len(s) != 0 {
		t.Errorf("deleted title still suggested: %v", s)
	}
	if err := ix.Delete(ctx, nil); err != nil {
		t.Errorf("Delete(nil) = %v", err)
	}
	// Deleting everything leaves an empty, working index.
	var all []uuid.UUID
	for k := range NumFixture {
		all = append(all, FixtureID(k))
	}
	if err := ix.Delete(ctx, all); err != nil {
		t.Fatal(err)
	}
	if n, _ := ix.Count(ctx); n != 0 {
		t.Errorf("Count after deleting all = %d", n)
	}
	if res := mustSearch(t, ix, search.Query{}); res.Total != 0 || len(res.Hits) != 0 {
		t.Errorf("browse after deleting all: %+v", res)
	}
	if err := ix.Upsert(ctx, Fixture()[:1]); err != nil {
		t.Fatal(err)
	}
	wantSet(t, "re-added", mustSearch(t, ix, search.Query{Text: "harry"}), HP1)
}

func testUpsertReplaces(t *testing.T, ix search.Index) {
	ctx := context.Background()
	d := Fixture()[Hobbit]
	d.Title = "The Hobbit (Illustrated)"
	d.PriceCents = 5999
	d.InStock = false
	d.Categories, d.CategoryNames = []string{"nonfiction", "history"}, []string{"Non-Fiction", "History"}
	if err := ix.Upsert(ctx, []search.Document{d}); err != nil {
		t.Fatal(err)
	}
	if n, _ := ix.Count(ctx); n != NumFixture {
		t.Errorf("Count after replacing = %d", n)
	}
	wantSet(t, "illustrated", mustSearch(t, ix, search.Query{Text: "illustrated"}), Hobbit)
	wantSet(t, "hobbit", mustSearch(t, ix, search.Query{Text: "hobbit"}), Hobbit)
	wantSet(t, "fantasy without the hobbit", mustSearch(t, ix, search.Query{Filter: search.Filter{Categories: []string{"fantasy"}}}), HP1, HP2, LOTR, Prince, Omens)
	wantSet(t, "history with the hobbit", mustSearch(t, ix, search.Query{Filter: search.Filter{Categories: []string{"history"}}}), Sapiens, Guns, Hobbit)
	wantSet(t, "old price gone", mustSearch(t, ix, search.Query{Filter: search.Filter{MinPriceCents: i64(1250), MaxPriceCents: i64(1250)}}))
	res := mustSearch(t, ix, search.Query{})
	wantPrices(t, res.Facets, [5]int{5, 4, 3, 1, 2}, 299, 5999)
	if res.Facets.InStock != 11 {
		t.Errorf("in stock after replacing = %d", res.Facets.InStock)
	}
	res = mustSearch(t, ix, search.Query{Sort: search.SortPriceDesc, Limit: 1})
	wantOrder(t, "most expensive", res, Hobbit)
	// The same document twice in one batch: the last wins.
	d2 := d
	d2.Title = "The Hobbit (Annotated)"
	if err := ix.Upsert(ctx, []search.Document{d, d2}); err != nil {
		t.Fatal(err)
	}
	wantSet(t, "annotated", mustSearch(t, ix, search.Query{Text: "annotated"}), Hobbit)
	wantSet(t, "illustrated gone", mustSearch(t, ix, search.Query{Text: "illustrated"}))
}

func testEscaping(t *testing.T, ix search.Index) {
	for _, f := range []search.Filter{
		{Categories: []string{`Fantasy" OR price_cents > 0`}},
		{Categories: []string{`fantasy" OR price_cents > 0 OR categories = "x`}},
		{Categories: []string{`'; DROP`}},
		{Categories: []string{`fantasy' OR '1'='1`}},
		{Categories: []string{`\`, `"`, `'`, `\"`, "fan\ntasy", "(", ")", "[", "]", ","}},
		{Language: `en" OR language = "de`},
		{Language: `'; DROP`},
		{Categories: []string{WeirdSlug + `"`}},
	} {
		res, err := ix.Search(context.Background(), search.Query{Filter: f})
		if err != nil || res.Total != 0 {
			t.Errorf("filter %+v: total %d, err %v; want 0 results", f, res.Total, err)
		}
	}
	// Values with syntax characters match themselves.
	wantSet(t, "weird slug", mustSearch(t, ix, search.Query{Filter: search.Filter{Categories: []string{WeirdSlug}}}), Quotes)
	wantSet(t, "weird slug or fantasy", mustSearch(t, ix, search.Query{Filter: search.Filter{Categories: []string{WeirdSlug, "fantasy"}}}),
		Quotes, HP1, HP2, Hobbit, LOTR, Prince, Omens)
	for _, text := range []string{`Fantasy" OR price_cents > 0`, `'; DROP`, `") OR 1=1 --`, `*`, `AND OR NOT`} {
		if _, err := ix.Search(context.Background(), search.Query{Text: text}); err != nil {
			t.Errorf("text %q: %v", text, err)
		}
	}
}

func testEdgeInputs(t *testing.T, ix search.Index) {
	ctx := context.Background()
	for _, q := range []search.Query{
		{Limit: math.MaxInt},
		{Limit: -5, Offset: -5},
		{Offset: math.MaxInt},
		{Sort: search.Sort(99)},
		{Sort: search.Sort(-1)},
		{Text: strings.Repeat("harry ", 2000)},
		{Text: "\xff\xfe harry \x00"},
		{Text: "h"},
		{Text: "9780"},
		{Text: "978-0-00-000000-0"}, // a bad check digit: searched as words
		{Text: strings.Repeat("a", 300)},
		{Text: "日本語のタイトル"},
		{Filter: search.Filter{MinPriceCents: i64(math.MinInt64), MaxPriceCents: i64(math.MaxInt64)}},
		{Filter: search.Filter{MinRating: f64(-1)}},
		{Filter: search.Filter{MinRating: f64(99)}},
		{Filter: search.Filter{AuthorIDs: []uuid.UUID{uuid.Nil}}},
	} {
		res, err := ix.Search(ctx, q)
		if err != nil {
			t.Errorf("Search(%.60q...): %v", fmt.Sprintf("%+v", q), err)
			continue
		}
		if len(res.Hits) > search.MaxLimit {
			t.Errorf("%d hits", len(res.Hits))
		}
	}
	res := mustSearch(t, ix, search.Query{Limit: 0})
	if len(res.Hits) != min(search.DefaultLimit, NumFixture) {
		t.Errorf("Limit 0 gave %d hits", len(res.Hits))
	}
	if res := mustSearch(t, ix, search.Query{Filter: search.Filter{MinRating: f64(-1)}}); res.Total != NumFixture {
		t.Errorf("min rating -1: total %d", res.Total)
	}
	for _, r := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := ix.Search(ctx, search.Query{Filter: search.Filter{MinRating: f64(r)}}); !errors.Is(err, search.ErrInvalidQuery) {
			t.Errorf("min rating %v: err %v, want ErrInvalidQuery", r, err)
		}
	}
	for _, p := range []string{"\xff", strings.Repeat("x", 10000), "a b c d e f g h i j k l m n", "日本", "'\"\\"} {
		if _, err := ix.Suggest(ctx, p, 5); err != nil {
			t.Errorf("Suggest(%.20q): %v", p, err)
		}
	}
	if s, err := ix.Suggest(ctx, "h", 1000); err != nil || len(s) > search.MaxSuggestions {
		t.Errorf("Suggest n=1000: %d, %v", len(s), err)
	}
}

func testInvalidDocument(t *testing.T, ix search.Index) {
	ctx := context.Background()
	d := Fixture()[HP1]
	d.Title = "Changed"
	bad := search.Document{Title: "no id"}
	if err := ix.Upsert(ctx, []search.Document{d, bad}); !errors.Is(err, search.ErrInvalidDocument) {
		t.Errorf("Upsert with a nil id: %v, want ErrInvalidDocument", err)
	}
	wantSet(t, "nothing written", mustSearch(t, ix, search.Query{Text: "changed"}))
	if n, _ := ix.Count(ctx); n != NumFixture {
		t.Errorf("Count = %d", n)
	}
	// Documents with odd but valid content are accepted.
	odd := search.Document{ID: uuid.New(), Title: "\xff\xfe", Authors: []string{"A"}, AuthorIDs: []uuid.UUID{uuid.Nil, uuid.New()},
		Categories: []string{"c"}, CategoryNames: nil, Rating: math.NaN(), PriceCents: -5}
	if err := ix.Upsert(ctx, []search.Document{odd}); err != nil {
		t.Errorf("Upsert odd document: %v", err)
	}
	if err := ix.Upsert(ctx, nil); err != nil {
		t.Errorf("Upsert(nil): %v", err)
	}
}
