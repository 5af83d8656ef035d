// Package events moves the transactional outbox (store.Outbox) to the parts of the system
// that react to changes: the search indexer, caches, low-stock alerts and, later, order
// emails, live subscriptions and shipping. Writers never publish directly; they write an
// outbox row in the transaction that makes the change, and the Relay here delivers it
// after commit.
//
// Delivery is at-least-once: a handler may see an event again after a crash or a lost
// lease, so handlers are idempotent (re-index a book, move to a new cache generation).
//
// # Consumers
//
// Each handler is a consumer with a name and the topics it reads, and progresses on its
// own: a search engine that is down for an hour delays no order email, and a failing
// handler re-runs no other handler's work. A consumer's progress is one delivery row per
// event it handled (or is retrying, or parked) in outbox_deliveries, not a cursor over
// the outbox. A cursor needs a key that grows in commit order, and the outbox has none
// that is portable: ids are random UUIDs, and created_at is the transaction's start, so
// a transaction that started earlier can commit an older created_at after a reader went
// past it (waiting out a safety lag would add that lag to every delivery and still miss
// a transaction slower than it). With delivery rows, a consumer reads the unpublished
// events of its topics that it has no row for, in created_at order; an event is
// published once every consumer registered for its topic is done with it (in the same
// serializable transaction as the last one's row), and published events are pruned with
// their rows. Reads stay small: the unpublished events of the consumer's topics only (a
// partial index), so a backlog of book changes costs an order consumer nothing, and from
// a floor just behind the oldest event the consumer's last read returned, so the events
// it is done with that wait for a slower consumer of the same topics are not read again
// at every poll. A full read now and then delivers what committed behind the floor (see
// Relay.since).
//
// # Leases
//
// Each consumer runs in one instance at a time, under its own lease (so consumers fail
// over independently), which is fenced: a holder's writes (done, retry, park) check the
// lease's token in the same statement, so a holder whose lease ran out during a slow
// batch cannot write over its successor. A long batch renews the lease as it goes; the
// handler's context ends when the lease is lost or about to run out, and a handler must
// then stop (its batch will be handled by the next holder).
//
// # Failures
//
// A failed batch is retried; a batch that keeps failing is retried event by event, and an
// event that fails on its own while others succeed waits with a growing backoff for a
// bounded number of attempts, then is parked with its error: counted in /readyz, listed
// and requeued by `bookstore outbox`. When every event fails on its own, the cause is not
// in the events (the backend is down): nothing is counted against them. A handler whose
// side effects must not repeat (emails) answers a *BatchError naming the events that
// failed: the others are done at once, and only the failed ones are retried.
// An error a handler marks Permanent (a recipient the mail server refuses for good)
// parks its event at once, without waiting out the attempts. An error it marks
// RetryAfter (another holder's claim on an email, live until its TTL) is no failure of
// the event: the relay hands it again once the wait is over, counting no attempt.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/store"
)

// Handler reacts to a batch of events, oldest first. An error leaves the whole batch to
// be handled again, unless it is a *BatchError naming the events that failed. ctx ends
// when the relay's lease is lost or about to run out: the handler must then stop and
// return, committing nothing more.
type Handler interface {
	Handle(ctx context.Context, evs []store.Event) error
}

// BatchError is a handler's answer that the events in Failed failed and every other
// event of the batch is done. The relay then records the others done at once and a
// failed attempt against each failed one (its retry, or its parking, as for an event
// that fails on its own), instead of handing the whole batch again: for handlers whose
// side effects are not idempotent, such as emails, where a retried batch would send every
// other email of it again. When every event of the batch failed it is an ordinary
// failure of the batch.
type BatchError struct{ Failed map[uuid.UUID]error }

func (e *BatchError) Error() string {
	errs := make([]error, 0, len(e.Failed))
	for _, err := range e.Failed {
		errs = append(errs, err)
	}
	return fmt.Sprintf("%d events of the batch failed: %v", len(e.Failed), errors.Join(errs...))
}

