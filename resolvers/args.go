package resolvers

import (
	"context"
	"regexp"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/graph/model"
	"github.com/shopfront/bookstore/loaders"
)

// pageSize validates a connection's `first` (the schema supplies the default).
func pageSize(first *int) (int, error) {
	if first == nil {
		return 20, nil
	}
	if *first < 0 || *first > bookstore.MaxPageSize {
		return 0, bookstore.InvalidField("first", "must be between 0 and %d", bookstore.MaxPageSize)
	}
	return *first, nil
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

const maxCursorLen = 512

// cursorArg bounds `after` before anything decodes it.
func cursorArg(after *string) (string, error) {
	s := str(after)
	if len(s) > maxCursorLen {
		return "", bookstore.InvalidField("after", "invalid cursor")
	}
	return s, nil
}

var slugRE = regexp.MustCompile(`^[a-z0-9]+(?:-[a-z0-9]+)*$`)

// categoryBySlug resolves a slug through the request's category tree.
func categoryBySlug(ctx context.Context, field, slug string) (*bookstore.Category, error) {
	if len(slug) > 80 || !slugRE.MatchString(slug) {
		return nil, bookstore.InvalidField(field, "malformed category slug %q", truncate(slug, 80))
	}
	tree, err := loaders.For(ctx).Tree(ctx)
	if err != nil {
		return nil, err
	}
	c := tree.BySlug(slug)
	if c == nil {
		return nil, &bookstore.Error{Code: bookstore.CodeNotFound, Field: field, Message: "no category with slug " + slug}
	}
	return c, nil
}

// categoryFilter returns the ids of the category with slug and its subcategories.
func categoryFilter(ctx context.Context, field string, slug *string) ([]uuid.UUID, error) {
	if slug == nil {
		return nil, nil
	}
	c, err := categoryBySlug(ctx, field, *slug)
	if err != nil {
		return nil, err
	}
	tree, _ := loaders.For(ctx).Tree(ctx)
	return tree.Subtree(c.ID), nil
}

// bookFilter converts the API's filter into the store's.
func bookFilter(ctx context.Context, in *model.BookFilter) (bookstore.BookFilter, error) {
	var f bookstore.BookFilter
	if in == nil {
		return f, nil
	}
	var err error
	if f.CategoryIDs, err = categoryFilter(ctx, "filter.categorySlug", in.CategorySlug); err != nil {
		return f, err
	}
	if in.AuthorID != nil {
		id, err := parseTypedID("filter.authorId", typeAuthor, *in.AuthorID)
		if err != nil {
			return f, err
		}
		f.AuthorID = &id
	}
	if in.MinPriceCents != nil {
		v := int64(*in.MinPriceCents)
		f.MinPriceCents = &v
	}
	if in.MaxPriceCents != nil {
		v := int64(*in.MaxPriceCents)
		f.MaxPriceCents = &v
	}
	f.MinRating, f.InStock = in.MinRating, in.InStock
	return f, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func notFound(format string, args ...any) error {
	return bookstore.Errorf(bookstore.CodeNotFound, format, args...)
}
