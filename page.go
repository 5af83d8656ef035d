package bookstore

import "github.com/google/uuid"

// MaxPageSize caps every list's `first`, so no request can ask for an unbounded page.
const MaxPageSize = 100

// BookSort is the order of a book listing. Every order is total (ties broken by id), which
// is what keyset pagination needs.
type BookSort string

const (
	SortTitle       BookSort = "TITLE"
	SortPriceAsc    BookSort = "PRICE_ASC"
	SortPriceDesc   BookSort = "PRICE_DESC"
	SortRating      BookSort = "RATING"
	SortNewest      BookSort = "NEWEST"
	SortBestselling BookSort = "BESTSELLING"
)

// BookFilter narrows a book listing. Nil and empty fields do not filter.
type BookFilter struct {
	// CategoryIDs: books in any of these categories. Callers expand a category to
	// itself plus its descendants.
	CategoryIDs   []uuid.UUID
	AuthorID      *uuid.UUID
	MinPriceCents *int64
	MaxPriceCents *int64
	MinRating     *float64
	InStock       *bool
}

// OnlyCategories reports whether f filters by category and nothing else.
func (f BookFilter) OnlyCategories() bool {
	return len(f.CategoryIDs) > 0 && f.AuthorID == nil && f.MinPriceCents == nil &&
		f.MaxPriceCents == nil && f.MinRating == nil && f.InStock == nil
}

// OnlyAuthor reports whether f filters by author and nothing else.
func (f BookFilter) OnlyAuthor() bool {
	return f.AuthorID != nil && len(f.CategoryIDs) == 0 && f.MinPriceCents == nil &&
		f.MaxPriceCents == nil && f.MinRating == nil && f.InStock == nil
}

// PageInfo follows the Relay cursor connection specification.
type PageInfo struct {
	HasNextPage     bool
	HasPreviousPage bool
	StartCursor     *string
	EndCursor       *string
}

// BookEdge is one book of a page with the cursor that resumes after it.
type BookEdge struct {
	Cursor string
	Node   *Book
}

// BookPage is one page of a book listing. Total is the number of books matching the
// listing across all pages when the producer knew it cheaply, else nil; Filter lets a
// caller count them on demand.
type BookPage struct {
	Edges    []BookEdge
	PageInfo PageInfo
	Total    *int64
	Filter   BookFilter
}

// ReviewEdge is one review of a page with its cursor.
type ReviewEdge struct {
	Cursor string
	Node   *Review
}

// ReviewPage is one page of a book's reviews.
type ReviewPage struct {
	Edges    []ReviewEdge
	PageInfo PageInfo
	Total    int64
}

// NewPageInfo fills PageInfo from a page's cursors.
func NewPageInfo(cursors []string, hasNext, hasPrevious bool) PageInfo {
	pi := PageInfo{HasNextPage: hasNext, HasPreviousPage: hasPrevious}
	if n := len(cursors); n > 0 {
		pi.StartCursor, pi.EndCursor = &cursors[0], &cursors[n-1]
	}
	return pi
}

// Node is any object that the API addresses by a global id (the GraphQL Node interface).
// Global ids are a transport concern, so the interface asks nothing of its members.
type Node interface{}
