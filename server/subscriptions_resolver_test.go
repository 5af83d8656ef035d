package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/shopfront/bookstore"
)

// A resume from the latest seq of an order in a final status (CANCELLED) completes at
// once: nothing is left to send and nothing more will come. After a DELIVERED event the
// stream waits, as the schema says, to tell of a return.
func TestOrderSubscriptionResumeAtTheEndCompletes(t *testing.T) {
	a, _ := newSubsAPI(t, false, nil)
	bs := a.cartBooks(2, 10)
	ann := a.register("ann@example.com", "Ann")
	delivered, _ := paidOrder(t, a, ann.AccessToken, "", bs[0])
	for _, s := range toDelivered {
		advance(t, a, orderUUID(t, delivered), s.s, s.e)
	}
	cancelled, _ := paidOrder(t, a, ann.AccessToken, "", bs[1])
	advance(t, a, orderUUID(t, cancelled), bookstore.OrderCancelled, bookstore.OrderEventCancelled)
	lastOf := func(order string) int64 {
		t.Helper()
		last, err := a.db.Orders.LastEventSeq(context.Background(), orderUUID(t, order))
		if err != nil {
			t.Fatal(err)
		}
		return last
	}

	ws := dialWS(t, a.url, map[string]any{"authorization": "Bearer " + ann.AccessToken}, nil)
	ws.acked()
	last := lastOf(cancelled)
	ws.subscribe("c", statusSub, map[string]any{"id": cancelled, "after": last})
	if m := ws.next("c"); m.Type != "complete" {
		t.Fatalf("cancelled order resumed after its last seq %d: %s %s, want complete", last, m.Type, m.Payload)
	}
	// One seq earlier: the last event, then complete.
	ws.subscribe("c1", statusSub, map[string]any{"id": cancelled, "after": last - 1})
	if u := update(t, ws.next("c1")); u.Event.Seq != last || u.Event.Status != "CANCELLED" {
		t.Fatalf("event %+v, want seq %d CANCELLED", u.Event, last)
	}
	if m := ws.next("c1"); m.Type != "complete" {
		t.Fatalf("after the last event: %s %s, want complete", m.Type, m.Payload)
	}

	// After the delivery: the return, then complete (RETURNED is final).
	last = lastOf(delivered)
	ws.subscribe("d", statusSub, map[string]any{"id": delivered, "after": last})
	advance(t, a, orderUUID(t, delivered), bookstore.OrderReturned, bookstore.OrderEventReturned)
	if u := update(t, ws.next("d")); u.Event.Seq != last+1 || u.Event.Status != "RETURNED" {
		t.Fatalf("event %+v, want seq %d RETURNED", u.Event, last+1)
	}
	if m := ws.next("d"); m.Type != "complete" {
		t.Fatalf("after the return: %s %s, want complete", m.Type, m.Payload)
	}
	ws.subscribe("r", statusSub, map[string]any{"id": delivered, "after": last + 1})
	if m := ws.next("r"); m.Type != "complete" {
		t.Fatalf("returned order resumed after its last seq: %s %s, want complete", m.Type, m.Payload)
	}
}

// afterSeq is the last seq the client saw: one after the order's latest, or beyond
// GraphQL's 32-bit Int, is BAD_USER_INPUT.
func TestOrderSubscriptionRefusesAfterSeqBeyondTheLatest(t *testing.T) {
	a, _ := newSubsAPI(t, false, nil)
	bs := a.cartBooks(1, 10)
	ann := a.register("ann@example.com", "Ann")
	order, _ := paidOrder(t, a, ann.AccessToken, "", bs[0])
	last, err := a.db.Orders.LastEventSeq(context.Background(), orderUUID(t, order))
	if err != nil {
		t.Fatal(err)
	}
	ws := dialWS(t, a.url, map[string]any{"authorization": "Bearer " + ann.AccessToken}, nil)
	ws.acked()
	for i, after := range []int64{last + 1, 2147483648, 1 << 53} {
		id := string(rune('a' + i))
		ws.subscribe(id, statusSub, map[string]any{"id": order, "after": after})
		if c := errorCode(t, ws.next(id)); c != bookstore.CodeBadUserInput {
			t.Fatalf("afterSeq %d: %s, want BAD_USER_INPUT", after, c)
		}
	}
	// The socket still serves: afterSeq at the latest waits for live events.
	ws.subscribe("ok", statusSub, map[string]any{"id": order, "after": last})
	advance(t, a, orderUUID(t, order), bookstore.OrderFulfilling, bookstore.OrderEventFulfilling)
	if u := update(t, ws.next("ok")); u.Event.Seq != last+1 || u.Event.Status != "FULFILLING" {
		t.Fatalf("live event %+v", u.Event)
	}
}

// A subscription selects exactly one root field (GraphQL spec): two, aliases of the same
// field included, is GRAPHQL_VALIDATION_FAILED, not INTERNAL.
func TestOrderSubscriptionRefusesTwoRootFields(t *testing.T) {
	a, _ := newSubsAPI(t, false, nil)
	bs := a.cartBooks(1, 10)
	ann := a.register("ann@example.com", "Ann")
	order, _ := paidOrder(t, a, ann.AccessToken, "", bs[0])
	ws := dialWS(t, a.url, map[string]any{"authorization": "Bearer " + ann.AccessToken}, nil)
	ws.acked()
	for i, q := range []string{
		`subscription($id: ID!) { a: orderStatusChanged(orderId: $id) { event { seq } } b: orderStatusChanged(orderId: $id) { event { seq } } }`,
		`subscription($id: ID!) { a: orderStatusChanged(orderId: $id) { event { seq } } ...F } fragment F on Subscription { b: orderStatusChanged(orderId: $id) { event { seq } } }`,
		`subscription($id: ID!) { orderStatusChanged(orderId: $id) { event { seq } } __typename }`,
	} {
		id := string(rune('a' + i))
		ws.subscribe(id, q, map[string]any{"id": order})
		if c := errorCode(t, ws.next(id)); c != "GRAPHQL_VALIDATION_FAILED" {
			t.Fatalf("%s: %s, want GRAPHQL_VALIDATION_FAILED", q, c)
		}
	}
	// One root field, the other skipped: served.
	ws.subscribe("ok", `subscription($id: ID!, $no: Boolean!) { a: orderStatusChanged(orderId: $id) { event { seq } }
		b: orderStatusChanged(orderId: $id) @skip(if: $no) { event { seq } } }`, map[string]any{"id": order, "no": true})
	if m := ws.next("ok"); m.Type != "next" || strings.Contains(string(m.Payload), `"errors"`) {
		t.Fatalf("one field left: %s %s", m.Type, m.Payload)
	}
}
