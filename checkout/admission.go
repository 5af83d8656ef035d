package checkout

import (
	"context"
	"time"

	"github.com/shopfront/bookstore"
)

// Admission bounds the checkouts placing their orders at once. Above what the database
// can do, every checkout would otherwise queue for a connection until its deadline, the
// shoppers' clients give up while the server still works for them, and throughput
// collapses well below capacity. Admitted, a checkout places its order (tx 1); one that
// waited QueueWait for a slot is refused with UNAVAILABLE before anything happened, so
// the client's retry with the same idempotency key is safe. The charge and its
// settlement are not gated: an order placed is always completed.
type Admission struct {
	// Concurrency is how many checkouts place their orders at once (0: no limit).
	Concurrency int
	// QueueWait is how long a checkout waits for a slot (default 1s).
	QueueWait time.Duration
}

// ErrBusy: the checkout was not admitted. Nothing was placed or charged.
var ErrBusy = bookstore.Errorf(bookstore.CodeUnavailable,
	"checkout is busy right now; nothing was placed or charged: retry in a moment with the same idempotency key")

type gate struct {
	slots chan struct{}
	wait  time.Duration
}

func newGate(a Admission) *gate {
	if a.Concurrency <= 0 {
		return nil
	}
	if a.QueueWait <= 0 {
		a.QueueWait = time.Second
	}
	return &gate{slots: make(chan struct{}, a.Concurrency), wait: a.QueueWait}
}

// enter takes a slot, waiting at most the queue wait (or until ctx ends); release gives
// it back. A nil gate admits everything.
func (g *gate) enter(ctx context.Context) (release func(), err error) {
	if g == nil {
		return func() {}, nil
	}
	select {
	case g.slots <- struct{}{}:
		return g.release, nil
	default:
	}
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return g.release, nil
	case <-t.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *gate) release() { <-g.slots }
