package events_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// TestLowStockAlertsReachTheirHandler: an adjustment that takes a book to the threshold
// raises one low_stock event, which the relay hands to LowStockAlerts: it logs a warning
// and calls Notify with the stock and threshold. Changes that stay below, or above, it
// raise none.
func TestLowStockAlertsReachTheirHandler(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	seed(t, db, 20)
	db.Inventory.LowStockThreshold = 3
	ids, err := db.Books.IDsAfter(ctx, uuid.Nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	book := ids[0]
	have, err := db.Inventory.Stock(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	// Up to 10, then down to 3 (an alert), then 1 (none: already low), up to 9 and down
	// to 2 (a second alert).
	steps := []int64{10 - have[book], -7, -2, 8, -7}
	for _, d := range steps {
		if _, err := db.Inventory.Adjust(ctx, book, d, "test", nil); err != nil {
			t.Fatalf("adjust %+d: %v", d, err)
		}
	}
	var logs bytes.Buffer
	var got []store.LowStockPayload
	alerts := &events.LowStockAlerts{
		Log: slog.New(slog.NewJSONHandler(&logs, nil)),
		Notify: func(_ context.Context, e store.Event, p store.LowStockPayload) error {
			if e.AggregateID != book {
				t.Errorf("alert for %s, want %s", e.AggregateID, book)
			}
			got = append(got, p)
			return nil
		},
	}
	relay := &events.Relay{Outbox: db.Outbox, Handlers: []events.Handler{alerts}}
	if err := relay.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	want := []store.LowStockPayload{{Stock: 3, Threshold: 3}, {Stock: 2, Threshold: 3}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("alerts = %+v, want %+v", got, want)
	}
	if n := strings.Count(logs.String(), `"msg":"low stock"`); n != 2 {
		t.Fatalf("%d low-stock log lines, want 2:\n%s", n, logs.String())
	}
}
