package store

import (
	"context"

	"github.com/cockroachdb/cockroach-go/v2/crdb"
	crdbpgx "github.com/cockroachdb/cockroach-go/v2/crdb/crdbpgxv5"
	"github.com/jackc/pgx/v5"
)

// ExecuteTx runs fn in a SERIALIZABLE transaction and retries it from the start on a
// serialization failure (SQLSTATE 40001), up to cockroach-go's default of 50 attempts.
//
// fn may run several times: it must only touch the transaction (no PSP calls, events or
// Redis writes — do those after commit or through the outbox).
//
// On CockroachDB this is crdbpgx.ExecuteTx, whose savepoint protocol is CockroachDB's
// native retry. That protocol is wrong on PostgreSQL: ROLLBACK TO SAVEPOINT keeps the
// transaction's snapshot, so the retry cannot see the conflicting write, and the final
// COMMIT error (where PostgreSQL reports most serialization failures) is ignored because
// on CockroachDB RELEASE already committed. So on PostgreSQL each attempt is a whole new
// transaction, COMMIT included, retried by cockroach-go's crdb.ExecuteCtx.
func (db *DB) ExecuteTx(ctx context.Context, fn func(pgx.Tx) error) error {
	opts := pgx.TxOptions{IsoLevel: pgx.Serializable}
	if db.Cockroach {
		return crdbpgx.ExecuteTx(ctx, db.Pool, opts, fn)
	}
	return crdb.ExecuteCtx(ctx, func(ctx context.Context, _ ...any) error {
		return pgx.BeginTxFunc(ctx, db.Pool, opts, fn)
	})
}
