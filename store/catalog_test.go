package store_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/catalog"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// fixture builds n records over a small tree: Fiction > {Fantasy, Horror}, History.
func fixture(n int) []catalog.Record {
	paths := [][]string{{"Fiction", "Fantasy"}, {"Fiction", "Horror"}, {"History"}}
	authors := []string{"Ann Author", "Bob Writer", "Cy Penman", "Di Scribe"}
	recs := make([]catalog.Record, n)
	for i := range recs {
		d := bookstore.NewDate(1990+i%30, time.Month(1+i%12), 1+i%28)
		recs[i] = catalog.Record{
			Line:        i + 2,
			ISBN:        fmt.Sprintf("978%010d", i),
			Title:       fmt.Sprintf("Title %03d", (i*7)%n),
			Authors:     []string{authors[i%4], authors[(i+1)%4]},
			Categories:  [][]string{paths[i%3]},
			Description: "A book.",
			PriceCents:  int64(500 + (i*37)%3000),
			Rating:      float64((i*13)%50) / 10,
			SalesCount:  int64((i * 53) % 1000),
			Stock:       int64(i % 7),
			PublishedAt: &d,
			Language:    "en",
		}
		if i%5 == 0 {
			recs[i].Reviews = []bookstore.Review{
				{Rating: 5, Title: "Great", Body: "Loved it", ReviewerName: "r1", CreatedAt: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)},
				{Rating: 3, Title: "Fine", Body: "Ok", ReviewerName: "r2", CreatedAt: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)},
				{Rating: 1, Title: "Meh", Body: "No", ReviewerName: "r3", CreatedAt: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)},
			}
		}
	}
	return recs
}

func load(t *testing.T, db *store.DB, recs []catalog.Record) {
	t.Helper()
	failed, err := db.Load(context.Background(), recs)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(failed) > 0 {
		t.Fatalf("Load refused %d records, first: %v", len(failed), failed[0])
	}
}

func count(t *testing.T, db *store.DB, table string) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMigrateIsIdempotentOnPopulatedDatabase(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		load(t, db, fixture(10))
		n, err := db.Migrate(context.Background())
		if err != nil || n != 0 {
			t.Fatalf("Migrate on a current database = %d, %v; want 0, nil", n, err)
		}
		if pending, err := db.Pending(context.Background()); err != nil || pending {
			t.Fatalf("Pending = %v, %v", pending, err)
		}
		if got := count(t, db, "books"); got != 10 {
			t.Fatalf("books = %d after re-migrating, want 10", got)
		}
	})
}

func TestLoadIsAnIdempotentUpsertByISBN(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		recs := fixture(30)
		load(t, db, recs)
		load(t, db, recs)
		for table, want := range map[string]int{"books": 30, "authors": 4, "categories": 4, "book_authors": 60, "book_categories": 30, "inventory": 30, "reviews": 18} {
			if got := count(t, db, table); got != want {
				t.Errorf("%s = %d after loading twice, want %d", table, got, want)
			}
		}
		// A changed price and stock replace the old ones; the id stays.
		before, err := db.Books.ByISBN(context.Background(), recs[0].ISBN)
		if err != nil {
			t.Fatal(err)
		}
		recs[0].PriceCents, recs[0].Stock = 123, 42
		load(t, db, recs[:1])
		after, err := db.Books.ByISBN(context.Background(), recs[0].ISBN)
		if err != nil {
			t.Fatal(err)
		}
		if after.ID != before.ID || after.PriceCents != 123 {
			t.Fatalf("after re-import: id %v (was %v), price %d; want same id and 123", after.ID, before.ID, after.PriceCents)
		}
		stock, err := db.Inventory.Stock(context.Background(), []uuid.UUID{after.ID})
		if err != nil || stock[after.ID] != 42 {
			t.Fatalf("stock = %v, %v; want 42", stock, err)
		}
	})
}

func TestLoadReportsBadRecordsAndKeepsGoodOnes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		recs := fixture(6)
		load(t, db, recs[:1])
		first, err := db.Books.ByISBN(context.Background(), recs[0].ISBN)
		if err != nil {
			t.Fatal(err)
		}
		// Record 3 claims the id of another ISBN's book: the database refuses it.
		bad := recs[3]
		bad.ID = &first.ID
		bad.Authors = []string{"Only In The Bad Row"}
		batch := []catalog.Record{recs[1], recs[2], bad, recs[4], recs[5]}
		failed, err := db.Load(context.Background(), batch)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if len(failed) != 1 || failed[0].Line != bad.Line || failed[0].ISBN != bad.ISBN {
			t.Fatalf("failed = %v, want exactly line %d", failed, bad.Line)
		}
		if got := count(t, db, "books"); got != 5 {
			t.Fatalf("books = %d, want 5 (1 before + 4 good)", got)
		}
		var n int
		if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM authors WHERE name = 'Only In The Bad Row'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("the refused record left %d authors behind (%v)", n, err)
		}
	})
}

