// Package cart is the cart use case: guest and customer carts, their limits, the merge
// of a guest cart into a customer's at sign-in, and the priced view of a cart
// (bookstore.Price over the live catalog). Carts live in a Store: Redis (cart/redis)
// when configured, the database (store.Carts) otherwise; both keep carts across restarts.
//
// Checkout prices an order with the same function: inside its transaction it reads the
// cart's books, stock and promotions (store.Promotions.ByCodesIn with its tx), builds a
// bookstore.PriceInput with the chosen shipping method and destination, and calls
// bookstore.Price; it then claims each of Pricing.Applied with store.Promotions.Claim
// (redeemer: Redeemer) in the same transaction.
package cart

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
)

// Store keeps carts. Get, Current, Update and Take return bookstore.ErrCartNotFound for
// a missing or expired cart.
type Store interface {
	Create(ctx context.Context, c *bookstore.Cart) error
	Get(ctx context.Context, id string) (*bookstore.Cart, error)
	// Current is the customer's most recently created live cart.
	Current(ctx context.Context, customer uuid.UUID) (*bookstore.Cart, error)
	// Update applies fn and stores the result unless another write came in between, in
	// which case it re-reads and applies fn again: no update is lost. An error from fn
	// aborts without writing.
	Update(ctx context.Context, id string, fn func(*bookstore.Cart) error) (*bookstore.Cart, error)
	// Take deletes the cart and returns it; of concurrent Takes exactly one gets it.
	Take(ctx context.Context, id string) (*bookstore.Cart, error)
}

// Catalog is the live data pricing reads. Resolvers pass one backed by the request's
// loaders, so a cart of 50 lines costs the same queries as one of 2.
type Catalog interface {
	// Books returns the books found, by id.
	Books(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]*bookstore.Book, error)
	Stock(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]int64, error)
	// Promotions returns the promotions found, by normalised code.
	Promotions(ctx context.Context, codes []string) (map[string]*bookstore.Promotion, error)
	// Categories returns each book's categories with all their ancestors.
	Categories(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID][]uuid.UUID, error)
}

// Config configures the Service.
type Config struct {
	Store  Store
	Limits bookstore.CartLimits
	// GuestTTL and CustomerTTL are how long a cart lives after its last change
	// (defaults 7 and 30 days).
	GuestTTL, CustomerTTL time.Duration
	// EmptyTTL is how long a cart without lines lives (default 1 day): an empty cart
	// costs storage and is worth nothing, so creating many cannot fill the store for a
	// week. Adding a line gives the cart its full TTL.
	EmptyTTL time.Duration
	// CreateLimit, if not nil, bounds cartCreate: guests per client IP (IPv6 by /64,
	// auth.IPBucket), customers per customer. Over it, Create fails with
	// auth.ThrottledError (RATE_LIMITED). A failing limiter lets the creation through.
	CreateLimit auth.Limiter
	// Shipping lists the methods offered (default bookstore.DefaultShippingMethods).
	Shipping []bookstore.ShippingMethod
	Tax      bookstore.TaxRates
	Now      func() time.Time
}

// Service runs the cart use cases.
type Service struct{ cfg Config }

// New returns a Service.
func New(cfg Config) *Service {
	cfg.Limits = cfg.Limits.WithDefaults()
	if cfg.GuestTTL <= 0 {
		cfg.GuestTTL = 7 * 24 * time.Hour
	}
	if cfg.CustomerTTL <= 0 {
		cfg.CustomerTTL = 30 * 24 * time.Hour
	}
	if cfg.EmptyTTL <= 0 {
		cfg.EmptyTTL = 24 * time.Hour
	}
	if cfg.Shipping == nil {
		cfg.Shipping = bookstore.DefaultShippingMethods()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg}
}

// Delete removes a cart that checkout turned into a paid order. A cart already gone is
// no error.
func (s *Service) Delete(ctx context.Context, id string) error {
	if _, err := s.cfg.Store.Take(ctx, id); err != nil && !errors.Is(err, bookstore.ErrCartNotFound) {
		return err
	}
	return nil
}

// Store is where the carts are kept (checkout deletes a paid order's cart with the
// order's settlement when that is the order's database).
func (s *Service) Store() Store { return s.cfg.Store }

