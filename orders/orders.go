// Package orders is what happens to an order after checkout: the customer's order
// history, cancellation (stock back, refund through the PSP), fulfilment by a carrier
// (shipping.Carrier) and the order's event history. Every change of status goes through
// store.Orders.Transition (the state machine in bookstore.OrderStatus.CanBecome) inside
// a transaction that also writes the order event and its outbox row; side effects on
// other systems (the PSP's refund, the carrier's shipment, emails, subscribers) are
// driven by those outbox rows, so a crash between the commit and the side effect only
// delays it.
package orders

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/payment"
	"github.com/shopfront/bookstore/shipping"
	"github.com/shopfront/bookstore/store"
)

// CodeNotCancellable: the order has shipped (or ended) and can no longer be cancelled.
const CodeNotCancellable = "ORDER_NOT_CANCELLABLE"

// CodeInvalidTransition: the order's status does not allow the change asked for.
const CodeInvalidTransition = "INVALID_ORDER_STATUS"

// Config configures the Service.
type Config struct {
	DB *store.DB
	// Checkout opens orders (their sealed contact data).
	Checkout *checkout.Service
	PSP      payment.Provider
	// Carrier ships paid orders; nil leaves them PAID until an admin marks them shipped.
	Carrier shipping.Carrier
	// Tracking reads orders' shipments (the simulated carrier's ShipmentsOf); nil: none.
	Tracking Tracking
	Log      *slog.Logger
}

// Service runs the order use cases.
type Service struct{ cfg Config }

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Checkout == nil || cfg.PSP == nil {
		return nil, errors.New("orders: DB, Checkout and PSP are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Service{cfg: cfg}, nil
}

// Caller is who asks: a customer (Admin when they are one), or nobody (uuid.Nil).
type Caller struct {
	Customer uuid.UUID
	Admin    bool
}

// Page is one page of a customer's orders, newest first.
type Page struct {
	Orders      []*bookstore.Order
	Cursors     []string
	HasNextPage bool
}

// MaxPage bounds a page of orders.
const MaxPage = 100

// List returns the customer's orders, newest first, optionally of one status, after the
// cursor.
func (s *Service) List(ctx context.Context, customer uuid.UUID, status *bookstore.OrderStatus, first int, after string) (*Page, error) {
	if first < 0 || first > MaxPage {
		return nil, bookstore.InvalidField("first", "must be between 0 and %d", MaxPage)
	}
	recs, more, err := s.cfg.DB.Orders.ByCustomer(ctx, customer, status, first, after)
	if err != nil {
		return nil, err
	}
	p := &Page{HasNextPage: more}
	for _, r := range recs {
		o, err := s.cfg.Checkout.Open(r)
		if err != nil {
			return nil, err
		}
		p.Orders = append(p.Orders, o)
		p.Cursors = append(p.Cursors, store.OrderCursor(r))
	}
	return p, nil
}

// Events returns the order's events after afterSeq, oldest first (at most limit). The
// caller has authorized the order.
func (s *Service) Events(ctx context.Context, id uuid.UUID, afterSeq int64, limit int) ([]bookstore.OrderEvent, error) {
	return s.cfg.DB.Orders.Events(ctx, id, afterSeq, limit)
}

// MaxReasonLen bounds a cancellation reason.
const MaxReasonLen = 500

// cleanReason trims a cancellation reason and checks it: valid UTF-8, at most
// MaxReasonLen characters, no control characters (Cc: NUL, which PostgreSQL refuses in
// the event's JSON, line breaks, ESC, BEL...) and no bidirectional embeddings, overrides
// or isolates (U+202A-U+202E, U+2066-U+2069), which would make the reason read as
// something else where it is shown.
func cleanReason(reason string) (string, error) {
	if len(reason) > 4*MaxReasonLen+1024 { // more bytes than MaxReasonLen characters and trimmable space take
		return "", bookstore.InvalidField("reason", "must be at most %d characters", MaxReasonLen)
	}
	if !utf8.ValidString(reason) {
		return "", bookstore.InvalidField("reason", "must be valid UTF-8 text")
	}
	reason = strings.TrimSpace(reason)
	if utf8.RuneCountInString(reason) > MaxReasonLen {
		return "", bookstore.InvalidField("reason", "must be at most %d characters", MaxReasonLen)
	}
	for _, r := range reason {
		if unicode.Is(unicode.Cc, r) || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') {
			return "", bookstore.InvalidField("reason", "must not contain control characters or bidirectional overrides")
		}
	}
	return reason, nil
}

