package main

import (
	"context"
	"fmt"
	"io"

	"github.com/shopfront/bookstore/store"
)

func cmdMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	dbURL := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL or CockroachDB URL (DATABASE_URL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := requireURL(*dbURL); err != nil {
		return err
	}
	db, err := store.Open(ctx, *dbURL, store.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "applied %d migrations\n", n)
	return nil
}
