// Package stripe is the Stripe payment provider: payment.Provider on Stripe's
// PaymentIntents through the official stripe-go, and the verified, deduplicated webhook
// endpoint. It is selected by STRIPE_SECRET_KEY.
//
// A charge is one PaymentIntent created and confirmed in a single call with automatic
// capture (authorize and capture at once: books ship from stock, so there is no reason
// to hold an authorization), keyed by the order id both as Stripe's idempotency key and
// as metadata order_id, which is how Lookup finds it again.
//
// Stripe's search is eventually consistent (Stripe says results may lag by up to about a
// minute), so Lookup can miss a charge made moments ago: the recovery loop's threshold
// must be well above that for Stripe (minutes, not seconds), and a charge that still
// lands after an order was given up is caught by the payment_intent.succeeded webhook,
// which checkout's completion function answers with a refund.
package stripe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	stripeapi "github.com/stripe/stripe-go/v85"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/payment"
)

// metaOrder is the PaymentIntent metadata key holding the idempotency key (order id);
// metaMethod keeps the API's payment method (CARD or WALLET).
const (
	metaOrder  = "order_id"
	metaMethod = "method"
)

// Options configure the provider.
type Options struct {
	SecretKey string // sk_live_... or sk_test_...
	// URL is the API's base URL: empty for Stripe's, stripe-mock's in tests.
	URL        string
	HTTPClient *http.Client
	// MaxNetworkRetries is stripe-go's retry count for network errors and 409/5xx
	// answers (it reuses the idempotency key, so retries are safe); 0 keeps its default.
	MaxNetworkRetries int64
}

// Provider is Stripe as a payment.Provider.
type Provider struct {
	c *stripeapi.Client
}

var _ payment.Provider = (*Provider)(nil)

// New returns the Stripe provider.
func New(opts Options) (*Provider, error) {
	if opts.SecretKey == "" {
		return nil, errors.New("stripe: a secret key is required")
	}
	cfg := &stripeapi.BackendConfig{HTTPClient: opts.HTTPClient}
	if opts.URL != "" {
		cfg.URL = stripeapi.String(opts.URL)
	}
	if opts.MaxNetworkRetries > 0 {
		cfg.MaxNetworkRetries = stripeapi.Int64(opts.MaxNetworkRetries)
	}
	return &Provider{c: stripeapi.NewClient(opts.SecretKey, stripeapi.WithBackends(stripeapi.NewBackendsWithConfig(cfg)))}, nil
}

// Charge implements payment.Provider. The token is a PaymentMethod id (pm_..., what
// Stripe.js and the mobile SDKs make today) or a legacy card token (tok_..., Apple Pay
// and Google Pay included), which is turned into a PaymentMethod first.
func (p *Provider) Charge(ctx context.Context, req payment.ChargeRequest) (*payment.Charge, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	pm := req.Token
	switch {
	case strings.HasPrefix(pm, "pm_"):
	case strings.HasPrefix(pm, "tok_"):
		params := &stripeapi.PaymentMethodCreateParams{
			Type: stripeapi.String(string(stripeapi.PaymentMethodTypeCard)),
			Card: &stripeapi.PaymentMethodCreateCardParams{Token: stripeapi.String(req.Token)},
		}
		params.SetIdempotencyKey(req.IdempotencyKey + "/payment-method")
		m, err := p.c.V1PaymentMethods.Create(ctx, params)
		if err != nil {
			return p.failed(req, err)
		}
		pm = m.ID
	default:
		return nil, bookstore.InvalidField("payment.token", "unknown payment token")
	}
	params := &stripeapi.PaymentIntentCreateParams{
		Amount:             stripeapi.Int64(req.AmountCents),
		Currency:           stripeapi.String(strings.ToLower(req.Currency)),
		PaymentMethod:      stripeapi.String(pm),
		PaymentMethodTypes: []*string{stripeapi.String(string(stripeapi.PaymentMethodTypeCard))},
		CaptureMethod:      stripeapi.String(string(stripeapi.PaymentIntentCaptureMethodAutomatic)),
		Confirm:            stripeapi.Bool(true),
		// Our API has no way to take the customer through 3-D Secure: such a card is
		// declined now rather than left waiting.
		ErrorOnRequiresAction: stripeapi.Bool(true),
	}
	params.AddMetadata(metaOrder, req.IdempotencyKey)
	params.AddMetadata(metaMethod, string(req.Method))
	params.AddExpand("payment_method")
	params.AddExpand("latest_charge")
	params.SetIdempotencyKey(req.IdempotencyKey)
	pi, err := p.c.V1PaymentIntents.Create(ctx, params)
	if err != nil {
		return p.failed(req, err)
	}
	return toCharge(pi), nil
}

