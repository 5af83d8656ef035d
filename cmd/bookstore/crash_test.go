package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/payment"
	"github.com/shopfront/bookstore/payment/testpsp"
	"github.com/shopfront/bookstore/store"
)

// TestCheckoutCrash kills the real binary with SIGKILL (no deferred code, no graceful
// shutdown, requests cut off) in the middle of the checkout saga and starts it again:
// the recovery loop must settle every order the dead process left PENDING_PAYMENT, with
// stock and promotion uses consistent and no order charged twice (issue 11, saga step 5).
func TestCheckoutCrash(t *testing.T) {
	bin := buildBookstore(t)
	t.Run("after the charge", func(t *testing.T) { t.Parallel(); crashAfterCharge(t, bin) })
	t.Run("during the charge", func(t *testing.T) { t.Parallel(); crashDuringCharge(t, bin) })
	t.Run("one of two instances", func(t *testing.T) { t.Parallel(); crashOneOfTwo(t, bin) })
}

// Settings of a restarted instance: resolve orders older than 2 s, look every 200 ms.
// The lease outlives a pass by 3 x CHECKOUT_RECOVER_EVERY, so a killed holder's lease
// is free 600 ms after its last renewal.
var recovering = map[string]string{"CHECKOUT_RECOVER_AFTER": "2s", "CHECKOUT_RECOVER_EVERY": "200ms", "PSP_TIMEOUT": "1s"}

// A dying instance never resolves an order itself (its loop still holds and renews the
// lease, like any live instance), and its server never answers a stalled checkout with
// the request deadline's UNAVAILABLE before it is killed.
var notRecovering = map[string]string{"CHECKOUT_RECOVER_AFTER": "1h", "CHECKOUT_RECOVER_EVERY": "200ms", "REQUEST_TIMEOUT": "3m"}

const crashQty = 2

// crashAfterCharge: the PSP charged the card, the process dies before tx 2. After the
// restart the loop finds the charge by the order's key and settles the order PAID, once.
func crashAfterCharge(t *testing.T, bin string) {
	s := newCrashShop(t, 10)
	first := s.start(bin, merge(notRecovering, map[string]string{"BOOKSTORE_FAILPOINT_AFTER_CHARGE": "1m", "PSP_TIMEOUT": "1s"}))
	cartID := first.guestCart(t, s.bookID, crashQty)
	in := checkoutInput(cartID, uuid.NewString(), "tok_visa")
	stuck := first.checkoutAsync(in)

	order := s.waitOrder(t)
	eventually(t, "the charge to be recorded", func() (bool, error) {
		var status string
		err := s.db.Pool.QueryRow(bg(), `SELECT status FROM test_psp_charges WHERE idempotency_key = $1`, order.String()).Scan(&status)
		if err != nil {
			return false, nil
		}
		return status == string(payment.StatusSucceeded), nil
	})
	eventually(t, "the failpoint to stall the checkout", func() (bool, error) {
		return strings.Contains(first.logText(), "stalling before tx 2"), nil
	})
	first.kill()
	if err := <-stuck; err == nil {
		t.Fatal("the checkout request answered although the process was killed in it")
	}
	if st := s.status(t, order); st != bookstore.OrderPendingPayment {
		t.Fatalf("after the crash the order is %s, want PENDING_PAYMENT (killed before tx 2)", st)
	}
	if got := s.stock(t); got != s.initial-crashQty {
		t.Fatalf("after the crash stock = %d, want %d (taken in tx 1)", got, s.initial-crashQty)
	}

	second := s.start(bin, recovering)
	s.waitStatus(t, order, bookstore.OrderPaid)
	if got := s.stock(t); got != s.initial-crashQty {
		t.Fatalf("stock = %d after recovery, want %d", got, s.initial-crashQty)
	}
	s.checkInvariants(t, order)

	// The loop that paid the order deleted its cart (the cart id is sealed with the
	// order), so the bought books do not stay in it.
	if !second.cartGone(t, cartID) {
		t.Fatal("the cart of the order the recovery loop paid is still there")
	}
	// The client retries its request after the outage: the same key answers the order
	// the dead process placed, PAID, and charges nothing. The retry names the cart, so
	// it is deleted now, as a checkout that pays deletes it: otherwise it would stay with
	// the bought books in it and refuse every checkout (orders_cart_live).
	res := second.checkout(t, in)
	if len(res.UserErrors) > 0 || res.Order == nil || !isPaid(res.Order.Status) || res.Order.Payment.Last4 != "4242" {
		t.Fatalf("retry after recovery: %+v", res)
	}
	if !second.cartGone(t, cartID) {
		t.Error("the paid order's cart is still there after the client's retry")
	}
	// The access token is derived from PII_INDEX_KEY, so the restarted process answers
	// the guest's token.
	got := second.order(t, res.Order.ID, "crash@example.com", res.AccessToken)
	if got == nil || !isPaid(got.Status) || got.Number != res.Order.Number {
		t.Fatalf("order read back: %+v", got)
	}
	s.checkInvariants(t, order)
}

