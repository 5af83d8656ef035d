package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/store"
)

// OrderEventsChannel is the Redis pub/sub channel of the order feed's hints.
const OrderEventsChannel = "bookstore:order-events"

// OrderTopics are the outbox topics of every order event type.
var OrderTopics = func() []string {
	var out []string
	for _, t := range []bookstore.OrderEventType{bookstore.OrderEventPlaced, bookstore.OrderEventPaid,
		bookstore.OrderEventPaymentFailed, bookstore.OrderEventFulfilling, bookstore.OrderEventShipped,
		bookstore.OrderEventShipmentUpdated, bookstore.OrderEventDelivered, bookstore.OrderEventCancelled,
		bookstore.OrderEventReturned} {
		out = append(out, store.OrderTopic(t))
	}
	return out
}()

// OrderFeed tells the live subscriptions of this instance that an order has new events.
//
// As an outbox consumer (in the one instance that holds its lease) it publishes a hint
// per event, {order id, seq}: on Redis pub/sub (OrderEventsChannel) when Redis is set,
// so that every instance's Listen hears it, and to this instance's subscribers directly.
// A hint carries no data a subscriber believes: on a hint a Stream reads the order's
// events after the last seq it delivered from the database (order_events, whose seqs
// are gapless and committed in order per order: each event's transaction updates the
// order's row). Replay and live delivery are one code path, so there is neither a gap
// nor a duplicate between them; a lost hint (Redis restarting, a dropped connection)
// only delays an event until the stream's periodic re-check (Recheck).
//
// Without Redis, hints reach only the relaying instance: a single-instance deployment.
// Several instances without Redis still deliver every event, within Recheck.
type OrderFeed struct {
	Redis *redis.Client
	Log   *slog.Logger
	// Recheck is how often a stream reads the database without a hint (default 10s).
	Recheck time.Duration

	mu    sync.Mutex
	watch map[uuid.UUID]map[*watcher]struct{}
}

type watcher struct{ wake chan struct{} }

// orderHint is what OrderEventsChannel carries.
type orderHint struct {
	Order uuid.UUID `json:"order"`
	Seq   int64     `json:"seq"`
}

// Consumer implements Consumer.
func (f *OrderFeed) Consumer() (string, []string) { return "order-feed", OrderTopics }

// Handle implements Handler: it wakes this instance's streams of the events' orders and
// publishes a hint per order on Redis. A failed publish fails the batch (the relay
// retries it): other instances would otherwise wait for their re-check.
func (f *OrderFeed) Handle(ctx context.Context, evs []store.Event) error {
	latest := map[uuid.UUID]int64{}
	for _, e := range evs {
		if !store.IsOrderTopic(e.Topic) {
			continue
		}
		var p store.OrderEventPayload
		_ = json.Unmarshal(e.Payload, &p) // the seq is informative only
		latest[e.AggregateID] = max(latest[e.AggregateID], p.Seq)
	}
	for id := range latest {
		f.Notify(id)
	}
	if f.Redis == nil {
		return nil
	}
	for id, seq := range latest {
		b, _ := json.Marshal(orderHint{Order: id, Seq: seq})
		if err := f.Redis.Publish(ctx, OrderEventsChannel, b).Err(); err != nil {
			return fmt.Errorf("publish order hint: %w", err)
		}
	}
	return nil
}

// Listen wakes this instance's streams on the hints other instances publish, until ctx
// ends (Redis only; without Redis it returns at once). go-redis re-subscribes after a
// reconnect by itself; what was published meanwhile is picked up by the re-checks.
func (f *OrderFeed) Listen(ctx context.Context) {
	if f.Redis == nil {
		return
	}
	sub := f.Redis.Subscribe(ctx, OrderEventsChannel)
	defer sub.Close()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			var h orderHint
			if err := json.Unmarshal([]byte(m.Payload), &h); err != nil {
				if f.Log != nil {
					f.Log.WarnContext(ctx, "malformed order hint", "err", err)
				}
				continue
			}
			f.Notify(h.Order)
		}
	}
}

// Notify wakes this instance's streams of the order.
func (f *OrderFeed) Notify(id uuid.UUID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for w := range f.watch[id] {
		select {
		case w.wake <- struct{}{}:
		default: // already woken: one read covers both
		}
	}
}

// Watchers returns how many streams of this instance follow orders (tests, metrics).
func (f *OrderFeed) Watchers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, ws := range f.watch {
		n += len(ws)
	}
	return n
}

func (f *OrderFeed) add(id uuid.UUID) *watcher {
	w := &watcher{wake: make(chan struct{}, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.watch == nil {
		f.watch = map[uuid.UUID]map[*watcher]struct{}{}
	}
	if f.watch[id] == nil {
		f.watch[id] = map[*watcher]struct{}{}
	}
	f.watch[id][w] = struct{}{}
	return w
}

func (f *OrderFeed) remove(id uuid.UUID, w *watcher) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.watch[id], w)
	if len(f.watch[id]) == 0 {
		delete(f.watch, id)
	}
}

func (f *OrderFeed) recheck() time.Duration {
	if f.Recheck <= 0 {
		return 10 * time.Second
	}
	return f.Recheck
}

// EventReader reads an order's events after a seq, oldest first, at most limit
// (store.Orders.Events).
type EventReader func(ctx context.Context, id uuid.UUID, afterSeq int64, limit int) ([]bookstore.OrderEvent, error)

// Stream follows one order's events from the database, woken by the feed.
type Stream struct {
	feed  *OrderFeed
	id    uuid.UUID
	read  EventReader
	w     *watcher
	last  int64
	reads int // successful reads
}

// streamBatch is the most events one Next returns.
const streamBatch = 100

// Follow starts following the order's events after seq afterSeq. It registers for the
// order's hints before anything is read, so an event committed between the caller's
// own reads and the first Next is not missed. Close releases it.
func (f *OrderFeed) Follow(id uuid.UUID, afterSeq int64, read EventReader) *Stream {
	return &Stream{feed: f, id: id, read: read, w: f.add(id), last: afterSeq}
}

// Last is the seq of the last event Next returned (or the afterSeq it started from).
func (s *Stream) Last() int64 { return s.last }

// SetLast moves the stream to deliver the events after seq (before the first Next).
func (s *Stream) SetLast(seq int64) { s.last = seq }

// Close stops following.
func (s *Stream) Close() { s.feed.remove(s.id, s.w) }

// Next returns the order's next events (seq > Last, in seq order, without gaps: the
// store's seqs are), waiting for a hint or the re-check while there are none. It
// returns an error when ctx ends, or when the very first read fails; later read errors
// are logged and retried at the next hint or re-check, so a database blip does not end
// every live subscription at once.
func (s *Stream) Next(ctx context.Context) ([]bookstore.OrderEvent, error) {
	tick := time.NewTicker(s.feed.recheck())
	defer tick.Stop()
	for {
		evs, err := s.read(ctx, s.id, s.last, streamBatch)
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil && s.reads == 0:
			return nil, err
		case err != nil:
			if s.feed.Log != nil {
				s.feed.Log.WarnContext(ctx, "read order events for a subscription; retrying", "order", s.id, "err", err)
			}
		default:
			s.reads++
			if len(evs) > 0 {
				s.last = evs[len(evs)-1].Seq
				return evs, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.w.wake:
		case <-tick.C:
		}
	}
}
