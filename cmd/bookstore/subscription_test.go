package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	coderws "github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/internal/testdb"
)

// TestSubscriptionAcrossInstances runs two real `bookstore serve` processes on one
// database and one Redis: the checkout goes to a, the subscription to b, and b's
// subscriber sees every state through DELIVERED as the simulated carrier moves the
// order. a holds the order feed's outbox lease, so b hears of each event only through
// Redis (b's own re-check is an hour: without the hints the test would hang).
func TestSubscriptionAcrossInstances(t *testing.T) {
	testdb.Redis(t) // skips (or fails under CI) without the test command's Redis
	bin := buildBookstore(t)
	s := newCrashShop(t, 10)
	shared := map[string]string{"REDIS_URL": os.Getenv(testdb.EnvRedis), "SHIPPING_STEP": "300ms",
		"SUBSCRIPTION_RECHECK": "1h"}
	a := s.start(bin, shared)
	eventually(t, "a to hold the order feed's lease", func() (bool, error) {
		return s.count(t, `SELECT count(*) FROM relay_leases WHERE name = 'outbox:order-feed' AND expires_at > now()`) == 1, nil
	})
	var holder uuid.UUID
	if err := s.db.Pool.QueryRow(bg(), `SELECT holder FROM relay_leases WHERE name = 'outbox:order-feed'`).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	b := s.start(bin, shared)

	res := a.checkout(t, checkoutInput(a.guestCart(t, s.bookID, 1), uuid.NewString(), "tok_visa"))
	if res.Order == nil || res.Order.Status != bookstore.OrderPaid {
		t.Fatalf("checkout on a: %+v", res)
	}

	ctx, cancel := context.WithTimeout(bg(), 2*time.Minute)
	defer cancel()
	ws, _, err := coderws.Dial(ctx, "ws://"+b.addr+"/graphql", &coderws.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	send := func(m map[string]any) {
		t.Helper()
		raw, _ := json.Marshal(m)
		if err := ws.Write(ctx, coderws.MessageText, raw); err != nil {
			t.Fatal(err)
		}
	}
	send(map[string]any{"type": "connection_init"})
	send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription($id: ID!, $e: String, $t: String) { orderStatusChanged(orderId: $id, afterSeq: 0, email: $e, accessToken: $t) {
		  order { status } event { seq type status } } }`,
		"variables": map[string]any{"id": res.Order.ID, "e": "crash@example.com", "t": res.AccessToken}}})

	var seen []string
	want := int64(1)
	for done := false; !done; {
		_, raw, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("read from b after %v: %v", seen, err)
		}
		var m struct {
			Type    string
			Payload struct {
				Data struct {
					OrderStatusChanged struct {
						Event struct {
							Seq          int64
							Type, Status string
						}
					}
				}
				Errors []gqlError
			}
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		switch m.Type {
		case "ping":
			send(map[string]any{"type": "pong"})
		case "connection_ack":
		case "complete":
			done = true
		case "next":
			if len(m.Payload.Errors) > 0 {
				t.Fatalf("errors from b: %+v", m.Payload.Errors)
			}
			ev := m.Payload.Data.OrderStatusChanged.Event
			if ev.Seq != want {
				t.Fatalf("b sent seq %d after %v, want %d", ev.Seq, seen, want)
			}
			want++
			if len(seen) == 0 || seen[len(seen)-1] != ev.Status {
				seen = append(seen, ev.Status)
			}
		default:
			t.Fatalf("unexpected message from b: %s", raw)
		}
	}
	wantStates := []string{"PENDING_PAYMENT", "PAID", "FULFILLING", "SHIPPED", "DELIVERED"}
	if len(seen) != len(wantStates) {
		t.Fatalf("b's subscriber saw %v, want %v", seen, wantStates)
	}
	for i := range wantStates {
		if seen[i] != wantStates[i] {
			t.Fatalf("b's subscriber saw %v, want %v", seen, wantStates)
		}
	}
	var still uuid.UUID
	if err := s.db.Pool.QueryRow(bg(), `SELECT holder FROM relay_leases WHERE name = 'outbox:order-feed'`).Scan(&still); err != nil || still != holder {
		t.Fatalf("the order feed's lease moved from a to %s during the test (%v): b may have heard itself", still, err)
	}
}

// Shutting down closes open subscription sockets with 1001 (going away), so clients
// reconnect to another instance at once.
func TestServeClosesSubscriptionSocketsOnShutdown(t *testing.T) {
	url := testdb.NewURL(t)
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", addr}, env(withKeys(t, testPayments(map[string]string{"DATABASE_URL": url}))), io.Discard, io.Discard)
	}()
	eventually(t, "the server to be ready", func() (bool, error) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	wctx, wcancel := context.WithTimeout(bg(), time.Minute)
	defer wcancel()
	ws, _, err := coderws.Dial(wctx, "ws://"+addr+"/graphql", &coderws.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := ws.Write(wctx, coderws.MessageText, []byte(`{"type":"connection_init"}`)); err != nil {
		t.Fatal(err)
	}
	if _, raw, err := ws.Read(wctx); err != nil || !strings.Contains(string(raw), "connection_ack") {
		t.Fatalf("no ack: %s %v", raw, err)
	}
	cancel() // what SIGTERM does in main
	var status coderws.StatusCode = -1
	for {
		_, raw, err := ws.Read(wctx)
		if err != nil {
			status = coderws.CloseStatus(err)
			break
		}
		if strings.Contains(string(raw), `"ping"`) {
			_ = ws.Write(wctx, coderws.MessageText, []byte(`{"type":"pong"}`))
		}
	}
	if status != coderws.StatusGoingAway {
		t.Fatalf("socket closed with %d, want 1001", status)
	}
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v", err)
	}
}
