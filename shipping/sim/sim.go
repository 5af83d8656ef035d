// Package sim is the simulated carrier, the default in dev and tests. It keeps its
// shipments in the database (store.Shipments), as a real carrier keeps them in its own
// system, and moves each one along a route fixed when the shipment is created:
// LABEL_CREATED, IN_TRANSIT through a few hubs, OUT_FOR_DELIVERY, DELIVERED, with a
// DELAYED or a FAILED_ATTEMPT (and a second round out for delivery) on some routes.
//
// Routes are deterministic: a function of Options.Seed and the order id, so a test (or a
// person replaying a demo) sees the same route every time. Each transition happens
// Options.Step after the one before (twice that after a delay or a failed attempt); a
// Step of 0 makes every transition due at once, and tests drive time with Options.Now.
//
// Run is the advancing loop. Any number of instances may run it on one database: each
// step is a conditional update on the shipment's event seq, so every transition is
// written exactly once and in order, whichever instance gets there first.
//
// Cancel voids a shipment that is still LABEL_CREATED with the same kind of step (to a
// CANCELLED event that has no next one), so a void and the runner's next step racing
// from the same seq cannot both happen: one updates the row, the other finds its seq
// gone. A voided shipment is never due again.
package sim

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/shipping"
	"github.com/shopfront/bookstore/store"
)

// Name is the carrier name of the simulated carrier's shipments.
const Name = "SIM"

// Store is where the carrier keeps its shipments: *store.Shipments.
type Store interface {
	Create(ctx context.Context, s store.Shipment, location string, hook store.ShipmentHook) (store.Shipment, bool, error)
	ByTrackingNumber(ctx context.Context, number string) (store.Shipment, error)
	ByOrder(ctx context.Context, orderID uuid.UUID) (store.Shipment, error)
	ByOrders(ctx context.Context, orderIDs []uuid.UUID) ([]store.Shipment, error)
	Events(ctx context.Context, shipmentIDs []uuid.UUID) (map[uuid.UUID][]store.ShipmentEvent, error)
	Due(ctx context.Context, now time.Time, limit int) ([]store.Shipment, error)
	Advance(ctx context.Context, t store.Transition, hook store.ShipmentHook) (store.Shipment, bool, error)
	Postpone(ctx context.Context, id uuid.UUID, seq int, until time.Time) error
}

// Options configure the carrier. The zero value is a carrier whose shipments move
// instantly (Step 0) on the real clock.
type Options struct {
	// Seed picks the routes (with each order's id).
	Seed uint64
	// Step is the time between two transitions of a shipment (twice it after a delay or
	// a failed attempt). Dev uses a few seconds, so a person can watch; 0 = at once.
	Step time.Duration
	// Now is the clock (default time.Now); tests inject one to drive the shipments.
	Now func() time.Time
	// Methods are the shipping methods and their days (default
	// bookstore.DefaultShippingMethods); a request with another method is refused.
	Methods []bookstore.ShippingMethod
	// Hook is called with every event, inside the transaction that writes it.
	Hook shipping.Hook
	// Origin is the location of the first events (default "Bookstore warehouse, Reno, US").
	Origin string
	// Poll is how often Run looks for due shipments (default Step/2, at least 50ms and
	// at most 1s).
	Poll time.Duration
	// Batch is the most shipments one Tick advances (default 100).
	Batch int
	// RetryAfter is how long a shipment waits after a step that failed (its hook
	// failed, say) before the step is tried again (default 5s).
	RetryAfter time.Duration
	// Log receives Run's failures (default slog.Default()).
	Log *slog.Logger
}

// Carrier is the simulated carrier; it implements shipping.Carrier.
type Carrier struct {
	store Store
	opts  Options
	days  map[shipping.Method]int
	draw  func() string // a new tracking number
}

var _ shipping.Carrier = (*Carrier)(nil)

