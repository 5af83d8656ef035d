package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/store"
)

// TestReadinessReportsParkedEvents: /readyz details how many outbox events consumers
// parked, so a flapping consumer that gave up on events cannot go unnoticed; parked
// events leave the instance ready (another instance would not handle them either).
func TestReadinessReportsParkedEvents(t *testing.T) {
	a := newAPI(t, 0)
	ctx := context.Background()
	readyz := func() (int, map[string]string) {
		t.Helper()
		resp, err := http.Get(a.url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	if st, body := readyz(); st != http.StatusOK || body["outbox_parked"] != "0" {
		t.Fatalf("/readyz = %d %v, want 200 with outbox_parked 0", st, body)
	}
	if err := a.db.Outbox.Register(ctx, "mail", []string{"order_paid"}); err != nil {
		t.Fatal(err)
	}
	if err := a.db.Outbox.Notify(ctx, "order_paid", []uuid.UUID{uuid.New(), uuid.New()}); err != nil {
		t.Fatal(err)
	}
	evs, err := a.db.Outbox.PendingFor(ctx, "mail", []string{"order_paid"}, 10)
	if err != nil || len(evs) != 2 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	l, held, err := a.db.Outbox.Acquire(ctx, "outbox:mail", uuid.New(), time.Minute)
	if err != nil || !held {
		t.Fatalf("lease: %v %v", held, err)
	}
	for _, e := range evs {
		if _, err := a.db.Outbox.Failed(ctx, l, "mail", e.ID, "SMTP 554", store.Retry{Base: time.Second, Max: time.Second, Attempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1100 * time.Millisecond) // past the cached answer
	if st, body := readyz(); st != http.StatusOK || body["outbox_parked"] != "2" {
		t.Fatalf("/readyz = %d %v, want 200 with outbox_parked 2", st, body)
	}
}
