// Package stripe is the Stripe payment provider: payment.Provider on Stripe's
// PaymentIntents through the official stripe-go, and the verified, deduplicated webhook
// endpoint. It is selected by STRIPE_SECRET_KEY.
//
// A charge is one PaymentIntent with automatic capture (authorize and capture at once:
// books ship from stock, so there is no reason to hold an authorization), made in two
// steps: the intent is created unconfirmed with the order id as Stripe's idempotency key
// (and as metadata order_id), its id is recorded durably by key (store.PaymentIntents),
// and only then is it confirmed, with an idempotency key of its own. So every intent
// that can move money is found again by its id, which Stripe reads strongly
// consistently; the adapter never relies on Stripe's search, which lags by up to about
// a minute. Void records the key as closed and cancels the intent: Stripe refuses to
// confirm a canceled intent, and a charge that finds its key closed cancels its intent
// instead of confirming it.
package stripe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	stripeapi "github.com/stripe/stripe-go/v85"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/payment"
	"github.com/shopfront/bookstore/store"
)

// metaOrder is the PaymentIntent metadata key holding the idempotency key (order id);
// metaMethod keeps the API's payment method (CARD or WALLET).
const (
	metaOrder  = "order_id"
	metaMethod = "method"
)

// provider names Stripe in the tables shared with other PSPs.
const provider = "stripe"

// Intents records which PaymentIntent each key made: *store.PaymentIntents.
type Intents interface {
	Record(ctx context.Context, provider, key, intentID string, hash []byte) (store.PaymentIntent, error)
	ByKey(ctx context.Context, provider, key string) (store.PaymentIntent, error)
	Void(ctx context.Context, provider, key string) (store.PaymentIntent, error)
}

// Options configure the provider.
type Options struct {
	SecretKey string // sk_live_... or sk_test_...
	// Intents is required: Lookup, Void and Refund find a charge's intent there.
	Intents Intents
	// URL is the API's base URL: empty for Stripe's, stripe-mock's in tests.
	URL        string
	HTTPClient *http.Client
	// MaxNetworkRetries is stripe-go's retry count for network errors and 409/5xx
	// answers (it reuses the idempotency key, so retries are safe); 0 keeps its default.
	MaxNetworkRetries int64
	// Log receives stripe-go's own messages at debug level; nil discards them.
	Log *slog.Logger
}

// Provider is Stripe as a payment.Provider.
type Provider struct {
	c       *stripeapi.Client
	intents Intents
}

var _ payment.Provider = (*Provider)(nil)

