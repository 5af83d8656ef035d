package server_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/server"
)

type searchPage struct {
	Search struct {
		TotalCount int
		Edges      []struct {
			Cursor string
			Node   struct {
				ID, Title, Isbn string
				PriceCents      int
			}
			Highlights []struct{ Field, Snippet string }
		}
		PageInfo struct {
			HasNextPage bool
			EndCursor   string
		}
		Facets struct {
			Genres []struct {
				Category struct{ Slug string }
				Count    int
				Selected bool
			}
			PriceRanges []struct {
				MinCents, MaxCents *int
				Count              int
			}
			Ratings []struct {
				MinRating float64
				Count     int
			}
			Authors []struct {
				Author struct{ ID, Name string }
				Count  int
			}
			InStockCount int
		}
	}
}

const searchQuery = `query($q: String!, $f: SearchFilter, $s: SearchSort, $first: Int, $after: String) {
  search(query: $q, filter: $f, sort: $s, first: $first, after: $after) {
    totalCount
    edges { cursor node { id title isbn priceCents } highlights { field snippet } }
    pageInfo { hasNextPage endCursor }
    facets {
      genres { category { slug } count selected }
      priceRanges { minCents maxCents count }
      ratings { minRating count }
      authors { author { id name } count }
      inStockCount
    }
  }
}`

func (a *api) search(q string, vars map[string]any) searchPage {
	a.t.Helper()
	if vars == nil {
		vars = map[string]any{}
	}
	vars["q"] = q
	var out searchPage
	a.ok(searchQuery, vars, &out)
	return out
}

func (p searchPage) has(id string) bool {
	for _, e := range p.Search.Edges {
		if e.Node.ID == id {
			return true
		}
	}
	return false
}

// TestSearchFindsBooksDespiteTyposAndByISBN takes real books from the catalog and looks
// them up the way shoppers type: with a typo, half-typed, and by ISBN with dashes.
func TestSearchFindsBooksDespiteTyposAndByISBN(t *testing.T) {
	a := newAPI(t, 300)
	var top struct {
		Books struct {
			Edges []struct {
				Node struct {
					ID, Title, Isbn string
					Authors         []struct{ Name string }
				}
			}
		}
	}
	a.ok(`{ books(first: 40, sort: BESTSELLING) { edges { node { id title isbn authors { name } } } } }`, nil, &top)
	tested := 0
	for _, e := range top.Books.Edges {
		b := e.Node
		var long string // the title's longest word, typo'd by swapping two letters
		for _, w := range strings.Fields(b.Title) {
			if w = strings.Trim(w, ",.:;!?'\""); len(w) > len(long) && isASCIILetters(w) {
				long = w
			}
		}
		if len(long) < 6 {
			continue
		}
		typo := long[:2] + string(long[3]) + string(long[2]) + long[4:]
		query := strings.Replace(b.Title, long, typo, 1) + " " + b.Authors[0].Name
		if p := a.search(query, map[string]any{"first": 10}); !p.has(b.ID) {
			t.Errorf("%q (typo of %q) did not find it in the top 10", query, b.Title)
		}
		prefix := b.Title[:min(len(b.Title), len(strings.Fields(b.Title)[0])+3)]
		if p := a.search(b.Authors[0].Name+" "+prefix, map[string]any{"first": 50}); !p.has(b.ID) {
			t.Errorf("half-typed %q did not find %q", b.Authors[0].Name+" "+prefix, b.Title)
		}
		tested++
		if tested == 5 {
			break
		}
	}
	if tested < 3 {
		t.Fatalf("only %d titles with a long word to misspell", tested)
	}
	b := top.Books.Edges[0].Node
	dashed := b.Isbn[:3] + "-" + b.Isbn[3:4] + "-" + b.Isbn[4:8] + "-" + b.Isbn[8:12] + "-" + b.Isbn[12:]
	p := a.search(dashed, nil)
	if p.Search.TotalCount != 1 || !p.has(b.ID) {
		t.Fatalf("ISBN %s found %d books", dashed, p.Search.TotalCount)
	}
}

