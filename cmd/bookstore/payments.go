package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/cart"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/payment"
	"github.com/shopfront/bookstore/payment/stripe"
	"github.com/shopfront/bookstore/payment/testpsp"
	"github.com/shopfront/bookstore/store"
)

// paymentConfig selects the PSP and tunes checkout's saga.
//
// The PSP is chosen, never fallen back to: PAYMENTS=stripe charges through Stripe
// (STRIPE_SECRET_KEY required), PAYMENTS=test through the embedded test PSP, whose
// documented tokens (tok_visa...) "pay" for real orders without any money moving. Unset,
// it is stripe when STRIPE_SECRET_KEY is set, else test under `dev` and an error under
// `serve`: a production server whose key went missing must not start taking tok_visa.
type paymentConfig struct {
	// payments is PAYMENTS as given ("", "stripe" or "test"); dev: under `bookstore dev`.
	payments                                  string
	dev                                       bool
	stripeKey, stripeWebhookSecret, stripeURL string
	pspTimeout                                time.Duration
	recoverAfter, recoverEvery                time.Duration
	testPSPSlow                               time.Duration
	checkoutConcurrency                       int
	checkoutQueueWait                         time.Duration
	// failpointAfterCharge stalls every checkout between the PSP's answer and tx 2: the
	// crash test kills the process there. Not a flag: an environment variable only
	// (BOOKSTORE_FAILPOINT_AFTER_CHARGE), never set in production, and refused with any
	// PSP but the test one.
	failpointAfterCharge time.Duration
}

func (c *paymentConfig) register(fs *flag.FlagSet, getenv func(string) string, dev bool) {
	c.dev = dev
	fs.StringVar(&c.payments, "payments", getenv("PAYMENTS"), "the PSP: stripe or test (the embedded test PSP: its test tokens pay without money); empty = stripe if STRIPE_SECRET_KEY is set, else test under dev and an error under serve (PAYMENTS)")
	fs.StringVar(&c.stripeKey, "stripe-secret-key", getenv("STRIPE_SECRET_KEY"), "charge through Stripe with this secret key (STRIPE_SECRET_KEY)")
	fs.StringVar(&c.stripeWebhookSecret, "stripe-webhook-secret", getenv("STRIPE_WEBHOOK_SECRET"), "signing secret of POST /webhooks/stripe (whsec_...); empty = no webhook endpoint (STRIPE_WEBHOOK_SECRET)")
	fs.StringVar(&c.stripeURL, "stripe-api-url", getenv("STRIPE_API_URL"), "Stripe API base URL; empty = Stripe's (stripe-mock in tests) (STRIPE_API_URL)")
	fs.DurationVar(&c.pspTimeout, "psp-timeout", envDuration(getenv, "PSP_TIMEOUT", 4*time.Second), "timeout of a charge (and of the void that follows an unanswered one) (PSP_TIMEOUT)")
	fs.DurationVar(&c.recoverAfter, "checkout-recover-after", envDuration(getenv, "CHECKOUT_RECOVER_AFTER", 0), "age at which the recovery loop resolves an order still PENDING_PAYMENT; 0 = 2 x PSP_TIMEOUT + 10s (CHECKOUT_RECOVER_AFTER)")
	fs.DurationVar(&c.recoverEvery, "checkout-recover-every", envDuration(getenv, "CHECKOUT_RECOVER_EVERY", 10*time.Second), "pause between recovery passes (CHECKOUT_RECOVER_EVERY)")
	fs.DurationVar(&c.testPSPSlow, "test-psp-slow-delay", envDuration(getenv, "TEST_PSP_SLOW_DELAY", 30*time.Second), "how long the test PSP's tok_chargeTimeout takes to answer (TEST_PSP_SLOW_DELAY)")
	fs.IntVar(&c.checkoutConcurrency, "checkout-concurrency", envInt(getenv, "CHECKOUT_CONCURRENCY", 0), "checkouts placing their orders at once; more wait up to CHECKOUT_QUEUE_WAIT, then are refused with UNAVAILABLE; 0 = 2 x the database pool, negative = no limit (CHECKOUT_CONCURRENCY)")
	fs.DurationVar(&c.checkoutQueueWait, "checkout-queue-wait", envDuration(getenv, "CHECKOUT_QUEUE_WAIT", time.Second), "how long a checkout waits to be admitted (CHECKOUT_QUEUE_WAIT)")
	c.failpointAfterCharge = envDuration(getenv, "BOOKSTORE_FAILPOINT_AFTER_CHARGE", 0)
}

// PSP choices (PAYMENTS).
const (
	paymentsStripe = "stripe"
	paymentsTest   = "test"
)