// TestListWalksEverySortInOrder pages through the whole catalog with small pages in each
// sort order and checks that the walk visits every book once, in the documented order.
func TestListWalksEverySortInOrder(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		load(t, db, fixture(47))
		ctx := context.Background()
		less := map[bookstore.BookSort]func(a, b *bookstore.Book) bool{
			bookstore.SortTitle:       func(a, b *bookstore.Book) bool { return a.Title < b.Title },
			bookstore.SortPriceAsc:    func(a, b *bookstore.Book) bool { return a.PriceCents < b.PriceCents },
			bookstore.SortPriceDesc:   func(a, b *bookstore.Book) bool { return a.PriceCents > b.PriceCents },
			bookstore.SortRating:      func(a, b *bookstore.Book) bool { return a.Rating > b.Rating },
			bookstore.SortNewest:      func(a, b *bookstore.Book) bool { return a.PublishedAt.After(b.PublishedAt.Time) },
			bookstore.SortBestselling: func(a, b *bookstore.Book) bool { return a.SalesCount > b.SalesCount },
		}
		for sortBy, lessFn := range less {
			t.Run(string(sortBy), func(t *testing.T) {
				var got []*bookstore.Book
				after := ""
				for pages := 0; ; pages++ {
					if pages > 20 {
						t.Fatal("pagination does not end")
					}
					p, err := db.Books.List(ctx, bookstore.BookFilter{}, sortBy, 5, after)
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range p.Edges {
						got = append(got, e.Node)
					}
					if p.PageInfo.HasPreviousPage != (after != "") {
						t.Fatalf("hasPreviousPage = %v on page %d", p.PageInfo.HasPreviousPage, pages)
					}
					if !p.PageInfo.HasNextPage {
						break
					}
					after = *p.PageInfo.EndCursor
				}
				if len(got) != 47 {
					t.Fatalf("walked %d books, want 47", len(got))
				}
				seen := map[uuid.UUID]bool{}
				for i, b := range got {
					if seen[b.ID] {
						t.Fatalf("book %v twice", b.ID)
					}
					seen[b.ID] = true
					if i > 0 && lessFn(b, got[i-1]) {
						t.Fatalf("position %d out of order: %+v after %+v", i, b, got[i-1])
					}
				}
			})
		}
	})
}

func TestListFilters(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		recs := fixture(40)
		load(t, db, recs)
		ctx := context.Background()
		cats, err := db.Categories.All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slugs := map[string]uuid.UUID{}
		for _, c := range cats {
			slugs[c.Slug] = c.ID
		}
		if want := []string{"fantasy", "fiction", "history", "horror"}; !slices.Equal(sortedKeys(slugs), want) {
			t.Fatalf("slugs = %v, want %v", sortedKeys(slugs), want)
		}
		p1, p2 := int64(1000), int64(2000)
		r := 3.0
		yes, no := true, false
		cases := []struct {
			name   string
			filter bookstore.BookFilter
			want   func(catalog.Record) bool
		}{
			{"fiction subtree", bookstore.BookFilter{CategoryIDs: []uuid.UUID{slugs["fiction"], slugs["fantasy"], slugs["horror"]}},
				func(r catalog.Record) bool { return r.Categories[0][0] == "Fiction" }},
			{"price range", bookstore.BookFilter{MinPriceCents: &p1, MaxPriceCents: &p2},
				func(r catalog.Record) bool { return r.PriceCents >= 1000 && r.PriceCents <= 2000 }},
			{"min rating", bookstore.BookFilter{MinRating: &r}, func(rec catalog.Record) bool { return rec.Rating >= 3 }},
			{"in stock", bookstore.BookFilter{InStock: &yes}, func(r catalog.Record) bool { return r.Stock > 0 }},
			{"out of stock", bookstore.BookFilter{InStock: &no}, func(r catalog.Record) bool { return r.Stock == 0 }},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				want := 0
				for _, r := range recs {
					if c.want(r) {
						want++
					}
				}
				p, err := db.Books.List(ctx, c.filter, bookstore.SortTitle, 100, "")
				if err != nil {
					t.Fatal(err)
				}
				n, err := db.Books.Count(ctx, c.filter)
				if err != nil {
					t.Fatal(err)
				}
				if len(p.Edges) != want || int(n) != want || want == 0 {
					t.Fatalf("listed %d, counted %d, want %d (> 0)", len(p.Edges), n, want)
				}
			})
		}
	})
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestListGroupedMatchesList checks that the one-query-for-many-parents listing returns,
// for each parent, exactly the page that the single-parent query returns.
func TestListGroupedMatchesList(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		load(t, db, fixture(40))
		ctx := context.Background()
		cats, err := db.Categories.All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var groups []store.Group
		for _, c := range cats {
			members := []uuid.UUID{c.ID}
			for _, d := range cats {
				if d.ParentID != nil && *d.ParentID == c.ID {
					members = append(members, d.ID)
				}
			}
			groups = append(groups, store.Group{Key: c.ID, Members: members})
		}
		for _, after := range []bool{false, true} {
			cursor := ""
			if after {
				first, err := db.Books.List(ctx, bookstore.BookFilter{}, bookstore.SortPriceAsc, 10, "")
				if err != nil {
					t.Fatal(err)
				}
				cursor = *first.PageInfo.EndCursor
			}
			pages, err := db.Books.ListGrouped(ctx, store.ByCategory, groups, bookstore.SortPriceAsc, 4, cursor)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range groups {
				single, err := db.Books.List(ctx, bookstore.BookFilter{CategoryIDs: g.Members}, bookstore.SortPriceAsc, 4, cursor)
				if err != nil {
					t.Fatal(err)
				}
				got := pages[g.Key]
				if ids(got) != ids(single) || got.PageInfo.HasNextPage != single.PageInfo.HasNextPage {
					t.Fatalf("group %v after=%v: grouped %s (next %v), single %s (next %v)", g.Key, after, ids(got), got.PageInfo.HasNextPage, ids(single), single.PageInfo.HasNextPage)
				}
				total, err := db.Books.Count(ctx, bookstore.BookFilter{CategoryIDs: g.Members})
				if err != nil {
					t.Fatal(err)
				}
				if got.Total != nil && *got.Total != total {
					t.Fatalf("group total = %d, want %d", *got.Total, total)
				}
				if !after && got.Total == nil {
					t.Fatal("first page of a group has no total")
				}
			}
		}
	})
}

