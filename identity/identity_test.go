package identity_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/identity"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/pii"
	"github.com/shopfront/bookstore/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a service plus the pieces tests poke at.
type env struct {
	svc    *identity.Service
	db     *store.DB
	tokens *auth.Tokens
	clock  *clock
	cfg    identity.Config
}

func masterKey(t testing.TB, id string) pii.MasterKey {
	t.Helper()
	k, err := pii.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return pii.MasterKey{ID: id, Key: k}
}

var indexKey = bytes.Repeat([]byte{7}, 32)

// newEnv builds a service on db with cheap password hashing; edit lets a test change the
// configuration before the service is made.
func newEnv(t testing.TB, db *store.DB, edit func(*identity.Config)) *env {
	t.Helper()
	c := &clock{t: time.Now().Truncate(time.Second)}
	kr, err := pii.NewKeyring(masterKey(t, "m1"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := pii.NewBlindIndex(indexKey)
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := auth.NewHasher(auth.TestPasswordParams(), 0)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := auth.GenerateSigningKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.NewKeyring(sk)
	if err != nil {
		t.Fatal(err)
	}
	tokens := auth.NewTokens(keys, auth.TokenConfig{Now: c.Now})
	lenient := func() auth.Limiter {
		l, err := auth.NewLocalLimiter(auth.PerMinute(10_000), auth.LocalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	cfg := identity.Config{DB: db, PII: kr, Index: idx, Hasher: hasher, Tokens: tokens, Now: c.Now,
		LoginPerIP: lenient(), LoginPerAccount: lenient(), LoginPerAccountIP: lenient(), RegisterPerIP: lenient(),
		HashBudget: lenient(), HashPerIP: lenient(), HashPerAccount: lenient(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if edit != nil {
		edit(&cfg)
	}
	svc, err := identity.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{svc: svc, db: db, tokens: cfg.Tokens, clock: c, cfg: cfg}
}

const password = "violet staircase under rain"

func ann() identity.RegisterInput {
	phone := "+44 20 7946 0958"
	return identity.RegisterInput{Email: "Ann.Reader@Example.com", Password: password, Name: "Annabel Quillfeather", Phone: &phone}
}

func register(t testing.TB, e *env, in identity.RegisterInput) *identity.Session {
	t.Helper()
	s, err := e.svc.Register(context.Background(), in, "192.0.2.1")
	if err != nil {
		t.Fatalf("register %s: %v", in.Email, err)
	}
	return s
}

func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	if got := bookstore.ErrorCode(err); got != code {
		t.Fatalf("error %v has code %q, want %q", err, got, code)
	}
}

func TestAccountLifecycle(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, nil)
		s := register(t, e, ann())
		if s.Customer.Email != "Ann.Reader@Example.com" || s.Customer.Name != "Annabel Quillfeather" ||
			s.Customer.Phone == nil || *s.Customer.Phone != "+44 20 7946 0958" || s.Customer.Role != auth.RoleCustomer {
			t.Fatalf("registered customer %+v", s.Customer)
		}
		id, err := e.tokens.Verify(s.AccessToken)
		if err != nil {
			t.Fatalf("access token of registration: %v", err)
		}
		if id.CustomerID != s.Customer.ID || id.Role != auth.RoleCustomer || id.SessionID == uuid.Nil {
			t.Fatalf("identity %+v", id)
		}
		if !s.RefreshTokenExpiresAt.Equal(e.clock.Now().Add(auth.DefaultRefreshTTL)) {
			t.Fatalf("refresh expires %v", s.RefreshTokenExpiresAt)
		}

		me, err := e.svc.Customer(ctx, s.Customer.ID)
		if err != nil || me.Email != s.Customer.Email || me.Name != s.Customer.Name || *me.Phone != *s.Customer.Phone {
			t.Fatalf("Customer = %+v, %v", me, err)
		}

		// Login finds the account whatever the email's case and surrounding space.
		l, err := e.svc.Login(ctx, "  ann.reader@EXAMPLE.com ", password, "192.0.2.1")
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		if l.Customer.ID != s.Customer.ID {
			t.Fatal("login found another customer")
		}
		lid, _ := e.tokens.Verify(l.AccessToken)
		if lid.SessionID == id.SessionID {
			t.Fatal("a new login reused the registration's session")
		}

		// Wrong password and unknown email fail alike.
		_, errWrong := e.svc.Login(ctx, "ann.reader@example.com", password+"!", "192.0.2.1")
		_, errUnknown := e.svc.Login(ctx, "nobody@example.com", password, "192.0.2.1")
		wantCode(t, errWrong, bookstore.CodeUnauthenticated)
		wantCode(t, errUnknown, bookstore.CodeUnauthenticated)
		if errWrong.Error() != errUnknown.Error() {
			t.Fatalf("wrong password %q and unknown email %q differ", errWrong, errUnknown)
		}

		// Refresh rotates the refresh token and keeps the session.
		e.clock.Add(time.Minute)
		r, err := e.svc.Refresh(ctx, l.RefreshToken)
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if r.RefreshToken == l.RefreshToken || r.AccessToken == l.AccessToken {
			t.Fatal("refresh returned the same tokens")
		}
		rid, _ := e.tokens.Verify(r.AccessToken)
		if rid.SessionID != lid.SessionID || r.Customer.Email != s.Customer.Email {
			t.Fatalf("refreshed identity %+v / customer %+v", rid, r.Customer)
		}

		// Replaying the spent token ends the session: the fresh token dies too.
		_, err = e.svc.Refresh(ctx, l.RefreshToken)
		wantCode(t, err, bookstore.CodeUnauthenticated)
		_, err = e.svc.Refresh(ctx, r.RefreshToken)
		wantCode(t, err, bookstore.CodeUnauthenticated)

		// The registration's session is unaffected; logout ends it.
		r2, err := e.svc.Refresh(ctx, s.RefreshToken)
		if err != nil {
			t.Fatalf("other session: %v", err)
		}
		if err := e.svc.Logout(ctx, r2.RefreshToken); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Refresh(ctx, r2.RefreshToken)
		wantCode(t, err, bookstore.CodeUnauthenticated)
		// Logout is idempotent and quiet about junk.
		for _, tok := range []string{r2.RefreshToken, "junk", ""} {
			if err := e.svc.Logout(ctx, tok); err != nil {
				t.Fatalf("Logout(%q) = %v", tok, err)
			}
		}
		_, err = e.svc.Refresh(ctx, "junk")
		wantCode(t, err, bookstore.CodeUnauthenticated)
	})
}

func TestRegisterValidation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, func(c *identity.Config) {
			c.RegisterPerIP, _ = auth.NewLocalLimiter(auth.PerMinute(1000), auth.LocalOptions{})
		})
		register(t, e, ann())
		str := func(s string) *string { return &s }
		cases := []struct {
			name  string
			edit  func(*identity.RegisterInput)
			code  string
			field string
		}{
			{"same email, other case", func(in *identity.RegisterInput) { in.Email = " ANN.READER@example.COM" }, bookstore.CodeConflict, "email"},
			{"no email", func(in *identity.RegisterInput) { in.Email = "" }, bookstore.CodeBadUserInput, "email"},
			{"not an email", func(in *identity.RegisterInput) { in.Email = "ann" }, bookstore.CodeBadUserInput, "email"},
			{"display name", func(in *identity.RegisterInput) { in.Email = "Ann <ann@example.com>" }, bookstore.CodeBadUserInput, "email"},
			{"no dot in domain", func(in *identity.RegisterInput) { in.Email = "ann@localhost" }, bookstore.CodeBadUserInput, "email"},
			{"short password", func(in *identity.RegisterInput) { in.Password = "short pass" }, bookstore.CodeBadUserInput, "password"},
			{"password is the email", func(in *identity.RegisterInput) {
				in.Email, in.Password = "bob.builder@example.com", "bob.builder@example.com"
			}, bookstore.CodeBadUserInput, "password"},
			{"common password", func(in *identity.RegisterInput) { in.Password = "123456789012345" }, bookstore.CodeBadUserInput, "password"},
			{"no name", func(in *identity.RegisterInput) { in.Name = "  " }, bookstore.CodeBadUserInput, "name"},
			{"long name", func(in *identity.RegisterInput) { in.Name = strings.Repeat("n", 101) }, bookstore.CodeBadUserInput, "name"},
			{"card in name", func(in *identity.RegisterInput) { in.Name = "Ann 4111 1111 1111 1111" }, bookstore.CodeBadUserInput, "name"},
			{"bad phone", func(in *identity.RegisterInput) { in.Phone = str("call me maybe") }, bookstore.CodeBadUserInput, "phone"},
			{"short phone", func(in *identity.RegisterInput) { in.Phone = str("12345") }, bookstore.CodeBadUserInput, "phone"},
			{"card as phone", func(in *identity.RegisterInput) { in.Phone = str("378282246310005") }, bookstore.CodeBadUserInput, "phone"},
		}
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				in := ann()
				in.Email = fmt.Sprintf("user%d@example.com", i)
				c.edit(&in)
				_, err := e.svc.Register(context.Background(), in, "192.0.2.1")
				var be *bookstore.Error
				if !errors.As(err, &be) || be.Code != c.code || be.Field != c.field {
					t.Fatalf("Register = %v; want %s on %s", err, c.code, c.field)
				}
			})
		}
		// A blank phone is no phone.
		in := ann()
		in.Email, in.Phone = "nophone@example.com", str("  ")
		if s := register(t, e, in); s.Customer.Phone != nil {
			t.Fatalf("blank phone stored as %q", *s.Customer.Phone)
		}
	})
}

