package events

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/store"
)

// TestForEachOrderKeepsEachOrdersEventsInOrder: the events of one order are handled one
// after the other in the batch's order, while other orders are handled at the same time.
func TestForEachOrderKeepsEachOrdersEventsInOrder(t *testing.T) {
	a, b := uuid.New(), uuid.New()
	var evs []store.Event
	for i := range 20 {
		agg := a
		if i%2 == 1 {
			agg = b
		}
		evs = append(evs, store.Event{ID: uuid.New(), AggregateID: agg, Topic: "t"})
	}
	pos := map[uuid.UUID]int{}
	for i, e := range evs {
		pos[e.ID] = i
	}
	var mu sync.Mutex
	last := map[uuid.UUID]int{a: -1, b: -1}
	inA, inB := make(chan struct{}, 1), make(chan struct{}, 1)
	together := false
	err := forEachOrder(context.Background(), evs, 4, func(e store.Event) error {
		mine, other := inA, inB
		if e.AggregateID == b {
			mine, other = inB, inA
		}
		if pos[e.ID] < 2 { // the first event of each order waits for the other order's first
			mine <- struct{}{}
			select {
			case <-other:
				mu.Lock()
				together = true
				mu.Unlock()
			case <-time.After(10 * time.Second):
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if pos[e.ID] <= last[e.AggregateID] {
			t.Errorf("event %d of order %s after event %d", pos[e.ID], e.AggregateID, last[e.AggregateID])
		}
		last[e.AggregateID] = pos[e.ID]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !together {
		t.Fatal("two orders were never handled at the same time")
	}
	if last[a] != 18 || last[b] != 19 {
		t.Fatalf("last events handled: %d and %d, want 18 and 19", last[a], last[b])
	}
}

// TestForEachOrderStopsWhenTheContextEnds: no event is started after ctx ends.
func TestForEachOrderStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var evs []store.Event
	for range 50 {
		evs = append(evs, store.Event{ID: uuid.New(), AggregateID: uuid.New()})
	}
	var mu sync.Mutex
	n := 0
	err := forEachOrder(ctx, evs, 1, func(store.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("%d events handled, want 3 (the context ended at the third)", n)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want the context's: the batch must not count as done", err)
	}
}

// TestForEachOrderTurnsAPanicIntoTheEventsError: a call that panics (on a worker
// goroutine, out of the relay's recovery) is its event's error; the other events run.
func TestForEachOrderTurnsAPanicIntoTheEventsError(t *testing.T) {
	var evs []store.Event
	for range 10 {
		evs = append(evs, store.Event{ID: uuid.New(), AggregateID: uuid.New(), Topic: "t"})
	}
	bad := evs[4].ID
	var mu sync.Mutex
	ran := 0
	err := forEachOrder(context.Background(), evs, 3, func(e store.Event) error {
		if e.ID == bad {
			var m map[string]int
			m["boom"]++ // a nil map: a runtime panic
		}
		mu.Lock()
		ran++
		mu.Unlock()
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "panicked") || !strings.Contains(err.Error(), bad.String()) {
		t.Fatalf("error %v, want the panic of event %s", err, bad)
	}
	if ran != 9 {
		t.Fatalf("%d other events ran, want 9", ran)
	}
}
