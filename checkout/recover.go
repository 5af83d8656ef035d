package checkout

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/payment"
)

// Leases is the store's lease table (*store.Outbox): one recovery loop runs at a time
// across instances.
type Leases interface {
	AcquireLease(ctx context.Context, name string, holder uuid.UUID, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name string, holder uuid.UUID) error
}

// RecoverOptions tune the recovery loop.
type RecoverOptions struct {
	// After is how old a PENDING_PAYMENT order must be before the loop acts on it:
	// longer than a checkout request takes to settle (two PSP timeouts: the charge and
	// the void). 0 means 2 x PSPTimeout + 10 s.
	After time.Duration
	// Every is the pause between passes; 0 means 10 s.
	Every time.Duration
	// Batch is how many orders one pass looks at; 0 means 100.
	Batch int

	// renew, when set, extends the recovery lease before each order; false ends the
	// pass (another instance holds the lease now).
	renew func() bool
}

const recoveryLease = "checkout-recovery"

// RecoverAfter is the age from which opts make the loop act on an order.
func (s *Service) recoverAfter(opts RecoverOptions) time.Duration {
	if opts.After > 0 {
		return opts.After
	}
	return 2*s.cfg.PSPTimeout + 10*time.Second
}

// RunRecovery resolves orders left PENDING_PAYMENT (a crash between the transactions,
// a PSP that never answered) until ctx ends, while this instance holds the recovery
// lease.
func (s *Service) RunRecovery(ctx context.Context, leases Leases, opts RecoverOptions) {
	if opts.Every <= 0 {
		opts.Every = 10 * time.Second
	}
	holder := uuid.New()
	ttl := 3 * opts.Every
	defer func() { _ = leases.ReleaseLease(context.WithoutCancel(ctx), recoveryLease, holder) }()
	t := time.NewTicker(opts.Every)
	defer t.Stop()
	for {
		if ok, err := leases.AcquireLease(ctx, recoveryLease, holder, ttl); err != nil {
			if ctx.Err() == nil {
				s.cfg.Log.WarnContext(ctx, "checkout recovery: lease", "err", err)
			}
		} else if ok {
			// Renewed before each order: a pass can outlast the lease's TTL (each order
			// may wait for two PSP calls), and a second instance must not redo it.
			opts.renew = func() bool {
				ok, err := leases.AcquireLease(ctx, recoveryLease, holder, ttl)
				return err == nil && ok
			}
			if n, err := s.Recover(ctx, opts); err != nil && ctx.Err() == nil {
				s.cfg.Log.ErrorContext(ctx, "checkout recovery pass failed", "settled", n, "err", err)
			} else if n > 0 {
				s.cfg.Log.InfoContext(ctx, "checkout recovery settled orders", "orders", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Recover is one pass of the recovery loop: for each order PENDING_PAYMENT for longer
// than opts.After it asks the PSP (Lookup) and settles with a definite answer; when the
// PSP has no charge, or cannot say, it voids the key (Void's answer is definite) and
// settles with that. It returns how many orders it settled; an order it could not
// settle stays for the next pass.
func (s *Service) Recover(ctx context.Context, opts RecoverOptions) (int, error) {
	if opts.Batch <= 0 {
		opts.Batch = 100
	}
	ids, err := s.cfg.DB.Orders.Pending(ctx, s.recoverAfter(opts), opts.Batch)
	if err != nil {
		return 0, err
	}
	settled := 0
	var errs []error
	for _, id := range ids {
		if ctx.Err() != nil || (opts.renew != nil && !opts.renew()) {
			break
		}
		ok, err := s.recoverOne(ctx, id)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			settled++
		}
	}
	return settled, errors.Join(errs...)
}

func (s *Service) recoverOne(ctx context.Context, id uuid.UUID) (bool, error) {
	key := id.String()
	lctx, cancel := context.WithTimeout(ctx, s.cfg.PSPTimeout)
	ch, err := s.cfg.PSP.Lookup(lctx, key)
	cancel()
	switch {
	case err == nil && ch.Status == payment.StatusPending:
		return false, nil // the PSP is deciding; ask again next pass
	case err == nil:
	default:
		// No charge (yet), or no answer: the order is older than any charge call can
		// take, so close the key for good and take Void's answer.
		vctx, cancel := context.WithTimeout(ctx, s.cfg.PSPTimeout)
		ch, err = s.cfg.PSP.Void(vctx, key)
		cancel()
		if err != nil {
			return false, err
		}
		if ch.Status == payment.StatusPending {
			return false, nil
		}
		if ch.Status == payment.StatusFailed && ch.FailureCode == "" {
			ch.FailureCode = bookstore.CodePaymentError
			ch.FailureMessage = "the payment was not completed; nothing was charged"
		}
	}
	o, err := s.Settle(ctx, id, ch)
	if err != nil {
		return false, err
	}
	s.cfg.Log.InfoContext(ctx, "checkout recovery settled an order", "order", id, "status", o.Status)
	return true, nil
}
