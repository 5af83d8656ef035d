package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/uuid"
)

// mailSink is an SMTP server in the test process that keeps what it accepts and refuses
// the recipients in reject for good.
type mailSink struct {
	addr   string
	mu     sync.Mutex
	mails  []string // the recipients of each accepted message, joined
	data   [][]byte
	reject map[string]bool
}

func startMailSink(t *testing.T) *mailSink {
	t.Helper()
	m := &mailSink{reject: map[string]bool{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{m: m}, nil }))
	srv.Domain = "mx.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = l.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return m
}

func (m *mailSink) received() (rcpts []string, data [][]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.mails...), append([][]byte(nil), m.data...)
}

type sinkSession struct {
	m     *mailSink
	rcpts []string
}

func (x *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (x *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.m.mu.Lock()
	defer x.m.mu.Unlock()
	if x.m.reject[to] {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	}
	x.rcpts = append(x.rcpts, to)
	return nil
}
func (x *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.m.mu.Lock()
	x.m.mails = append(x.m.mails, strings.Join(x.rcpts, ","))
	x.m.data = append(x.m.data, b)
	x.m.mu.Unlock()
	return nil
}
func (x *sinkSession) Reset()        { x.rcpts = nil }
func (x *sinkSession) Logout() error { return nil }

// TestOrderEmailRefusedIsParkedAndRequeued runs the real binary with SMTP_URL: a guest
// checkout whose address the mail server refuses for good (550) has its confirmation
// parked, listed by `bookstore outbox parked` with the server's reply, while the order is
// still fulfilled; once the mailbox exists, `bookstore outbox requeue` sends it, once.
func TestOrderEmailRefusedIsParkedAndRequeued(t *testing.T) {
	bin := buildBookstore(t)
	s := newCrashShop(t, 10)
	sink := startMailSink(t)
	const addr = "crash@example.com" // checkoutInput's email
	sink.mu.Lock()
	sink.reject[addr] = true
	sink.mu.Unlock()
	p := s.start(bin, map[string]string{"SMTP_URL": "smtp://" + sink.addr + "?starttls=none&timeout=5s", "SHIPPING_STEP": "0s"})
	res := p.checkout(t, checkoutInput(p.guestCart(t, s.bookID, 1), uuid.NewString(), "tok_visa"))
	if res.Order == nil || len(res.UserErrors) > 0 {
		t.Fatalf("checkout: %+v", res)
	}
	var order uuid.UUID
	if err := s.db.Pool.QueryRow(bg(), `SELECT id FROM orders`).Scan(&order); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the order to be delivered", func() (bool, error) { return s.status(t, order) == "DELIVERED", nil })
	cli := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), append([]string{"outbox"}, args...), env(s.vars), &out, &out); err != nil {
			t.Fatalf("outbox %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	var out string
	eventually(t, "the refused emails to be parked", func() (bool, error) {
		out = cli("parked", "--consumer", "order-mail")
		return strings.Contains(out, "2 parked"), nil // the confirmation and the shipped notice
	})
	if !strings.Contains(out, order.String()) || !strings.Contains(out, "order_paid") || !strings.Contains(out, "550") ||
		strings.Contains(out, addr) {
		t.Fatalf("outbox parked:\n%s", out)
	}
	if rcpts, _ := sink.received(); len(rcpts) != 0 {
		t.Fatalf("emails accepted: %v", rcpts)
	}
	sink.mu.Lock()
	delete(sink.reject, addr)
	sink.mu.Unlock()
	if out := cli("requeue", "--consumer", "order-mail", "--all"); !strings.Contains(out, "requeued 2 ") {
		t.Fatalf("requeue: %s", out)
	}
	eventually(t, "the requeued emails to be sent", func() (bool, error) {
		rcpts, _ := sink.received()
		return len(rcpts) == 2, nil
	})
	rcpts, data := sink.received()
	subjects := ""
	for i, d := range data {
		if rcpts[i] != addr {
			t.Errorf("email to %q, want %s", rcpts[i], addr)
		}
		for _, line := range strings.Split(string(d), "\r\n") {
			if strings.HasPrefix(line, "Subject: ") {
				subjects += line + "\n"
			}
		}
	}
	if !strings.Contains(subjects, res.Order.Number+" is confirmed") || !strings.Contains(subjects, res.Order.Number+" has shipped") {
		t.Fatalf("subjects:\n%s", subjects)
	}
	if out := cli("parked"); !strings.Contains(out, "0 parked") {
		t.Fatalf("still parked:\n%s", out)
	}
}
