package testpsp_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/payment"
	"github.com/shopfront/bookstore/payment/testpsp"
	"github.com/shopfront/bookstore/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func newPSP(t *testing.T) (*testpsp.PSP, *store.DB) {
	t.Helper()
	db := testdb.New(t)
	return testpsp.New(db.TestPSP, testpsp.Options{SlowDelay: 10 * time.Second}), db
}

func req(key, token string, method payment.Method) payment.ChargeRequest {
	return payment.ChargeRequest{IdempotencyKey: key, AmountCents: 2599, Currency: "USD", Method: method, Token: token}
}

// TestTokens checks every documented token's outcome, card details and failure code,
// and that Lookup finds the same charge afterwards.
func TestTokens(t *testing.T) {
	t.Parallel()
	psp, _ := newPSP(t)
	ctx := context.Background()
	cases := []struct {
		token        string
		method       payment.Method
		status       payment.Status
		brand, last4 string
		wallet, fail string
	}{
		{"tok_visa", payment.MethodCard, payment.StatusSucceeded, "visa", "4242", "", ""},
		{"tok_mastercard", payment.MethodCard, payment.StatusSucceeded, "mastercard", "4444", "", ""},
		{"tok_chargeDeclined", payment.MethodCard, payment.StatusFailed, "visa", "0002", "", bookstore.CodePaymentDeclined},
		{"tok_chargeDeclinedInsufficientFunds", payment.MethodCard, payment.StatusFailed, "visa", "9995", "", bookstore.CodeInsufficientFunds},
		{"tok_chargeDeclinedProcessingError", payment.MethodCard, payment.StatusFailed, "visa", "0119", "", bookstore.CodePaymentError},
		{"tok_applepay", payment.MethodWallet, payment.StatusSucceeded, "visa", "4242", "apple_pay", ""},
		{"tok_googlepay", payment.MethodWallet, payment.StatusSucceeded, "mastercard", "4444", "google_pay", ""},
	}
	for _, c := range cases {
		t.Run(c.token, func(t *testing.T) {
			key := "order-" + c.token
			ch, err := psp.Charge(ctx, req(key, c.token, c.method))
			if err != nil {
				t.Fatalf("Charge: %v", err)
			}
			if ch.Status != c.status || ch.Brand != c.brand || ch.Last4 != c.last4 || ch.Wallet != c.wallet ||
				ch.FailureCode != c.fail || ch.Method != c.method || ch.AmountCents != 2599 || ch.Currency != "USD" ||
				ch.IdempotencyKey != key || ch.ID == "" {
				t.Fatalf("charge = %+v, want status %s brand %s last4 %s wallet %q failure %q", ch, c.status, c.brand, c.last4, c.wallet, c.fail)
			}
			if got := bookstore.ErrorCode(ch.Err()); got != c.fail {
				t.Fatalf("Err() code = %q, want %q", got, c.fail)
			}
			got, err := psp.Lookup(ctx, key)
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			if got.ID != ch.ID || got.Status != ch.Status || got.Last4 != ch.Last4 {
				t.Fatalf("Lookup = %+v, want %+v", got, ch)
			}
		})
	}
}