// crashDuringCharge: the process dies while the PSP has not answered. After the
// restart the loop finds no charge, voids the key (so the lost request can never charge
// later), and fails the order: stock and the promotion's single use come back, and the
// untouched cart can be checked out again.
func crashDuringCharge(t *testing.T, bin string) {
	s := newCrashShop(t, 10)
	limit := int64(1)
	promo := bookstore.Promotion{Code: "ONCEONLY", Kind: bookstore.DiscountFixed, Value: 100, UsageLimit: &limit, Active: true}
	if err := s.db.Promotions.Ensure(bg(), &promo); err != nil {
		t.Fatal(err)
	}
	first := s.start(bin, merge(notRecovering, map[string]string{
		"TEST_PSP_SLOW_DELAY": "1h", "PSP_TIMEOUT": "1m", "REQUEST_TIMEOUT": "3m",
	}))
	cartID := first.guestCart(t, s.bookID, crashQty, promo.Code)
	in := checkoutInput(cartID, uuid.NewString(), testpsp.SlowToken)
	stuck := first.checkoutAsync(in)

	order := s.waitOrder(t)
	if n := scalar(t, s.url, `SELECT used FROM promotions WHERE code = 'ONCEONLY'`); n != 1 {
		t.Fatalf("the pending order holds %d promotion uses, want 1", n)
	}
	select {
	case err := <-stuck:
		t.Fatalf("the checkout answered (%v) while the PSP was still charging", err)
	default:
	}
	first.kill()
	if err := <-stuck; err == nil {
		t.Fatal("the checkout request answered although the process was killed in it")
	}
	if st := s.status(t, order); st != bookstore.OrderPendingPayment {
		t.Fatalf("after the crash the order is %s, want PENDING_PAYMENT", st)
	}
	if n := s.count(t, `SELECT count(*) FROM test_psp_charges WHERE idempotency_key = $1`, order.String()); n != 0 {
		t.Fatalf("%d charges for an order whose charge never answered", n)
	}

	second := s.start(bin, recovering)
	s.waitStatus(t, order, bookstore.OrderPaymentFailed)
	if got := s.stock(t); got != s.initial {
		t.Fatalf("stock = %d after the failed order, want all %d back", got, s.initial)
	}
	if n := scalar(t, s.url, `SELECT used FROM promotions WHERE code = 'ONCEONLY'`); n != 0 {
		t.Fatalf("promotion used %d times after its only order failed, want 0", n)
	}
	var status, code string
	var hash []byte
	if err := s.db.Pool.QueryRow(bg(), `SELECT status, failure_code, request_hash FROM test_psp_charges WHERE idempotency_key = $1`,
		order.String()).Scan(&status, &code, &hash); err != nil {
		t.Fatalf("no voided charge for the order: %v", err)
	}
	if status != string(payment.StatusFailed) || code != bookstore.CodePaymentError || len(hash) != 0 {
		t.Fatalf("the order's key holds %s %s (request hash %x), want a voided FAILED charge", status, code, hash)
	}
	// The request that died with the process, were it to reach the PSP now (a retry by a
	// proxy, a PSP catching up), finds the key voided and charges nothing.
	var total int64
	if err := s.db.Pool.QueryRow(bg(), `SELECT total_cents FROM orders WHERE id = $1`, order).Scan(&total); err != nil {
		t.Fatal(err)
	}
	psp := testpsp.New(s.db.TestPSP, testpsp.Options{SlowDelay: time.Millisecond})
	for _, tok := range []string{"tok_visa", testpsp.SlowToken} {
		ch, err := psp.Charge(bg(), payment.ChargeRequest{IdempotencyKey: order.String(), AmountCents: total,
			Currency: "USD", Method: payment.MethodCard, Token: tok})
		if err != nil || ch.Status != payment.StatusFailed || ch.AmountCents != 0 {
			t.Fatalf("a late %s charge with the voided key: %+v, %v; want the voided FAILED charge", tok, ch, err)
		}
	}
	if n := s.count(t, `SELECT count(*) FROM test_psp_charges WHERE idempotency_key = $1 AND status = 'SUCCEEDED'`, order.String()); n != 0 {
		t.Fatal("a late charge with the voided key succeeded")
	}
	s.checkInvariants(t, order)

	// The same request again: the failed order, with its reason.
	res := second.checkout(t, in)
	if res.Order == nil || res.Order.Status != bookstore.OrderPaymentFailed || len(res.UserErrors) != 1 ||
		res.UserErrors[0].Code != bookstore.CodePaymentError {
		t.Fatalf("replay of the crashed checkout: %+v", res)
	}
	// The cart was left as it was, with its code: a new attempt pays, and gets the use
	// the failed order gave back.
	retry := second.checkout(t, checkoutInput(cartID, uuid.NewString(), "tok_visa"))
	if len(retry.UserErrors) > 0 || retry.Order == nil || !isPaid(retry.Order.Status) ||
		len(retry.Order.Discounts) != 1 || retry.Order.Discounts[0].Code != promo.Code {
		t.Fatalf("checkout of the same cart after the failed order: %+v", retry)
	}
	if got := s.stock(t); got != s.initial-crashQty {
		t.Fatalf("stock = %d after the retry, want %d", got, s.initial-crashQty)
	}
	s.checkInvariants(t, order)
}

