// Package testpsp is the embedded test payment service provider, the default in dev and
// tests. It answers Stripe's test token names the way Stripe's test mode does (see
// Tokens), so client developers can use the same tokens against either, and it keeps
// its charges in the database (store.TestPSPCharges) like a real PSP keeps them in its
// own: they survive a crash or restart of the bookstore, and are shared by every
// instance, which is what checkout's recovery loop and its crash test need.
package testpsp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/payment"
	"github.com/shopfront/bookstore/store"
)

// Ledger is where the PSP keeps its charges: *store.TestPSPCharges.
type Ledger interface {
	Create(ctx context.Context, c store.TestPSPCharge) (store.TestPSPCharge, bool, error)
	ByKey(ctx context.Context, key string) (store.TestPSPCharge, error)
	Refund(ctx context.Context, key string) (store.TestPSPCharge, error)
	Void(ctx context.Context, key, id string) (store.TestPSPCharge, error)
}

// Card is what a test token stands for.
type Card struct {
	Brand, Last4 string
	// Wallet is "apple_pay" or "google_pay" for wallet tokens (payment.MethodWallet).
	Wallet string
	// Fail is the failure code the charge is declined with; "" approves.
	Fail string
	// Slow tokens answer only after Options.SlowDelay.
	Slow bool
}

// SlowToken approves, but only after Options.SlowDelay (30 s by default): longer than
// any sensible PSP timeout, so checkout's call times out. Until it answers, Lookup
// reports ErrNotFound; the charge still lands unless the caller gave up (its context
// ended: the test PSP records nothing then) or the key was voided meanwhile (the charge
// then answers the voided charge). Stripe has no such token; the name follows its
// tok_charge... style.
const SlowToken = "tok_chargeTimeout"

// Tokens are the test tokens and what each does. Brands and last 4 digits are those of
// the test card numbers that Stripe's testing docs give for each token (tok_visa:
// 4242 4242 4242 4242, tok_mastercard: 5555 5555 5555 4444, tok_chargeDeclined:
// 4000 0000 0000 0002, ...InsufficientFunds: 4000 0000 0000 9995, ...ProcessingError:
// 4000 0000 0000 0119). Stripe documents no card behind its wallet tokens; ours carry
// a Visa (Apple Pay) and a Mastercard (Google Pay).
var Tokens = map[string]Card{
	"tok_visa":                            {Brand: "visa", Last4: "4242"},
	"tok_mastercard":                      {Brand: "mastercard", Last4: "4444"},
	"tok_chargeDeclined":                  {Brand: "visa", Last4: "0002", Fail: bookstore.CodePaymentDeclined},
	"tok_chargeDeclinedInsufficientFunds": {Brand: "visa", Last4: "9995", Fail: bookstore.CodeInsufficientFunds},
	"tok_chargeDeclinedProcessingError":   {Brand: "visa", Last4: "0119", Fail: bookstore.CodePaymentError},
	SlowToken:                             {Brand: "visa", Last4: "4242", Slow: true},
	"tok_applepay":                        {Brand: "visa", Last4: "4242", Wallet: "apple_pay"},
	"tok_googlepay":                       {Brand: "mastercard", Last4: "4444", Wallet: "google_pay"},
}

// Options tune the PSP.
type Options struct {
	// SlowDelay is how long SlowToken takes to answer; 0 means 30 s.
	SlowDelay time.Duration
}

// PSP is the embedded test PSP; it implements payment.Provider.
type PSP struct {
	ledger Ledger
	slow   time.Duration
}

var _ payment.Provider = (*PSP)(nil)

// New returns a test PSP keeping its charges in ledger.
func New(ledger Ledger, opts Options) *PSP {
	if opts.SlowDelay <= 0 {
		opts.SlowDelay = 30 * time.Second
	}
	return &PSP{ledger: ledger, slow: opts.SlowDelay}
}