// TestNoPlaintextAtRest reads the raw rows of every identity table and looks for the
// personal data in clear, in any case, and hex-encoded.
func TestNoPlaintextAtRest(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, nil)
		s := register(t, e, ann())
		_, err := e.svc.AddAddress(ctx, s.Customer.ID, identity.Address{Recipient: "Annabel Quillfeather",
			Line1: "17 Marrowbone Crescent", City: "Thistlewick", PostalCode: "QX9 4ZZ", Country: "gb"})
		if err != nil {
			t.Fatal(err)
		}
		secrets := []string{"ann.reader@example.com", "ann.reader", "Annabel", "Quillfeather", "7946 0958", "+44 20",
			"Marrowbone", "Thistlewick", "QX9 4ZZ", password, s.RefreshToken}
		for _, table := range []string{"customers", "addresses", "refresh_tokens"} {
			rows, err := db.Pool.Query(ctx, "SELECT * FROM "+table)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for rows.Next() {
				n++
				for i, v := range rows.RawValues() {
					lower := bytes.ToLower(v)
					for _, sec := range secrets {
						for _, form := range []string{strings.ToLower(sec), hex.EncodeToString([]byte(strings.ToLower(sec)))} {
							if bytes.Contains(lower, []byte(form)) {
								t.Errorf("%s column %s holds %q in clear", table, rows.FieldDescriptions()[i].Name, sec)
							}
						}
					}
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatalf("table %s is empty: the test checked nothing", table)
			}
		}
		var hash string
		if err := db.Pool.QueryRow(ctx, "SELECT password_hash FROM customers").Scan(&hash); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(hash, "$argon2id$v=19$") {
			t.Fatalf("password stored as %q", hash)
		}
		// And the service reads it all back.
		addrs, err := e.svc.Addresses(ctx, s.Customer.ID)
		if err != nil || len(addrs) != 1 || addrs[0].Line1 != "17 Marrowbone Crescent" || addrs[0].Country != "GB" {
			t.Fatalf("Addresses = %+v, %v", addrs, err)
		}
	})
}