// Unwrap returns the events' errors, so that errors.Is and errors.As (IsPermanent) see
// them.
func (e *BatchError) Unwrap() []error {
	errs := make([]error, 0, len(e.Failed))
	for _, err := range e.Failed {
		errs = append(errs, err)
	}
	return errs
}

// Consumer is a Handler with its own delivery state: Consumer returns the name that
// state is kept under (keep it stable: a new name starts from the events not yet
// published) and the topics it reads.
type Consumer interface {
	Handler
	Consumer() (name string, topics []string)
}

// Permanent marks err as one no retry can fix (an email address the mail server refuses
// for good): the relay parks the event that failed with it at once, with err as the
// reason, instead of spending its attempts. A handler of a batch returns it (joined with
// other errors as it likes) for the event it is about; the relay finds out which event
// by handling the batch event by event.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps or joins, was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// RetryAfter marks err as no failure of the event it is about but a wait for something
// outside it that ends within d (another holder's claim on an email, which goes stale
// after its TTL): the relay counts no attempt against the event, so however long the
// wait it is never parked for it, and hands the event again after d. A handler of a
// batch returns it in a *BatchError for the event it is about (or alone for a batch of
// one). The wait is kept by the relay holding the lease, in memory: a holder taking over
// finds it again by handling the event once more.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, d: d}
}

// retryAfter reports the wait of a RetryAfter error that err is, wraps or joins.
func retryAfter(err error) (time.Duration, bool) {
	var r *retryAfterError
	if !errors.As(err, &r) {
		return 0, false
	}
	return r.d, true
}

type retryAfterError struct {
	err error
	d   time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, evs []store.Event) error

// Handle implements Handler.
func (f HandlerFunc) Handle(ctx context.Context, evs []store.Event) error { return f(ctx, evs) }

// Subscribe makes h a Consumer named name that reads topics.
func Subscribe(name string, h Handler, topics ...string) Consumer {
	return subscription{Handler: h, name: name, topics: topics}
}

type subscription struct {
	Handler
	name   string
	topics []string
}

func (s subscription) Consumer() (string, []string) { return s.name, s.topics }

// Then returns a Consumer that hands each batch to first and then, if first succeeded,
// to next, under first's name and topics: for work that must follow another's, such as
// moving the response cache to a new generation once the search index has the change
// (an independent cache consumer could run first, and a search answered in between
// would be cached as current).
func Then(first Consumer, next Handler) Consumer {
	name, topics := first.Consumer()
	return Subscribe(name, HandlerFunc(func(ctx context.Context, evs []store.Event) error {
		err := first.Handle(ctx, evs)
		var be *BatchError
		if err != nil && !errors.As(err, &be) {
			return err
		}
		if be != nil {
			// The events first is done with follow; the failed ones come back to both.
			var done []store.Event
			for _, e := range evs {
				if _, failed := be.Failed[e.ID]; !failed {
					done = append(done, e)
				}
			}
			evs = done
		}
		if len(evs) > 0 {
			if err := next.Handle(ctx, evs); err != nil {
				return err
			}
		}
		if be != nil {
			return be
		}
		return nil
	}), topics...)
}

// Outbox is what the relay needs of the store.
type Outbox interface {
	Register(ctx context.Context, consumer string, topics []string) error
	PendingSince(ctx context.Context, consumer string, topics []string, limit int, since time.Time) ([]store.Event, error)
	Done(ctx context.Context, l store.Lease, consumer string, ids []uuid.UUID) error
	Failed(ctx context.Context, l store.Lease, consumer string, id uuid.UUID, reason string, r store.Retry) (store.Failure, error)
	Retire(ctx context.Context, limit int) (int64, error)
	Prune(ctx context.Context, cutoff time.Time) (int64, error)
	Acquire(ctx context.Context, name string, holder uuid.UUID, ttl time.Duration) (store.Lease, bool, error)
	AcquireLease(ctx context.Context, name string, holder uuid.UUID, ttl time.Duration) (bool, error)
	Renew(ctx context.Context, l store.Lease, ttl time.Duration) error
	ReleaseLease(ctx context.Context, name string, holder uuid.UUID) error
}

