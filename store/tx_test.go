package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// TestExecuteTxRetriesConflicts hammers one row with read-modify-write transactions from
// many goroutines. Under SERIALIZABLE most attempts conflict (SQLSTATE 40001, often only
// at COMMIT on PostgreSQL); ExecuteTx must retry each from the start so that every call
// that returned nil is counted exactly once: no lost update, no swallowed commit failure.
func TestExecuteTxRetriesConflicts(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if _, err := db.Pool.Exec(ctx, `CREATE TABLE counter (id INT8 PRIMARY KEY, n INT8 NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Pool.Exec(ctx, `INSERT INTO counter VALUES (1, 0)`); err != nil {
			t.Fatal(err)
		}
		const workers, perWorker = 12, 15
		var attempts, ok atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perWorker {
					err := db.ExecuteTx(ctx, func(tx pgx.Tx) error {
						attempts.Add(1)
						var n int64
						if err := tx.QueryRow(ctx, `SELECT n FROM counter WHERE id = 1`).Scan(&n); err != nil {
							return err
						}
						_, err := tx.Exec(ctx, `UPDATE counter SET n = $1 WHERE id = 1`, n+1)
						return err
					})
					if err != nil {
						t.Errorf("ExecuteTx: %v", err)
						return
					}
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		var n int64
		if err := db.Pool.QueryRow(ctx, `SELECT n FROM counter WHERE id = 1`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != ok.Load() || n != workers*perWorker {
			t.Fatalf("counter = %d, successful transactions = %d, want both %d", n, ok.Load(), workers*perWorker)
		}
		if attempts.Load() == ok.Load() {
			t.Fatalf("no conflicts happened (attempts = %d): the test did not exercise the retry path", attempts.Load())
		}
		t.Logf("%d transactions took %d attempts", ok.Load(), attempts.Load())
	})
}

// TestExecuteTxRetriesDeadlockAndSerializationFailure forces each kind of conflict
// deterministically with two transactions held at a barrier on their first attempt:
//   - deadlock: each locks one row, then the other's (opposite order), so PostgreSQL
//     aborts one with 40P01;
//   - serialization failure: both read a counter, then both write it, so the second
//     writer gets 40001 once the first commits.
//
// Both calls must succeed (the victim retried from the start) and every increment must
// be in the table: no lost update.
func TestExecuteTxRetriesDeadlockAndSerializationFailure(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if _, err := db.Pool.Exec(ctx, `CREATE TABLE pair (id INT8 PRIMARY KEY, n INT8 NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Pool.Exec(ctx, `INSERT INTO pair VALUES (1, 0), (2, 0)`); err != nil {
			t.Fatal(err)
		}
		wantCode := map[string]string{"deadlock": "40P01", "serialization": "40001"}
		if db.Cockroach {
			// CockroachDB breaks deadlocks by aborting a transaction with 40001.
			wantCode["deadlock"] = "40001"
		}
		cases := []struct {
			name string
			// first runs before the barrier, second after it; each gets the
			// transaction and the worker's index (0 or 1).
			first, second func(tx pgx.Tx, w int) error
			want          [2]int64 // rows 1 and 2 after both calls
		}{
			{
				name: "deadlock",
				first: func(tx pgx.Tx, w int) error {
					_, err := tx.Exec(ctx, `UPDATE pair SET n = n + 1 WHERE id = $1`, 1+w)
					return err
				},
				second: func(tx pgx.Tx, w int) error {
					_, err := tx.Exec(ctx, `UPDATE pair SET n = n + 1 WHERE id = $1`, 2-w)
					return err
				},
				want: [2]int64{2, 2},
			},
			{
				name: "serialization",
				first: func(tx pgx.Tx, w int) error {
					var n int64
					return tx.QueryRow(ctx, `SELECT n FROM pair WHERE id = 1`).Scan(&n)
				},
				second: func(tx pgx.Tx, w int) error {
					_, err := tx.Exec(ctx, `UPDATE pair SET n = (SELECT n FROM pair WHERE id = 1) + 1 WHERE id = 1`)
					return err
				},
				want: [2]int64{4, 2}, // on top of the deadlock case's result
			},
		}
		for _, c := range cases {
			var (
				barrier  sync.WaitGroup
				mu       sync.Mutex
				codes    []string
				attempts [2]int
				wg       sync.WaitGroup
				errs     [2]error
			)
			barrier.Add(2)
			record := func(err error) error {
				var pe *pgconn.PgError
				if errors.As(err, &pe) {
					mu.Lock()
					codes = append(codes, pe.Code)
					mu.Unlock()
				}
				return err
			}
			for w := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[w] = db.ExecuteTx(ctx, func(tx pgx.Tx) error {
						attempts[w]++
						if err := c.first(tx, w); err != nil {
							return record(err)
						}
						if attempts[w] == 1 {
							barrier.Done()
							barrier.Wait()
						}
						return record(c.second(tx, w))
					})
				}()
			}
			wg.Wait()
			for w, err := range errs {
				if err != nil {
					t.Fatalf("%s: worker %d: ExecuteTx: %v", c.name, w, err)
				}
			}
			var got [2]int64
			if err := db.Pool.QueryRow(ctx, `SELECT (SELECT n FROM pair WHERE id = 1), (SELECT n FROM pair WHERE id = 2)`).Scan(&got[0], &got[1]); err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("%s: rows = %v, want %v (a lost or doubled update)", c.name, got, c.want)
			}
			if !slices.Contains(codes, wantCode[c.name]) {
				t.Fatalf("%s: conflicts seen %v, want %s: the test did not force the conflict", c.name, codes, wantCode[c.name])
			}
			if attempts[0]+attempts[1] < 3 {
				t.Fatalf("%s: attempts %v: nothing was retried", c.name, attempts)
			}
			t.Logf("%s: conflicts %v, attempts %v", c.name, codes, attempts)
		}
	})
}
