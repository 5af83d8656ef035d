package cart

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
)

// View is a cart priced over the live catalog: what the API shows.
type View struct {
	ID                       string
	Lines                    []bookstore.PricedLine
	TotalQuantity            int
	DiscountCodes            []bookstore.CodeResult
	AvailableShippingMethods []bookstore.ShippingMethod
	Warnings                 []bookstore.CartWarning
	UpdatedAt                time.Time
	ExpiresAt                time.Time
	Cart                     *bookstore.Cart
	// Pricing is the cart priced without shipping or tax; Cost prices it for a method
	// and destination.
	Pricing bookstore.Pricing

	in  bookstore.PriceInput
	svc *Service
}

// Cost prices the cart for a shipping method (nil: none) and destination country (""
// charges no tax), with the same function and inputs as the rest of the view.
func (v *View) Cost(shipping *bookstore.ShippingMethod, country string) bookstore.Cost {
	in := v.in
	in.Shipping, in.Country = shipping, country
	return bookstore.Price(in).Cost
}

// Input is everything View priced from, for a caller that prices the same cart again
// (checkout compares it with its own re-read inside its transaction).
func (v *View) Input() bookstore.PriceInput { return v.in }

// View reads what pricing needs for c through cat (a fixed number of queries whatever
// the number of lines) and prices it.
func (s *Service) View(ctx context.Context, cat Catalog, c *bookstore.Cart) (*View, error) {
	in, err := s.PriceInput(ctx, cat, c.Lines, c.DiscountCodes)
	if err != nil {
		return nil, err
	}
	p := bookstore.Price(in)
	return &View{
		ID: c.ID, Lines: p.Lines, TotalQuantity: c.TotalQuantity(), DiscountCodes: p.Codes,
		AvailableShippingMethods: s.cfg.Shipping, Warnings: p.Warnings,
		UpdatedAt: c.UpdatedAt, ExpiresAt: c.ExpiresAt, Cart: c, Pricing: p, in: in, svc: s,
	}, nil
}

// PriceInput reads the live data to price lines with codes (no shipping, no country;
// the caller sets those).
func (s *Service) PriceInput(ctx context.Context, cat Catalog, lines []bookstore.CartLine, codes []string) (bookstore.PriceInput, error) {
	in := bookstore.PriceInput{Lines: lines, Codes: codes, Tax: s.cfg.Tax, Now: s.cfg.Now()}
	ids := make([]uuid.UUID, len(lines))
	for i, l := range lines {
		ids[i] = l.BookID
	}
	var err error
	if in.Books, err = cat.Books(ctx, ids); err != nil {
		return in, err
	}
	if in.Stock, err = cat.Stock(ctx, ids); err != nil {
		return in, err
	}
	if len(codes) > 0 {
		if in.Promotions, err = cat.Promotions(ctx, codes); err != nil {
			return in, err
		}
	}
	for _, p := range in.Promotions {
		if p.CategoryID != nil {
			if in.BookCategories, err = cat.Categories(ctx, ids); err != nil {
				return in, err
			}
			break
		}
	}
	return in, nil
}

// Redeemer is the key under which per-customer promotion limits count a shopper: the
// blind index of the normalised email (pii.BlindIndex.Email normalises), for guests and
// customers alike, so signing out does not reset a limit and no email is stored.
// Checkout passes it to store.Promotions.Claim and Release.
func Redeemer(index interface{ Email(string) []byte }, email string) []byte {
	return index.Email(email)
}
