package bookstore

import (
	"time"

	"github.com/google/uuid"
)

// OrderStatus is where an order is in its life. Checkout creates orders in
// OrderPendingPayment and settles them as OrderPaid or OrderPaymentFailed.
type OrderStatus string

// Order statuses.
const (
	OrderPendingPayment OrderStatus = "PENDING_PAYMENT"
	OrderPaid           OrderStatus = "PAID"
	OrderPaymentFailed  OrderStatus = "PAYMENT_FAILED"
	OrderFulfilling     OrderStatus = "FULFILLING"
	OrderShipped        OrderStatus = "SHIPPED"
	OrderDelivered      OrderStatus = "DELIVERED"
	OrderCancelled      OrderStatus = "CANCELLED"
	OrderReturned       OrderStatus = "RETURNED"
)

// orderTransitions is the order state machine: the statuses each status may become.
// Every change of status goes through CanBecome (store.Orders.Transition checks it in
// the transaction that makes the change).
var orderTransitions = map[OrderStatus][]OrderStatus{
	OrderPendingPayment: {OrderPaid, OrderPaymentFailed},
	OrderPaid:           {OrderFulfilling, OrderCancelled},
	OrderFulfilling:     {OrderShipped, OrderCancelled},
	OrderShipped:        {OrderDelivered},
	OrderDelivered:      {OrderReturned},
}

// CanBecome reports whether an order in status s may move to next.
func (s OrderStatus) CanBecome(next OrderStatus) bool {
	for _, t := range orderTransitions[s] {
		if t == next {
			return true
		}
	}
	return false
}

// Final reports whether no transition leaves s.
func (s OrderStatus) Final() bool { return len(orderTransitions[s]) == 0 }

// Cancellable reports whether an order in status s can still be cancelled (before it
// ships).
func (s OrderStatus) Cancellable() bool { return s.CanBecome(OrderCancelled) }

// OrderEventType says what happened to an order. Most events change its status; a
// shipment's tracking update does not.
type OrderEventType string

// Order event types.
const (
	OrderEventPlaced          OrderEventType = "PLACED"
	OrderEventPaid            OrderEventType = "PAID"
	OrderEventPaymentFailed   OrderEventType = "PAYMENT_FAILED"
	OrderEventFulfilling      OrderEventType = "FULFILLING"
	OrderEventShipped         OrderEventType = "SHIPPED"
	OrderEventShipmentUpdated OrderEventType = "SHIPMENT_UPDATED"
	OrderEventDelivered       OrderEventType = "DELIVERED"
	OrderEventCancelled       OrderEventType = "CANCELLED"
	OrderEventReturned        OrderEventType = "RETURNED"
)

// OrderEvent is one entry of an order's history. Seq counts from 1 per order without
// gaps; Status is the order's status after the event.
type OrderEvent struct {
	OrderID uuid.UUID
	Seq     int64
	Type    OrderEventType
	Status  OrderStatus
	At      time.Time
	// Detail is the event's JSON detail (a tracking update, a cancellation's refund).
	Detail []byte
}

// Checkout's error codes (userErrors of the checkout mutation), beyond the cart's and
// the payment outcomes.
const (
	// CodePriceChanged: the order would cost other than expectedTotalCents; nothing was
	// charged and the message carries the new total.
	CodePriceChanged = "PRICE_CHANGED"
	// CodeEmptyCart: the cart has no line that can be bought.
	CodeEmptyCart = "EMPTY_CART"
	// CodeInvalidAddress: the shipping address (or the email) is malformed; the field
	// path names the part.
	CodeInvalidAddress = "INVALID_ADDRESS"
	// CodeIdempotencyKeyReused: the key was used before with another cart or input.
	CodeIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"
	// CodeCheckoutInProgress: another checkout of the same cart is paying or has paid.
	CodeCheckoutInProgress = "CHECKOUT_IN_PROGRESS"
)

// Address is a postal address: a customer's saved one or an order's destination.
type Address struct {
	Recipient  string `json:"recipient"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	Region     string `json:"region,omitempty"`
	PostalCode string `json:"postalCode,omitempty"`
	Country    string `json:"country"` // ISO 3166-1 alpha-2, upper case
	Phone      string `json:"phone,omitempty"`
}

// OrderLine is one book of an order at the price it was sold for. Title is kept so that
// the order still reads right after the book is renamed or removed.
type OrderLine struct {
	BookID         uuid.UUID
	Title          string
	Quantity       int
	UnitPriceCents int64
	TotalCents     int64
}

// OrderDiscount is a discount code that took money off an order.
type OrderDiscount struct {
	PromotionID uuid.UUID
	Code        string
	AmountCents int64
}

// OrderPayment is how an order is paid, as the PSP reports it: Brand and Last4 come from
// the PSP, never from the client.
type OrderPayment struct {
	Method string // CARD or WALLET
	// Status is the charge's state at the PSP: PENDING until it answers, then
	// SUCCEEDED, FAILED or REFUNDED.
	Status string
	// Reference is the PSP's id of the charge (pi_..., ch_...).
	Reference string
	Brand     string
	Last4     string
	Wallet    string
	// FailureCode and FailureMessage say why a failed payment failed (PAYMENT_DECLINED,
	// INSUFFICIENT_FUNDS, PAYMENT_ERROR).
	FailureCode    string
	FailureMessage string
}

// Order is a purchase. Email and ShippingAddress are personal data: stored encrypted and
// decrypted only for the order's owner or to ship it.
type Order struct {
	ID     uuid.UUID
	Number string
	// CustomerID is nil for a guest's order.
	CustomerID      *uuid.UUID
	Status          OrderStatus
	Email           string
	ShippingAddress Address
	ShippingMethod  string
	Lines           []OrderLine
	Discounts       []OrderDiscount
	Cost            Cost
	Payment         OrderPayment
	CreatedAt       time.Time
	UpdatedAt       time.Time
	PaidAt          *time.Time
}

// Demand is the stock the order holds, one entry per line.
func (o *Order) Demand() []StockDemand {
	out := make([]StockDemand, len(o.Lines))
	for i, l := range o.Lines {
		out[i] = StockDemand{BookID: l.BookID, Quantity: int64(l.Quantity)}
	}
	return out
}