// TestCiphertextsAreBoundToTheirRow swaps ciphertexts between rows, as an attacker with
// write access to the database might: decryption must fail rather than show one
// customer's data as another's.
func TestCiphertextsAreBoundToTheirRow(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, nil)
		a := register(t, e, ann())
		bIn := ann()
		bIn.Email, bIn.Name = "bob@example.com", "Bob Other"
		b := register(t, e, bIn)
		addr := identity.Address{Recipient: "A", Line1: "1 Road", City: "Town", Country: "GB"}
		if _, err := e.svc.AddAddress(ctx, a.Customer.ID, addr); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.AddAddress(ctx, b.Customer.ID, addr); err != nil {
			t.Fatal(err)
		}
		// Bob's email ciphertext copied over Ann's; Ann's name copied into her email.
		if _, err := db.Pool.Exec(ctx, `UPDATE customers SET email_enc = (SELECT email_enc FROM customers WHERE id = $2) WHERE id = $1`,
			a.Customer.ID, b.Customer.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Customer(ctx, a.Customer.ID); !errors.Is(err, pii.ErrDecrypt) {
			t.Fatalf("swapped email decrypted: %v", err)
		}
		if _, err := db.Pool.Exec(ctx, `UPDATE customers SET email_enc = name_enc WHERE id = $1`, b.Customer.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Customer(ctx, b.Customer.ID); !errors.Is(err, pii.ErrDecrypt) {
			t.Fatalf("name ciphertext decrypted as email: %v", err)
		}
		// Ann's address moved into Bob's book.
		if _, err := db.Pool.Exec(ctx, `UPDATE addresses SET customer_id = $2 WHERE customer_id = $1`, a.Customer.ID, b.Customer.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Addresses(ctx, b.Customer.ID); !errors.Is(err, pii.ErrDecrypt) {
			t.Fatalf("moved address decrypted: %v", err)
		}
	})
}

