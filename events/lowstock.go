package events

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/shopfront/bookstore/store"
)

// LowStockAlerts reports TopicLowStock events: a WARN log line per book whose stock fell
// to the alert threshold ("low stock", with book_id, stock and threshold), which log-based
// alerting picks up. Notify, when set, is called too (an email to the buyer, a metric);
// an error from it leaves the event pending, to be retried.
type LowStockAlerts struct {
	Log    *slog.Logger
	Notify func(ctx context.Context, e store.Event, p store.LowStockPayload) error
}

// Handle implements Handler.
func (a *LowStockAlerts) Handle(ctx context.Context, evs []store.Event) error {
	for _, e := range evs {
		if e.Topic != store.TopicLowStock {
			continue
		}
		var p store.LowStockPayload
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			// A payload this code cannot read will never be readable: report, do not retry.
			a.log().WarnContext(ctx, "low stock (unreadable payload)", "book_id", e.AggregateID, "event_id", e.ID, "err", err)
			continue
		}
		a.log().WarnContext(ctx, "low stock", "book_id", e.AggregateID, "stock", p.Stock, "threshold", p.Threshold, "event_id", e.ID)
		if a.Notify != nil {
			if err := a.Notify(ctx, e, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *LowStockAlerts) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.Default()
}
