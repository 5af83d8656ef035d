package identity_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/identity"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

// countingLimiter counts the events it was asked about.
type countingLimiter struct {
	auth.Limiter
	n atomic.Int64
}

func (c *countingLimiter) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	c.n.Add(1)
	return c.Limiter.Allow(ctx, key)
}

func limiter(t testing.TB, l auth.Limit) *auth.LocalLimiter {
	t.Helper()
	ll, err := auth.NewLocalLimiter(l, auth.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ll
}

func wantField(t testing.TB, err error, field string) {
	t.Helper()
	var be *bookstore.Error
	if !errors.As(err, &be) || be.Code != bookstore.CodeBadUserInput || be.Field != field {
		t.Fatalf("error %v, want BAD_USER_INPUT on %q", err, field)
	}
}

// An oversized email or password is refused as bad input before any throttle is spent,
// any normalisation runs or any hash is computed: an anonymous request cannot buy
// seconds of CPU (a 960 KB email of decomposed accents took 0.38 s before).
func TestLoginRefusesOversizedInputBeforeAnyWork(t *testing.T) {
	db := testdb.New(t)
	ip := &countingLimiter{Limiter: limiter(t, auth.PerMinute(1000))}
	e := newEnv(t, db, func(c *identity.Config) { c.LoginPerIP = ip })
	ctx := context.Background()
	huge := strings.Repeat("e\u0301", 480_000) + "@example.com"
	_, err := e.svc.Login(ctx, huge, password, "198.51.100.7")
	wantField(t, err, "email")
	_, err = e.svc.Login(ctx, strings.Repeat("a", 255)+"@example.com", password, "198.51.100.7")
	wantField(t, err, "email")
	_, err = e.svc.Login(ctx, "ann@example.com", strings.Repeat("p", 129), "198.51.100.7")
	wantField(t, err, "password")
	// Register and login answer an over-long email alike, whatever its length.
	for _, n := range []int{255, 300, 1000} {
		long := strings.Repeat("a", n-len("@example.com")) + "@example.com"
		_, lerr := e.svc.Login(ctx, long, password, "198.51.100.7")
		_, rerr := e.svc.Register(ctx, identity.RegisterInput{Email: long, Name: "N", Password: password}, "198.51.100.8")
		wantField(t, lerr, "email")
		wantField(t, rerr, "email")
		if lerr.Error() != rerr.Error() {
			t.Fatalf("a %d-byte email: login says %q, register %q", n, lerr, rerr)
		}
	}
	_, err = e.svc.Login(ctx, "ann@example.com", strings.Repeat("e\u0301", 100_000), "198.51.100.7")
	wantField(t, err, "password")
	if n := ip.n.Load(); n != 0 {
		t.Fatalf("oversized logins reached the throttle %d times", n)
	}
	if st := e.cfg.Hasher.Stats(); st.PeakInFlight != 0 {
		t.Fatalf("oversized logins hashed: %+v", st)
	}
	// Registration too, for every oversized field at once.
	_, err = e.svc.Register(ctx, identity.RegisterInput{Email: huge, Name: strings.Repeat("n", 1<<20),
		Password: strings.Repeat("p", 1<<20)}, "198.51.100.7")
	fields := userErrorFields(err)
	if strings.Join(fields, ",") != "email,name,password" {
		t.Fatalf("oversized registration: fields %v (%v)", fields, err)
	}
}

func userErrorFields(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var be *bookstore.Error
		if errors.As(err, &be) {
			out = append(out, be.Field)
		}
	}
	walk(err)
	return out
}

// Register reports every invalid field, not only the first.
func TestRegisterReportsEveryInvalidField(t *testing.T) {
	e := newEnv(t, testdb.New(t), nil)
	callMe := "call me"
	_, err := e.svc.Register(context.Background(), identity.RegisterInput{
		Email: "not an email", Name: "", Password: "short", Phone: &callMe}, "192.0.2.1")
	if got := strings.Join(userErrorFields(err), ","); got != "email,name,phone,password" {
		t.Fatalf("fields %q (%v)", got, err)
	}
	wantCode(t, err, bookstore.CodeBadUserInput)
}