func TestLoginThrottling(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, func(c *identity.Config) {
			c.LoginPerAccount, _ = auth.NewLocalLimiter(auth.Limit{Rate: 1, Period: time.Hour, Burst: 3}, auth.LocalOptions{})
			c.LoginPerIP, _ = auth.NewLocalLimiter(auth.Limit{Rate: 1, Period: time.Hour, Burst: 6}, auth.LocalOptions{})
		})
		register(t, e, ann())
		for i := range 3 {
			_, err := e.svc.Login(ctx, "ann.reader@example.com", "wrong guess number "+fmt.Sprint(i), "198.51.100.1")
			wantCode(t, err, bookstore.CodeUnauthenticated)
		}
		// The account is throttled, even for the right password and from another IP.
		_, err := e.svc.Login(ctx, "ann.reader@example.com", password, "198.51.100.2")
		wantCode(t, err, auth.CodeRateLimited)
		var te *auth.ThrottledError
		if !errors.As(err, &te) || te.RetryAfter <= 0 {
			t.Fatalf("throttled login: %v", err)
		}
		// Unknown emails are throttled exactly like known ones.
		for range 3 {
			_, err := e.svc.Login(ctx, "ghost@example.com", "wrong guess", "198.51.100.3")
			wantCode(t, err, bookstore.CodeUnauthenticated)
		}
		_, err = e.svc.Login(ctx, "ghost@example.com", "wrong guess", "198.51.100.4")
		wantCode(t, err, auth.CodeRateLimited)
		// The IP that made 3 attempts has 3 left across any accounts, then it is throttled.
		for i := range 3 {
			_, err := e.svc.Login(ctx, fmt.Sprintf("spray%d@example.com", i), "wrong guess", "198.51.100.1")
			wantCode(t, err, bookstore.CodeUnauthenticated)
		}
		_, err = e.svc.Login(ctx, "fresh@example.com", "wrong guess", "198.51.100.1")
		wantCode(t, err, auth.CodeRateLimited)
	})
}

func TestRegisterThrottling(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, func(c *identity.Config) {
			c.RegisterPerIP, _ = auth.NewLocalLimiter(auth.Limit{Rate: 1, Period: time.Hour, Burst: 2}, auth.LocalOptions{})
		})
		for i := range 3 {
			in := ann()
			in.Email = fmt.Sprintf("r%d@example.com", i)
			_, err := e.svc.Register(context.Background(), in, "203.0.113.9")
			if i < 2 && err != nil {
				t.Fatal(err)
			}
			if i == 2 {
				wantCode(t, err, auth.CodeRateLimited)
			}
		}
	})
}

func TestRefreshExpiryAndRoleChange(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, func(c *identity.Config) { c.RefreshTTL, c.SessionTTL = time.Hour, 3*time.Hour })
		s := register(t, e, ann())

		// The role comes from the database at every refresh, not from the old token.
		if err := db.Customers.SetRole(ctx, s.Customer.ID, "ADMIN"); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(50 * time.Minute)
		r, err := e.svc.Refresh(ctx, s.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := e.tokens.Verify(r.AccessToken); !id.IsAdmin() {
			t.Fatalf("refreshed identity %+v, want ADMIN", id)
		}
		// Refreshing within the idle timeout keeps the session alive past the first
		// token's expiry, but never past the absolute session end.
		for range 2 { // at 1h40m and 2h30m
			e.clock.Add(50 * time.Minute)
			if r, err = e.svc.Refresh(ctx, r.RefreshToken); err != nil {
				t.Fatalf("refresh at %v: %v", e.clock.Now(), err)
			}
		}
		sessionEnd := s.RefreshTokenExpiresAt.Add(2 * time.Hour) // sign-in + 3h
		if !r.RefreshTokenExpiresAt.Equal(sessionEnd) {
			t.Fatalf("last refresh token expires %v, want the session end %v", r.RefreshTokenExpiresAt, sessionEnd)
		}
		e.clock.Add(31 * time.Minute) // 3h01m after sign-in, within the token's idle hour
		_, err = e.svc.Refresh(ctx, r.RefreshToken)
		wantCode(t, err, bookstore.CodeUnauthenticated)

		// Idle timeout.
		l, err := e.svc.Login(ctx, "ann.reader@example.com", password, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Add(61 * time.Minute)
		_, err = e.svc.Refresh(ctx, l.RefreshToken)
		wantCode(t, err, bookstore.CodeUnauthenticated)
	})
}