// New returns the Stripe provider.
func New(opts Options) (*Provider, error) {
	switch {
	case opts.SecretKey == "":
		return nil, errors.New("stripe: a secret key is required")
	case opts.Intents == nil:
		return nil, errors.New("stripe: Intents is required")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	cfg := &stripeapi.BackendConfig{HTTPClient: opts.HTTPClient, LeveledLogger: slogLogger{opts.Log}}
	if opts.URL != "" {
		cfg.URL = stripeapi.String(opts.URL)
	}
	if opts.MaxNetworkRetries > 0 {
		cfg.MaxNetworkRetries = stripeapi.Int64(opts.MaxNetworkRetries)
	}
	return &Provider{
		c:       stripeapi.NewClient(opts.SecretKey, stripeapi.WithBackends(stripeapi.NewBackendsWithConfig(cfg))),
		intents: opts.Intents,
	}, nil
}

// slogLogger is stripe-go's logger. stripe-go logs every failed request, declines and
// their response bodies included, at error level, to stderr by default; each of those
// failures is returned to our caller, who reports it once, so its messages are debug
// detail here.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Debugf(f string, v ...any) { s.log(f, v) }
func (s slogLogger) Infof(f string, v ...any)  { s.log(f, v) }
func (s slogLogger) Warnf(f string, v ...any)  { s.log(f, v) }
func (s slogLogger) Errorf(f string, v ...any) { s.log(f, v) }

func (s slogLogger) log(f string, v []any) {
	if s.l.Enabled(context.Background(), slog.LevelDebug) {
		s.l.Debug(fmt.Sprintf(f, v...), "component", "stripe-go")
	}
}

// Charge implements payment.Provider. The token is a PaymentMethod id (pm_..., what
// Stripe.js and the mobile SDKs make today) or a legacy card token (tok_..., Apple Pay
// and Google Pay included), which is turned into a PaymentMethod first.
func (p *Provider) Charge(ctx context.Context, req payment.ChargeRequest) (*payment.Charge, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(req.Token, "pm_") && !strings.HasPrefix(req.Token, "tok_") {
		return nil, bookstore.InvalidField("payment.token", "unknown payment token")
	}
	hash := req.Hash()
	row, err := p.intents.ByKey(ctx, provider, req.IdempotencyKey)
	if errors.Is(err, store.ErrPaymentIntentNotFound) {
		id, err := p.create(ctx, req)
		if err != nil {
			return p.failed(req, err)
		}
		// The intent is unconfirmed: until the row is written nothing can be charged.
		if row, err = p.intents.Record(ctx, provider, req.IdempotencyKey, id, hash); err != nil {
			return nil, fmt.Errorf("stripe: charge %s: %w", req.IdempotencyKey, err)
		}
		if row.IntentID != id {
			// A void came first (or, past Stripe's 24-hour idempotency window, this is a
			// second intent for the key): ours must never be confirmed.
			p.cancelQuietly(ctx, req.IdempotencyKey, id)
		}
	} else if err != nil {
		return nil, fmt.Errorf("stripe: charge %s: %w", req.IdempotencyKey, err)
	}
	if row.IntentID == "" {
		return voided(req.IdempotencyKey), nil
	}
	if len(row.RequestHash) > 0 && !bytes.Equal(row.RequestHash, hash) {
		return nil, payment.ErrIdempotencyKeyReused
	}
	if row.VoidedAt != nil {
		return p.cancel(ctx, req.IdempotencyKey, row.IntentID)
	}
	return p.confirm(ctx, req, row.IntentID)
}

// create makes the key's PaymentMethod (for a tok_ token) and its unconfirmed intent,
// both under idempotency keys derived from the order's, and checks that the card's
// wallet is the method the client named (what the test PSP checks by token name).
func (p *Provider) create(ctx context.Context, req payment.ChargeRequest) (string, error) {
	var pm *stripeapi.PaymentMethod
	var err error
	if strings.HasPrefix(req.Token, "tok_") {
		params := &stripeapi.PaymentMethodCreateParams{
			Type: stripeapi.String(string(stripeapi.PaymentMethodTypeCard)),
			Card: &stripeapi.PaymentMethodCreateCardParams{Token: stripeapi.String(req.Token)},
		}
		params.SetIdempotencyKey(req.IdempotencyKey + "/payment-method")
		pm, err = p.c.V1PaymentMethods.Create(ctx, params)
	} else {
		pm, err = p.c.V1PaymentMethods.Retrieve(ctx, req.Token, nil)
	}
	if err != nil {
		return "", err
	}
	if isWallet(pm) != (req.Method == payment.MethodWallet) {
		return "", bookstore.InvalidField("payment.token", "the token is not a %s token", req.Method)
	}
	params := &stripeapi.PaymentIntentCreateParams{
		Amount:             stripeapi.Int64(req.AmountCents),
		Currency:           stripeapi.String(strings.ToLower(req.Currency)),
		PaymentMethod:      stripeapi.String(pm.ID),
		PaymentMethodTypes: []*string{stripeapi.String(string(stripeapi.PaymentMethodTypeCard))},
		CaptureMethod:      stripeapi.String(string(stripeapi.PaymentIntentCaptureMethodAutomatic)),
	}
	params.AddMetadata(metaOrder, req.IdempotencyKey)
	params.AddMetadata(metaMethod, string(req.Method))
	params.SetIdempotencyKey(req.IdempotencyKey)
	pi, err := p.c.V1PaymentIntents.Create(ctx, params)
	if err != nil {
		return "", err
	}
	return pi.ID, nil
}

// isWallet reports whether the card came from a wallet our API offers (MethodWallet).
// Link, Stripe's own saved-card wallet, is a card to us.
func isWallet(pm *stripeapi.PaymentMethod) bool {
	if pm == nil || pm.Card == nil || pm.Card.Wallet == nil {
		return false
	}
	t := pm.Card.Wallet.Type
	return t == stripeapi.PaymentMethodCardWalletTypeApplePay || t == stripeapi.PaymentMethodCardWalletTypeGooglePay
}

// confirm confirms the recorded intent, the step that moves money.
func (p *Provider) confirm(ctx context.Context, req payment.ChargeRequest, id string) (*payment.Charge, error) {
	params := &stripeapi.PaymentIntentConfirmParams{
		// Our API has no way to take the customer through 3-D Secure: such a card is
		// declined now rather than left waiting.
		ErrorOnRequiresAction: stripeapi.Bool(true),
	}
	params.AddExpand("payment_method")
	params.AddExpand("latest_charge")
	params.SetIdempotencyKey(req.IdempotencyKey + "/confirm")
	pi, err := p.c.V1PaymentIntents.Confirm(ctx, id, params)
	if unexpectedState(err) {
		// Canceled by a Void, or confirmed by an earlier call whose idempotent answer
		// Stripe no longer keeps: the intent's state is the answer.
		return p.get(ctx, req.IdempotencyKey, id)
	}
	if err != nil {
		return p.failed(req, err)
	}
	return toCharge(pi), nil
}

func unexpectedState(err error) bool {
	var se *stripeapi.Error
	return errors.As(err, &se) && se.Code == stripeapi.ErrorCodePaymentIntentUnexpectedState
}

// get reads the intent by id: Stripe's reads by id are strongly consistent.
func (p *Provider) get(ctx context.Context, key, id string) (*payment.Charge, error) {
	c, _, err := p.read(ctx, key, id)
	return c, err
}

// read is get with the intent's own status.
func (p *Provider) read(ctx context.Context, key, id string) (*payment.Charge, stripeapi.PaymentIntentStatus, error) {
	params := &stripeapi.PaymentIntentRetrieveParams{}
	params.AddExpand("payment_method")
	params.AddExpand("latest_charge")
	pi, err := p.c.V1PaymentIntents.Retrieve(ctx, id, params)
	if err != nil {
		return nil, "", fmt.Errorf("stripe: read intent %s of %s: %w", id, key, err)
	}
	c := toCharge(pi)
	c.IdempotencyKey = key
	return c, pi.Status, nil
}

// cancel cancels the intent, unless Stripe has moved it past cancellation (succeeded,
// or processing), and returns its state.
func (p *Provider) cancel(ctx context.Context, key, id string) (*payment.Charge, error) {
	params := &stripeapi.PaymentIntentCancelParams{
		CancellationReason: stripeapi.String(string(stripeapi.PaymentIntentCancellationReasonAbandoned)),
	}
	params.AddExpand("payment_method")
	params.AddExpand("latest_charge")
	params.SetIdempotencyKey(key + "/cancel/" + id)
	pi, err := p.c.V1PaymentIntents.Cancel(ctx, id, params)
	if unexpectedState(err) {
		return p.get(ctx, key, id)
	}
	if err != nil {
		return nil, fmt.Errorf("stripe: cancel intent %s of %s: %w", id, key, err)
	}
	c := toCharge(pi)
	c.IdempotencyKey = key
	return c, nil
}

// cancelQuietly cancels an intent that was never recorded, so never confirmed: left
// alone it moves no money, so a failure only leaves an inert intent behind.
func (p *Provider) cancelQuietly(ctx context.Context, key, id string) {
	_, _ = p.cancel(ctx, key, id)
}

// voided is the charge of a key closed before any intent was made.
func voided(key string) *payment.Charge {
	return &payment.Charge{
		IdempotencyKey: key,
		Status:         payment.StatusFailed,
		FailureCode:    bookstore.CodePaymentError,
		FailureMessage: payment.FailureMessage(bookstore.CodePaymentError),
	}
}

// failed turns a Stripe error into a declined charge (definite), a refused request or
// an unknown outcome.
func (p *Provider) failed(req payment.ChargeRequest, err error) (*payment.Charge, error) {
	var be *bookstore.Error
	if errors.As(err, &be) {
		return nil, err
	}
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
	case se.Type == stripeapi.ErrorTypeInvalidRequest && se.HTTPStatusCode != http.StatusTooManyRequests &&
		se.Code != stripeapi.ErrorCodeRateLimit && se.Code != stripeapi.ErrorCodeLockTimeout:
		// Stripe refused the request as such (amount_too_small, a currency the account
		// cannot take...): it will refuse it every time, and nothing was charged. Rate
		// limits and lock timeouts share the type but are transient.
		return &payment.Charge{
			IdempotencyKey: req.IdempotencyKey,
			Status:         payment.StatusFailed,
			AmountCents:    req.AmountCents,
			Currency:       req.Currency,
			Method:         req.Method,
			FailureCode:    bookstore.CodePaymentError,
			FailureMessage: payment.FailureMessage(bookstore.CodePaymentError),
		}, nil
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

// Lookup implements payment.Provider: the recorded intent, read by id. ErrNotFound when
// no intent was recorded for the key, or its intent was never confirmed (nor can be
// completed by a customer): not definite (a charge may be in flight), Void is.
func (p *Provider) Lookup(ctx context.Context, key string) (*payment.Charge, error) {
	row, err := p.row(ctx, key)
	if err != nil {
		return nil, err
	}
	if row.IntentID == "" {
		return voided(key), nil
	}
	c, status, err := p.read(ctx, key, row.IntentID)
	if err != nil {
		return nil, err
	}
	if status == stripeapi.PaymentIntentStatusRequiresConfirmation || status == stripeapi.PaymentIntentStatusRequiresAction {
		// Waiting for us (a charge that died between recording and confirming its intent,
		// or whose Void could not cancel it) or for a customer our API cannot reach: no
		// PSP decision is coming. Not found, which is not definite: the recovery loop then
		// voids the key, and Void's answer is (a PENDING here would keep the order waiting
		// with its stock taken for good).
		return nil, payment.ErrNotFound
	}
	return c, nil
}

func (p *Provider) row(ctx context.Context, key string) (store.PaymentIntent, error) {
	if key == "" || len(key) > payment.MaxKeyLen {
		return store.PaymentIntent{}, payment.ErrNotFound
	}
	row, err := p.intents.ByKey(ctx, provider, key)
	if errors.Is(err, store.ErrPaymentIntentNotFound) {
		return store.PaymentIntent{}, payment.ErrNotFound
	}
	if err != nil {
		return store.PaymentIntent{}, fmt.Errorf("stripe: look up %s: %w", key, err)
	}
	return row, nil
}

// Void implements payment.Provider: the key is recorded as closed first (a charge
// arriving later cancels its own intent), then its intent, if any, is canceled.
func (p *Provider) Void(ctx context.Context, key string) (*payment.Charge, error) {
	if key == "" || len(key) > payment.MaxKeyLen {
		return nil, fmt.Errorf("stripe: idempotency key must be 1 to %d bytes", payment.MaxKeyLen)
	}
	row, err := p.intents.Void(ctx, provider, key)
	if err != nil {
		return nil, fmt.Errorf("stripe: void %s: %w", key, err)
	}
	if row.IntentID == "" {
		return voided(key), nil
	}
	return p.cancel(ctx, key, row.IntentID)
}

// Refund implements payment.Provider: a full refund of the key's succeeded intent. The
// intent's refunds are listed first (a list, unlike search, is consistent): a succeeded
// one means done, a pending one ErrRefundPending; failed ones are retried under a new
// idempotency key, since Stripe would replay a failed refund for the old one.
func (p *Provider) Refund(ctx context.Context, key string) (*payment.Charge, error) {
	row, err := p.row(ctx, key)
	if err != nil {
		return nil, err
	}
	if row.IntentID == "" {
		return nil, payment.ErrNotRefundable
	}
	c, err := p.get(ctx, key, row.IntentID)
	if err != nil {
		return nil, err
	}
	switch c.Status {
	case payment.StatusRefunded:
		return c, nil
	case payment.StatusSucceeded:
	default:
		return nil, payment.ErrNotRefundable
	}
	failed := 0
	params := &stripeapi.RefundListParams{PaymentIntent: stripeapi.String(row.IntentID)}
	for r, err := range p.c.V1Refunds.List(ctx, params).All(ctx) {
		if err != nil {
			return nil, fmt.Errorf("stripe: list refunds of %s: %w", key, err)
		}
		switch done, err := refunded(r.Status); {
		case done:
			c.Status = payment.StatusRefunded
			return c, nil
		case err != nil:
			return nil, err
		}
		failed++
	}
	status, err := p.refund(ctx, row.IntentID, key, failed)
	if err != nil {
		return nil, err
	}
	if done, err := refunded(status); !done {
		if err == nil {
			err = fmt.Errorf("stripe: refund %s: Stripe reports it %s", key, status)
		}
		return nil, err
	}
	c.Status = payment.StatusRefunded
	return c, nil
}

// refunded reads a refund's status: done, pending (ErrRefundPending), or failed or
// canceled (false, nil: another refund may be tried).
func refunded(s stripeapi.RefundStatus) (bool, error) {
	switch s {
	case stripeapi.RefundStatusSucceeded:
		return true, nil
	case stripeapi.RefundStatusPending, stripeapi.RefundStatusRequiresAction:
		return false, payment.ErrRefundPending
	}
	return false, nil
}

// refund refunds the intent in full and returns the refund's status. Its idempotency key
// makes a repeat a no-op; attempt counts the earlier failed refunds. Stripe's "already
// refunded" counts as done.
func (p *Provider) refund(ctx context.Context, intentID, key string, attempt int) (stripeapi.RefundStatus, error) {
	params := &stripeapi.RefundCreateParams{PaymentIntent: stripeapi.String(intentID)}
	params.AddMetadata(metaOrder, key)
	idem := key + "/refund"
	if attempt > 0 {
		idem += "/" + strconv.Itoa(attempt)
	}
	params.SetIdempotencyKey(idem)
	r, err := p.c.V1Refunds.Create(ctx, params)
	if err != nil {
		var se *stripeapi.Error
		if errors.As(err, &se) && se.Code == stripeapi.ErrorCodeChargeAlreadyRefunded {
			return stripeapi.RefundStatusSucceeded, nil
		}
		return "", fmt.Errorf("stripe: refund %s: %w", key, err)
	}
	return r.Status, nil
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
		// another card"; canceled without a payment error is a voided key.
		c.Status = payment.StatusFailed
		c.FailureCode = bookstore.CodePaymentDeclined
		if pi.Status == stripeapi.PaymentIntentStatusCanceled && pi.LastPaymentError == nil {
			c.FailureCode = bookstore.CodePaymentError
		}
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