// pruneLease is the lease of the loop that retires and prunes; each consumer's lease is
// named "outbox:" + its name.
const pruneLease = "outbox-prune"

// ErrLeaseHeld: another instance holds a consumer's lease, so Step or Drain cannot run it.
var ErrLeaseHeld = errors.New("another instance holds the lease")

// Relay polls the outbox and hands each consumer its events.
type Relay struct {
	Outbox Outbox
	// Handlers are the consumers: each must be a Consumer (see Subscribe).
	Handlers []Handler
	Log      *slog.Logger
	// Interval is the pause between polls when a consumer has nothing to do (default
	// 200ms, so a change reaches the index well within a second).
	Interval time.Duration
	// Batch is the most events handled at once (default 500).
	Batch int
	// Retention is how long published events are kept before pruning (default 1h).
	Retention time.Duration
	// LeaseTTL is how long a consumer's lease lasts without renewal (default 15s); an
	// instance that dies hands over to another after it. Handlers are cut off about
	// LeaseTTL/10 before it runs out.
	LeaseTTL time.Duration
	// IsolateAfter is how many failures in a row of the same batch make the relay retry
	// it event by event (default 5).
	IsolateAfter int
	// Retry is how an event that fails on its own is retried (default: 10 attempts,
	// waiting 1s, 2s, 4s... up to 5 minutes between them), then parked.
	Retry store.Retry
	// FloorMargin is how far behind its oldest pending event a consumer reads the outbox
	// (default 1s): events of transactions that were open longer than it when the floor
	// passed them wait for the next full read. FullReadEvery is how often a consumer
	// reads every unpublished event of its topics instead (default 10s); see floor.
	FloorMargin   time.Duration
	FullReadEvery time.Duration

	once       sync.Once
	holder     uuid.UUID
	consumers  []*consumer
	initErr    error
	registered bool
}

// consumer is one Consumer's state in this relay.
type consumer struct {
	name     string
	topics   []string
	h        Handler
	failures int // consecutive failures of the oldest batch
	lease    store.Lease
	held     bool
	// waiting holds the events a handler answered RetryAfter, with the time they are
	// handed again: until then they are left out of the batches, and nothing is
	// recorded against them.
	waiting map[uuid.UUID]time.Time
	// floor is where the consumer's next read starts (zero: from the oldest unpublished
	// event), fullAt when it last read from the oldest.
	floor, fullAt time.Time
}

// since is where c's next read of the outbox starts. A consumer's reads would
// otherwise cost every unpublished event of its topics, including all it is done with
// that wait for another consumer of the same topics (fulfilment behind checkout makes
// the order feed read its whole backlog at every poll). So a consumer reads from a
// floor: FloorMargin before the oldest event its last read returned. Older events are
// then done, parked, or failed and waiting for a retry (PendingSince reads those
// however old), or they were not committed yet when the floor passed them: a
// transaction stamps created_at when it starts, and one open longer than the margin
// (rare: a checkout's is milliseconds) commits behind the floor. Those are delivered
// by the full read from the oldest unpublished event that replaces the floor every
// FullReadEvery, and at every new lease (the floor is the holder's memory only): late
// by at most that long, never lost.
func (r *Relay) since(c *consumer, now time.Time) time.Time {
	every := r.FullReadEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	if c.floor.IsZero() || now.Sub(c.fullAt) >= every {
		c.fullAt = now
		return time.Time{}
	}
	return c.floor
}

// advance moves c's floor after a read from since that returned evs (oldest first),
// made after the database's clock read at (the lease's acquisition).
func (r *Relay) advance(c *consumer, since, at time.Time, evs []store.Event) {
	margin := r.FloorMargin
	if margin <= 0 {
		margin = time.Second
	}
	for _, e := range evs {
		if !e.CreatedAt.Before(since) { // the oldest read from the floor, not a due retry
			c.floor = e.CreatedAt.Add(-margin)
			return
		}
	}
	// Nothing new, and the read was not cut short by due retries: nothing created before
	// at was pending (bar transactions open longer than the margin), so the next read
	// starts a margin before it. Without this, a consumer whose topics are quiet would
	// read from the oldest unpublished event of any topic at every poll.
	if f := at.Add(-margin); !at.IsZero() && len(evs) < r.batch() && f.After(c.floor) {
		c.floor = f
	}
}

