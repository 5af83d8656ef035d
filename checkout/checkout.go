// Package checkout turns a cart into a paid order without overselling, losing stock or
// charging twice. It is a saga of two database transactions around one PSP call:
//
//  1. Idempotency: the client's key, scoped to the customer (or the guest's email), is
//     stored with a hash of the request in the transaction that creates the order. A
//     repeat with the same request returns the first order and charges nothing; the
//     same key with another request is IDEMPOTENCY_KEY_REUSED.
//  2. Tx 1 (serializable, store.DB.ExecuteTx): re-price the cart from the database with
//     bookstore.Price, insert the order PENDING_PAYMENT with its lines and an outbox
//     event, claim the promotion uses, and take the stock last (so the hot stock rows
//     stay locked only until commit). Stock is taken before any money moves.
//  3. The PSP charge (authorize + capture), keyed by the order id, with a timeout.
//  4. Tx 2 (Settle): PAID, or PAYMENT_FAILED with the stock and promotion uses given
//     back and the cart left as it was. The Stripe webhook and the recovery loop settle
//     through the same function, so they settle an order once whoever comes first: PAID
//     by one conditional statement when it can (store.Orders.SettlePaid), everything
//     else under the order's row lock.
//  5. Recovery (Recoverer): orders left PENDING_PAYMENT by a crash are resolved by
//     asking the PSP (Lookup, then Void: see payment.Provider).
package checkout

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/cart"
	"github.com/shopfront/bookstore/identity"
	"github.com/shopfront/bookstore/payment"
	"github.com/shopfront/bookstore/pii"
	"github.com/shopfront/bookstore/store"
)

// Carts is what checkout needs of the cart service.
type Carts interface {
	Get(ctx context.Context, id string, customer uuid.UUID) (*bookstore.Cart, error)
	ShippingMethod(code string) *bookstore.ShippingMethod
	Tax() bookstore.TaxRates
	Delete(ctx context.Context, id string) error
}

// Customers gives a signed-in customer's email (the order's contact when the input
// names none): *identity.Service.
type Customers interface {
	Customer(ctx context.Context, id uuid.UUID) (*identity.Customer, error)
}

// Config configures the Service.
type Config struct {
	DB        *store.DB
	Carts     Carts
	Customers Customers
	PSP       payment.Provider
	// PII seals an order's personal data; Index makes the email's blind index (guest
	// key scope, promotion redeemer) and derives order access tokens.
	PII   *pii.Keyring
	Index *pii.BlindIndex
	Log   *slog.Logger
	// PSPTimeout bounds the charge call (default 20 s); an unanswered charge is voided.
	PSPTimeout time.Duration
	Now        func() time.Time
	// AfterCharge, when set, runs between the PSP's answer and tx 2: the crash test
	// stops the process there (BOOKSTORE_FAILPOINT_AFTER_CHARGE in cmd/bookstore).
	AfterCharge func(orderID uuid.UUID)
	// Admission bounds the checkouts placing their orders at once (zero: no bound).
	Admission Admission
}

