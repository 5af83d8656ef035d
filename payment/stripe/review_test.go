package stripe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/payment"
)

// unconfirmed makes stripe-mock's intents read back as Stripe has them when nobody
// confirmed them yet: status requires_confirmation (stripe-mock answers a fixed status).
type unconfirmed struct{ recorder }

func (u *unconfirmed) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := u.recorder.RoundTrip(r)
	if err != nil || r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/v1/payment_intents/") {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var pi map[string]any
	if err := json.Unmarshal(b, &pi); err != nil {
		return nil, err
	}
	pi["status"] = "requires_confirmation"
	if b, err = json.Marshal(pi); err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// TestLookupOfAnIntentNeverConfirmed (review): Charge records the intent before it
// confirms it, so a process killed between the two (or a confirm that failed followed by
// a Void whose cancel failed: a Stripe outage) leaves a recorded intent in
// requires_confirmation. Nobody will ever confirm it. The recovery loop asks Lookup and
// waits for as long as Lookup says PENDING (checkout/recover.go: "the PSP is deciding"),
// so Lookup must not say PENDING here: the order would stay PENDING_PAYMENT with its
// stock and promotion use taken, for good. It must answer what lets recovery Void the
// key (ErrNotFound, not definite), and Void must then fail the charge.
func TestLookupOfAnIntentNeverConfirmed(t *testing.T) {
	rt := &unconfirmed{}
	p := newProvider(t, rt, testdb.New(t))
	ctx := context.Background()
	req := chargeReq("order-crashed-before-confirm", "pm_card_visa", payment.MethodCard)
	// Charge's first half, then the crash.
	id, err := p.create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.intents.Record(ctx, provider, req.IdempotencyKey, id, req.Hash()); err != nil {
		t.Fatal(err)
	}
	ch, err := p.Lookup(ctx, req.IdempotencyKey)
	if err == nil && ch.Status == payment.StatusPending {
		t.Fatalf("Lookup of an intent nobody confirmed = PENDING: the recovery loop waits on it for ever")
	}
	if err != nil && (payment.Definite(err) || !errors.Is(err, payment.ErrNotFound)) {
		t.Fatalf("Lookup of an unconfirmed intent: %v, want ErrNotFound (not definite) so that recovery voids the key", err)
	}
	rt.take()
	v, err := p.Void(ctx, req.IdempotencyKey)
	if err != nil {
		t.Fatal(err)
	}
	if v.Status == payment.StatusPending || v.Status == payment.StatusSucceeded {
		t.Fatalf("Void of an unconfirmed intent = %s, want a definite failure", v.Status)
	}
	for _, r := range rt.take() {
		if strings.HasSuffix(r.path, "/confirm") {
			t.Fatalf("recovery confirmed the intent: %s", r.path)
		}
	}
}
