package stripe

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	stripeapi "github.com/stripe/stripe-go/v85"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/payment"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// These tests run the adapter against stripe-mock, which rejects any request that does
// not match Stripe's OpenAPI spec (a wrong parameter name, type or enum value) but
// answers fixtures and never declines: they prove request shapes, not outcomes (the test
// PSP proves outcomes). A recording transport shows what was sent.

type recorded struct {
	method, path, idemKey string
	form                  url.Values
}

type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := recorded{method: req.Method, path: req.URL.Path, idemKey: req.Header.Get("Idempotency-Key"), form: req.URL.Query()}
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(strings.NewReader(string(b)))
		if f, err := url.ParseQuery(string(b)); err == nil && len(f) > 0 {
			rec.form = f
		}
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recorder) take() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

func newMock(t *testing.T) (*Provider, *recorder) {
	t.Helper()
	rec := &recorder{}
	p, err := New(Options{SecretKey: "sk_test_123", URL: testdb.StripeURL(t), HTTPClient: &http.Client{Transport: rec}})
	if err != nil {
		t.Fatal(err)
	}
	return p, rec
}

func chargeReq(key, token string, m payment.Method) payment.ChargeRequest {
	return payment.ChargeRequest{IdempotencyKey: key, AmountCents: 2599, Currency: "USD", Method: m, Token: token}
}

// TestChargeWithToken: a legacy token becomes a PaymentMethod (idempotently, per order),
// then one PaymentIntent is created and confirmed with the order id as idempotency key
// and metadata; stripe-mock accepting both requests proves their shape.
func TestChargeWithToken(t *testing.T) {
	p, rec := newMock(t)
	for _, c := range []struct {
		token  string
		method payment.Method
	}{{"tok_visa", payment.MethodCard}, {"tok_applepay", payment.MethodWallet}} {
		t.Run(c.token, func(t *testing.T) {
			key := "0b9e6a4e-2f1c-4d55-9a0e-" + c.token
			ch, err := p.Charge(context.Background(), chargeReq(key, c.token, c.method))
			if err != nil {
				t.Fatalf("Charge: %v", err)
			}
			if !strings.HasPrefix(ch.ID, "pi_") || ch.AmountCents != 2599 || ch.Currency != "USD" {
				t.Fatalf("charge = %+v, want a PaymentIntent of 2599 USD", ch)
			}
			reqs := rec.take()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2 (payment method, payment intent): %+v", len(reqs), reqs)
			}
			pm, pi := reqs[0], reqs[1]
			if pm.method != http.MethodPost || pm.path != "/v1/payment_methods" || pm.idemKey != key+"/payment-method" ||
				pm.form.Get("type") != "card" || pm.form.Get("card[token]") != c.token {
				t.Fatalf("payment method request = %+v", pm)
			}
			want := map[string]string{
				"amount": "2599", "currency": "usd", "confirm": "true", "capture_method": "automatic",
				"error_on_requires_action": "true", "metadata[order_id]": key, "metadata[method]": string(c.method),
				"payment_method_types[0]": "card",
			}
			if pi.method != http.MethodPost || pi.path != "/v1/payment_intents" || pi.idemKey != key {
				t.Fatalf("payment intent request = %+v, want POST /v1/payment_intents with Idempotency-Key %s", pi, key)
			}
			for k, v := range want {
				if got := pi.form.Get(k); got != v {
					t.Errorf("payment intent %s = %q, want %q (form %v)", k, got, v, pi.form)
				}
			}
			if !strings.HasPrefix(pi.form.Get("payment_method"), "pm_") {
				t.Errorf("payment intent payment_method = %q, want the created pm_", pi.form.Get("payment_method"))
			}
		})
	}
}

// TestChargeWithPaymentMethod: a pm_ token is used as is, in one request.
func TestChargeWithPaymentMethod(t *testing.T) {
	p, rec := newMock(t)
	if _, err := p.Charge(context.Background(), chargeReq("order-pm", "pm_card_visa", payment.MethodCard)); err != nil {
		t.Fatalf("Charge: %v", err)
	}
	reqs := rec.take()
	if len(reqs) != 1 || reqs[0].path != "/v1/payment_intents" || reqs[0].form.Get("payment_method") != "pm_card_visa" {
		t.Fatalf("requests = %+v, want one payment intent with payment_method pm_card_visa", reqs)
	}
}