// Service runs checkouts and settles their payments.
type Service struct {
	cfg  Config
	gate *gate
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Carts == nil || cfg.PSP == nil || cfg.PII == nil || cfg.Index == nil {
		return nil, errors.New("checkout: DB, Carts, PSP, PII and Index are required")
	}
	if cfg.PSPTimeout <= 0 {
		cfg.PSPTimeout = 20 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Service{cfg: cfg, gate: newGate(cfg.Admission)}, nil
}

// PSP is the payment service provider checkout charges (refunds go to the same one).
func (s *Service) PSP() payment.Provider { return s.cfg.PSP }

// PSPTimeout is the charge call's timeout in force.
func (s *Service) PSPTimeout() time.Duration { return s.cfg.PSPTimeout }

// MaxKeyLen bounds an idempotency key (Stripe allows 255 characters).
const MaxKeyLen = 255

// Input is a checkout request.
type Input struct {
	CartID         string
	IdempotencyKey string
	// Email is the order's contact; required for guests, the account's by default.
	Email           string
	ShippingAddress bookstore.Address
	ShippingMethod  string
	Method          payment.Method
	Token           string
	// ExpectedTotalCents, when set, is the total the client showed the shopper: any
	// other total fails with PRICE_CHANGED before anything is charged.
	ExpectedTotalCents *int64
}

// Result is a checkout's outcome. Problems are the expected business failures
// (userErrors); Order is nil when no order was placed, else the order as it stands
// (PAID, PAYMENT_FAILED with the reason among Problems, or PENDING_PAYMENT while the
// PSP has not answered). TotalCents is the current total on PRICE_CHANGED.
type Result struct {
	Order *bookstore.Order
	// AccessToken lets a guest read the order (with its email) later; it is the same
	// token on a replay.
	AccessToken string
	Problems    []*bookstore.Error
	// Replayed: the key was seen before and this is the first request's order.
	Replayed   bool
	TotalCents *int64
}

func problem(code, field, format string, args ...any) *Result {
	return &Result{Problems: []*bookstore.Error{{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}}}
}

// abort rolls tx 1 back with userErrors.
type abort struct{ res *Result }

func (a *abort) Error() string { return "checkout aborted: " + a.res.Problems[0].Message }

// errReplay: a concurrent request with the same key committed first.
var errReplay = errors.New("checkout: key used by a concurrent request")

// keyHeld ends tx 1 when the key is held already, by the checkout to replay.
type keyHeld struct{ key *store.CheckoutKey }

func (*keyHeld) Error() string { return "checkout: the idempotency key is held by an earlier checkout" }

// Checkout places and pays an order for the cart. customer is the signed-in customer or
// uuid.Nil for a guest. It returns an error only for failures that are not the
// shopper's (the database down): every expected failure is in Result.Problems.
func (s *Service) Checkout(ctx context.Context, customer uuid.UUID, in Input) (*Result, error) {
	if res := validateKey(in.IdempotencyKey); res != nil {
		return res, nil
	}
	if !cart.ValidID(in.CartID) {
		return problem(bookstore.CodeCartNotFound, "cartId", "no such cart"), nil
	}
	email, res, err := s.contact(ctx, customer, in.Email)
	if res != nil || err != nil {
		return res, err
	}
	redeemer, err := s.redeemer(ctx, customer, in.Email, email)
	if err != nil {
		return nil, err
	}
	addr := in.ShippingAddress
	if err := identity.NormalizeAddress(&addr); err != nil {
		return invalidAddress(err), nil
	}
	ship := s.cfg.Carts.ShippingMethod(in.ShippingMethod)
	if ship == nil {
		return problem(bookstore.CodeBadUserInput, "shippingMethod", "unknown shipping method %q", truncate(in.ShippingMethod, 40)), nil
	}
	if !in.Method.Valid() {
		return problem(bookstore.CodeBadUserInput, "payment.method", "unknown payment method"), nil
	}
	if in.Token == "" || len(in.Token) > payment.MaxTokenLen {
		return problem(bookstore.CodeBadUserInput, "payment.token", "the payment token must be 1 to %d characters", payment.MaxTokenLen), nil
	}
	emailIndex := s.cfg.Index.Email(email)
	scope := keyScope(customer, emailIndex)
	hash := requestHash(in, customer, email, addr)

	// From the first read to tx 1's commit: the database work admission bounds.
	release, err := s.gate.enter(ctx)
	if err != nil {
		return nil, err
	}
	placed := false
	defer func() {
		if !placed {
			release()
		}
	}()

	// The key is read with tx 1's first statements (a replay whose cart is still there:
	// its payment failed); a cart that is gone or empty may be a replay's too (a paid
	// order's cart is deleted), so the key is looked up before that is answered.
	orReplay := func(res *Result) (*Result, error) {
		k, err := s.cfg.DB.CheckoutKeys.Get(ctx, scope, in.IdempotencyKey)
		if err == nil {
			return s.replay(ctx, k, hash, in.CartID)
		}
		if bookstore.ErrorCode(err) != bookstore.CodeNotFound {
			return nil, err
		}
		return res, nil
	}
	c, err := s.cfg.Carts.Get(ctx, in.CartID, customer)
	if errors.Is(err, bookstore.ErrCartNotFound) || bookstore.ErrorCode(err) == bookstore.CodeNotFound {
		return orReplay(problem(bookstore.CodeCartNotFound, "cartId", "no such cart"))
	}
	if err != nil {
		return nil, err
	}
	if len(c.Lines) == 0 {
		return orReplay(problem(bookstore.CodeEmptyCart, "cartId", "the cart is empty"))
	}

	id := uuid.New()
	rec := &store.OrderRecord{
		ID: id, Number: newNumber(), EmailIndex: emailIndex, AccessHash: accessHash(s.accessToken(id)),
		CartRef: cartRef(in.CartID), Status: bookstore.OrderPendingPayment, ShippingMethod: ship.Code,
		Country: addr.Country, Payment: bookstore.OrderPayment{Method: string(in.Method), Status: string(payment.StatusPending)},
	}
	if customer != uuid.Nil {
		rec.CustomerID = &customer
	}
	contact, err := json.Marshal(orderContact{Email: email, Address: addr, CartID: in.CartID})
	if err != nil {
		return nil, err
	}
	if rec.ContactEnc, err = s.cfg.PII.Encrypt(contact, contactAAD(id)); err != nil {
		return nil, fmt.Errorf("seal order contact: %w", err)
	}

	err = s.cfg.DB.ExecuteTx(ctx, func(tx pgx.Tx) error {
		return s.place(ctx, tx, c, in, ship, scope, hash, redeemer, rec)
	})
	var ab *abort
	var held *keyHeld
	switch {
	case errors.As(err, &held):
		return s.replay(ctx, held.key, hash, in.CartID)
	case errors.As(err, &ab):
		if ab.res.Problems[0].Code == bookstore.CodeCheckoutInProgress {
			// A concurrent request with the same key may have placed the cart's order:
			// then this is its replay, not a conflict.
			if k, err := s.cfg.DB.CheckoutKeys.Get(ctx, scope, in.IdempotencyKey); err == nil {
				return s.replay(ctx, k, hash, in.CartID)
			}
		}
		return ab.res, nil
	case errors.Is(err, errReplay):
		k, err := s.cfg.DB.CheckoutKeys.Get(ctx, scope, in.IdempotencyKey)
		if err != nil {
			return nil, err
		}
		return s.replay(ctx, k, hash, in.CartID)
	case err != nil:
		return nil, err
	}
	placed = true
	release()
	order := s.orderOf(rec, email, addr)

	// From here the order exists and holds stock: finish the saga even if the client
	// goes away, within the PSP timeout.
	ctx = context.WithoutCancel(ctx)
	rec, err = s.pay(ctx, rec, in)
	if err != nil {
		// The order stays PENDING_PAYMENT; the recovery loop resolves it.
		s.cfg.Log.ErrorContext(ctx, "checkout: payment not settled; left to recovery", "order", id, "err", err)
	}
	order.Status, order.Payment, order.PaidAt, order.UpdatedAt = rec.Status, rec.Payment, rec.PaidAt, rec.UpdatedAt
	out := &Result{Order: order, AccessToken: s.accessToken(id)}
	if rec.Status == bookstore.OrderPaymentFailed {
		out.Problems = append(out.Problems, paymentProblem(rec.Payment))
	}
	return out, nil
}

// place is tx 1.
func (s *Service) place(ctx context.Context, tx pgx.Tx, c *bookstore.Cart, in Input, ship *bookstore.ShippingMethod,
	scope, hash, redeemer []byte, rec *store.OrderRecord) error {
	db := s.cfg.DB
	ids := make([]uuid.UUID, len(c.Lines))
	for i, l := range c.Lines {
		ids[i] = l.BookID
	}
	books, now, key, err := db.Books.BooksInAt(ctx, tx, ids, scope, in.IdempotencyKey)
	if err != nil {
		return err
	}
	if key != nil {
		return &keyHeld{key}
	}
	pin := bookstore.PriceInput{Lines: c.Lines, Books: make(map[uuid.UUID]*bookstore.Book, len(books)),
		Codes: c.DiscountCodes, Shipping: ship, Country: rec.Country, Tax: s.cfg.Carts.Tax(), Now: s.cfg.Now()}
	for _, b := range books {
		pin.Books[b.ID] = b
	}
	if len(c.DiscountCodes) > 0 {
		promos, err := db.Promotions.ByCodesIn(ctx, tx, c.DiscountCodes)
		if err != nil {
			return err
		}
		pin.Promotions = make(map[string]*bookstore.Promotion, len(promos))
		for _, p := range promos {
			pin.Promotions[p.Code] = p
			if p.CategoryID != nil && pin.BookCategories == nil {
				if pin.BookCategories, err = db.Categories.CategoriesIn(ctx, tx, ids); err != nil {
					return err
				}
			}
		}
	}
	// Stock is not read: Take checks it with the conditional update. Price's stock
	// warnings are therefore meaningless here and ignored.
	p := bookstore.Price(pin)
	var problems []*bookstore.Error
	for _, l := range c.Lines {
		if pin.Books[l.BookID] == nil {
			problems = append(problems, &bookstore.Error{Code: bookstore.CodeUnknownBook, Field: "cartId",
				Message: fmt.Sprintf("book %s in the cart is no longer sold; remove it", l.BookID)})
		}
	}
	for _, r := range p.Codes {
		if !r.Applicable {
			problems = append(problems, &bookstore.Error{Code: bookstore.CodeDiscountNotApplicable, Field: "cartId",
				Message: fmt.Sprintf("discount code %s: %s; remove it from the cart", r.Code, r.Message)})
		}
	}
	if len(problems) > 0 {
		return &abort{&Result{Problems: problems}}
	}
	if len(p.Lines) == 0 {
		return &abort{problem(bookstore.CodeEmptyCart, "cartId", "the cart is empty")}
	}
	if p.Cost.TotalCents <= 0 {
		// A PSP refuses a zero charge; free orders are not offered.
		return &abort{problem(bookstore.CodeDiscountNotApplicable, "cartId", "the discounts leave nothing to pay")}
	}
	if in.ExpectedTotalCents != nil && *in.ExpectedTotalCents != p.Cost.TotalCents {
		total := p.Cost.TotalCents
		res := problem(bookstore.CodePriceChanged, "expectedTotalCents",
			"the total is now %d cents (%s), not %d: review the cart and confirm the new total",
			total, p.Cost.Currency, *in.ExpectedTotalCents)
		res.TotalCents = &total
		return &abort{res}
	}
	rec.Cost = p.Cost
	rec.Lines = make([]bookstore.OrderLine, len(p.Lines))
	for i, l := range p.Lines {
		rec.Lines[i] = bookstore.OrderLine{BookID: l.Book.ID, Title: l.Book.Title, Quantity: l.Quantity,
			UnitPriceCents: l.UnitPriceCents, TotalCents: l.TotalCents}
	}
	rec.Discounts = rec.Discounts[:0]
	for _, r := range p.Codes {
		if r.Applicable {
			rec.Discounts = append(rec.Discounts, bookstore.OrderDiscount{PromotionID: r.Promotion.ID, Code: r.Code, AmountCents: r.DiscountCents})
		}
	}
	// The order, its lines, event and key, and its stock: one round trip. The key
	// references the order, so it follows it; a concurrent request with the same key
	// that committed first makes this one a replay.
	err = db.Orders.Place(ctx, tx, rec, store.PlaceKey{Scope: scope, Key: in.IdempotencyKey, Hash: hash}, now)
	var short *store.ShortageError
	switch {
	case errors.Is(err, store.ErrCartCheckedOut):
		return &abort{problem(bookstore.CodeCheckoutInProgress, "cartId",
			"this cart is being checked out or was checked out already: retry with that checkout's idempotency key to get its order")}
	case errors.Is(err, store.ErrKeyTaken):
		return errReplay
	case errors.As(err, &short):
		return &abort{shortages(short, pin.Books)}
	case err != nil:
		return err
	}
	// Promotion uses after the stock, in the order Settle gives them back.
	for _, d := range rec.Discounts {
		if err := db.Promotions.Claim(ctx, tx, d.PromotionID, rec.ID, redeemer, pin.Now); err != nil {
			if errors.Is(err, store.ErrPromotionUnavailable) {
				return &abort{problem(bookstore.CodeDiscountNotApplicable, "cartId",
					"discount code %s is no longer available; remove it from the cart", d.Code)}
			}
			return err
		}
	}
	return nil
}

func shortages(e *store.ShortageError, books map[uuid.UUID]*bookstore.Book) *Result {
	res := &Result{}
	for _, sh := range e.Shortages {
		title := sh.BookID.String()
		if b := books[sh.BookID]; b != nil {
			title = fmt.Sprintf("%q", b.Title)
		}
		pe := &bookstore.Error{Code: bookstore.CodeInsufficientStock, Field: "cartId",
			Message: fmt.Sprintf("only %d of %s available (the cart has %d)", sh.Available, title, sh.Wanted)}
		if sh.Available == 0 {
			pe.Code, pe.Message = bookstore.CodeOutOfStock, fmt.Sprintf("%s is out of stock", title)
		}
		res.Problems = append(res.Problems, pe)
	}
	return res
}

// pay is steps 3 and 4: charge, and settle with the answer. On a timeout or any answer
// that is not definite, it voids the key and settles with Void's answer; an error means
// the order could not be settled now (the recovery loop will).
func (s *Service) pay(ctx context.Context, rec *store.OrderRecord, in Input) (*store.OrderRecord, error) {
	req := payment.ChargeRequest{IdempotencyKey: rec.ID.String(), AmountCents: rec.Cost.TotalCents,
		Currency: rec.Cost.Currency, Method: in.Method, Token: in.Token}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.PSPTimeout)
	ch, err := s.cfg.PSP.Charge(cctx, req)
	cancel()
	if s.cfg.AfterCharge != nil {
		s.cfg.AfterCharge(rec.ID)
	}
	switch {
	case err == nil:
	case payment.Definite(err):
		// Refused before any money could move (an unknown token): fail the order.
		var be *bookstore.Error
		errors.As(err, &be)
		ch = &payment.Charge{IdempotencyKey: req.IdempotencyKey, Status: payment.StatusFailed,
			FailureCode: bookstore.CodePaymentError, FailureMessage: be.Message}
		if be.Code == bookstore.CodePaymentDeclined || be.Code == bookstore.CodeInsufficientFunds {
			ch.FailureCode = be.Code
		}
	default:
		s.cfg.Log.WarnContext(ctx, "checkout: charge outcome unknown; voiding", "order", rec.ID, "err", err)
		vctx, cancel := context.WithTimeout(ctx, s.cfg.PSPTimeout)
		ch, err = s.cfg.PSP.Void(vctx, req.IdempotencyKey)
		cancel()
		if err != nil {
			return rec, fmt.Errorf("void after an unknown charge outcome: %w", err)
		}
		if ch.Status == payment.StatusFailed && ch.FailureCode == "" {
			ch.FailureCode = bookstore.CodePaymentError
			ch.FailureMessage = "the payment service did not answer in time; nothing was charged, try again"
		}
	}
	if ch.Status == payment.StatusPending {
		return rec, nil
	}
	return s.settle(ctx, rec.ID, ch, in.CartID)
}

