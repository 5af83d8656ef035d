package resolvers

import (
	"context"
	"math"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/graph/model"
)

// StreamGate admits subscriptions: Begin refuses one over a limit (a *bookstore.Error
// with its code), and end releases what Begin took. The transports implement it (limits
// per connection and per customer); nil admits every subscription.
type StreamGate interface {
	Begin(ctx context.Context) (end func(), err error)
}

// watchEnds: a subscription ends after it delivered the order's latest event when the
// order is DELIVERED or in a final status (PAYMENT_FAILED, CANCELLED, RETURNED). A client
// that wants to hear of a return after the delivery subscribes again with afterSeq.
func watchEnds(s bookstore.OrderStatus) bool {
	return s == bookstore.OrderDelivered || s.Final()
}

// orderStatusChanged authorizes as order(id, email, accessToken) does (the order's
// customer, or a guest with the order's email and access token; anything else is
// NOT_FOUND), then replays the events after afterSeq and follows live ones (see the
// schema). A nil afterSeq starts with the order's latest event: its current state. An
// afterSeq after the latest event is BAD_USER_INPUT (no client saw it); one at the
// latest event of an order in a final status completes at once.
func (r *subscriptionResolver) orderStatusChanged(ctx context.Context, gid string, afterSeq *int, email, token *string) (<-chan *model.OrderStatusUpdate, error) {
	id, err := parseTypedID("orderId", typeOrder, gid)
	if err != nil {
		return nil, err
	}
	if afterSeq != nil && (*afterSeq < 0 || *afterSeq > math.MaxInt32) {
		// GraphQL's Int is 32-bit; gqlgen's int accepts more.
		return nil, bookstore.InvalidField("afterSeq", "must be from 0 to %d", math.MaxInt32)
	}
	if r.Feed == nil {
		return nil, bookstore.Errorf(bookstore.CodeUnavailable, "order subscriptions are not available")
	}
	end := func() {}
	if r.Streams != nil {
		if end, err = r.Streams.Begin(ctx); err != nil {
			return nil, err
		}
	}
	// Follow before reading anything: a hint for an event committed from here on wakes
	// the stream, and the stream reads the database after its last seq in any case.
	s := r.Feed.Follow(id, 0, r.DB.Orders.Events)
	fail := func(err error) (<-chan *model.OrderStatusUpdate, error) {
		s.Close()
		end()
		return nil, err
	}
	o, err := r.findOrder(ctx, id, gid, deref(email), deref(token))
	if err != nil {
		return fail(err)
	}
	// The latest seq is read after the order: its event's status is o's or a later one's.
	last, err := r.DB.Orders.LastEventSeq(ctx, id)
	if err != nil {
		return fail(err)
	}
	if afterSeq != nil {
		if int64(*afterSeq) > last {
			return fail(bookstore.InvalidField("afterSeq", "is after the order's latest event (seq %d): pass the last seq you received", last))
		}
		if int64(*afterSeq) == last && o.Status.Final() {
			// Nothing is left to send and nothing more will come: the client saw the
			// order's final event already. (After a DELIVERED event the stream waits: it
			// is how a client hears of a return, see the schema.)
			s.Close()
			end()
			ch := make(chan *model.OrderStatusUpdate)
			close(ch)
			return ch, nil
		}
		s.SetLast(int64(*afterSeq))
	} else {
		s.SetLast(max(last-1, 0))
	}
	ch := make(chan *model.OrderStatusUpdate)
	go func() {
		defer end()
		defer s.Close()
		defer close(ch)
		for {
			evs, err := s.Next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					r.Log.WarnContext(ctx, "order subscription ended by a read error", "order", id, "err", err)
				}
				return
			}
			// The order as it is now, after the events were read: its status is the
			// latest event's or a later one's.
			o, err := r.Checkouts.Order(ctx, id)
			if err != nil {
				if ctx.Err() == nil {
					r.Log.WarnContext(ctx, "order subscription ended by a read error", "order", id, "err", err)
				}
				return
			}
			for i := range evs {
				select {
				case ch <- &model.OrderStatusUpdate{Order: o, Event: &evs[i]}:
				case <-ctx.Done():
					return
				}
			}
			if last := evs[len(evs)-1]; watchEnds(last.Status) && o.Status == last.Status {
				return
			}
		}
	}()
	return ch, nil
}