// New returns a carrier keeping its shipments in s (db.Shipments).
func New(s Store, opts Options) *Carrier {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if len(opts.Methods) == 0 {
		opts.Methods = bookstore.DefaultShippingMethods()
	}
	if opts.Origin == "" {
		opts.Origin = "Bookstore warehouse, Reno, US"
	}
	if opts.Poll <= 0 {
		opts.Poll = min(max(opts.Step/2, 50*time.Millisecond), time.Second)
	}
	if opts.Batch <= 0 {
		opts.Batch = 100
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	days := make(map[shipping.Method]int, len(opts.Methods))
	for _, m := range opts.Methods {
		days[shipping.Method(m.Code)] = m.EstimatedDays
	}
	return &Carrier{store: s, opts: opts, days: days, draw: newTrackingNumber}
}

// now is the clock at the database's precision, so that what the carrier returns equals
// what it stored.
func (c *Carrier) now() time.Time { return c.opts.Now().UTC().Truncate(time.Microsecond) }

// Tracking numbers: "SIM" and 12 characters of base32 (60 random bits), so that one
// cannot be guessed from another.
const (
	trackingPrefix = "SIM"
	trackingLen    = len(trackingPrefix) + 12
	base32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
)

// rand.Text draws from crypto/rand in the base32 alphabet.
func newTrackingNumber() string {
	return trackingPrefix + rand.Text()[:trackingLen-len(trackingPrefix)]
}

func validTrackingNumber(n string) bool {
	if len(n) != trackingLen || !strings.HasPrefix(n, trackingPrefix) {
		return false
	}
	for i := len(trackingPrefix); i < len(n); i++ {
		if strings.IndexByte(base32Alphabet, n[i]) < 0 {
			return false
		}
	}
	return true
}

// CreateShipment implements shipping.Carrier.
func (c *Carrier) CreateShipment(ctx context.Context, req shipping.ShipmentRequest) (*shipping.Shipment, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	days, ok := c.days[req.Method]
	if !ok {
		return nil, bookstore.InvalidField("method", "unknown shipping method")
	}
	dest := strings.TrimSpace(req.Recipient.City) + ", " + req.Recipient.Country
	legs := route(c.opts.Seed, req.OrderID, req.Method, c.opts.Origin, dest)
	plan, err := json.Marshal(legs)
	if err != nil {
		return nil, err
	}
	now := c.now()
	next := now.Add(c.wait(legs[1]))
	row := store.Shipment{
		ID: uuid.New(), OrderID: req.OrderID, Carrier: Name, Method: string(req.Method),
		Status: string(legs[0].Status), Plan: plan, NextAt: &next,
		EstimatedDelivery: now.Add(time.Duration(days) * 24 * time.Hour), CreatedAt: now,
	}
	var stored store.Shipment
	var created bool
	for range 3 { // a drawn tracking number is taken about once in 2^60/shipments tries
		row.TrackingNumber = c.draw()
		stored, created, err = c.store.Create(ctx, row, legs[0].Location, c.hook())
		if !errors.Is(err, store.ErrTrackingNumberTaken) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if !created && stored.Method != string(req.Method) {
		return nil, bookstore.Errorf(bookstore.CodeConflict, "the order is already shipping %s", stored.Method)
	}
	if !created {
		return c.withEvents(ctx, stored)
	}
	// A new shipment's only event is the first, which Create wrote from stored: no need
	// to read it back.
	sh := toShipment(stored)
	sh.Events = []shipping.Event{toEvent(store.ShipmentEvent{ShipmentID: stored.ID, Seq: stored.Seq, Status: stored.Status,
		Location: legs[0].Location, At: stored.CreatedAt})}
	return sh, nil
}

// Track implements shipping.Carrier. Any malformed number is simply not found.
func (c *Carrier) Track(ctx context.Context, trackingNumber string) (*shipping.Shipment, error) {
	n := strings.ToUpper(strings.TrimSpace(trackingNumber))
	if !validTrackingNumber(n) {
		return nil, shipping.ErrNotFound
	}
	s, err := c.store.ByTrackingNumber(ctx, n)
	if errors.Is(err, store.ErrShipmentNotFound) {
		return nil, shipping.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return c.withEvents(ctx, s)
}

// Cancel implements shipping.Carrier. The void is a step of the shipment like the
// runner's (store.Advance: an update conditional on the seq it read, under the row's
// lock, with the Hook in its transaction): from the LABEL_CREATED event to a CANCELLED
// one with no next step, so Due never returns the shipment again. If the runner's step
// from the same seq commits first, the void updates nothing and the shipment, read
// again, is IN_TRANSIT: too late. If the void commits first, the runner's step updates
// nothing.
func (c *Carrier) Cancel(ctx context.Context, orderID uuid.UUID) error {
	s, err := c.store.ByOrder(ctx, orderID)
	for attempt := 0; ; attempt++ {
		if errors.Is(err, store.ErrShipmentNotFound) {
			return shipping.ErrNotFound
		}
		if err != nil {
			return err
		}
		switch shipping.Status(s.Status) {
		case shipping.StatusCancelled:
			return nil // voided already (by us, or by a concurrent Cancel)
		case shipping.StatusLabelCreated:
		default:
			return &shipping.TooLateError{TrackingNumber: s.TrackingNumber, Status: shipping.Status(s.Status)}
		}
		if attempt > 0 {
			// Advance matched nothing, so the seq moved, yet the shipment is still
			// LABEL_CREATED: only LABEL_CREATED's seq is 1, so this cannot happen.
			return fmt.Errorf("shipment %s: cancel: seq %d moved but it is still %s", s.ID, s.Seq, s.Status)
		}
		now := c.now()
		if now.Before(s.UpdatedAt) { // another instance's clock is ahead: never back in time
			now = s.UpdatedAt.UTC()
		}
		var applied bool
		_, applied, err = c.store.Advance(ctx, store.Transition{ShipmentID: s.ID, FromSeq: s.Seq,
			Status: string(shipping.StatusCancelled), Location: c.opts.Origin, At: now,
			EstimatedDelivery: s.EstimatedDelivery}, c.hook())
		if err != nil {
			return err
		}
		if applied {
			c.opts.Log.DebugContext(ctx, "shipment cancelled", "shipment", s.ID, "order", s.OrderID)
			return nil
		}
		s, err = c.store.ByOrder(ctx, orderID) // it moved meanwhile: see where to
	}
}

// ShipmentsOf returns the shipments of the orders, events included, by order id (for the
// order service's dataloader): two queries whatever the number of orders.
func (c *Carrier) ShipmentsOf(ctx context.Context, orderIDs []uuid.UUID) (map[uuid.UUID][]*shipping.Shipment, error) {
	rows, err := c.store.ByOrders(ctx, orderIDs)
	if err != nil || len(rows) == 0 {
		return map[uuid.UUID][]*shipping.Shipment{}, err
	}
	ids := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	evs, err := c.store.Events(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID][]*shipping.Shipment, len(rows))
	for _, r := range rows {
		s := toShipment(r)
		s.Events = toEvents(evs[r.ID])
		out[r.OrderID] = append(out[r.OrderID], s)
	}
	return out, nil
}

func (c *Carrier) withEvents(ctx context.Context, r store.Shipment) (*shipping.Shipment, error) {
	evs, err := c.store.Events(ctx, []uuid.UUID{r.ID})
	if err != nil {
		return nil, err
	}
	s := toShipment(r)
	s.Events = toEvents(evs[r.ID])
	return s, nil
}

func (c *Carrier) hook() store.ShipmentHook {
	if c.opts.Hook == nil {
		return nil
	}
	return func(ctx context.Context, tx pgx.Tx, s store.Shipment, e store.ShipmentEvent) error {
		return c.opts.Hook(ctx, tx, toShipment(s), toEvent(e))
	}
}

// Run advances due shipments until ctx ends, and returns ctx's error. Failures are
// logged; a failed step is tried again after Options.RetryAfter, and while Tick keeps
// failing (the database is down, say) Run polls less often, up to every 10 s.
func (c *Carrier) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	wait := c.opts.Poll
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		n, err := c.Tick(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case err != nil:
			c.opts.Log.ErrorContext(ctx, "shipment steps failed", "err", err, "retry_in", wait.String())
			t.Reset(wait)
			wait = min(2*wait, 10*time.Second)
		case n == c.opts.Batch:
			wait = c.opts.Poll
			t.Reset(0) // more may be due: no pause
		default:
			wait = c.opts.Poll
			t.Reset(wait)
		}
	}
}

