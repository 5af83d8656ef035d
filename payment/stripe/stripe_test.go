package stripe

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	stripeapi "github.com/stripe/stripe-go/v85"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/payment"
	"github.com/shopfront/bookstore/store"
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
	// wallet, when set, is the wallet type stripe-mock's payment methods are given (its
	// fixture's is always "link"), standing for a wallet token's card.
	wallet string
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
	wallet := r.wallet
	r.mu.Unlock()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || wallet == "" || !strings.HasPrefix(req.URL.Path, "/v1/payment_methods") {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	b = linkWallet.ReplaceAll(b, []byte(`"type":"`+wallet+`"`))
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Del("Content-Length")
	return resp, nil
}

var linkWallet = regexp.MustCompile(`"type":\s*"link"`)

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
	return newProvider(t, rec, testdb.New(t)), rec
}

func newProvider(t *testing.T, rt http.RoundTripper, db *store.DB) *Provider {
	t.Helper()
	p, err := New(Options{SecretKey: "sk_test_123", URL: testdb.StripeURL(t), HTTPClient: &http.Client{Transport: rt}, Intents: db.Intents})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func paths(reqs []recorded) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.method+" "+r.path)
	}
	return out
}

func chargeReq(key, token string, m payment.Method) payment.ChargeRequest {
	return payment.ChargeRequest{IdempotencyKey: key, AmountCents: 2599, Currency: "USD", Method: m, Token: token}
}

