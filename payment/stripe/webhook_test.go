package stripe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	stripeapi "github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/payment"
)

const testSecret = "whsec_test_secret"

// eventJSON is a Stripe event as Stripe would send it for one of our intents.
func eventJSON(t *testing.T, id string, typ stripeapi.EventType, order string) []byte {
	t.Helper()
	pi := map[string]any{
		"id": "pi_" + id, "object": "payment_intent", "amount": 2599, "currency": "usd",
		"status": "succeeded", "created": 1764650000,
		"metadata": map[string]string{"order_id": order, "method": "CARD"},
	}
	if order == "" {
		pi["metadata"] = map[string]string{}
	}
	b, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": stripeapi.APIVersion, "created": 1764650000,
		"type": typ, "data": map[string]any{"object": pi},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sign(payload []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at}).Header
}

type sink struct {
	mu     sync.Mutex
	events []payment.Event
	fail   atomic.Int32 // fail this many calls
	delay  time.Duration
}

func (s *sink) handle(ctx context.Context, ev payment.Event) error {
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	if s.fail.Add(-1) >= 0 {
		return errors.New("completion failed")
	}
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
	return nil
}

func (s *sink) got() []payment.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]payment.Event(nil), s.events...)
}

func newWebhook(t *testing.T, s *sink) http.Handler {
	t.Helper()
	h, err := WebhookHandler(WebhookOptions{Secret: testSecret, Dedup: testdb.New(t).Webhooks, Handle: s.handle})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func deliver(h http.Handler, payload []byte, header string) int {
	req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(payload))
	if header != "" {
		req.Header.Set("Stripe-Signature", header)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// TestWebhookVerifiesAndDeduplicates: a signed event reaches the handler once with the
// order and outcome; its redeliveries are acknowledged without reaching it again.
func TestWebhookVerifiesAndDeduplicates(t *testing.T) {
	t.Parallel()
	s := &sink{}
	h := newWebhook(t, s)
	body := eventJSON(t, "evt_1", stripeapi.EventTypePaymentIntentSucceeded, "order-1")
	for i := range 3 {
		if code := deliver(h, body, sign(body, testSecret, time.Now())); code != http.StatusOK {
			t.Fatalf("delivery %d: status %d, want 200", i, code)
		}
	}
	got := s.got()
	if len(got) != 1 {
		t.Fatalf("handler called %d times for one event delivered 3 times, want 1", len(got))
	}
	ev := got[0]
	if ev.ID != "evt_1" || ev.Type != payment.EventSucceeded || ev.Charge.IdempotencyKey != "order-1" ||
		ev.Charge.ID != "pi_evt_1" || ev.Charge.Status != payment.StatusSucceeded || ev.Charge.AmountCents != 2599 {
		t.Fatalf("event = %+v", ev)
	}
	failed := eventJSON(t, "evt_2", stripeapi.EventTypePaymentIntentPaymentFailed, "order-2")
	if code := deliver(h, failed, sign(failed, testSecret, time.Now())); code != http.StatusOK {
		t.Fatalf("failed event: status %d", code)
	}
	if got := s.got(); len(got) != 2 || got[1].Type != payment.EventFailed || got[1].Charge.IdempotencyKey != "order-2" {
		t.Fatalf("events = %+v, want the payment_failed event for order-2 second", got)
	}
}

// TestWebhookRejectsUnverified: nothing reaches the handler without a valid, fresh
// signature by the endpoint's secret over the exact body.
func TestWebhookRejectsUnverified(t *testing.T) {
	t.Parallel()
	s := &sink{}
	h := newWebhook(t, s)
	body := eventJSON(t, "evt_bad", stripeapi.EventTypePaymentIntentSucceeded, "order-1")
	tampered := bytes.Replace(body, []byte("2599"), []byte("1"), 1)
	cases := []struct {
		name    string
		payload []byte
		header  string
	}{
		{"no signature", body, ""},
		{"garbage header", body, "t=1,v1=zz"},
		{"other secret", body, sign(body, "whsec_other", time.Now())},
		{"tampered body", tampered, sign(body, testSecret, time.Now())},
		{"replayed (too old)", body, sign(body, testSecret, time.Now().Add(-time.Hour))},
	}
	for _, c := range cases {
		if code := deliver(h, c.payload, c.header); code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", c.name, code)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/webhooks/stripe", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d, want 405", rec.Code)
	}
	big := bytes.Repeat([]byte("x"), maxWebhookBytes+1)
	if code := deliver(h, big, sign(big, testSecret, time.Now())); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: status %d, want 413", code)
	}
	if n := len(s.got()); n != 0 {
		t.Fatalf("handler called %d times for unverified deliveries", n)
	}
	// The rejections left no claim behind: the genuine delivery is still handled.
	if code := deliver(h, body, sign(body, testSecret, time.Now())); code != http.StatusOK || len(s.got()) != 1 {
		t.Fatalf("genuine delivery after rejections: status %d, %d handled", code, len(s.got()))
	}
}

// TestWebhookIgnoresOthers: events we do not act on, and intents that are not orders,
// are acknowledged (so Stripe stops sending them) and never handled.
func TestWebhookIgnoresOthers(t *testing.T) {
	t.Parallel()
	s := &sink{}
	h := newWebhook(t, s)
	for _, body := range [][]byte{
		eventJSON(t, "evt_c", "customer.created", "order-1"),
		eventJSON(t, "evt_n", stripeapi.EventTypePaymentIntentSucceeded, ""),
	} {
		if code := deliver(h, body, sign(body, testSecret, time.Now())); code != http.StatusOK {
			t.Fatalf("status %d, want 200", code)
		}
	}
	if n := len(s.got()); n != 0 {
		t.Fatalf("handler called %d times, want 0", n)
	}
}

// TestWebhookRetriesAfterFailure: a failed handling answers 500 and releases the
// event, so Stripe's retry is handled; once handled, further deliveries are not.
func TestWebhookRetriesAfterFailure(t *testing.T) {
	t.Parallel()
	s := &sink{}
	s.fail.Store(1)
	h := newWebhook(t, s)
	body := eventJSON(t, "evt_retry", stripeapi.EventTypePaymentIntentSucceeded, "order-r")
	if code := deliver(h, body, sign(body, testSecret, time.Now())); code != http.StatusInternalServerError {
		t.Fatalf("failing handler: status %d, want 500", code)
	}
	for i := range 2 {
		if code := deliver(h, body, sign(body, testSecret, time.Now())); code != http.StatusOK {
			t.Fatalf("retry %d: status %d, want 200", i, code)
		}
	}
	if n := len(s.got()); n != 1 {
		t.Fatalf("event handled %d times after one failure and two retries, want 1", n)
	}
}

// TestWebhookConcurrentDeliveries: Stripe may deliver one event several times at once;
// the handler runs once, the deliveries that find it being handled are answered 409, and
// Stripe's redelivery of those is acknowledged once it is done.
func TestWebhookConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	s := &sink{delay: 50 * time.Millisecond}
	h := newWebhook(t, s)
	const deliveries, events = 24, 3
	var wg sync.WaitGroup
	var bad atomic.Int32
	start := make(chan struct{})
	for i := range deliveries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := eventJSON(t, fmt.Sprintf("evt_c%d", i%events), stripeapi.EventTypePaymentIntentSucceeded, fmt.Sprintf("order-%d", i%events))
			header := sign(body, testSecret, time.Now())
			<-start
			for {
				switch code := deliver(h, body, header); code {
				case http.StatusOK:
					return
				case http.StatusConflict:
					time.Sleep(10 * time.Millisecond) // Stripe's retry, much sooner
				default:
					bad.Add(1)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d deliveries not acknowledged", bad.Load())
	}
	seen := map[string]int{}
	for _, ev := range s.got() {
		seen[ev.ID]++
	}
	if len(seen) != events {
		t.Fatalf("handled events %v, want %d distinct", seen, events)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("event %s handled %d times, want 1", id, n)
		}
	}
}

