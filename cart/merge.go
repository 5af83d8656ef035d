package cart

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
)

// Merge moves a guest cart into the customer's cart when the guest signs in (login or
// register with cartId). The rules (also in the schema docs of LoginInput.cartId):
//
//  1. Only a live guest cart merges. An unknown or expired id, the customer's own cart
//     or another customer's cart is left alone, and sign-in succeeds all the same.
//  2. The customer's current cart receives the guest's lines; without one, a new
//     customer cart (with a new id) is made from them.
//  3. A book in both carts keeps one line whose quantity is the sum, capped at the
//     per-line limit and at stock (but never below what the customer's line held).
//     No line present in both carts is dropped.
//  4. A book only in the guest cart is appended, capped the same way (out of stock: not
//     carried over), while the cart has fewer than the line limit.
//  5. The customer's discount codes stay; each guest code is added if it applies to the
//     merged cart (stacking rules included) and the code limit allows.
//  6. The guest cart is deleted: its id is CART_NOT_FOUND afterwards. Of two concurrent
//     merges of one guest cart, one merges and the other finds nothing.
//
// It returns the customer's cart (nil when nothing was merged and the customer has no
// cart).
func (s *Service) Merge(ctx context.Context, cat Catalog, guestID string, customer uuid.UUID) (*bookstore.Cart, error) {
	if !ValidID(guestID) || customer == uuid.Nil {
		return s.Current(ctx, customer)
	}
	g, err := s.cfg.Store.Get(ctx, guestID)
	if errors.Is(err, bookstore.ErrCartNotFound) || (err == nil && g.CustomerID != nil) {
		return s.Current(ctx, customer)
	}
	if err != nil {
		return nil, err
	}
	target, err := s.Current(ctx, customer)
	if err != nil {
		return nil, err
	}
	if g, err = s.cfg.Store.Take(ctx, guestID); errors.Is(err, bookstore.ErrCartNotFound) {
		return target, nil // merged meanwhile by a concurrent sign-in
	} else if err != nil {
		return nil, err
	}
	if g.CustomerID != nil { // cannot happen: carts never change owner in place
		return target, s.cfg.Store.Create(ctx, g)
	}
	// The data to cap and price the merge is read for the cart actually taken, not for an
	// earlier read of it: every add acknowledged before the Take is in g and must merge.
	// A failing read puts the guest cart back, so it loses nothing.
	lines := slices.Clone(g.Lines)
	codes := slices.Clone(g.DiscountCodes)
	if target != nil {
		lines = append(lines, target.Lines...)
		codes = append(codes, target.DiscountCodes...)
	}
	in, err := s.PriceInput(ctx, cat, lines, codes)
	if err != nil {
		if rerr := s.cfg.Store.Create(ctx, g); rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		return nil, err
	}
	merge := func(c *bookstore.Cart) error {
		s.mergeInto(c, g, in)
		s.touch(c)
		return nil
	}
	var out *bookstore.Cart
	if target != nil {
		out, err = s.cfg.Store.Update(ctx, target.ID, merge)
	}
	if target == nil || errors.Is(err, bookstore.ErrCartNotFound) {
		out = &bookstore.Cart{ID: NewID(), CustomerID: &customer, CreatedAt: s.cfg.Now().UTC().Truncate(time.Microsecond)}
		_ = merge(out)
		err = s.cfg.Store.Create(ctx, out)
	}
	if err != nil {
		// Put the guest cart back rather than lose it; the shopper can sign in again.
		if rerr := s.cfg.Store.Create(ctx, g); rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		return nil, err
	}
	return out, nil
}

func (s *Service) mergeInto(c, g *bookstore.Cart, in bookstore.PriceInput) {
	lim := s.cfg.Limits
	for _, gl := range g.Lines {
		stock := in.Stock[gl.BookID]
		if at := c.Line(gl.BookID); at >= 0 {
			have := c.Lines[at].Quantity
			c.Lines[at].Quantity = max(have, min(have+gl.Quantity, lim.MaxQuantity, int(stock)))
			continue
		}
		q := min(gl.Quantity, lim.MaxQuantity, int(max(stock, 0)))
		if q > 0 && len(c.Lines) < lim.MaxLines && in.Books[gl.BookID] != nil {
			c.Lines = append(c.Lines, bookstore.CartLine{BookID: gl.BookID, Quantity: q})
		}
	}
	for _, code := range g.DiscountCodes {
		if slices.Contains(c.DiscountCodes, code) || len(c.DiscountCodes) >= lim.MaxCodes {
			continue
		}
		try := in
		try.Lines, try.Codes = c.Lines, append(slices.Clone(c.DiscountCodes), code)
		p := bookstore.Price(try)
		if r := p.Codes[len(p.Codes)-1]; r.Applicable {
			c.DiscountCodes = try.Codes
		}
	}
}