// An attacker guessing at an account from one IP is throttled there, but the owner keeps
// signing in from elsewhere; successful logins count nothing, however many.
func TestAttackerCannotLockTheOwnerOut(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, func(c *identity.Config) {
			c.LoginPerIP = limiter(t, auth.Limit{Rate: 1, Period: time.Hour, Burst: 100})
			c.LoginPerAccountIP = limiter(t, auth.Limit{Rate: 1, Period: time.Hour, Burst: 3})
			c.LoginPerAccount = limiter(t, auth.Limit{Rate: 1, Period: time.Hour, Burst: 10})
		})
		register(t, e, ann())
		const attacker, owner = "203.0.113.66", "198.51.100.20"
		for i := range 3 {
			_, err := e.svc.Login(ctx, "ann.reader@example.com", fmt.Sprint("wrong guess ", i), attacker)
			wantCode(t, err, bookstore.CodeUnauthenticated)
		}
		_, err := e.svc.Login(ctx, "ann.reader@example.com", "another wrong guess", attacker)
		wantCode(t, err, auth.CodeRateLimited)
		// Even the right password is throttled from the attacker's address...
		_, err = e.svc.Login(ctx, "ann.reader@example.com", password, attacker)
		wantCode(t, err, auth.CodeRateLimited)
		// ...but not from the owner's, and successes never run out.
		for range 20 {
			if _, err := e.svc.Login(ctx, "Ann.Reader@example.com", password, owner); err != nil {
				t.Fatalf("owner's login: %v", err)
			}
		}
		// The loose per-email limit still caps a distributed guess: 10 failures from
		// anywhere (3 were spent above), then every address is throttled.
		for i := range 7 {
			_, err := e.svc.Login(ctx, "ann.reader@example.com", "wrong", fmt.Sprintf("192.0.2.%d", 10+i))
			wantCode(t, err, bookstore.CodeUnauthenticated)
		}
		_, err = e.svc.Login(ctx, "ann.reader@example.com", "wrong", "192.0.2.99")
		wantCode(t, err, auth.CodeRateLimited)
	})
}

// One client signing in to its own account in a loop (successes, which the failure
// limits refund) takes only its share of the hashing: another customer's correct
// password still signs in, and the loop is the one answered RATE_LIMITED.
func TestOwnLoginLoopCannotStarveOthers(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, testdb.New(t), func(c *identity.Config) {
		c.HashBudget = limiter(t, auth.Limit{Rate: 1, Period: time.Hour, Burst: 20})
		c.HashPerIP = nil // the defaults under test
		c.HashPerAccount = limiter(t, auth.PerMinute(10_000))
	})
	register(t, e, ann())
	bob := ann()
	bob.Email, bob.Name = "bob@example.com", "Bob"
	register(t, e, bob)
	const looper, other = "203.0.113.7", "198.51.100.8"
	var ok, limited int
	for range 30 {
		_, err := e.svc.Login(ctx, "ann.reader@example.com", password, looper)
		switch bookstore.ErrorCode(err) {
		case "":
			ok++
		case auth.CodeRateLimited:
			limited++
		default:
			t.Fatalf("login: %v", err)
		}
	}
	if limited == 0 || ok >= 20 {
		t.Fatalf("the loop signed in %d times, throttled %d: want it held to its per-IP share", ok, limited)
	}
	if _, err := e.svc.Login(ctx, "bob@example.com", password, other); err != nil {
		t.Fatalf("another customer's login after the loop: %v", err)
	}
}

// The same bound per account: one account signed in to from many addresses.
func TestHashesPerAccountAreBounded(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, testdb.New(t), func(c *identity.Config) { c.HashPerAccount = nil })
	register(t, e, ann())
	limited := 0
	for i := range 20 {
		_, err := e.svc.Login(ctx, "ann.reader@example.com", password, fmt.Sprintf("192.0.2.%d", i+1))
		if bookstore.ErrorCode(err) == auth.CodeRateLimited {
			limited++
		} else if err != nil {
			t.Fatalf("login: %v", err)
		}
	}
	if limited == 0 {
		t.Fatal("20 logins to one account in a row were never throttled")
	}
}

