package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/mail"
	"github.com/shopfront/bookstore/orders"
	"github.com/shopfront/bookstore/store"
)

// Fulfilment acts on orders' events with other systems: a paid order is handed to the
// carrier (order_paid), a cancelled one refunded (order_cancelled). Both calls are
// idempotent, so an event handled twice does no harm.
//
// Orders are independent of one another, so a batch is worked by Workers goroutines,
// each taking whole orders: the events of one order keep their order (a cancel after
// its payment), and every order's calls run one at a time. One at a time overall, a
// batch costs the sum of its orders' round trips and the consumer falls behind
// checkout well before the database is busy (then every consumer of the order topics
// rescans the growing backlog).
type Fulfilment struct {
	Orders *orders.Service
	Log    *slog.Logger
	// Workers is how many orders are worked at once (default 8).
	Workers int
}

// Consumer implements Consumer.
func (f *Fulfilment) Consumer() (string, []string) {
	return "fulfilment", []string{store.TopicOrderPaid, store.OrderTopic(bookstore.OrderEventCancelled)}
}

// Handle implements Handler.
func (f *Fulfilment) Handle(ctx context.Context, evs []store.Event) error {
	return forEachOrder(ctx, evs, f.Workers, func(ev store.Event) error {
		var err error
		switch ev.Topic {
		case store.TopicOrderPaid:
			err = f.Orders.Ship(ctx, ev.AggregateID)
		case store.OrderTopic(bookstore.OrderEventCancelled):
			err = f.Orders.RefundCancelled(ctx, ev.AggregateID)
		}
		if err != nil {
			return fmt.Errorf("order %s (%s): %w", ev.AggregateID, ev.Topic, err)
		}
		return nil
	})
}

