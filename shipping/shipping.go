// Package shipping is what the order service needs from a carrier: create the shipment
// of a paid order (once, however often it asks), follow it by tracking number until
// it is delivered, and void it while it has not left the warehouse (an order cancelled
// after its label was printed). Every change of a shipment's state reaches the order service through
// a Hook called inside the transaction that records the change, so the order's own
// history and outbox move in step with the shipment.
//
// Implementations: sim (a simulated carrier kept in the database, the default in dev and
// tests).
package shipping

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
)

// Carrier ships orders.
type Carrier interface {
	// CreateShipment books the shipment of req.OrderID and returns it, events included.
	// It is idempotent per order: asking again returns the first shipment; asking again
	// with another method is a CONFLICT. A request that fails Validate is BAD_USER_INPUT.
	CreateShipment(ctx context.Context, req ShipmentRequest) (*Shipment, error)

	// Track returns the shipment with the tracking number, events included, or
	// ErrNotFound (code NOT_FOUND) when there is none.
	Track(ctx context.Context, trackingNumber string) (*Shipment, error)

	// Cancel voids the order's shipment while it is only LABEL_CREATED: the shipment
	// becomes CANCELLED (an event, which the Hook is told of) and never moves again. It
	// is idempotent: cancelling a CANCELLED shipment is a no-op. Once the parcel has left
	// (IN_TRANSIT or later) it returns a *TooLateError and changes nothing; an order
	// without a shipment is ErrNotFound.
	Cancel(ctx context.Context, orderID uuid.UUID) error
}

// TooLateError: the shipment cannot be cancelled any more, it has left the warehouse.
type TooLateError struct {
	TrackingNumber string
	// Status is the shipment's status when it was refused.
	Status Status
}

func (e *TooLateError) Error() string {
	return "shipment " + e.TrackingNumber + " is " + string(e.Status) + ": too late to cancel it"
}

// Hook is told of every event of every shipment, the first (LABEL_CREATED) included,
// inside the database transaction that writes the event: whatever it writes with tx
// commits or rolls back with the event, and an error rolls the step back (the carrier
// tries it again later). The transaction may be retried, so the hook may run more than
// once for one event and must only touch tx (no e-mails, no Redis, no PSP calls: write
// an outbox row instead). s is the shipment as the event leaves it, without Events.
// The first event's transaction is READ COMMITTED on PostgreSQL (store.DB.
// ExecuteLockedTx): the hook must lock the rows its decision rests on (the order, FOR
// UPDATE) rather than rely on reading them.
type Hook func(ctx context.Context, tx pgx.Tx, s *Shipment, e Event) error

// Method is how fast a shipment travels: a code of bookstore.ShippingMethod.
type Method string

// Methods.
const (
	MethodStandard Method = "STANDARD"
	MethodExpress  Method = "EXPRESS"
)

// Status is where a shipment stands.
type Status string

// Statuses. A shipment starts LABEL_CREATED and ends DELIVERED (or CANCELLED, voided
// before it left: Carrier.Cancel); IN_TRANSIT and
// OUT_FOR_DELIVERY may repeat (one IN_TRANSIT event per hub; another round after a
// FAILED_ATTEMPT), DELAYED and FAILED_ATTEMPT happen to some shipments only.
const (
	StatusLabelCreated   Status = "LABEL_CREATED"
	StatusInTransit      Status = "IN_TRANSIT"
	StatusOutForDelivery Status = "OUT_FOR_DELIVERY"
	StatusDelivered      Status = "DELIVERED"
	StatusDelayed        Status = "DELAYED"
	StatusFailedAttempt  Status = "FAILED_ATTEMPT"
	StatusCancelled      Status = "CANCELLED"
)

// ErrNotFound: no shipment with this tracking number (or order).
var ErrNotFound = &bookstore.Error{Code: bookstore.CodeNotFound, Message: "no shipment with this tracking number"}

// Shipment is one parcel on its way to the customer.
type Shipment struct {
	ID             uuid.UUID
	OrderID        uuid.UUID
	Carrier        string
	Method         Method
	TrackingNumber string
	Status         Status
	// Events is the tracking history, oldest first.
	Events []Event
	// EstimatedDelivery is the creation time plus the method's days, pushed back a day
	// by each delay.
	EstimatedDelivery time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// Event is one step of a shipment's tracking history.
type Event struct {
	// Seq numbers the shipment's events from 1, in order and without gaps.
	Seq      int
	Status   Status
	At       time.Time
	Location string
}

// ShipmentRequest asks a carrier to ship an order.
type ShipmentRequest struct {
	OrderID   uuid.UUID
	Method    Method
	Recipient Address
}

// Address is where a shipment goes. It is a plain copy of the order's address (the order
// service decrypts it to ask the carrier); carriers keep no more of it than they need.
type Address struct {
	Name       string
	Line1      string
	Line2      string
	City       string
	Region     string
	PostalCode string
	// Country is an ISO 3166-1 alpha-2 code.
	Country string
}

// Input limits, in characters.
const (
	maxNameLen  = 200
	maxLineLen  = 200
	maxCityLen  = 100
	maxShortLen = 40 // region, postal code
)

// Validate checks the request (the method is checked by the carrier, which knows its
// methods) and returns a BAD_USER_INPUT error naming the field.
func (r ShipmentRequest) Validate() error {
	if r.OrderID == uuid.Nil {
		return bookstore.InvalidField("orderId", "an order id is required")
	}
	a := r.Recipient
	for _, f := range []struct {
		name, v  string
		max      int
		required bool
	}{
		{"recipient.name", a.Name, maxNameLen, true},
		{"recipient.line1", a.Line1, maxLineLen, true},
		{"recipient.line2", a.Line2, maxLineLen, false},
		{"recipient.city", a.City, maxCityLen, true},
		{"recipient.region", a.Region, maxShortLen, false},
		{"recipient.postalCode", a.PostalCode, maxShortLen, false},
	} {
		v := strings.TrimSpace(f.v)
		switch {
		case !utf8.ValidString(f.v) || strings.ContainsFunc(f.v, isControl):
			return bookstore.InvalidField(f.name, "must be printable text")
		case f.required && v == "":
			return bookstore.InvalidField(f.name, "is required")
		case utf8.RuneCountInString(v) > f.max:
			return bookstore.InvalidField(f.name, "must be at most %d characters", f.max)
		}
	}
	if !isCountry(a.Country) {
		return bookstore.InvalidField("recipient.country", "must be an ISO 3166-1 alpha-2 code")
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func isCountry(c string) bool {
	return len(c) == 2 && 'A' <= c[0] && c[0] <= 'Z' && 'A' <= c[1] && c[1] <= 'Z'
}