// Tick moves every due shipment (up to Options.Batch of them) one step, and returns how
// many steps it wrote; a step another instance wrote first is not counted. It carries
// on past a shipment whose step fails, and returns the failures joined.
func (c *Carrier) Tick(ctx context.Context) (int, error) {
	now := c.now()
	due, err := c.store.Due(ctx, now, c.opts.Batch)
	if err != nil {
		return 0, err
	}
	// Instances that read the same due shipments take them in different orders, so they
	// meet on fewer of them.
	mrand.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
	n := 0
	var errs []error
	for _, s := range due {
		applied, err := c.advance(ctx, s, now)
		if err != nil {
			if ctx.Err() != nil {
				return n, ctx.Err()
			}
			errs = append(errs, err)
			if perr := c.store.Postpone(ctx, s.ID, s.Seq, now.Add(c.opts.RetryAfter)); perr != nil {
				errs = append(errs, perr)
			}
			continue
		}
		if applied {
			n++
		}
	}
	return n, errors.Join(errs...)
}

func (c *Carrier) advance(ctx context.Context, s store.Shipment, now time.Time) (bool, error) {
	var legs []leg
	if err := json.Unmarshal(s.Plan, &legs); err != nil {
		return false, fmt.Errorf("shipment %s: read route: %w", s.ID, err)
	}
	if s.Seq < 1 || s.Seq >= len(legs) {
		return false, fmt.Errorf("shipment %s: event %d is past its route of %d", s.ID, s.Seq, len(legs))
	}
	l := legs[s.Seq]
	// now >= s.NextAt >= the last event's time, whichever instance's clock set them: a
	// history never goes back in time.
	t := store.Transition{
		ShipmentID: s.ID, FromSeq: s.Seq, Status: string(l.Status), Location: l.Location, At: now,
		EstimatedDelivery: s.EstimatedDelivery,
	}
	if l.Status == shipping.StatusDelayed || l.Status == shipping.StatusFailedAttempt {
		t.EstimatedDelivery = t.EstimatedDelivery.Add(24 * time.Hour)
	}
	if s.Seq+1 < len(legs) {
		next := now.Add(c.wait(legs[s.Seq+1]))
		t.NextAt = &next
	}
	_, applied, err := c.store.Advance(ctx, t, c.hook())
	if applied {
		c.opts.Log.DebugContext(ctx, "shipment advanced", "shipment", s.ID, "order", s.OrderID, "seq", s.Seq+1, "status", l.Status)
	}
	return applied, err
}