// forEachOrder calls fn for every event, on up to workers goroutines (default 8): the
// events of one aggregate in their order on one goroutine, different aggregates at once.
// It returns when every call has returned, with their errors joined; a call that panics
// is that event's error (the relay's own recovery cannot reach these goroutines). Once
// ctx ends no further event is started, and ctx's error is among those returned: events
// of the batch may not have run, so none of it may count as done.
func forEachOrder(ctx context.Context, evs []store.Event, workers int, fn func(store.Event) error) error {
	if workers <= 0 {
		workers = 8
	}
	var groups [][]store.Event
	at := make(map[uuid.UUID]int, len(evs))
	for _, ev := range evs {
		i, ok := at[ev.AggregateID]
		if !ok {
			i = len(groups)
			at[ev.AggregateID] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], ev)
	}
	var mu sync.Mutex
	var errs []error
	call := func(ev store.Event) {
		defer func() {
			if p := recover(); p != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("event %s (%s) panicked: %v\n%s", ev.ID, ev.Topic, p, debug.Stack()))
				mu.Unlock()
			}
		}()
		if err := fn(ev); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	next := make(chan []store.Event)
	var wg sync.WaitGroup
	for range min(workers, len(groups)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range next {
				for _, ev := range g {
					if ctx.Err() != nil {
						break
					}
					call(ev)
				}
			}
		}()
	}
	for _, g := range groups {
		if ctx.Err() != nil {
			break
		}
		next <- g
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// OrderMail sends the order emails: the confirmation when an order is paid, a notice
// when it ships (with the carrier's tracking number) and when it is cancelled (with the
// refund). The order's contact data is opened just before the send. Every email has a
// key per order and event, hence one Message-ID however often it is built, and is sent
// once: the key is claimed in sent_mail before the SMTP session and marked sent after
// it, so an event handled again (its batch retried for another email's failure, a
// lease lost mid-send, a crash before the delivery was recorded) sends nothing new.
type OrderMail struct {
	Checkout *checkout.Service
	DB       *store.DB
	Sender   mail.Sender
	From     string
	Log      *slog.Logger
	// Workers is how many orders' emails are sent at once (default 8).
	Workers int
	// ClaimTTL is how long a claim on an email stops another holder from sending it
	// (default 10 minutes): longer than any SMTP session, so that only the claim of a
	// process that died mid-send is taken over.
	ClaimTTL time.Duration
}

// Consumer implements Consumer.
func (m *OrderMail) Consumer() (string, []string) {
	return "order-mail", []string{store.TopicOrderPaid, store.OrderTopic(bookstore.OrderEventShipped),
		store.OrderTopic(bookstore.OrderEventCancelled)}
}

// errSending: another holder claimed the email and may still be sending it. Handle
// answers it RetryAfter the claim goes stale: it is no failure of the event, and must not
// spend its attempts (they would run out, and park the email, well before a dead
// holder's claim can be taken over).
var errSending = errors.New("another holder is sending this email")

// Handle implements Handler. An email the mail server refuses for good (an unknown
// recipient: mail.Refused) fails with a Permanent error, so the relay parks its event at
// once (listed by `bookstore outbox parked`, sent by `requeue` once the address is
// fixed). A temporary failure, or a 5xx about our own configuration (a wrong SMTP
// password), fails that event for a retry (a *BatchError), and only that one: the
// batch's other emails are done. Emails already sent are not sent again. An email another
// holder claimed (it may be sending it, or have died mid-send) waits for that claim to go
// stale (RetryAfter), counting no attempt.
func (m *OrderMail) Handle(ctx context.Context, evs []store.Event) error {
	var mu sync.Mutex
	failed := map[uuid.UUID]error{}
	fail := func(ev store.Event, err error) {
		mu.Lock()
		failed[ev.ID] = fmt.Errorf("order %s email (%s): %w", ev.AggregateID, ev.Topic, err)
		mu.Unlock()
	}
	// Orders at once (an SMTP session each), each order's emails in their order. A panic
	// is its email's failure: the batch's other emails are done.
	err := forEachOrder(ctx, evs, m.Workers, func(ev store.Event) (err error) {
		defer func() {
			if p := recover(); p != nil {
				fail(ev, fmt.Errorf("panicked: %v\n%s", p, debug.Stack()))
			}
		}()
		var typ bookstore.OrderEventType
		switch ev.Topic {
		case store.TopicOrderPaid:
			typ = bookstore.OrderEventPaid
		case store.OrderTopic(bookstore.OrderEventShipped):
			typ = bookstore.OrderEventShipped
		case store.OrderTopic(bookstore.OrderEventCancelled):
			typ = bookstore.OrderEventCancelled
		default:
			return nil
		}
		serr := m.send(ctx, ev, typ)
		if serr != nil && mail.Refused(serr) {
			m.log().ErrorContext(ctx, "order email refused for good; parking its event", "order", ev.AggregateID, "topic", ev.Topic, "err", serr)
			serr = Permanent(serr)
		}
		if serr != nil {
			fail(ev, serr)
		}
		return nil
	})
	if err != nil {
		// The context ended: emails of the batch may not have been tried. The whole batch
		// comes again (the sent_mail claims keep those sent from going twice).
		return err
	}
	if len(failed) > 0 {
		return &BatchError{Failed: failed}
	}
	return nil
}

func (m *OrderMail) log() *slog.Logger {
	if m.Log != nil {
		return m.Log
	}
	return slog.Default()
}

func (m *OrderMail) claimTTL() time.Duration {
	if m.ClaimTTL <= 0 {
		return 10 * time.Minute
	}
	return m.ClaimTTL
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
	claim, sent, err := m.claim(ctx, msg.Key)
	if err != nil || sent {
		return err
	}
	if err := m.Sender.Send(ctx, msg); err != nil {
		m.unclaim(ctx, msg.Key, claim)
		return err
	}
	m.markSent(ctx, msg.Key, claim)
	return nil
}

// claim takes the email key for this send. sent is true when the email went out before;
// errSending when another holder's live claim has it.
func (m *OrderMail) claim(ctx context.Context, key string) (claim uuid.UUID, sent bool, err error) {
	claim = uuid.New()
	ttl := m.claimTTL()
	var got uuid.UUID
	err = m.DB.Pool.QueryRow(ctx, `
		INSERT INTO sent_mail (mail_key, claim, claimed_at) VALUES ($1, $2, now())
		ON CONFLICT (mail_key) DO UPDATE SET claim = excluded.claim, claimed_at = excluded.claimed_at
		WHERE sent_mail.sent_at IS NULL AND sent_mail.claimed_at < now() - $3::INT8 * INTERVAL '1 millisecond'
		RETURNING claim`, key, claim, ttl.Milliseconds()).Scan(&got)
	if err == nil {
		return claim, false, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return claim, false, fmt.Errorf("claim email %s: %w", key, err)
	}
	var sentAt *time.Time
	var claimedAt, now time.Time // both the database's clock, which judges staleness
	if err := m.DB.Pool.QueryRow(ctx, `SELECT sent_at, claimed_at, now() FROM sent_mail WHERE mail_key = $1`, key).Scan(&sentAt, &claimedAt, &now); err != nil {
		return claim, false, fmt.Errorf("claim email %s: %w", key, err)
	}
	if sentAt != nil {
		m.log().InfoContext(ctx, "order email sent before; not sending it again", "key", key, "sent_at", *sentAt)
		return claim, true, nil
	}
	// Wait until the claim is stale (a little past, staleness being strict); a live
	// holder marks the email sent meanwhile, and the retry finds it so.
	wait := max(claimedAt.Add(ttl).Sub(now), 0) + claimSlack
	return claim, false, RetryAfter(fmt.Errorf("email %s claimed at %s: %w", key, claimedAt.Format(time.RFC3339Nano), errSending), wait)
}

// claimSlack is how long past a claim's staleness its email is tried again.
const claimSlack = 100 * time.Millisecond

// unclaim gives the key back after a failed send, so that the retry need not wait for
// the claim to go stale. A failure here only delays that retry.
func (m *OrderMail) unclaim(ctx context.Context, key string, claim uuid.UUID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := m.DB.Pool.Exec(ctx, `DELETE FROM sent_mail WHERE mail_key = $1 AND claim = $2 AND sent_at IS NULL`, key, claim); err != nil {
		m.log().WarnContext(ctx, "release email claim", "key", key, "err", err)
	}
}

// markSent records the send. It runs off the handler's context: the server accepted the
// email, so the record must land even if the lease is being lost. The email is sent
// whatever happens here, so the event is done: a failure is logged, not retried (a retry
// would wait out the claim and send the email again). Nor is a claim another holder took
// over meanwhile (ours outlived its TTL, in an SMTP session slower than it) retried: it
// is logged, as that holder may send the email too.
func (m *OrderMail) markSent(ctx context.Context, key string, claim uuid.UUID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	tag, err := m.DB.Pool.Exec(ctx, `UPDATE sent_mail SET sent_at = now() WHERE mail_key = $1 AND claim = $2`, key, claim)
	switch {
	case err != nil:
		m.log().ErrorContext(ctx, "order email sent but not recorded as sent; its event is done all the same", "key", key, "err", err)
	case tag.RowsAffected() == 0:
		m.log().WarnContext(ctx, "order email sent, but its claim was taken over meanwhile: another holder may send it too",
			"key", key, "claim_ttl", m.claimTTL().String())
	}
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
