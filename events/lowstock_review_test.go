package events_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// R9: while another handler of the relay fails (the search engine down), every retry of
// the batch logs the same low_stock alert again: one crossing, many "low stock" WARN lines.
func TestInventoryReviewLowStockAlertOncePerEvent(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	seed(t, db, 5)
	ids, _ := db.Books.IDsAfter(ctx, uuid.Nil, 1)
	have, _ := db.Inventory.Stock(ctx, ids)
	if _, err := db.Inventory.Adjust(ctx, ids[0], 10-have[ids[0]], "test", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Inventory.Adjust(ctx, ids[0], -8, "test", nil); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	down := true
	index := events.HandlerFunc(func(context.Context, []store.Event) error {
		if down {
			return errors.New("search engine unavailable")
		}
		return nil
	})
	relay := &events.Relay{Outbox: db.Outbox, Log: slog.New(slog.NewJSONHandler(&bytes.Buffer{}, nil)),
		Handlers: []events.Handler{events.Subscribe("index", index, store.TopicBookChanged), &events.LowStockAlerts{Log: slog.New(slog.NewJSONHandler(&logs, nil))}}}
	for range 3 {
		_, _ = relay.Step(ctx)
	}
	down = false
	if _, err := relay.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), `"msg":"low stock"`); n != 1 {
		t.Fatalf("one crossing logged %d times", n)
	}
}
