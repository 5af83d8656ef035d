package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coderws "github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/server"
)

// wait bounds how long a test waits for a message that must come: a hang guard, not a
// speed assertion.
const wait = 60 * time.Second

// newSubsAPI is newAPI with the order feed run by a relay in the background, as in serve
// (with Redis when redis is set), and configure applied.
func newSubsAPI(t *testing.T, withRedis bool, configure func(*server.Config)) (*api, *events.OrderFeed) {
	t.Helper()
	feed := &events.OrderFeed{}
	if withRedis {
		feed.Redis = testdb.Redis(t)
	}
	a := newAPIWith(t, 5, func(c *server.Config) {
		c.ResponseTTL = -1
		c.OrderFeed = feed
		c.Subscriptions = server.SubscriptionOptions{KeepAlive: 200 * time.Millisecond, SessionCheck: 200 * time.Millisecond}
		if configure != nil {
			configure(c)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	relay := &events.Relay{Outbox: a.db.Outbox, Handlers: []events.Handler{feed}, Interval: 20 * time.Millisecond}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = relay.Run(ctx) }()
	go func() { defer wg.Done(); feed.Listen(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return a, feed
}

// wsMsg is a graphql-transport-ws message.
type wsMsg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// wsClient speaks graphql-transport-ws: it answers pings (and counts them) and queues
// every other message by subscription id.
type wsClient struct {
	t     *testing.T
	c     *coderws.Conn
	ack   chan struct{}
	pings chan struct{}
	mu    sync.Mutex
	byID  map[string]chan wsMsg
	done  chan struct{}
	err   error // the read error that ended the connection (a close status)
	npong atomic.Int32
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/graphql" }

// dialWS opens a socket and sends connection_init with payload (nil: none).
func dialWS(t *testing.T, base string, payload map[string]any, hdr http.Header) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := coderws.Dial(ctx, wsURL(base), &coderws.DialOptions{Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: hdr})
	if err != nil {
		t.Fatal(err)
	}
	cl := &wsClient{t: t, c: c, ack: make(chan struct{}), pings: make(chan struct{}, 1000), byID: map[string]chan wsMsg{},
		done: make(chan struct{})}
	t.Cleanup(func() { c.CloseNow() })
	go cl.read()
	init := wsMsg{Type: "connection_init"}
	if payload != nil {
		init.Payload, _ = json.Marshal(payload)
	}
	cl.send(init)
	return cl
}

func (c *wsClient) send(m wsMsg) {
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_ = c.c.Write(ctx, coderws.MessageText, b)
}

func (c *wsClient) queue(id string) chan wsMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	q, ok := c.byID[id]
	if !ok {
		q = make(chan wsMsg, 1000)
		c.byID[id] = q
	}
	return q
}

func (c *wsClient) read() {
	defer close(c.done)
	for {
		_, b, err := c.c.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		var m wsMsg
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		switch m.Type {
		case "connection_ack":
			close(c.ack)
		case "ping":
			c.npong.Add(1)
			c.send(wsMsg{Type: "pong"})
			c.pings <- struct{}{}
		default:
			c.queue(m.ID) <- m
		}
	}
}

// acked waits for connection_ack.
func (c *wsClient) acked() {
	c.t.Helper()
	select {
	case <-c.ack:
	case <-c.done:
		c.t.Fatalf("closed before connection_ack: %v", c.err)
	case <-time.After(wait):
		c.t.Fatal("no connection_ack")
	}
}

// closed waits for the server to close the socket and returns the close status.
func (c *wsClient) closed() (coderws.StatusCode, string) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(wait):
		c.t.Fatal("the socket stayed open")
	}
	var ce coderws.CloseError
	if errors.As(c.err, &ce) {
		return ce.Code, ce.Reason
	}
	return -1, c.err.Error()
}

func (c *wsClient) subscribe(id, query string, vars map[string]any) {
	p, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	c.send(wsMsg{ID: id, Type: "subscribe", Payload: p})
}

// next waits for subscription id's next message.
func (c *wsClient) next(id string) wsMsg {
	c.t.Helper()
	select {
	case m := <-c.queue(id):
		return m
	case <-c.done:
		select {
		case m := <-c.queue(id):
			return m
		default:
		}
		c.t.Fatalf("socket closed waiting for %s: %v", id, c.err)
	case <-time.After(wait):
		c.t.Fatalf("no message for %s", id)
	}
	return wsMsg{}
}

const statusSub = `subscription($id: ID!, $after: Int, $e: String, $t: String) {
  orderStatusChanged(orderId: $id, afterSeq: $after, email: $e, accessToken: $t) {
    order { id status lines { book { id } quantity } }
    event { seq type status }
  }
}`

type statusUpdate struct {
	Order struct {
		ID, Status string
		Lines      []struct {
			Book     *struct{ ID string }
			Quantity int
		}
	}
	Event struct {
		Seq          int64
		Type, Status string
	}
}

// update decodes a "next" message; it fails on anything else.
func update(t *testing.T, m wsMsg) statusUpdate {
	t.Helper()
	if m.Type != "next" {
		t.Fatalf("want next, got %s %s", m.Type, m.Payload)
	}
	var r struct {
		Data   struct{ OrderStatusChanged *statusUpdate }
		Errors []gqlError
	}
	if err := json.Unmarshal(m.Payload, &r); err != nil || len(r.Errors) > 0 || r.Data.OrderStatusChanged == nil {
		t.Fatalf("next %s: %v", m.Payload, err)
	}
	return *r.Data.OrderStatusChanged
}

// errorCode is the extensions.code of a subscription's error: an "error" message, or
// a "next" carrying errors.
func errorCode(t *testing.T, m wsMsg) string {
	t.Helper()
	var errs []gqlError
	switch m.Type {
	case "error":
		_ = json.Unmarshal(m.Payload, &errs)
	case "next":
		var r struct{ Errors []gqlError }
		_ = json.Unmarshal(m.Payload, &r)
		errs = r.Errors
	}
	if len(errs) == 0 {
		t.Fatalf("want an error, got %s %s", m.Type, m.Payload)
	}
	c, _ := errs[0].Extensions["code"].(string)
	return c
}

func orderUUID(t *testing.T, gid string) uuid.UUID {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(gid)
	if err != nil {
		t.Fatal(err)
	}
	id, err := uuid.Parse(strings.TrimPrefix(string(b), "Order:"))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// advance moves the order as the carrier's hook does.
func advance(t testing.TB, a *api, id uuid.UUID, to bookstore.OrderStatus, typ bookstore.OrderEventType) {
	t.Helper()
	err := a.db.ExecuteTx(context.Background(), func(tx pgx.Tx) error {
		o, err := a.db.Orders.Lock(context.Background(), tx, id)
		if err != nil {
			return err
		}
		_, err = a.db.Orders.Transition(context.Background(), tx, o, to, typ, nil)
		return err
	})
	if err != nil {
		t.Fatalf("order %s to %s: %v", id, to, err)
	}
}

// tracking appends a SHIPMENT_UPDATED event to the order.
func tracking(t testing.TB, a *api, id uuid.UUID) error {
	return a.db.ExecuteTx(context.Background(), func(tx pgx.Tx) error {
		o, err := a.db.Orders.Lock(context.Background(), tx, id)
		if err != nil {
			return err
		}
		_, err = a.db.Orders.AppendEvent(context.Background(), tx, o, bookstore.OrderEventShipmentUpdated, map[string]any{"location": "Hub"})
		return err
	})
}

// paidOrder checks a cart of one book out for the customer of token ("" = a guest with
// email); it returns the order's global id and the guest's access token.
func paidOrder(t *testing.T, a *api, token, email string, b testBook) (string, string) {
	t.Helper()
	c := a.createCart(token, []map[string]any{line(b, 1)}).Cart
	in := guestInput(c.ID, email, "tok_visa")
	if email == "" {
		delete(in, "email")
	}
	out := a.checkout(token, in)
	if out.Order == nil || out.Order.Status != "PAID" {
		t.Fatalf("checkout: %+v", out)
	}
	at := ""
	if out.AccessToken != nil {
		at = *out.AccessToken
	}
	return out.Order.ID, at
}

var toDelivered = []struct {
	s bookstore.OrderStatus
	e bookstore.OrderEventType
}{
	{bookstore.OrderFulfilling, bookstore.OrderEventFulfilling},
	{bookstore.OrderShipped, bookstore.OrderEventShipped},
	{bookstore.OrderDelivered, bookstore.OrderEventDelivered},
}

func TestOrderSubscriptionOverWebSocket(t *testing.T) {
	a, feed := newSubsAPI(t, true, nil)
	bs := a.cartBooks(2, 10)
	ann := a.register("ann@example.com", "Ann")
	bob := a.register("bob@example.com", "Bob")
	annOrder, _ := paidOrder(t, a, ann.AccessToken, "", bs[0])
	guestOrder, guestToken := paidOrder(t, a, "", "gus@example.com", bs[1])

	annWS := dialWS(t, a.url, map[string]any{"authorization": "Bearer " + ann.AccessToken}, nil)
	annWS.acked()
	annWS.subscribe("1", statusSub, map[string]any{"id": annOrder})
	// Without afterSeq the first message is the current state: the PAID event.
	first := update(t, annWS.next("1"))
	if first.Event.Type != "PAID" || first.Event.Seq != 2 || first.Order.Status != "PAID" || first.Order.ID != annOrder {
		t.Fatalf("first message %+v, want the PAID event (seq 2)", first)
	}
	if len(first.Order.Lines) != 1 || first.Order.Lines[0].Book == nil || first.Order.Lines[0].Book.ID != bs[0].ID {
		t.Fatalf("order lines %+v", first.Order.Lines)
	}
	id := orderUUID(t, annOrder)
	for i, st := range toDelivered {
		advance(t, a, id, st.s, st.e)
		u := update(t, annWS.next("1"))
		if u.Event.Type != string(st.e) || u.Event.Status != string(st.s) || u.Event.Seq != int64(3+i) {
			t.Fatalf("event %d: %+v, want %s seq %d", i, u.Event, st.e, 3+i)
		}
		if u.Order.Status != string(st.s) {
			t.Fatalf("order status %s with event %s", u.Order.Status, st.e)
		}
	}
	if m := annWS.next("1"); m.Type != "complete" {
		t.Fatalf("after DELIVERED: %s %s, want complete", m.Type, m.Payload)
	}
	// Keep-alive: the server pings (and the client's pongs keep the socket open).
	select {
	case <-annWS.pings:
	case <-time.After(wait):
		t.Fatal("no ping")
	}

	// Someone else's order, and an order that does not exist: the same NOT_FOUND.
	bobWS := dialWS(t, a.url, map[string]any{"authorization": "Bearer " + bob.AccessToken}, nil)
	bobWS.acked()
	bobWS.subscribe("x", statusSub, map[string]any{"id": annOrder})
	if c := errorCode(t, bobWS.next("x")); c != bookstore.CodeNotFound {
		t.Errorf("bob on ann's order: %s, want NOT_FOUND", c)
	}
	unknown := base64.RawURLEncoding.EncodeToString([]byte("Order:" + uuid.NewString()))
	bobWS.subscribe("y", statusSub, map[string]any{"id": unknown})
	if c := errorCode(t, bobWS.next("y")); c != bookstore.CodeNotFound {
		t.Errorf("unknown order: %s, want NOT_FOUND", c)
	}
	// A query over the socket is refused: streams are for subscriptions.
	bobWS.subscribe("q", `query { books(first: 1) { totalCount } }`, nil)
	if c := errorCode(t, bobWS.next("q")); c != server.CodeBadRequest {
		t.Errorf("query over WebSocket: %s, want BAD_REQUEST", c)
	}

	// A guest: no authorization, the order's email and access token.
	guest := dialWS(t, a.url, nil, nil)
	guest.acked()
	guest.subscribe("g", statusSub, map[string]any{"id": guestOrder, "e": "Gus@Example.com", "t": guestToken})
	if u := update(t, guest.next("g")); u.Event.Type != "PAID" || u.Order.ID != guestOrder {
		t.Fatalf("guest: %+v", u)
	}
	guest.subscribe("w", statusSub, map[string]any{"id": guestOrder, "e": "gus@example.com", "t": guestToken + "x"})
	if c := errorCode(t, guest.next("w")); c != bookstore.CodeNotFound {
		t.Errorf("guest with a wrong token: %s, want NOT_FOUND", c)
	}
	// A customer's session does not open a guest order without its token.
	annWS.subscribe("n", statusSub, map[string]any{"id": guestOrder})
	if c := errorCode(t, annWS.next("n")); c != bookstore.CodeNotFound {
		t.Errorf("ann on the guest's order: %s, want NOT_FOUND", c)
	}
	gid := orderUUID(t, guestOrder)
	advance(t, a, gid, bookstore.OrderCancelled, bookstore.OrderEventCancelled)
	if u := update(t, guest.next("g")); u.Event.Type != "CANCELLED" {
		t.Fatalf("guest after cancel: %+v", u)
	}
	if m := guest.next("g"); m.Type != "complete" {
		t.Fatalf("after CANCELLED: %s, want complete", m.Type)
	}
	if feed.Watchers() > 0 {
		// The streams that ended released their watch (checked once all have completed).
		deadline := time.Now().Add(wait)
		for feed.Watchers() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := feed.Watchers(); n != 0 {
			t.Errorf("%d watchers left after every stream completed", n)
		}
	}
}

func TestOrderSubscriptionRefusesBadTokensWith4403(t *testing.T) {
	a, _ := newSubsAPI(t, false, nil)
	ann := a.register("ann@example.com", "Ann")
	for name, payload := range map[string]map[string]any{
		"garbage":      {"authorization": "Bearer not-a-token"},
		"not a bearer": {"authorization": "Basic Zm9vOmJhcg=="},
		"tampered":     {"authorization": "Bearer " + ann.AccessToken + "x"},
	} {
		c := dialWS(t, a.url, payload, nil)
		if code, reason := c.closed(); code != server.CloseForbidden {
			t.Errorf("%s: closed with %d %q, want 4403", name, code, reason)
		}
	}
	// The upgrade request's Authorization header counts when connection_init has none.
	c := dialWS(t, a.url, nil, http.Header{"Authorization": {"Bearer nope"}})
	if code, _ := c.closed(); code != server.CloseForbidden {
		t.Errorf("bad header: closed with %d, want 4403", code)
	}

	// A logout ends the session's live subscriptions: the socket closes with 4403.
	bs := a.cartBooks(1, 10)
	order, _ := paidOrder(t, a, ann.AccessToken, "", bs[0])
	ws := dialWS(t, a.url, map[string]any{"authorization": "Bearer " + ann.AccessToken}, nil)
	ws.acked()
	ws.subscribe("1", statusSub, map[string]any{"id": order})
	update(t, ws.next("1"))
	var out struct{ Logout struct{ Ok bool } }
	a.ok(`mutation($t: String!) { logout(refreshToken: $t) { ok } }`, map[string]any{"t": ann.RefreshToken}, &out)
	if !out.Logout.Ok {
		t.Fatal("logout failed")
	}
	if code, reason := ws.closed(); code != server.CloseForbidden {
		t.Errorf("after logout: closed with %d %q, want 4403", code, reason)
	}
}

func TestOrderSubscriptionLimits(t *testing.T) {
	a, _ := newSubsAPI(t, false, func(c *server.Config) {
		c.Subscriptions.PerConnection, c.Subscriptions.PerCustomer = 2, 3
	})
	bs := a.cartBooks(1, 10)
	ann := a.register("ann@example.com", "Ann")
	order, _ := paidOrder(t, a, ann.AccessToken, "", bs[0])
	auth := map[string]any{"authorization": "Bearer " + ann.AccessToken}
	one := dialWS(t, a.url, auth, nil)
	one.acked()
	for _, id := range []string{"a", "b"} {
		one.subscribe(id, statusSub, map[string]any{"id": order})
		update(t, one.next(id))
	}
	one.subscribe("c", statusSub, map[string]any{"id": order})
	if c := errorCode(t, one.next("c")); c != bookstore.CodeSubscriptionLimit {
		t.Errorf("third on one connection: %s, want %s", c, bookstore.CodeSubscriptionLimit)
	}
	two := dialWS(t, a.url, auth, nil)
	two.acked()
	two.subscribe("d", statusSub, map[string]any{"id": order})
	update(t, two.next("d"))
	two.subscribe("e", statusSub, map[string]any{"id": order})
	if c := errorCode(t, two.next("e")); c != bookstore.CodeSubscriptionLimit {
		t.Errorf("fourth of the customer: %s, want %s", c, bookstore.CodeSubscriptionLimit)
	}
	// Another customer has limits of their own.
	bob := a.register("bob@example.com", "Bob")
	bobOrder, _ := paidOrder(t, a, bob.AccessToken, "", bs[0])
	three := dialWS(t, a.url, map[string]any{"authorization": "Bearer " + bob.AccessToken}, nil)
	three.acked()
	three.subscribe("f", statusSub, map[string]any{"id": bobOrder})
	update(t, three.next("f"))
}

func TestOrderSubscriptionIdleTimeout(t *testing.T) {
	a, _ := newSubsAPI(t, false, func(c *server.Config) { c.Subscriptions.IdleTimeout = 300 * time.Millisecond })
	c := dialWS(t, a.url, nil, nil)
	c.acked()
	if code, reason := c.closed(); code != coderws.StatusNormalClosure || reason != "idle timeout" {
		t.Errorf("idle socket closed with %d %q, want 1000 idle timeout", code, reason)
	}
}

// TestOrderSubscriptionResume drops the socket after k events and resumes with
// afterSeq=k while events are being appended: the resumed stream has exactly the events
// after k, without gap or duplicate.
func TestOrderSubscriptionResume(t *testing.T) {
	a, _ := newSubsAPI(t, true, nil)
	bs := a.cartBooks(1, 10)
	ann := a.register("ann@example.com", "Ann")
	order, _ := paidOrder(t, a, ann.AccessToken, "", bs[0])
	id := orderUUID(t, order)
	auth := map[string]any{"authorization": "Bearer " + ann.AccessToken}

	first := dialWS(t, a.url, auth, nil)
	first.acked()
	first.subscribe("1", statusSub, map[string]any{"id": order, "after": 0})
	advance(t, a, id, bookstore.OrderFulfilling, bookstore.OrderEventFulfilling)
	const k = 3 // PLACED, PAID, FULFILLING
	for seq := int64(1); seq <= k; seq++ {
		if u := update(t, first.next("1")); u.Event.Seq != seq {
			t.Fatalf("replay: seq %d, want %d", u.Event.Seq, seq)
		}
	}
	first.c.CloseNow()

	// Events keep coming while the client reconnects.
	const extra = 40
	appended := make(chan error, 1)
	go func() {
		for range extra {
			if err := tracking(t, a, id); err != nil {
				appended <- err
				return
			}
		}
		appended <- nil
	}()
	again := dialWS(t, a.url, auth, nil)
	again.acked()
	again.subscribe("2", statusSub, map[string]any{"id": order, "after": k})
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	advance(t, a, id, bookstore.OrderShipped, bookstore.OrderEventShipped)
	advance(t, a, id, bookstore.OrderDelivered, bookstore.OrderEventDelivered)
	last, err := a.db.Orders.LastEventSeq(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if last != k+extra+2 {
		t.Fatalf("the order has %d events, want %d", last, k+extra+2)
	}
	want := int64(k + 1)
	for {
		m := again.next("2")
		if m.Type == "complete" {
			break
		}
		u := update(t, m)
		if u.Event.Seq != want {
			t.Fatalf("resumed stream: seq %d, want %d (a gap or a duplicate)", u.Event.Seq, want)
		}
		want++
	}
	if want != last+1 {
		t.Fatalf("resumed stream ended after seq %d, want %d", want-1, last)
	}
}

func TestOrderSubscriptionOverSSE(t *testing.T) {
	a, _ := newSubsAPI(t, false, nil)
	bs := a.cartBooks(1, 10)
	ann := a.register("ann@example.com", "Ann")
	order, _ := paidOrder(t, a, ann.AccessToken, "", bs[0])
	id := orderUUID(t, order)
	body, _ := json.Marshal(map[string]any{"query": statusSub, "variables": map[string]any{"id": order}})
	open := func(token string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, a.url+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// A refused token is refused, not served as a guest.
	if bad := open("nope"); bad.StatusCode != http.StatusUnauthorized {
		t.Errorf("SSE with a bad token: %d, want 401", bad.StatusCode)
	} else {
		bad.Body.Close()
	}
	resp := open(ann.AccessToken)
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("SSE answer %d %s", resp.StatusCode, ct)
	}
	type sse struct{ event, data string }
	evs := make(chan sse, 100)
	go func() {
		defer close(evs)
		sc := bufio.NewScanner(resp.Body)
		var cur sse
		for sc.Scan() {
			switch l := sc.Text(); {
			case strings.HasPrefix(l, "event: "):
				cur.event = strings.TrimPrefix(l, "event: ")
			case strings.HasPrefix(l, "data: "):
				cur.data = strings.TrimPrefix(l, "data: ")
			case l == "" && cur.event != "":
				evs <- cur
				cur = sse{}
			}
		}
	}()
	next := func() sse {
		t.Helper()
		select {
		case e, ok := <-evs:
			if !ok {
				t.Fatal("SSE stream ended")
			}
			return e
		case <-time.After(wait):
			t.Fatal("no SSE event")
		}
		return sse{}
	}
	wantTypes := []string{"PAID", "FULFILLING", "SHIPPED", "DELIVERED"}
	for i, typ := range wantTypes {
		if i > 0 {
			advance(t, a, id, toDelivered[i-1].s, toDelivered[i-1].e)
		}
		e := next()
		u := update(t, wsMsg{Type: e.event, Payload: json.RawMessage(e.data)})
		if u.Event.Type != typ {
			t.Fatalf("SSE event %d: %+v, want %s", i, u.Event, typ)
		}
	}
	if e := next(); e.event != "complete" {
		t.Fatalf("after DELIVERED: %+v, want complete", e)
	}
}

// WebSocket origins follow CORS_ORIGINS: the same origin and the allowed ones upgrade,
// any other browser origin is refused before the upgrade.
func TestOrderSubscriptionOrigins(t *testing.T) {
	a, _ := newSubsAPI(t, false, func(c *server.Config) { c.CORSOrigins = []string{"https://*.example.com"} })
	dial := func(origin string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		c, resp, err := coderws.Dial(ctx, wsURL(a.url), &coderws.DialOptions{Subprotocols: []string{"graphql-transport-ws"},
			HTTPHeader: http.Header{"Origin": {origin}}})
		if err == nil {
			c.CloseNow()
		}
		if resp == nil {
			return 0, err
		}
		return resp.StatusCode, err
	}
	for _, ok := range []string{a.url, "https://shop.example.com"} {
		if status, err := dial(ok); err != nil || status != http.StatusSwitchingProtocols {
			t.Errorf("origin %s: %d %v, want an upgrade", ok, status, err)
		}
	}
	for _, bad := range []string{"https://evil.test", "http://shop.example.com"} {
		if status, err := dial(bad); err == nil || status != http.StatusForbidden {
			t.Errorf("origin %s: %d %v, want 403", bad, status, err)
		}
	}
}

// TestSSEStreamEndedByTheServerHasNoComplete: `complete` tells an SSE client that its
// subscription is finished (the order reached a final state). A stream the server ends
// itself, shutting down or at the end of the session, stops without it, so the client
// reconnects (and resumes with afterSeq) instead of believing the order settled; found by
// a black-box test, where every SSE subscriber stopped for good at a restart.
func TestSSEStreamEndedByTheServerHasNoComplete(t *testing.T) {
	done, shutdown := context.WithCancel(context.Background())
	defer shutdown()
	a, _ := newSubsAPI(t, false, func(c *server.Config) { c.StreamsDone = done })
	bs := a.cartBooks(1, 10)
	ann := a.register("ann@example.com", "Ann")
	order, _ := paidOrder(t, a, ann.AccessToken, "", bs[0])
	body, _ := json.Marshal(map[string]any{"query": statusSub, "variables": map[string]any{"id": order}})
	// stream opens a subscription: its first event's type, and all of them once it ends.
	stream := func(token string) (first chan string, all chan []string) {
		req, _ := http.NewRequest(http.MethodPost, a.url+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("SSE: %v %v", resp, err)
		}
		first, all = make(chan string, 1), make(chan []string, 1)
		go func() {
			defer resp.Body.Close()
			var got []string
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if l := sc.Text(); strings.HasPrefix(l, "event: ") {
					if got = append(got, strings.TrimPrefix(l, "event: ")); len(got) == 1 {
						first <- got[0]
					}
				}
			}
			all <- got
		}()
		return first, all
	}
	ended := func(what string, all chan []string) {
		t.Helper()
		select {
		case got := <-all:
			if strings.Contains(strings.Join(got, ","), "complete") {
				t.Errorf("%s: the stream ended with complete (%v)", what, got)
			}
		case <-time.After(wait):
			t.Fatalf("%s: the stream did not end", what)
		}
	}
	// Logout: the session check ends the stream.
	first, all := stream(ann.AccessToken)
	if e := <-first; e != "next" {
		t.Fatalf("first event %q", e)
	}
	var out struct{ Logout struct{ Ok bool } }
	a.ok(`mutation($t: String!) { logout(refreshToken: $t) { ok } }`, map[string]any{"t": ann.RefreshToken}, &out)
	ended("after logout", all)
	// Shutdown.
	bob := a.register("bob@example.com", "Bob")
	order, _ = paidOrder(t, a, bob.AccessToken, "", bs[0])
	body, _ = json.Marshal(map[string]any{"query": statusSub, "variables": map[string]any{"id": order}})
	first, all = stream(bob.AccessToken)
	if e := <-first; e != "next" {
		t.Fatalf("first event %q", e)
	}
	shutdown()
	ended("at shutdown", all)
}
