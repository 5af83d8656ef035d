// Package payment is what checkout needs from a payment service provider (PSP): take the
// money for an order exactly once, find that payment again after a crash, and give it
// back. Only PSP tokens cross it — never card numbers — and what it reports about the
// card (brand, last 4 digits) comes from the PSP, never from the client.
//
// Implementations: testpsp (embedded, the default in dev and tests, with Stripe's test
// token names) and stripe (Stripe PaymentIntents through stripe-go).
package payment

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/shopfront/bookstore"
)

// Provider is a PSP as checkout, its recovery loop and cancellations use it.
//
// Every method honours ctx's deadline: that is the PSP call's timeout. An error from
// Charge is definite — this call charged nothing — only when Definite says so: a
// refused request (*bookstore.Error: an unknown or malformed token, a token of another
// method). Any other error may or may not have reached the PSP (a timeout, a network
// failure, a PSP outage, a key reused): the outcome is unknown.
//
// # Resolving an unknown outcome (checkout's recovery loop)
//
// Lookup alone can never prove that nothing was charged: a charge request still in
// flight (a checkout whose PSP call has not timed out on the PSP's side, a retry inside
// a client library, a request queued in a proxy) can land after Lookup answered
// ErrNotFound. So the recovery loop, for an order stuck in PENDING_PAYMENT:
//
//  1. Lookup(order id): StatusSucceeded completes the order (PAID); StatusFailed fails
//     it (stock restored); StatusPending waits; ErrNotFound or an error: go on to 2
//     only once the order is older than the PSP call's timeout, else ask again later.
//  2. Void(order id) closes the key for good: from then on no charge with it can
//     succeed, whatever is in flight. Its answer is definite: StatusFailed — nothing
//     was charged and nothing can be, fail the order; StatusSucceeded — the charge
//     landed first, complete the order (or Refund it); StatusPending — the PSP is
//     still deciding and the charge cannot be stopped, ask again. An error: try Void
//     again later.
//
// Void, not a deadline carried by the charge request, is what closes a key, because a
// PSP enforces its own state: Stripe refuses to confirm a canceled PaymentIntent, and no
// PSP promises to drop a request whose client-side deadline has passed.
type Provider interface {
	// Charge authorizes and captures req.AmountCents in one step. The charge is keyed by
	// req.IdempotencyKey (checkout passes the order id): calling again with the same key
	// and request never charges twice and returns the first call's charge, declines
	// included; the same key with a different request is ErrIdempotencyKeyReused. A
	// charge with a voided key returns the voided charge (StatusFailed).
	//
	// A nil error means a definite answer: Status is StatusSucceeded, or StatusFailed with
	// the reason in Charge.Err(), or (asynchronous methods) StatusPending.
	Charge(ctx context.Context, req ChargeRequest) (*Charge, error)

	// Lookup returns the charge made with the idempotency key, or ErrNotFound when the
	// PSP has none yet. ErrNotFound is not definite: see "Resolving an unknown outcome".
	Lookup(ctx context.Context, key string) (*Charge, error)

	// Void closes the key: no charge with it can succeed afterwards. It returns the
	// key's charge as it stands once closed — StatusFailed when nothing was (or can now
	// be) charged, StatusSucceeded or StatusRefunded when money moved before the key was
	// closed, StatusPending when the PSP is deciding and can no longer be stopped. It is
	// idempotent. The answer is definite; an error is not (call Void again).
	Void(ctx context.Context, key string) (*Charge, error)

	// Refund gives back the whole amount of the succeeded charge made with key and
	// returns it with StatusRefunded once the PSP reports the refund succeeded;
	// ErrRefundPending while the PSP is still processing it (call again later). It is
	// idempotent: refunding a refunded charge returns it unchanged. Refunding a charge
	// that did not succeed is ErrNotRefundable; ErrNotFound when there is no charge.
	Refund(ctx context.Context, key string) (*Charge, error)
}

// Method is how the customer pays.
type Method string

// Methods of payment, as the API names them (PaymentInput.method).
const (
	MethodCard   Method = "CARD"
	MethodWallet Method = "WALLET" // Apple Pay, Google Pay: card tokens issued by a wallet
)

// Valid reports whether m is a known method.
func (m Method) Valid() bool { return m == MethodCard || m == MethodWallet }

// Status is the state of a charge at the PSP.
type Status string

// Charge states.
const (
	// StatusSucceeded: authorized and captured; the money moved.
	StatusSucceeded Status = "SUCCEEDED"
	// StatusFailed: declined or not processed; no money moved.
	StatusFailed Status = "FAILED"
	// StatusPending: the PSP has not decided yet (an asynchronous method); ask again.
	StatusPending Status = "PENDING"
	// StatusRefunded: succeeded, then refunded in full.
	StatusRefunded Status = "REFUNDED"
)

// Limits of a charge request. The token limit is far above any PSP token (Stripe's are
// ~30 characters) and keeps an abusive value from reaching the PSP or the database.
const (
	MaxTokenLen = 255
	MaxKeyLen   = 255
)