// Cancel cancels an order that has not shipped: its customer may cancel it, and an admin
// any order. The stock and discount uses go back in the transaction that cancels it;
// the payment is refunded through the PSP right after, and again by the outbox consumer
// (RefundCancelled) if that fails. Someone else's order is NOT_FOUND; an order that has
// shipped is ORDER_NOT_CANCELLABLE.
//
// A FULFILLING order's label is printed: its shipment is voided at the carrier first
// (shipping.Carrier.Cancel), and only then is the order cancelled. If the carrier
// refuses (the parcel has left: the carrier's next step won the race), or has no
// shipment of the order (shipping.ErrNotFound: it may still ship, so it is logged for
// someone to look at), nothing is refunded or restocked and the order is
// ORDER_NOT_CANCELLABLE. The carrier tells the
// void to ShipmentHook, which cancels the order (the simulated carrier does so in the
// void's own transaction, so void and cancel commit together); if the process stops
// between a void and the cancel (a carrier whose notice comes later), the order stays
// FULFILLING with a voided shipment until the notice arrives or the cancel is asked
// again: the void is idempotent, so the retry goes straight to the cancel.
func (s *Service) Cancel(ctx context.Context, who Caller, id uuid.UUID, reason string) (*bookstore.Order, error) {
	reason, err := cleanReason(reason)
	if err != nil {
		return nil, err
	}
	detail := map[string]any{"reason": reason, "by": "customer"}
	if who.Admin {
		detail["by"] = "admin"
	}
	voided := false
	for {
		err := s.cfg.DB.ExecuteTx(ctx, func(tx pgx.Tx) error {
			o, err := s.cfg.DB.Orders.Lock(ctx, tx, id)
			if err != nil {
				return err
			}
			if !who.Admin && (o.CustomerID == nil || *o.CustomerID != who.Customer) {
				return bookstore.Errorf(bookstore.CodeNotFound, "no such order")
			}
			if voided && o.Status == bookstore.OrderCancelled {
				return nil // the carrier's notice of our void cancelled it (ShipmentHook)
			}
			if !o.Status.Cancellable() {
				return notCancellable(o.Status)
			}
			if o.Status == bookstore.OrderFulfilling && s.cfg.Carrier != nil && !voided {
				return errVoidFirst
			}
			return s.cancelLocked(ctx, tx, o, detail)
		})
		if errors.Is(err, errVoidFirst) {
			// The carrier's hook (in the void's transaction) cancels the order with
			// this cancellation's detail.
			err = s.cfg.Carrier.Cancel(withCancellation(ctx, detail), id)
			var late *shipping.TooLateError
			switch {
			case errors.As(err, &late):
				return nil, bookstore.Errorf(CodeNotCancellable, "the order has left the warehouse and can no longer be cancelled")
			case errors.Is(err, shipping.ErrNotFound):
				// The order is FULFILLING because the carrier printed its label, yet the
				// carrier has no shipment of it: whether the parcel still ships is unknown,
				// so nothing is refunded or restocked (someone has to look at it).
				s.cfg.Log.ErrorContext(ctx, "orders: a fulfilling order's shipment is unknown to the carrier; not cancelled", "order", id)
				return nil, bookstore.Errorf(CodeNotCancellable, "the order's shipment cannot be stopped at the carrier; contact us to cancel it")
			case err != nil:
				return nil, fmt.Errorf("cancel the shipment of order %s: %w", id, err)
			}
			voided = true
			continue
		}
		if errors.Is(err, store.ErrTransition) {
			return nil, bookstore.Errorf(CodeNotCancellable, "the order can no longer be cancelled")
		}
		if err != nil {
			return nil, err
		}
		break
	}
	if err := s.RefundCancelled(ctx, id); err != nil {
		s.cfg.Log.WarnContext(ctx, "orders: refund of a cancelled order failed; the outbox consumer retries it", "order", id, "err", err)
	}
	return s.cfg.Checkout.Order(ctx, id)
}

// errVoidFirst: the order is FULFILLING, its shipment must be voided before it is
// cancelled (outside the transaction: the carrier is another system).
var errVoidFirst = errors.New("orders: void the shipment first")

func notCancellable(st bookstore.OrderStatus) error {
	return bookstore.Errorf(CodeNotCancellable, "an order that is %s can no longer be cancelled", strings.ToLower(strings.ReplaceAll(string(st), "_", " ")))
}

// cancelLocked cancels o (locked in tx): stock and discount uses back, CANCELLED with
// its event and outbox row (whose consumer refunds the payment).
func (s *Service) cancelLocked(ctx context.Context, tx pgx.Tx, o *store.OrderRecord, detail map[string]any) error {
	detail["refundCents"] = o.Cost.TotalCents
	if err := s.cfg.DB.Orders.LoadItems(ctx, tx, o); err != nil {
		return err
	}
	if err := s.cfg.DB.Inventory.Restore(ctx, tx, o.Demand(), "order cancelled", &o.ID); err != nil {
		return err
	}
	for _, d := range o.Discounts {
		if err := s.cfg.DB.Promotions.Release(ctx, tx, d.PromotionID, o.ID); err != nil {
			return err
		}
	}
	_, err := s.cfg.DB.Orders.Transition(ctx, tx, o, bookstore.OrderCancelled, bookstore.OrderEventCancelled, detail)
	return err
}

