package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
)

// cmdOutbox lists and requeues the outbox events that consumers parked after their last
// attempt (see the events package): after the cause is fixed, a requeued event gets a
// fresh set of attempts from its consumer, and only from it.
func cmdOutbox(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = "usage: bookstore outbox parked [--consumer C] [--limit N] | requeue [--consumer C] (--event ID | --all)"
	if len(args) == 0 || (args[0] != "parked" && args[0] != "requeue") {
		return errors.New(usage)
	}
	sub := args[0]
	fs := newFlagSet("outbox "+sub, stderr)
	url := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL or CockroachDB URL (DATABASE_URL)")
	consumer := fs.String("consumer", "", "only this consumer's parked events (default: every consumer's)")
	limit := fs.Int("limit", 100, "parked: list at most this many (1 to 10000)")
	event := fs.String("event", "", "requeue: the id of the event to requeue")
	all := fs.Bool("all", false, "requeue: every parked event (of --consumer, if given)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New(usage)
	}
	if err := requireURL(*url); err != nil {
		return err
	}
	if len(*consumer) > 200 {
		return errors.New("--consumer: too long")
	}
	id := uuid.Nil
	switch {
	case sub == "parked" && (*limit < 1 || *limit > 10_000):
		return errors.New("--limit must be between 1 and 10000")
	case sub == "requeue" && (*event == "") == !*all:
		return errors.New("requeue: give either --event ID or --all")
	case *event != "":
		var err error
		if id, err = uuid.Parse(*event); err != nil {
			return fmt.Errorf("--event: %w", err)
		}
	}
	db, err := openDB(ctx, *url, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	if sub == "requeue" {
		n, err := db.Outbox.Requeue(ctx, *consumer, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "requeued %d parked deliveries\n", n)
		if n == 0 && id != uuid.Nil {
			return fmt.Errorf("event %s is not parked (for consumer %q)", id, *consumer)
		}
		return nil
	}
	ps, err := db.Outbox.Parked(ctx, *consumer, *limit)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CONSUMER\tEVENT\tTOPIC\tAGGREGATE\tATTEMPTS\tPARKED AT\tREASON")
	for _, p := range ps {
		// %q: the reason is a handler's error text, which may hold anything.
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%q\n", p.Consumer, p.ID, p.Topic, p.AggregateID, p.Attempts,
			p.ParkedAt.UTC().Format(time.RFC3339), p.Reason)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d parked\n", len(ps))
	return nil
}
