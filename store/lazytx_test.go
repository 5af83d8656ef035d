package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// TestTransactionBegunWithItsFirstStatement: whatever the first call of a transaction is
// (Exec, Query, QueryRow, SendBatch), it runs inside the transaction, at the requested
// isolation level, and the transaction's writes commit together or roll back together;
// a statement that failed makes the commit fail, and a transaction that ran nothing
// commits nothing.
func TestTransactionBegunWithItsFirstStatement(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if _, err := db.Pool.Exec(ctx, `CREATE TABLE lazy (id INT8 PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		count := func() int {
			t.Helper()
			var n int
			if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM lazy`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		boom := errors.New("boom")
		firsts := map[string]func(pgx.Tx, int) error{
			"Exec": func(tx pgx.Tx, id int) error {
				_, err := tx.Exec(ctx, `INSERT INTO lazy VALUES ($1)`, id)
				return err
			},
			"Query": func(tx pgx.Tx, id int) error {
				rows, err := tx.Query(ctx, `INSERT INTO lazy VALUES ($1) RETURNING id`, id)
				if err != nil {
					return err
				}
				ids, err := pgx.CollectRows(rows, pgx.RowTo[int])
				if err == nil && (len(ids) != 1 || ids[0] != id) {
					err = errors.New("Query returned the wrong rows")
				}
				return err
			},
			"QueryRow": func(tx pgx.Tx, id int) error {
				var got int
				err := tx.QueryRow(ctx, `INSERT INTO lazy VALUES ($1) RETURNING id`, id).Scan(&got)
				if err == nil && got != id {
					err = errors.New("QueryRow returned the wrong row")
				}
				return err
			},
			"SendBatch": func(tx pgx.Tx, id int) error {
				b := &pgx.Batch{}
				var got int
				b.Queue(`INSERT INTO lazy VALUES ($1) RETURNING id`, id).QueryRow(func(r pgx.Row) error { return r.Scan(&got) })
				if err := tx.SendBatch(ctx, b).Close(); err != nil {
					return err
				}
				if got != id {
					return errors.New("the batch's callback saw the wrong row")
				}
				return nil
			},
		}
		id := 0
		for name, first := range firsts {
			for _, iso := range []struct {
				run  func(context.Context, func(pgx.Tx) error) error
				want string
			}{{db.ExecuteTx, "serializable"}, {db.ExecuteLockedTx, "read committed"}} {
				if db.Cockroach && iso.want != "serializable" {
					iso.want = "serializable"
				}
				before := count()
				id++
				err := iso.run(ctx, func(tx pgx.Tx) error {
					if err := first(tx, id); err != nil {
						return err
					}
					var level string
					if err := tx.QueryRow(ctx, `SHOW transaction_isolation`).Scan(&level); err != nil {
						return err
					}
					if level != iso.want {
						t.Errorf("%s first: isolation %q, want %q", name, level, iso.want)
					}
					// Inside the transaction: a second connection does not see the row yet.
					var seen int
					if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM lazy WHERE id = $1`, id).Scan(&seen); err != nil {
						return err
					}
					if seen != 0 {
						t.Errorf("%s first: the row is visible before commit: the statement ran outside the transaction", name)
					}
					_, err := tx.Exec(ctx, `INSERT INTO lazy VALUES ($1)`, id+1000)
					return err
				})
				if err != nil || count() != before+2 {
					t.Fatalf("%s first (%s): %v; %d rows, want %d", name, iso.want, err, count(), before+2)
				}
				id++
				err = iso.run(ctx, func(tx pgx.Tx) error {
					if err := first(tx, id); err != nil {
						return err
					}
					return boom
				})
				if !errors.Is(err, boom) || count() != before+2 {
					t.Fatalf("%s first, then an error: %v; %d rows, want %d (rolled back)", name, err, count(), before+2)
				}
			}
		}
		// A failed statement whose error is ignored: the commit fails, nothing lands.
		before := count()
		err := db.ExecuteTx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO lazy VALUES (5000)`); err != nil {
				return err
			}
			_, _ = tx.Exec(ctx, `INSERT INTO lazy VALUES (5000)`) // duplicate key: the transaction is aborted
			return nil
		})
		if err == nil || count() != before {
			t.Fatalf("commit after a failed statement: %v; %d rows, want %d", err, count(), before)
		}
		// A failing first statement in a batch: the error comes back, nothing lands.
		err = db.ExecuteTx(ctx, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO lazy VALUES (6000)`)
			b.Queue(`INSERT INTO missing_table VALUES (1)`)
			return tx.SendBatch(ctx, b).Close()
		})
		if err == nil || count() != before {
			t.Fatalf("failed batch: %v; %d rows, want %d", err, count(), before)
		}
		// Nothing run, nothing committed; the connection is fine afterwards.
		if err := db.ExecuteTx(ctx, func(pgx.Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if count() != before {
			t.Fatal("an empty transaction wrote")
		}
	})
}