func TestRefreshSameTokenConcurrently(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		s := register(t, e, ann())
		const n = 10
		var wg sync.WaitGroup
		errs := make([]error, n)
		sessions := make([]*identity.Session, n)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				sessions[i], errs[i] = e.svc.Refresh(context.Background(), s.RefreshToken)
			}()
		}
		close(start)
		wg.Wait()
		var winner *identity.Session
		for i, err := range errs {
			if err == nil {
				if winner != nil {
					t.Fatal("two concurrent refreshes of one token succeeded")
				}
				winner = sessions[i]
				continue
			}
			wantCode(t, err, bookstore.CodeUnauthenticated)
		}
		if winner == nil {
			t.Fatal("no refresh succeeded")
		}
		_, err := e.svc.Refresh(context.Background(), winner.RefreshToken)
		wantCode(t, err, bookstore.CodeUnauthenticated)
	})
}

func TestRehashOnLogin(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, nil)
		s := register(t, e, ann())
		stronger := auth.PasswordParams{Memory: 128, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
		hasher, err := auth.NewHasher(stronger, 0)
		if err != nil {
			t.Fatal(err)
		}
		upgraded := newEnv(t, db, func(c *identity.Config) { c.Hasher, c.PII = hasher, e.cfg.PII })
		if _, err := upgraded.svc.Login(ctx, "ann.reader@example.com", password, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		row, _ := db.Customers.ByID(ctx, s.Customer.ID)
		if auth.NeedsRehash(row.PasswordHash, stronger) {
			t.Fatalf("hash not upgraded: %s", row.PasswordHash)
		}
		// The upgraded hash still verifies.
		if _, err := upgraded.svc.Login(ctx, "ann.reader@example.com", password, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestChangePassword(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, nil)
		s := register(t, e, ann())
		other, err := e.svc.Login(ctx, "ann.reader@example.com", password, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		const next = "amber lanterns over the harbour"
		_, err = e.svc.ChangePassword(ctx, s.Customer.ID, "not my password at all", next)
		var be *bookstore.Error
		if !errors.As(err, &be) || be.Field != "currentPassword" {
			t.Fatalf("wrong current password: %v", err)
		}
		_, err = e.svc.ChangePassword(ctx, s.Customer.ID, password, "tooshort")
		wantCode(t, err, bookstore.CodeBadUserInput)
		fresh, err := e.svc.ChangePassword(ctx, s.Customer.ID, password, next)
		if err != nil {
			t.Fatal(err)
		}
		for _, old := range []string{s.RefreshToken, other.RefreshToken} {
			_, err := e.svc.Refresh(ctx, old)
			wantCode(t, err, bookstore.CodeUnauthenticated)
		}
		if _, err := e.svc.Refresh(ctx, fresh.RefreshToken); err != nil {
			t.Fatalf("the new session: %v", err)
		}
		_, err = e.svc.Login(ctx, "ann.reader@example.com", password, "192.0.2.1")
		wantCode(t, err, bookstore.CodeUnauthenticated)
		if _, err := e.svc.Login(ctx, "ann.reader@example.com", next, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLogoutSessionAndEverywhere(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, nil)
		s := register(t, e, ann())
		l, _ := e.svc.Login(ctx, "ann.reader@example.com", password, "192.0.2.1")
		id, _ := e.tokens.Verify(l.AccessToken)
		if err := e.svc.LogoutSession(ctx, id); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.Refresh(ctx, l.RefreshToken)
		wantCode(t, err, bookstore.CodeUnauthenticated)
		if _, err := e.svc.Refresh(ctx, s.RefreshToken); err != nil {
			t.Fatalf("the other session ended too: %v", err)
		}
		l2, _ := e.svc.Login(ctx, "ann.reader@example.com", password, "192.0.2.1")
		if err := e.svc.LogoutAll(ctx, s.Customer.ID); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Refresh(ctx, l2.RefreshToken)
		wantCode(t, err, bookstore.CodeUnauthenticated)
	})
}

func TestAddresses(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, nil)
		s := register(t, e, ann())
		good := identity.Address{Recipient: " Ann ", Line1: "1 Road", Line2: "Flat 4, 111 Main Street", City: "Town", Country: " gb "}
		a, err := e.svc.AddAddress(ctx, s.Customer.ID, good)
		if err != nil {
			t.Fatal(err)
		}
		if a.Recipient != "Ann" || a.Country != "GB" || a.ID == uuid.Nil {
			t.Fatalf("added %+v", a)
		}
		for name, edit := range map[string]func(*identity.Address){
			"no line1":      func(a *identity.Address) { a.Line1 = "" },
			"bad country":   func(a *identity.Address) { a.Country = "GBR" },
			"card in line2": func(a *identity.Address) { a.Line2 = "pay with 4111-1111-1111-1111" },
			"long city":     func(a *identity.Address) { a.City = strings.Repeat("c", 101) },
		} {
			bad := good
			edit(&bad)
			_, err := e.svc.AddAddress(ctx, s.Customer.ID, bad)
			wantCode(t, err, bookstore.CodeBadUserInput)
			_ = name
		}
		for range 19 {
			if _, err := e.svc.AddAddress(ctx, s.Customer.ID, good); err != nil {
				t.Fatal(err)
			}
		}
		_, err = e.svc.AddAddress(ctx, s.Customer.ID, good)
		wantCode(t, err, bookstore.CodeBadUserInput)
		list, err := e.svc.Addresses(ctx, s.Customer.ID)
		if err != nil || len(list) != 20 || list[0].ID != a.ID {
			t.Fatalf("Addresses: %d, %v", len(list), err)
		}
		if err := e.svc.DeleteAddress(ctx, s.Customer.ID, a.ID); err != nil {
			t.Fatal(err)
		}
		wantCode(t, e.svc.DeleteAddress(ctx, uuid.New(), list[1].ID), bookstore.CodeNotFound)
	})
}