// TestChargeWithToken: a legacy token becomes a PaymentMethod (idempotently, per order),
// then one PaymentIntent is created unconfirmed with the order id as idempotency key and
// metadata, recorded, and confirmed under its own idempotency key; stripe-mock accepting
// the requests proves their shape.
func TestChargeWithToken(t *testing.T) {
	db := testdb.New(t)
	for _, c := range []struct {
		token, wallet string
		method        payment.Method
	}{{"tok_visa", "", payment.MethodCard}, {"tok_applepay", "apple_pay", payment.MethodWallet}} {
		t.Run(c.token, func(t *testing.T) {
			rec := &recorder{wallet: c.wallet}
			p := newProvider(t, rec, db)
			key := "0b9e6a4e-2f1c-4d55-9a0e-" + c.token
			ch, err := p.Charge(context.Background(), chargeReq(key, c.token, c.method))
			if err != nil {
				t.Fatalf("Charge: %v", err)
			}
			if !strings.HasPrefix(ch.ID, "pi_") || ch.AmountCents == 0 || ch.Currency == "" {
				t.Fatalf("charge = %+v, want a PaymentIntent", ch)
			}
			reqs := rec.take()
			if len(reqs) != 3 {
				t.Fatalf("requests %v, want payment method, payment intent, confirm", paths(reqs))
			}
			pm, pi, confirm := reqs[0], reqs[1], reqs[2]
			if pm.method != http.MethodPost || pm.path != "/v1/payment_methods" || pm.idemKey != key+"/payment-method" ||
				pm.form.Get("type") != "card" || pm.form.Get("card[token]") != c.token {
				t.Fatalf("payment method request = %+v", pm)
			}
			want := map[string]string{
				"amount": "2599", "currency": "usd", "confirm": "", "capture_method": "automatic",
				"metadata[order_id]": key, "metadata[method]": string(c.method), "payment_method_types[0]": "card",
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
			row, err := db.Intents.ByKey(context.Background(), "stripe", key)
			if err != nil || !strings.HasPrefix(row.IntentID, "pi_") || row.VoidedAt != nil {
				t.Fatalf("recorded intent = %+v, %v; want the created intent, before confirming", row, err)
			}
			if confirm.path != "/v1/payment_intents/"+row.IntentID+"/confirm" || confirm.idemKey != key+"/confirm" ||
				confirm.form.Get("error_on_requires_action") != "true" {
				t.Fatalf("confirm request = %+v, want POST .../%s/confirm with Idempotency-Key %s/confirm", confirm, row.IntentID, key)
			}
			// A retry confirms the recorded intent again (Stripe replays its answer)
			// without creating anything.
			if _, err := p.Charge(context.Background(), chargeReq(key, c.token, c.method)); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if got := paths(rec.take()); len(got) != 1 || got[0] != "POST /v1/payment_intents/"+row.IntentID+"/confirm" {
				t.Fatalf("retry sent %v, want only the confirm", got)
			}
		})
	}
}

// TestChargeWithPaymentMethod: a pm_ token is used as is, after reading whether its
// card is a wallet's.
func TestChargeWithPaymentMethod(t *testing.T) {
	p, rec := newMock(t)
	if _, err := p.Charge(context.Background(), chargeReq("order-pm", "pm_card_visa", payment.MethodCard)); err != nil {
		t.Fatalf("Charge: %v", err)
	}
	reqs := rec.take()
	if got := paths(reqs); len(got) != 3 || got[0] != "GET /v1/payment_methods/pm_card_visa" || got[1] != "POST /v1/payment_intents" ||
		reqs[1].form.Get("payment_method") != "pm_card_visa" {
		t.Fatalf("requests = %v, want the payment method read, then an intent with payment_method pm_card_visa, confirmed", got)
	}
}

// TestChargeRefusesMethodMismatch: like the test PSP, a card token sent as WALLET (or a
// wallet's sent as CARD) is BAD_USER_INPUT on payment.token, and no intent is made.
func TestChargeRefusesMethodMismatch(t *testing.T) {
	for _, c := range []struct {
		name, token, wallet string
		method              payment.Method
	}{
		{"card token as wallet", "tok_visa", "", payment.MethodWallet},
		{"card payment method as wallet", "pm_card_visa", "", payment.MethodWallet},
		{"wallet token as card", "tok_applepay", "apple_pay", payment.MethodCard},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{wallet: c.wallet}
			p := newProvider(t, rec, testdb.New(t))
			_, err := p.Charge(context.Background(), chargeReq("order-w", c.token, c.method))
			var be *bookstore.Error
			if !errors.As(err, &be) || be.Code != bookstore.CodeBadUserInput || be.Field != "payment.token" || !payment.Definite(err) {
				t.Fatalf("err = %v, want BAD_USER_INPUT on payment.token", err)
			}
			for _, r := range rec.take() {
				if strings.HasPrefix(r.path, "/v1/payment_intents") {
					t.Fatalf("an intent request was sent: %s %s", r.method, r.path)
				}
			}
		})
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

// laggingSearch is Stripe during its documented search lag ("data is searchable in
// under a minute; longer during an outage"): search lists nothing. Every other request
// goes to stripe-mock.
type laggingSearch struct{ recorder }

func (l *laggingSearch) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == "/v1/payment_intents/search" {
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Request: r,
			Body: io.NopCloser(strings.NewReader(`{"object":"search_result","data":[],"has_more":false,"url":"/v1/payment_intents/search"}`))}, nil
	}
	return l.recorder.RoundTrip(r)
}

// TestLookupAndRefundDuringSearchLag (from review): right after a charge, while search
// would not list it, Lookup finds the intent by its recorded id and Refund reaches it
// (the late-charge safety net), and neither uses search.
func TestLookupAndRefundDuringSearchLag(t *testing.T) {
	lag := &laggingSearch{}
	p := newProvider(t, lag, testdb.New(t))
	ctx := context.Background()
	ch, err := p.Charge(ctx, chargeReq("order-lag", "pm_card_visa", payment.MethodCard))
	if err != nil {
		t.Fatal(err)
	}
	lag.take()
	got, err := p.Lookup(ctx, "order-lag")
	if err != nil || got.ID != ch.ID || got.IdempotencyKey != "order-lag" {
		t.Fatalf("Lookup right after the charge %s = %+v, %v; want the intent", ch.ID, got, err)
	}
	// stripe-mock's intent is never succeeded, so Refund stops at ErrNotRefundable after
	// reading it: what matters is that it found it.
	if _, err := p.Refund(ctx, "order-lag"); errors.Is(err, payment.ErrNotFound) || !errors.Is(err, payment.ErrNotRefundable) {
		t.Fatalf("Refund right after the charge: %v, want ErrNotRefundable from the intent read by id", err)
	}
	for _, r := range lag.take() {
		if r.path != "/v1/payment_intents/"+ch.ID {
			t.Fatalf("Lookup/Refund sent %s %s, want only GET /v1/payment_intents/%s", r.method, r.path, ch.ID)
		}
	}
	if _, err := p.Lookup(ctx, "order-never"); !errors.Is(err, payment.ErrNotFound) || payment.Definite(err) {
		t.Fatalf("Lookup of an unknown key: %v, want ErrNotFound that is not definite", err)
	}
}