// failed turns a Stripe error into a declined charge (definite), a refused request or
// an unknown outcome.
func (p *Provider) failed(req payment.ChargeRequest, err error) (*payment.Charge, error) {
	var se *stripeapi.Error
	if !errors.As(err, &se) {
		return nil, fmt.Errorf("stripe: charge %s: %w", req.IdempotencyKey, err)
	}
	switch {
	case se.Type == stripeapi.ErrorTypeCard:
		c := &payment.Charge{
			IdempotencyKey: req.IdempotencyKey,
			Status:         payment.StatusFailed,
			AmountCents:    req.AmountCents,
			Currency:       req.Currency,
			Method:         req.Method,
			FailureCode:    failureCode(se),
		}
		if se.PaymentIntent != nil {
			c = toCharge(se.PaymentIntent)
			c.Status, c.FailureCode = payment.StatusFailed, failureCode(se)
			c.IdempotencyKey, c.Method = req.IdempotencyKey, req.Method
		}
		c.FailureMessage = payment.FailureMessage(c.FailureCode)
		return c, nil
	case se.Type == stripeapi.ErrorTypeIdempotency && se.Code != stripeapi.ErrorCodeIdempotencyKeyInUse:
		// The key was used with other parameters. (key_in_use is a concurrent request
		// with the same key still running: its outcome is unknown.)
		return nil, payment.ErrIdempotencyKeyReused
	case se.Type == stripeapi.ErrorTypeInvalidRequest && se.Code == stripeapi.ErrorCodeResourceMissing:
		// "No such token / PaymentMethod"; the value is not echoed.
		return nil, bookstore.InvalidField("payment.token", "unknown payment token")
	}
	return nil, fmt.Errorf("stripe: charge %s: %s %s (request %s, HTTP %d)", req.IdempotencyKey, se.Type, se.Code, se.RequestID, se.HTTPStatusCode)
}

// failureCode maps a card error to the API's code: Stripe's decline_code
// insufficient_funds, its processing_error code, and every other decline.
func failureCode(se *stripeapi.Error) string {
	switch {
	case se.DeclineCode == stripeapi.DeclineCodeInsufficientFunds:
		return bookstore.CodeInsufficientFunds
	case se.Code == stripeapi.ErrorCodeProcessingError || se.DeclineCode == stripeapi.DeclineCodeProcessingError:
		return bookstore.CodePaymentError
	default:
		return bookstore.CodePaymentDeclined
	}
}

// Lookup implements payment.Provider through PaymentIntent search by metadata (see the
// package comment on its lag). Of several intents with the key (there should be one) a
// succeeded one wins, then the newest.
func (p *Provider) Lookup(ctx context.Context, key string) (*payment.Charge, error) {
	pi, err := p.find(ctx, key)
	if err != nil {
		return nil, err
	}
	return toCharge(pi), nil
}

func (p *Provider) find(ctx context.Context, key string) (*stripeapi.PaymentIntent, error) {
	if key == "" || len(key) > payment.MaxKeyLen {
		return nil, payment.ErrNotFound
	}
	params := &stripeapi.PaymentIntentSearchParams{}
	params.Query = fmt.Sprintf("metadata['%s']:'%s'", metaOrder, quote(key))
	params.AddExpand("data.payment_method")
	params.AddExpand("data.latest_charge")
	var best *stripeapi.PaymentIntent
	for pi, err := range p.c.V1PaymentIntents.Search(ctx, params).All(ctx) {
		if err != nil {
			return nil, fmt.Errorf("stripe: look up %s: %w", key, err)
		}
		if best == nil || rank(pi) > rank(best) || (rank(pi) == rank(best) && pi.Created > best.Created) {
			best = pi
		}
	}
	if best == nil {
		return nil, payment.ErrNotFound
	}
	return best, nil
}

