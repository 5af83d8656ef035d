package events

import (
	"context"
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
	forEachOrder(context.Background(), evs, 4, func(e store.Event) {
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
	})
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
	forEachOrder(ctx, evs, 1, func(store.Event) {
		mu.Lock()
		defer mu.Unlock()
		if n++; n == 3 {
			cancel()
		}
	})
	if n != 3 {
		t.Fatalf("%d events handled, want 3 (the context ended at the third)", n)
	}
}