// cancellationKey carries a Cancel's detail (reason, by whom) through the carrier's void
// to ShipmentHook, which runs in the void's transaction and goroutine.
type cancellationKey struct{}

func withCancellation(ctx context.Context, detail map[string]any) context.Context {
	return context.WithValue(ctx, cancellationKey{}, detail)
}

// cancellation is the detail of the order's cancellation when the carrier reports a
// voided shipment: the Cancel's that voided it, else (a notice that came after a
// crash, or a void done at the carrier) one by the carrier.
func cancellation(ctx context.Context, sh *shipping.Shipment) map[string]any {
	d := map[string]any{"reason": "", "by": "carrier"}
	if c, ok := ctx.Value(cancellationKey{}).(map[string]any); ok {
		d = maps.Clone(c)
	}
	d["carrier"], d["trackingNumber"] = sh.Carrier, sh.TrackingNumber
	return d
}

// RefundCancelled refunds a cancelled order's payment (idempotent: the PSP refunds a
// key once) and records it. It is a no-op for orders that are not cancelled or whose
// payment is refunded already.
func (s *Service) RefundCancelled(ctx context.Context, id uuid.UUID) error {
	rec, err := s.cfg.DB.Orders.ByID(ctx, id)
	if err != nil {
		return err
	}
	if rec.Status != bookstore.OrderCancelled || rec.Payment.Status != string(payment.StatusSucceeded) {
		return nil
	}
	ch, err := s.cfg.PSP.Refund(ctx, id.String())
	if errors.Is(err, payment.ErrNotRefundable) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("refund order %s: %w", id, err)
	}
	return s.cfg.DB.ExecuteTx(ctx, func(tx pgx.Tx) error {
		o, err := s.cfg.DB.Orders.Lock(ctx, tx, id)
		if err != nil || o.Payment.Status == string(payment.StatusRefunded) {
			return err
		}
		return s.cfg.DB.Orders.SetPaymentStatus(ctx, tx, o, string(ch.Status))
	})
}

// Limits of a manual shipment.
const (
	maxCarrierLen  = 100
	maxTrackingLen = 100
)

// MarkShipped records that an admin shipped a paid order by hand with a carrier's
// tracking number: PAID or FULFILLING becomes SHIPPED (through FULFILLING).
func (s *Service) MarkShipped(ctx context.Context, who Caller, id uuid.UUID, carrier, tracking string) (*bookstore.Order, error) {
	if !who.Admin {
		return nil, bookstore.Errorf(bookstore.CodeForbidden, "only an admin may mark orders shipped")
	}
	carrier, tracking = strings.TrimSpace(carrier), strings.TrimSpace(tracking)
	switch {
	case carrier == "" || utf8.RuneCountInString(carrier) > maxCarrierLen || !utf8.ValidString(carrier):
		return nil, bookstore.InvalidField("carrier", "must be 1 to %d characters", maxCarrierLen)
	case tracking == "" || len(tracking) > maxTrackingLen || strings.ContainsFunc(tracking, func(r rune) bool { return r < 0x20 || r > 0x7e }):
		return nil, bookstore.InvalidField("trackingNumber", "must be 1 to %d printable ASCII characters", maxTrackingLen)
	}
	detail := map[string]any{"carrier": carrier, "trackingNumber": tracking}
	err := s.cfg.DB.ExecuteTx(ctx, func(tx pgx.Tx) error {
		o, err := s.cfg.DB.Orders.Lock(ctx, tx, id)
		if err != nil {
			return err
		}
		if o.Status == bookstore.OrderPaid {
			if _, err := s.cfg.DB.Orders.Transition(ctx, tx, o, bookstore.OrderFulfilling, bookstore.OrderEventFulfilling, nil); err != nil {
				return err
			}
		}
		_, err = s.cfg.DB.Orders.Transition(ctx, tx, o, bookstore.OrderShipped, bookstore.OrderEventShipped, detail)
		return err
	})
	if errors.Is(err, store.ErrTransition) {
		return nil, bookstore.Errorf(CodeInvalidTransition, "only a paid order that has not shipped can be marked shipped")
	}
	if err != nil {
		return nil, err
	}
	return s.cfg.Checkout.Order(ctx, id)
}

