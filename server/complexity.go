package server

import (
	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/graph"
	"github.com/shopfront/bookstore/graph/model"
)

// complexity prices list fields by the page they ask for, so that nesting lists
// (categories -> books -> reviews) multiplies cost the way it multiplies work, and
// ComplexityLimit can refuse amplification before anything runs.
func complexity() graph.ComplexityRoot {
	page := func(child int, first *int) int {
		n := 20
		if first != nil && *first > 0 {
			n = *first
		}
		return 1 + n*child
	}
	var c graph.ComplexityRoot
	c.Author.Books = func(child int, first *int, _ *string) int { return page(child, first) }
	c.Book.Reviews = func(child int, first *int, _ *string) int { return page(child, first) }
	c.Category.Books = func(child int, first *int, _ *string, _ *bookstore.BookSort) int { return page(child, first) }
	c.Query.Books = func(child int, first *int, _ *string, _ *model.BookFilter, _ *bookstore.BookSort) int {
		return page(child, first)
	}
	c.Query.Bestsellers = func(child int, first *int, _ *string) int { return page(child, first) }
	c.Query.NewReleases = func(child int, first *int, _ *string) int { return page(child, first) }
	return c
}