// TestMasterKeyRotation: a new master key is prepended, RewrapAll moves every value to
// it, after which the old key can be dropped and everything still decrypts.
func TestMasterKeyRotation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		old, next := masterKey(t, "2024"), masterKey(t, "2025")
		withKeys := func(keys ...pii.MasterKey) *env {
			kr, err := pii.NewKeyring(keys...)
			if err != nil {
				t.Fatal(err)
			}
			return newEnv(t, db, func(c *identity.Config) { c.PII = kr })
		}
		before := withKeys(old)
		var ids []uuid.UUID
		for i := range 3 {
			in := ann()
			in.Email = fmt.Sprintf("rot%d@example.com", i)
			if i == 1 {
				in.Phone = nil
			}
			s := register(t, before, in)
			ids = append(ids, s.Customer.ID)
			if _, err := before.svc.AddAddress(ctx, s.Customer.ID, identity.Address{Recipient: "R", Line1: "L", City: "C", Country: "FR"}); err != nil {
				t.Fatal(err)
			}
		}

		during := withKeys(next, old)
		st, err := during.svc.RewrapAll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Customers != 3 || st.Addresses != 3 {
			t.Fatalf("RewrapAll = %+v, want 3 customers and 3 addresses", st)
		}
		if st, _ := during.svc.RewrapAll(ctx); st != (identity.RewrapStats{}) {
			t.Fatalf("second RewrapAll = %+v, want nothing to do", st)
		}
		var blob []byte
		if err := db.Pool.QueryRow(ctx, `SELECT email_enc FROM customers WHERE id = $1`, ids[0]).Scan(&blob); err != nil {
			t.Fatal(err)
		}
		if kid, _ := pii.KeyID(blob); kid != "2025" {
			t.Fatalf("rewrapped kid %q", kid)
		}

		after := withKeys(next)
		for i, id := range ids {
			c, err := after.svc.Customer(ctx, id)
			if err != nil || c.Email != fmt.Sprintf("rot%d@example.com", i) {
				t.Fatalf("customer %d after retiring the old key: %+v, %v", i, c, err)
			}
			if addrs, err := after.svc.Addresses(ctx, id); err != nil || len(addrs) != 1 || addrs[0].Country != "FR" {
				t.Fatalf("addresses %d after retiring the old key: %v", i, err)
			}
		}
		if _, err := before.svc.Customer(ctx, ids[0]); !errors.Is(err, pii.ErrUnknownKey) {
			t.Fatalf("an instance with only the old key read a rewrapped row: %v", err)
		}
	})
}