// Settle is tx 2, shared by the checkout request, the PSP webhook and the recovery
// loop: it records the PSP's definite answer for the order. Under the order's row
// lock: a PENDING_PAYMENT order becomes PAID (charge succeeded), or PAYMENT_FAILED
// with its stock and promotion uses given back (failed, or refunded already); an order
// already settled is returned unchanged, so racing callers settle it once. A pending
// charge changes nothing.
//
// The common case, a succeeded charge for a PENDING_PAYMENT order of that amount, takes
// one statement (store.Orders.SettlePaid) instead of the locked transaction; when that
// changes nothing (settled already, by a racing caller or not; another amount; no such
// order) the locked path below decides, as it always did.
func (s *Service) Settle(ctx context.Context, orderID uuid.UUID, ch *payment.Charge) (*store.OrderRecord, error) {
	return s.settle(ctx, orderID, ch, "")
}

// settle is Settle by a caller that knows the order's cart (the checkout request): when
// the carts are kept in the order's database, the one statement that pays the order
// deletes it too.
func (s *Service) settle(ctx context.Context, orderID uuid.UUID, ch *payment.Charge, cartID string) (*store.OrderRecord, error) {
	if ch.Status == payment.StatusSucceeded {
		inDB := ""
		if cs, ok := s.cfg.Carts.(interface{ Store() cart.Store }); ok && cs.Store() == cart.Store(s.cfg.DB.Carts) {
			inDB = cartID
		}
		o, ok, err := s.cfg.DB.Orders.SettlePaid(ctx, orderID, bookstore.OrderPayment{Status: string(ch.Status), Reference: ch.ID,
			Brand: ch.Brand, Last4: ch.Last4, Wallet: ch.Wallet}, ch.AmountCents, ch.Currency, inDB)
		if err != nil {
			return nil, err
		}
		if ok {
			if inDB == "" {
				s.deleteCart(ctx, o)
			}
			return o, nil
		}
	}
	var out *store.OrderRecord
	var refund, paid bool
	err := s.cfg.DB.ExecuteTx(ctx, func(tx pgx.Tx) error {
		refund, paid = false, false
		o, err := s.cfg.DB.Orders.Lock(ctx, tx, orderID)
		if err != nil {
			return err
		}
		out = o
		if o.Status != bookstore.OrderPendingPayment || ch.Status == payment.StatusPending {
			refund = o.Status == bookstore.OrderPaymentFailed && ch.Status == payment.StatusSucceeded
			return nil
		}
		p := o.Payment
		p.Status, p.Reference = string(ch.Status), ch.ID
		if ch.Brand != "" {
			p.Brand, p.Last4, p.Wallet = ch.Brand, ch.Last4, ch.Wallet
		}
		if ch.Status == payment.StatusSucceeded {
			if ch.AmountCents != 0 && (ch.AmountCents != o.Cost.TotalCents || !strings.EqualFold(ch.Currency, o.Cost.Currency)) {
				return fmt.Errorf("order %s: the PSP charged %d %s for a total of %d %s", o.ID,
					ch.AmountCents, ch.Currency, o.Cost.TotalCents, o.Cost.Currency)
			}
			paid = true
			return s.cfg.DB.Orders.Settle(ctx, tx, o, bookstore.OrderPaid, p)
		}
		p.FailureCode, p.FailureMessage = ch.FailureCode, ch.FailureMessage
		if ch.Status == payment.StatusRefunded {
			p.FailureCode, p.FailureMessage = bookstore.CodePaymentError, "the payment was refunded"
		}
		if p.FailureCode == "" {
			p.FailureCode = bookstore.CodePaymentError
		}
		if p.FailureMessage == "" {
			p.FailureMessage = payment.FailureMessage(p.FailureCode)
		}
		if err := s.cfg.DB.Orders.LoadItems(ctx, tx, o); err != nil {
			return err
		}
		if err := s.cfg.DB.Inventory.Restore(ctx, tx, o.Demand(), "payment failed", &o.ID); err != nil {
			return err
		}
		for _, d := range o.Discounts {
			if err := s.cfg.DB.Promotions.Release(ctx, tx, d.PromotionID, o.ID); err != nil {
				return err
			}
		}
		return s.cfg.DB.Orders.Settle(ctx, tx, o, bookstore.OrderPaymentFailed, p)
	})
	if err != nil {
		return nil, err
	}
	if paid {
		s.deleteCart(ctx, out)
	}
	if refund {
		// Cannot happen while Void is definite; if a PSP breaks that promise, the money
		// goes back rather than paying for an order whose stock was released.
		s.cfg.Log.ErrorContext(ctx, "checkout: a charge succeeded for an order that failed; refunding", "order", orderID)
		if _, err := s.cfg.PSP.Refund(ctx, orderID.String()); err != nil {
			return out, fmt.Errorf("refund the late charge of order %s: %w", orderID, err)
		}
	}
	return out, nil
}

