package events_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/cart"
	"github.com/shopfront/bookstore/catalog"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/mail"
	"github.com/shopfront/bookstore/orders"
	"github.com/shopfront/bookstore/payment"
	"github.com/shopfront/bookstore/payment/testpsp"
	"github.com/shopfront/bookstore/pii"
	"github.com/shopfront/bookstore/shipping"
	"github.com/shopfront/bookstore/shipping/sim"
	"github.com/shopfront/bookstore/store"
)

// End-to-end tests of the order consumers: a real checkout on the real PostgreSQL, the
// real relay with the real "fulfilment" and "order-mail" consumers, the simulated
// carrier with instant steps, and the emails sent through the real SMTP client to a real
// SMTP server in this process (emersion/go-smtp).

// smtpSink is an SMTP server that keeps what it accepts.
type smtpSink struct {
	addr string
	srv  *smtp.Server
	done chan struct{}
	once sync.Once

	mu    sync.Mutex
	mails []received
	// refuse, when set, answers MAIL FROM with it (a 4xx: try later; a 5xx: never).
	refuse   error
	rejectTo map[string]bool // recipients refused for good (550)
}

type received struct {
	from  string
	rcpts []string
	data  []byte
}

// startSink listens on addr ("127.0.0.1:0" for any port).
func startSink(t *testing.T, addr string) *smtpSink {
	t.Helper()
	s := &smtpSink{done: make(chan struct{}), rejectTo: map[string]bool{}}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }))
	s.srv.Domain = "mx.test"
	s.srv.ReadTimeout, s.srv.WriteTimeout = 10*time.Second, 10*time.Second
	s.srv.ErrorLog = discardLog{}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	go func() { defer close(s.done); _ = s.srv.Serve(l) }()
	t.Cleanup(s.stop)
	return s
}

func (s *smtpSink) stop() {
	s.once.Do(func() {
		s.srv.Close()
		<-s.done
	})
}

func (s *smtpSink) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.mails...)
}

func (s *smtpSink) set(f func(*smtpSink)) { s.mu.Lock(); f(s); s.mu.Unlock() }

type discardLog struct{}

func (discardLog) Printf(string, ...any) {}
func (discardLog) Println(...any)        {}

type sinkSession struct {
	s   *smtpSink
	cur received
}

func (x *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	if x.s.refuse != nil {
		return x.s.refuse
	}
	x.cur.from = from
	return nil
}

func (x *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	if x.s.rejectTo[to] {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	}
	x.cur.rcpts = append(x.cur.rcpts, to)
	return nil
}

func (x *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	e := x.cur
	e.data = b
	x.s.mu.Lock()
	x.s.mails = append(x.s.mails, e)
	x.s.mu.Unlock()
	return nil
}

func (x *sinkSession) Reset()        { x.cur = received{} }
func (x *sinkSession) Logout() error { return nil }

var tempDown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "try again later"}

// countingPSP counts refunds asked of the PSP.
type countingPSP struct {
	payment.Provider
	refunds atomic.Int64
}

func (p *countingPSP) Refund(ctx context.Context, key string) (*payment.Charge, error) {
	p.refunds.Add(1)
	return p.Provider.Refund(ctx, key)
}

const mailFrom = "Bookstore <orders@bookstore.example>"