// TestVoid: voiding a key with no intent records it closed, and a charge arriving later
// (the checkout whose request was still in flight) cancels its own intent and never
// confirms; voiding a charged key cancels its intent. Both answer a definite FAILED.
func TestVoid(t *testing.T) {
	p, rec := newMock(t)
	ctx := context.Background()

	v, err := p.Void(ctx, "order-v1")
	if err != nil || v.Status != payment.StatusFailed {
		t.Fatalf("Void before any charge = %+v, %v; want FAILED", v, err)
	}
	if reqs := rec.take(); len(reqs) != 0 {
		t.Fatalf("Void of a key without intent sent %v", paths(reqs))
	}
	late, err := p.Charge(ctx, chargeReq("order-v1", "pm_card_visa", payment.MethodCard))
	if err != nil || late.Status != payment.StatusFailed {
		t.Fatalf("late Charge of a voided key = %+v, %v; want FAILED", late, err)
	}
	for _, r := range rec.take() {
		if strings.HasSuffix(r.path, "/confirm") {
			t.Fatalf("a voided key's intent was confirmed: %s", r.path)
		}
	}
	if l, err := p.Lookup(ctx, "order-v1"); err != nil || l.Status != payment.StatusFailed {
		t.Fatalf("Lookup of a voided key = %+v, %v; want FAILED", l, err)
	}

	ch, err := p.Charge(ctx, chargeReq("order-v2", "pm_card_visa", payment.MethodCard))
	if err != nil {
		t.Fatal(err)
	}
	rec.take()
	if _, err := p.Void(ctx, "order-v2"); err != nil {
		t.Fatalf("Void of a charged key: %v", err)
	}
	reqs := rec.take()
	if len(reqs) != 1 || reqs[0].path != "/v1/payment_intents/"+ch.ID+"/cancel" || reqs[0].idemKey != "order-v2/cancel/"+ch.ID {
		t.Fatalf("Void of a charged key sent %v, want POST .../%s/cancel", paths(reqs), ch.ID)
	}
	// A charge after the void does not confirm the canceled intent.
	if _, err := p.Charge(ctx, chargeReq("order-v2", "pm_card_visa", payment.MethodCard)); err != nil {
		t.Fatal(err)
	}
	for _, r := range rec.take() {
		if strings.HasSuffix(r.path, "/confirm") {
			t.Fatalf("a voided key's intent was confirmed: %s", r.path)
		}
	}
}

// TestKeyReused: the same key with another request is ErrIdempotencyKeyReused, which is
// not definite: the key holds the first request's intent.
func TestKeyReused(t *testing.T) {
	p, _ := newMock(t)
	ctx := context.Background()
	if _, err := p.Charge(ctx, chargeReq("order-k", "pm_card_visa", payment.MethodCard)); err != nil {
		t.Fatal(err)
	}
	other := chargeReq("order-k", "pm_card_visa", payment.MethodCard)
	other.AmountCents++
	if _, err := p.Charge(ctx, other); !errors.Is(err, payment.ErrIdempotencyKeyReused) || payment.Definite(err) {
		t.Fatalf("err = %v, want ErrIdempotencyKeyReused, not definite", err)
	}
}

