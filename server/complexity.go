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
			// Past the cap the resolver refuses the argument anyway; clamping keeps a
			// huge `first` from overflowing the product below.
			n = min(*first, bookstore.MaxPageSize)
		}
		return 1 + mulCap(n, child)
	}
	// The top-level category list has no `first`: price it by its real width, so that a
	// field nested under it (a category's books) counts once per genre. Deeper levels
	// (children) keep gqlgen's default: the tree is two levels deep, and pricing every
	// level by its width would price a long chain of empty levels as exponential.
	const genres = 10 // the demo tree has 8
	var c graph.ComplexityRoot
	c.Query.Categories = func(child int) int { return 1 + mulCap(genres, child) }
	c.Author.Books = func(child int, first *int, _ *string) int { return page(child, first) }
	c.Book.Reviews = func(child int, first *int, _ *string) int { return page(child, first) }
	c.Category.Books = func(child int, first *int, _ *string, _ *bookstore.BookSort) int { return page(child, first) }
	c.Query.Books = func(child int, first *int, _ *string, _ *model.BookFilter, _ *bookstore.BookSort) int {
		return page(child, first)
	}
	c.Query.Bestsellers = func(child int, first *int, _ *string) int { return page(child, first) }
	c.Query.NewReleases = func(child int, first *int, _ *string) int { return page(child, first) }
	// A search runs the engine and loads a page of books: priced like a page of its size.
	c.Query.Search = func(child int, _ string, _ *model.SearchFilter, _ *model.SearchSort, first *int, _ *string) int {
		return 10 + page(child, first)
	}
	c.Query.Suggest = func(child int, _ string, first *int) int { return 5 + page(child, first) }
	// A cart's lines have no `first`: price them at the line limit's default.
	c.Cart.Lines = func(child int) int { return 1 + mulCap(100, child) }
	return c
}

// costCap bounds every product of costs: far above any limit, far below overflow, so that
// no nesting can wrap a cost around to a small or negative number.
const costCap = 1 << 40

func mulCap(n, child int) int {
	if n <= 0 || child <= 0 {
		return 0
	}
	if child >= costCap/n {
		return costCap
	}
	return n * child
}
