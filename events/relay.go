// Package events moves the transactional outbox (store.Outbox) to the parts of the system
// that react to changes: the search indexer, caches and, later, live subscribers. Writers
// never publish directly; they write an outbox row in the transaction that makes the
// change, and the Relay here delivers it after commit.
//
// Delivery is at-least-once: a handler may see an event again after a crash or when two
// instances relay at once, so handlers are idempotent (re-index a book, drop a cache key).
package events

import (
	"context"
	"errors"
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
	Prune(ctx context.Context, cutoff time.Time) (int64, error)
}

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
}

// Run relays until ctx ends. Failures are logged and retried with backoff; Run returns
// only ctx's error.
func (r *Relay) Run(ctx context.Context) error {
	interval := r.Interval
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	retention := r.Retention
	if retention <= 0 {
		retention = time.Hour
	}
	backoff := interval
	lastPrune := time.Time{}
	for {
		n, err := r.Step(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			r.Log.ErrorContext(ctx, "outbox relay failed; retrying", "err", err, "retry_in", backoff.String())
			backoff = min(2*backoff, 10*time.Second)
		default:
			backoff = interval
		}
		if time.Since(lastPrune) > retention/4 {
			if _, err := r.Outbox.Prune(ctx, time.Now().Add(-retention)); err != nil && ctx.Err() == nil {
				r.Log.WarnContext(ctx, "outbox prune failed", "err", err)
			}
			lastPrune = time.Now()
		}
		if err == nil && n == r.batch() {
			continue // more waiting: no pause
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

func (r *Relay) batch() int {
	if r.Batch <= 0 {
		return 500
	}
	return r.Batch
}

// Step relays one batch and returns how many events it published. Tests and
// `bookstore reindex` call it directly to drain the outbox.
func (r *Relay) Step(ctx context.Context) (int, error) {
	evs, err := r.Outbox.Pending(ctx, r.batch())
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	var errs []error
	for _, h := range r.Handlers {
		if err := h.Handle(ctx, evs); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	ids := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	if err := r.Outbox.MarkPublished(ctx, ids); err != nil {
		return 0, err
	}
	return len(evs), nil
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
