package searchtest

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/search"
)

// testSuggestAuthorSalesTypoNeighbours: authors rank by their books' sales, whatever
// fills the neighbourhood of the prefix: Jane Austen (3 books, 2,700 sales) comes before
// Janet Roe (1 book, 2,000) for "jane", though 220 best-selling books by a "Jana" (one
// typo from "jane") outsell both.
func testSuggestAuthorSalesTypoNeighbours(t *testing.T, ix search.Index) {
	ctx := context.Background()
	var docs []search.Document
	aid := func(name string) uuid.UUID { return uuid.NewSHA1(uuid.NameSpaceOID, []byte("sales-author-"+name)) }
	add := func(n int, title, author string, sales int64) {
		d := extraDoc(5000+n, title, "", author)
		d.AuthorIDs = []uuid.UUID{aid(author)}
		d.SalesCount = sales
		docs = append(docs, d)
	}
	for i := range 3 {
		add(i, fmt.Sprintf("Pride Volume %d", i), "Jane Austen", 900)
	}
	add(3, "Roe Story", "Janet Roe", 2000)
	for i := range 220 {
		add(10+i, fmt.Sprintf("Quill Tale %d", i), "Jana Quill", 1000)
	}
	if err := ix.Upsert(ctx, docs); err != nil {
		t.Fatal(err)
	}
	sugs, err := ix.Suggest(ctx, "jane", 10)
	if err != nil {
		t.Fatal(err)
	}
	var authors []string
	for _, s := range sugs {
		if s.Kind == search.SuggestAuthor {
			authors = append(authors, s.Text)
		}
	}
	if len(authors) < 2 || authors[0] != "Jane Austen" || authors[1] != "Janet Roe" {
		t.Errorf("suggest(jane) authors = %v, want Jane Austen (2,700 sales) then Janet Roe (2,000)", authors)
	}
}

// testDeleteIsVersioned: a delete outranks the versions before it. A document read
// before the delete (older version) and written after it does not bring the book back;
// a newer one (the book written again later) does.
func testDeleteIsVersioned(t *testing.T, ix search.Index) {
	ctx := context.Background()
	d := extraDoc(6000, "Tombstone Tale", "")
	d.Version = 2000
	if err := ix.Upsert(ctx, []search.Document{d}); err != nil {
		t.Fatal(err)
	}
	if err := ix.Delete(ctx, []uuid.UUID{d.ID}); err != nil {
		t.Fatal(err)
	}
	found := func() bool {
		t.Helper()
		res, err := ix.Search(ctx, search.Query{Text: "tombstone tale ", SkipFacets: true})
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Hits) > 0
	}
	for _, v := range []int64{1000, 2000} {
		d.Version = v
		if err := ix.Upsert(ctx, []search.Document{d}); err != nil {
			t.Fatal(err)
		}
		if found() {
			t.Fatalf("a document of version %d, not newer than the delete, brought the book back", v)
		}
	}
	d.Version = 3000
	if err := ix.Upsert(ctx, []search.Document{d}); err != nil {
		t.Fatal(err)
	}
	if !found() {
		t.Error("a document newer than the delete is not indexed")
	}
}
