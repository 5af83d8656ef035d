package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/mail"
	"github.com/shopfront/bookstore/orders"
	"github.com/shopfront/bookstore/store"
)

// Fulfilment acts on orders' events with other systems: a paid order is handed to the
// carrier (order_paid), a cancelled one refunded (order_cancelled). Both calls are
// idempotent, so an event handled twice does no harm.
type Fulfilment struct {
	Orders *orders.Service
	Log    *slog.Logger
}

// Consumer implements Consumer.
func (f *Fulfilment) Consumer() (string, []string) {
	return "fulfilment", []string{store.TopicOrderPaid, store.OrderTopic(bookstore.OrderEventCancelled)}
}

// Handle implements Handler.
func (f *Fulfilment) Handle(ctx context.Context, evs []store.Event) error {
	var errs []error
	for _, ev := range evs {
		var err error
		switch ev.Topic {
		case store.TopicOrderPaid:
			err = f.Orders.Ship(ctx, ev.AggregateID)
		case store.OrderTopic(bookstore.OrderEventCancelled):
			err = f.Orders.RefundCancelled(ctx, ev.AggregateID)
		default:
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("order %s (%s): %w", ev.AggregateID, ev.Topic, err))
		}
	}
	return errors.Join(errs...)
}

// OrderMail sends the order emails: the confirmation when an order is paid, a notice
// when it ships (with the carrier's tracking number) and when it is cancelled (with the
// refund). The order's contact data is opened just before the send. Every email has a
// key per order and event, hence one Message-ID however often it is sent.
type OrderMail struct {
	Checkout *checkout.Service
	DB       *store.DB
	Sender   mail.Sender
	From     string
	Log      *slog.Logger
}

// Consumer implements Consumer.
func (m *OrderMail) Consumer() (string, []string) {
	return "order-mail", []string{store.TopicOrderPaid, store.OrderTopic(bookstore.OrderEventShipped),
		store.OrderTopic(bookstore.OrderEventCancelled)}
}

// Handle implements Handler. An email the mail server refuses for good (an unknown
// recipient) is logged and dropped; a temporary failure fails that event for a retry
// (a *BatchError), and only that one: the batch's other emails are sent, and not again.
func (m *OrderMail) Handle(ctx context.Context, evs []store.Event) error {
	failed := map[uuid.UUID]error{}
	for _, ev := range evs {
		var typ bookstore.OrderEventType
		switch ev.Topic {
		case store.TopicOrderPaid:
			typ = bookstore.OrderEventPaid
		case store.OrderTopic(bookstore.OrderEventShipped):
			typ = bookstore.OrderEventShipped
		case store.OrderTopic(bookstore.OrderEventCancelled):
			typ = bookstore.OrderEventCancelled
		default:
			continue
		}
		err := m.send(ctx, ev, typ)
		if err != nil && mail.Permanent(err) {
			m.Log.ErrorContext(ctx, "order email refused for good; dropped", "order", ev.AggregateID, "topic", ev.Topic, "err", err)
			err = nil
		}
		if err != nil {
			failed[ev.ID] = fmt.Errorf("order %s email (%s): %w", ev.AggregateID, ev.Topic, err)
		}
	}
	if len(failed) > 0 {
		return &BatchError{Failed: failed}
	}
	return nil
}

func (m *OrderMail) send(ctx context.Context, ev store.Event, typ bookstore.OrderEventType) error {
	o, err := m.Checkout.Order(ctx, ev.AggregateID)
	if bookstore.ErrorCode(err) == bookstore.CodeNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	detail, err := m.detail(ctx, ev, typ)
	if err != nil {
		return err
	}
	mo := mailOrder(o)
	var msg mail.Message
	switch typ {
	case bookstore.OrderEventPaid:
		msg, err = mail.OrderConfirmation(mo, m.From)
	case bookstore.OrderEventShipped:
		msg, err = mail.OrderShipped(mo, mail.Shipment{Carrier: detail.Carrier, TrackingNumber: detail.TrackingNumber}, m.From)
	case bookstore.OrderEventCancelled:
		refund := detail.RefundCents
		if o.Payment.Status != "SUCCEEDED" && o.Payment.Status != "REFUNDED" {
			refund = 0
		}
		msg, err = mail.OrderCancelled(mo, mail.Cancellation{RefundCents: refund, Reason: detail.Reason}, m.From)
	}
	if err != nil {
		return err
	}
	msg.Date = ev.CreatedAt
	return m.Sender.Send(ctx, msg)
}

type eventDetail struct {
	Carrier        string `json:"carrier"`
	TrackingNumber string `json:"trackingNumber"`
	RefundCents    int64  `json:"refundCents"`
	Reason         string `json:"reason"`
}

// detail reads the order event the outbox row announces (its payload names the seq).
func (m *OrderMail) detail(ctx context.Context, ev store.Event, typ bookstore.OrderEventType) (eventDetail, error) {
	var d eventDetail
	var p store.OrderEventPayload
	if err := json.Unmarshal(ev.Payload, &p); err != nil || p.Seq == 0 {
		return d, nil
	}
	evs, err := m.DB.Orders.Events(ctx, ev.AggregateID, p.Seq-1, 1)
	if err != nil || len(evs) == 0 || evs[0].Type != typ || len(evs[0].Detail) == 0 {
		return d, err
	}
	_ = json.Unmarshal(evs[0].Detail, &d)
	return d, nil
}

func mailOrder(o *bookstore.Order) mail.Order {
	a := o.ShippingAddress
	mo := mail.Order{ID: o.ID.String(), Number: o.Number, PlacedAt: o.CreatedAt, Email: o.Email, Name: a.Recipient,
		Cost: mail.Cost{SubtotalCents: o.Cost.SubtotalCents, DiscountCents: o.Cost.DiscountCents, ShippingCents: o.Cost.ShippingCents,
			TaxCents: o.Cost.TaxCents, TotalCents: o.Cost.TotalCents, Currency: o.Cost.Currency},
		ShippingAddress: mail.Address{Recipient: a.Recipient, Line1: a.Line1, Line2: a.Line2, City: a.City, Region: a.Region,
			PostalCode: a.PostalCode, Country: a.Country}}
	for _, l := range o.Lines {
		mo.Lines = append(mo.Lines, mail.Line{Title: l.Title, Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents, TotalCents: l.TotalCents})
	}
	return mo
}
