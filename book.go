package bookstore

import (
	"time"

	"github.com/google/uuid"
)

// Book is a title in the catalog. Prices are integer cents in Currency.
type Book struct {
	ID          uuid.UUID
	ISBN        string // ISBN-13, digits only
	Title       string
	Description string
	PriceCents  int64
	Currency    string
	Rating      float64 // average review rating, 0..5
	RatingCount int64
	SalesCount  int64
	PublishedAt *Date
	Publisher   *string
	Language    string
	PageCount   *int32
	CoverURL    *string
}

// Author writes books. Names are unique ignoring case and surrounding space.
type Author struct {
	ID   uuid.UUID
	Name string
}

// Category is a node of the genre tree (genre > subgenre). Slugs are unique and derived
// from names: "Science Fiction" -> "science-fiction".
type Category struct {
	ID       uuid.UUID
	Slug     string
	Name     string
	ParentID *uuid.UUID
}

// Review is a customer's rating and text about a book.
type Review struct {
	ID           uuid.UUID
	BookID       uuid.UUID
	Rating       int32
	Title        string
	Body         string
	ReviewerName string
	CreatedAt    time.Time
}

// StockStatus summarises a book's stock for shoppers.
type StockStatus string

const (
	InStock    StockStatus = "IN_STOCK"
	LowStock   StockStatus = "LOW_STOCK"
	OutOfStock StockStatus = "OUT_OF_STOCK"
)

// LowStockThreshold is the quantity at or below which a book shows as LOW_STOCK.
const LowStockThreshold = 5

// Availability is what shoppers see of a book's inventory.
type Availability struct {
	InStock  bool
	Quantity int64
	Status   StockStatus
}

// AvailabilityOf derives the shopper-facing availability from units on hand.
func AvailabilityOf(quantity int64) Availability {
	switch {
	case quantity <= 0:
		return Availability{Quantity: 0, Status: OutOfStock}
	case quantity <= LowStockThreshold:
		return Availability{InStock: true, Quantity: quantity, Status: LowStock}
	default:
		return Availability{InStock: true, Quantity: quantity, Status: InStock}
	}
}
