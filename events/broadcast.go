package events

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopfront/bookstore/store"
)

// Redis names of the catalog generation.
const (
	catalogChannel = "bookstore:catalog-changed" // pub/sub: the new generation
	catalogGenKey  = "bookstore:catalog-gen"     // the current generation
)

// CatalogBroadcast numbers catalog changes with a generation that every instance agrees
// on, so that each drops the cached responses of older generations. With Redis the
// generation lives there: the relaying instance increments it and publishes the new
// value, every instance adopts it in Listen (and re-reads it every few seconds, in case
// it missed a message). Without Redis there is one instance and the generation is local.
type CatalogBroadcast struct {
	Redis *redis.Client
	// OnChange receives each new generation; generations only grow.
	OnChange func(gen uint64)
	Log      *slog.Logger
	// Poll is how often Listen re-reads the generation (default 5s).
	Poll time.Duration

	local atomic.Uint64
}

// Consumer implements Consumer.
func (b *CatalogBroadcast) Consumer() (string, []string) {
	return "catalog-broadcast", []string{store.TopicBookChanged}
}

// Handle implements Handler.
func (b *CatalogBroadcast) Handle(ctx context.Context, evs []store.Event) error {
	changed := false
	for _, e := range evs {
		changed = changed || e.Topic == store.TopicBookChanged
	}
	if !changed {
		return nil
	}
	if b.Redis == nil {
		b.OnChange(b.local.Add(1))
		return nil
	}
	gen, err := b.Redis.Incr(ctx, catalogGenKey).Uint64()
	if err != nil {
		return err
	}
	b.OnChange(gen) // this instance at once, whatever pub/sub does
	return b.Redis.Publish(ctx, catalogChannel, gen).Err()
}

// Listen adopts the generations other instances publish until ctx ends (Redis only;
// without Redis it returns at once). It reads the current generation first, so that a
// starting instance does not serve entries older instances have already dropped.
func (b *CatalogBroadcast) Listen(ctx context.Context) {
	if b.Redis == nil {
		return
	}
	sub := b.Redis.Subscribe(ctx, catalogChannel)
	defer sub.Close()
	poll := b.Poll
	if poll <= 0 {
		poll = 5 * time.Second
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	b.readGeneration(ctx)
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			if gen, err := strconv.ParseUint(m.Payload, 10, 64); err == nil {
				b.OnChange(gen)
			}
		case <-tick.C:
			b.readGeneration(ctx)
		}
	}
}

func (b *CatalogBroadcast) readGeneration(ctx context.Context) {
	gen, err := b.Redis.Get(ctx, catalogGenKey).Uint64()
	switch {
	case err == nil:
		b.OnChange(gen)
	case err != redis.Nil && ctx.Err() == nil && b.Log != nil:
		b.Log.WarnContext(ctx, "read catalog generation", "err", err)
	}
}
