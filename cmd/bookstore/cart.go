package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/cart"
	cartredis "github.com/shopfront/bookstore/cart/redis"
	"github.com/shopfront/bookstore/server"
	"github.com/shopfront/bookstore/store"
)

// cartConfig configures carts, shipping and tax.
type cartConfig struct {
	guestTTL, customerTTL time.Duration
	maxLines, maxQuantity int
	taxRates              string
	shipping              string
	createPerHour         int
}

func (c *cartConfig) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.DurationVar(&c.guestTTL, "cart-guest-ttl", envDuration(getenv, "CART_GUEST_TTL", 7*24*time.Hour), "a guest cart is deleted this long after its last change (CART_GUEST_TTL)")
	fs.DurationVar(&c.customerTTL, "cart-customer-ttl", envDuration(getenv, "CART_CUSTOMER_TTL", 30*24*time.Hour), "a customer's cart is deleted this long after its last change (CART_CUSTOMER_TTL)")
	fs.IntVar(&c.createPerHour, "cart-create-per-hour", envInt(getenv, "CART_CREATE_PER_HOUR", 60), "carts a client IP (IPv6: /64) or customer may create per hour, in bursts of up to a sixth of it (CART_CREATE_PER_HOUR)")
	fs.IntVar(&c.maxLines, "cart-max-lines", envInt(getenv, "CART_MAX_LINES", 100), "lines per cart (CART_MAX_LINES)")
	fs.IntVar(&c.maxQuantity, "cart-max-quantity", envInt(getenv, "CART_MAX_QUANTITY", 99), "copies per cart line (CART_MAX_QUANTITY)")
	fs.StringVar(&c.taxRates, "tax-rates", getenv("TAX_RATES"), "tax rate per destination country in percent, e.g. US:0,DE:19,FR:5.5, or @file with one COUNTRY:RATE per line; empty = no tax (TAX_RATES)")
	fs.StringVar(&c.shipping, "shipping-methods", getenv("SHIPPING_METHODS"), "CODE:cents:days[:name],... e.g. STANDARD:499:5,EXPRESS:1499:2; empty = those two (SHIPPING_METHODS)")
}

// service builds the cart service: carts in Redis when rdb is set, else in the database.
func (c cartConfig) service(db *store.DB, rdb *redis.Client, log *slog.Logger) (*cart.Service, error) {
	if c.guestTTL <= 0 || c.customerTTL <= 0 {
		return nil, fmt.Errorf("--cart-guest-ttl and --cart-customer-ttl must be positive")
	}
	if c.maxLines < 1 || c.maxLines > 1000 || c.maxQuantity < 1 || c.maxQuantity > 10_000 {
		return nil, fmt.Errorf("--cart-max-lines must be 1..1000 and --cart-max-quantity 1..10000")
	}
	tax, err := parseTaxRates(c.taxRates)
	if err != nil {
		return nil, fmt.Errorf("TAX_RATES: %w", err)
	}
	ship, err := parseShipping(c.shipping)
	if err != nil {
		return nil, fmt.Errorf("SHIPPING_METHODS: %w", err)
	}
	var st cart.Store = db.Carts
	if rdb != nil {
		st = cartredis.New(rdb, "cart:")
	}
	if c.createPerHour < 1 {
		return nil, fmt.Errorf("--cart-create-per-hour must be positive")
	}
	lim, err := server.NewRateLimiter(rdb, "cart-create", auth.Limit{Rate: c.createPerHour, Period: time.Hour, Burst: max(c.createPerHour/6, 1)}, log)
	if err != nil {
		return nil, err
	}
	return cart.New(cart.Config{Store: st, GuestTTL: c.guestTTL, CustomerTTL: c.customerTTL, Tax: tax, Shipping: ship, CreateLimit: lim,
		Limits: bookstore.CartLimits{MaxLines: c.maxLines, MaxQuantity: c.maxQuantity}}), nil
}

// parseTaxRates reads "US:0,DE:19,FR:5.5" (percent, up to two decimals) or "@file"
// (one COUNTRY:RATE per line, # comments) into basis points.
func parseTaxRates(s string) (bookstore.TaxRates, error) {
	if strings.HasPrefix(s, "@") {
		b, err := os.ReadFile(s[1:])
		if err != nil {
			return nil, err
		}
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if l, _, _ = strings.Cut(l, "#"); strings.TrimSpace(l) != "" {
				lines = append(lines, strings.TrimSpace(l))
			}
		}
		s = strings.Join(lines, ",")
	}
	out := bookstore.TaxRates{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		cc, rate, ok := strings.Cut(part, ":")
		cc = strings.ToUpper(strings.TrimSpace(cc))
		if !ok || len(cc) != 2 || strings.ContainsFunc(cc, func(r rune) bool { return r < 'A' || r > 'Z' }) {
			return nil, fmt.Errorf("%q: want COUNTRY:PERCENT with a two-letter country", part)
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(rate), 64)
		// !(f >= 0 && f <= 100) also refuses NaN, which compares false with everything.
		if err != nil || !(f >= 0 && f <= 100) {
			return nil, fmt.Errorf("%q: the rate must be a percentage between 0 and 100", part)
		}
		out[cc] = int64(f*100 + 0.5)
	}
	return out, nil
}

func parseShipping(s string) ([]bookstore.ShippingMethod, error) {
	if strings.TrimSpace(s) == "" {
		return bookstore.DefaultShippingMethods(), nil
	}
	var out []bookstore.ShippingMethod
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(strings.TrimSpace(part), ":")
		if len(f) < 3 || len(f) > 4 || f[0] == "" {
			return nil, fmt.Errorf("%q: want CODE:cents:days[:name]", part)
		}
		cents, err1 := strconv.ParseInt(f[1], 10, 64)
		days, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || cents < 0 || days < 0 {
			return nil, fmt.Errorf("%q: cents and days must be non-negative integers", part)
		}
		m := bookstore.ShippingMethod{Code: strings.ToUpper(f[0]), PriceCents: cents, EstimatedDays: days, Name: f[0]}
		if len(f) == 4 {
			m.Name = f[3]
		}
		out = append(out, m)
	}
	return out, nil
}

// sweepCarts deletes expired database carts at start and then every interval, until ctx
// ends. Idempotent, so several instances may sweep at once.
func sweepCarts(ctx context.Context, db *store.DB, log *slog.Logger, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for {
			n, err := db.Carts.DeleteExpired(ctx, time.Now(), 1000)
			if err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "sweep expired carts", "err", err)
			} else if n > 0 {
				log.InfoContext(ctx, "swept expired carts", "carts", n)
			}
			if err != nil || n < 1000 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