type shop struct {
	t       *testing.T
	db      *store.DB
	co      *checkout.Service
	svc     *orders.Service
	carrier *sim.Carrier
	psp     *countingPSP
	book    uuid.UUID
	relay   *events.Relay
	mailer  *events.OrderMail
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// newShop wires the services as cmd/bookstore does (fulfilment.go), with sender as the
// order mailer's Sender.
func newShop(t *testing.T, sender mail.Sender) *shop {
	t.Helper()
	ctx := context.Background()
	db := testdb.New(t)
	if failed, err := db.Load(ctx, []catalog.Record{{Line: 2, ISBN: "9780000000001", Title: "The Hobbit", Authors: []string{"J. R. R. Tolkien"},
		Categories: [][]string{{"Fiction"}}, PriceCents: 1299, Stock: 50, Language: "en"}}); err != nil || len(failed) > 0 {
		t.Fatal(err, failed)
	}
	b, err := db.Books.ByISBN(ctx, "9780000000001")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pii.GenerateKey()
	kr, _ := pii.NewKeyring(pii.MasterKey{ID: "k", Key: key})
	idx, _ := pii.NewBlindIndex(key)
	s := &shop{t: t, db: db, book: b.ID, logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(s.logs, nil))
	s.psp = &countingPSP{Provider: testpsp.New(db.TestPSP, testpsp.Options{})}
	carts := cart.New(cart.Config{Store: db.Carts})
	s.co, err = checkout.New(checkout.Config{DB: db, Carts: carts, PSP: s.psp, PII: kr, Index: idx, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	s.carrier = sim.New(db.Shipments, sim.Options{Seed: 3, Step: 0, Methods: carts.ShippingMethods(), Log: log,
		Hook: func(ctx context.Context, tx pgx.Tx, sh *shipping.Shipment, e shipping.Event) error {
			return s.svc.ShipmentHook(ctx, tx, sh, e)
		}})
	s.svc, err = orders.New(orders.Config{DB: db, Checkout: s.co, PSP: s.psp, Carrier: s.carrier, Tracking: s.carrier, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	s.mailer = &events.OrderMail{Checkout: s.co, DB: db, Sender: sender, From: mailFrom, Log: log}
	s.relay = &events.Relay{Outbox: db.Outbox, Log: log, IsolateAfter: 2, LeaseTTL: 30 * time.Second,
		Retry:    store.Retry{Base: time.Millisecond, Max: time.Millisecond, Attempts: 3},
		Handlers: []events.Handler{&events.Fulfilment{Orders: s.svc, Log: log}, s.mailer}}
	return s
}

func smtpSender(t *testing.T, addr string) *mail.SMTP {
	t.Helper()
	s, err := mail.FromURL("smtp://" + addr + "?starttls=none&timeout=5s")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkout places a paid order for customer (uuid.Nil: a guest) paid with tok_visa.
func (s *shop) checkout(customer uuid.UUID, email string, qty int) *bookstore.Order {
	s.t.Helper()
	ctx := context.Background()
	now := time.Now()
	c := &bookstore.Cart{ID: cart.NewID(), Lines: []bookstore.CartLine{{BookID: s.book, Quantity: qty}},
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if customer != uuid.Nil {
		c.CustomerID = &customer
	}
	if err := s.db.Carts.Create(ctx, c); err != nil {
		s.t.Fatal(err)
	}
	res, err := s.co.Checkout(ctx, customer, checkout.Input{CartID: c.ID, IdempotencyKey: uuid.NewString(), Email: email,
		ShippingAddress: bookstore.Address{Recipient: "Bilbo Baggins", Line1: "1 Bagshot Row", City: "Hobbiton", PostalCode: "SH1 1BB", Country: "GB"},
		ShippingMethod:  "STANDARD", Method: payment.MethodCard, Token: "tok_visa"})
	if err != nil || len(res.Problems) > 0 || res.Order.Status != bookstore.OrderPaid {
		s.t.Fatalf("checkout: %v %+v", err, res)
	}
	return res.Order
}

func (s *shop) customer() uuid.UUID {
	s.t.Helper()
	id := uuid.New()
	idx := make([]byte, 32)
	copy(idx, id[:])
	if err := s.db.Customers.Create(context.Background(), &store.Customer{ID: id, EmailIndex: idx, EmailEnc: []byte{1}, NameEnc: []byte{1},
		PasswordHash: "x", Role: "CUSTOMER"}); err != nil {
		s.t.Fatal(err)
	}
	return id
}

// settle steps the relay and the carrier until neither has anything left to do, and
// returns the relay's last error (nil when it ended with nothing to do).
func (s *shop) settle() error {
	s.t.Helper()
	ctx := context.Background()
	var last error
	for i := 0; i < 200; i++ {
		n, err := s.relay.Step(ctx)
		m, terr := s.carrier.Tick(ctx)
		if terr != nil {
			s.t.Fatalf("carrier: %v", terr)
		}
		last = err
		if n == 0 && m == 0 {
			return err
		}
	}
	s.t.Fatalf("still busy after 200 steps (last error %v)", last)
	return nil
}

func (s *shop) status(id uuid.UUID) bookstore.OrderStatus {
	s.t.Helper()
	o, err := s.co.Order(context.Background(), id)
	if err != nil {
		s.t.Fatal(err)
	}
	return o.Status
}

func (s *shop) count(q string, args ...any) int64 {
	s.t.Helper()
	var n int64
	if err := s.db.Pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		s.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// email is one received message taken apart as a mail client would.
type email struct {
	header     netmail.Header
	rcpts      []string
	from       string
	text, html string
}

func parseMail(t *testing.T, r received) email {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(r.data))
	if err != nil {
		t.Fatalf("not RFC 5322: %v\n%s", err, r.data)
	}
	e := email{header: m.Header, rcpts: r.rcpts, from: r.from}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q (%v), want multipart/alternative", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(part)
		ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			e.text = string(b)
		case "text/html":
			e.html = string(b)
		default:
			t.Fatalf("unexpected part %s", ct)
		}
	}
	if e.text == "" || e.html == "" {
		t.Fatalf("want a text and an HTML part: text %d bytes, html %d bytes", len(e.text), len(e.html))
	}
	return e
}

// bySubject returns the received emails whose subject contains sub.
func bySubject(t *testing.T, rs []received, sub string) []email {
	t.Helper()
	var out []email
	for _, r := range rs {
		e := parseMail(t, r)
		if strings.Contains(e.header.Get("Subject"), sub) {
			out = append(out, e)
		}
	}
	return out
}

// A guest's checkout sends one confirmation email, to the order's address only, with
// the order's number, lines and total in both parts; the outbox never holds the address.
func TestGuestCheckoutSendsOneConfirmation(t *testing.T) {
	sink := startSink(t, "127.0.0.1:0")
	s := newShop(t, smtpSender(t, sink.addr))
	const addr = "bilbo@shire.example"
	o := s.checkout(uuid.Nil, addr, 2)

	// PII is sealed until the send: no outbox row of the order holds the address.
	rows, err := s.db.Pool.Query(context.Background(), `SELECT topic, COALESCE(payload::TEXT, '') FROM outbox WHERE aggregate_id = $1`, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var topic, payload string
		if err := rows.Scan(&topic, &payload); err != nil {
			t.Fatal(err)
		}
		n++
		for _, pii := range []string{addr, "bilbo", "Bilbo", "Bagshot"} {
			if strings.Contains(payload, pii) {
				t.Errorf("outbox %s payload holds %q in clear: %s", topic, pii, payload)
			}
		}
	}
	if rows.Err() != nil || n == 0 {
		t.Fatalf("%d outbox rows for the order (%v)", n, rows.Err())
	}
	if c := s.count(`SELECT count(*) FROM orders WHERE id = $1 AND position($2::BYTEA IN contact_enc) > 0`, o.ID, []byte(addr)); c != 0 {
		t.Fatal("the order's contact is stored in clear")
	}

	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	got := sink.received()
	conf := bySubject(t, got, "is confirmed")
	if len(conf) != 1 {
		t.Fatalf("%d confirmation emails, want 1 (of %d received)", len(conf), len(got))
	}
	e := conf[0]
	if len(e.rcpts) != 1 || e.rcpts[0] != addr || e.from != "orders@bookstore.example" {
		t.Errorf("envelope from %q to %v, want orders@bookstore.example to [%s]", e.from, e.rcpts, addr)
	}
	h := e.header
	if f, err := netmail.ParseAddress(h.Get("From")); err != nil || f.Address != "orders@bookstore.example" || f.Name != "Bookstore" {
		t.Errorf("From %q (%v)", h.Get("From"), err)
	}
	if to, err := h.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != addr {
		t.Errorf("To %q (%v)", h.Get("To"), err)
	}
	for _, k := range []string{"Cc", "Bcc", "Reply-To"} {
		if h.Get(k) != "" {
			t.Errorf("%s: %q", k, h.Get(k))
		}
	}
	if want := "Your order " + o.Number + " is confirmed"; h.Get("Subject") != want {
		t.Errorf("Subject %q, want %q", h.Get("Subject"), want)
	}
	if id := h.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@bookstore.example>") || strings.Contains(id, o.ID.String()) {
		t.Errorf("Message-ID %q", id)
	}
	var placed time.Time
	if err := s.db.Pool.QueryRow(context.Background(), `SELECT created_at FROM outbox WHERE aggregate_id = $1 AND topic = $2`, o.ID, store.TopicOrderPaid).Scan(&placed); err != nil {
		t.Fatal(err)
	}
	if d, err := h.Date(); err != nil || !d.Equal(placed.Truncate(time.Second)) {
		t.Errorf("Date %q (%v), want the order_paid event's time %s", h.Get("Date"), err, placed)
	}
	for part, body := range map[string]string{"text": e.text, "html": e.html} {
		for _, want := range []string{o.Number, "The Hobbit", mail.Money(o.Lines[0].TotalCents, "USD"), mail.Money(o.Cost.TotalCents, o.Cost.Currency), "Hobbiton"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s part lacks %q:\n%s", part, want, body)
			}
		}
	}
	if !strings.Contains(e.text, "2") {
		t.Errorf("text part lacks the quantity")
	}
	if len(got) != 1+len(bySubject(t, got, "has shipped")) {
		t.Errorf("unexpected emails: %d received", len(got))
	}
}

// The simulated carrier with instant steps takes a paid order to DELIVERED, and the
// customer gets one shipped email with the tracking number.
func TestCarrierDeliversAndOneShippedEmail(t *testing.T) {
	sink := startSink(t, "127.0.0.1:0")
	s := newShop(t, smtpSender(t, sink.addr))
	o := s.checkout(uuid.Nil, "frodo@shire.example", 1)
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if st := s.status(o.ID); st != bookstore.OrderDelivered {
		t.Fatalf("order is %s, want DELIVERED", st)
	}
	evs, err := s.svc.Events(context.Background(), o.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var path []string
	for _, e := range evs {
		if e.Type != bookstore.OrderEventShipmentUpdated {
			path = append(path, string(e.Type))
		}
	}
	if got, want := strings.Join(path, " "), "PLACED PAID FULFILLING SHIPPED DELIVERED"; got != want {
		t.Fatalf("order events %q, want %q", got, want)
	}
	sh, err := s.carrier.ShipmentsOf(context.Background(), []uuid.UUID{o.ID})
	if err != nil || len(sh[o.ID]) != 1 {
		t.Fatalf("shipments %v, %v", sh, err)
	}
	tracking := sh[o.ID][0].TrackingNumber
	shipped := bySubject(t, sink.received(), "has shipped")
	if len(shipped) != 1 {
		t.Fatalf("%d shipped emails, want 1", len(shipped))
	}
	if !strings.Contains(shipped[0].text, tracking) || !strings.Contains(shipped[0].html, tracking) {
		t.Errorf("shipped email lacks tracking number %s:\n%s", tracking, shipped[0].text)
	}
	if n := len(bySubject(t, sink.received(), "is confirmed")); n != 1 {
		t.Errorf("%d confirmations, want 1", n)
	}
	// Handled again from scratch (every delivery forgotten): nothing is sent twice.
	if _, err := s.db.Pool.Exec(context.Background(), `UPDATE outbox SET published_at = NULL`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Pool.Exec(context.Background(), `DELETE FROM outbox_deliveries`); err != nil {
		t.Fatal(err)
	}
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if n := len(sink.received()); n != 2 {
		t.Fatalf("%d emails after redelivering every event, want 2", n)
	}
}

// orderCancel of a paid order: one cancelled email with the refund, one refund at the PSP.
func TestCancelSendsOneEmailAndRefundsOnce(t *testing.T) {
	sink := startSink(t, "127.0.0.1:0")
	s := newShop(t, smtpSender(t, sink.addr))
	cust := s.customer()
	o := s.checkout(cust, "sam@shire.example", 1)
	ctx := context.Background()
	// Only the confirmation goes out before the cancel: the carrier is not ticked.
	if n, err := s.relay.Step(ctx); err != nil || n == 0 {
		t.Fatalf("step: %d, %v", n, err)
	}
	if _, err := s.svc.Cancel(ctx, orders.Caller{Customer: cust}, o.ID, "changed my mind"); err != nil {
		t.Fatal(err)
	}
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if st := s.status(o.ID); st != bookstore.OrderCancelled {
		t.Fatalf("order is %s", st)
	}
	if n := s.psp.refunds.Load(); n != 1 {
		t.Fatalf("%d refunds asked of the PSP, want 1", n)
	}
	rec, err := s.db.Orders.ByID(ctx, o.ID)
	if err != nil || rec.Payment.Status != string(payment.StatusRefunded) {
		t.Fatalf("payment %+v, %v", rec.Payment, err)
	}
	c := bySubject(t, sink.received(), "is cancelled")
	if len(c) != 1 {
		t.Fatalf("%d cancelled emails, want 1", len(c))
	}
	if want := mail.Money(o.Cost.TotalCents, o.Cost.Currency); !strings.Contains(c[0].text, want) || !strings.Contains(c[0].text, "changed my mind") {
		t.Errorf("cancelled email lacks the refund %s or the reason:\n%s", want, c[0].text)
	}
	if len(c[0].rcpts) != 1 || c[0].rcpts[0] != "sam@shire.example" {
		t.Errorf("recipients %v", c[0].rcpts)
	}
}

// failing fails every Send of a key in fail (temporarily), sending the others.
type failing struct {
	mail.Sender
	mu   sync.Mutex
	fail map[string]bool
}

func (f *failing) Send(ctx context.Context, m mail.Message) error {
	f.mu.Lock()
	bad := false
	for k := range f.fail {
		if strings.HasSuffix(m.Key, k) {
			bad = true
		}
	}
	f.mu.Unlock()
	if bad {
		return fmt.Errorf("mail %s: connection reset", m.Key)
	}
	return f.Sender.Send(ctx, m)
}

// A batch in which one email fails does not send the batch's other emails again
// (BatchError), and, the regression: an event handled twice (a crash before its
// delivery was recorded) sent its email twice.
func TestRedeliverySendsNoSecondEmail(t *testing.T) {
	sink := startSink(t, "127.0.0.1:0")
	f := &failing{Sender: smtpSender(t, sink.addr), fail: map[string]bool{}}
	s := newShop(t, f)
	ctx := context.Background()
	a := s.checkout(uuid.Nil, "merry@shire.example", 1)
	b := s.checkout(uuid.Nil, "pippin@shire.example", 1)
	f.fail["order/"+b.ID.String()+"/confirmation"] = true
	for range 3 { // the batch [a, b] fails for b: retried whole, then event by event
		_, _ = s.relay.Step(ctx)
	}
	if n := len(sink.received()); n != 1 {
		t.Fatalf("%d emails after 3 tries of the batch, want 1 (a's, once)", n)
	}
	f.mu.Lock()
	delete(f.fail, "order/"+b.ID.String()+"/confirmation")
	f.mu.Unlock()
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	sentTo := map[string]int{}
	for _, r := range sink.received() {
		e := parseMail(t, r)
		if strings.Contains(e.header.Get("Subject"), "is confirmed") {
			sentTo[e.rcpts[0]]++
		}
	}
	if sentTo["merry@shire.example"] != 1 || sentTo["pippin@shire.example"] != 1 {
		t.Fatalf("confirmations per recipient %v, want one each", sentTo)
	}

	// The relay crashed before recording a's delivery: it handles the event again.
	var ev store.Event
	if err := s.db.Pool.QueryRow(ctx, `SELECT id, topic, aggregate_id, payload, created_at FROM outbox WHERE aggregate_id = $1 AND topic = $2`,
		a.ID, store.TopicOrderPaid).Scan(&ev.ID, &ev.Topic, &ev.AggregateID, &ev.Payload, &ev.CreatedAt); err != nil {
		t.Fatal(err)
	}
	before := len(sink.received())
	for range 2 {
		if err := s.mailer.Handle(ctx, []store.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(sink.received()); n != before {
		t.Fatalf("%d emails after handling a's event twice more, want %d", n, before)
	}
	if !strings.Contains(s.logs.String(), "order email sent before") {
		t.Error("the skipped send is not logged")
	}
}

// Two holders handle the same event at once (a lease that ran out mid-send): one email.
func TestConcurrentHoldersSendOneEmail(t *testing.T) {
	sink := startSink(t, "127.0.0.1:0")
	gate := make(chan struct{})
	var entered atomic.Int64
	real := smtpSender(t, sink.addr)
	slow := senderFunc(func(ctx context.Context, m mail.Message) error {
		if entered.Add(1) == 1 { // the first holder is slow
			<-gate
		}
		return real.Send(ctx, m)
	})
	s := newShop(t, slow)
	ctx := context.Background()
	o := s.checkout(uuid.Nil, "rosie@shire.example", 1)
	var ev store.Event
	if err := s.db.Pool.QueryRow(ctx, `SELECT id, topic, aggregate_id, payload, created_at FROM outbox WHERE aggregate_id = $1 AND topic = $2`,
		o.ID, store.TopicOrderPaid).Scan(&ev.ID, &ev.Topic, &ev.AggregateID, &ev.Payload, &ev.CreatedAt); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- s.mailer.Handle(ctx, []store.Event{ev}) }()
	for entered.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// The second holder finds the first's claim: it sends nothing and fails, to retry.
	if err := s.mailer.Handle(ctx, []store.Event{ev}); err == nil {
		t.Fatal("a second holder succeeded while the first was sending")
	}
	close(gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// Its retry finds the email sent.
	if err := s.mailer.Handle(ctx, []store.Event{ev}); err != nil {
		t.Fatal(err)
	}
	if n := len(sink.received()); n != 1 || entered.Load() != 1 {
		t.Fatalf("%d emails, %d sends started; want 1 and 1", n, entered.Load())
	}
}

type senderFunc func(ctx context.Context, m mail.Message) error

func (f senderFunc) Send(ctx context.Context, m mail.Message) error { return f(ctx, m) }

// A mail server that is not listening, then one that refuses with 421, then one that
// refuses our sender (550 at MAIL FROM): the event is retried, nothing is parked or
// counted against it, and the email goes out once the server is back.
func TestSMTPDownIsRetriedNotParked(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s := newShop(t, smtpSender(t, addr))
	ctx := context.Background()
	o := s.checkout(uuid.Nil, "lobelia@shire.example", 1)
	for range 5 {
		_, _ = s.relay.Step(ctx)
	}
	if n := s.count(`SELECT count(*) FROM outbox_deliveries WHERE consumer = 'order-mail'`); n != 0 {
		t.Fatalf("%d order-mail deliveries recorded with the server down, want none", n)
	}
	sink := startSink(t, addr)
	sink.set(func(s *smtpSink) { s.refuse = tempDown })
	for range 5 {
		_, _ = s.relay.Step(ctx)
	}
	if n := len(sink.received()); n != 0 {
		t.Fatalf("%d emails accepted by a server answering 421", n)
	}
	if n, _ := s.db.Outbox.ParkedCount(ctx); n != 0 {
		t.Fatalf("%d events parked for a temporary failure", n)
	}
	// A 5xx at MAIL FROM is our misconfiguration (a From the relay does not accept), not
	// the message's fault: retried like a server down, not parked.
	sink.set(func(s *smtpSink) {
		s.refuse = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender not allowed"}
	})
	for range 5 {
		_, _ = s.relay.Step(ctx)
	}
	if n, _ := s.db.Outbox.ParkedCount(ctx); n != 0 || len(sink.received()) != 0 {
		t.Fatalf("%d events parked, %d emails, for a refused sender", n, len(sink.received()))
	}
	sink.set(func(s *smtpSink) { s.refuse = nil })
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if c := bySubject(t, sink.received(), "is confirmed"); len(c) != 1 || c[0].rcpts[0] != "lobelia@shire.example" {
		t.Fatalf("%d confirmations after the server came back, want 1", len(c))
	}
	if n, _ := s.db.Outbox.ParkedCount(ctx); n != 0 {
		t.Fatalf("%d parked", n)
	}
	if st := s.status(o.ID); st != bookstore.OrderDelivered {
		t.Fatalf("order %s: fulfilment waited for the mail server", st)
	}
}

// Regression: an email the server refuses for good (550 unknown recipient) was logged
// and dropped, its event marked done: nothing for an operator to see or re-send. It is
// parked at once now, with the reason (the address redacted), and requeued it is sent.
func TestPermanentRejectionIsParked(t *testing.T) {
	sink := startSink(t, "127.0.0.1:0")
	s := newShop(t, smtpSender(t, sink.addr))
	ctx := context.Background()
	const bad = "gollum@misty.example"
	sink.set(func(s *smtpSink) { s.rejectTo[bad] = true })
	o := s.checkout(uuid.Nil, bad, 1)
	good := s.checkout(uuid.Nil, "gandalf@istari.example", 1)
	_ = s.settle()
	// Both of its emails are parked (the confirmation, and the shipped notice after it),
	// each after one attempt: the server said no for good.
	ps, err := s.db.Outbox.Parked(ctx, "order-mail", 10)
	if err != nil || len(ps) != 2 {
		t.Fatalf("parked %+v, %v; want the refused confirmation and shipped emails", ps, err)
	}
	topics := map[string]bool{}
	for _, p := range ps {
		if p.AggregateID != o.ID || p.Attempts != 1 || !strings.Contains(p.Reason, "550") {
			t.Fatalf("parked %+v", p)
		}
		if strings.Contains(p.Reason, bad) {
			t.Fatalf("the parked reason holds the address in clear: %s", p.Reason)
		}
		topics[p.Topic] = true
	}
	if !topics[store.TopicOrderPaid] || !topics[store.OrderTopic(bookstore.OrderEventShipped)] {
		t.Fatalf("parked topics %v", topics)
	}
	if c := bySubject(t, sink.received(), "is confirmed"); len(c) != 1 || c[0].rcpts[0] != "gandalf@istari.example" {
		t.Fatalf("confirmations %v; want the good order's only (%s)", c, good.Number)
	}
	// Only the one consumer parked it: the order is still fulfilled.
	if st := s.status(o.ID); st != bookstore.OrderDelivered {
		t.Fatalf("order %s", st)
	}
	// The operator fixes the mailbox and requeues.
	sink.set(func(s *smtpSink) { delete(s.rejectTo, bad) })
	if n, err := s.db.Outbox.Requeue(ctx, "order-mail", uuid.Nil); err != nil || n != 2 {
		t.Fatalf("requeue: %d, %v", n, err)
	}
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if c := bySubject(t, sink.received(), "is confirmed"); len(c) != 2 {
		t.Fatalf("%d confirmations after the requeue, want 2", len(c))
	}
	if c := bySubject(t, sink.received(), "has shipped"); len(c) != 2 {
		t.Fatalf("%d shipped emails after the requeue, want 2", len(c))
	}
	if n, _ := s.db.Outbox.ParkedCount(ctx); n != 0 {
		t.Fatalf("%d still parked", n)
	}
}

// Development: the Dir sender writes each email as one .eml file under the data dir and
// logs its path; an event handled again writes nothing new.
func TestDevModeWritesEmlFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	logs := &syncBuffer{}
	d, err := mail.NewDir(dir, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s := newShop(t, d)
	o := s.checkout(uuid.Nil, "tom@bombadil.example", 1)
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil || len(files) != 2 {
		t.Fatalf("%d .eml files (%v), want a confirmation and a shipped email", len(files), err)
	}
	var subjects []string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		e := parseMail(t, received{data: raw})
		subjects = append(subjects, e.header.Get("Subject"))
		if to := e.header.Get("To"); !strings.Contains(to, "tom@bombadil.example") {
			t.Errorf("%s: To %q", f, to)
		}
		if !strings.Contains(e.text, o.Number) {
			t.Errorf("%s lacks the order number", f)
		}
		if !strings.Contains(logs.String(), "mail written") || !strings.Contains(logs.String(), f) {
			t.Errorf("%s not logged:\n%s", f, logs.String())
		}
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v (%v), want owner-only", f, fi.Mode(), err)
		}
	}
	if strings.Contains(logs.String(), "tom@bombadil.example") {
		t.Error("the log holds the recipient's address")
	}
	joined := strings.Join(subjects, "|")
	if !strings.Contains(joined, o.Number+" is confirmed") || !strings.Contains(joined, o.Number+" has shipped") {
		t.Errorf("subjects %q", joined)
	}
}

// A lone event whose handler fails it with events.Permanent is parked at the first
// attempt, with the reason; an event failing with an ordinary error alone is not (the
// cause may be a backend down), and a batch error wrapping a Permanent one is found.
func TestPermanentErrorParksAtOnce(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	seed(t, db, 2)
	evs, err := db.Outbox.PendingFor(ctx, "x", []string{store.TopicBookChanged}, 10)
	if err != nil || len(evs) != 2 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	var calls atomic.Int64
	h := events.HandlerFunc(func(_ context.Context, batch []store.Event) error {
		calls.Add(1)
		failed := map[uuid.UUID]error{}
		for _, e := range batch {
			if e.ID == evs[0].ID {
				failed[e.ID] = events.Permanent(errors.New("550 no such mailbox"))
			} else {
				failed[e.ID] = errors.New("connection refused")
			}
		}
		return &events.BatchError{Failed: failed}
	})
	r := &events.Relay{Outbox: db.Outbox, Log: discard(), IsolateAfter: 5, Handlers: []events.Handler{events.Subscribe("x", h, store.TopicBookChanged)},
		Retry: store.Retry{Base: time.Millisecond, Max: time.Millisecond, Attempts: 10}}
	if !events.IsPermanent(&events.BatchError{Failed: map[uuid.UUID]error{evs[0].ID: events.Permanent(errors.New("x"))}}) {
		t.Fatal("IsPermanent misses a Permanent error inside a BatchError")
	}
	if events.IsPermanent(errors.New("x")) || events.Permanent(nil) != nil {
		t.Fatal("IsPermanent of a plain error, or Permanent(nil) not nil")
	}
	_, _ = r.Step(ctx) // every event fails: handled one by one at once (a Permanent among them)
	ps, err := db.Outbox.Parked(ctx, "x", 10)
	if err != nil || len(ps) != 1 || ps[0].ID != evs[0].ID || ps[0].Attempts != 1 || !strings.Contains(ps[0].Reason, "550") {
		t.Fatalf("parked %+v, %v; want the permanent one after 1 attempt", ps, err)
	}
	for range 20 {
		_, _ = r.Step(ctx)
	}
	if n, _ := db.Outbox.ParkedCount(ctx); n != 1 {
		t.Fatalf("%d parked; the event failing with an ordinary error alone must not be", n)
	}
	if n := attemptsNotParked(ctx, db); n != 0 {
		t.Fatalf("%d failed attempts counted against the ordinary failure", n)
	}
}

func attemptsNotParked(ctx context.Context, db *store.DB) int64 {
	var n int64
	_ = db.Pool.QueryRow(ctx, `SELECT COALESCE(sum(attempts), 0) FROM outbox_deliveries WHERE parked_at IS NULL`).Scan(&n)
	return n
}

// TestOrderMailSendsOrdersAtOnce: the emails of different orders are sent at the same
// time (one at a time, a burst of checkouts left confirmations 20 s behind), each once.
func TestOrderMailSendsOrdersAtOnce(t *testing.T) {
	sink := startSink(t, "127.0.0.1:0")
	real := smtpSender(t, sink.addr)
	var inFlight, most atomic.Int64
	both := make(chan struct{})
	var once sync.Once
	slow := senderFunc(func(ctx context.Context, m mail.Message) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			if old := most.Load(); n <= old || most.CompareAndSwap(old, n) {
				break
			}
		}
		if n >= 2 {
			once.Do(func() { close(both) })
		}
		select { // each send waits (bounded) until two are in flight
		case <-both:
		case <-time.After(5 * time.Second):
		}
		return real.Send(ctx, m)
	})
	s := newShop(t, slow)
	ctx := context.Background()
	var evs []store.Event
	for _, who := range []string{"sam@shire.example", "frodo@shire.example", "bilbo@shire.example"} {
		o := s.checkout(uuid.Nil, who, 1)
		var ev store.Event
		if err := s.db.Pool.QueryRow(ctx, `SELECT id, topic, aggregate_id, payload, created_at FROM outbox WHERE aggregate_id = $1 AND topic = $2`,
			o.ID, store.TopicOrderPaid).Scan(&ev.ID, &ev.Topic, &ev.AggregateID, &ev.Payload, &ev.CreatedAt); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if err := s.mailer.Handle(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if most.Load() < 2 {
		t.Fatalf("at most %d emails in flight, want the orders' at once", most.Load())
	}
	if n := len(sink.received()); n != 3 {
		t.Fatalf("%d emails, want 3", n)
	}
}