// deleteCart deletes the cart a paid order was placed from, whoever settled it (the
// request, the webhook, the recovery loop). A failure only leaves clutter: the cart
// cannot be checked out again (orders_cart_live), and the replay of the checkout or the
// cart's expiry deletes it.
func (s *Service) deleteCart(ctx context.Context, rec *store.OrderRecord) {
	plain, err := s.cfg.PII.Decrypt(rec.ContactEnc, contactAAD(rec.ID))
	var c orderContact
	if err == nil {
		err = json.Unmarshal(plain, &c)
	}
	if err == nil && c.CartID != "" {
		err = s.cfg.Carts.Delete(ctx, c.CartID)
	}
	if err != nil {
		s.cfg.Log.WarnContext(ctx, "checkout: paid cart not deleted", "order", rec.ID, "err", err)
	}
}

// HandleEvent settles the order of a verified, deduplicated PSP notification (the
// Stripe webhook). Events for keys that are not orders are ignored.
func (s *Service) HandleEvent(ctx context.Context, ev payment.Event) error {
	id, err := uuid.Parse(ev.Charge.IdempotencyKey)
	if err != nil {
		return nil
	}
	ch := ev.Charge
	switch ev.Type {
	case payment.EventSucceeded:
		ch.Status = payment.StatusSucceeded
		// Events carry no card details; the PSP's own record has them.
		if full, err := s.cfg.PSP.Lookup(ctx, ch.IdempotencyKey); err == nil && full.Status == payment.StatusSucceeded {
			ch = *full
		}
	case payment.EventFailed:
		ch.Status = payment.StatusFailed
	default:
		return nil
	}
	_, err = s.Settle(ctx, id, &ch)
	if bookstore.ErrorCode(err) == bookstore.CodeNotFound {
		return nil
	}
	return err
}