// ready leaves out of evs the events still waiting (RetryAfter), and forgets the waits
// that are over.
func (c *consumer) ready(evs []store.Event) []store.Event {
	if len(c.waiting) == 0 {
		return evs
	}
	now := time.Now()
	for id, at := range c.waiting {
		if !now.Before(at) {
			delete(c.waiting, id)
		}
	}
	out := evs[:0:0]
	for _, e := range evs {
		if _, wait := c.waiting[e.ID]; !wait {
			out = append(out, e)
		}
	}
	return out
}

// wait records that e is to be handled again after d, and logs it.
func (r *Relay) wait(ctx context.Context, c *consumer, e store.Event, d time.Duration, why error) {
	if c.waiting == nil {
		c.waiting = map[uuid.UUID]time.Time{}
	}
	at := time.Now().Add(d)
	c.waiting[e.ID] = at
	r.log().InfoContext(ctx, "outbox event waits; no attempt counted", "consumer", c.name, "event", e.ID, "topic", e.Topic,
		"aggregate", e.AggregateID, "retry_at", at, "err", why)
}

// postpone takes out of evs and err the events err answers RetryAfter (see wait). err
// is what is left of the handler's answer: nil when the others all succeeded.
func (r *Relay) postpone(ctx context.Context, c *consumer, evs []store.Event, err error) ([]store.Event, error) {
	if err == nil {
		return evs, nil
	}
	var be *BatchError
	if !errors.As(err, &be) {
		if d, ok := retryAfter(err); ok && len(evs) == 1 {
			r.wait(ctx, c, evs[0], d, err)
			return nil, nil
		}
		return evs, err
	}
	left := map[uuid.UUID]error{}
	var rest []store.Event
	for _, e := range evs {
		why, failed := be.Failed[e.ID]
		if d, ok := retryAfter(why); failed && ok {
			r.wait(ctx, c, e, d, why)
			continue
		}
		if failed {
			left[e.ID] = why
		}
		rest = append(rest, e)
	}
	if len(rest) == len(evs) {
		return evs, err
	}
	if len(left) == 0 {
		return rest, nil
	}
	return rest, &BatchError{Failed: left}
}

func (r *Relay) init() error {
	r.once.Do(func() {
		r.holder = uuid.New()
		seen := map[string]bool{}
		for _, h := range r.Handlers {
			c, ok := h.(Consumer)
			if !ok {
				r.initErr = fmt.Errorf("relay: a %T is no Consumer (wrap it with events.Subscribe)", h)
				return
			}
			name, topics := c.Consumer()
			if name == "" || len(topics) == 0 || seen[name] {
				r.initErr = fmt.Errorf("relay: consumer %q needs a unique name and topics (%v)", name, topics)
				return
			}
			seen[name] = true
			r.consumers = append(r.consumers, &consumer{name: name, topics: topics, h: h})
		}
	})
	return r.initErr
}

func (r *Relay) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

func (r *Relay) interval() time.Duration {
	if r.Interval <= 0 {
		return 200 * time.Millisecond
	}
	return r.Interval
}