func isASCIILetters(s string) bool {
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return false
		}
	}
	return true
}

// TestSearchFacetsAreDisjunctive: with one genre selected, each other genre's count is
// what selecting it too would add — checked against the searches themselves.
func TestSearchFacetsAreDisjunctive(t *testing.T) {
	a := newAPI(t, 400)
	all := a.search("", map[string]any{"first": 1})
	if all.Search.TotalCount != 400 || len(all.Search.Facets.Genres) < 3 {
		t.Fatalf("browse: %d books, %d genres", all.Search.TotalCount, len(all.Search.Facets.Genres))
	}
	g1, g2 := all.Search.Facets.Genres[0].Category.Slug, all.Search.Facets.Genres[1].Category.Slug
	one := a.search("", map[string]any{"first": 1, "f": map[string]any{"categorySlugs": []string{g1}}})
	both := a.search("", map[string]any{"first": 1, "f": map[string]any{"categorySlugs": []string{g1, g2}}})
	only2 := a.search("", map[string]any{"first": 1, "f": map[string]any{"categorySlugs": []string{g2}}})
	count := func(p searchPage, slug string) (int, bool) {
		for _, g := range p.Search.Facets.Genres {
			if g.Category.Slug == slug {
				return g.Count, g.Selected
			}
		}
		return 0, false
	}
	c1, sel1 := count(one, g1)
	c2, sel2 := count(one, g2)
	if !sel1 || sel2 || c1 != one.Search.TotalCount {
		t.Fatalf("selected genre %s: count %d (selected %v), total %d", g1, c1, sel1, one.Search.TotalCount)
	}
	// Disjunctive: genre 2's count under the genre-1 filter is genre 2's own total, not 0
	// or the overlap.
	if c2 != only2.Search.TotalCount {
		t.Fatalf("genre %s shows %d under filter %s; selecting it alone gives %d", g2, c2, g1, only2.Search.TotalCount)
	}
	if both.Search.TotalCount < one.Search.TotalCount || both.Search.TotalCount > one.Search.TotalCount+only2.Search.TotalCount {
		t.Fatalf("any-of: %d for both genres, %d and %d alone", both.Search.TotalCount, one.Search.TotalCount, only2.Search.TotalCount)
	}
	// Price buckets partition the result; rating buckets are cumulative.
	sum := 0
	for _, pr := range one.Search.Facets.PriceRanges {
		sum += pr.Count
	}
	if sum != one.Search.TotalCount {
		t.Fatalf("price buckets add up to %d of %d", sum, one.Search.TotalCount)
	}
	r := one.Search.Facets.Ratings
	for i := 1; i < len(r); i++ {
		if r[i].Count < r[i-1].Count {
			t.Fatalf("rating %v+ has fewer books than %v+", r[i].MinRating, r[i-1].MinRating)
		}
	}
	// An author facet filters to that author's books.
	au := all.Search.Facets.Authors[0]
	byAuthor := a.search("", map[string]any{"first": 100, "f": map[string]any{"authorIds": []string{au.Author.ID}}})
	if byAuthor.Search.TotalCount != au.Count || len(byAuthor.Search.Edges) != au.Count {
		t.Fatalf("author %s: facet says %d, filter gives %d", au.Author.Name, au.Count, byAuthor.Search.TotalCount)
	}
}

func TestSearchPagesWithCursors(t *testing.T) {
	a := newAPI(t, 120)
	seen := map[string]bool{}
	vars := map[string]any{"first": 25, "s": "PRICE_ASC"}
	last, pages := -1, 0
	for {
		p := a.search("", vars)
		for _, e := range p.Search.Edges {
			if seen[e.Node.ID] {
				t.Fatalf("book %s on two pages", e.Node.ID)
			}
			if e.Node.PriceCents < last {
				t.Fatalf("PRICE_ASC out of order: %d after %d", e.Node.PriceCents, last)
			}
			seen[e.Node.ID], last = true, e.Node.PriceCents
		}
		pages++
		if !p.Search.PageInfo.HasNextPage {
			break
		}
		vars["after"] = p.Search.PageInfo.EndCursor
	}
	if len(seen) != 120 || pages != 5 {
		t.Fatalf("%d books over %d pages, want 120 over 5", len(seen), pages)
	}
}

