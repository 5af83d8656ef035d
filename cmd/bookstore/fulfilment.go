package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore/cart"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/mail"
	"github.com/shopfront/bookstore/orders"
	"github.com/shopfront/bookstore/shipping"
	"github.com/shopfront/bookstore/shipping/sim"
	"github.com/shopfront/bookstore/store"
)

// fulfilmentConfig configures what follows checkout: the simulated carrier and the order
// emails.
type fulfilmentConfig struct {
	shippingStep time.Duration
	shippingSeed uint64
	smtpURL      string
	mailFrom     string
	mailDir      string
}

func (c *fulfilmentConfig) register(fs *flag.FlagSet, getenv func(string) string, dev bool) {
	step := 10 * time.Minute
	if dev {
		step = 3 * time.Second // a person watching in GraphiQL sees an order delivered in a minute
	}
	fs.DurationVar(&c.shippingStep, "shipping-step", envDuration(getenv, "SHIPPING_STEP", step), "time between two tracking steps of the simulated carrier (SHIPPING_STEP)")
	fs.Uint64Var(&c.shippingSeed, "shipping-seed", uint64(envInt64(getenv, "SHIPPING_SEED", 1)), "seed of the simulated carrier's routes (SHIPPING_SEED)")
	fs.StringVar(&c.smtpURL, "smtp-url", getenv("SMTP_URL"), "send order emails through this SMTP server, smtp[s]://user:pass@host:port (SMTP_URL)")
	fs.StringVar(&c.mailFrom, "mail-from", envOr(getenv, "MAIL_FROM", "Bookstore <orders@bookstore.example>"), "From of order emails (MAIL_FROM)")
	fs.StringVar(&c.mailDir, "mail-dir", getenv("MAIL_DIR"), "without SMTP_URL: write order emails as .eml files here (dev: <data-dir>/mail); empty = no emails (MAIL_DIR)")
}

// fulfilment is the order service, the carrier and the outbox handlers that act on
// orders' events.
type fulfilment struct {
	orders   *orders.Service
	carrier  *sim.Carrier
	handlers []events.Handler
}

func (c fulfilmentConfig) build(db *store.DB, co *checkout.Service, carts *cart.Service, log *slog.Logger) (*fulfilment, error) {
	if c.shippingStep < 0 {
		return nil, fmt.Errorf("SHIPPING_STEP must not be negative")
	}
	f := &fulfilment{}
	// The carrier's hook needs the order service, which needs the carrier: the hook
	// reads f.orders, set before the carrier runs.
	f.carrier = sim.New(db.Shipments, sim.Options{Seed: c.shippingSeed, Step: c.shippingStep, Methods: carts.ShippingMethods(),
		Log: log, Hook: func(ctx context.Context, tx pgx.Tx, s *shipping.Shipment, e shipping.Event) error {
			return f.orders.ShipmentHook(ctx, tx, s, e)
		}})
	o, err := orders.New(orders.Config{DB: db, Checkout: co, PSP: co.PSP(), Carrier: f.carrier, Tracking: f.carrier, Log: log})
	if err != nil {
		return nil, err
	}
	f.orders = o
	f.handlers = append(f.handlers, &events.Fulfilment{Orders: o, Log: log})
	var sender mail.Sender
	switch {
	case c.smtpURL != "":
		s, err := mail.FromURL(c.smtpURL)
		if err != nil {
			return nil, err
		}
		sender = s
		log.Info("order emails", "smtp", s.String())
	case c.mailDir != "":
		d, err := mail.NewDir(c.mailDir, log)
		if err != nil {
			return nil, fmt.Errorf("MAIL_DIR: %w", err)
		}
		sender = d
		log.Info("order emails are written as .eml files", "dir", d.Path())
	default:
		log.Warn("order emails are off: set SMTP_URL (or MAIL_DIR)")
	}
	if sender != nil {
		f.handlers = append(f.handlers, &events.OrderMail{Checkout: co, DB: db, Sender: sender, From: c.mailFrom, Log: log})
	}
	return f, nil
}