// Charge implements payment.Provider. The outcome depends only on the token, and the
// first request with a key decides the charge for good: the ledger's primary key makes
// concurrent requests with one key produce one charge.
func (p *PSP) Charge(ctx context.Context, req payment.ChargeRequest) (*payment.Charge, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	card, ok := Tokens[req.Token]
	switch {
	case !ok:
		// Stripe answers "No such token" (invalid_request_error); never echo the value,
		// in case a client put something sensitive there.
		return nil, bookstore.InvalidField("payment.token", "unknown payment token")
	case (card.Wallet != "") != (req.Method == payment.MethodWallet):
		return nil, bookstore.InvalidField("payment.token", "the token is not a %s token", req.Method)
	}
	if card.Slow {
		t := time.NewTimer(p.slow)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("testpsp: charge %s: %w", req.IdempotencyKey, ctx.Err())
		}
	}
	// Like a PSP dropping a request whose client hung up, record nothing for a caller
	// that gave up (its deadline passed during the slow answer).
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("testpsp: charge %s: %w", req.IdempotencyKey, err)
	}
	status := payment.StatusSucceeded
	if card.Fail != "" {
		status = payment.StatusFailed
	}
	hash := req.Hash()
	row, created, err := p.ledger.Create(ctx, store.TestPSPCharge{
		Key:         req.IdempotencyKey,
		ID:          newID(),
		RequestHash: hash,
		Status:      string(status),
		AmountCents: req.AmountCents,
		Currency:    req.Currency,
		Method:      string(req.Method),
		Brand:       card.Brand,
		Last4:       card.Last4,
		Wallet:      card.Wallet,
		FailureCode: card.Fail,
	})
	if err != nil {
		return nil, fmt.Errorf("testpsp: %w", err)
	}
	// A voided key (no request hash) answers every later request with its voided
	// charge, as a canceled PaymentIntent does.
	if !created && len(row.RequestHash) > 0 && string(row.RequestHash) != string(hash) {
		return nil, payment.ErrIdempotencyKeyReused
	}
	return toCharge(row), nil
}

// Lookup implements payment.Provider.
func (p *PSP) Lookup(ctx context.Context, key string) (*payment.Charge, error) {
	row, err := p.ledger.ByKey(ctx, key)
	if errors.Is(err, store.ErrTestChargeNotFound) {
		return nil, payment.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("testpsp: %w", err)
	}
	return toCharge(row), nil
}

// Void implements payment.Provider: a key without a charge gets a FAILED one
// (PAYMENT_ERROR, no amount), which every later charge request with the key finds in the
// ledger instead of charging; a key with a charge keeps it.
func (p *PSP) Void(ctx context.Context, key string) (*payment.Charge, error) {
	if key == "" || len(key) > payment.MaxKeyLen {
		return nil, fmt.Errorf("testpsp: idempotency key must be 1 to %d bytes", payment.MaxKeyLen)
	}
	row, err := p.ledger.Void(ctx, key, newID())
	if err != nil {
		return nil, fmt.Errorf("testpsp: void %s: %w", key, err)
	}
	return toCharge(row), nil
}

// Refund implements payment.Provider.
func (p *PSP) Refund(ctx context.Context, key string) (*payment.Charge, error) {
	row, err := p.ledger.Refund(ctx, key)
	switch {
	case errors.Is(err, store.ErrTestChargeNotFound):
		return nil, payment.ErrNotFound
	case errors.Is(err, store.ErrTestChargeNotRefundable):
		return nil, payment.ErrNotRefundable
	case err != nil:
		return nil, fmt.Errorf("testpsp: refund %s: %w", key, err)
	}
	return toCharge(row), nil
}

func toCharge(r store.TestPSPCharge) *payment.Charge {
	c := &payment.Charge{
		ID:             r.ID,
		IdempotencyKey: r.Key,
		Status:         payment.Status(r.Status),
		AmountCents:    r.AmountCents,
		Currency:       r.Currency,
		Method:         payment.Method(r.Method),
		Brand:          r.Brand,
		Last4:          r.Last4,
		Wallet:         r.Wallet,
		FailureCode:    r.FailureCode,
		Created:        r.CreatedAt,
	}
	if r.FailureCode != "" {
		c.FailureMessage = payment.FailureMessage(r.FailureCode)
	}
	return c
}

// newID returns a charge id in Stripe's style (ch_ + 24 hex digits).
func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return "ch_" + hex.EncodeToString(b[:])
}