// replay answers a request whose key was seen: the first request's order, or
// IDEMPOTENCY_KEY_REUSED when the requests differ. A paid order's cart is deleted
// again: when the recovery loop or the webhook settled the order (the first request
// died), nobody else can, since orders keep only a hash of the cart's id.
func (s *Service) replay(ctx context.Context, k *store.CheckoutKey, hash []byte, cartID string) (*Result, error) {
	if !hmac.Equal(k.RequestHash, hash) {
		return problem(bookstore.CodeIdempotencyKeyReused, "idempotencyKey",
			"this idempotency key was used for another checkout request; use a new key for a new request"), nil
	}
	o, err := s.Order(ctx, k.OrderID)
	if err != nil {
		return nil, err
	}
	if o.Status == bookstore.OrderPaid {
		// The hash covers the cart id, so this is the order's cart.
		if err := s.cfg.Carts.Delete(ctx, cartID); err != nil {
			s.cfg.Log.WarnContext(ctx, "checkout: paid cart not deleted on replay", "order", o.ID, "err", err)
		}
	}
	res := &Result{Order: o, AccessToken: s.accessToken(o.ID), Replayed: true}
	if o.Status == bookstore.OrderPaymentFailed {
		res.Problems = append(res.Problems, paymentProblem(o.Payment))
	}
	return res, nil
}