// A login refused by the loose per-email limit gives back the strict (email, IP) token
// it took: while a distributed guess holds the email's limit, the owner's attempts do
// not use up their own budget.
func TestLooseLimitRefusalKeepsTheStrictToken(t *testing.T) {
	ctx := context.Background()
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	lim := func(l auth.Limit) auth.Limiter {
		ll, err := auth.NewLocalLimiter(l, auth.LocalOptions{Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		return ll
	}
	e := newEnv(t, testdb.New(t), func(c *identity.Config) {
		c.LoginPerAccountIP = lim(auth.Limit{Rate: 1, Period: time.Hour, Burst: 3})
		c.LoginPerAccount = lim(auth.Limit{Rate: 1, Period: time.Minute, Burst: 2})
	})
	register(t, e, ann())
	for i := range 2 {
		_, err := e.svc.Login(ctx, "ann.reader@example.com", "wrong guess", fmt.Sprintf("203.0.113.%d", i+1))
		wantCode(t, err, bookstore.CodeUnauthenticated)
	}
	const owner = "198.51.100.20"
	for range 5 {
		_, err := e.svc.Login(ctx, "ann.reader@example.com", password, owner)
		wantCode(t, err, auth.CodeRateLimited)
	}
	now.Add(int64(time.Minute)) // the loose limit has one token again
	if _, err := e.svc.Login(ctx, "ann.reader@example.com", password, owner); err != nil {
		t.Fatalf("the owner's login once the loose limit refilled: %v", err)
	}
}

// A flood of logins never runs more hashes than the bound, queues only a few and turns
// the rest away at once as RATE_LIMITED, so the CPU the catalog needs stays free.
func TestLoginFloodIsBoundedAndFailsFast(t *testing.T) {
	db := testdb.New(t)
	hasher, err := auth.NewHasherWith(auth.PasswordParams{Memory: 8 * 1024, Iterations: 2, Parallelism: 2, SaltLength: 16, KeyLength: 32},
		auth.HashLimits{Concurrent: 1, Queue: 2, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, db, func(c *identity.Config) { c.Hasher = hasher })
	var wg sync.WaitGroup
	var limited, unauth atomic.Int64
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.svc.Login(context.Background(), fmt.Sprintf("nobody%d@example.com", i), "wrong password here", "198.51.100.1")
			switch bookstore.ErrorCode(err) {
			case auth.CodeRateLimited:
				limited.Add(1)
			case bookstore.CodeUnauthenticated:
				unauth.Add(1)
			default:
				t.Errorf("login: %v", err)
			}
		}()
	}
	wg.Wait()
	st := hasher.Stats()
	if st.PeakInFlight != 1 || st.InFlight != 0 || st.Waiting != 0 {
		t.Fatalf("hasher stats %+v, want at most 1 hash at once and none left", st)
	}
	if limited.Load() == 0 || unauth.Load() == 0 || st.Busy != limited.Load() {
		t.Fatalf("%d RATE_LIMITED, %d UNAUTHENTICATED, busy %d: want some of each, busy = limited", limited.Load(), unauth.Load(), st.Busy)
	}
}

// The per-instance hash budget turns logins away once spent, whoever asks.
func TestHashBudget(t *testing.T) {
	e := newEnv(t, testdb.New(t), func(c *identity.Config) {
		c.HashBudget = limiter(t, auth.Limit{Rate: 1, Period: time.Hour, Burst: 2})
	})
	ctx := context.Background()
	for i := range 2 {
		_, err := e.svc.Login(ctx, fmt.Sprintf("x%d@example.com", i), "wrong password", fmt.Sprintf("192.0.2.%d", i))
		wantCode(t, err, bookstore.CodeUnauthenticated)
	}
	_, err := e.svc.Login(ctx, "y@example.com", "wrong password", "192.0.2.50")
	wantCode(t, err, auth.CodeRateLimited)
}

// Every way a session ends puts it in the revocation set at once, in the database set
// and in the Redis one.
func TestEndedSessionsAreRevoked(t *testing.T) {
	for _, withRedis := range []bool{false, true} {
		t.Run(fmt.Sprint("redis=", withRedis), func(t *testing.T) {
			db := testdb.New(t)
			var rev *identity.Revocations
			e := newEnv(t, db, func(c *identity.Config) {
				rc := identity.RevocationConfig{DB: db, AccessTTL: time.Minute, CacheTTL: time.Hour}
				if withRedis {
					rc.Redis = testdb.Redis(t)
				}
				rev = identity.NewRevocations(rc)
				c.Revocations = rev
			})
			// Another instance's view: no shared cache, so it reads Redis or the database.
			oc := identity.RevocationConfig{DB: db, AccessTTL: time.Minute, CacheTTL: time.Millisecond}
			if withRedis {
				oc.Redis = testdb.Redis(t)
			}
			other := identity.NewRevocations(oc)
			ctx := context.Background()
			check := func(s *identity.Session, want bool) {
				t.Helper()
				id, err := e.tokens.Verify(s.AccessToken)
				if err != nil {
					t.Fatal(err)
				}
				for name, r := range map[string]*identity.Revocations{"this": rev, "other": other} {
					time.Sleep(2 * time.Millisecond) // past other's cache
					got, err := r.Revoked(ctx, id)
					if err != nil || got != want {
						t.Fatalf("%s instance: revoked = %v, %v; want %v", name, got, err, want)
					}
				}
			}
			in := ann()
			in.Email = fmt.Sprintf("rev%v@example.com", withRedis)
			s1 := register(t, e, in)
			check(s1, false)
			if err := e.svc.Logout(ctx, s1.RefreshToken); err != nil {
				t.Fatal(err)
			}
			check(s1, true)

			// Refresh-token reuse revokes the session, including the token just issued.
			s2, err := e.svc.Login(ctx, in.Email, password, "192.0.2.1")
			if err != nil {
				t.Fatal(err)
			}
			s3, err := e.svc.Refresh(ctx, s2.RefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			check(s3, false)
			if _, err := e.svc.Refresh(ctx, s2.RefreshToken); err == nil {
				t.Fatal("reused refresh token accepted")
			}
			check(s3, true)

			// A password change ends every other session.
			s4, err := e.svc.Login(ctx, in.Email, password, "192.0.2.1")
			if err != nil {
				t.Fatal(err)
			}
			s5, err := e.svc.ChangePassword(ctx, s4.Customer.ID, password, "a completely new passphrase")
			if err != nil {
				t.Fatal(err)
			}
			check(s4, true)
			check(s5, false)

			// Promotion (and so demotion) ends the sessions that carry the old role.
			if _, err := e.svc.CreateAdmin(ctx, identity.RegisterInput{Email: in.Email, Password: "a completely new passphrase", Name: in.Name}); err != nil {
				t.Fatal(err)
			}
			check(s5, true)
		})
	}
}

// A password change is one transaction with the end of the old sessions, and a login's
// rehash never overwrites a hash that changed meanwhile.
func TestPasswordWritesAreConditional(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		s := register(t, e, ann())
		row, err := db.Customers.ByID(ctx, s.Customer.ID)
		if err != nil {
			t.Fatal(err)
		}
		// A stale hash: nothing changes, the session survives.
		if _, err := db.Customers.ChangePassword(ctx, row.ID, "stale", "new", time.Now()); !errors.Is(err, store.ErrPasswordChanged) {
			t.Fatalf("change from a stale hash: %v", err)
		}
		if ok, err := db.Customers.ReplacePasswordHash(ctx, row.ID, "stale", "new"); ok || err != nil {
			t.Fatalf("rehash from a stale hash: %v, %v", ok, err)
		}
		if fam, _ := db.RefreshTokens.FamilyRevoked(ctx, mustSession(t, e, s)); fam {
			t.Fatal("a refused password change revoked the session")
		}
		after, _ := db.Customers.ByID(ctx, row.ID)
		if after.PasswordHash != row.PasswordHash {
			t.Fatal("a refused password write changed the hash")
		}
		// The real change: new hash and revoked sessions together.
		fams, err := db.Customers.ChangePassword(ctx, row.ID, row.PasswordHash, "new", time.Now())
		if err != nil || len(fams) != 1 || fams[0] != mustSession(t, e, s) {
			t.Fatalf("change password: %v, %v", fams, err)
		}
		if fam, _ := db.RefreshTokens.FamilyRevoked(ctx, fams[0]); !fam {
			t.Fatal("session not revoked by the password change")
		}
	})
}