func TestSearchRejectsBadInput(t *testing.T) {
	a := newAPI(t, 10)
	cases := map[string]struct {
		q     string
		vars  map[string]any
		field string
	}{
		"query too long":         {strings.Repeat("a", 257), nil, "query"},
		"257 letters of 2 bytes": {strings.Repeat("ë", 257), nil, "query"},
		"first too large":        {"x", map[string]any{"first": 101}, "first"},
		"forged cursor":          {"x", map[string]any{"after": "bm90LWEtY3Vyc29y"}, "after"},
		"deep cursor":            {"x", map[string]any{"after": "czo5OTk5OTk"}, "after"},
		"price range inverted":   {"", map[string]any{"f": map[string]any{"minPriceCents": 500, "maxPriceCents": 100}}, "filter.maxPriceCents"},
		"injection as slug":      {"", map[string]any{"f": map[string]any{"categorySlugs": []string{`fantasy" OR price_cents > 0`}}}, "filter.categorySlugs"},
		"rating out of range":    {"", map[string]any{"f": map[string]any{"minRating": 7}}, "filter.minRating"},
		"not an author id":       {"", map[string]any{"f": map[string]any{"authorIds": []string{"'; DROP TABLE books; --"}}}, "filter.authorIds"},
		"bad language":           {"", map[string]any{"f": map[string]any{"language": "en'--"}}, "filter.language"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			vars := map[string]any{"q": c.q}
			for k, v := range c.vars {
				vars[k] = v
			}
			r := a.do(searchQuery, vars)
			if code(r) != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != c.field {
				t.Fatalf("got %+v", r.Errors)
			}
		})
	}
	// The limit counts characters, as the schema says, not bytes.
	if r := a.do(searchQuery, map[string]any{"q": strings.Repeat("ë", 256)}); len(r.Errors) > 0 {
		t.Fatalf("256 characters refused: %+v", r.Errors)
	}
	// Hostile text is just text: no error, and a match-nothing query still has facets.
	for _, q := range []string{`Fantasy" OR price_cents > 0`, `'; DROP TABLE books; --`, "zzqqxxj"} {
		r := a.do(searchQuery, map[string]any{"q": q})
		if len(r.Errors) > 0 {
			t.Fatalf("%q: %+v", q, r.Errors)
		}
	}
	p := a.search("zzqqxxj", nil)
	if p.Search.TotalCount != 0 || len(p.Search.Edges) != 0 || len(p.Search.Facets.PriceRanges) == 0 {
		t.Fatalf("no-match search = %+v", p.Search)
	}
}

func TestSuggest(t *testing.T) {
	a := newAPI(t, 200)
	var cats struct{ Categories []struct{ Name string } }
	a.ok(`{ categories { name } }`, nil, &cats)
	prefix := strings.ToLower(cats.Categories[0].Name[:4])
	var out struct {
		Suggest []struct {
			Kind, Text string
			Target     *struct {
				Typename string `json:"__typename"`
				ID       string
			}
		}
	}
	a.ok(`query($p: String!) { suggest(prefix: $p, first: 10) { kind text target { __typename id } } }`, map[string]any{"p": prefix}, &out)
	if len(out.Suggest) == 0 {
		t.Fatalf("no suggestions for %q", prefix)
	}
	for _, s := range out.Suggest {
		if s.Target == nil || s.Target.ID == "" {
			t.Fatalf("suggestion %+v has no target", s)
		}
		want := map[string]string{"CATEGORY": "Category", "AUTHOR": "Author", "TITLE": "Book"}[s.Kind]
		if s.Target.Typename != want {
			t.Fatalf("%s suggestion leads to a %s", s.Kind, s.Target.Typename)
		}
	}
	if r := a.do(`{ suggest(prefix: "ab", first: 500) { text } }`, nil); code(r) != "BAD_USER_INPUT" {
		t.Fatalf("first 500: %+v", r.Errors)
	}
}

