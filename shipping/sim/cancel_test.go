package sim

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/shipping"
)

// A LABEL_CREATED shipment is voided: a CANCELLED event the hook is told of, in the
// void's transaction, and nothing due any more, so the runner never moves it again.
// Cancelling again is a no-op; a shipment that has left is refused and unchanged.
func TestCancel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	clk := newClock()
	c := New(db.Shipments, Options{Seed: 2, Step: time.Minute, Now: clk.Now, Hook: hookLog(t, db)})

	if err := c.Cancel(ctx, newOrder(t, db)); !errors.Is(err, shipping.ErrNotFound) {
		t.Fatalf("cancel without a shipment: %v", err)
	}
	order := newOrder(t, db)
	s, err := c.CreateShipment(ctx, request(order, shipping.MethodStandard))
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	for range 2 { // idempotent
		if err := c.Cancel(ctx, order); err != nil {
			t.Fatal(err)
		}
	}
	for range 40 {
		clk.Add(10 * time.Minute)
		if n, err := c.Tick(ctx); err != nil || n != 0 {
			t.Fatalf("tick after the void: %d steps, %v", n, err)
		}
	}
	got, err := c.Track(ctx, s.TrackingNumber)
	if err != nil {
		t.Fatal(err)
	}
	want := []shipping.Status{shipping.StatusLabelCreated, shipping.StatusCancelled}
	if got.Status != shipping.StatusCancelled || !slices.Equal(statuses(got.Events), want) {
		t.Fatalf("voided shipment: %s %v", got.Status, statuses(got.Events))
	}
	if !got.Events[1].At.After(got.Events[0].At) {
		t.Fatalf("void at %s, label at %s", got.Events[1].At, got.Events[0].At)
	}
	if h := hookRows(t, db, s.ID); len(h) != 2 || h[1] != (logged{2, "CANCELLED"}) {
		t.Fatalf("hook saw %v", h)
	}

	// In transit: too late, and nothing written.
	moving := newOrder(t, db)
	m, err := c.CreateShipment(ctx, request(moving, shipping.MethodStandard))
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	if n, err := c.Tick(ctx); err != nil || n != 1 {
		t.Fatalf("tick: %d, %v", n, err)
	}
	var late *shipping.TooLateError
	if err := c.Cancel(ctx, moving); !errors.As(err, &late) || late.Status != shipping.StatusInTransit || late.TrackingNumber != m.TrackingNumber {
		t.Fatalf("cancel in transit: %v", err)
	}
	if got, _ := c.Track(ctx, m.TrackingNumber); got.Status != shipping.StatusInTransit || len(got.Events) != 2 {
		t.Fatalf("refused cancel changed the shipment: %s %d events", got.Status, len(got.Events))
	}
	if h := hookRows(t, db, m.ID); len(h) != 2 {
		t.Fatalf("hook saw %v", h)
	}
}

// A void racing the runner's next step from LABEL_CREATED: exactly one of them is
// written. Either the void wins (CANCELLED, and the shipment never moves again) or the
// step wins (the void is TooLateError and the shipment goes on to DELIVERED), never
// both, over many rounds.
func TestCancelRacesTheNextStep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	clk := newClock()
	hook := hookLog(t, db)
	// Two carriers on one database, as two instances: one runs the steps, one voids.
	runner := New(db.Shipments, Options{Seed: 4, Step: time.Minute, Now: clk.Now, Hook: hook})
	voider := New(db.Shipments, Options{Seed: 4, Step: time.Minute, Now: clk.Now, Hook: hook})
	const rounds = 60
	won := map[bool]int{}
	for i := range rounds {
		order := newOrder(t, db)
		s, err := runner.CreateShipment(ctx, request(order, shipping.MethodExpress))
		if err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Minute) // the IN_TRANSIT step is due
		var wg sync.WaitGroup
		start := make(chan struct{})
		var cancelErr, tickErr error
		wg.Go(func() { <-start; cancelErr = voider.Cancel(ctx, order) })
		wg.Go(func() { <-start; _, tickErr = runner.Tick(ctx) })
		close(start)
		wg.Wait()
		if tickErr != nil {
			t.Fatalf("round %d: tick: %v", i, tickErr)
		}
		var late *shipping.TooLateError
		if cancelErr != nil && !errors.As(cancelErr, &late) {
			t.Fatalf("round %d: cancel: %v", i, cancelErr)
		}
		for range 20 {
			clk.Add(5 * time.Minute)
			if _, err := runner.Tick(ctx); err != nil {
				t.Fatal(err)
			}
		}
		got, err := runner.Track(ctx, s.TrackingNumber)
		if err != nil {
			t.Fatal(err)
		}
		evs := statuses(got.Events)
		h := hookRows(t, db, s.ID)
		if len(h) != len(evs) {
			t.Fatalf("round %d: %d events, hook saw %v", i, len(evs), h)
		}
		won[cancelErr == nil]++
		if cancelErr == nil {
			if !slices.Equal(evs, []shipping.Status{shipping.StatusLabelCreated, shipping.StatusCancelled}) {
				t.Fatalf("round %d: the void won, and then %v", i, evs)
			}
			continue
		}
		if got.Status != shipping.StatusDelivered || slices.Contains(evs, shipping.StatusCancelled) {
			t.Fatalf("round %d: the step won, and then %s %v", i, got.Status, evs)
		}
	}
	t.Logf("of %d rounds the void won %d, the step %d", rounds, won[true], won[false])
}
