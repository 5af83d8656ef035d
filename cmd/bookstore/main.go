// Command bookstore runs the online bookstore's GraphQL backend and its maintenance tasks.
//
//	bookstore serve     serve the API against DATABASE_URL
//	bookstore dev       start a private database, migrate, seed a demo catalog, serve with GraphiQL
//	bookstore migrate   apply pending database migrations
//	bookstore import F  load a CSV catalog file (upsert by ISBN)
//	bookstore seed      load a deterministic demo catalog
//	bookstore reindex   rebuild the search index from the database
//	bookstore catalog   new-id: give a copied database its own catalog id
//	bookstore keys      generate key material, or re-wrap PII under a new master key
//	bookstore admin     create an administrator account
//	bookstore outbox    list or requeue parked outbox events
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bookstore:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage: bookstore <command> [flags]

commands:
  serve     serve the GraphQL API (needs DATABASE_URL)
  dev       start a private database, migrate, seed and serve with GraphiQL
  migrate   apply pending database migrations
  import    load a CSV file of books: bookstore import books.csv
  seed      load a deterministic demo catalog: bookstore seed --books 10000
  reindex   rebuild the search index from the database
  catalog   new-id: give a copied database its own catalog id (search indexes rebuild)
  keys      generate: print fresh key variables; rotate: re-wrap PII data keys
  admin     create --email E: create (or promote) an ADMIN account
  outbox    parked: list parked outbox events; requeue (--event ID | --all): retry them

Run 'bookstore <command> -h' for a command's flags.
`

// run is main without the process: tests call it with their own arguments, environment
// and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, getenv, stdout, stderr)
	case "dev":
		return cmdDev(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return cmdMigrate(ctx, rest, getenv, stdout, stderr)
	case "import":
		return cmdImport(ctx, rest, getenv, stdout, stderr)
	case "seed":
		return cmdSeed(ctx, rest, getenv, stdout, stderr)
	case "reindex":
		return cmdReindex(ctx, rest, getenv, stdout, stderr)
	case "catalog":
		return cmdCatalog(ctx, rest, getenv, stdout, stderr)
	case "keys":
		return cmdKeys(ctx, rest, getenv, stdout, stderr)
	case "admin":
		return cmdAdmin(ctx, rest, getenv, os.Stdin, stdout, stderr)
	case "outbox":
		return cmdOutbox(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