// wait is how long after the previous event l happens.
func (c *Carrier) wait(l leg) time.Duration { return time.Duration(l.Steps) * c.opts.Step }

// The times are UTC whatever the connection's time zone, so that they compare equal to
// the clock's.
func toShipment(r store.Shipment) *shipping.Shipment {
	return &shipping.Shipment{
		ID: r.ID, OrderID: r.OrderID, Carrier: r.Carrier, Method: shipping.Method(r.Method),
		TrackingNumber: r.TrackingNumber, Status: shipping.Status(r.Status),
		EstimatedDelivery: r.EstimatedDelivery.UTC(), CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

func toEvent(e store.ShipmentEvent) shipping.Event {
	return shipping.Event{Seq: e.Seq, Status: shipping.Status(e.Status), At: e.At.UTC(), Location: e.Location}
}

func toEvents(es []store.ShipmentEvent) []shipping.Event {
	out := make([]shipping.Event, len(es))
	for i, e := range es {
		out[i] = toEvent(e)
	}
	return out
}

// leg is one event of a route. The JSON names are short: every shipment row stores its
// route.
type leg struct {
	Status   shipping.Status `json:"s"`
	Location string          `json:"l"`
	// Steps is how many Options.Step the event comes after the one before.
	Steps int `json:"n"`
}

// hubs are the sorting centres routes pass through.
var hubs = []string{
	"Sorting centre, Sacramento, US", "Sorting centre, Salt Lake City, US", "Hub, Denver, US",
	"Hub, Memphis, US", "Hub, Louisville, US", "Sorting centre, Indianapolis, US",
	"Hub, Leipzig, DE", "Hub, Liège, BE", "Sorting centre, East Midlands, GB",
}

// Odds of the detours, in percent.
const (
	delayPercent  = 25
	failedPercent = 20
)

// route is the shipment's whole route, LABEL_CREATED first and DELIVERED last: a
// function of seed and the order id only (and the method, which drops legs, not draws),
// so an EXPRESS route is the STANDARD route of the same order with fewer hubs.
func route(seed uint64, orderID uuid.UUID, m shipping.Method, origin, dest string) []leg {
	r := mrand.New(mrand.NewPCG(seed^binary.BigEndian.Uint64(orderID[:8]), binary.BigEndian.Uint64(orderID[8:])))
	first, second := r.IntN(len(hubs)), r.IntN(len(hubs)-1)
	if second >= first {
		second++ // two different hubs
	}
	delayed := r.IntN(100) < delayPercent
	failed := r.IntN(100) < failedPercent

	legs := []leg{{shipping.StatusLabelCreated, origin, 0}, {shipping.StatusInTransit, origin, 1}}
	hop := []string{hubs[first], hubs[second]}
	if m == shipping.MethodExpress {
		hop = hop[:1]
	}
	for _, h := range hop {
		legs = append(legs, leg{shipping.StatusInTransit, h, 1})
	}
	after := 1
	if delayed {
		legs = append(legs, leg{shipping.StatusDelayed, hop[len(hop)-1], 1})
		after = 2
	}
	if m != shipping.MethodExpress {
		legs = append(legs, leg{shipping.StatusInTransit, "Delivery depot, " + dest, after})
		after = 1
	}
	legs = append(legs, leg{shipping.StatusOutForDelivery, dest, after})
	if failed {
		legs = append(legs, leg{shipping.StatusFailedAttempt, dest, 1}, leg{shipping.StatusOutForDelivery, dest, 2})
	}
	return append(legs, leg{shipping.StatusDelivered, dest, 1})
}