// Tax is the tax rates carts are priced with (checkout prices orders with them too).
func (s *Service) Tax() bookstore.TaxRates { return s.cfg.Tax }

// Limits are the cart limits in force.
func (s *Service) Limits() bookstore.CartLimits { return s.cfg.Limits }

// ShippingMethods are the methods offered.
func (s *Service) ShippingMethods() []bookstore.ShippingMethod { return s.cfg.Shipping }

// ShippingMethod returns the method with this code, or nil.
func (s *Service) ShippingMethod(code string) *bookstore.ShippingMethod {
	for i := range s.cfg.Shipping {
		if s.cfg.Shipping[i].Code == code {
			return &s.cfg.Shipping[i]
		}
	}
	return nil
}

// NewID returns a fresh cart id: 256 random bits.
func NewID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ValidID reports whether id can be a cart id (checked before any store sees it).
func ValidID(id string) bool {
	if len(id) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(id)
	return err == nil
}

// Result is a cart after a mutation, with the problems to report as userErrors (lines
// capped to stock or to the limit, codes refused): the parts that worked are applied.
type Result struct {
	Cart     *bookstore.Cart
	Problems []*bookstore.Error
}

func (s *Service) ttl(c *bookstore.Cart) time.Duration {
	ttl := s.cfg.GuestTTL
	if c.CustomerID != nil {
		ttl = s.cfg.CustomerTTL
	}
	if len(c.Lines) == 0 {
		ttl = min(ttl, s.cfg.EmptyTTL)
	}
	return ttl
}

func (s *Service) touch(c *bookstore.Cart) {
	// Both stores keep microseconds: what a mutation returns is what a later read shows.
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	c.UpdatedAt = now
	c.ExpiresAt = now.Add(s.ttl(c))
}

// Get returns the cart if customer (uuid.Nil for a guest) may see it. Another
// customer's cart is ErrCartNotFound, exactly like a missing one.
func (s *Service) Get(ctx context.Context, id string, customer uuid.UUID) (*bookstore.Cart, error) {
	if !ValidID(id) {
		return nil, bookstore.ErrCartNotFound
	}
	c, err := s.cfg.Store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !c.OwnedBy(customer) {
		return nil, bookstore.ErrCartNotFound
	}
	return c, nil
}

// Current returns the customer's current cart, or nil when there is none.
func (s *Service) Current(ctx context.Context, customer uuid.UUID) (*bookstore.Cart, error) {
	c, err := s.cfg.Store.Current(ctx, customer)
	if errors.Is(err, bookstore.ErrCartNotFound) {
		return nil, nil
	}
	return c, err
}

