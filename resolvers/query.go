package resolvers

import (
	"context"

	"github.com/shopfront/bookstore"
)

// topBooks serves bestsellers and newReleases: the first page of a sorted listing.
func (r *queryResolver) topBooks(ctx context.Context, first *int, categorySlug *string, sort bookstore.BookSort) ([]*bookstore.Book, error) {
	n, err := pageSize(first)
	if err != nil {
		return nil, err
	}
	ids, err := categoryFilter(ctx, "categorySlug", categorySlug)
	if err != nil {
		return nil, err
	}
	page, err := r.DB.Books.List(ctx, bookstore.BookFilter{CategoryIDs: ids}, sort, n, "")
	if err != nil {
		return nil, err
	}
	out := make([]*bookstore.Book, len(page.Edges))
	for i, e := range page.Edges {
		out[i] = e.Node
	}
	return out, nil
}

// orNotFound returns err, or a NOT_FOUND error when err is nil (the object is missing).
func orNotFound(err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	return notFound(format, args...)
}