// ChargeRequest is one payment to take.
type ChargeRequest struct {
	// IdempotencyKey identifies the payment at the PSP: checkout uses the order id.
	IdempotencyKey string
	AmountCents    int64
	Currency       string // ISO 4217, e.g. "USD"
	Method         Method
	Token          string // a PSP token (tok_visa, ...), never card data
}

// Validate checks the request before it is sent. The field names are the checkout
// input's (payment.method, payment.token) where the client supplied the value.
func (r ChargeRequest) Validate() error {
	switch {
	case r.IdempotencyKey == "" || len(r.IdempotencyKey) > MaxKeyLen:
		return fmt.Errorf("payment: idempotency key must be 1 to %d bytes", MaxKeyLen)
	case r.AmountCents <= 0:
		return fmt.Errorf("payment: amount must be positive, got %d", r.AmountCents)
	case len(r.Currency) != 3:
		return fmt.Errorf("payment: currency %q is not an ISO 4217 code", r.Currency)
	case !r.Method.Valid():
		return bookstore.InvalidField("payment.method", "unknown payment method %q", r.Method)
	case r.Token == "" || len(r.Token) > MaxTokenLen:
		return bookstore.InvalidField("payment.token", "the payment token must be 1 to %d characters", MaxTokenLen)
	}
	return nil
}

// Hash identifies the request's parameters, to tell a retry (same hash) from a key
// reused for another payment, as Stripe does. The token is hashed, never stored.
func (r ChargeRequest) Hash() []byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(r.AmountCents))
	h.Write(n[:])
	for _, s := range []string{r.Currency, string(r.Method), r.Token} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	return h.Sum(nil)
}

// Charge is a payment as the PSP reports it.
type Charge struct {
	ID             string // the PSP's reference (pi_..., ch_...)
	IdempotencyKey string
	Status         Status
	AmountCents    int64
	Currency       string
	Method         Method
	// Brand ("visa", "mastercard", ...) and Last4 are the PSP's description of the card
	// (for a wallet, of the card in the wallet); empty when the PSP gave none.
	Brand string
	Last4 string
	// Wallet is "apple_pay" or "google_pay" for wallet payments.
	Wallet string
	// FailureCode is bookstore.CodePaymentDeclined, CodeInsufficientFunds or
	// CodePaymentError when Status is StatusFailed; FailureMessage is safe to show.
	FailureCode    string
	FailureMessage string
	Created        time.Time
}

// Err is the client-facing error of a failed charge (a *bookstore.Error carrying
// FailureCode), nil for any other status.
func (c *Charge) Err() error {
	if c.Status != StatusFailed {
		return nil
	}
	code, msg := c.FailureCode, c.FailureMessage
	if code == "" {
		code = bookstore.CodePaymentError
	}
	if msg == "" {
		msg = FailureMessage(code)
	}
	return &bookstore.Error{Code: code, Message: msg}
}

// FailureMessage is the default client message for a failure code.
func FailureMessage(code string) string {
	switch code {
	case bookstore.CodePaymentDeclined:
		return "the payment was declined; try another card"
	case bookstore.CodeInsufficientFunds:
		return "the card has insufficient funds; try another card"
	default:
		return "the payment could not be processed; nothing was charged, try again"
	}
}

var (
	// ErrNotFound: the PSP has no charge with this idempotency key (yet: see Provider).
	ErrNotFound = errors.New("payment: no charge with this idempotency key")
	// ErrIdempotencyKeyReused: the key was used before with a different request
	// (amount, currency, method or token). This call charged nothing, but the key holds
	// the earlier request's charge, which may have succeeded: Lookup it.
	ErrIdempotencyKeyReused = errors.New("payment: idempotency key reused with a different request")
	// ErrNotRefundable: the charge did not succeed, so there is nothing to refund.
	ErrNotRefundable = errors.New("payment: the charge did not succeed: nothing to refund")
	// ErrRefundPending: the PSP accepted the refund and has not completed it yet.
	ErrRefundPending = errors.New("payment: the refund is pending at the PSP")
)

// Definite reports whether err, returned by Charge, is a refusal of the request before
// any money could move (a *bookstore.Error): the caller may tell the customer nothing
// was charged. It is false for every other error, ErrNotFound and
// ErrIdempotencyKeyReused included: neither says the key holds no charge (a charge may
// be in flight, or an earlier request's charge may have succeeded). Only a charge's
// status (StatusFailed from Charge, Lookup or Void) says no money moved for the key.
func Definite(err error) bool {
	var be *bookstore.Error
	return errors.As(err, &be)
}

// EventType is what a PSP notification (webhook) says happened to a charge.
type EventType string

// Event types that checkout acts on.
const (
	EventSucceeded EventType = "payment.succeeded"
	EventFailed    EventType = "payment.failed"
	EventRefunded  EventType = "payment.refunded"
)

// Event is a verified, deduplicated PSP notification about a charge. Checkout's
// completion function (the one the synchronous path uses too) consumes it; the order is
// Charge.IdempotencyKey.
type Event struct {
	ID     string // the PSP's event id (the deduplication key)
	Type   EventType
	Charge Charge
}