// TestRefusedRequests: requests the PSP refuses outright charge nothing and say why.
func TestRefusedRequests(t *testing.T) {
	t.Parallel()
	psp, db := newPSP(t)
	ctx := context.Background()
	cases := []struct {
		name  string
		req   payment.ChargeRequest
		field string
	}{
		{"unknown token", req("k1", "tok_nope", payment.MethodCard), "payment.token"},
		{"wallet token as card", req("k2", "tok_applepay", payment.MethodCard), "payment.token"},
		{"card token as wallet", req("k3", "tok_visa", payment.MethodWallet), "payment.token"},
		{"unknown method", req("k4", "tok_visa", "CASH"), "payment.method"},
		{"card number as token", req("k5", "4242424242424242", payment.MethodCard), "payment.token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := psp.Charge(ctx, c.req)
			var be *bookstore.Error
			if !errors.As(err, &be) || be.Code != bookstore.CodeBadUserInput || be.Field != c.field {
				t.Fatalf("err = %v, want BAD_USER_INPUT on %s", err, c.field)
			}
			if !payment.Definite(err) {
				t.Fatal("a refused request must be a definite outcome")
			}
			if be.Message == "" || containsToken(be.Message, c.req.Token) {
				t.Fatalf("message %q must explain without echoing the token", be.Message)
			}
		})
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM test_psp_charges`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d charges recorded for refused requests, want 0", n)
	}
}

func containsToken(msg, tok string) bool { return tok != "" && strings.Contains(msg, tok) }

// TestIdempotency: a retry with the same key and request returns the first charge (a
// decline too); the same key with another request is refused without a second charge.
func TestIdempotency(t *testing.T) {
	t.Parallel()
	psp, db := newPSP(t)
	ctx := context.Background()
	first, err := psp.Charge(ctx, req("order-1", "tok_visa", payment.MethodCard))
	if err != nil {
		t.Fatal(err)
	}
	again, err := psp.Charge(ctx, req("order-1", "tok_visa", payment.MethodCard))
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || !again.Created.Equal(first.Created) {
		t.Fatalf("retry returned charge %s, want the first one %s", again.ID, first.ID)
	}
	other := req("order-1", "tok_visa", payment.MethodCard)
	other.AmountCents++
	// Not definite (from review): the key holds a succeeded charge.
	if _, err := psp.Charge(ctx, other); !errors.Is(err, payment.ErrIdempotencyKeyReused) || payment.Definite(err) {
		t.Fatalf("same key, other amount: err = %v, want ErrIdempotencyKeyReused, not definite", err)
	}
	if _, err := psp.Charge(ctx, req("order-1", "tok_mastercard", payment.MethodCard)); !errors.Is(err, payment.ErrIdempotencyKeyReused) {
		t.Fatalf("same key, other token: err = %v, want ErrIdempotencyKeyReused", err)
	}
	declined, err := psp.Charge(ctx, req("order-2", "tok_chargeDeclined", payment.MethodCard))
	if err != nil {
		t.Fatal(err)
	}
	declinedAgain, err := psp.Charge(ctx, req("order-2", "tok_chargeDeclined", payment.MethodCard))
	if err != nil || declinedAgain.ID != declined.ID || declinedAgain.Status != payment.StatusFailed {
		t.Fatalf("declined retry = %+v, %v; want the first decline %s", declinedAgain, err, declined.ID)
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM test_psp_charges`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d charges recorded, want 2", n)
	}
}

