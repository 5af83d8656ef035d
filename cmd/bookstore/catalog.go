package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/catalog"
	"github.com/shopfront/bookstore/store"
)

var bookstoreAll = bookstore.BookFilter{}

const batchSize = 500

// maxReported caps the bad rows an import prints; the rest are counted.
const maxReported = 100

type loadStats struct {
	loaded, bad int
	took        time.Duration
}

// cmdImport streams a CSV file into the catalog in batches: memory does not grow with the
// file. A bad row (by the format's rules or refused by the database) is reported with its
// line and skipped whole; the good rows load. The exit status is non-zero when any row
// was bad.
func cmdImport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", stderr)
	dbURL := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL or CockroachDB URL (DATABASE_URL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: bookstore import [flags] books.csv  (use - for standard input)")
	}
	if err := requireURL(*dbURL); err != nil {
		return err
	}
	var in io.Reader = os.Stdin
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	db, err := store.Open(ctx, *dbURL, store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}
	st, err := importCSV(ctx, db, in, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d books in %s; %d bad rows\n", st.loaded, st.took.Round(time.Millisecond), st.bad)
	if st.bad > 0 {
		return fmt.Errorf("%d rows were not imported", st.bad)
	}
	return nil
}

func importCSV(ctx context.Context, db *store.DB, in io.Reader, report io.Writer) (loadStats, error) {
	start := time.Now()
	var st loadStats
	r, err := catalog.NewReader(in)
	if err != nil {
		return st, err
	}
	bad := func(msg string) {
		st.bad++
		if st.bad <= maxReported {
			fmt.Fprintln(report, msg)
		} else if st.bad == maxReported+1 {
			fmt.Fprintln(report, "... more bad rows are counted but not shown")
		}
	}
	b := db.NewBatcher(batchSize)
	b.OnFailed = func(f *store.LoadError) { bad(f.Error()) }
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		var rowErr *catalog.RowError
		if errors.As(err, &rowErr) {
			bad(rowErr.Error())
			continue
		}
		if err != nil {
			return st, err
		}
		if err := b.Add(ctx, rec); err != nil {
			return st, err
		}
	}
	if err := b.Flush(ctx); err != nil {
		return st, err
	}
	st.loaded = b.Loaded
	st.took = time.Since(start)
	return st, nil
}

// cmdSeed loads the deterministic demo catalog (idempotent: the same seed gives the same
// books, upserted by ISBN).
func cmdSeed(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("seed", stderr)
	dbURL := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL or CockroachDB URL (DATABASE_URL)")
	books := fs.Int("books", 10000, "number of books")
	seedN := fs.Int64("seed", 1, "random seed: the same seed gives the same catalog")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := requireURL(*dbURL); err != nil {
		return err
	}
	if *books < 0 || *books > 10_000_000 {
		return errors.New("--books must be between 0 and 10,000,000")
	}
	db, err := store.Open(ctx, *dbURL, store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}
	st, err := seed(ctx, db, *books, *seedN)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded %d books in %s\n", st.loaded, st.took.Round(time.Millisecond))
	return nil
}

func seed(ctx context.Context, db *store.DB, books int, seedN int64) (loadStats, error) {
	start := time.Now()
	b := db.NewBatcher(batchSize)
	var refused error
	b.OnFailed = func(f *store.LoadError) { refused = errors.Join(refused, f) }
	err := catalog.Generate(seedN, books, func(r catalog.Record) error { return b.Add(ctx, r) })
	if err == nil {
		err = b.Flush(ctx)
	}
	if err == nil {
		err = refused
	}
	if err == nil {
		err = seedPromotions(ctx, db, time.Now())
	}
	return loadStats{loaded: b.Loaded, took: time.Since(start)}, err
}

// seedPromotions adds the demo discount codes that the README and client examples use
// (kept if they exist, so seeding twice changes nothing).
func seedPromotions(ctx context.Context, db *store.DB, now time.Time) error {
	ten := int64(10)
	expired := now.AddDate(0, -1, 0)
	for _, p := range []bookstore.Promotion{
		{Code: "WELCOME10", Description: "10% off your order", Kind: bookstore.DiscountPercent, Value: 10, Active: true},
		{Code: "BOOKWORM5", Description: "5 USD off orders over 30 USD", Kind: bookstore.DiscountFixed, Value: 500, MinSubtotalCents: 3000, Active: true},
		{Code: "SUMMER2020", Description: "expired: ended a month ago", Kind: bookstore.DiscountPercent, Value: 20,
			StartsAt: ptr(expired.AddDate(0, -2, 0)), EndsAt: &expired, Active: true},
		{Code: "FIRST100", Description: "used up: all 10 redemptions taken", Kind: bookstore.DiscountPercent, Value: 15,
			UsageLimit: &ten, Used: ten, Active: true},
		{Code: "STACK2", Description: "2 USD off, combines with other combinable codes", Kind: bookstore.DiscountFixed, Value: 200,
			Combinable: true, Active: true},
	} {
		if err := db.Promotions.Ensure(ctx, &p); err != nil {
			return err
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// loadRecords loads a few records in one batch; a record the database refuses is an
// error.
func loadRecords(ctx context.Context, db *store.DB, recs []catalog.Record) error {
	failed, err := db.Load(ctx, recs)
	if err != nil {
		return err
	}
	for _, f := range failed {
		err = errors.Join(err, f)
	}
	return err
}
