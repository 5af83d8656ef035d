package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/shopfront/bookstore"
)

type bookNode struct {
	ID          string
	ISBN        string `json:"isbn"`
	Title       string
	PriceCents  int
	Rating      float64
	PublishedAt *string
	Authors     []struct{ ID, Name string }
	Categories  []struct{ Slug string }
}

func TestBrowseTheCatalog(t *testing.T) {
	a := newAPI(t, 300)
	ctx := context.Background()

	t.Run("books page walks with cursors and counts", func(t *testing.T) {
		total, err := a.db.Books.Count(ctx, bookstore.BookFilter{})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		var after any
		for page := 0; ; page++ {
			var out struct {
				Books struct {
					TotalCount int
					PageInfo   struct {
						HasNextPage bool
						EndCursor   string
					}
					Edges []struct{ Node bookNode }
				}
			}
			a.ok(`query($after: String) { books(first: 100, after: $after, sort: PRICE_ASC) {
				totalCount pageInfo { hasNextPage endCursor } edges { node { id priceCents } } } }`,
				map[string]any{"after": after}, &out)
			if out.Books.TotalCount != int(total) {
				t.Fatalf("totalCount = %d, want %d", out.Books.TotalCount, total)
			}
			for _, e := range out.Books.Edges {
				if seen[e.Node.ID] {
					t.Fatalf("book %s on two pages", e.Node.ID)
				}
				seen[e.Node.ID] = true
			}
			if !out.Books.PageInfo.HasNextPage {
				break
			}
			after = out.Books.PageInfo.EndCursor
		}
		if len(seen) != int(total) {
			t.Fatalf("walked %d books, want %d", len(seen), total)
		}
	})

	t.Run("node, book, author, category and bookByIsbn agree", func(t *testing.T) {
		var list struct {
			Books struct{ Edges []struct{ Node bookNode } }
		}
		a.ok(`{ books(first: 1, sort: BESTSELLING) { edges { node { id isbn title authors { id name } categories { slug } } } } }`, nil, &list)
		b := list.Books.Edges[0].Node
		var out struct {
			Node   struct{ Title string }
			Book   struct{ Title string }
			ByISBN struct{ ID string }
			Author struct {
				Name  string
				Books struct {
					TotalCount int
					Edges      []struct{ Node struct{ ID string } }
				}
			}
			Category struct {
				Slug  string
				Books struct{ TotalCount int }
			}
		}
		dashed := b.ISBN[:3] + "-" + b.ISBN[3:4] + "-" + b.ISBN[4:9] + "-" + b.ISBN[9:12] + "-" + b.ISBN[12:]
		a.ok(`query($id: ID!, $isbn: String!, $author: ID!, $slug: String!) {
			node(id: $id) { ... on Book { title } }
			book(id: $id) { title }
			byISBN: bookByIsbn(isbn: $isbn) { id }
			author(id: $author) { name books(first: 100) { totalCount edges { node { id } } } }
			category(slug: $slug) { slug books { totalCount } }
		}`, map[string]any{"id": b.ID, "isbn": dashed, "author": b.Authors[0].ID, "slug": b.Categories[0].Slug}, &out)
		if out.Node.Title != b.Title || out.Book.Title != b.Title || out.ByISBN.ID != b.ID {
			t.Fatalf("node %q, book %q, byISBN %q; want %q / %s", out.Node.Title, out.Book.Title, out.ByISBN.ID, b.Title, b.ID)
		}
		if out.Author.Name != b.Authors[0].Name || out.Author.Books.TotalCount == 0 {
			t.Fatalf("author = %+v", out.Author)
		}
		found := false
		for _, e := range out.Author.Books.Edges {
			found = found || e.Node.ID == b.ID
		}
		if !found {
			t.Fatal("the author's books do not include the book")
		}
		if out.Category.Books.TotalCount == 0 {
			t.Fatal("the book's category has no books")
		}
	})

	t.Run("bestsellers and new releases are sorted", func(t *testing.T) {
		var out struct {
			Bestsellers []struct{ ID string }
			NewReleases []struct{ PublishedAt string }
		}
		a.ok(`{ bestsellers(first: 10) { id } newReleases(first: 10) { publishedAt } }`, nil, &out)
		if len(out.Bestsellers) != 10 || len(out.NewReleases) != 10 {
			t.Fatalf("got %d bestsellers, %d new releases", len(out.Bestsellers), len(out.NewReleases))
		}
		for i := 1; i < len(out.NewReleases); i++ {
			if out.NewReleases[i].PublishedAt > out.NewReleases[i-1].PublishedAt {
				t.Fatalf("new releases out of order: %v", out.NewReleases)
			}
		}
	})

	t.Run("filters", func(t *testing.T) {
		var out struct {
			Books struct {
				TotalCount int
				Edges      []struct {
					Node struct {
						PriceCents   int
						Rating       float64
						Availability struct{ InStock bool }
					}
				}
			}
		}
		a.ok(`{ books(first: 100, filter: {minPriceCents: 1000, maxPriceCents: 2000, minRating: 3.5, inStock: true}) {
			totalCount edges { node { priceCents rating availability { inStock } } } } }`, nil, &out)
		if out.Books.TotalCount == 0 {
			t.Fatal("no book matches; the demo catalog should have some")
		}
		for _, e := range out.Books.Edges {
			n := e.Node
			if n.PriceCents < 1000 || n.PriceCents > 2000 || n.Rating < 3.5 || !n.Availability.InStock {
				t.Fatalf("book outside the filter: %+v", n)
			}
		}
	})
}