// Order reads an order and opens its personal data. Callers authorize first.
func (s *Service) Order(ctx context.Context, id uuid.UUID) (*bookstore.Order, error) {
	rec, err := s.cfg.DB.Orders.ByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.Open(rec)
}

func (s *Service) orderOf(rec *store.OrderRecord, email string, addr bookstore.Address) *bookstore.Order {
	return &bookstore.Order{ID: rec.ID, Number: rec.Number, CustomerID: rec.CustomerID, Status: rec.Status,
		Email: email, ShippingAddress: addr, ShippingMethod: rec.ShippingMethod, Lines: rec.Lines,
		Discounts: rec.Discounts, Cost: rec.Cost, Payment: rec.Payment, CreatedAt: rec.CreatedAt,
		UpdatedAt: rec.UpdatedAt, PaidAt: rec.PaidAt}
}

// AccessToken returns the guest access token of an order (also for its owner to share).
func (s *Service) AccessToken(id uuid.UUID) string { return s.accessToken(id) }

// CheckAccess reports whether token is the order's access token.
func (s *Service) CheckAccess(o *store.OrderRecord, token string) bool {
	return hmac.Equal(o.AccessHash, accessHash(token))
}

// accessToken derives the order's access token from the blind-index key: the same on
// every replay of the checkout, never stored (only its hash is).
func (s *Service) accessToken(id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString(s.cfg.Index.Email("order-access-token\x00" + id.String()))
}

func accessHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// contact is the order's email: the input's, or the signed-in customer's.
func (s *Service) contact(ctx context.Context, customer uuid.UUID, email string) (string, *Result, error) {
	if strings.TrimSpace(email) == "" {
		if customer == uuid.Nil {
			return "", problem(bookstore.CodeInvalidAddress, "email", "an email is required to check out as a guest"), nil
		}
		if s.cfg.Customers == nil {
			return "", problem(bookstore.CodeInvalidAddress, "email", "an email is required"), nil
		}
		c, err := s.cfg.Customers.Customer(ctx, customer)
		if err != nil {
			return "", nil, err
		}
		return c.Email, nil, nil
	}
	e, err := identity.ValidateEmail(email)
	if err != nil {
		return "", invalidAddress(err), nil
	}
	return e, nil, nil
}

// redeemer is who a per-customer promotion limit counts: the blind index of the
// account's email for a signed-in customer, whatever contact email the order gives (else
// a customer could take a once-per-customer code again with "ann+2@..."), and of the
// order's email for a guest, so that a guest checkout with an account's email is that
// account's use too.
func (s *Service) redeemer(ctx context.Context, customer uuid.UUID, given, email string) ([]byte, error) {
	if customer == uuid.Nil || strings.TrimSpace(given) == "" {
		return s.cfg.Index.Email(email), nil // a guest, or the account's email already
	}
	if s.cfg.Customers == nil {
		return keyScope(customer, nil), nil
	}
	c, err := s.cfg.Customers.Customer(ctx, customer)
	if err != nil {
		return nil, err
	}
	return s.cfg.Index.Email(c.Email), nil
}

func invalidAddress(err error) *Result {
	var be *bookstore.Error
	if !errors.As(err, &be) {
		return problem(bookstore.CodeInvalidAddress, "shippingAddress", "invalid address")
	}
	field := "shippingAddress." + be.Field
	if be.Field == "email" {
		field = "email"
	}
	return problem(bookstore.CodeInvalidAddress, field, "%s", be.Message)
}

func paymentProblem(p bookstore.OrderPayment) *bookstore.Error {
	code := p.FailureCode
	if code != bookstore.CodePaymentDeclined && code != bookstore.CodeInsufficientFunds {
		code = bookstore.CodePaymentError
	}
	msg := p.FailureMessage
	if msg == "" {
		msg = payment.FailureMessage(code)
	}
	return &bookstore.Error{Code: code, Field: "payment", Message: msg}
}