func mustSession(t testing.TB, e *env, s *identity.Session) uuid.UUID {
	t.Helper()
	id, err := e.tokens.Verify(s.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return id.SessionID
}

// The address-book cap holds under concurrent inserts.
func TestAddressCapUnderConcurrency(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, nil)
		ctx := context.Background()
		s := register(t, e, ann())
		addr := identity.Address{Recipient: "R", Line1: "L", City: "C", Country: "FR"}
		for range 15 {
			if _, err := e.svc.AddAddress(ctx, s.Customer.ID, addr); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		var ok, full atomic.Int64
		for range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := e.svc.AddAddress(ctx, s.Customer.ID, addr)
				switch bookstore.ErrorCode(err) {
				case "":
					ok.Add(1)
				case bookstore.CodeBadUserInput:
					full.Add(1)
				default:
					t.Errorf("add address: %v", err)
				}
			}()
		}
		wg.Wait()
		as, err := e.svc.Addresses(ctx, s.Customer.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(as) != 20 || ok.Load() != 5 || full.Load() != 25 {
			t.Fatalf("%d addresses stored, %d added, %d refused; want 20, 5, 25", len(as), ok.Load(), full.Load())
		}
	})
}

// Real phone numbers are accepted even when their digits pass Luhn; card numbers are not.
func TestPhonesAreNotCards(t *testing.T) {
	e := newEnv(t, testdb.New(t), nil)
	for i, p := range []string{"+55 11 91234-5676", "+49 1512 3456787", "+5511912345676", "+1 (650) 253-0000",
		"+55\u00a011\u00a091234-5676", "+49\u202f1512\u202f3456787"} {
		in := ann()
		in.Email, in.Phone = fmt.Sprintf("phone%d@example.com", i), &p
		want := strings.NewReplacer("\u00a0", " ", "\u202f", " ").Replace(p) // stored with plain spaces
		if s := register(t, e, in); s.Customer.Phone == nil || *s.Customer.Phone != want {
			t.Fatalf("phone %q stored as %v", p, s.Customer.Phone)
		}
	}
	// A number meant as a phone that does not parse is told the format, not "card".
	for _, p := range []string{"+4111111111111111", "+55\u00a011\u00a091234", "+999 1234567"} {
		in := ann()
		in.Email, in.Phone = "bad.phone@example.com", &p
		_, err := e.svc.Register(context.Background(), in, "192.0.2.1")
		wantField(t, err, "phone")
		if !strings.Contains(err.Error(), "international phone number") {
			t.Fatalf("phone %q: %v, want the phone-format message", p, err)
		}
	}
	// "+4929 1234 5678 9015" is a Visa number (Luhn-valid) and a valid German number.
	for _, p := range []string{"378282246310005", "+4111111111111111", "4111 1111 1111 1111", "+44 20", "+999 1234567",
		"+4929 1234 5678 9015", "+4929123456789015", "+49 (29) 1234-5678-9015"} {
		in := ann()
		in.Email, in.Phone = "card@example.com", &p
		_, err := e.svc.Register(context.Background(), in, "192.0.2.1")
		wantField(t, err, "phone")
	}
}

// Countries are ISO 3166-1 alpha-2 codes actually assigned.
func TestAddressCountries(t *testing.T) {
	e := newEnv(t, testdb.New(t), nil)
	s := register(t, e, ann())
	for _, c := range []string{"UK", "EU", "XX", "ZZ", "UN", "AA", "QZ", "G1", "YU", "SU", "NT", "AN", "CS", "DD", "ZR", "TP", "BU"} {
		_, err := e.svc.AddAddress(context.Background(), s.Customer.ID, identity.Address{Recipient: "R", Line1: "L", City: "C", Country: c})
		wantField(t, err, "country")
	}
	for _, c := range []string{"GB", "us", "BR", "DE", "HK"} {
		if _, err := e.svc.AddAddress(context.Background(), s.Customer.ID, identity.Address{Recipient: "R", Line1: "L", City: "C", Country: c}); err != nil {
			t.Fatalf("country %s: %v", c, err)
		}
	}
}
