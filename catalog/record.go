// Package catalog reads and generates catalog data: the CSV import format and the
// deterministic demo catalog. It produces Records; store/ writes them. It talks to nothing.
package catalog

import (
	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
)

// Record is one book to load into the catalog, validated and normalised: ISBN is the
// 13-digit ISBN (an ISBN-10 input is converted), prices are non-negative cents, rating is
// within 0..5, names are trimmed. Loading is an upsert by ISBN.
type Record struct {
	// Line is the 1-based line of the CSV file the record came from (0 when generated), for
	// error reports.
	Line int
	// ID is the book id to use when the ISBN is new; nil lets the database choose.
	ID      *uuid.UUID
	ISBN    string
	Title   string
	Authors []string
	// Categories are paths from a top-level genre down: {"Fiction", "Science Fiction"}.
	Categories  [][]string
	Description string
	PriceCents  int64
	Rating      float64
	RatingCount int64
	SalesCount  int64
	// Stock is units on hand as the source counted them. Loading applies the change since
	// the previous import of the book to the live stock, so units sold in between are
	// not given back; StockUnknown leaves stock as it is.
	Stock        int64
	StockUnknown bool
	// CategoriesUnknown: the source has no categories column, so loading keeps the book's
	// categories (an empty list in a categories column still clears them).
	CategoriesUnknown bool
	PublishedAt       *bookstore.Date
	Publisher         string
	Language          string // BCP 47; "" means "en"
	PageCount         int32  // 0: unknown
	CoverURL          string
	// Reviews to insert with a new book (the demo generator uses this; CSV has none).
	Reviews []bookstore.Review
}