func (r *Relay) ttl() time.Duration {
	if r.LeaseTTL <= 0 {
		return 15 * time.Second
	}
	return r.LeaseTTL
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

func (r *Relay) retry() store.Retry {
	p := r.Retry
	if p.Base <= 0 {
		p.Base = time.Second
	}
	if p.Max <= 0 {
		p.Max = 5 * time.Minute
	}
	if p.Attempts <= 0 {
		p.Attempts = 10
	}
	return p
}

// register records every consumer's topics (see store.Outbox.Register), retrying until
// it succeeds or ctx ends.
func (r *Relay) register(ctx context.Context) error {
	backoff := r.interval()
	for {
		var err error
		for _, c := range r.consumers {
			if err = r.Outbox.Register(ctx, c.name, c.topics); err != nil {
				break
			}
		}
		if err == nil || ctx.Err() != nil {
			return err
		}
		r.log().ErrorContext(ctx, "register outbox consumers; retrying", "err", err, "retry_in", backoff.String())
		if sleep(ctx, backoff) != nil {
			return ctx.Err()
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// Run relays until ctx ends: each consumer in its own loop, while this instance holds
// its lease (other instances' relays stand by for it), and a loop that retires and
// prunes old events. Failures are logged and retried with backoff; Run returns ctx's
// error, or a configuration error at once.
func (r *Relay) Run(ctx context.Context) error {
	if err := r.init(); err != nil {
		return err
	}
	if err := r.register(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, c := range r.consumers {
		wg.Add(1)
		go func() { defer wg.Done(); r.runConsumer(ctx, c) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); r.runPrune(ctx) }()
	wg.Wait()
	return ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *Relay) release(ctx context.Context, name string) {
	// Hand over at once on a clean stop, rather than after the lease expires.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = r.Outbox.ReleaseLease(ctx, name, r.holder)
}

func (r *Relay) runConsumer(ctx context.Context, c *consumer) {
	defer r.release(ctx, "outbox:"+c.name)
	backoff := r.interval()
	for {
		n, err := r.stepConsumer(ctx, c)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, store.ErrLeaseLost):
			r.log().WarnContext(ctx, "outbox consumer lost its lease; standing by", "consumer", c.name, "err", err)
			backoff = r.interval()
		case err != nil:
			r.log().ErrorContext(ctx, "outbox consumer failed; retrying", "consumer", c.name, "err", err, "retry_in", backoff.String())
			backoff = min(2*backoff, 10*time.Second)
		default:
			backoff = r.interval()
		}
		if err == nil && n == r.batch() {
			continue // more waiting: no pause
		}
		wait := backoff
		if err == nil && !c.held {
			wait = min(r.ttl()/3, time.Second) // standing by for the lease
		}
		if sleep(ctx, wait) != nil {
			return
		}
	}
}

// runPrune retires the events every consumer is done with that Done left unpublished
// (see store.Outbox.Retire) and prunes published events older than Retention, every
// Retention/4, in one instance at a time. Neither write needs fencing: both are right
// whoever makes them.
func (r *Relay) runPrune(ctx context.Context) {
	retention := r.Retention
	if retention <= 0 {
		retention = time.Hour
	}
	defer r.release(ctx, pruneLease)
	var last time.Time
	for {
		held, err := r.Outbox.AcquireLease(ctx, pruneLease, r.holder, r.ttl())
		if err == nil && held && time.Since(last) > retention/4 {
			err = r.prune(ctx, retention)
			last = time.Now()
		}
		if err != nil && ctx.Err() == nil {
			r.log().WarnContext(ctx, "outbox prune failed", "err", err)
		}
		if sleep(ctx, min(r.ttl()/3, time.Second)) != nil {
			return
		}
	}
}

func (r *Relay) prune(ctx context.Context, retention time.Duration) error {
	for {
		n, err := r.Outbox.Retire(ctx, 1000)
		if err != nil {
			return err
		}
		if n < 1000 {
			break
		}
	}
	_, err := r.Outbox.Prune(ctx, time.Now().Add(-retention))
	return err
}

// Step gives every consumer one batch (taking its lease if free) and returns how many
// events they handled, retried or parked. Tests and tools call it to drive the relay by
// hand; it must not run beside Run on the same Relay.
func (r *Relay) Step(ctx context.Context) (int, error) {
	if err := r.init(); err != nil {
		return 0, err
	}
	if !r.registered {
		if err := r.register(ctx); err != nil {
			return 0, err
		}
		r.registered = true
	}
	total := 0
	var errs []error
	for _, c := range r.consumers {
		n, err := r.stepConsumer(ctx, c)
		if err == nil && !c.held {
			err = fmt.Errorf("consumer %s: %w", c.name, ErrLeaseHeld)
		}
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// Drain relays until no consumer has anything left to do now (events waiting for a
// retry stay), then releases the leases.
func (r *Relay) Drain(ctx context.Context) error {
	defer func() {
		for _, c := range r.consumers {
			if c.held {
				r.release(ctx, "outbox:"+c.name)
				c.held = false
			}
		}
	}()
	for {
		n, err := r.Step(ctx)
		if err != nil || n == 0 {
			return err
		}
	}
}

// stepConsumer takes or renews c's lease and, if held, hands c one batch.
func (r *Relay) stepConsumer(ctx context.Context, c *consumer) (int, error) {
	start := time.Now()
	l, held, err := r.Outbox.Acquire(ctx, "outbox:"+c.name, r.holder, r.ttl())
	if err != nil {
		return 0, err
	}
	if held && l.Token != c.lease.Token {
		// A new lease (the first, or lost and taken again: also when the guard cut a batch
		// short): another holder may have run part of the batch, handled the events waiting
		// here and moved past this floor.
		c.failures = 0
		c.waiting = nil
		c.floor = time.Time{}
	}
	c.lease, c.held = l, held
	if !held {
		c.floor = time.Time{} // another holder's work is unknown here
		return 0, nil
	}
	since := r.since(c, start)
	evs, err := r.Outbox.PendingSince(ctx, c.name, c.topics, r.batch(), since)
	if err != nil {
		return 0, err
	}
	r.advance(c, since, l.At, evs)
	if evs = c.ready(evs); len(evs) == 0 {
		return 0, nil
	}
	hctx, stop := r.guard(ctx, l, start)
	defer stop()
	err = r.handle(hctx, c, evs)
	if lost := context.Cause(hctx); errors.Is(lost, store.ErrLeaseLost) {
		c.held = false
		return 0, lost // write nothing: the next holder handles the batch
	}
	n := len(evs)
	if evs, err = r.postpone(ctx, c, evs, err); len(evs) == 0 {
		return n, nil
	}
	if err == nil {
		c.failures = 0
		return len(evs), r.Outbox.Done(ctx, l, c.name, ids(evs))
	}
	if be := (*BatchError)(nil); errors.As(err, &be) && len(be.Failed) < len(evs) {
		return r.partial(ctx, c, l, evs, be)
	}
	c.failures++
	if ctx.Err() != nil || (c.failures < r.isolateAfter() && !IsPermanent(err)) {
		return 0, err
	}
	return r.isolate(ctx, hctx, c, l, evs, err)
}

// handle runs c's handler, turning a panic into an error: one consumer's bug must not
// take down the process and every other consumer with it.
func (r *Relay) handle(ctx context.Context, c *consumer, evs []store.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("consumer %s panicked: %v", c.name, p)
		}
	}()
	return c.h.Handle(ctx, evs)
}

func ids(evs []store.Event) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// guard returns a context for handling a batch under l, acquired (or last renewed) at
// start: it renews l every third of the TTL, and ends (with cause store.ErrLeaseLost)
// when a renewal finds l lost, or a tenth of the TTL before l would run out unrenewed
// (the database reaching it first cannot happen: start was read before the lease was
// written). stop ends the renewals.
func (r *Relay) guard(ctx context.Context, l store.Lease, start time.Time) (context.Context, func()) {
	ttl := r.ttl()
	cut := ttl - ttl/10
	hctx, cancel := context.WithCancelCause(ctx)
	deadline := time.NewTimer(time.Until(start.Add(cut)))
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer deadline.Stop()
		tick := time.NewTicker(ttl / 3)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-hctx.Done():
				return
			case <-deadline.C:
				cancel(fmt.Errorf("lease %s about to run out: %w", l.Name, store.ErrLeaseLost))
				return
			case <-tick.C:
				at := time.Now()
				err := r.Outbox.Renew(hctx, l, ttl)
				switch {
				case errors.Is(err, store.ErrLeaseLost):
					cancel(err)
					return
				case err == nil:
					deadline.Reset(time.Until(at.Add(cut)))
				default:
					// A failed renewal leaves the lease as it was: keep to its deadline.
					r.log().WarnContext(ctx, "renew outbox lease", "lease", l.Name, "err", err)
				}
			}
		}
	}()
	return hctx, func() {
		close(done)
		wg.Wait()
		cancel(nil)
	}
}

