package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/shipping"
	"github.com/shopfront/bookstore/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// newOrder inserts an order for a shipment to reference.
func newOrder(t testing.TB, db *store.DB) uuid.UUID {
	t.Helper()
	return insertOrder(t, db, uuid.New())
}

// insertOrder is the one place these tests know the orders table.
func insertOrder(t testing.TB, db *store.DB, id uuid.UUID) uuid.UUID {
	t.Helper()
	return testdb.Order(t, db, id)
}

func request(order uuid.UUID, m shipping.Method) shipping.ShipmentRequest {
	return shipping.ShipmentRequest{OrderID: order, Method: m, Recipient: shipping.Address{
		Name: "Ann Reader", Line1: "1 Library Lane", City: "Springfield", PostalCode: "62701", Country: "US",
	}}
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// hookLog makes a hook that records each event in a table, through the hook's
// transaction: a row exists exactly when the hook's write committed.
func hookLog(t testing.TB, db *store.DB) shipping.Hook {
	t.Helper()
	if _, err := db.Pool.Exec(context.Background(), `CREATE TABLE IF NOT EXISTS hook_log (shipment_id UUID NOT NULL, seq INT8 NOT NULL, status TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context, tx pgx.Tx, s *shipping.Shipment, e shipping.Event) error {
		_, err := tx.Exec(ctx, `INSERT INTO hook_log (shipment_id, seq, status) VALUES ($1, $2, $3)`, s.ID, e.Seq, string(e.Status))
		return err
	}
}

type logged struct {
	Seq    int
	Status string
}

func hookRows(t testing.TB, db *store.DB, shipment uuid.UUID) []logged {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT seq, status FROM hook_log WHERE shipment_id = $1 ORDER BY seq`, shipment)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[logged])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func statuses(evs []shipping.Event) []shipping.Status {
	out := make([]shipping.Status, len(evs))
	for i, e := range evs {
		out[i] = e.Status
	}
	return out
}

func legStatuses(ls []leg) []shipping.Status {
	out := make([]shipping.Status, len(ls))
	for i, l := range ls {
		out[i] = l.Status
	}
	return out
}

const dest = "Springfield, US"

// routeOf is the route CreateShipment gives the order under the carrier's options.
func routeOf(c *Carrier, order uuid.UUID, m shipping.Method) []leg {
	return route(c.opts.Seed, order, m, c.opts.Origin, dest)
}

// orderWith returns an order id (inserted) whose route under seed has both detours, or
// neither, so a test covers the path it means to.
func orderWith(t testing.TB, db *store.DB, seed uint64, detours bool) uuid.UUID {
	t.Helper()
	for range 10_000 {
		id := uuid.New()
		st := legStatuses(route(seed, id, shipping.MethodStandard, "o", dest))
		d, f := slices.Contains(st, shipping.StatusDelayed), slices.Contains(st, shipping.StatusFailedAttempt)
		if d == detours && f == detours {
			return insertOrder(t, db, id)
		}
	}
	t.Fatal("no such route in 10,000 orders")
	return uuid.Nil
}

func TestCreateShipmentIsIdempotent(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock()
		c := New(db.Shipments, Options{Seed: 7, Step: time.Minute, Now: clk.Now, Hook: hookLog(t, db)})
		order := newOrder(t, db)

		// Racing requests for one order (the order service's consumer redelivering, two
		// instances) create one shipment, one first event and one hook effect.
		const racers = 8
		got := make([]*shipping.Shipment, racers)
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() { got[i], errs[i] = c.CreateShipment(ctx, request(order, shipping.MethodStandard)) })
		}
		wg.Wait()
		for i := range racers {
			if errs[i] != nil {
				t.Fatalf("racer %d: %v", i, errs[i])
			}
			if got[i].ID != got[0].ID || got[i].TrackingNumber != got[0].TrackingNumber {
				t.Fatalf("racer %d got shipment %s/%s, racer 0 %s/%s", i, got[i].ID, got[i].TrackingNumber, got[0].ID, got[0].TrackingNumber)
			}
		}
		s := got[0]
		if s.OrderID != order || s.Carrier != Name || s.Method != shipping.MethodStandard || s.Status != shipping.StatusLabelCreated {
			t.Fatalf("shipment = %+v", s)
		}
		if !validTrackingNumber(s.TrackingNumber) {
			t.Fatalf("tracking number %q is not SIM + 12 base32 characters", s.TrackingNumber)
		}
		want := []shipping.Event{{Seq: 1, Status: shipping.StatusLabelCreated, At: clk.Now(), Location: c.opts.Origin}}
		if !slices.Equal(s.Events, want) {
			t.Fatalf("events = %+v, want %+v", s.Events, want)
		}
		if wantEst := clk.Now().Add(5 * 24 * time.Hour); !s.EstimatedDelivery.Equal(wantEst) {
			t.Fatalf("estimated delivery %v, want %v (STANDARD: 5 days)", s.EstimatedDelivery, wantEst)
		}
		if h := hookRows(t, db, s.ID); !slices.Equal(h, []logged{{1, "LABEL_CREATED"}}) {
			t.Fatalf("hook effects = %v, want one LABEL_CREATED", h)
		}
		var n int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM shipments WHERE order_id = $1`, order).Scan(&n); err != nil || n != 1 {
			t.Fatalf("shipments of the order = %d (%v), want 1", n, err)
		}

		// Later, after the shipment moved on, the same request still returns it.
		clk.Add(time.Minute)
		if n, err := c.Tick(ctx); err != nil || n != 1 {
			t.Fatalf("tick = %d, %v; want 1 step", n, err)
		}
		again, err := c.CreateShipment(ctx, request(order, shipping.MethodStandard))
		if err != nil || again.ID != s.ID || again.Status != shipping.StatusInTransit || len(again.Events) != 2 {
			t.Fatalf("repeat = %+v, %v; want the same shipment, now IN_TRANSIT with 2 events", again, err)
		}

		// The same order with another method is not a new shipment.
		_, err = c.CreateShipment(ctx, request(order, shipping.MethodExpress))
		if code := bookstore.ErrorCode(err); code != bookstore.CodeConflict {
			t.Fatalf("another method: %v (code %s), want CONFLICT", err, code)
		}

		// Another order gets another tracking number and the method's own days.
		other, err := c.CreateShipment(ctx, request(newOrder(t, db), shipping.MethodExpress))
		if err != nil {
			t.Fatal(err)
		}
		if other.TrackingNumber == s.TrackingNumber || other.ID == s.ID {
			t.Fatalf("two orders share shipment %s / tracking number %s", other.ID, other.TrackingNumber)
		}
		if wantEst := clk.Now().Add(2 * 24 * time.Hour); !other.EstimatedDelivery.Equal(wantEst) {
			t.Fatalf("EXPRESS estimated delivery %v, want %v (2 days)", other.EstimatedDelivery, wantEst)
		}
	})
}

func TestCreateShipmentValidates(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	c := New(db.Shipments, Options{})
	order := newOrder(t, db)
	for _, tc := range []struct {
		name  string
		edit  func(*shipping.ShipmentRequest)
		field string
	}{
		{"no order", func(r *shipping.ShipmentRequest) { r.OrderID = uuid.Nil }, "orderId"},
		{"unknown method", func(r *shipping.ShipmentRequest) { r.Method = "OVERNIGHT" }, "method"},
		{"no method", func(r *shipping.ShipmentRequest) { r.Method = "" }, "method"},
		{"no name", func(r *shipping.ShipmentRequest) { r.Recipient.Name = "  " }, "recipient.name"},
		{"no street", func(r *shipping.ShipmentRequest) { r.Recipient.Line1 = "" }, "recipient.line1"},
		{"no city", func(r *shipping.ShipmentRequest) { r.Recipient.City = "" }, "recipient.city"},
		{"long city", func(r *shipping.ShipmentRequest) { r.Recipient.City = strings.Repeat("é", 101) }, "recipient.city"},
		{"long line2", func(r *shipping.ShipmentRequest) { r.Recipient.Line2 = strings.Repeat("x", 201) }, "recipient.line2"},
		{"long postal code", func(r *shipping.ShipmentRequest) { r.Recipient.PostalCode = strings.Repeat("9", 41) }, "recipient.postalCode"},
		{"control character", func(r *shipping.ShipmentRequest) { r.Recipient.Line1 = "1 Lane\r\nBcc: x" }, "recipient.line1"},
		{"invalid UTF-8", func(r *shipping.ShipmentRequest) { r.Recipient.Region = "\xff" }, "recipient.region"},
		{"lower-case country", func(r *shipping.ShipmentRequest) { r.Recipient.Country = "us" }, "recipient.country"},
		{"country name", func(r *shipping.ShipmentRequest) { r.Recipient.Country = "USA" }, "recipient.country"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request(order, shipping.MethodStandard)
			tc.edit(&req)
			_, err := c.CreateShipment(context.Background(), req)
			var e *bookstore.Error
			if !errors.As(err, &e) || e.Code != bookstore.CodeBadUserInput || e.Field != tc.field {
				t.Fatalf("err = %v, want BAD_USER_INPUT on %s", err, tc.field)
			}
		})
	}
	got, err := c.ShipmentsOf(context.Background(), []uuid.UUID{order})
	if err != nil || len(got) != 0 {
		t.Fatalf("refused requests stored shipments: %v, %v", got, err)
	}
}

// TestProgression drives shipments to DELIVERED with an injected clock: nothing happens
// before a step is due, exactly one transition happens when it is, the events follow
// the route with the clock's times, and a delivered shipment stays put.
func TestProgression(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		for _, tc := range []struct {
			name    string
			method  shipping.Method
			detours bool
			days    int
		}{
			{"standard direct", shipping.MethodStandard, false, 5},
			{"standard delayed and failed attempt", shipping.MethodStandard, true, 5},
			{"express direct", shipping.MethodExpress, false, 2},
			{"express delayed and failed attempt", shipping.MethodExpress, true, 2},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				const step = time.Hour
				clk := newClock()
				c := New(db.Shipments, Options{Seed: 42, Step: step, Now: clk.Now, Hook: hookLog(t, db)})
				order := orderWith(t, db, 42, tc.detours)
				s, err := c.CreateShipment(ctx, request(order, tc.method))
				if err != nil {
					t.Fatal(err)
				}
				legs := routeOf(c, order, tc.method)
				want := []shipping.Event{{Seq: 1, Status: shipping.StatusLabelCreated, At: clk.Now(), Location: legs[0].Location}}
				est := s.EstimatedDelivery
				if !est.Equal(clk.Now().Add(time.Duration(tc.days) * 24 * time.Hour)) {
					t.Fatalf("estimated delivery %v for %d days", est, tc.days)
				}
				for i, l := range legs[1:] {
					wait := time.Duration(l.Steps) * step
					clk.Add(wait - time.Minute)
					if n, err := c.Tick(ctx); err != nil || n != 0 {
						t.Fatalf("leg %d a minute early: %d steps, %v", i+1, n, err)
					}
					at := clk.Add(time.Minute)
					if n, err := c.Tick(ctx); err != nil || n != 1 {
						t.Fatalf("leg %d when due: %d steps, %v; want 1", i+1, n, err)
					}
					if l.Status == shipping.StatusDelayed || l.Status == shipping.StatusFailedAttempt {
						est = est.Add(24 * time.Hour)
					}
					want = append(want, shipping.Event{Seq: i + 2, Status: l.Status, At: at, Location: l.Location})
					got, err := c.Track(ctx, s.TrackingNumber)
					if err != nil {
						t.Fatal(err)
					}
					if got.Status != l.Status || !slices.Equal(got.Events, want) || !got.EstimatedDelivery.Equal(est) {
						t.Fatalf("after leg %d: status %s, estimate %v, events %+v; want %s, %v, %+v", i+1, got.Status, got.EstimatedDelivery, got.Events, l.Status, est, want)
					}
				}
				if last := want[len(want)-1]; last.Status != shipping.StatusDelivered || last.Location != dest {
					t.Fatalf("last event %+v, want DELIVERED at %s", last, dest)
				}
				st := statuses(want)
				if has := slices.Contains(st, shipping.StatusDelayed) && slices.Contains(st, shipping.StatusFailedAttempt); has != tc.detours {
					t.Fatalf("route %v: detours = %v, want %v", st, has, tc.detours)
				}
				clk.Add(30 * 24 * time.Hour)
				if n, err := c.Tick(ctx); err != nil || n != 0 {
					t.Fatalf("delivered shipment moved again: %d steps, %v", n, err)
				}
				var next *time.Time
				if err := db.Pool.QueryRow(ctx, `SELECT next_at FROM shipments WHERE id = $1`, s.ID).Scan(&next); err != nil || next != nil {
					t.Fatalf("delivered shipment next_at = %v (%v), want NULL", next, err)
				}
				h := hookRows(t, db, s.ID)
				if len(h) != len(want) {
					t.Fatalf("hook saw %d events, want %d: %v", len(h), len(want), h)
				}
				for i, e := range want {
					if h[i] != (logged{e.Seq, string(e.Status)}) {
						t.Fatalf("hook effect %d = %v, want %v", i, h[i], e)
					}
				}
			})
		}
	})
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	const origin = "Warehouse"
	var delayed, failed, direct int
	const n = 2000
	for i := range n {
		id := uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "order %d", i))
		std := route(1, id, shipping.MethodStandard, origin, dest)
		if again := route(1, id, shipping.MethodStandard, origin, dest); !slices.Equal(std, again) {
			t.Fatalf("route of %s differs between two calls:\n%v\n%v", id, std, again)
		}
		exp := route(1, id, shipping.MethodExpress, origin, dest)
		if len(exp) != len(std)-2 || total(exp) >= total(std) {
			t.Fatalf("EXPRESS route %v is not shorter than STANDARD %v", exp, std)
		}
		for _, r := range [][]leg{std, exp} {
			checkRoute(t, r)
		}
		st := legStatuses(std)
		d, f := slices.Contains(st, shipping.StatusDelayed), slices.Contains(st, shipping.StatusFailedAttempt)
		if d {
			delayed++
		}
		if f {
			failed++
		}
		if !d && !f {
			direct++
		}
		if slices.Contains(legStatuses(exp), shipping.StatusDelayed) != d || slices.Contains(legStatuses(exp), shipping.StatusFailedAttempt) != f {
			t.Fatalf("order %s: EXPRESS route %v has other detours than STANDARD %v", id, exp, std)
		}
	}
	// The odds are 25% and 20%; 2,000 routes land far inside these bounds.
	if delayed < n/6 || delayed > n/3 || failed < n/8 || failed > n/4 || direct < n/3 {
		t.Fatalf("of %d routes %d delayed, %d with a failed attempt, %d direct", n, delayed, failed, direct)
	}

	// The seed changes the routes.
	changed := 0
	for i := range 100 {
		id := uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "order %d", i))
		if !slices.Equal(route(1, id, shipping.MethodStandard, origin, dest), route(2, id, shipping.MethodStandard, origin, dest)) {
			changed++
		}
	}
	if changed < 50 {
		t.Fatalf("another seed changed only %d of 100 routes", changed)
	}
}

func total(ls []leg) int {
	n := 0
	for _, l := range ls {
		n += l.Steps
	}
	return n
}

// checkRoute checks the shape every route has: label first, delivered last, and each
// status following one it may follow.
func checkRoute(t *testing.T, r []leg) {
	t.Helper()
	follows := map[shipping.Status][]shipping.Status{
		shipping.StatusInTransit:      {shipping.StatusLabelCreated, shipping.StatusInTransit, shipping.StatusDelayed},
		shipping.StatusDelayed:        {shipping.StatusInTransit},
		shipping.StatusOutForDelivery: {shipping.StatusInTransit, shipping.StatusDelayed, shipping.StatusFailedAttempt},
		shipping.StatusFailedAttempt:  {shipping.StatusOutForDelivery},
		shipping.StatusDelivered:      {shipping.StatusOutForDelivery},
	}
	if r[0].Status != shipping.StatusLabelCreated || r[0].Steps != 0 || r[len(r)-1].Status != shipping.StatusDelivered {
		t.Fatalf("route %v does not run from LABEL_CREATED to DELIVERED", r)
	}
	for i := 1; i < len(r); i++ {
		if !slices.Contains(follows[r[i].Status], r[i-1].Status) || r[i].Steps < 1 || r[i].Location == "" {
			t.Fatalf("route %v: leg %d (%+v) may not follow %s", r, i, r[i], r[i-1].Status)
		}
	}
}

// TestTwoRunners runs two carriers' Run loops, each with its own connection pool, on
// one database, as two instances would: every shipment gets each event of its route
// exactly once, in order, and the hook's effect is committed once per event.
func TestTwoRunners(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	ctx := context.Background()
	open := func() *store.DB {
		db, err := store.Open(ctx, url, store.Options{MaxConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		return db
	}
	dbA, dbB := open(), open()
	hook := hookLog(t, dbA)
	var mu sync.Mutex
	calls := 0 // hook calls, committed or not
	counting := func(ctx context.Context, tx pgx.Tx, s *shipping.Shipment, e shipping.Event) error {
		mu.Lock()
		calls++
		mu.Unlock()
		return hook(ctx, tx, s, e)
	}
	// A small batch and a short poll make the two loops meet on the same shipments often.
	opts := Options{Seed: 3, Hook: counting, Poll: time.Millisecond, Batch: 4}
	a, b := New(dbA.Shipments, opts), New(dbB.Shipments, opts)

	const shipments = 24
	orders := make([]uuid.UUID, shipments)
	for i := range orders {
		orders[i] = newOrder(t, dbA)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- a.Run(runCtx) }()
	go func() { done <- b.Run(runCtx) }()
	stopped := false
	t.Cleanup(func() { // before the pools close, also when the test fails
		if !stopped {
			stop()
			<-done
			<-done
		}
	})
	for i, o := range orders {
		c := a
		if i%2 == 1 {
			c = b
		}
		m := shipping.MethodStandard
		if i%3 == 0 {
			m = shipping.MethodExpress
		}
		if _, err := c.CreateShipment(ctx, request(o, m)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var left int
		if err := dbA.Pool.QueryRow(ctx, `SELECT count(*) FROM shipments WHERE status <> 'DELIVERED'`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d shipments not delivered after 60s", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	stopped = true
	for range 2 {
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
	}

	got, err := a.ShipmentsOf(ctx, orders)
	if err != nil {
		t.Fatal(err)
	}
	events := 0
	for i, o := range orders {
		if len(got[o]) != 1 {
			t.Fatalf("order %s has %d shipments", o, len(got[o]))
		}
		s := got[o][0]
		want := legStatuses(routeOf(a, o, s.Method))
		if !slices.Equal(statuses(s.Events), want) {
			t.Fatalf("shipment %d: events %v, want the route %v", i, statuses(s.Events), want)
		}
		h := hookRows(t, dbA, s.ID)
		if len(h) != len(want) {
			t.Fatalf("shipment %d: %d hook effects, want %d: %v", i, len(h), len(want), h)
		}
		for j, e := range s.Events {
			if e.Seq != j+1 || (j > 0 && e.At.Before(s.Events[j-1].At)) || h[j] != (logged{e.Seq, string(e.Status)}) {
				t.Fatalf("shipment %d: event %d = %+v, hook effect %v", i, j, e, h[j])
			}
		}
		events += len(want)
	}
	t.Logf("%d events written, hook called %d times (retried transactions included)", events, calls)
}

// TestHookRunsInTheStepTransaction: the hook sees the event it is told of (uncommitted
// to anyone else), and a hook that fails rolls back the step — the event, the new
// status and the hook's own writes — which is tried again after RetryAfter.
func TestHookRunsInTheStepTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	log := hookLog(t, db)
	clk := newClock()
	errHook := errors.New("order store down")
	var failing bool
	var mu sync.Mutex
	hook := func(ctx context.Context, tx pgx.Tx, s *shipping.Shipment, e shipping.Event) error {
		var status string
		if err := tx.QueryRow(ctx, `SELECT status FROM shipment_events WHERE shipment_id = $1 AND seq = $2`, s.ID, e.Seq).Scan(&status); err != nil {
			return fmt.Errorf("hook cannot see its event: %w", err)
		}
		if status != string(e.Status) || s.Status != e.Status {
			return fmt.Errorf("hook sees %s, told %s (shipment %s)", status, e.Status, s.Status)
		}
		if err := log(ctx, tx, s, e); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return errHook // after writing: the write must roll back too
		}
		return nil
	}
	c := New(db.Shipments, Options{Seed: 1, Step: time.Minute, RetryAfter: 10 * time.Minute, Now: clk.Now, Hook: hook})
	setFailing := func(f bool) { mu.Lock(); failing = f; mu.Unlock() }

	// A failing hook at creation creates nothing.
	setFailing(true)
	order := newOrder(t, db)
	if _, err := c.CreateShipment(ctx, request(order, shipping.MethodStandard)); !errors.Is(err, errHook) {
		t.Fatalf("create with a failing hook: %v, want the hook's error", err)
	}
	if got, err := c.ShipmentsOf(ctx, []uuid.UUID{order}); err != nil || len(got) != 0 {
		t.Fatalf("a failed creation left %v (%v)", got, err)
	}

	setFailing(false)
	s, err := c.CreateShipment(ctx, request(order, shipping.MethodStandard))
	if err != nil {
		t.Fatal(err)
	}
	other, err := c.CreateShipment(ctx, request(newOrder(t, db), shipping.MethodStandard))
	if err != nil {
		t.Fatal(err)
	}

	// The step fails for both; each is postponed and the error reported.
	setFailing(true)
	clk.Add(time.Minute)
	if n, err := c.Tick(ctx); n != 0 || !errors.Is(err, errHook) {
		t.Fatalf("tick with a failing hook: %d steps, %v; want 0 and the hook's error", n, err)
	}
	for _, sh := range []*shipping.Shipment{s, other} {
		got, err := c.Track(ctx, sh.TrackingNumber)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != shipping.StatusLabelCreated || len(got.Events) != 1 || !got.UpdatedAt.Equal(sh.UpdatedAt) {
			t.Fatalf("a failed step left status %s and %d events", got.Status, len(got.Events))
		}
		if h := hookRows(t, db, sh.ID); !slices.Equal(h, []logged{{1, "LABEL_CREATED"}}) {
			t.Fatalf("the failed hook's write survived: %v", h)
		}
	}

	// Not tried again before RetryAfter, even once the hook works.
	setFailing(false)
	clk.Add(9 * time.Minute)
	if n, err := c.Tick(ctx); n != 0 || err != nil {
		t.Fatalf("tick before RetryAfter: %d steps, %v", n, err)
	}
	clk.Add(time.Minute)
	if n, err := c.Tick(ctx); n != 2 || err != nil {
		t.Fatalf("tick after RetryAfter: %d steps, %v; want 2", n, err)
	}
	got, err := c.Track(ctx, s.TrackingNumber)
	if err != nil || got.Status != shipping.StatusInTransit || len(got.Events) != 2 {
		t.Fatalf("after the retry: %+v, %v", got, err)
	}
	if h := hookRows(t, db, s.ID); !slices.Equal(h, []logged{{1, "LABEL_CREATED"}, {2, "IN_TRANSIT"}}) {
		t.Fatalf("hook effects %v", h)
	}
}

func TestTrack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	c := New(db.Shipments, Options{})
	s, err := c.CreateShipment(ctx, request(newOrder(t, db), shipping.MethodExpress))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{s.TrackingNumber, strings.ToLower(s.TrackingNumber), " " + s.TrackingNumber + "\n"} {
		got, err := c.Track(ctx, n)
		if err != nil || got.ID != s.ID || len(got.Events) == 0 {
			t.Fatalf("Track(%q) = %+v, %v", n, got, err)
		}
	}
	unknown := "SIM" + strings.Repeat("A", 12)
	if unknown == s.TrackingNumber {
		unknown = "SIM" + strings.Repeat("B", 12)
	}
	for _, n := range []string{unknown, "", "SIM", s.TrackingNumber + "A", "XYZ" + s.TrackingNumber[3:], "SIM00000000000" + "1", strings.Repeat("S", 10_000), "SIM\x00AAAAAAAAAAA"} {
		got, err := c.Track(ctx, n)
		if !errors.Is(err, shipping.ErrNotFound) || bookstore.ErrorCode(err) != bookstore.CodeNotFound || got != nil {
			t.Fatalf("Track(%.20q) = %v, %v; want NOT_FOUND", n, got, err)
		}
	}
}

func TestShipmentsOf(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	c := New(db.Shipments, Options{Step: time.Hour})
	a, b, none := newOrder(t, db), newOrder(t, db), newOrder(t, db)
	sa, err := c.CreateShipment(ctx, request(a, shipping.MethodStandard))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := c.CreateShipment(ctx, request(b, shipping.MethodExpress))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ShipmentsOf(ctx, []uuid.UUID{a, b, none})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got[a]) != 1 || len(got[b]) != 1 || got[a][0].ID != sa.ID || got[b][0].ID != sb.ID {
		t.Fatalf("ShipmentsOf = %v", got)
	}
	if !slices.Equal(got[a][0].Events, sa.Events) || !slices.Equal(got[b][0].Events, sb.Events) {
		t.Fatalf("events differ: %v / %v", got[a][0].Events, sa.Events)
	}
}

// TestTrackingNumberDrawnTwice: a tracking number another shipment has is drawn again,
// and the shipment is created with a fresh one.
func TestTrackingNumberDrawnTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	c := New(db.Shipments, Options{})
	first, err := c.CreateShipment(ctx, request(newOrder(t, db), shipping.MethodStandard))
	if err != nil {
		t.Fatal(err)
	}
	draws := []string{first.TrackingNumber, first.TrackingNumber, "SIMFRESHFRESH22"}
	c.draw = func() string { n := draws[0]; draws = draws[1:]; return n }
	s, err := c.CreateShipment(ctx, request(newOrder(t, db), shipping.MethodStandard))
	if err != nil || s.TrackingNumber != "SIMFRESHFRESH22" || s.ID == first.ID {
		t.Fatalf("after two taken draws: %+v, %v", s, err)
	}
	draws = []string{first.TrackingNumber, first.TrackingNumber, first.TrackingNumber}
	if _, err := c.CreateShipment(ctx, request(newOrder(t, db), shipping.MethodStandard)); !errors.Is(err, store.ErrTrackingNumberTaken) {
		t.Fatalf("three taken draws: %v, want ErrTrackingNumberTaken", err)
	}
}

// BenchmarkTick measures the advancing loop on PostgreSQL: b.N transitions (each a
// serializable transaction with its event and a hook write), in batches of 100.
func BenchmarkTick(b *testing.B) {
	ctx := context.Background()
	db := testdb.New(b)
	c := New(db.Shipments, Options{Hook: hookLog(b, db)})
	steps := 0
	for steps < b.N {
		s, err := c.CreateShipment(ctx, request(newOrder(b, db), shipping.MethodStandard))
		if err != nil {
			b.Fatal(err)
		}
		steps += len(routeOf(c, s.OrderID, s.Method)) - 1
	}
	b.ResetTimer()
	done := 0
	for done < steps {
		n, err := c.Tick(ctx)
		if err != nil {
			b.Fatal(err)
		}
		done += n
	}
	b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "steps/s")
}