// quote escapes a value for Stripe's search query language.
func quote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

func rank(pi *stripeapi.PaymentIntent) int {
	if pi.Status == stripeapi.PaymentIntentStatusSucceeded {
		return 1
	}
	return 0
}

// Refund implements payment.Provider: a full refund of the key's succeeded intent,
// idempotent through its own idempotency key.
func (p *Provider) Refund(ctx context.Context, key string) (*payment.Charge, error) {
	pi, err := p.find(ctx, key)
	if err != nil {
		return nil, err
	}
	c := toCharge(pi)
	switch c.Status {
	case payment.StatusRefunded:
		return c, nil
	case payment.StatusSucceeded:
	default:
		return nil, payment.ErrNotRefundable
	}
	if err := p.refund(ctx, pi.ID, key); err != nil {
		return nil, err
	}
	c.Status = payment.StatusRefunded
	return c, nil
}

// refund refunds the intent in full; its idempotency key makes a repeat a no-op, and
// Stripe's "already refunded" counts as done.
func (p *Provider) refund(ctx context.Context, intentID, key string) error {
	params := &stripeapi.RefundCreateParams{PaymentIntent: stripeapi.String(intentID)}
	params.AddMetadata(metaOrder, key)
	params.SetIdempotencyKey(key + "/refund")
	if _, err := p.c.V1Refunds.Create(ctx, params); err != nil {
		var se *stripeapi.Error
		if !errors.As(err, &se) || se.Code != stripeapi.ErrorCodeChargeAlreadyRefunded {
			return fmt.Errorf("stripe: refund %s: %w", key, err)
		}
	}
	return nil
}

// toCharge describes an intent. Brand and last 4 come from the expanded payment method,
// or from the charge's payment method details when it was not expanded.
func toCharge(pi *stripeapi.PaymentIntent) *payment.Charge {
	c := &payment.Charge{
		ID:             pi.ID,
		IdempotencyKey: pi.Metadata[metaOrder],
		AmountCents:    pi.Amount,
		Currency:       strings.ToUpper(string(pi.Currency)),
		Method:         payment.Method(pi.Metadata[metaMethod]),
	}
	if pi.Created > 0 {
		c.Created = unix(pi.Created)
	}
	switch pi.Status {
	case stripeapi.PaymentIntentStatusSucceeded:
		c.Status = payment.StatusSucceeded
		if ch := pi.LatestCharge; ch != nil && ch.Refunded {
			c.Status = payment.StatusRefunded
		}
	case stripeapi.PaymentIntentStatusCanceled, stripeapi.PaymentIntentStatusRequiresPaymentMethod:
		// requires_payment_method after a confirmation is Stripe's "declined, try
		// another card".
		c.Status = payment.StatusFailed
		c.FailureCode = bookstore.CodePaymentDeclined
		if e := pi.LastPaymentError; e != nil {
			c.FailureCode = failureCode(&stripeapi.Error{Code: stripeapi.ErrorCode(e.Code), DeclineCode: stripeapi.DeclineCode(e.DeclineCode)})
		}
		c.FailureMessage = payment.FailureMessage(c.FailureCode)
	default:
		c.Status = payment.StatusPending
	}
	var card *stripeapi.PaymentMethodCard
	if pm := pi.PaymentMethod; pm != nil && pm.Card != nil {
		card = pm.Card
	}
	if card != nil {
		c.Brand, c.Last4 = string(card.Brand), card.Last4
		if card.Wallet != nil {
			c.Wallet = string(card.Wallet.Type)
		}
	} else if ch := pi.LatestCharge; ch != nil && ch.PaymentMethodDetails != nil && ch.PaymentMethodDetails.Card != nil {
		d := ch.PaymentMethodDetails.Card
		c.Brand, c.Last4 = string(d.Brand), d.Last4
		if d.Wallet != nil {
			c.Wallet = string(d.Wallet.Type)
		}
	}
	if c.Method == "" {
		c.Method = payment.MethodCard
		if c.Wallet != "" {
			c.Method = payment.MethodWallet
		}
	}
	return c
}

func unix(s int64) time.Time { return time.Unix(s, 0).UTC() }