// TestConcurrentChargesOneKey hammers one key from many goroutines at once (what two
// racing checkouts, or a checkout and the recovery loop, do): exactly one charge exists
// and every caller got it.
func TestConcurrentChargesOneKey(t *testing.T) {
	t.Parallel()
	psp, db := newPSP(t)
	ctx := context.Background()
	const callers, keys = 64, 4
	ids := make([][]string, keys)
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := make(chan struct{})
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			k := i % keys
			ch, err := psp.Charge(ctx, req(fmt.Sprintf("order-%d", k), "tok_visa", payment.MethodCard))
			if err != nil {
				t.Errorf("Charge: %v", err)
				return
			}
			mu.Lock()
			ids[k] = append(ids[k], ch.ID)
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	for k, got := range ids {
		if len(got) != callers/keys {
			t.Fatalf("key %d: %d answers, want %d", k, len(got), callers/keys)
		}
		for _, id := range got {
			if id != got[0] {
				t.Fatalf("key %d: callers got charges %s and %s: charged twice", k, got[0], id)
			}
		}
	}
	var n, total int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*), COALESCE(sum(amount_cents), 0) FROM test_psp_charges WHERE status = 'SUCCEEDED'`).Scan(&n, &total); err != nil {
		t.Fatal(err)
	}
	if n != keys || total != keys*2599 {
		t.Fatalf("%d charges totalling %d cents, want %d totalling %d", n, total, keys, keys*2599)
	}
}

// TestChargesSurviveRestart: a second PSP on a fresh connection pool (as after a crash
// and restart of the process) finds the first one's charges and does not charge again.
func TestChargesSurviveRestart(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	ctx := context.Background()
	open := func() *testpsp.PSP {
		db, err := store.Open(ctx, url, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		return testpsp.New(db.TestPSP, testpsp.Options{})
	}
	before := open()
	first, err := before.Charge(ctx, req("order-crash", "tok_mastercard", payment.MethodCard))
	if err != nil {
		t.Fatal(err)
	}
	after := open()
	got, err := after.Lookup(ctx, "order-crash")
	if err != nil || got.ID != first.ID || got.Status != payment.StatusSucceeded || got.Last4 != "4444" {
		t.Fatalf("after restart Lookup = %+v, %v; want %+v", got, err, first)
	}
	again, err := after.Charge(ctx, req("order-crash", "tok_mastercard", payment.MethodCard))
	if err != nil || again.ID != first.ID {
		t.Fatalf("after restart Charge = %+v, %v; want the first charge %s", again, err, first.ID)
	}
}

// TestSlowToken: a call that outlives its deadline fails with the deadline, and charges
// nothing (Lookup: ErrNotFound); given enough time the same token approves.
func TestSlowToken(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	slow := testpsp.New(db.TestPSP, testpsp.Options{SlowDelay: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := slow.Charge(ctx, req("order-slow", testpsp.SlowToken, payment.MethodCard))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if payment.Definite(err) {
		t.Fatal("a timeout must be an unknown outcome")
	}
	if _, err := slow.Lookup(context.Background(), "order-slow"); !errors.Is(err, payment.ErrNotFound) {
		t.Fatalf("Lookup after timeout: err = %v, want ErrNotFound", err)
	}
	quick := testpsp.New(db.TestPSP, testpsp.Options{SlowDelay: 20 * time.Millisecond})
	ch, err := quick.Charge(context.Background(), req("order-slow-2", testpsp.SlowToken, payment.MethodCard))
	if err != nil || ch.Status != payment.StatusSucceeded {
		t.Fatalf("slow charge with time to spare = %+v, %v; want SUCCEEDED", ch, err)
	}
}

// TestRefund: a succeeded charge refunds once (a repeat returns it unchanged); a
// declined one has nothing to refund; an unknown key is ErrNotFound.
func TestRefund(t *testing.T) {
	t.Parallel()
	psp, _ := newPSP(t)
	ctx := context.Background()
	if _, err := psp.Charge(ctx, req("order-r", "tok_visa", payment.MethodCard)); err != nil {
		t.Fatal(err)
	}
	r1, err := psp.Refund(ctx, "order-r")
	if err != nil || r1.Status != payment.StatusRefunded {
		t.Fatalf("Refund = %+v, %v; want REFUNDED", r1, err)
	}
	r2, err := psp.Refund(ctx, "order-r")
	if err != nil || r2.Status != payment.StatusRefunded || r2.ID != r1.ID {
		t.Fatalf("second Refund = %+v, %v; want the same refunded charge", r2, err)
	}
	if got, _ := psp.Lookup(ctx, "order-r"); got == nil || got.Status != payment.StatusRefunded {
		t.Fatalf("Lookup after refund = %+v, want REFUNDED", got)
	}
	if _, err := psp.Charge(ctx, req("order-d", "tok_chargeDeclined", payment.MethodCard)); err != nil {
		t.Fatal(err)
	}
	if _, err := psp.Refund(ctx, "order-d"); err == nil || !errors.Is(err, payment.ErrNotRefundable) {
		t.Fatalf("refund of a decline: err = %v, want not refundable", err)
	}
	if _, err := psp.Refund(ctx, "order-none"); !errors.Is(err, payment.ErrNotFound) {
		t.Fatalf("refund of nothing: err = %v, want ErrNotFound", err)
	}
	if _, err := psp.Lookup(ctx, "order-none"); !errors.Is(err, payment.ErrNotFound) {
		t.Fatalf("Lookup of nothing: err = %v, want ErrNotFound", err)
	}
}

// BenchmarkCharge measures new charges (one INSERT each) from parallel callers: the
// test PSP's share of a checkout in the checkout benchmark.
func BenchmarkCharge(b *testing.B) {
	db := testdb.New(b)
	psp := testpsp.New(db.TestPSP, testpsp.Options{})
	ctx := context.Background()
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Sprintf("bench-%d", n.Add(1))
			if _, err := psp.Charge(ctx, req(key, "tok_visa", payment.MethodCard)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestVoidDuringInFlightCharge (from review): while a charge is in flight, Lookup's
// ErrNotFound is not definite; Void closes the key, so the charge, landing later,
// answers the voided charge instead of taking the money, and every later call agrees.
func TestVoidDuringInFlightCharge(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	psp := testpsp.New(db.TestPSP, testpsp.Options{SlowDelay: 300 * time.Millisecond})
	ctx := context.Background()
	done := make(chan *payment.Charge, 1)
	go func() {
		ch, err := psp.Charge(ctx, req("order-inflight", testpsp.SlowToken, payment.MethodCard))
		if err != nil {
			t.Error(err)
		}
		done <- ch
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := psp.Lookup(ctx, "order-inflight"); !errors.Is(err, payment.ErrNotFound) || payment.Definite(err) {
		t.Fatalf("Lookup during the charge: %v, want ErrNotFound, not definite", err)
	}
	v, err := psp.Void(ctx, "order-inflight")
	if err != nil || v.Status != payment.StatusFailed {
		t.Fatalf("Void = %+v, %v; want FAILED", v, err)
	}
	if ch := <-done; ch == nil || ch.Status != payment.StatusFailed || ch.ID != v.ID {
		t.Fatalf("the in-flight charge answered %+v, want the voided charge %s", ch, v.ID)
	}
	for _, f := range []func() (*payment.Charge, error){
		func() (*payment.Charge, error) { return psp.Lookup(ctx, "order-inflight") },
		func() (*payment.Charge, error) { return psp.Void(ctx, "order-inflight") },
		func() (*payment.Charge, error) {
			return psp.Charge(ctx, req("order-inflight", "tok_visa", payment.MethodCard))
		},
	} {
		if c, err := f(); err != nil || c.ID != v.ID || c.Status != payment.StatusFailed {
			t.Fatalf("after Void: %+v, %v; want the voided charge", c, err)
		}
	}
	if _, err := psp.Refund(ctx, "order-inflight"); !errors.Is(err, payment.ErrNotRefundable) {
		t.Fatalf("Refund of a voided key: %v, want ErrNotRefundable", err)
	}
}

// TestVoidAfterCharge: voiding a charged key changes nothing and answers the charge, so
// the recovery loop completes (or refunds) the order instead of failing it.
func TestVoidAfterCharge(t *testing.T) {
	t.Parallel()
	psp, _ := newPSP(t)
	ctx := context.Background()
	ch, err := psp.Charge(ctx, req("order-paid", "tok_visa", payment.MethodCard))
	if err != nil {
		t.Fatal(err)
	}
	v, err := psp.Void(ctx, "order-paid")
	if err != nil || v.ID != ch.ID || v.Status != payment.StatusSucceeded {
		t.Fatalf("Void of a charged key = %+v, %v; want its SUCCEEDED charge %s", v, err, ch.ID)
	}
}

// TestVoidRacesCharges hammers one key with charges and voids at once (a slow checkout
// and the recovery loop): every answer names the same single charge, and either all of
// them saw the money move or none did.
func TestVoidRacesCharges(t *testing.T) {
	t.Parallel()
	psp, db := newPSP(t)
	ctx := context.Background()
	for round := range 20 {
		key := fmt.Sprintf("order-race-%d", round)
		var wg sync.WaitGroup
		got := make(chan *payment.Charge, 16)
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var c *payment.Charge
				var err error
				if i%2 == 0 {
					c, err = psp.Charge(ctx, req(key, "tok_visa", payment.MethodCard))
				} else {
					c, err = psp.Void(ctx, key)
				}
				if err != nil {
					t.Error(err)
					return
				}
				got <- c
			}()
		}
		wg.Wait()
		close(got)
		var first *payment.Charge
		for c := range got {
			if first == nil {
				first = c
			}
			if c.ID != first.ID || c.Status != first.Status {
				t.Fatalf("%s: answers disagree: %s %s and %s %s", key, first.ID, first.Status, c.ID, c.Status)
			}
		}
		var n int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM test_psp_charges WHERE idempotency_key = $1`, key).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%s: %d ledger rows (%v), want 1", key, n, err)
		}
	}
}