// TestBadArgumentsGetStableCodes: every malformed or unknown argument is a top-level error
// with a stable extensions.code, never a panic, a 500 or data from elsewhere.
func TestBadArgumentsGetStableCodes(t *testing.T) {
	a := newAPI(t, 20)
	var list struct {
		Books struct {
			Edges []struct {
				Node struct {
					ID      string
					Authors []struct{ ID string }
				}
			}
		}
	}
	a.ok(`{ books(first: 1) { edges { node { id authors { id } } } } }`, nil, &list)
	bookID, authorID := list.Books.Edges[0].Node.ID, list.Books.Edges[0].Node.Authors[0].ID
	missing := "Qm9vazowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDA" // Book:00000000-0000-4000-8000-000000000000
	cases := []struct {
		name, query, code string
	}{
		{"malformed id", `{ book(id: "nope") { id } }`, bookstore.CodeBadUserInput},
		{"id of another type", fmt.Sprintf(`{ book(id: %q) { id } }`, authorID), bookstore.CodeBadUserInput},
		{"author id given a book id", fmt.Sprintf(`{ author(id: %q) { id } }`, bookID), bookstore.CodeBadUserInput},
		{"unknown book", fmt.Sprintf(`{ book(id: %q) { id } }`, missing), bookstore.CodeNotFound},
		{"unknown node", fmt.Sprintf(`{ node(id: %q) { id } }`, missing), bookstore.CodeNotFound},
		{"malformed node id", `{ node(id: "!!!") { id } }`, bookstore.CodeBadUserInput},
		{"huge id", fmt.Sprintf(`{ node(id: %q) { id } }`, strings.Repeat("A", 5000)), bookstore.CodeBadUserInput},
		{"first too large", `{ books(first: 1000) { totalCount } }`, bookstore.CodeBadUserInput},
		{"negative first", `{ books(first: -1) { totalCount } }`, bookstore.CodeBadUserInput},
		{"bad cursor", `{ books(after: "garbage") { totalCount } }`, bookstore.CodeBadUserInput},
		{"cursor of another sort", "", bookstore.CodeBadUserInput},
		{"nested first too large", `{ categories { books(first: 101) { totalCount } } }`, bookstore.CodeBadUserInput},
		{"bad review cursor", `{ books(first: 1) { edges { node { reviews(after: "x") { totalCount } } } } }`, bookstore.CodeBadUserInput},
		{"malformed slug", `{ category(slug: "Not A Slug") { id } }`, bookstore.CodeBadUserInput},
		{"unknown slug", `{ category(slug: "no-such-genre") { id } }`, bookstore.CodeNotFound},
		{"unknown filter slug", `{ books(filter: {categorySlug: "no-such-genre"}) { totalCount } }`, bookstore.CodeNotFound},
		{"bad isbn", `{ bookByIsbn(isbn: "978-0-00-000000-1") { id } }`, bookstore.CodeBadUserInput},
		{"unknown isbn", `{ bookByIsbn(isbn: "9780306406157") { id } }`, bookstore.CodeNotFound},
		{"rating out of range", `{ books(filter: {minRating: 7}) { totalCount } }`, bookstore.CodeBadUserInput},
		{"negative price", `{ books(filter: {minPriceCents: -5}) { totalCount } }`, bookstore.CodeBadUserInput},
		{"min above max", `{ books(filter: {minPriceCents: 500, maxPriceCents: 100}) { totalCount } }`, bookstore.CodeBadUserInput},
		{"bad author filter", `{ books(filter: {authorId: "zzz"}) { totalCount } }`, bookstore.CodeBadUserInput},
		{"sql in slug", `{ category(slug: "x'; DROP TABLE books; --") { id } }`, bookstore.CodeBadUserInput},
	}
	var titleCursor struct {
		Books struct{ PageInfo struct{ EndCursor string } }
	}
	a.ok(`{ books(first: 2, sort: TITLE) { pageInfo { endCursor } } }`, nil, &titleCursor)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := c.query
			if q == "" {
				q = fmt.Sprintf(`{ books(sort: RATING, after: %q) { totalCount } }`, titleCursor.Books.PageInfo.EndCursor)
			}
			r := a.do(q, nil)
			if r.status != 200 {
				t.Fatalf("status %d", r.status)
			}
			if len(r.Errors) == 0 {
				t.Fatalf("no error; data = %s", r.Data)
			}
			// A bad nested argument fails once per parent; each error says the same.
			for _, e := range r.Errors {
				if got := e.Extensions["code"]; got != c.code {
					t.Fatalf("code = %v (%s), want %s", got, e.Message, c.code)
				}
				if strings.Contains(strings.ToLower(e.Message), "sql") {
					t.Fatalf("error message leaks internals: %s", e.Message)
				}
			}
		})
	}
	var n int
	if err := a.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM books").Scan(&n); err != nil || n != 20 {
		t.Fatalf("books after hostile arguments: %d, %v", n, err)
	}
}

func TestComplexityLimitRefusesAmplification(t *testing.T) {
	a := newAPI(t, 5)
	r := a.do(`{ categories { books(first: 100) { edges { node {
		reviews(first: 100) { edges { node { title } } }
		authors { books(first: 100) { edges { node { title } } } } } } } } }`, nil)
	if len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Fatalf("errors = %+v, want COMPLEXITY_LIMIT_EXCEEDED", r.Errors)
	}
}
