package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	crdbpgx "github.com/cockroachdb/cockroach-go/v2/crdb/crdbpgxv5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// maxAttempts bounds the retries of one ExecuteTx call (cockroach-go's default is 50).
const maxAttempts = 50

// Backoff between PostgreSQL attempts: full jitter (a uniform wait in [0, d)) with d
// doubling from backoffBase up to backoffCap. The jitter is what breaks a deadlock's
// symmetry: two transactions retried after the same fixed pause would meet again.
const (
	backoffBase = time.Millisecond
	backoffCap  = 100 * time.Millisecond
)

// ExecuteTx runs fn in a SERIALIZABLE transaction and retries it from the start on a
// serialization failure (SQLSTATE 40001) and, on PostgreSQL, on a detected deadlock
// (40P01), up to 50 attempts.
//
// fn may run several times: it must only touch the transaction (no PSP calls, events or
// Redis writes — do those after commit or through the outbox).
//
// On CockroachDB this is crdbpgx.ExecuteTx, whose savepoint protocol is CockroachDB's
// native retry (CockroachDB reports deadlocks as 40001 too). That protocol is wrong on
// PostgreSQL: ROLLBACK TO SAVEPOINT keeps the transaction's snapshot, so the retry cannot
// see the conflicting write, and the final COMMIT error (where PostgreSQL reports most
// serialization failures) is ignored because on CockroachDB RELEASE already committed.
// So on PostgreSQL each attempt is a whole new transaction, COMMIT included.
//
// The PostgreSQL loop is written here rather than taken from cockroach-go's
// crdb.ExecuteCtx because that function (v2.4.2, the latest) retries only 40001 and
// CR000, immediately and without backoff, and offers no way to add either.
func (db *DB) ExecuteTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return db.executeTx(ctx, pgx.Serializable, fn)
}

// ExecuteLockedTx is ExecuteTx for a transaction whose correctness rests on the rows it
// locks (SELECT ... FOR UPDATE, updates conditional on the state they read) and on unique
// constraints, not on what it reads unlocked. On PostgreSQL it runs READ COMMITTED:
// serializable mode there tracks every read with page-level locks on the indexes it
// scans, so such a transaction and the checkouts inserting orders into the same index
// pages abort one another for nothing (the fulfilment's shipment transactions were
// retried 0.6 times per order at 100 orders/s). It is retried on a deadlock (40P01).
// On CockroachDB, whose serializable isolation tracks keys and not pages, it is
// ExecuteTx. Never for stock decrements or promotion claims: those stay serializable.
func (db *DB) ExecuteLockedTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return db.executeTx(ctx, pgx.ReadCommitted, fn)
}

func (db *DB) executeTx(ctx context.Context, iso pgx.TxIsoLevel, fn func(pgx.Tx) error) error {
	opts := pgx.TxOptions{IsoLevel: iso}
	if db.Cockroach {
		opts.IsoLevel = pgx.Serializable
		return crdbpgx.ExecuteTx(ctx, db.Pool, opts, fn)
	}
	var err error
	for attempt := range maxAttempts {
		if attempt > 0 {
			if werr := sleep(ctx, backoff(attempt)); werr != nil {
				return fmt.Errorf("%w (last attempt: %w)", werr, err)
			}
		}
		err = db.lazyTxFunc(ctx, iso, fn)
		if !retryable(err) {
			return err
		}
	}
	return fmt.Errorf("transaction still conflicting after %d attempts: %w", maxAttempts, err)
}

// lazyTxFunc runs fn in one transaction whose BEGIN goes with its first statement
// (lazyTx), commits it when fn succeeds and rolls it back otherwise.
func (db *DB) lazyTxFunc(ctx context.Context, iso pgx.TxIsoLevel, fn func(pgx.Tx) error) error {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection left inside a transaction (a rollback that failed) is closed by the
	// pool on release rather than reused.
	defer conn.Release()
	tx := &lazyTx{conn: conn.Conn(), opts: pgx.TxOptions{IsoLevel: iso}}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return tx.Commit(ctx)
}

// retryable reports whether err means "run the whole transaction again": PostgreSQL
// aborted it to resolve a conflict (40001 serialization_failure, 40P01
// deadlock_detected) and nothing of it was committed. Like cockroach-go's
// errIsRetryable it reads the SQLSTATE anywhere in the error chain, so fn may wrap
// errors with %w.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Code == "40001" || pe.Code == "40P01"
}

// backoff is the wait before attempt n (n >= 1).
func backoff(n int) time.Duration {
	d := backoffCap
	if n < 8 {
		d = min(backoffBase<<(n-1), backoffCap)
	}
	return rand.N(d) + 1
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
