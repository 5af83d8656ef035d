package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// ErrLeaseLost: the lease a write was made under expired or passed to another holder, so
// the write was refused (nothing of it landed).
var ErrLeaseLost = errors.New("lease lost")

// Lease is a held lease. Token is its fencing counter: it grows at every acquisition by
// a new holder (or after the lease expired), and every write made under the lease
// checks it, so a holder that lost its lease cannot write.
type Lease struct {
	Name   string
	Holder uuid.UUID
	Token  int64
	// At is the database's time when the lease was acquired or renewed by Acquire (the
	// clock that stamps the outbox's created_at).
	At time.Time
}

// Acquire takes or renews the lease name for holder until ttl from now, and reports
// whether holder has it: a lease is free when its holder let it expire (or released it).
// A renewal by the holder of a live lease keeps its token; any other acquisition gets a
// new one.
func (o *Outbox) Acquire(ctx context.Context, name string, holder uuid.UUID, ttl time.Duration) (Lease, bool, error) {
	var token int64
	var at time.Time
	err := o.db.Pool.QueryRow(ctx, `
		INSERT INTO relay_leases (name, holder, expires_at, token) VALUES ($1, $2, now() + $3 * INTERVAL '1 millisecond', 1)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,
			token = CASE WHEN relay_leases.holder = excluded.holder AND relay_leases.expires_at >= now()
				THEN relay_leases.token ELSE relay_leases.token + 1 END
		WHERE relay_leases.holder = excluded.holder OR relay_leases.expires_at < now()
		RETURNING token, now()`, name, holder, ttl.Milliseconds()).Scan(&token, &at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Lease{}, false, nil
	case err != nil:
		return Lease{}, false, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return Lease{Name: name, Holder: holder, Token: token, At: at}, true, nil
}

// AcquireLease is Acquire without the token, for loops that only need to know whether
// they lead.
func (o *Outbox) AcquireLease(ctx context.Context, name string, holder uuid.UUID, ttl time.Duration) (bool, error) {
	_, held, err := o.Acquire(ctx, name, holder, ttl)
	return held, err
}

// Renew extends l until ttl from now, or returns ErrLeaseLost when l expired or another
// holder took the lease since.
func (o *Outbox) Renew(ctx context.Context, l Lease, ttl time.Duration) error {
	tag, err := o.db.Pool.Exec(ctx, `UPDATE relay_leases SET expires_at = now() + $4 * INTERVAL '1 millisecond'
		WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > now()`, l.Name, l.Holder, l.Token, ttl.Milliseconds())
	if err != nil {
		return fmt.Errorf("renew lease %s: %w", l.Name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("renew lease %s: %w", l.Name, ErrLeaseLost)
	}
	return nil
}

// ReleaseLease gives up holder's lease so that another instance can take it at once. It
// expires the lease rather than deleting it: a deleted row would start its token again
// at 1, and an old holder's token would become valid again.
func (o *Outbox) ReleaseLease(ctx context.Context, name string, holder uuid.UUID) error {
	_, err := o.db.Pool.Exec(ctx, `UPDATE relay_leases SET expires_at = now() - INTERVAL '1 second'
		WHERE name = $1 AND holder = $2 AND expires_at >= now()`, name, holder)
	if err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

// fence is the condition, checked inside a holder's write statement, that lease ($1
// name, $2 holder, $3 token) is still held. On PostgreSQL it share-locks the lease row:
// a concurrent takeover then waits for the write to commit (and so sees it), and a
// write that waited for a takeover re-reads the row and finds a new token. CockroachDB's
// serializable isolation orders the two without a lock.
func (o *Outbox) fence() string {
	f := `EXISTS (SELECT 1 FROM relay_leases WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > now()`
	if !o.db.Cockroach {
		f += ` FOR SHARE`
	}
	return f + `)`
}

// Register records that consumer reads topics, so that an event of those topics is
// published (and later pruned) only once consumer is done with it. Every instance
// registers its consumers at start; the last to start sets the topics.
func (o *Outbox) Register(ctx context.Context, consumer string, topics []string) error {
	if _, err := o.db.Pool.Exec(ctx, `INSERT INTO outbox_consumers (name, topics) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET topics = excluded.topics`, consumer, topics); err != nil {
		return fmt.Errorf("register outbox consumer %s: %w", consumer, err)
	}
	return nil
}

// PendingFor returns up to limit events of topics that consumer has neither handled nor
// parked and that wait for no retry, oldest first, each with the attempts consumer
// already failed at it. It reads every unpublished event of topics: PendingSince reads
// from a floor.
func (o *Outbox) PendingFor(ctx context.Context, consumer string, topics []string, limit int) ([]Event, error) {
	return o.PendingSince(ctx, consumer, topics, limit, time.Time{})
}

// PendingSince is PendingFor over the events created at or after since, plus every
// event consumer failed at that is due for its retry (or was requeued) however old:
// a consumer that keeps a floor behind its oldest pending event reads what it has to
// do, not again every event it is done with that waits for a slower consumer of the
// same topics to be published. Events older than since that commit after the floor
// passed them (a transaction open for longer than the floor's margin) are not read:
// the relay reads from the start now and then to deliver those (see events.Relay).
// A zero since reads everything.
func (o *Outbox) PendingSince(ctx context.Context, consumer string, topics []string, limit int, since time.Time) ([]Event, error) {
	sql := pendingSQL
	args := []any{consumer, topics, limit}
	if !since.IsZero() {
		sql, args = pendingSinceSQL, append(args, since)
	}
	rows, err := o.db.Pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read outbox for %s: %w", consumer, err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		err := r.Scan(&e.ID, &e.Topic, &e.AggregateID, &e.Payload, &e.CreatedAt, &e.Attempts)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read outbox for %s: %w", consumer, err)
	}
	return evs, nil
}

// deliveryOf is consumer $1's delivery row of event o, as a lateral subquery: a probe of
// the primary key per event read. As a plain LEFT JOIN, PostgreSQL hashes every
// delivery row of the consumer instead (it estimates the probes dearer), and those
// rows are kept for the outbox's retention: 50 ms a read after 20 s at 200 checkouts/s.
// The LIMIT keeps the subquery from being flattened into that join.
const deliveryOf = `SELECT d.attempts, d.done_at, d.parked_at, d.retry_at FROM outbox_deliveries d
	WHERE d.event_id = o.id AND d.consumer = $1 LIMIT 1`

const pendingSQL = `
	SELECT o.id, o.topic, o.aggregate_id, o.payload, o.created_at, COALESCE(d.attempts, 0) FROM outbox o
	LEFT JOIN LATERAL (` + deliveryOf + `) d ON true
	WHERE o.published_at IS NULL AND o.topic = ANY($2::TEXT[])
	AND d.done_at IS NULL AND d.parked_at IS NULL AND (d.retry_at IS NULL OR d.retry_at <= now())
	ORDER BY o.created_at, o.id LIMIT $3`

// pendingSinceSQL: the events from the floor $4 on, and the older ones consumer failed
// at whose retry is due, read from its open delivery rows (outbox_deliveries_open_idx:
// neither done nor parked, few at any time), each probing its event: joined the other
// way round, PostgreSQL scans every unpublished event older than the floor (OFFSET 0 and
// the lateral LIMIT keep the planner from doing so).
const pendingSinceSQL = `
	SELECT id, topic, aggregate_id, payload, created_at, attempts FROM (
		(SELECT o.id, o.topic, o.aggregate_id, o.payload, o.created_at, COALESCE(d.attempts, 0) AS attempts FROM outbox o
		LEFT JOIN LATERAL (` + deliveryOf + `) d ON true
		WHERE o.published_at IS NULL AND o.topic = ANY($2::TEXT[]) AND o.created_at >= $4
		AND d.done_at IS NULL AND d.parked_at IS NULL AND (d.retry_at IS NULL OR d.retry_at <= now())
		ORDER BY o.created_at, o.id LIMIT $3)
		UNION ALL
		(SELECT o.id, o.topic, o.aggregate_id, o.payload, o.created_at, d.attempts FROM (
			SELECT event_id, attempts FROM outbox_deliveries WHERE consumer = $1 AND done_at IS NULL AND parked_at IS NULL
			AND (retry_at IS NULL OR retry_at <= now()) OFFSET 0) d
		JOIN LATERAL (SELECT o.id, o.topic, o.aggregate_id, o.payload, o.created_at FROM outbox o WHERE o.id = d.event_id
			AND o.published_at IS NULL AND o.topic = ANY($2::TEXT[]) AND o.created_at < $4 LIMIT 1) o ON true
		ORDER BY o.created_at, o.id LIMIT $3)
	) AS p ORDER BY created_at, id LIMIT $3`

// retireSQL publishes the events among $1 (all unpublished ones when $1 is NULL, up to
// $2) that every consumer registered for their topic is done with.
const retireSQL = `UPDATE outbox SET published_at = now() WHERE id IN (
	SELECT o.id FROM outbox o WHERE o.published_at IS NULL AND ($1::UUID[] IS NULL OR o.id = ANY($1::UUID[]))
	AND NOT EXISTS (SELECT 1 FROM outbox_consumers c WHERE o.topic = ANY(c.topics) AND NOT EXISTS (
		SELECT 1 FROM outbox_deliveries d WHERE d.event_id = o.id AND d.consumer = c.name AND d.done_at IS NOT NULL))
	LIMIT $2)`

// Done records that consumer handled the events ids, under lease l, and publishes those
// every consumer of their topic is done with. It returns ErrLeaseLost, writing nothing,
// when l is no longer held. The publication runs in the same serializable transaction,
// so of two consumers finishing an event at once one sees the other's row.
func (o *Outbox) Done(ctx context.Context, l Lease, consumer string, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	err := o.db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO outbox_deliveries (event_id, consumer, done_at)
			SELECT id, $4::TEXT, now() FROM unnest($5::UUID[]) AS id WHERE `+o.fence()+`
			ON CONFLICT (event_id, consumer) DO UPDATE SET done_at = now(), retry_at = NULL, parked_at = NULL`,
			l.Name, l.Holder, l.Token, consumer, ids)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrLeaseLost
		}
		_, err = tx.Exec(ctx, retireSQL, ids, len(ids))
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: mark %d outbox events done: %w", consumer, len(ids), err)
	}
	return nil
}

// Retry is how often and how patiently a consumer retries an event that fails on its
// own: the n-th failure waits Base·2^(n-1), at most Max, and the Attempts-th parks it.
type Retry struct {
	Base, Max time.Duration
	Attempts  int
}

// Failure is what Failed recorded.
type Failure struct {
	Attempts int
	Parked   bool
	RetryAt  time.Time
}

// Failed records a failed attempt of consumer at event id, under lease l: the event waits
// for its retry, or is parked (with reason) when it has had its attempts. It returns
// ErrLeaseLost, writing nothing, when l is no longer held.
func (o *Outbox) Failed(ctx context.Context, l Lease, consumer string, id uuid.UUID, reason string, r Retry) (Failure, error) {
	var f Failure
	var retryAt *time.Time
	err := o.db.Pool.QueryRow(ctx, `
		INSERT INTO outbox_deliveries (event_id, consumer, attempts, retry_at, parked_at, last_error)
		SELECT $4::UUID, $5::TEXT, 1, now() + LEAST($7::INT8, $6::INT8) * INTERVAL '1 millisecond',
			CASE WHEN $8::INT8 <= 1 THEN now() END, $9::TEXT WHERE `+o.fence()+`
		ON CONFLICT (event_id, consumer) DO UPDATE SET
			attempts = outbox_deliveries.attempts + 1,
			retry_at = now() + LEAST($7::INT8, $6::INT8 * power(2, LEAST(outbox_deliveries.attempts, 30))::INT8) * INTERVAL '1 millisecond',
			parked_at = CASE WHEN outbox_deliveries.attempts + 1 >= $8::INT8 THEN now() END,
			done_at = NULL, last_error = excluded.last_error
		RETURNING attempts, parked_at IS NOT NULL, retry_at`,
		l.Name, l.Holder, l.Token, id, consumer, r.Base.Milliseconds(), r.Max.Milliseconds(), r.Attempts, reason,
	).Scan(&f.Attempts, &f.Parked, &retryAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return f, fmt.Errorf("%s: record a failure of outbox event %s: %w", consumer, id, ErrLeaseLost)
	case err != nil:
		return f, fmt.Errorf("%s: record a failure of outbox event %s: %w", consumer, id, err)
	}
	if retryAt != nil && !f.Parked {
		f.RetryAt = *retryAt
	}
	return f, nil
}

// Parked is an event a consumer set aside after its last attempt.
type Parked struct {
	Event
	Consumer string
	Attempts int
	ParkedAt time.Time
	Reason   string
}

// Parked lists up to limit parked events, of consumer (every consumer when ""), oldest
// parking first.
func (o *Outbox) Parked(ctx context.Context, consumer string, limit int) ([]Parked, error) {
	rows, err := o.db.Pool.Query(ctx, `
		SELECT o.id, o.topic, o.aggregate_id, o.payload, o.created_at, d.consumer, d.attempts, d.parked_at, COALESCE(d.last_error, '')
		FROM outbox_deliveries d JOIN outbox o ON o.id = d.event_id
		WHERE d.parked_at IS NOT NULL AND ($1 = '' OR d.consumer = $1)
		ORDER BY d.parked_at, d.event_id LIMIT $2`, consumer, limit)
	if err != nil {
		return nil, fmt.Errorf("list parked outbox events: %w", err)
	}
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Parked, error) {
		var p Parked
		err := r.Scan(&p.ID, &p.Topic, &p.AggregateID, &p.Payload, &p.CreatedAt, &p.Consumer, &p.Attempts, &p.ParkedAt, &p.Reason)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("list parked outbox events: %w", err)
	}
	return ps, nil
}

// ParkedCount is the number of parked deliveries (an event parked by two consumers
// counts twice), for readiness and metrics.
func (o *Outbox) ParkedCount(ctx context.Context) (int64, error) {
	var n int64
	if err := o.db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox_deliveries WHERE parked_at IS NOT NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count parked outbox events: %w", err)
	}
	return n, nil
}

// Requeue hands parked events back to their consumers with a fresh set of attempts: those
// of consumer (every consumer when ""), and only event id unless it is uuid.Nil. It
// returns how many it requeued.
func (o *Outbox) Requeue(ctx context.Context, consumer string, id uuid.UUID) (int64, error) {
	var ev *uuid.UUID
	if id != uuid.Nil {
		ev = &id
	}
	// The row stays, reset to a failure due now with no attempts spent: a consumer reading
	// from a floor finds the event however old (PendingSince).
	tag, err := o.db.Pool.Exec(ctx, `UPDATE outbox_deliveries SET parked_at = NULL, retry_at = NULL, attempts = 0
		WHERE parked_at IS NOT NULL AND done_at IS NULL
		AND ($1 = '' OR consumer = $1) AND ($2::UUID IS NULL OR event_id = $2)`, consumer, ev)
	if err != nil {
		return 0, fmt.Errorf("requeue parked outbox events: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Retire publishes up to limit unpublished events that every registered consumer of
// their topic is done with, and returns how many: events of a topic nobody consumes, and
// any a consumer's Done left (one registered after it ran). Done publishes the rest.
func (o *Outbox) Retire(ctx context.Context, limit int) (int64, error) {
	tag, err := o.db.Pool.Exec(ctx, retireSQL, nil, limit)
	if err != nil {
		return 0, fmt.Errorf("retire outbox events: %w", err)
	}
	return tag.RowsAffected(), nil
}

// PendingCount is the number of unpublished events no consumer parked (the outbox's
// lag, for readiness and metrics).
func (o *Outbox) PendingCount(ctx context.Context) (int64, error) {
	var n int64
	err := o.db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox o WHERE o.published_at IS NULL
		AND NOT EXISTS (SELECT 1 FROM outbox_deliveries d WHERE d.event_id = o.id AND d.parked_at IS NOT NULL)`).Scan(&n)
	return n, err
}