// psp is the PSP the configuration chooses, or why it chooses none (see paymentConfig).
func (c paymentConfig) psp() (string, error) {
	switch strings.ToLower(strings.TrimSpace(c.payments)) {
	case "":
		switch {
		case c.stripeKey != "":
			return paymentsStripe, nil
		case c.dev:
			return paymentsTest, nil
		}
		return "", errors.New("no payments: set STRIPE_SECRET_KEY to charge through Stripe, or PAYMENTS=test " +
			"to take test payments with the embedded test PSP (its test tokens, tok_visa..., pay for orders without money)")
	case paymentsStripe:
		if c.stripeKey == "" {
			return "", errors.New("PAYMENTS=stripe needs STRIPE_SECRET_KEY")
		}
		return paymentsStripe, nil
	case paymentsTest:
		if c.stripeKey != "" {
			return "", errors.New("PAYMENTS=test and STRIPE_SECRET_KEY are both set: choose one")
		}
		return paymentsTest, nil
	}
	return "", fmt.Errorf("PAYMENTS must be stripe or test, got %q", c.payments)
}

// validate checks the payment settings before anything starts.
func (c paymentConfig) validate() error {
	name, err := c.psp()
	if err != nil {
		return err
	}
	if c.failpointAfterCharge > 0 && name != paymentsTest {
		return errors.New("BOOKSTORE_FAILPOINT_AFTER_CHARGE (a crash test's) is only honoured with PAYMENTS=test")
	}
	if c.stripeWebhookSecret != "" && name != paymentsStripe {
		return errors.New("STRIPE_WEBHOOK_SECRET is set but payments are not through Stripe")
	}
	return nil
}

// provider is the PSP: Stripe or the embedded test PSP, as psp chooses.
func (c paymentConfig) provider(db *store.DB, log *slog.Logger) (payment.Provider, string, error) {
	name, err := c.psp()
	if err != nil {
		return nil, "", err
	}
	if name == paymentsTest {
		log.Warn("payments: the embedded test PSP: its test tokens pay for orders and no money moves (PAYMENTS=test)")
		return testpsp.New(db.TestPSP, testpsp.Options{SlowDelay: c.testPSPSlow}), name, nil
	}
	p, err := stripe.New(stripe.Options{SecretKey: c.stripeKey, Intents: db.Intents, URL: c.stripeURL, Log: log})
	if err != nil {
		return nil, "", fmt.Errorf("STRIPE_SECRET_KEY: %w", err)
	}
	return p, name, nil
}

// checkout builds the checkout service, and the Stripe webhook handler when its secret
// is set (nil otherwise).
func (c paymentConfig) checkout(db *store.DB, carts *cart.Service, sec *security, log *slog.Logger, requestTimeout time.Duration) (*checkout.Service, http.Handler, error) {
	if c.pspTimeout <= 0 {
		return nil, nil, fmt.Errorf("PSP_TIMEOUT must be positive")
	}
	if err := c.validate(); err != nil {
		return nil, nil, err
	}
	if requestTimeout > 0 && requestTimeout < 2*c.pspTimeout+2*time.Second {
		// A checkout that waits for a charge and then for its void must still answer
		// within the request deadline.
		return nil, nil, fmt.Errorf("REQUEST_TIMEOUT %s must be at least 2 x PSP_TIMEOUT + 2s (%s)", requestTimeout, 2*c.pspTimeout+2*time.Second)
	}
	psp, name, err := c.provider(db, log)
	if err != nil {
		return nil, nil, err
	}
	if c.checkoutQueueWait <= 0 {
		return nil, nil, fmt.Errorf("CHECKOUT_QUEUE_WAIT must be positive")
	}
	admit := checkout.Admission{Concurrency: c.checkoutConcurrency, QueueWait: c.checkoutQueueWait}
	if admit.Concurrency == 0 {
		admit.Concurrency = 2 * int(db.Pool.Config().MaxConns)
	}
	cfg := checkout.Config{DB: db, Carts: carts, Customers: sec.identity, PSP: psp, PII: sec.pii, Index: sec.index,
		Log: log, PSPTimeout: c.pspTimeout, Admission: admit}
	if d := c.failpointAfterCharge; d > 0 {
		log.Warn("failpoint: every checkout stalls between its charge and tx 2", "delay", d.String())
		cfg.AfterCharge = func(id uuid.UUID) {
			log.Warn("failpoint: charge answered; stalling before tx 2", "order", id)
			time.Sleep(d)
		}
	}
	svc, err := checkout.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	log.Info("payments", "psp", name, "psp_timeout", c.pspTimeout.String(), "webhook", c.stripeWebhookSecret != "",
		"checkout_concurrency", admit.Concurrency, "checkout_queue_wait", admit.QueueWait.String())
	if c.stripeWebhookSecret == "" {
		return svc, nil, nil
	}
	wh, err := stripe.WebhookHandler(stripe.WebhookOptions{Secret: c.stripeWebhookSecret, Dedup: db.Webhooks,
		Handle: svc.HandleEvent, Log: log})
	if err != nil {
		return nil, nil, err
	}
	return svc, wh, nil
}