// Create makes a cart, owned by customer unless it is uuid.Nil, with the lines and codes
// given. A customer's new cart becomes their current cart (me.cart). Invalid input
// creates nothing.
func (s *Service) Create(ctx context.Context, cat Catalog, customer uuid.UUID, lines []bookstore.CartLineInput, codes []string) (*Result, error) {
	if err := s.allowCreate(ctx, customer); err != nil {
		return nil, err
	}
	c := &bookstore.Cart{ID: NewID(), CreatedAt: s.cfg.Now().UTC().Truncate(time.Microsecond)}
	if customer != uuid.Nil {
		c.CustomerID = &customer
	}
	res := &Result{Cart: c}
	if len(lines) > 0 {
		apply, err := s.prepareLines(ctx, cat, lines, false)
		if err != nil {
			return nil, err
		}
		if err := apply.add(c, s.cfg.Limits, &res.Problems); err != nil {
			return nil, err
		}
	}
	var apply *codeInputs
	if len(codes) > 0 {
		var err error
		if apply, err = s.prepareCodes(ctx, cat, codes, "discountCodes"); err != nil {
			return nil, err
		}
		c.DiscountCodes = apply.set(&res.Problems)
	}
	s.touch(c) // after the lines: an empty cart gets the short TTL
	if err := s.cfg.Store.Create(ctx, c); err != nil {
		return nil, err
	}
	if apply != nil {
		if err := s.reportInapplicable(ctx, cat, res, apply); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// reportInapplicable adds a DISCOUNT_NOT_APPLICABLE problem for each kept code that does
// not apply to the cart as stored, at the code's input position.
func (s *Service) reportInapplicable(ctx context.Context, cat Catalog, res *Result, ci *codeInputs) error {
	v, err := s.View(ctx, cat, res.Cart)
	if err != nil {
		return err
	}
	for _, r := range v.Pricing.Codes {
		if r.Applicable {
			continue
		}
		field := ci.field
		if j := slices.Index(ci.codes, r.Code); j >= 0 {
			field = fmt.Sprintf("%s.%d", ci.field, ci.index[j])
		}
		res.Problems = append(res.Problems, &bookstore.Error{Code: bookstore.CodeDiscountNotApplicable,
			Field: field, Message: r.Code + ": " + r.Message})
	}
	return nil
}

// allowCreate spends one cart creation from the caller's budget.
func (s *Service) allowCreate(ctx context.Context, customer uuid.UUID) error {
	if s.cfg.CreateLimit == nil {
		return nil
	}
	key := "ip:" + auth.IPBucket(auth.ClientIP(ctx))
	if customer != uuid.Nil {
		key = "customer:" + customer.String()
	}
	ok, retry, err := s.cfg.CreateLimit.Allow(ctx, key)
	if err != nil || ok {
		return nil // an outage of the limiter must not stop shopping
	}
	return &auth.ThrottledError{RetryAfter: retry}
}

// AddLines adds quantities to the cart (a book already there gets the sum), capped at
// the per-line limit and at stock (reported as QUANTITY_LIMIT / INSUFFICIENT_STOCK); a
// book out of stock is not added (OUT_OF_STOCK). Invalid input changes nothing.
func (s *Service) AddLines(ctx context.Context, cat Catalog, id string, customer uuid.UUID, lines []bookstore.CartLineInput) (*Result, error) {
	if !ValidID(id) {
		return nil, bookstore.ErrCartNotFound
	}
	// Ownership is checked inside update, before anything is written: one read fewer.
	apply, err := s.prepareLines(ctx, cat, lines, false)
	if err != nil {
		return nil, err
	}
	return s.update(ctx, id, customer, func(c *bookstore.Cart, problems *[]*bookstore.Error) error {
		return apply.add(c, s.cfg.Limits, problems)
	})
}

// UpdateLines sets quantities (0 removes the line), capped at stock like AddLines.
func (s *Service) UpdateLines(ctx context.Context, cat Catalog, id string, customer uuid.UUID, lines []bookstore.CartLineInput) (*Result, error) {
	if !ValidID(id) {
		return nil, bookstore.ErrCartNotFound
	}
	// Ownership is checked inside update, before anything is written: one read fewer.
	apply, err := s.prepareLines(ctx, cat, lines, true)
	if err != nil {
		return nil, err
	}
	return s.update(ctx, id, customer, func(c *bookstore.Cart, problems *[]*bookstore.Error) error {
		return apply.set(c, s.cfg.Limits, problems)
	})
}

// RemoveLines removes the books' lines (books not in the cart are ignored).
func (s *Service) RemoveLines(ctx context.Context, id string, customer uuid.UUID, books []uuid.UUID) (*Result, error) {
	if len(books) > s.cfg.Limits.MaxLines {
		return nil, &bookstore.Error{Code: bookstore.CodeLineLimit, Field: "bookIds", Message: fmt.Sprintf("at most %d books at once", s.cfg.Limits.MaxLines)}
	}
	if _, err := s.Get(ctx, id, customer); err != nil {
		return nil, err
	}
	return s.update(ctx, id, customer, func(c *bookstore.Cart, _ *[]*bookstore.Error) error {
		c.Lines = slices.DeleteFunc(c.Lines, func(l bookstore.CartLine) bool { return slices.Contains(books, l.BookID) })
		return nil
	})
}

// SetCodes replaces the cart's discount codes. An unknown, expired, inactive or used-up
// code is refused (INVALID_DISCOUNT_CODE) and not kept; a valid code that does not apply
// to the cart as it is (minimum, scope, stacking) is kept and reported
// (DISCOUNT_NOT_APPLICABLE): it applies as soon as the cart qualifies.
func (s *Service) SetCodes(ctx context.Context, cat Catalog, id string, customer uuid.UUID, codes []string) (*Result, error) {
	if _, err := s.Get(ctx, id, customer); err != nil {
		return nil, err
	}
	apply, err := s.prepareCodes(ctx, cat, codes, "codes")
	if err != nil {
		return nil, err
	}
	res, err := s.update(ctx, id, customer, func(c *bookstore.Cart, problems *[]*bookstore.Error) error {
		c.DiscountCodes = apply.set(problems)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.reportInapplicable(ctx, cat, res, apply); err != nil {
		return nil, err
	}
	return res, nil
}

// update runs fn on the cart through the store's compare-and-set, rechecking ownership
// on every attempt. problems are those of the attempt that was stored.
func (s *Service) update(ctx context.Context, id string, customer uuid.UUID, fn func(*bookstore.Cart, *[]*bookstore.Error) error) (*Result, error) {
	var problems []*bookstore.Error
	c, err := s.cfg.Store.Update(ctx, id, func(c *bookstore.Cart) error {
		if !c.OwnedBy(customer) {
			return bookstore.ErrCartNotFound
		}
		problems = problems[:0]
		if err := fn(c, &problems); err != nil {
			return err
		}
		s.touch(c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Result{Cart: c, Problems: problems}, nil
}

// lineInputs are validated input lines with the live data to cap them.
type lineInputs struct {
	lines []bookstore.CartLineInput
	index []int // input position of each line, for error fields
	stock map[uuid.UUID]int64
	books map[uuid.UUID]*bookstore.Book
}

// prepareLines validates input lines (quantities, limits, known books) before the cart
// is touched: any failure here leaves the cart unchanged. Repeated books are summed
// (add) or the last one wins (set).
func (s *Service) prepareLines(ctx context.Context, cat Catalog, in []bookstore.CartLineInput, set bool) (*lineInputs, error) {
	lim := s.cfg.Limits
	if len(in) > lim.MaxLines {
		return nil, &bookstore.Error{Code: bookstore.CodeLineLimit, Field: "lines", Message: fmt.Sprintf("a cart holds at most %d lines", lim.MaxLines)}
	}
	li := &lineInputs{}
	ids := make([]uuid.UUID, 0, len(in))
	for i, l := range in {
		if err := lim.ValidateQuantity(fmt.Sprintf("lines.%d.quantity", i), l.Quantity, set); err != nil {
			return nil, err
		}
		if j := slices.IndexFunc(li.lines, func(x bookstore.CartLineInput) bool { return x.BookID == l.BookID }); j >= 0 {
			if set {
				li.lines[j].Quantity = l.Quantity
			} else {
				li.lines[j].Quantity = min(li.lines[j].Quantity+l.Quantity, lim.MaxQuantity+1)
			}
			continue
		}
		li.lines = append(li.lines, l)
		li.index = append(li.index, i)
		ids = append(ids, l.BookID)
	}
	books, err := cat.Books(ctx, ids)
	if err != nil {
		return nil, err
	}
	for j, l := range li.lines {
		if books[l.BookID] == nil {
			return nil, &bookstore.Error{Code: bookstore.CodeUnknownBook, Field: fmt.Sprintf("lines.%d.bookId", li.index[j]), Message: "no book with this id"}
		}
	}
	stock, err := cat.Stock(ctx, ids)
	if err != nil {
		return nil, err
	}
	li.books, li.stock = books, stock
	return li, nil
}

// put sets the cart's quantity of line j to want, capped at the limit and at stock, and
// reports the cap that bound (only that one, with the quantity the line ends with).
// want 0 removes the line. floor is what the line must keep at least: an add never
// removes or lowers copies already in the cart, even when stock fell below them.
func (li *lineInputs) put(c *bookstore.Cart, j, want, floor int, lim bookstore.CartLimits, problems *[]*bookstore.Error) error {
	l := li.lines[j]
	field := fmt.Sprintf("lines.%d.quantity", li.index[j])
	at := c.Line(l.BookID)
	got := min(want, lim.MaxQuantity)
	stock := int(max(min(li.stock[l.BookID], int64(lim.MaxQuantity)), 0))
	short := stock < got
	got = max(min(got, stock), floor)
	title := li.books[l.BookID].Title
	switch {
	case short && stock == 0:
		msg := fmt.Sprintf("%q is out of stock", title)
		if got > 0 {
			msg += fmt.Sprintf("; the line holds %d", got)
		}
		*problems = append(*problems, &bookstore.Error{Code: bookstore.CodeOutOfStock, Field: field, Message: msg})
	case short:
		*problems = append(*problems, &bookstore.Error{Code: bookstore.CodeInsufficientStock, Field: field,
			Message: fmt.Sprintf("only %d of %q available; the line holds %d", stock, title, got)})
	case want > lim.MaxQuantity:
		*problems = append(*problems, &bookstore.Error{Code: bookstore.CodeQuantityLimit, Field: field,
			Message: fmt.Sprintf("at most %d copies per line; the line holds %d", lim.MaxQuantity, got)})
	}
	switch {
	case got == 0 && at >= 0:
		c.Lines = slices.Delete(c.Lines, at, at+1)
	case got == 0:
	case at >= 0:
		c.Lines[at].Quantity = got
	default:
		if len(c.Lines) >= lim.MaxLines {
			return &bookstore.Error{Code: bookstore.CodeLineLimit, Field: "lines", Message: fmt.Sprintf("a cart holds at most %d lines", lim.MaxLines)}
		}
		c.Lines = append(c.Lines, bookstore.CartLine{BookID: l.BookID, Quantity: got})
	}
	return nil
}

func (li *lineInputs) add(c *bookstore.Cart, lim bookstore.CartLimits, problems *[]*bookstore.Error) error {
	for j, l := range li.lines {
		have := 0
		if at := c.Line(l.BookID); at >= 0 {
			have = c.Lines[at].Quantity
		}
		if err := li.put(c, j, have+l.Quantity, have, lim, problems); err != nil {
			return err
		}
	}
	return nil
}

// set applies removals first, so that at the line limit the order of the input does not
// decide whether a new line fits.
func (li *lineInputs) set(c *bookstore.Cart, lim bookstore.CartLimits, problems *[]*bookstore.Error) error {
	for _, removals := range []bool{true, false} {
		for j, l := range li.lines {
			if (l.Quantity == 0) != removals {
				continue
			}
			if err := li.put(c, j, l.Quantity, 0, lim, problems); err != nil {
				return err
			}
		}
	}
	return nil
}

// codeInputs are normalised codes with the promotions found for them.
type codeInputs struct {
	codes []string
	index []int  // input position of each code (its first occurrence), for error fields
	field string // the input field: codes or discountCodes
	promo map[string]*bookstore.Promotion
	now   time.Time
}

func (s *Service) prepareCodes(ctx context.Context, cat Catalog, in []string, field string) (*codeInputs, error) {
	if len(in) > s.cfg.Limits.MaxCodes {
		return nil, bookstore.InvalidField(field, "at most %d discount codes", s.cfg.Limits.MaxCodes)
	}
	ci := &codeInputs{now: s.cfg.Now(), field: field}
	for i, c := range in {
		n := bookstore.NormalizeCode(c)
		if !bookstore.WellFormedCode(n) {
			return nil, &bookstore.Error{Code: bookstore.CodeInvalidDiscountCode, Field: fmt.Sprintf("%s.%d", field, i),
				Message: fmt.Sprintf("malformed discount code: 1 to %d letters, digits, - and _", bookstore.MaxCodeLen)}
		}
		if !slices.Contains(ci.codes, n) {
			ci.codes = append(ci.codes, n)
			ci.index = append(ci.index, i)
		}
	}
	p, err := cat.Promotions(ctx, ci.codes)
	if err != nil {
		return nil, err
	}
	ci.promo = p
	return ci, nil
}

// set returns the codes to keep and reports the refused ones.
func (ci *codeInputs) set(problems *[]*bookstore.Error) []string {
	var keep []string
	for j, code := range ci.codes {
		p := ci.promo[code]
		msg := "unknown discount code"
		if p != nil {
			msg = p.Redeemable(ci.now)
		}
		if msg != "" {
			*problems = append(*problems, &bookstore.Error{Code: bookstore.CodeInvalidDiscountCode, Field: fmt.Sprintf("%s.%d", ci.field, ci.index[j]), Message: code + ": " + msg})
			continue
		}
		keep = append(keep, code)
	}
	return keep
}