// isolate retries a batch that keeps failing (or failed for good: IsPermanent) one event
// at a time. An event that fails alone with a Permanent error is parked at once. If every
// event fails, the cause is not in the events (a search engine down, say): nothing is counted against
// them (but those already suspect) and the batch is retried later. Otherwise the events that succeed are done, and
// each that fails alone has a failed attempt recorded: it waits for its retry, or is
// parked after its last.
func (r *Relay) isolate(ctx, hctx context.Context, c *consumer, l store.Lease, evs []store.Event, batchErr error) (int, error) {
	var ok, bad []store.Event
	var reasons []error
	for _, e := range evs {
		err := r.handle(hctx, c, []store.Event{e})
		if lost := context.Cause(hctx); errors.Is(lost, store.ErrLeaseLost) {
			c.held = false
			return 0, lost
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if rest, err := r.postpone(ctx, c, []store.Event{e}, err); len(rest) == 0 {
			continue // waits, neither done nor failed
		} else if err != nil {
			bad, reasons = append(bad, e), append(reasons, err)
			continue
		}
		ok = append(ok, e)
	}
	if len(ok) == 0 && len(bad) == 0 {
		c.failures = 0
		return len(evs), nil
	}
	// Count again from zero: while a backend is down, every retry would otherwise
	// handle the batch event by event.
	c.failures = 0
	if len(ok) == 0 {
		// Only events that already failed while others succeeded keep counting their
		// attempts: a poison event left alone in the outbox is parked all the same.
		var suspects []store.Event
		var why []error
		for i, e := range bad {
			if e.Attempts > 0 || IsPermanent(reasons[i]) {
				suspects, why = append(suspects, e), append(why, reasons[i])
			}
		}
		if err := r.failed(ctx, c, l, suspects, why); err != nil {
			return 0, err
		}
		return len(suspects), fmt.Errorf("consumer %s: every event of the batch fails on its own: %w", c.name, batchErr)
	}
	if err := r.Outbox.Done(ctx, l, c.name, ids(ok)); err != nil {
		return 0, err
	}
	return len(evs), r.failed(ctx, c, l, bad, reasons)
}

// partial records the events of a *BatchError: the others done, a failed attempt at
// each failed one.
func (r *Relay) partial(ctx context.Context, c *consumer, l store.Lease, evs []store.Event, be *BatchError) (int, error) {
	c.failures = 0
	var ok, bad []store.Event
	var reasons []error
	for _, e := range evs {
		if err, failed := be.Failed[e.ID]; failed {
			bad, reasons = append(bad, e), append(reasons, err)
			continue
		}
		ok = append(ok, e)
	}
	if err := r.Outbox.Done(ctx, l, c.name, ids(ok)); err != nil {
		return 0, err
	}
	return len(evs), r.failed(ctx, c, l, bad, reasons)
}

// failed records a failed attempt at each of evs (see store.Outbox.Failed).
func (r *Relay) failed(ctx context.Context, c *consumer, l store.Lease, evs []store.Event, reasons []error) error {
	for i, e := range evs {
		p := r.retry()
		if IsPermanent(reasons[i]) {
			p.Attempts = 1 // parks now
		}
		f, err := r.Outbox.Failed(ctx, l, c.name, e.ID, reasons[i].Error(), p)
		if err != nil {
			return err
		}
		args := []any{"consumer", c.name, "event", e.ID, "topic", e.Topic, "aggregate", e.AggregateID,
			"attempts", f.Attempts, "err", reasons[i]}
		if f.Parked {
			r.log().ErrorContext(ctx, "outbox event parked: it failed on its own at every attempt", args...)
		} else {
			r.log().WarnContext(ctx, "outbox event failed on its own; retrying", append(args, "retry_at", f.RetryAt)...)
		}
	}
	return nil
}