// TestWebhookDuplicateDuringHandlingIsRetried (from review): delivery B of an event,
// arriving while delivery A holds the claim, is not acknowledged (409): if A then fails,
// Stripe still has B's retry to deliver, and that retry is handled.
func TestWebhookDuplicateDuringHandlingIsRetried(t *testing.T) {
	t.Parallel()
	inA, releaseA := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	var handled atomic.Int32
	h, err := WebhookHandler(WebhookOptions{Secret: testSecret, Dedup: testdb.New(t).Webhooks,
		Handle: func(ctx context.Context, ev payment.Event) error {
			if calls.Add(1) == 1 {
				close(inA)
				<-releaseA
				return errors.New("completion failed (database down)")
			}
			handled.Add(1)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	body := eventJSON(t, "evt_lost", stripeapi.EventTypePaymentIntentSucceeded, "order-lost")
	codeA := make(chan int, 1)
	go func() { codeA <- deliver(h, body, sign(body, testSecret, time.Now())) }()
	<-inA
	codeB := deliver(h, body, sign(body, testSecret, time.Now()))
	close(releaseA)
	if a := <-codeA; a != http.StatusInternalServerError || codeB != http.StatusConflict {
		t.Fatalf("A (failing) answered %d, B (during A) %d; want 500 and 409", a, codeB)
	}
	if code := deliver(h, body, sign(body, testSecret, time.Now())); code != http.StatusOK || handled.Load() != 1 {
		t.Fatalf("Stripe's retry: %d, handled %d times; want 200 and once", code, handled.Load())
	}
}