// Ship books the carrier's shipment of a paid order (the order_paid consumer calls it;
// idempotent per order, like the carrier). Orders that are no longer PAID (cancelled
// meanwhile) are not shipped.
func (s *Service) Ship(ctx context.Context, id uuid.UUID) error {
	if s.cfg.Carrier == nil {
		return nil
	}
	// The order's row alone (no lines or discounts): its status, method and sealed
	// address are all a shipment needs.
	rec, err := s.cfg.DB.Orders.Row(ctx, id)
	if err != nil {
		return err
	}
	if rec.Status != bookstore.OrderPaid {
		return nil
	}
	o, err := s.cfg.Checkout.Open(rec)
	if err != nil {
		return err
	}
	a := o.ShippingAddress
	_, err = s.cfg.Carrier.CreateShipment(ctx, shipping.ShipmentRequest{OrderID: id, Method: shipping.Method(o.ShippingMethod),
		Recipient: shipping.Address{Name: a.Recipient, Line1: a.Line1, Line2: a.Line2, City: a.City, Region: a.Region,
			PostalCode: a.PostalCode, Country: a.Country}})
	if errors.Is(err, errNotShippable) {
		return nil // cancelled (or shipped by hand) since it was read: nothing to ship
	}
	return err
}

// errNotShippable: ShipmentHook refused a new shipment because the order, under its
// lock, is no longer PAID (a cancel committed after Ship read it), so the carrier's
// transaction rolls back and no label is bought for a refunded order.
var errNotShippable = errors.New("orders: the order is no longer paid: no shipment")

// ShipmentHook moves the order along with its shipment, inside the carrier's
// transaction (shipping.Hook): the label makes it FULFILLING, the first scan in transit
// SHIPPED, the delivery DELIVERED, a voided shipment (CANCELLED) cancels the order
// (stock back, refund: see Cancel); every other tracking step is a SHIPMENT_UPDATED
// event. A cancelled order is left as it is.
func (s *Service) ShipmentHook(ctx context.Context, tx pgx.Tx, sh *shipping.Shipment, e shipping.Event) error {
	o, err := s.cfg.DB.Orders.Lock(ctx, tx, sh.OrderID)
	if err != nil {
		return err
	}
	if e.Status == shipping.StatusLabelCreated && o.Status != bookstore.OrderPaid {
		// The shipment is being created (its first step) for an order that is not PAID
		// under the lock: refuse it, rolling the carrier's transaction back.
		return fmt.Errorf("order %s is %s: %w", o.ID, o.Status, errNotShippable)
	}
	if o.Status == bookstore.OrderCancelled || o.Status.Final() {
		return nil
	}
	if e.Status == shipping.StatusCancelled && o.Status.Cancellable() {
		// The shipment was voided (Cancel's void, or one done at the carrier): the
		// order is cancelled with it, refunded by the outbox consumer.
		return s.cancelLocked(ctx, tx, o, cancellation(ctx, sh))
	}
	detail := map[string]any{"carrier": sh.Carrier, "trackingNumber": sh.TrackingNumber, "shipmentStatus": string(e.Status),
		"location": e.Location}
	step := func(to bookstore.OrderStatus, typ bookstore.OrderEventType) error {
		_, err := s.cfg.DB.Orders.Transition(ctx, tx, o, to, typ, detail)
		return err
	}
	switch {
	case e.Status == shipping.StatusLabelCreated && o.Status == bookstore.OrderPaid:
		return step(bookstore.OrderFulfilling, bookstore.OrderEventFulfilling)
	case e.Status == shipping.StatusInTransit && o.Status == bookstore.OrderFulfilling:
		return step(bookstore.OrderShipped, bookstore.OrderEventShipped)
	case e.Status == shipping.StatusDelivered && o.Status == bookstore.OrderFulfilling:
		if err := step(bookstore.OrderShipped, bookstore.OrderEventShipped); err != nil {
			return err
		}
		return step(bookstore.OrderDelivered, bookstore.OrderEventDelivered)
	case e.Status == shipping.StatusDelivered && o.Status == bookstore.OrderShipped:
		return step(bookstore.OrderDelivered, bookstore.OrderEventDelivered)
	}
	_, err = s.cfg.DB.Orders.AppendEvent(ctx, tx, o, bookstore.OrderEventShipmentUpdated, detail)
	return err
}

// Tracking reads the shipments of orders, events included, in a fixed number of
// queries (for a dataloader).
type Tracking interface {
	ShipmentsOf(ctx context.Context, orderIDs []uuid.UUID) (map[uuid.UUID][]*shipping.Shipment, error)
}

// Shipments returns the orders' shipments with their tracking events.
func (s *Service) Shipments(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID][]*shipping.Shipment, error) {
	if s.cfg.Tracking == nil {
		return map[uuid.UUID][]*shipping.Shipment{}, nil
	}
	return s.cfg.Tracking.ShipmentsOf(ctx, ids)
}
