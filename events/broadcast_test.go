package events_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// generations records the generations an instance adopted.
type generations struct {
	mu  sync.Mutex
	max uint64
}

func (g *generations) set(gen uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.max = max(g.max, gen)
}

func (g *generations) get() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.max
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCatalogGenerationIsSharedThroughRedis: instances sharing Redis agree on the
// catalog generation (and so on which cached responses are current): a change relayed by
// one reaches the others, a starting instance adopts the current one, and an instance
// that missed a message catches up by polling.
func TestCatalogGenerationIsSharedThroughRedis(t *testing.T) {
	rdb := testdb.Redis(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	var a, b, c generations
	relaying := &events.CatalogBroadcast{Redis: rdb, OnChange: a.set}
	other := &events.CatalogBroadcast{Redis: rdb, OnChange: b.set, Poll: 50 * time.Millisecond}
	go other.Listen(ctx)
	time.Sleep(100 * time.Millisecond) // subscribed

	changed := []store.Event{{Topic: store.TopicBookChanged}}
	if err := relaying.Handle(ctx, changed); err != nil {
		t.Fatal(err)
	}
	gen := a.get()
	if gen == 0 {
		t.Fatal("the relaying instance did not move to a new generation")
	}
	waitFor(t, "the other instance adopts the new generation", func() bool { return b.get() == gen })

	starting := &events.CatalogBroadcast{Redis: rdb, OnChange: c.set}
	go starting.Listen(ctx)
	waitFor(t, "a starting instance adopts the current generation", func() bool { return c.get() == gen })

	// A change whose message is lost (only the counter moves) is caught by polling.
	missed, err := rdb.Incr(ctx, "bookstore:catalog-gen").Uint64()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the other instance catches up on a missed message", func() bool { return b.get() == missed })

	// Events that change no book do not move the generation.
	if err := relaying.Handle(ctx, []store.Event{{Topic: "something.else"}}); err != nil {
		t.Fatal(err)
	}
	if now, _ := rdb.Get(ctx, "bookstore:catalog-gen").Uint64(); now != missed {
		t.Fatalf("generation moved to %d for an event that changed no book", now)
	}
}
