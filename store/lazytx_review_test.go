package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore/internal/testdb"
)

// TestUUIDEncodeAndScanUnchanged: registering pgx-google-uuid must not change how ids are
// encoded into non-UUID parameters or scanned (probe for the review of 4c5a5b3).
func TestUUIDEncodeAndScanUnchanged(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	id := uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	var s string
	if err := db.Pool.QueryRow(ctx, `SELECT $1::TEXT`, id).Scan(&s); err != nil || s != id.String() {
		t.Errorf("uuid into a TEXT parameter: %q, %v", s, err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT $1::VARCHAR`, id).Scan(&s); err != nil || s != id.String() {
		t.Errorf("uuid into a VARCHAR parameter: %q, %v", s, err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT $1::TEXT[]::TEXT`, []uuid.UUID{id}).Scan(&s); err != nil || s != "{"+id.String()+"}" {
		t.Errorf("[]uuid into a TEXT[] parameter: %q, %v", s, err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT $1::JSONB->>0`, []uuid.UUID{id}).Scan(&s); err != nil || s != id.String() {
		t.Errorf("[]uuid into a JSONB parameter: %q, %v", s, err)
	}
	var u uuid.UUID
	if err := db.Pool.QueryRow(ctx, `SELECT NULL::UUID`).Scan(&u); err != nil || u != uuid.Nil {
		t.Errorf("NULL into *uuid.UUID: %v, %v", u, err)
	}
	var pu *uuid.UUID
	if err := db.Pool.QueryRow(ctx, `SELECT NULL::UUID`).Scan(&pu); err != nil || pu != nil {
		t.Errorf("NULL into **uuid.UUID: %v, %v", pu, err)
	}
	var nu uuid.NullUUID
	if err := db.Pool.QueryRow(ctx, `SELECT NULL::UUID`).Scan(&nu); err != nil || nu.Valid {
		t.Errorf("NULL into uuid.NullUUID: %v, %v", nu, err)
	}
	var a any
	if err := db.Pool.QueryRow(ctx, `SELECT $1::UUID`, id).Scan(&a); err != nil {
		t.Errorf("uuid into any: %v", err)
	} else {
		t.Logf("uuid into any: %T", a)
	}
	var ids []uuid.UUID
	if err := db.Pool.QueryRow(ctx, `SELECT ARRAY[$1::UUID, NULL]`, id).Scan(&ids); err != nil {
		t.Logf("UUID[] with a NULL into []uuid.UUID: %v", err)
	} else {
		t.Logf("UUID[] with a NULL into []uuid.UUID: %v", ids)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT ($1::UUID[])[1]::TEXT`, []any{id}).Scan(&s); err != nil || s != id.String() {
		t.Errorf("[]any{uuid} into UUID[]: %q, %v", s, err)
	}
	var nilID *uuid.UUID
	var isNull bool
	if err := db.Pool.QueryRow(ctx, `SELECT $1::UUID IS NULL`, nilID).Scan(&isNull); err != nil || !isNull {
		t.Errorf("nil *uuid.UUID: %v, %v", isNull, err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT $1::UUID IS NULL`, uuid.NullUUID{}).Scan(&isNull); err != nil || !isNull {
		t.Errorf("invalid NullUUID: %v, %v", isNull, err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT $1::TEXT IS NULL`, uuid.NullUUID{}).Scan(&isNull); err != nil || !isNull {
		t.Errorf("invalid NullUUID into TEXT: %v, %v", isNull, err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT $1::TEXT`, uuid.NullUUID{UUID: id, Valid: true}).Scan(&s); err != nil || s != id.String() {
		t.Errorf("NullUUID into TEXT: %q, %v", s, err)
	}
	// Text scans of uuid into string.
	if err := db.Pool.QueryRow(ctx, `SELECT $1::UUID`, id).Scan(&s); err != nil || s != id.String() {
		t.Errorf("UUID into *string: %q, %v", s, err)
	}
	rows, err := db.Pool.Query(ctx, `SELECT $1::UUID`, id)
	if err == nil {
		for rows.Next() {
			v, err := rows.Values()
			t.Logf("Values: %T %v %v", v[0], v[0], err)
		}
		rows.Close()
	}
}

// TestLazyTxQueryRowsOnError: pgx's Tx.Query returns usable Rows even with an error
// ("It is safe to attempt to read from the returned Rows even if an error is
// returned"); lazyTx's first Query returns nil.
func TestLazyTxQueryRowsOnError(t *testing.T) {
	db := testdb.New(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	err := db.ExecuteTx(context.Background(), func(tx pgx.Tx) error {
		rows, err := tx.Query(cancelled, `SELECT 1`)
		if err == nil {
			return errors.New("no error from a cancelled context")
		}
		if rows == nil {
			t.Errorf("Query returned nil Rows with %v: `rows, _ := tx.Query(...); defer rows.Close()` panics", err)
			return err
		}
		rows.Close()
		return rows.Err()
	})
	if err == nil {
		t.Fatal("no error")
	}
}

// TestLazyTxSwallowedFirstStatementError: the first statement fails (it carries BEGIN),
// its error is ignored, more statements follow: nothing may commit.
func TestLazyTxSwallowedFirstStatementError(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	mustExec(t, db, `CREATE TABLE r4 (id INT8 PRIMARY KEY)`)
	mustExec(t, db, `INSERT INTO r4 VALUES (1)`)
	err := db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		_, _ = tx.Exec(ctx, `INSERT INTO r4 VALUES (1)`) // duplicate, first statement
		_, _ = tx.Exec(ctx, `INSERT INTO r4 VALUES (2)`)
		return nil
	})
	var n int
	_ = db.Pool.QueryRow(ctx, `SELECT count(*) FROM r4`).Scan(&n)
	if err == nil || n != 1 {
		t.Fatalf("commit after a failed first statement: %v, %d rows", err, n)
	}
	// First statement refused at prepare (nothing sent, BEGIN included), error ignored.
	err = db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		_, _ = tx.Exec(ctx, `INSERT INTO r4_missing VALUES (1)`)
		_, _ = tx.Exec(ctx, `INSERT INTO r4 VALUES (3)`)
		return nil
	})
	_ = db.Pool.QueryRow(ctx, `SELECT count(*) FROM r4`).Scan(&n)
	if err == nil || n != 1 {
		t.Fatalf("commit after a first statement refused at prepare: %v, %d rows", err, n)
	}
	// The pool's connections are all idle and outside a transaction afterwards.
	for range 4 {
		var st string
		if err := db.Pool.QueryRow(ctx, `SELECT count(*)::TEXT FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&st); err != nil || st != "0" {
			t.Fatalf("idle in transaction: %s, %v", st, err)
		}
	}
}

// TestLazyTxFirstStatementRetryAndCancel: a first statement (carrying BEGIN) that fails
// with 40001 is retried on a fresh transaction and commits once; a first statement cut by
// its context leaves no connection inside a transaction and the pool usable.
func TestLazyTxFirstStatementRetryAndCancel(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	mustExec(t, db, `CREATE TABLE r4 (id INT8 PRIMARY KEY)`)
	mustExec(t, db, `CREATE SEQUENCE r4_once`)
	mustExec(t, db, `CREATE FUNCTION r4_fail_once() RETURNS INT8 LANGUAGE plpgsql AS $$
		BEGIN
			IF nextval('r4_once') = 1 THEN RAISE EXCEPTION 'injected' USING ERRCODE = '40001'; END IF;
			RETURN 1;
		END $$`)
	attempts := 0
	for name, first := range map[string]func(pgx.Tx) error{
		"Exec":     func(tx pgx.Tx) error { _, err := tx.Exec(ctx, `SELECT r4_fail_once()`); return err },
		"QueryRow": func(tx pgx.Tx) error { var n int64; return tx.QueryRow(ctx, `SELECT r4_fail_once()`).Scan(&n) },
		"Query": func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT r4_fail_once()`)
			if err != nil {
				return err
			}
			_, err = pgx.CollectRows(rows, pgx.RowTo[int64])
			return err
		},
	} {
		mustExec(t, db, `SELECT setval('r4_once', 1, false)`)
		mustExec(t, db, `DELETE FROM r4`)
		attempts = 0
		err := db.ExecuteTx(ctx, func(tx pgx.Tx) error {
			attempts++
			if err := first(tx); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO r4 VALUES (1)`)
			return err
		})
		var n int
		_ = db.Pool.QueryRow(ctx, `SELECT count(*) FROM r4`).Scan(&n)
		if err != nil || attempts != 2 || n != 1 {
			t.Errorf("%s: 40001 on the first statement: %v, %d attempts, %d rows", name, err, attempts, n)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err := db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(cctx, `SELECT pg_sleep(2)`)
		return err
	})
	if err == nil {
		t.Fatal("no error from a cut first statement")
	}
	for range 8 {
		if err := db.ExecuteTx(ctx, func(tx pgx.Tx) error {
			var st string
			return tx.QueryRow(ctx, `SELECT current_setting('transaction_isolation')`).Scan(&st)
		}); err != nil {
			t.Fatalf("after a cut first statement: %v", err)
		}
	}
}
