package bookstore

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Cart is what a shopper intends to buy: books and quantities, and the discount codes
// entered. It holds no prices: Price computes them from the live catalog every time, so
// the cart and the order priced from it at checkout cannot disagree.
type Cart struct {
	// ID is an unguessable token (256 random bits, base64url). For a guest cart it is
	// the capability to the cart; a customer's cart also needs the customer's token.
	ID string
	// CustomerID owns the cart; nil for a guest cart.
	CustomerID *uuid.UUID
	Lines      []CartLine
	// DiscountCodes are normalised (upper case), in the order entered.
	DiscountCodes []string
	// Version counts writes; stores use it for optimistic concurrency.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time
}

// CartLine is one book of a cart. A cart has at most one line per book.
type CartLine struct {
	BookID   uuid.UUID `json:"b"`
	Quantity int       `json:"q"`
}

// Line returns the line of bookID and its index, or -1.
func (c *Cart) Line(bookID uuid.UUID) int {
	for i, l := range c.Lines {
		if l.BookID == bookID {
			return i
		}
	}
	return -1
}

// OwnedBy reports whether customer may see the cart: anyone holding a guest cart's id,
// only its owner for a customer's cart.
func (c *Cart) OwnedBy(customer uuid.UUID) bool {
	return c.CustomerID == nil || (customer != uuid.Nil && *c.CustomerID == customer)
}

// TotalQuantity is the number of copies in the cart.
func (c *Cart) TotalQuantity() int {
	n := 0
	for _, l := range c.Lines {
		n += l.Quantity
	}
	return n
}

// CartLineInput is a book and quantity sent by a client.
type CartLineInput struct {
	BookID   uuid.UUID
	Quantity int
}

// CartLimits bound a cart. Zero values mean the defaults.
type CartLimits struct {
	MaxLines    int // default 100
	MaxQuantity int // per line, default 99
	MaxCodes    int // discount codes per cart, default 5
}

// WithDefaults fills the zero limits.
func (l CartLimits) WithDefaults() CartLimits {
	if l.MaxLines <= 0 {
		l.MaxLines = 100
	}
	if l.MaxQuantity <= 0 {
		l.MaxQuantity = 99
	}
	if l.MaxCodes <= 0 {
		l.MaxCodes = 5
	}
	return l
}

// ValidateQuantity checks one input quantity: 1..MaxQuantity, or 0 when zero is allowed
// (cartLinesUpdate removes a line with 0).
func (l CartLimits) ValidateQuantity(field string, q int, zeroOK bool) *Error {
	if (q == 0 && zeroOK) || (q >= 1 && q <= l.MaxQuantity) {
		return nil
	}
	lo := 1
	if zeroOK {
		lo = 0
	}
	return &Error{Code: CodeQuantityLimit, Field: field, Message: fmt.Sprintf("quantity must be between %d and %d", lo, l.MaxQuantity)}
}

// MaxCodeLen bounds a discount code.
const MaxCodeLen = 64

// NormalizeCode is the one form of a discount code: codes are case-insensitive and
// surrounding space is ignored.
func NormalizeCode(code string) string { return strings.ToUpper(strings.TrimSpace(code)) }