// crashOneOfTwo: two instances share the database; the one serving a checkout dies
// after the charge, the other (which takes over the recovery lease) settles the order,
// once.
func crashOneOfTwo(t *testing.T, bin string) {
	s := newCrashShop(t, 10)
	// a takes the recovery lease first and holds it until it dies, so b settles the
	// order only after taking the lease over from a dead holder. a's lease lasts 15 s
	// (3 x 5 s), so a loaded machine delaying a renewal does not hand it to b early.
	a := s.start(bin, merge(notRecovering, map[string]string{"BOOKSTORE_FAILPOINT_AFTER_CHARGE": "1m", "PSP_TIMEOUT": "1s",
		"CHECKOUT_RECOVER_EVERY": "5s"}))
	eventually(t, "a to hold the recovery lease", func() (bool, error) {
		return s.count(t, `SELECT count(*) FROM relay_leases WHERE name = 'checkout-recovery' AND expires_at > now()`) == 1, nil
	})
	var holder uuid.UUID
	if err := s.db.Pool.QueryRow(bg(), `SELECT holder FROM relay_leases WHERE name = 'checkout-recovery'`).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	b := s.start(bin, recovering)
	cartID := a.guestCart(t, s.bookID, crashQty)
	stuck := a.checkoutAsync(checkoutInput(cartID, uuid.NewString(), "tok_visa"))
	order := s.waitOrder(t)
	eventually(t, "a to stall after the charge", func() (bool, error) {
		return strings.Contains(a.logText(), "stalling before tx 2"), nil
	})
	// While a lives, b's loop does not run: the order stays PENDING although older
	// than b's threshold. (Not a timing assertion: the lease row names a.)
	var still uuid.UUID
	if err := s.db.Pool.QueryRow(bg(), `SELECT holder FROM relay_leases WHERE name = 'checkout-recovery'`).Scan(&still); err != nil || still != holder {
		t.Fatalf("the lease moved from a (%s) to %s while a was alive: %v", holder, still, err)
	}
	a.kill()
	<-stuck
	s.waitStatus(t, order, bookstore.OrderPaid)
	var now uuid.UUID
	if err := s.db.Pool.QueryRow(bg(), `SELECT holder FROM relay_leases WHERE name = 'checkout-recovery'`).Scan(&now); err != nil || now == holder {
		t.Fatalf("the order was settled but the lease is still a's (%s): %v", now, err)
	}
	// The log line follows the settlement's commit, which waitStatus saw: wait for it.
	eventually(t, "b to log settling the order", func() (bool, error) {
		return strings.Contains(b.logText(), "checkout recovery settled an order"), nil
	})
	// b keeps working: a new checkout through b pays at once.
	res := b.checkout(t, checkoutInput(b.guestCart(t, s.bookID, 1), uuid.NewString(), "tok_visa"))
	if res.Order == nil || !isPaid(res.Order.Status) {
		t.Fatalf("checkout through b: %+v", res)
	}
	if got := s.stock(t); got != s.initial-crashQty-1 {
		t.Fatalf("stock = %d, want %d", got, s.initial-crashQty-1)
	}
	s.checkInvariants(t, order)
}

