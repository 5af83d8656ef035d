package events

import (
	"context"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/shopfront/bookstore/store"
)

// catalogChannel is the Redis pub/sub channel on which instances hear of catalog changes.
const catalogChannel = "bookstore:catalog-changed"

// CatalogBroadcast tells every instance that the catalog changed, so that each drops its
// cached responses. With Redis, the relaying instance publishes and every instance
// (itself included) reacts in Listen; without Redis there is one instance, and Handle
// calls OnChange directly.
type CatalogBroadcast struct {
	Redis    *redis.Client
	OnChange func()
	Log      *slog.Logger
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
		b.OnChange()
		return nil
	}
	return b.Redis.Publish(ctx, catalogChannel, "changed").Err()
}

// Listen calls OnChange for every broadcast until ctx ends (Redis only; without Redis it
// returns at once). go-redis resubscribes by itself after a connection loss; a message
// published meanwhile is lost, which costs at most one cache TTL of staleness.
func (b *CatalogBroadcast) Listen(ctx context.Context) {
	if b.Redis == nil {
		return
	}
	sub := b.Redis.Subscribe(ctx, catalogChannel)
	defer sub.Close()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			b.OnChange()
		}
	}
}