func ids(p *bookstore.BookPage) string {
	s := ""
	for _, e := range p.Edges {
		s += e.Node.ID.String()[:8] + " "
	}
	return s
}

func TestReviewsPageNewestFirst(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		load(t, db, fixture(10))
		ctx := context.Background()
		b0, _ := db.Books.ByISBN(ctx, fixture(1)[0].ISBN)
		b1, _ := db.Books.ByISBN(ctx, fixture(2)[1].ISBN)
		pages, err := db.Reviews.ByBooks(ctx, []uuid.UUID{b0.ID, b1.ID}, 2, "")
		if err != nil {
			t.Fatal(err)
		}
		p := pages[b0.ID]
		if p.Total != 3 || len(p.Edges) != 2 || p.Edges[0].Node.Title != "Meh" || !p.PageInfo.HasNextPage {
			t.Fatalf("first page: total %d, %d edges, first %q, next %v", p.Total, len(p.Edges), p.Edges[0].Node.Title, p.PageInfo.HasNextPage)
		}
		if q := pages[b1.ID]; q.Total != 0 || len(q.Edges) != 0 || q.PageInfo.HasNextPage {
			t.Fatalf("book without reviews: %+v", q)
		}
		next, err := db.Reviews.ByBooks(ctx, []uuid.UUID{b0.ID}, 2, *p.PageInfo.EndCursor)
		if err != nil {
			t.Fatal(err)
		}
		q := next[b0.ID]
		if q.Total != 3 || len(q.Edges) != 1 || q.Edges[0].Node.Title != "Great" || q.PageInfo.HasNextPage {
			t.Fatalf("second page: total %d, %d edges, next %v", q.Total, len(q.Edges), q.PageInfo.HasNextPage)
		}
	})
}

func TestBadCursorsAreUserErrors(t *testing.T) {
	db := testdb.New(t)
	load(t, db, fixture(5))
	ctx := context.Background()
	p, err := db.Books.List(ctx, bookstore.BookFilter{}, bookstore.SortTitle, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	for name, cur := range map[string]string{
		"garbage":      "not-a-cursor!",
		"base64 junk":  "eyJ4IjoxfQ",
		"other sort":   *p.PageInfo.EndCursor, // a TITLE cursor used with PRICE_ASC below
		"huge":         string(make([]byte, 5000)),
		"sql-ish text": "'); DROP TABLE books; --",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := db.Books.List(ctx, bookstore.BookFilter{}, bookstore.SortPriceAsc, 2, cur)
			if bookstore.ErrorCode(err) != bookstore.CodeBadUserInput {
				t.Fatalf("error = %v, want BAD_USER_INPUT", err)
			}
		})
	}
	if got := count(t, db, "books"); got != 5 {
		t.Fatalf("books = %d", got)
	}
}

// TestOutboxPruneDeletesInBatches: more published events than one batch are all pruned,
// unpublished and recent ones are kept.
func TestOutboxPruneDeletesInBatches(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox (topic, aggregate_id, published_at)
			SELECT 'book.changed', gen_random_uuid(), now() - INTERVAL '2 hours' FROM generate_series(1, 2500)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox (topic, aggregate_id, published_at) VALUES
			('book.changed', gen_random_uuid(), NULL), ('book.changed', gen_random_uuid(), now())`); err != nil {
			t.Fatal(err)
		}
		n, err := db.Outbox.Prune(ctx, time.Now().Add(-time.Hour))
		if err != nil || n != 2500 {
			t.Fatalf("pruned %d, %v; want 2500", n, err)
		}
		var left int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&left); err != nil || left != 2 {
			t.Fatalf("%d events left, want the unpublished and the recent one", left)
		}
	})
}
