package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// TestOutboxRequeue: `bookstore outbox parked` lists the events consumers parked, with
// their reasons; `bookstore outbox requeue` hands one (or all) back to its consumer,
// which then delivers it, and the event is published.
func TestOutboxRequeue(t *testing.T) {
	ctx := context.Background()
	url := testdb.NewURL(t)
	db, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []string{"mail", "shipping"} {
		if err := db.Outbox.Register(ctx, c, []string{"order_paid"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Outbox.Notify(ctx, "order_paid", []uuid.UUID{uuid.New(), uuid.New()}); err != nil {
		t.Fatal(err)
	}
	evs, err := db.Outbox.PendingFor(ctx, "mail", []string{"order_paid"}, 10)
	if err != nil || len(evs) != 2 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	holder := uuid.New()
	park := func(consumer string, e store.Event, reason string) {
		t.Helper()
		l, held, err := db.Outbox.Acquire(ctx, "outbox:"+consumer, holder, time.Minute)
		if err != nil || !held {
			t.Fatalf("lease: %v %v", held, err)
		}
		if _, err := db.Outbox.Failed(ctx, l, consumer, e.ID, reason, store.Retry{Base: time.Second, Max: time.Second, Attempts: 1}); err != nil {
			t.Fatal(err)
		}
		if err := db.Outbox.ReleaseLease(ctx, "outbox:"+consumer, holder); err != nil {
			t.Fatal(err)
		}
	}
	park("mail", evs[0], "SMTP 554 relay denied\n")
	park("mail", evs[1], "SMTP timeout")
	park("shipping", evs[0], "carrier down")

	vars := map[string]string{"DATABASE_URL": url}
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, append([]string{"outbox"}, args...), env(vars), &out, &out)
		return out.String(), err
	}
	out, err := cli("parked", "--consumer", "mail")
	if err != nil {
		t.Fatalf("parked: %v\n%s", err, out)
	}
	if !strings.Contains(out, evs[0].ID.String()) || !strings.Contains(out, `"SMTP 554 relay denied\n"`) ||
		!strings.Contains(out, "SMTP timeout") || strings.Contains(out, "carrier down") || !strings.Contains(out, "2 parked") {
		t.Fatalf("parked --consumer mail:\n%s", out)
	}
	for _, bad := range [][]string{{"requeue"}, {"requeue", "--all", "--event", evs[0].ID.String()}, {"requeue", "--event", "nope"}, {"parked", "--limit", "0"}, {"frobnicate"}} {
		if out, err := cli(bad...); err == nil {
			t.Errorf("outbox %v succeeded:\n%s", bad, out)
		}
	}
	if out, err := cli("requeue", "--consumer", "mail", "--event", evs[0].ID.String()); err != nil || !strings.Contains(out, "requeued 1 ") {
		t.Fatalf("requeue one: %v\n%s", err, out)
	}
	if out, err := cli("requeue", "--consumer", "mail", "--event", evs[0].ID.String()); err == nil {
		t.Fatalf("requeue of an event no longer parked succeeded:\n%s", out)
	}

	// The fixed mailer delivers the requeued event, and only it.
	var mailed []uuid.UUID
	mail := events.HandlerFunc(func(_ context.Context, evs []store.Event) error {
		for _, e := range evs {
			mailed = append(mailed, e.ID)
		}
		return nil
	})
	relay := &events.Relay{Outbox: db.Outbox, Handlers: []events.Handler{events.Subscribe("mail", mail, "order_paid")}}
	if err := relay.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if len(mailed) != 1 || mailed[0] != evs[0].ID {
		t.Fatalf("mailed %v, want only the requeued %s", mailed, evs[0].ID)
	}
	if out, err := cli("requeue", "--all"); err != nil || !strings.Contains(out, "requeued 2 ") {
		t.Fatalf("requeue --all: %v\n%s", err, out)
	}
	if n, err := db.Outbox.ParkedCount(ctx); err != nil || n != 0 {
		t.Fatalf("%d parked after requeue --all, %v", n, err)
	}
}