// WellFormedCode reports whether a normalised code has the form every stored code has
// (1..MaxCodeLen of A-Z, 0-9, - and _): anything else cannot name a promotion and is
// refused before it reaches the database (a NUL would fail there as an internal error).
func WellFormedCode(code string) bool {
	return code != "" && len(code) <= MaxCodeLen &&
		!strings.ContainsFunc(code, func(r rune) bool { return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') })
}

// DiscountKind says how a promotion takes money off.
type DiscountKind string

const (
	// DiscountPercent takes Value percent (1..100) off the eligible subtotal.
	DiscountPercent DiscountKind = "PERCENT"
	// DiscountFixed takes Value cents off the eligible subtotal (never below zero).
	DiscountFixed DiscountKind = "FIXED_AMOUNT"
)

// Promotion is a discount code with its conditions and limits.
type Promotion struct {
	ID          uuid.UUID
	Code        string // normalised (NormalizeCode)
	Description string
	Kind        DiscountKind
	Value       int64
	// MinSubtotalCents: the code applies only when the eligible subtotal reaches it.
	MinSubtotalCents int64
	// CategoryID scopes the discount to books in the category or its descendants.
	CategoryID *uuid.UUID
	StartsAt   *time.Time
	EndsAt     *time.Time
	// UsageLimit caps redemptions in total, PerCustomerLimit per customer (guests by
	// normalised email); nil is unlimited. Used counts claimed redemptions.
	UsageLimit       *int64
	PerCustomerLimit *int64
	Used             int64
	// Combinable lets the code apply together with other combinable codes.
	Combinable bool
	Active     bool
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Validate checks an admin's promotion before it is stored.
func (p *Promotion) Validate() error {
	p.Code = NormalizeCode(p.Code)
	switch {
	case p.Code == "" || len(p.Code) > MaxCodeLen:
		return InvalidField("code", "must be 1 to %d characters", MaxCodeLen)
	case !WellFormedCode(p.Code):
		return InvalidField("code", "may contain only letters, digits, - and _")
	case !utf8.ValidString(p.Description) || strings.ContainsRune(p.Description, 0):
		return InvalidField("description", "must be valid UTF-8 text without NUL characters")
	case utf8.RuneCountInString(p.Description) > 500:
		return InvalidField("description", "must be at most 500 characters")
	case p.Kind == DiscountPercent && (p.Value < 1 || p.Value > 100):
		return InvalidField("value", "a percentage must be between 1 and 100")
	case p.Kind == DiscountFixed && (p.Value < 1 || p.Value > 100_000_000):
		return InvalidField("value", "an amount must be between 1 and 100000000 cents")
	case p.Kind != DiscountPercent && p.Kind != DiscountFixed:
		return InvalidField("kind", "unknown discount kind")
	case p.MinSubtotalCents < 0:
		return InvalidField("minSubtotalCents", "must not be negative")
	case p.StartsAt != nil && p.EndsAt != nil && !p.EndsAt.After(*p.StartsAt):
		return InvalidField("endsAt", "must be after startsAt")
	case p.UsageLimit != nil && *p.UsageLimit < 0:
		return InvalidField("usageLimit", "must not be negative")
	case p.PerCustomerLimit != nil && *p.PerCustomerLimit < 1:
		return InvalidField("perCustomerLimit", "must be at least 1")
	}
	return nil
}

// Redeemable says why the promotion cannot be redeemed at all at now ("" when it can):
// inactive, outside its window, or used up. These make a code invalid wherever it is
// entered; conditions about a cart (minimum, scope, stacking) only make it inapplicable.
func (p *Promotion) Redeemable(now time.Time) string {
	switch {
	case !p.Active:
		return "this code is no longer valid"
	case p.StartsAt != nil && now.Before(*p.StartsAt):
		return "this code is not valid yet"
	case p.EndsAt != nil && !now.Before(*p.EndsAt):
		return "this code has expired"
	case p.UsageLimit != nil && p.Used >= *p.UsageLimit:
		return "this code has been fully redeemed"
	}
	return ""
}

// ShippingMethod is a way to ship an order.
type ShippingMethod struct {
	Code          string
	Name          string
	PriceCents    int64
	EstimatedDays int
}

// DefaultShippingMethods are used unless configured otherwise.
func DefaultShippingMethods() []ShippingMethod {
	return []ShippingMethod{
		{Code: "STANDARD", Name: "Standard shipping", PriceCents: 499, EstimatedDays: 5},
		{Code: "EXPRESS", Name: "Express shipping", PriceCents: 1499, EstimatedDays: 2},
	}
}

// TaxRates maps an ISO 3166-1 alpha-2 country to a tax rate in basis points (1900 =
// 19%). A country not listed pays no tax.
type TaxRates map[string]int64

// Cost is the money of a cart or order, all in cents of Currency.
type Cost struct {
	SubtotalCents int64
	DiscountCents int64
	ShippingCents int64
	TaxCents      int64
	TotalCents    int64
	Currency      string
}

// PricedLine is a cart line at today's price.
type PricedLine struct {
	Book           *Book
	Quantity       int
	UnitPriceCents int64
	TotalCents     int64
	// Availability is the book's live stock.
	Availability *Availability
}

// CodeResult is the evaluation of one discount code of a cart.
type CodeResult struct {
	Code       string
	Applicable bool
	Message    string
	// Promotion is nil for an unknown code.
	Promotion     *Promotion
	DiscountCents int64
}

// CartWarning tells the shopper about a line that cannot be bought as it is.
type CartWarning struct {
	Code    string
	Message string
	Book    *Book
}

// PriceInput is everything pricing needs; callers read it live (the cart through the
// request's loaders, checkout inside its transaction).
type PriceInput struct {
	Lines []CartLine
	// Books and Stock by id; a line whose book is missing is skipped with a warning.
	Books map[uuid.UUID]*Book
	Stock map[uuid.UUID]int64
	// Codes in the cart's order, and the promotions found for them by code.
	Codes      []string
	Promotions map[string]*Promotion
	// BookCategories lists each book's categories with all their ancestors (only needed
	// when a promotion is scoped to a category).
	BookCategories map[uuid.UUID][]uuid.UUID
	// Shipping is the chosen method; nil prices no shipping.
	Shipping *ShippingMethod
	// Country is the destination (ISO 3166-1 alpha-2); "" charges no tax.
	Country  string
	Tax      TaxRates
	Currency string // when the cart is empty; default USD
	Now      time.Time
}

// Pricing is the result of Price.
type Pricing struct {
	Lines    []PricedLine
	Cost     Cost
	Codes    []CodeResult
	Warnings []CartWarning
	// Applied are the promotions that took money off, to be claimed at checkout.
	Applied []*Promotion
}

// Price is the one pricing function of the store: the cart shows what it returns and
// checkout charges what it returns, computed from the same inputs.
//
// Rules:
//   - A line costs the book's current price times the quantity.
//   - Discount codes apply in the order entered. A code applies when it is redeemable
//     (active, within its window, not used up), the eligible subtotal (the lines in its
//     category scope, or all lines) is at least its minimum, and stacking allows it: a
//     code that does not combine applies only alone, so the first applicable code wins
//     and a later one applies only if both it and every code already applied combine.
//   - A percentage is rounded down to the cent; a fixed amount never exceeds the
//     eligible subtotal; the total discount never exceeds the subtotal.
//   - Shipping is the chosen method's price (nothing for an empty cart); tax is the
//     destination's rate on subtotal - discount + shipping, rounded half up.
func Price(in PriceInput) Pricing {
	var out Pricing
	cur := in.Currency
	var subtotal int64
	for _, l := range in.Lines {
		b := in.Books[l.BookID]
		if b == nil {
			out.Warnings = append(out.Warnings, CartWarning{Code: CodeUnknownBook, Message: "a book in the cart is no longer sold"})
			continue
		}
		if cur == "" {
			cur = b.Currency
		}
		av := AvailabilityOf(in.Stock[l.BookID])
		total := b.PriceCents * int64(l.Quantity)
		out.Lines = append(out.Lines, PricedLine{Book: b, Quantity: l.Quantity, UnitPriceCents: b.PriceCents, TotalCents: total, Availability: &av})
		subtotal += total
		switch {
		case av.Quantity == 0:
			out.Warnings = append(out.Warnings, CartWarning{Code: CodeOutOfStock, Message: fmt.Sprintf("%q is out of stock", b.Title), Book: b})
		case av.Quantity < int64(l.Quantity):
			out.Warnings = append(out.Warnings, CartWarning{Code: CodeInsufficientStock,
				Message: fmt.Sprintf("only %d of %q available", av.Quantity, b.Title), Book: b})
		}
	}
	if cur == "" {
		cur = "USD"
	}
	var discount int64
	combinable := true // every code applied so far combines
	applied := 0
	for _, code := range in.Codes {
		r := CodeResult{Code: code}
		p := in.Promotions[code]
		r.Promotion = p
		switch {
		case p == nil:
			r.Message = "unknown discount code"
		case p.Redeemable(in.Now) != "":
			r.Message = p.Redeemable(in.Now)
		default:
			eligible := subtotal
			if p.CategoryID != nil {
				eligible = scopedSubtotal(out.Lines, in.BookCategories, *p.CategoryID)
			}
			switch {
			case eligible == 0 && p.CategoryID != nil:
				r.Message = "no book in the cart is eligible for this code"
			case eligible < p.MinSubtotalCents || eligible == 0:
				r.Message = fmt.Sprintf("applies to orders of at least %s", cents(max(p.MinSubtotalCents, 1), cur))
			case applied > 0 && !(combinable && p.Combinable):
				r.Message = "cannot be combined with the other codes of this cart"
			default:
				d := eligible * p.Value / 100
				if p.Kind == DiscountFixed {
					d = min(p.Value, eligible)
				}
				d = min(d, subtotal-discount)
				if d <= 0 {
					// Nothing off (a percentage of a few cents rounds to zero): not
					// applicable, so checkout never claims a use for nothing.
					r.Message = "takes nothing off this cart"
					break
				}
				r.Applicable, r.DiscountCents = true, d
				r.Message = fmt.Sprintf("%s off", cents(d, cur))
				discount += d
				applied++
				combinable = combinable && p.Combinable
				out.Applied = append(out.Applied, p)
			}
		}
		out.Codes = append(out.Codes, r)
	}
	var shipping int64
	if in.Shipping != nil && len(out.Lines) > 0 {
		shipping = in.Shipping.PriceCents
	}
	taxable := subtotal - discount + shipping
	tax := (taxable*in.Tax[in.Country] + 5000) / 10000
	out.Cost = Cost{SubtotalCents: subtotal, DiscountCents: discount, ShippingCents: shipping, TaxCents: tax,
		TotalCents: taxable + tax, Currency: cur}
	return out
}

func scopedSubtotal(lines []PricedLine, cats map[uuid.UUID][]uuid.UUID, scope uuid.UUID) int64 {
	var n int64
	for _, l := range lines {
		for _, c := range cats[l.Book.ID] {
			if c == scope {
				n += l.TotalCents
				break
			}
		}
	}
	return n
}

func cents(c int64, cur string) string {
	return fmt.Sprintf("%d.%02d %s", c/100, c%100, cur)
}

// ErrCartNotFound is what cart stores return for a cart that does not exist or expired,
// and what the cart service returns for a cart the caller may not see.
var ErrCartNotFound = &Error{Code: CodeCartNotFound, Message: "no cart with this id"}