// TestChargeRefusesOtherTokens: anything that is not a Stripe token (a card number
// above all) never leaves the process.
func TestChargeRefusesOtherTokens(t *testing.T) {
	p, rec := newMock(t)
	for _, tok := range []string{"4242424242424242", "card_123", "visa"} {
		_, err := p.Charge(context.Background(), chargeReq("order-x", tok, payment.MethodCard))
		var be *bookstore.Error
		if !errors.As(err, &be) || be.Field != "payment.token" || strings.Contains(be.Message, tok) {
			t.Fatalf("token %q: err = %v, want BAD_USER_INPUT on payment.token without the value", tok, err)
		}
	}
	if reqs := rec.take(); len(reqs) != 0 {
		t.Fatalf("%d requests sent for refused tokens", len(reqs))
	}
}

// TestLookupSearchesByOrder: Lookup is a PaymentIntent search on the order id metadata,
// with the key escaped for Stripe's query language.
func TestLookupSearchesByOrder(t *testing.T) {
	p, rec := newMock(t)
	ch, err := p.Lookup(context.Background(), `order-'1\`)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if !strings.HasPrefix(ch.ID, "pi_") {
		t.Fatalf("Lookup = %+v, want stripe-mock's fixture intent", ch)
	}
	reqs := rec.take()
	if len(reqs) != 1 || reqs[0].method != http.MethodGet || reqs[0].path != "/v1/payment_intents/search" {
		t.Fatalf("requests = %+v, want one GET /v1/payment_intents/search", reqs)
	}
	if q := reqs[0].form.Get("query"); q != `metadata['order_id']:'order-\'1\\'` {
		t.Fatalf("query = %q", q)
	}
}

// TestRefundShape: the refund request names the intent, carries the order and its own
// idempotency key. (stripe-mock's search fixture is not a succeeded intent, so Refund
// itself stops at ErrNotRefundable there: that is checked too.)
func TestRefundShape(t *testing.T) {
	p, rec := newMock(t)
	if err := p.refund(context.Background(), "pi_123", "order-r"); err != nil {
		t.Fatalf("refund: %v", err)
	}
	reqs := rec.take()
	if len(reqs) != 1 || reqs[0].path != "/v1/refunds" || reqs[0].idemKey != "order-r/refund" ||
		reqs[0].form.Get("payment_intent") != "pi_123" || reqs[0].form.Get("metadata[order_id]") != "order-r" {
		t.Fatalf("requests = %+v, want one POST /v1/refunds for pi_123", reqs)
	}
	if _, err := p.Refund(context.Background(), "order-r"); !errors.Is(err, payment.ErrNotRefundable) {
		t.Fatalf("Refund of a requires_payment_method intent: err = %v, want ErrNotRefundable", err)
	}
}

// TestFailureMapping: Stripe's card errors become the API's payment codes, and other
// errors are told apart as refused (definite) or unknown outcomes.
func TestFailureMapping(t *testing.T) {
	req := chargeReq("order-f", "tok_visa", payment.MethodCard)
	cases := []struct {
		name     string
		err      *stripeapi.Error
		code     string // failure code of a declined charge
		definite bool
	}{
		{"generic decline", &stripeapi.Error{Type: stripeapi.ErrorTypeCard, Code: stripeapi.ErrorCodeCardDeclined, DeclineCode: "generic_decline"}, bookstore.CodePaymentDeclined, true},
		{"insufficient funds", &stripeapi.Error{Type: stripeapi.ErrorTypeCard, Code: stripeapi.ErrorCodeCardDeclined, DeclineCode: stripeapi.DeclineCodeInsufficientFunds}, bookstore.CodeInsufficientFunds, true},
		{"processing error", &stripeapi.Error{Type: stripeapi.ErrorTypeCard, Code: stripeapi.ErrorCodeProcessingError}, bookstore.CodePaymentError, true},
		{"expired card", &stripeapi.Error{Type: stripeapi.ErrorTypeCard, Code: stripeapi.ErrorCodeExpiredCard}, bookstore.CodePaymentDeclined, true},
		{"with intent", &stripeapi.Error{Type: stripeapi.ErrorTypeCard, Code: stripeapi.ErrorCodeCardDeclined,
			PaymentIntent: &stripeapi.PaymentIntent{ID: "pi_9", Amount: 2599, Currency: "usd", Status: stripeapi.PaymentIntentStatusRequiresPaymentMethod}}, bookstore.CodePaymentDeclined, true},
		{"key reused", &stripeapi.Error{Type: stripeapi.ErrorTypeIdempotency}, "", true},
		{"key in use", &stripeapi.Error{Type: stripeapi.ErrorTypeIdempotency, Code: stripeapi.ErrorCodeIdempotencyKeyInUse}, "", false},
		{"no such token", &stripeapi.Error{Type: stripeapi.ErrorTypeInvalidRequest, Code: stripeapi.ErrorCodeResourceMissing}, "", true},
		{"api error", &stripeapi.Error{Type: stripeapi.ErrorTypeAPI, HTTPStatusCode: 500}, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch, err := (&Provider{}).failed(req, c.err)
			if c.code != "" {
				if err != nil || ch.Status != payment.StatusFailed || ch.FailureCode != c.code || bookstore.ErrorCode(ch.Err()) != c.code {
					t.Fatalf("= %+v, %v; want a FAILED charge with %s", ch, err, c.code)
				}
				if ch.IdempotencyKey != req.IdempotencyKey || ch.Method != req.Method {
					t.Fatalf("declined charge %+v lost the request's key or method", ch)
				}
				if c.err.PaymentIntent != nil && ch.ID != c.err.PaymentIntent.ID {
					t.Fatalf("declined charge id %q, want the intent's %q", ch.ID, c.err.PaymentIntent.ID)
				}
				return
			}
			if err == nil || payment.Definite(err) != c.definite {
				t.Fatalf("err = %v, definite = %v; want an error with definite = %v", err, payment.Definite(err), c.definite)
			}
		})
	}
}

// TestToCharge maps intent states and card details.
func TestToCharge(t *testing.T) {
	card := &stripeapi.PaymentMethod{Card: &stripeapi.PaymentMethodCard{Brand: "mastercard", Last4: "4444",
		Wallet: &stripeapi.PaymentMethodCardWallet{Type: "google_pay"}}}
	cases := []struct {
		name string
		pi   stripeapi.PaymentIntent
		want payment.Status
	}{
		{"succeeded", stripeapi.PaymentIntent{Status: stripeapi.PaymentIntentStatusSucceeded, LatestCharge: &stripeapi.Charge{}}, payment.StatusSucceeded},
		{"refunded", stripeapi.PaymentIntent{Status: stripeapi.PaymentIntentStatusSucceeded, LatestCharge: &stripeapi.Charge{Refunded: true}}, payment.StatusRefunded},
		{"processing", stripeapi.PaymentIntent{Status: stripeapi.PaymentIntentStatusProcessing}, payment.StatusPending},
		{"declined", stripeapi.PaymentIntent{Status: stripeapi.PaymentIntentStatusRequiresPaymentMethod,
			LastPaymentError: &stripeapi.Error{DeclineCode: stripeapi.DeclineCodeInsufficientFunds}}, payment.StatusFailed},
		{"canceled", stripeapi.PaymentIntent{Status: stripeapi.PaymentIntentStatusCanceled}, payment.StatusFailed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pi := c.pi
			pi.ID, pi.Amount, pi.Currency, pi.PaymentMethod = "pi_1", 100, "eur", card
			pi.Metadata = map[string]string{metaOrder: "o-1"}
			ch := toCharge(&pi)
			if ch.Status != c.want || ch.Brand != "mastercard" || ch.Last4 != "4444" || ch.Wallet != "google_pay" ||
				ch.Method != payment.MethodWallet || ch.Currency != "EUR" || ch.IdempotencyKey != "o-1" {
				t.Fatalf("toCharge = %+v, want status %s and the card's details", ch, c.want)
			}
			if c.name == "declined" && ch.FailureCode != bookstore.CodeInsufficientFunds {
				t.Fatalf("declined failure code = %q, want INSUFFICIENT_FUNDS", ch.FailureCode)
			}
		})
	}
}

// TestMockValidatesShapes guards the premise of this file: stripe-mock refuses a request
// that Stripe would refuse (here an unknown capture method).
func TestMockValidatesShapes(t *testing.T) {
	p, _ := newMock(t)
	params := &stripeapi.PaymentIntentCreateParams{Amount: stripeapi.Int64(100), Currency: stripeapi.String("usd"),
		CaptureMethod: stripeapi.String("sometimes")}
	_, err := p.c.V1PaymentIntents.Create(context.Background(), params)
	var se *stripeapi.Error
	if !errors.As(err, &se) || se.Type != stripeapi.ErrorTypeInvalidRequest {
		t.Fatalf("err = %v, want stripe-mock's invalid_request_error", err)
	}
}