// buildBookstore builds the binary once for all the crash tests (with -race when the
// tests run with it).
func buildBookstore(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bookstore")
	args := []string{"build", "-o", bin}
	if raceBuild {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// crashShop is a fresh database with one book in stock and the keys every instance of
// the shop shares.
type crashShop struct {
	t       *testing.T
	url     string
	vars    map[string]string
	db      *store.DB
	book    uuid.UUID
	bookID  string
	initial int64
}

func newCrashShop(t *testing.T, stock int64) *crashShop {
	t.Helper()
	s := &crashShop{t: t, url: testdb.NewURL(t), initial: stock}
	s.vars = testPayments(withKeys(t, map[string]string{"DATABASE_URL": s.url}))
	var out bytes.Buffer
	if err := run(bg(), []string{"seed", "--books", "3"}, env(s.vars), &out, &out); err != nil {
		t.Fatalf("seed: %v\n%s", err, out.String())
	}
	db, err := store.Open(bg(), s.url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	s.db = db
	if err := db.Pool.QueryRow(bg(), `SELECT id FROM books ORDER BY id LIMIT 1`).Scan(&s.book); err != nil {
		t.Fatal(err)
	}
	have, err := db.Inventory.Stock(bg(), []uuid.UUID{s.book})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Inventory.SetStock(bg(), s.book, stock, have[s.book], "crash test", nil); err != nil {
		t.Fatal(err)
	}
	s.bookID = base64.RawURLEncoding.EncodeToString([]byte("Book:" + s.book.String()))
	return s
}

// proc is a running bookstore binary.
type proc struct {
	addr   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

// start runs `bookstore serve` on the shop's database with extra settings and waits
// until it is ready. The process is killed when the test ends, and its log shown if
// the test failed.
func (s *crashShop) start(bin string, extra map[string]string) *proc {
	t := s.t
	t.Helper()
	dir := t.TempDir()
	p := &proc{addr: freeAddr(t), log: filepath.Join(dir, "bookstore.log"), exited: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p.cmd = exec.Command(bin, "serve", "--addr", p.addr)
	// Only the shop's settings: nothing from the test's environment (a REDIS_URL, say)
	// reaches the process. TMPDIR holds its throwaway search index.
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir}
	for k, v := range merge(s.vars, extra) {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("log of the bookstore on %s:\n%s", p.addr, p.logText())
		}
	})
	eventually(t, "the bookstore to be ready", func() (bool, error) {
		select {
		case <-p.exited:
			return false, fmt.Errorf("the bookstore exited: %s\n%s", p.cmd.ProcessState, p.logText())
		default:
		}
		resp, err := http.Get("http://" + p.addr + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

func (p *proc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

type gqlError struct {
	Message    string
	Extensions struct{ Code string }
}

func (p *proc) graphql(c context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(c, http.MethodPost, "http://"+p.addr+"/graphql", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var r struct {
		Data   json.RawMessage
		Errors []gqlError
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, raw)
	}
	if len(r.Errors) > 0 {
		return fmt.Errorf("graphql errors: %+v", r.Errors)
	}
	return json.Unmarshal(r.Data, out)
}

func (p *proc) guestCart(t *testing.T, bookID string, qty int, codes ...string) string {
	t.Helper()
	var out struct {
		CartCreate struct {
			Cart       struct{ ID string }
			UserErrors []bookstore.Error
		}
	}
	in := map[string]any{"lines": []map[string]any{{"bookId": bookID, "quantity": qty}}, "discountCodes": codes}
	if codes == nil {
		in["discountCodes"] = []string{}
	}
	if err := p.graphql(bg(), `mutation($in: CartCreateInput!) { cartCreate(input: $in) { cart { id } userErrors { code message } } }`,
		map[string]any{"in": in}, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.CartCreate.UserErrors) > 0 || out.CartCreate.Cart.ID == "" {
		t.Fatalf("cartCreate: %+v", out.CartCreate)
	}
	return out.CartCreate.Cart.ID
}

// cartGone reports whether the guest cart is gone (NOT_FOUND or null).
func (p *proc) cartGone(t *testing.T, id string) bool {
	t.Helper()
	var out struct{ Cart *struct{ ID string } }
	err := p.graphql(bg(), `query($id: ID!) { cart(id: $id) { id } }`, map[string]any{"id": id}, &out)
	if err != nil {
		if strings.Contains(err.Error(), "NOT_FOUND") {
			return true
		}
		t.Fatal(err)
	}
	return out.Cart == nil
}

type checkoutOrder struct {
	ID        string
	Number    string
	Status    bookstore.OrderStatus
	Discounts []struct{ Code string }
	Payment   struct {
		Status string
		Last4  string
	}
}

type checkoutResult struct {
	Order       *checkoutOrder
	AccessToken string
	UserErrors  []bookstore.Error
}

const checkoutMutation = `mutation($in: CheckoutInput!) { checkout(input: $in) {
  order { id number status discounts { code } payment { status last4 } } accessToken userErrors { code message } } }`

func checkoutInput(cartID, key, token string) map[string]any {
	return map[string]any{"cartId": cartID, "idempotencyKey": key, "email": "crash@example.com",
		"shippingAddress": map[string]any{"recipient": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "country": "GB"},
		"shippingMethod":  "STANDARD", "payment": map[string]any{"method": "CARD", "token": token}}
}

func (p *proc) checkout(t *testing.T, in map[string]any) checkoutResult {
	t.Helper()
	var out struct{ Checkout checkoutResult }
	if err := p.graphql(bg(), checkoutMutation, map[string]any{"in": in}, &out); err != nil {
		t.Fatal(err)
	}
	return out.Checkout
}

// checkoutAsync sends a checkout that is expected never to answer: it reports the
// request's error (nil if it answered after all).
func (p *proc) checkoutAsync(in map[string]any) <-chan error {
	done := make(chan error, 1)
	go func() {
		var out struct{ Checkout checkoutResult }
		done <- p.graphql(context.Background(), checkoutMutation, map[string]any{"in": in}, &out)
	}()
	return done
}

func (p *proc) order(t *testing.T, id, email, token string) *checkoutOrder {
	t.Helper()
	var out struct{ Order *checkoutOrder }
	if err := p.graphql(bg(), `query($id: ID!, $email: String, $token: String) { order(id: $id, email: $email, accessToken: $token) {
	  id number status discounts { code } payment { status last4 } } }`,
		map[string]any{"id": id, "email": email, "token": token}, &out); err != nil {
		t.Fatal(err)
	}
	return out.Order
}

// waitOrder waits for tx 1 to place the shop's (only) order and returns its id.
func (s *crashShop) waitOrder(t *testing.T) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	eventually(t, "the order to be placed", func() (bool, error) {
		return s.db.Pool.QueryRow(bg(), `SELECT id FROM orders`).Scan(&id) == nil, nil
	})
	return id
}

func (s *crashShop) status(t *testing.T, order uuid.UUID) bookstore.OrderStatus {
	t.Helper()
	var st string
	if err := s.db.Pool.QueryRow(bg(), `SELECT status FROM orders WHERE id = $1`, order).Scan(&st); err != nil {
		t.Fatal(err)
	}
	return bookstore.OrderStatus(st)
}

func (s *crashShop) waitStatus(t *testing.T, order uuid.UUID, want bookstore.OrderStatus) {
	t.Helper()
	eventually(t, "the order to become "+string(want), func() (bool, error) {
		st := s.status(t, order)
		if !sameStage(st, want) && st != bookstore.OrderPendingPayment {
			return false, fmt.Errorf("the order became %s, want %s", st, want)
		}
		return sameStage(st, want), nil
	})
}

// sameStage: got is want, or, for want PAID, a status the carrier moves a paid order
// on to (the serve under test ships paid orders at once, so PAID may last only a
// moment).
func sameStage(got, want bookstore.OrderStatus) bool {
	if want == bookstore.OrderPaid {
		return isPaid(got)
	}
	return got == want
}

func isPaid(st bookstore.OrderStatus) bool {
	switch st {
	case bookstore.OrderPaid, bookstore.OrderFulfilling, bookstore.OrderShipped, bookstore.OrderDelivered:
		return true
	}
	return false
}

// paidStatuses is isPaid in SQL.
const paidStatuses = `('PAID', 'FULFILLING', 'SHIPPED', 'DELIVERED')`

func (s *crashShop) stock(t *testing.T) int64 {
	t.Helper()
	have, err := s.db.Inventory.Stock(bg(), []uuid.UUID{s.book})
	if err != nil {
		t.Fatal(err)
	}
	return have[s.book]
}

func (s *crashShop) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.Pool.QueryRow(bg(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkInvariants checks what must hold after every crash and recovery: sold plus
// remaining is the initial stock, and the stock ledger agrees; each paid order has
// exactly one succeeded charge of its total and each failed one none; every order was
// settled once (one settle event, one stock take, at most one restore); no order is
// left PENDING_PAYMENT. crashed is the order the dead process left behind.
func (s *crashShop) checkInvariants(t *testing.T, crashed uuid.UUID) {
	t.Helper()
	sold := s.count(t, `SELECT COALESCE(sum(l.quantity), 0) FROM order_lines l JOIN orders o ON o.id = l.order_id
		WHERE l.book_id = $1 AND o.status IN ('PAID', 'FULFILLING', 'SHIPPED', 'DELIVERED', 'PENDING_PAYMENT')`, s.book)
	if left := s.stock(t); int64(sold)+left != s.initial {
		t.Errorf("sold %d + remaining %d != initial %d", sold, left, s.initial)
	}
	if sum := s.count(t, `SELECT COALESCE(sum(delta), 0) FROM stock_movements WHERE book_id = $1`, s.book); int64(sum) != s.stock(t) {
		t.Errorf("the stock ledger sums to %d, the stock is %d", sum, s.stock(t))
	}
	if n := s.count(t, `SELECT count(*) FROM orders WHERE status = 'PENDING_PAYMENT'`); n != 0 {
		t.Errorf("%d orders still PENDING_PAYMENT", n)
	}
	if n := s.count(t, `SELECT count(*) FROM orders o WHERE o.status IN `+paidStatuses+` AND (SELECT count(*) FROM test_psp_charges c
		WHERE c.idempotency_key = o.id::TEXT AND c.status = 'SUCCEEDED' AND c.amount_cents = o.total_cents) <> 1`); n != 0 {
		t.Errorf("%d paid orders without exactly one succeeded charge of their total", n)
	}
	if n := s.count(t, `SELECT count(*) FROM orders o JOIN test_psp_charges c ON c.idempotency_key = o.id::TEXT
		WHERE o.status = 'PAYMENT_FAILED' AND c.status <> 'FAILED'`); n != 0 {
		t.Errorf("%d failed orders with money taken", n)
	}
	if n := s.count(t, `SELECT count(*) FROM test_psp_charges c WHERE c.status = 'SUCCEEDED'`); n != s.count(t, `SELECT count(*) FROM orders WHERE status IN `+paidStatuses) {
		t.Errorf("%d succeeded charges for a different number of paid orders", n)
	}
	if n := s.count(t, `SELECT count(*) FROM orders o WHERE (SELECT count(*) FROM outbox e WHERE e.aggregate_id = o.id
		AND e.topic IN ('order_paid', 'order_payment_failed')) <> 1`); n != 0 {
		t.Errorf("%d orders not settled exactly once (settle events)", n)
	}
	if n := s.count(t, `SELECT count(*) FROM orders o WHERE
		(SELECT count(*) FROM stock_movements m WHERE m.ref = o.id AND m.delta < 0) <> 1 OR
		(SELECT count(*) FROM stock_movements m WHERE m.ref = o.id AND m.delta > 0) <> CASE o.status WHEN 'PAYMENT_FAILED' THEN 1 ELSE 0 END`); n != 0 {
		t.Errorf("%d orders whose stock was taken or given back other than once", n)
	}
	if n := s.count(t, `SELECT count(*) FROM orders WHERE id = $1`, crashed); n != 1 {
		t.Errorf("the crashed order is gone")
	}
}

// eventually polls cond until it holds, fails, or a minute passes (the machine is
// shared; the conditions are met in well under a second when it is idle).
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func bg() context.Context { return context.Background() }
