package searchtest

import (
	"strings"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/catalog"
	"github.com/shopfront/bookstore/search"
)

// authorNamespace derives stable author ids from names in DemoDocuments.
var authorNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/shopfront/bookstore/search/searchtest/author"))

// AuthorID is the id DemoDocuments gives the author called name (names are unique
// ignoring case and surrounding space, as in the catalog).
func AuthorID(name string) uuid.UUID {
	return uuid.NewSHA1(authorNamespace, []byte(strings.ToLower(strings.TrimSpace(name))))
}

// DemoDocuments returns the documents of the deterministic demo catalog
// catalog.Generate(seed, n, ...), built as the outbox relay builds them from the
// database: category slugs from catalog.Slug with every ancestor, author ids from
// AuthorID, in stock when the stock is positive, "en" for an empty language.
func DemoDocuments(seed int64, n int) ([]search.Document, error) {
	docs := make([]search.Document, 0, n)
	err := catalog.Generate(seed, n, func(r catalog.Record) error {
		docs = append(docs, FromRecord(r))
		return nil
	})
	return docs, err
}

// FromRecord builds the search document of a catalog record.
func FromRecord(r catalog.Record) search.Document {
	d := search.Document{
		ISBN: r.ISBN, Title: r.Title, Description: r.Description, PriceCents: r.PriceCents,
		Rating: r.Rating, RatingCount: r.RatingCount, SalesCount: r.SalesCount,
		InStock: r.Stock > 0, Language: r.Language,
	}
	if r.ID != nil {
		d.ID = *r.ID
	}
	if d.Language == "" {
		d.Language = "en"
	}
	if r.PublishedAt != nil {
		d.PublishedAt = r.PublishedAt.Time
	}
	for _, a := range r.Authors {
		d.Authors = append(d.Authors, a)
		d.AuthorIDs = append(d.AuthorIDs, AuthorID(a))
	}
	seen := map[string]bool{}
	for _, path := range r.Categories {
		for _, name := range path {
			slug := catalog.Slug(name)
			if slug == "" || seen[slug] {
				continue
			}
			seen[slug] = true
			d.Categories = append(d.Categories, slug)
			d.CategoryNames = append(d.CategoryNames, name)
		}
	}
	return d
}
