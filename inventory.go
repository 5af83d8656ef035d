package bookstore

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// StockMovement is one audited change of a book's units on hand. Stock only ever changes
// by a delta with a reason (an admin's adjustment, an import, an order taking or giving
// back units); Stock is what the change left.
type StockMovement struct {
	ID      uuid.UUID
	BookID  uuid.UUID
	Delta   int64
	Reason  string
	ActorID *uuid.UUID // the admin who made it; nil for the system (checkout, import)
	Ref     *uuid.UUID // what caused it when not an admin (an order id)
	Stock   int64
	At      time.Time
}

// MaxStock bounds a book's units on hand and any one change of them (ten million): far
// above any bookshop's shelf, far below where sums of quantities could overflow.
const MaxStock = 10_000_000

// MaxStockReasonLen bounds the free-text reason of a stock adjustment (in characters).
const MaxStockReasonLen = 200

// StockDemand is how many units of a book an order takes (or gives back).
type StockDemand struct {
	BookID   uuid.UUID
	Quantity int64
}

// Shortage says that a book has fewer units on hand than an order wants.
type Shortage struct {
	BookID    uuid.UUID
	Wanted    int64
	Available int64
}

// StockMovementPage is one page of a book's stock ledger, newest first.
type StockMovementPage struct {
	Edges    []StockMovementEdge
	PageInfo PageInfo
}

// StockMovementEdge is one movement and its cursor.
type StockMovementEdge struct {
	Cursor string
	Node   *StockMovement
}

// CleanStockReason trims a stock change's reason and checks it: 1 to MaxStockReasonLen
// characters of visible text and spaces (no control or format characters, such as
// bidirectional overrides or zero-width spaces, and no line breaks), so an audit line
// reads as what it says. field names the argument in the error.
func CleanStockReason(field, reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	switch n := utf8.RuneCountInString(reason); {
	case !utf8.ValidString(reason):
		return "", InvalidField(field, "must be valid UTF-8")
	case n == 0:
		return "", InvalidField(field, "must not be empty")
	case n > MaxStockReasonLen:
		return "", InvalidField(field, "must be at most %d characters, got %d", MaxStockReasonLen, n)
	}
	for _, r := range reason {
		if !unicode.IsGraphic(r) {
			return "", InvalidField(field, "must contain only visible characters and spaces")
		}
	}
	return reason, nil
}