// TestSearchSeesCatalogChangesThroughTheOutbox: an admin's price change reaches search
// results through the outbox relay (as in the server: index + cache invalidation) within
// a bounded wait, although the response cache is on.
func TestSearchSeesCatalogChangesThroughTheOutbox(t *testing.T) {
	var advance func(uint64)
	a := newAPIWith(t, 50, func(c *server.Config) {
		c.ResponseTTL = time.Minute
		c.Cache = server.NewResponseCache(100, time.Minute, nil)
		advance = c.Cache.Advance
	})
	ctx, cancel := context.WithCancel(context.Background())
	relay := &events.Relay{Outbox: a.db.Outbox, Interval: 20 * time.Millisecond, Log: discardLog(),
		Handlers: []events.Handler{events.Then(&events.SearchIndexer{DB: a.db, Index: a.index}, &events.CatalogBroadcast{OnChange: advance})}}
	done := make(chan struct{})
	go func() { defer close(done); _ = relay.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	const cheap = 3 // cents: no demo book costs this little
	filter := map[string]any{"f": map[string]any{"maxPriceCents": cheap}}
	if p := a.search("", filter); p.Search.TotalCount != 0 {
		t.Fatalf("%d books already cost <= %d cents", p.Search.TotalCount, cheap)
	}
	admin, _, _ := a.tokens.Issue(adminIdentity())
	b := a.search("", map[string]any{"first": 1}).Search.Edges[0].Node
	var out struct {
		SetBookPrice struct{ UserErrors []struct{ Code string } }
	}
	a.mustAs(admin, `mutation($id: ID!) { setBookPrice(bookId: $id, priceCents: 3) { userErrors { code } } }`, &out, "id", b.ID)
	start := time.Now()
	for {
		p := a.search("", filter)
		if p.Search.TotalCount == 1 && p.has(b.ID) && p.Search.Edges[0].Node.PriceCents == cheap {
			t.Logf("visible to search after %s", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("after 5s search still shows %d books <= %d cents", p.Search.TotalCount, cheap)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSearchFiltersGhostsInsideTheEngine: books deleted by SQL behind the server's back
// (no events) are not silently dropped from pages: the search runs again without them,
// so totalCount, edges, facets and pages agree; each ghost is queued once for deletion
// from the index, and the relay removes it.
func TestSearchFiltersGhostsInsideTheEngine(t *testing.T) {
	a := newAPI(t, 30)
	ctx := context.Background()
	first := a.search("", map[string]any{"first": 10, "s": "PRICE_ASC"})
	var ghosts []string
	for _, e := range first.Search.Edges[:3] {
		ghosts = append(ghosts, e.Node.ID)
	}
	var raw []string
	for _, g := range ghosts {
		b, err := base64.RawURLEncoding.DecodeString(g)
		if err != nil || !strings.HasPrefix(string(b), "Book:") {
			t.Fatalf("book id %q: %v", g, err)
		}
		raw = append(raw, strings.TrimPrefix(string(b), "Book:"))
	}
	if _, err := a.db.Pool.Exec(ctx, `DELETE FROM books WHERE id = ANY($1::UUID[])`, raw); err != nil {
		t.Fatal(err)
	}

	seen := map[string]bool{}
	vars := map[string]any{"first": 10, "s": "PRICE_ASC"}
	for pages := 0; ; pages++ {
		p := a.search("", vars)
		if p.Search.TotalCount != 27 {
			t.Fatalf("page %d: totalCount %d, want 27", pages+1, p.Search.TotalCount)
		}
		if len(p.Search.Edges) == 0 {
			t.Fatalf("page %d is empty", pages+1)
		}
		sum := 0
		for _, r := range p.Search.Facets.PriceRanges {
			sum += r.Count
		}
		if sum != 27 {
			t.Fatalf("price facets count %d books, want 27", sum)
		}
		for _, e := range p.Search.Edges {
			seen[e.Node.ID] = true
		}
		if !p.Search.PageInfo.HasNextPage {
			break
		}
		vars["after"] = p.Search.PageInfo.EndCursor
	}
	if len(seen) != 27 {
		t.Fatalf("paged through %d books, want 27", len(seen))
	}
	for _, g := range ghosts {
		if seen[g] {
			t.Errorf("deleted book %s served", g)
		}
	}
	// Queued once each, however many searches met them.
	var queued int
	if err := a.db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE aggregate_id = ANY($1::UUID[]) AND published_at IS NULL`, raw).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if queued != len(raw) {
		t.Errorf("%d deletion events queued, want %d", queued, len(raw))
	}
	relay := &events.Relay{Outbox: a.db.Outbox, Handlers: []events.Handler{&events.SearchIndexer{DB: a.db, Index: a.index}}}
	if err := relay.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := a.index.Count(ctx); n != 27 {
		t.Errorf("index holds %d documents after the relay ran, want 27", n)
	}
}

// TestSearchCursorIsBoundToItsSearch: a cursor from one query or sort is refused by
// another with BAD_USER_INPUT on `after`, and accepted by its own.
func TestSearchCursorIsBoundToItsSearch(t *testing.T) {
	a := newAPI(t, 30)
	p := a.search("", map[string]any{"first": 5, "s": "PRICE_ASC"})
	cursor := p.Search.PageInfo.EndCursor
	for name, vars := range map[string]map[string]any{
		"other sort":   {"q": "", "s": "PRICE_DESC", "after": cursor},
		"other query":  {"q": "a", "s": "PRICE_ASC", "after": cursor},
		"other filter": {"q": "", "s": "PRICE_ASC", "f": map[string]any{"inStock": true}, "after": cursor},
	} {
		r := a.do(searchQuery, vars)
		if code(r) != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "after" {
			t.Errorf("%s: %+v", name, r.Errors)
		}
	}
	next := a.search("", map[string]any{"first": 5, "s": "PRICE_ASC", "after": cursor})
	if len(next.Search.Edges) != 5 || next.Search.Edges[0].Node.ID == p.Search.Edges[0].Node.ID {
		t.Errorf("own cursor: %d edges", len(next.Search.Edges))
	}
}

// TestSearchPriceBoundsIgnoreThePriceFilter: facets.minPriceCents/maxPriceCents are the
// price range of the matches counted without the price filter (a slider's range), so a
// price filter that leaves nothing still gets the bounds of the books in priceRanges.
func TestSearchPriceBoundsIgnoreThePriceFilter(t *testing.T) {
	a := newAPI(t, 30)
	const q = `query($f: SearchFilter) { search(query: "", filter: $f) { totalCount facets { minPriceCents maxPriceCents priceRanges { count } } } }`
	var out struct {
		Search struct {
			TotalCount int
			Facets     struct {
				MinPriceCents *int
				MaxPriceCents *int
				PriceRanges   []struct{ Count int }
			}
		}
	}
	a.ok(q, map[string]any{"f": map[string]any{"minPriceCents": 100000000}}, &out)
	sum := 0
	for _, r := range out.Search.Facets.PriceRanges {
		sum += r.Count
	}
	f := out.Search.Facets
	if out.Search.TotalCount != 0 || sum != 30 {
		t.Fatalf("total %d, price ranges count %d: want 0 matches and 30 books counted", out.Search.TotalCount, sum)
	}
	if f.MinPriceCents == nil || f.MaxPriceCents == nil || *f.MinPriceCents <= 0 || *f.MinPriceCents > *f.MaxPriceCents {
		t.Errorf("min/maxPriceCents %v..%v while %d books are counted without the price filter", f.MinPriceCents, f.MaxPriceCents, sum)
	}
}
