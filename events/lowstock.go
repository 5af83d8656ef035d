package events

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/shopfront/bookstore/store"
)

// LowStockAlerts reports TopicLowStock events: a WARN log line per book whose stock fell
// to the alert threshold ("low stock", with book_id, stock and threshold), which log-based
// alerting picks up. Notify, when set, is called too (an email to the buyer, a metric);
// an error from it leaves the event pending, to be retried.
//
// The relay hands a batch to LowStockAlerts again when a Notify in it fails, and after
// a lost lease, so LowStockAlerts remembers the events it has reported (the last 10,000)
// and reports each once per process; after a restart one may be reported again.
type LowStockAlerts struct {
	Log    *slog.Logger
	Notify func(ctx context.Context, e store.Event, p store.LowStockPayload) error

	once sync.Once
	done *lru.Cache[uuid.UUID, struct{}]
}

// Consumer implements Consumer.
func (a *LowStockAlerts) Consumer() (string, []string) {
	return "low-stock-alerts", []string{store.TopicLowStock}
}

// Handle implements Handler.
func (a *LowStockAlerts) Handle(ctx context.Context, evs []store.Event) error {
	a.once.Do(func() { a.done, _ = lru.New[uuid.UUID, struct{}](10_000) })
	for _, e := range evs {
		if e.Topic != store.TopicLowStock || a.done.Contains(e.ID) {
			continue
		}
		var p store.LowStockPayload
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			// A payload this code cannot read will never be readable: report, do not retry.
			a.log().WarnContext(ctx, "low stock (unreadable payload)", "book_id", e.AggregateID, "event_id", e.ID, "err", err)
			a.done.Add(e.ID, struct{}{})
			continue
		}
		a.log().WarnContext(ctx, "low stock", "book_id", e.AggregateID, "stock", p.Stock, "threshold", p.Threshold, "event_id", e.ID)
		if a.Notify != nil {
			if err := a.Notify(ctx, e, p); err != nil {
				return err // not remembered: the retry logs and notifies again
			}
		}
		a.done.Add(e.ID, struct{}{})
	}
	return nil
}

func (a *LowStockAlerts) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.Default()
}