// TestRefundShape: the refund request names the intent, carries the order and its own
// idempotency key, counting earlier failed refunds.
func TestRefundShape(t *testing.T) {
	p, rec := newMock(t)
	for attempt, key := range []string{"order-r/refund", "order-r/refund/1"} {
		st, err := p.refund(context.Background(), "pi_123", "order-r", attempt)
		if err != nil || st != stripeapi.RefundStatusSucceeded {
			t.Fatalf("refund: %s, %v", st, err)
		}
		reqs := rec.take()
		if len(reqs) != 1 || reqs[0].path != "/v1/refunds" || reqs[0].idemKey != key ||
			reqs[0].form.Get("payment_intent") != "pi_123" || reqs[0].form.Get("metadata[order_id]") != "order-r" {
			t.Fatalf("requests = %+v, want one POST /v1/refunds for pi_123 with key %s", reqs, key)
		}
	}
	if _, err := p.Refund(context.Background(), "order-none"); !errors.Is(err, payment.ErrNotFound) {
		t.Fatalf("Refund without a charge: %v, want ErrNotFound", err)
	}
}

// TestRefundStatus: a refund is done only when Stripe says succeeded.
func TestRefundStatus(t *testing.T) {
	for _, c := range []struct {
		s    stripeapi.RefundStatus
		done bool
		err  error
	}{
		{stripeapi.RefundStatusSucceeded, true, nil},
		{stripeapi.RefundStatusPending, false, payment.ErrRefundPending},
		{stripeapi.RefundStatusRequiresAction, false, payment.ErrRefundPending},
		{stripeapi.RefundStatusFailed, false, nil},
		{stripeapi.RefundStatusCanceled, false, nil},
	} {
		if done, err := refunded(c.s); done != c.done || !errors.Is(err, c.err) {
			t.Errorf("%s: %v, %v; want %v, %v", c.s, done, err, c.done, c.err)
		}
	}
}

// TestStripeLogsGoToSlog: stripe-go's messages about a failed request (with Stripe's
// error body) reach our logger at debug level, not stderr.
func TestStripeLogsGoToSlog(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := New(Options{SecretKey: "sk_test_123", URL: testdb.StripeURL(t), Intents: testdb.New(t).Intents, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.c.V1PaymentIntents.Create(context.Background(), &stripeapi.PaymentIntentCreateParams{Amount: stripeapi.Int64(100),
		Currency: stripeapi.String("usd"), CaptureMethod: stripeapi.String("sometimes")})
	if err == nil {
		t.Fatal("stripe-mock accepted an invalid request")
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "level=DEBUG") || !strings.Contains(buf.String(), "component=stripe-go") {
		t.Fatalf("slog got %q, want stripe-go's debug messages", buf.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
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
		{"key reused", &stripeapi.Error{Type: stripeapi.ErrorTypeIdempotency}, "", false},
		{"key in use", &stripeapi.Error{Type: stripeapi.ErrorTypeIdempotency, Code: stripeapi.ErrorCodeIdempotencyKeyInUse}, "", false},
		{"no such token", &stripeapi.Error{Type: stripeapi.ErrorTypeInvalidRequest, Code: stripeapi.ErrorCodeResourceMissing}, "", true},
		{"amount too small", &stripeapi.Error{Type: stripeapi.ErrorTypeInvalidRequest, Code: stripeapi.ErrorCodeAmountTooSmall, HTTPStatusCode: 400}, bookstore.CodePaymentError, true},
		{"rate limit", &stripeapi.Error{Type: stripeapi.ErrorTypeInvalidRequest, Code: stripeapi.ErrorCodeRateLimit, HTTPStatusCode: 429}, "", false},
		{"lock timeout", &stripeapi.Error{Type: stripeapi.ErrorTypeInvalidRequest, Code: stripeapi.ErrorCodeLockTimeout, HTTPStatusCode: 429}, "", false},
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
