// Package events moves the transactional outbox (store.Outbox) to the parts of the system
// that react to changes: the search indexer, caches and, later, live subscribers. Writers
// never publish directly; they write an outbox row in the transaction that makes the
// change, and the Relay here delivers it after commit.
//
// Delivery is at-least-once: a handler may see an event again after a crash, so handlers
// are idempotent (re-index a book, move to a new cache generation). One relay runs at a
// time across instances (a lease in the database), so events are handled in order.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/store"
)

// Handler reacts to a batch of events, oldest first. An error leaves the whole batch
// unpublished, to be handed to every handler again.
type Handler interface {
	Handle(ctx context.Context, evs []store.Event) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, evs []store.Event) error

// Handle implements Handler.
func (f HandlerFunc) Handle(ctx context.Context, evs []store.Event) error { return f(ctx, evs) }

// Outbox is what the relay needs of the store.
type Outbox interface {
	Pending(ctx context.Context, limit int) ([]store.Event, error)
	MarkPublished(ctx context.Context, ids []uuid.UUID) error
	Park(ctx context.Context, id uuid.UUID, reason string) error
	Prune(ctx context.Context, cutoff time.Time) (int64, error)
	AcquireLease(ctx context.Context, name string, holder uuid.UUID, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name string, holder uuid.UUID) error
}

// leaseName is the lease every instance's relay competes for.
const leaseName = "outbox-relay"

// Relay polls the outbox and hands each batch to its handlers.
type Relay struct {
	Outbox   Outbox
	Handlers []Handler
	Log      *slog.Logger
	// Interval is the pause between polls when the outbox is empty (default 200ms, so a
	// change reaches the index well within a second).
	Interval time.Duration
	// Batch is the most events handled at once (default 500).
	Batch int
	// Retention is how long published events are kept before pruning (default 1h).
	Retention time.Duration
	// LeaseTTL is how long the relay's lease lasts without renewal (default 15s); an
	// instance that dies hands over to another after it.
	LeaseTTL time.Duration
	// IsolateAfter is how many failures in a row of the same batch make the relay retry
	// it event by event, to park the events that fail alone (default 5).
	IsolateAfter int

	failures int // consecutive failures of the oldest batch
}

// Run relays until ctx ends, while it holds the relay lease (other instances' relays
// wait for it). Failures are logged and retried with backoff; Run returns ctx's error.
func (r *Relay) Run(ctx context.Context) error {
	interval := r.Interval
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	retention := r.Retention
	if retention <= 0 {
		retention = time.Hour
	}
	ttl := r.LeaseTTL
	if ttl <= 0 {
		ttl = 15 * time.Second
	}
	holder := uuid.New()
	defer func() {
		// Hand over at once on a clean stop, rather than after the lease expires.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = r.Outbox.ReleaseLease(ctx, leaseName, holder)
	}()
	backoff := interval
	lastPrune := time.Time{}
	for {
		held, err := r.Outbox.AcquireLease(ctx, leaseName, holder, ttl)
		n := 0
		if err == nil && held {
			n, err = r.Step(ctx)
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			r.Log.ErrorContext(ctx, "outbox relay failed; retrying", "err", err, "retry_in", backoff.String())
			backoff = min(2*backoff, 10*time.Second)
		default:
			backoff = interval
		}
		if held && time.Since(lastPrune) > retention/4 {
			if _, err := r.Outbox.Prune(ctx, time.Now().Add(-retention)); err != nil && ctx.Err() == nil {
				r.Log.WarnContext(ctx, "outbox prune failed", "err", err)
			}
			lastPrune = time.Now()
		}
		if err == nil && n == r.batch() {
			continue // more waiting: no pause
		}
		wait := backoff
		if err == nil && !held {
			wait = min(ttl/3, time.Second) // standing by for the lease
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (r *Relay) batch() int {
	if r.Batch <= 0 {
		return 500
	}
	return r.Batch
}

func (r *Relay) isolateAfter() int {
	if r.IsolateAfter <= 0 {
		return 5
	}
	return r.IsolateAfter
}

// Step relays one batch and returns how many events it retired (published or parked).
// Tests and `bookstore reindex` call it directly to drain the outbox.
func (r *Relay) Step(ctx context.Context) (int, error) {
	evs, err := r.Outbox.Pending(ctx, r.batch())
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	if err := r.handle(ctx, evs); err != nil {
		r.failures++
		if r.failures < r.isolateAfter() {
			return 0, err
		}
		return r.isolate(ctx, evs, err)
	}
	r.failures = 0
	return len(evs), r.publish(ctx, evs)
}

func (r *Relay) handle(ctx context.Context, evs []store.Event) error {
	var errs []error
	for _, h := range r.Handlers {
		if err := h.Handle(ctx, evs); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *Relay) publish(ctx context.Context, evs []store.Event) error {
	ids := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return r.Outbox.MarkPublished(ctx, ids)
}

// isolate retries a batch that keeps failing one event at a time. If every event fails,
// the cause is not in the events (a search engine down, say): nothing is parked and the
// batch is retried later. Otherwise the events that fail alone are parked and the rest
// published, so one bad event cannot hold back every change behind it.
func (r *Relay) isolate(ctx context.Context, evs []store.Event, batchErr error) (int, error) {
	var ok, bad []store.Event
	var reasons []error
	for _, e := range evs {
		if err := r.handle(ctx, []store.Event{e}); err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			bad, reasons = append(bad, e), append(reasons, err)
			continue
		}
		ok = append(ok, e)
	}
	if len(ok) == 0 {
		// Count again from zero: while a backend is down, every retry would otherwise
		// handle the batch event by event.
		r.failures = 0
		return 0, fmt.Errorf("every event of the batch fails on its own: %w", batchErr)
	}
	for i, e := range bad {
		r.Log.ErrorContext(ctx, "outbox event parked: it fails on its own", "event", e.ID, "topic", e.Topic,
			"aggregate", e.AggregateID, "err", reasons[i])
		if err := r.Outbox.Park(ctx, e.ID, reasons[i].Error()); err != nil {
			return 0, err
		}
	}
	r.failures = 0
	return len(evs), r.publish(ctx, ok)
}

// Drain relays until the outbox is empty.
func (r *Relay) Drain(ctx context.Context) error {
	for {
		n, err := r.Step(ctx)
		if err != nil || n == 0 {
			return err
		}
	}
}
