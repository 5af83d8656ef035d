package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	stripeapi "github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/shopfront/bookstore/payment"
	"github.com/shopfront/bookstore/store"
)

// Dedup remembers which webhook events were handled: *store.WebhookEvents.
type Dedup interface {
	Claim(ctx context.Context, provider, eventID, typ string, stale time.Duration) (store.WebhookClaim, error)
	Done(ctx context.Context, provider, eventID string) error
	Release(ctx context.Context, provider, eventID string) error
}

// HandleFunc acts on a verified, first-seen event: checkout's completion function, the
// one its synchronous path calls too, so that the webhook and the checkout request
// racing for one order settle it once. It must be idempotent per order all the same: an
// event whose handling outlived the claim (see WebhookOptions.ClaimTimeout) can be
// handled twice. ev.Charge is the intent as the event carries it: status, amount and
// order, but no Brand or Last4 (its payment method is not expanded in events); Lookup
// has them.
type HandleFunc func(ctx context.Context, ev payment.Event) error

// WebhookOptions configure the webhook endpoint.
type WebhookOptions struct {
	// Secret is the endpoint's signing secret (whsec_...), required.
	Secret string
	Dedup  Dedup
	Handle HandleFunc
	Log    *slog.Logger
	// ClaimTimeout is how long a delivery being handled keeps its duplicates away; after
	// it, a redelivery is handled again (the first handler is presumed dead). 0 means 5
	// minutes.
	ClaimTimeout time.Duration
	// Tolerance is how old a signed delivery may be (replay protection); 0 means
	// stripe-go's default, 5 minutes.
	Tolerance time.Duration
}

// maxWebhookBytes caps a delivery's body. Stripe's events are far smaller; the cap keeps
// an unauthenticated client from making us buffer and HMAC gigabytes.
const maxWebhookBytes = 1 << 20

// Events we act on: the outcome of a PaymentIntent. Every other event is acknowledged
// and ignored.
var eventTypes = map[stripeapi.EventType]payment.EventType{
	stripeapi.EventTypePaymentIntentSucceeded:     payment.EventSucceeded,
	stripeapi.EventTypePaymentIntentPaymentFailed: payment.EventFailed,
	stripeapi.EventTypePaymentIntentCanceled:      payment.EventFailed,
}

// WebhookHandler serves POST /webhooks/stripe: it verifies the Stripe-Signature header
// (webhook.ConstructEvent: HMAC-SHA256 with the endpoint secret, timestamp within the
// tolerance, the API version stripe-go expects), drops events already handled (by event
// id), and hands the rest to opts.Handle.
//
// Answers: 400 for an unverifiable delivery (Stripe shows it as failed; nothing is
// done), 200 once an event is handled or was handled before, 409 while another delivery
// of the event is being handled (it may still fail, so Stripe must deliver again), 500
// when the handler failed (Stripe retries with backoff for days; the claim is released
// so that the retry is handled).
func WebhookHandler(opts WebhookOptions) (http.Handler, error) {
	switch {
	case opts.Secret == "":
		return nil, errors.New("stripe: a webhook signing secret is required")
	case opts.Dedup == nil || opts.Handle == nil:
		return nil, errors.New("stripe: the webhook handler needs Dedup and Handle")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.ClaimTimeout <= 0 {
		opts.ClaimTimeout = 5 * time.Minute
	}
	return &webhookHandler{opts}, nil
}

type webhookHandler struct{ o WebhookOptions }

func (h *webhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), h.o.Secret,
		webhook.ConstructEventOptions{Tolerance: h.o.Tolerance})
	if err != nil {
		// Never log the body: it is unauthenticated input.
		h.o.Log.WarnContext(r.Context(), "stripe webhook: rejected delivery", "err", err)
		http.Error(w, "invalid signature", http.StatusBadRequest)
		return
	}
	typ, ok := eventTypes[ev.Type]
	if !ok || ev.Data == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	var pi stripeapi.PaymentIntent
	if err := json.Unmarshal(ev.Data.Raw, &pi); err != nil || pi.Metadata[metaOrder] == "" {
		// Signed by Stripe but not one of our charges (another integration on the
		// account): nothing to do, and retrying would not change that.
		h.o.Log.InfoContext(r.Context(), "stripe webhook: event is not about an order", "event", ev.ID, "type", ev.Type)
		w.WriteHeader(http.StatusOK)
		return
	}
	ctx := r.Context()
	claim, err := h.o.Dedup.Claim(ctx, provider, ev.ID, string(ev.Type), h.o.ClaimTimeout)
	switch {
	case err != nil:
		h.o.Log.ErrorContext(ctx, "stripe webhook: claim event", "event", ev.ID, "err", err)
		http.Error(w, "try again", http.StatusInternalServerError)
		return
	case claim == store.WebhookProcessed:
		w.WriteHeader(http.StatusOK)
		return
	case claim == store.WebhookBusy:
		// Acknowledging would let Stripe drop the event, and the delivery holding the
		// claim may yet fail: Stripe retries a non-2xx answer.
		http.Error(w, "event is being handled; deliver again", http.StatusConflict)
		return
	}
	if err := h.o.Handle(ctx, payment.Event{ID: ev.ID, Type: typ, Charge: *toCharge(&pi)}); err != nil {
		h.o.Log.ErrorContext(ctx, "stripe webhook: handle event", "event", ev.ID, "type", ev.Type, "err", err)
		// The client may be gone: release on a context of our own.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if rerr := h.o.Dedup.Release(rctx, provider, ev.ID); rerr != nil {
			h.o.Log.ErrorContext(ctx, "stripe webhook: release event", "event", ev.ID, "err", rerr)
		}
		http.Error(w, "try again", http.StatusInternalServerError)
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := h.o.Dedup.Done(dctx, provider, ev.ID); err != nil {
		// Handled, but not recorded: a redelivery after the claim goes stale is handled
		// again, which the idempotent handler absorbs. Stripe need not retry.
		h.o.Log.ErrorContext(ctx, "stripe webhook: mark event done", "event", ev.ID, "err", err)
	}
	w.WriteHeader(http.StatusOK)
}
