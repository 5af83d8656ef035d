package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// TestShipmentKeys: a second shipment of an order writes nothing and returns the first;
// a tracking number drawn twice is ErrTrackingNumberTaken and writes nothing; a step
// from a seq the shipment has left is not applied, and neither is a late Postpone.
func TestShipmentKeys(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := db.Shipments
		order := func() uuid.UUID {
			return testdb.Order(t, db, uuid.Nil)
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		next := now.Add(time.Hour)
		row := func(order uuid.UUID, number string) store.Shipment {
			return store.Shipment{ID: uuid.New(), OrderID: order, Carrier: "SIM", TrackingNumber: number, Method: "STANDARD",
				Status: "LABEL_CREATED", Plan: []byte(`[]`), NextAt: &next, EstimatedDelivery: now.Add(120 * time.Hour), CreatedAt: now}
		}
		hooked := 0
		hook := func(ctx context.Context, tx pgx.Tx, _ store.Shipment, _ store.ShipmentEvent) error {
			hooked++
			return nil
		}
		events := func(id uuid.UUID) []store.ShipmentEvent {
			t.Helper()
			evs, err := s.Events(ctx, []uuid.UUID{id})
			if err != nil {
				t.Fatal(err)
			}
			return evs[id]
		}

		o1 := order()
		first, created, err := s.Create(ctx, row(o1, "SIMAAAAAAAAAAAA"), "origin", hook)
		if err != nil || !created || first.Seq != 1 || hooked != 1 || len(events(first.ID)) != 1 {
			t.Fatalf("create: %+v, %v, %v (hook ran %d times)", first, created, err, hooked)
		}
		if ev := events(first.ID)[0]; ev.ShipmentID != first.ID || ev.Seq != 1 || ev.Status != "LABEL_CREATED" || ev.Location != "origin" || !ev.At.Equal(now) {
			t.Fatalf("first event %+v", ev)
		}
		second := row(o1, "SIMBBBBBBBBBBBB")
		again, created, err := s.Create(ctx, second, "origin", hook)
		if err != nil || created || again.ID != first.ID || again.TrackingNumber != first.TrackingNumber || hooked != 1 {
			t.Fatalf("second shipment of the order: %+v, %v, %v (hook ran %d times)", again, created, err, hooked)
		}
		if len(events(first.ID)) != 1 || len(events(second.ID)) != 0 {
			t.Fatal("a second shipment of the order wrote an event")
		}
		dup := row(order(), "SIMAAAAAAAAAAAA")
		if _, _, err := s.Create(ctx, dup, "origin", hook); !errors.Is(err, store.ErrTrackingNumberTaken) || hooked != 1 {
			t.Fatalf("taken tracking number: %v (hook ran %d times)", err, hooked)
		}
		if len(events(dup.ID)) != 0 {
			t.Fatal("a refused shipment has events")
		}

		step := store.Transition{ShipmentID: first.ID, FromSeq: 1, Status: "IN_TRANSIT", Location: "hub", At: now, NextAt: &next, EstimatedDelivery: first.EstimatedDelivery}
		moved, applied, err := s.Advance(ctx, step, hook)
		if err != nil || !applied || moved.Seq != 2 || moved.Status != "IN_TRANSIT" || hooked != 2 {
			t.Fatalf("advance: %+v, %v, %v", moved, applied, err)
		}
		if _, applied, err := s.Advance(ctx, step, hook); err != nil || applied || hooked != 2 {
			t.Fatalf("stale advance: applied %v, %v (hook ran %d times)", applied, err, hooked)
		}
		if evs := events(first.ID); len(evs) != 2 || evs[1].Status != "IN_TRANSIT" {
			t.Fatalf("events %+v", evs)
		}
		if err := s.Postpone(ctx, first.ID, 1, now.Add(48*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if due, err := s.Due(ctx, next, 10); err != nil || len(due) != 1 || due[0].ID != first.ID {
			t.Fatalf("a stale postpone moved the step: due %v, %v", due, err)
		}
	})
}
