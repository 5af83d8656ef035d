package events_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/mail"
	"github.com/shopfront/bookstore/store"
)

func confirmationKey(o *bookstore.Order) string { return "order/" + o.ID.String() + "/confirmation" }

// confirmations counts the confirmations the sink received, by recipient.
func confirmations(t *testing.T, sink *smtpSink) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, r := range sink.received() {
		e := parseMail(t, r)
		if strings.Contains(e.header.Get("Subject"), "is confirmed") {
			n[e.rcpts[0]]++
		}
	}
	return n
}

func (s *shop) exec(q string, args ...any) {
	s.t.Helper()
	if _, err := s.db.Pool.Exec(context.Background(), q, args...); err != nil {
		s.t.Fatalf("%s: %v", q, err)
	}
}

// Regression (R2): a process died while sending X in the batch [W, X, Y]. The next
// holder skipped W (sent) and sent Y, and X failed with "another holder is sending",
// counted as an attempt, and so on at every retry: X was parked before the dead holder's
// claim went stale, and the email was lost. Now X waits for the claim, counting no
// attempt, and goes out once.
func TestDeadHolderMidBatchEmailWaitsForItsClaim(t *testing.T) {
	sink := startSink(t, "127.0.0.1:0")
	s := newShop(t, smtpSender(t, sink.addr))
	s.mailer.ClaimTTL = 300 * time.Millisecond // and the relay retries every 1 ms, 3 attempts
	ctx := context.Background()
	w := s.checkout(uuid.Nil, "w@shire.example", 1)
	x := s.checkout(uuid.Nil, "x@shire.example", 1)
	y := s.checkout(uuid.Nil, "y@shire.example", 1)
	// The dead holder sent W and had claimed X.
	s.exec(`INSERT INTO sent_mail (mail_key, claim, claimed_at, sent_at) VALUES ($1, $2, now(), now())`, confirmationKey(w), uuid.New())
	s.exec(`INSERT INTO sent_mail (mail_key, claim, claimed_at) VALUES ($1, $2, now())`, confirmationKey(x), uuid.New())

	_, _ = s.relay.Step(ctx)
	if got := confirmations(t, sink); len(got) != 1 || got[y.Email] != 1 {
		t.Fatalf("confirmations after the first batch %v, want Y's alone", got)
	}
	attempts := `SELECT count(*) FROM outbox_deliveries WHERE consumer = 'order-mail' AND (attempts > 0 OR parked_at IS NOT NULL)`
	for i := 0; confirmations(t, sink)[x.Email] == 0; i++ {
		if n := s.count(attempts); n != 0 {
			t.Fatalf("%d order-mail deliveries with failed attempts or parked while X waits for the claim, want 0", n)
		}
		if i == 1000 {
			t.Fatal("X's confirmation never sent")
		}
		_, _ = s.relay.Step(ctx)
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.settle(); err != nil {
		t.Fatal(err)
	}
	if got := confirmations(t, sink); len(got) != 2 || got[x.Email] != 1 || got[y.Email] != 1 {
		t.Fatalf("confirmations %v, want X's and Y's once each (W's was sent before)", got)
	}
	if n := s.count(attempts); n != 0 {
		t.Fatalf("%d order-mail deliveries with failed attempts or parked, want 0", n)
	}
	if n := s.count(`SELECT count(*) FROM outbox_deliveries d JOIN outbox o ON o.id = d.event_id
		WHERE d.consumer = 'order-mail' AND o.topic = $1 AND d.done_at IS NOT NULL`, store.TopicOrderPaid); n != 3 {
		t.Fatalf("%d order-mail deliveries of paid events done, want 3", n)
	}
}

// Regression (R2): the mail server accepted the email and recording it failed. The event
// was retried: it waited out its own claim, and sent the email again. Now it is done.
func TestUnrecordedSendIsNotSentAgain(t *testing.T) {
	sink := startSink(t, "127.0.0.1:0")
	s := newShop(t, smtpSender(t, sink.addr))
	s.mailer.ClaimTTL = 200 * time.Millisecond
	ctx := context.Background()
	s.exec(`CREATE FUNCTION refuse_sent() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$`)
	s.exec(`CREATE TRIGGER refuse_sent BEFORE UPDATE ON sent_mail FOR EACH ROW WHEN (NEW.sent_at IS NOT NULL) EXECUTE FUNCTION refuse_sent()`)
	o := s.checkout(uuid.Nil, "hamfast@shire.example", 1)
	_, _ = s.relay.Step(ctx)
	if got := confirmations(t, sink); got[o.Email] != 1 {
		t.Fatalf("confirmations %v, want one to %s", got, o.Email)
	}
	// Well past the claim's TTL, the relay has every chance to send it again.
	for range 10 {
		time.Sleep(50 * time.Millisecond)
		_, _ = s.relay.Step(ctx)
	}
	if got := confirmations(t, sink); len(got) != 1 || got[o.Email] != 1 {
		t.Fatalf("confirmations %v, want one to %s", got, o.Email)
	}
	if n := s.count(`SELECT count(*) FROM outbox_deliveries d JOIN outbox o ON o.id = d.event_id
		WHERE d.consumer = 'order-mail' AND o.topic = $1 AND d.done_at IS NOT NULL AND d.attempts = 0`, store.TopicOrderPaid); n != 1 {
		t.Fatalf("%d order-mail deliveries of the paid event done without failed attempts, want 1", n)
	}
	if !strings.Contains(s.logs.String(), "not recorded as sent") {
		t.Error("the failed record is not logged")
	}
}

// markSent checks that its claim was still there: one another holder took over meanwhile
// (this send outlived the claim's TTL) is logged, and the event is done.
func TestClaimTakenOverMidSendIsLogged(t *testing.T) {
	sink := startSink(t, "127.0.0.1:0")
	real := smtpSender(t, sink.addr)
	var s *shop
	s = newShop(t, senderFunc(func(ctx context.Context, m mail.Message) error {
		// Another holder takes the claim over while this one is in its SMTP session.
		if _, err := s.db.Pool.Exec(ctx, `UPDATE sent_mail SET claim = $2, claimed_at = now() WHERE mail_key = $1`, m.Key, uuid.New()); err != nil {
			return err
		}
		return real.Send(ctx, m)
	}))
	ctx := context.Background()
	o := s.checkout(uuid.Nil, "farmer.maggot@shire.example", 1)
	_, _ = s.relay.Step(ctx)
	if got := confirmations(t, sink); len(got) != 1 || got[o.Email] != 1 {
		t.Fatalf("confirmations %v, want one to %s", got, o.Email)
	}
	if n := s.count(`SELECT count(*) FROM outbox_deliveries d JOIN outbox o ON o.id = d.event_id
		WHERE d.consumer = 'order-mail' AND o.topic = $1 AND d.done_at IS NOT NULL`, store.TopicOrderPaid); n != 1 {
		t.Fatalf("%d order-mail deliveries of the paid event done, want 1", n)
	}
	if !strings.Contains(s.logs.String(), "claim was taken over meanwhile") {
		t.Error("the claim taken over is not logged")
	}
}