func validateKey(k string) *Result {
	if k == "" || len(k) > MaxKeyLen {
		return problem(bookstore.CodeBadUserInput, "idempotencyKey", "the idempotency key must be 1 to %d characters", MaxKeyLen)
	}
	for _, r := range k {
		if !unicode.IsPrint(r) || r > unicode.MaxASCII {
			return problem(bookstore.CodeBadUserInput, "idempotencyKey", "the idempotency key must be printable ASCII (a UUID is best)")
		}
	}
	return nil
}

// orderContact is the sealed personal data of an order.
type orderContact struct {
	Email   string            `json:"email"`
	Address bookstore.Address `json:"address"`
	// CartID is the cart the order was placed from (a guest cart's id is a
	// capability, so it is sealed too): whoever settles the order PAID deletes it.
	CartID string `json:"cartId,omitempty"`
}

// contactAAD binds an order's sealed contact to its row.
func contactAAD(id uuid.UUID) []byte { return pii.AAD("orders", "contact_enc", id.String()) }

func keyScope(customer uuid.UUID, emailIndex []byte) []byte {
	if customer != uuid.Nil {
		return append([]byte("c:"), customer[:]...)
	}
	return append([]byte("g:"), emailIndex...)
}

func cartRef(id string) []byte {
	h := sha256.Sum256([]byte("cart\x00" + id))
	return h[:]
}

// requestHash identifies what the request asks for (after normalisation), to tell a
// retry from a key reused for another request. The token is hashed with the rest and
// never stored.
func requestHash(in Input, customer uuid.UUID, email string, a bookstore.Address) []byte {
	h := sha256.New()
	var n [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	expected := ""
	if in.ExpectedTotalCents != nil {
		expected = fmt.Sprint(*in.ExpectedTotalCents)
	}
	for _, f := range []string{in.CartID, customer.String(), strings.ToLower(email), a.Recipient, a.Line1, a.Line2, a.City,
		a.Region, a.PostalCode, a.Country, a.Phone, strings.ToUpper(in.ShippingMethod), string(in.Method), in.Token, expected} {
		field(f)
	}
	return h.Sum(nil)
}

// Order numbers: "BK-" and 12 characters of Crockford's base32 (60 random bits), easy
// to read out on the phone and unguessable enough not to count orders by. A collision
// (about one in two million after a million orders) fails that checkout's transaction
// on orders_number_key; the client's retry with the same key places the order.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func newNumber() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	out := []byte("BK-")
	for i, c := range b {
		if i == 6 {
			out = append(out, '-')
		}
		out = append(out, crockford[c&31])
	}
	return string(out)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:min(len(r), n)]) + "…"
}

// Find returns the order if the caller may see it: the order's customer (customer is
// the signed-in caller, uuid.Nil for none), or anyone presenting the order's email and
// access token. Everyone else gets the same NOT_FOUND as for an unknown id.
func (s *Service) Find(ctx context.Context, id, customer uuid.UUID, email, token string) (*bookstore.Order, error) {
	notFound := bookstore.Errorf(bookstore.CodeNotFound, "no such order")
	rec, err := s.cfg.DB.Orders.ByID(ctx, id)
	if bookstore.ErrorCode(err) == bookstore.CodeNotFound {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	owner := customer != uuid.Nil && rec.CustomerID != nil && *rec.CustomerID == customer
	if !owner {
		if token == "" || email == "" || len(email) > 254 || len(token) > 128 {
			return nil, notFound
		}
		// Both compared in constant time, and both always: which one was wrong is not told.
		okToken := hmac.Equal(rec.AccessHash, accessHash(token))
		okEmail := hmac.Equal(rec.EmailIndex, s.cfg.Index.Email(email))
		if !okToken || !okEmail {
			return nil, notFound
		}
	}
	return s.Open(rec)
}

// Open opens a stored order's sealed contact data. Callers authorize first.
func (s *Service) Open(rec *store.OrderRecord) (*bookstore.Order, error) {
	plain, err := s.cfg.PII.Decrypt(rec.ContactEnc, contactAAD(rec.ID))
	if err != nil {
		return nil, fmt.Errorf("open order %s contact: %w", rec.ID, err)
	}
	var c orderContact
	if err := json.Unmarshal(plain, &c); err != nil {
		return nil, fmt.Errorf("decode order %s contact: %w", rec.ID, err)
	}
	return s.orderOf(rec, c.Email, c.Address), nil
}
