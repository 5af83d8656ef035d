// Package identity is the customer-account service: registration, login, token refresh,
// logout, password change and the address book. It ties together package store
// (ciphertext rows), package pii (encryption and the email blind index) and package auth
// (passwords, tokens, throttling); resolvers call it and never see ciphertext, hashes or
// refresh-token storage.
//
// Personal data is decrypted only in memory and never logged: log lines carry customer
// and session ids only.
package identity

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/pii"
	"github.com/shopfront/bookstore/store"
)

// Default throttles. Token buckets: Burst attempts at once, then Rate per Period. Login
// throttles count failures only: every attempt takes a token before the password is
// checked (so that parallel guesses cannot outrun the limit), and a successful login
// gives its tokens back.
var (
	// DefaultLoginPerIP: 20 failures, then one a minute, per client IP bucket (an IPv4
	// address or an IPv6 /64).
	DefaultLoginPerIP = auth.Limit{Rate: 60, Period: time.Hour, Burst: 20}
	// DefaultLoginPerAccountIP: 5 failures, then one every 6 minutes, per (email, client
	// IP bucket): the strict limit on guessing one account's password from one place.
	DefaultLoginPerAccountIP = auth.Limit{Rate: 10, Period: time.Hour, Burst: 5}
	// DefaultLoginPerAccount: 50 failures, then 60 an hour, per email from anywhere
	// (counted for unregistered emails too, so throttling reveals nothing): the loose
	// limit on a distributed guess, high enough that one attacker's IP (held to 5 by the
	// strict limit, 20 by the IP limit) cannot answer RATE_LIMITED to the account's owner.
	DefaultLoginPerAccount = auth.Limit{Rate: 60, Period: time.Hour, Burst: 50}
	// DefaultHashBudget: password hashes (logins, registrations, password changes) per
	// instance, 40 at once then 10 a second, whoever asks: with hashing bounded to
	// DefaultHashConcurrency this keeps the CPU the catalog needs free.
	DefaultHashBudget = auth.Limit{Rate: 10, Period: time.Second, Burst: 40}
	// DefaultHashPerIP: password hashes per client IP bucket, 6 at once then 2 a second,
	// successes included (never refunded): one client's share of DefaultHashBudget, so
	// that signing in to its own account in a loop cannot take the hashing every other
	// user's login needs.
	DefaultHashPerIP = auth.Limit{Rate: 2, Period: time.Second, Burst: 6}
	// DefaultHashPerAccount: password hashes per email, 3 at once then 1 a second,
	// successes included: the same bound for one account signed in to from many places.
	DefaultHashPerAccount = auth.Limit{Rate: 1, Period: time.Second, Burst: 3}
	// DefaultRegisterPerIP: 5 registrations, then one every 6 minutes, per client IP.
	DefaultRegisterPerIP = auth.Limit{Rate: 10, Period: time.Hour, Burst: 5}
)

// Input limits, checked before any normalisation or hashing (so that oversized input
// costs nothing): an email is at most 254 bytes (RFC 5321's path limit), a password at
// most the policy's MaxLength characters (4 bytes each at most).
const (
	maxAddresses  = 20
	maxEmailBytes = 254
)

// Config holds the service's dependencies. DB, PII, Index, Hasher and Tokens are
// required; the rest have defaults.
type Config struct {
	DB     *store.DB
	PII    *pii.Keyring
	Index  *pii.BlindIndex
	Hasher *auth.Hasher
	Tokens *auth.Tokens
	Policy auth.PasswordPolicy // zero: auth.DefaultPasswordPolicy()

	RefreshTTL time.Duration // idle timeout of a session; zero: auth.DefaultRefreshTTL
	SessionTTL time.Duration // absolute session lifetime; zero: auth.DefaultSessionTTL

	// Throttles; nil takes an in-process limiter with the defaults above. In a fleet, pass
	// auth.WithFallback(redis limiter, local limiter, ...) so that limits hold across
	// instances.
	LoginPerIP        auth.Limiter
	LoginPerAccountIP auth.Limiter
	LoginPerAccount   auth.Limiter
	RegisterPerIP     auth.Limiter
	// HashBudget bounds password hashes per instance (nil: DefaultHashBudget in process;
	// it protects this instance's CPU, so it is never shared).
	HashBudget auth.Limiter
	// HashPerIP and HashPerAccount bound the hashes one client IP bucket and one email
	// may cause on this instance (nil: DefaultHashPerIP, DefaultHashPerAccount in
	// process), whether the password was right or not.
	HashPerIP      auth.Limiter
	HashPerAccount auth.Limiter

	// Revocations receives the sessions this service ends; nil: a database-backed set
	// (NewRevocations without Redis). The HTTP layer checks tokens against the same set.
	Revocations *Revocations

	Now    func() time.Time // default time.Now
	Logger *slog.Logger     // default slog.Default()
}

// Service implements the account use cases. It is safe for concurrent use.
type Service struct{ cfg Config }

// New checks cfg and fills in its defaults.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.PII == nil || cfg.Index == nil || cfg.Hasher == nil || cfg.Tokens == nil {
		return nil, errors.New("identity: DB, PII, Index, Hasher and Tokens are required")
	}
	if cfg.Policy == (auth.PasswordPolicy{}) {
		cfg.Policy = auth.DefaultPasswordPolicy()
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = auth.DefaultRefreshTTL
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = auth.DefaultSessionTTL
	}
	local := func(l auth.Limit) (auth.Limiter, error) { return auth.NewLocalLimiter(l, auth.LocalOptions{}) }
	var err error
	if cfg.LoginPerIP == nil {
		if cfg.LoginPerIP, err = local(DefaultLoginPerIP); err != nil {
			return nil, err
		}
	}
	if cfg.LoginPerAccount == nil {
		if cfg.LoginPerAccount, err = local(DefaultLoginPerAccount); err != nil {
			return nil, err
		}
	}
	if cfg.LoginPerAccountIP == nil {
		if cfg.LoginPerAccountIP, err = local(DefaultLoginPerAccountIP); err != nil {
			return nil, err
		}
	}
	if cfg.HashBudget == nil {
		if cfg.HashBudget, err = local(DefaultHashBudget); err != nil {
			return nil, err
		}
	}
	if cfg.HashPerIP == nil {
		if cfg.HashPerIP, err = local(DefaultHashPerIP); err != nil {
			return nil, err
		}
	}
	if cfg.HashPerAccount == nil {
		if cfg.HashPerAccount, err = local(DefaultHashPerAccount); err != nil {
			return nil, err
		}
	}
	if cfg.RegisterPerIP == nil {
		if cfg.RegisterPerIP, err = local(DefaultRegisterPerIP); err != nil {
			return nil, err
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Revocations == nil {
		cfg.Revocations = NewRevocations(RevocationConfig{DB: cfg.DB, AccessTTL: cfg.Tokens.TTL(), Logger: cfg.Logger})
	}
	return &Service{cfg: cfg}, nil
}

// Revocations is the set of sessions this service ended, for auth.Middleware.
func (s *Service) Revocations() *Revocations { return s.cfg.Revocations }

// Customer is a customer account, decrypted.
type Customer struct {
	ID        uuid.UUID
	Email     string
	Name      string
	Phone     *string
	Role      auth.Role
	CreatedAt time.Time

	// session is set on the customer of a Session (the caller just proved to be them),
	// for the resolvers' owner check on an unauthenticated login or register request.
	session bool
}

// OwnSession reports whether c came with a session started by this request (register,
// login, refresh, password change): the caller is c even before sending a token.
func (c *Customer) OwnSession() bool { return c.session }

// Session is what a sign-in, registration or refresh gives the client.
type Session struct {
	Customer              *Customer
	AccessToken           string
	AccessTokenExpiresAt  time.Time
	RefreshToken          string
	RefreshTokenExpiresAt time.Time
}

// RegisterInput is a new account.
type RegisterInput struct {
	Email    string
	Password string
	Name     string
	Phone    *string // optional
}

// Errors shown to clients. Login failures never say whether the email exists.
var (
	errBadCredentials = bookstore.Errorf(bookstore.CodeUnauthenticated, "invalid email or password")
	errSessionEnded   = bookstore.Errorf(bookstore.CodeUnauthenticated, "session expired or revoked; sign in again")
)

// Register creates an account and signs it in. ip is the client's address (for
// throttling). Invalid input is BAD_USER_INPUT on the offending field; an email that
// already has an account is CONFLICT on "email" — registration necessarily reveals that,
// which is why it is throttled per IP.
func (s *Service) Register(ctx context.Context, in RegisterInput, ip string) (*Session, error) {
	if err := s.throttle(ctx, s.cfg.RegisterPerIP, "ip:"+auth.IPBucket(ip)); err != nil {
		return nil, err
	}
	// Every invalid field is reported at once, so a form can mark them all.
	var errs []error
	email, err := validateEmail(in.Email)
	if err != nil {
		errs = append(errs, err)
	}
	name, err := validateText("name", in.Name, 1, 100)
	if err != nil {
		errs = append(errs, err)
	}
	var phone *string
	if in.Phone != nil && strings.TrimSpace(*in.Phone) != "" {
		p, err := validatePhone(*in.Phone)
		if err != nil {
			errs = append(errs, err)
		}
		phone = &p
	}
	password := in.Password
	if err := s.checkPasswordSize(password); err != nil {
		errs = append(errs, err)
	} else {
		password = auth.NormalizePassword(password)
		if err := s.cfg.Policy.Check(password, email, name); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := s.throttle(ctx, s.cfg.HashPerIP, "ip:"+auth.IPBucket(ip)); err != nil {
		return nil, err
	}
	if err := s.throttle(ctx, s.cfg.HashBudget, "all"); err != nil {
		return nil, err
	}
	hash, err := s.cfg.Hasher.Hash(ctx, password)
	if err != nil {
		return nil, hashError("register", err)
	}
	c := &store.Customer{ID: uuid.New(), EmailIndex: s.cfg.Index.Email(email), PasswordHash: hash, Role: string(auth.RoleCustomer)}
	if c.EmailEnc, err = s.encrypt(email, "customers", "email_enc", c.ID); err != nil {
		return nil, err
	}
	if c.NameEnc, err = s.encrypt(name, "customers", "name_enc", c.ID); err != nil {
		return nil, err
	}
	if phone != nil {
		if c.PhoneEnc, err = s.encrypt(*phone, "customers", "phone_enc", c.ID); err != nil {
			return nil, err
		}
	}
	if err := s.cfg.DB.Customers.Create(ctx, c); err != nil {
		return nil, err
	}
	s.cfg.Logger.InfoContext(ctx, "customer registered", "customer_id", c.ID)
	cust := &Customer{ID: c.ID, Email: email, Name: name, Phone: phone, Role: auth.RoleCustomer, CreatedAt: c.CreatedAt, session: true}
	return s.startSession(ctx, cust, hash)
}

// checkPasswordSize refuses a password longer than the policy admits before anything
// (normalisation, hashing) spends time on it.
func (s *Service) checkPasswordSize(password string) error {
	max := s.cfg.Policy.MaxLength
	if len(password) > 4*max || utf8.RuneCountInString(password) > max {
		return bookstore.InvalidField("password", "must be at most %d characters", max)
	}
	return nil
}

// hashError turns a saturated hasher into RATE_LIMITED ("retry in a second"): the
// attempt was not evaluated.
func hashError(op string, err error) error {
	if errors.Is(err, auth.ErrHasherBusy) {
		return &auth.ThrottledError{RetryAfter: time.Second}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Login checks an email and password and starts a session. Failures are throttled per IP
// and per email, hashes (successes too) per IP, per email and per instance; a throttled
// attempt is a *auth.ThrottledError (code RATE_LIMITED).
// Unknown email and wrong password give the same error and take the same time. ip must be
// the client's address as resolved by the HTTP layer (trusted proxies), never empty: all
// callers with the same ip share one throttle.
func (s *Service) Login(ctx context.Context, email, password, ip string) (*Session, error) {
	// Size first (free), then the IP throttle, and only then normalise and hash: an
	// anonymous request can make the server spend nothing on a huge email.
	if len(email) > maxEmailBytes {
		return nil, bookstore.InvalidField("email", "must be at most %d bytes", maxEmailBytes)
	}
	if err := s.checkPasswordSize(password); err != nil {
		return nil, err
	}
	bucket := "ip:" + auth.IPBucket(ip)
	if err := s.throttle(ctx, s.cfg.LoginPerIP, bucket); err != nil {
		return nil, err
	}
	idx := s.cfg.Index.Email(email)
	account := "email:" + hex.EncodeToString(idx)
	spent := []limiterKey{{s.cfg.LoginPerIP, bucket}}
	strict := limiterKey{s.cfg.LoginPerAccountIP, account + "|" + bucket}
	if err := s.throttle(ctx, strict.l, strict.key); err != nil {
		return nil, err // the IP token counts this attempt as a failure
	}
	spent = append(spent, strict)
	if err := s.throttle(ctx, s.cfg.LoginPerAccount, account); err != nil {
		// A distributed guess spent the email's loose limit: the owner's strict
		// (email, IP) budget must not drain while it lasts.
		s.refund(ctx, []limiterKey{strict})
		return nil, err
	}
	spent = append(spent, limiterKey{s.cfg.LoginPerAccount, account})
	// The hash bounds count successes too (never refunded, unlike the failure limits
	// above), and come before the shared budget and queue: a client signing in to its
	// own account in a loop takes its share of the hashing, not everyone's.
	for _, k := range []limiterKey{{s.cfg.HashPerIP, bucket}, {s.cfg.HashPerAccount, account}, {s.cfg.HashBudget, "all"}} {
		if err := s.throttle(ctx, k.l, k.key); err != nil {
			s.refund(ctx, spent) // the password was not checked: not a failure
			return nil, err
		}
	}
	sess, err := s.login(ctx, idx, auth.NormalizePassword(password))
	if err == nil || errors.Is(err, auth.ErrHasherBusy) {
		// Only failures count: a success, or an attempt never evaluated, gives back the
		// tokens it took, so the owner's logins never spend the budget an attacker
		// guessing at the same account must spend.
		s.refund(ctx, spent)
	}
	if err != nil {
		return nil, hashError("login", err)
	}
	return sess, nil
}

type limiterKey struct {
	l   auth.Limiter
	key string
}

func (s *Service) refund(ctx context.Context, keys []limiterKey) {
	for _, k := range keys {
		if err := auth.Refund(ctx, k.l, k.key); err != nil {
			s.cfg.Logger.WarnContext(ctx, "throttle refund failed", "err", err)
		}
	}
}

func (s *Service) login(ctx context.Context, idx []byte, password string) (*Session, error) {
	row, err := s.cfg.DB.Customers.ByEmailIndex(ctx, idx)
	if bookstore.ErrorCode(err) == bookstore.CodeNotFound {
		if err := s.cfg.Hasher.DummyVerify(ctx, password); err != nil {
			return nil, err // as for a known email
		}
		return nil, errBadCredentials
	}
	if err != nil {
		return nil, err
	}
	ok, rehash, err := s.cfg.Hasher.Verify(ctx, password, row.PasswordHash)
	if err != nil {
		return nil, fmt.Errorf("verify password of %s: %w", row.ID, err)
	}
	if !ok {
		s.cfg.Logger.InfoContext(ctx, "login failed: wrong password", "customer_id", row.ID)
		return nil, errBadCredentials
	}
	if rehash {
		// Parameters were raised since this hash was made: upgrade it while the password
		// is at hand, only if it is still the hash just verified (a password change made
		// meanwhile wins). A failure only delays the upgrade to the next login.
		if h, err := s.cfg.Hasher.Hash(ctx, password); err == nil {
			if ok, err := s.cfg.DB.Customers.ReplacePasswordHash(ctx, row.ID, row.PasswordHash, h); err != nil {
				s.cfg.Logger.WarnContext(ctx, "password rehash not stored", "customer_id", row.ID, "err", err)
			} else if ok {
				row.PasswordHash = h
			}
		}
	}
	cust, err := s.decryptCustomer(row)
	if err != nil {
		return nil, err
	}
	cust.session = true
	return s.startSession(ctx, cust, row.PasswordHash)
}

// Refresh spends a refresh token and returns a new session (new access and refresh
// tokens, same session id). A malformed, unknown, expired or revoked token is
// UNAUTHENTICATED; so is a token that was already used, which also revokes the session
// and is logged as a security event.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (*Session, error) {
	oldHash, err := auth.HashRefreshToken(refreshToken)
	if err != nil {
		return nil, errSessionEnded
	}
	token, newHash, err := auth.NewRefreshToken()
	if err != nil {
		return nil, err
	}
	next, err := s.cfg.DB.RefreshTokens.Rotate(ctx, oldHash, newHash, s.cfg.Now(), s.cfg.RefreshTTL)
	var reuse *store.ReuseError
	switch {
	case errors.As(err, &reuse):
		s.cfg.Logger.WarnContext(ctx, "refresh token reused: session revoked",
			"customer_id", reuse.CustomerID, "session_id", reuse.FamilyID)
		if err := s.cfg.Revocations.add(ctx, reuse.FamilyID); err != nil {
			return nil, err
		}
		return nil, errSessionEnded
	case errors.Is(err, store.ErrRefreshNotFound), errors.Is(err, store.ErrRefreshExpired), errors.Is(err, store.ErrRefreshRevoked):
		return nil, errSessionEnded
	case err != nil:
		return nil, fmt.Errorf("refresh: %w", err)
	}
	row, err := s.cfg.DB.Customers.ByID(ctx, next.CustomerID)
	if bookstore.ErrorCode(err) == bookstore.CodeNotFound {
		return nil, errSessionEnded
	}
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	cust, err := s.decryptCustomer(row)
	if err != nil {
		return nil, err
	}
	cust.session = true
	access, exp, err := s.cfg.Tokens.Issue(auth.Identity{CustomerID: cust.ID, Role: cust.Role, SessionID: next.FamilyID})
	if err != nil {
		return nil, err
	}
	return &Session{Customer: cust, AccessToken: access, AccessTokenExpiresAt: exp,
		RefreshToken: token, RefreshTokenExpiresAt: next.ExpiresAt}, nil
}

// Logout ends the session of a refresh token. It is idempotent and says nothing about
// the token: an unknown or malformed token is not an error. Access tokens of the session
// stop working at once (Revocations).
func (s *Service) Logout(ctx context.Context, refreshToken string) error {
	hash, err := auth.HashRefreshToken(refreshToken)
	if err != nil {
		return nil
	}
	t, err := s.cfg.DB.RefreshTokens.RevokeByHash(ctx, hash, s.cfg.Now())
	if errors.Is(err, store.ErrRefreshNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	if err := s.cfg.Revocations.add(ctx, t.FamilyID); err != nil {
		return err
	}
	s.cfg.Logger.InfoContext(ctx, "logged out", "customer_id", t.CustomerID, "session_id", t.FamilyID)
	return nil
}

// LogoutSession ends the session an access token belongs to (its sid claim), for a
// logout call that carries no refresh token.
func (s *Service) LogoutSession(ctx context.Context, id auth.Identity) error {
	if id.SessionID == uuid.Nil {
		return nil
	}
	if _, err := s.cfg.DB.RefreshTokens.RevokeFamily(ctx, id.SessionID, s.cfg.Now()); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return s.cfg.Revocations.add(ctx, id.SessionID)
}

// LogoutAll ends every session of a customer.
func (s *Service) LogoutAll(ctx context.Context, customerID uuid.UUID) error {
	fams, err := s.cfg.DB.RefreshTokens.RevokeCustomerSessions(ctx, customerID, s.cfg.Now())
	if err != nil {
		return fmt.Errorf("logout everywhere: %w", err)
	}
	return s.cfg.Revocations.add(ctx, fams...)
}

// Customer returns a customer's account (for "me"), or NOT_FOUND.
func (s *Service) Customer(ctx context.Context, id uuid.UUID) (*Customer, error) {
	row, err := s.cfg.DB.Customers.ByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.decryptCustomer(row)
}

// ChangePassword replaces a signed-in customer's password after checking the current
// one, ends every session (a changed password must lock out whoever else knew the old
// one) and starts a new session for the caller. Attempts count against the account's
// login throttle.
func (s *Service) ChangePassword(ctx context.Context, customerID uuid.UUID, current, next string) (*Session, error) {
	if len(current) > 4*s.cfg.Policy.MaxLength {
		return nil, bookstore.InvalidField("currentPassword", "is not your current password")
	}
	if err := s.checkPasswordSize(next); err != nil {
		return nil, bookstore.InvalidField("newPassword", "must be at most %d characters", s.cfg.Policy.MaxLength)
	}
	row, err := s.cfg.DB.Customers.ByID(ctx, customerID)
	if err != nil {
		return nil, err
	}
	cust, err := s.decryptCustomer(row)
	if err != nil {
		return nil, err
	}
	account := []limiterKey{{s.cfg.LoginPerAccount, "email:" + hex.EncodeToString(row.EmailIndex)}}
	if err := s.throttle(ctx, account[0].l, account[0].key); err != nil {
		return nil, err
	}
	if err := s.throttle(ctx, s.cfg.HashBudget, "all"); err != nil {
		s.refund(ctx, account)
		return nil, err
	}
	ok, _, err := s.cfg.Hasher.Verify(ctx, auth.NormalizePassword(current), row.PasswordHash)
	if err != nil {
		if errors.Is(err, auth.ErrHasherBusy) {
			s.refund(ctx, account)
		}
		return nil, hashError("change password", err)
	}
	if !ok {
		return nil, bookstore.InvalidField("currentPassword", "is not your current password")
	}
	s.refund(ctx, account)
	next = auth.NormalizePassword(next)
	if err := s.cfg.Policy.Check(next, cust.Email, cust.Name); err != nil {
		return nil, err
	}
	hash, err := s.cfg.Hasher.Hash(ctx, next)
	if err != nil {
		return nil, hashError("change password", err)
	}
	// One transaction: the new hash and the end of every old session commit together.
	fams, err := s.cfg.DB.Customers.ChangePassword(ctx, customerID, row.PasswordHash, hash, s.cfg.Now())
	if errors.Is(err, store.ErrPasswordChanged) {
		return nil, bookstore.Errorf(bookstore.CodeConflict, "the password was changed meanwhile; sign in again")
	}
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Revocations.add(ctx, fams...); err != nil {
		return nil, err
	}
	s.cfg.Logger.InfoContext(ctx, "password changed; sessions revoked", "customer_id", customerID)
	cust.session = true
	return s.startSession(ctx, cust, hash)
}

// startSession opens a refresh-token family and issues its first tokens, only while the
// customer's password hash is still hash (the one just verified or set): a password
// changed meanwhile revoked every session, and this one must not escape it, so the
// sign-in fails as with a wrong password.
func (s *Service) startSession(ctx context.Context, c *Customer, passwordHash string) (*Session, error) {
	token, hash, err := auth.NewRefreshToken()
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	rt := &store.RefreshToken{Hash: hash, FamilyID: uuid.New(), CustomerID: c.ID,
		ExpiresAt: now.Add(s.cfg.RefreshTTL), FamilyExpiresAt: now.Add(s.cfg.SessionTTL)}
	if err := s.cfg.DB.RefreshTokens.CreateSession(ctx, rt, passwordHash); errors.Is(err, store.ErrPasswordChanged) {
		return nil, errBadCredentials
	} else if err != nil {
		return nil, err
	}
	access, exp, err := s.cfg.Tokens.Issue(auth.Identity{CustomerID: c.ID, Role: c.Role, SessionID: rt.FamilyID})
	if err != nil {
		return nil, err
	}
	return &Session{Customer: c, AccessToken: access, AccessTokenExpiresAt: exp,
		RefreshToken: token, RefreshTokenExpiresAt: rt.ExpiresAt}, nil
}

func (s *Service) throttle(ctx context.Context, l auth.Limiter, key string) error {
	ok, retry, err := l.Allow(ctx, key)
	if err != nil {
		return fmt.Errorf("throttle: %w", err)
	}
	if !ok {
		return &auth.ThrottledError{RetryAfter: retry}
	}
	return nil
}

func (s *Service) encrypt(plain, table, column string, id uuid.UUID) ([]byte, error) {
	b, err := s.cfg.PII.Encrypt([]byte(plain), pii.AAD(table, column, id.String()))
	if err != nil {
		return nil, fmt.Errorf("encrypt %s.%s: %w", table, column, err)
	}
	return b, nil
}

func (s *Service) decrypt(blob []byte, table, column string, id uuid.UUID) (string, error) {
	b, err := s.cfg.PII.Decrypt(blob, pii.AAD(table, column, id.String()))
	if err != nil {
		return "", fmt.Errorf("decrypt %s.%s of %s: %w", table, column, id, err)
	}
	return string(b), nil
}

func (s *Service) decryptCustomer(row *store.Customer) (*Customer, error) {
	c := &Customer{ID: row.ID, Role: auth.Role(row.Role), CreatedAt: row.CreatedAt}
	var err error
	if c.Email, err = s.decrypt(row.EmailEnc, "customers", "email_enc", row.ID); err != nil {
		return nil, err
	}
	if c.Name, err = s.decrypt(row.NameEnc, "customers", "name_enc", row.ID); err != nil {
		return nil, err
	}
	if row.PhoneEnc != nil {
		p, err := s.decrypt(row.PhoneEnc, "customers", "phone_enc", row.ID)
		if err != nil {
			return nil, err
		}
		c.Phone = &p
	}
	return c, nil
}

// Address is a postal address in a customer's address book.
type Address struct {
	ID         uuid.UUID `json:"-"`
	Recipient  string    `json:"recipient"`
	Line1      string    `json:"line1"`
	Line2      string    `json:"line2,omitempty"`
	City       string    `json:"city"`
	Region     string    `json:"region,omitempty"`
	PostalCode string    `json:"postalCode,omitempty"`
	Country    string    `json:"country"` // ISO 3166-1 alpha-2, upper case
	CreatedAt  time.Time `json:"-"`
}

// AddAddress validates a and adds it to the customer's address book (at most 20).
func (s *Service) AddAddress(ctx context.Context, customerID uuid.UUID, a Address) (*Address, error) {
	if err := normalizeAddress(&a); err != nil {
		return nil, err
	}
	doc, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	row := &store.Address{ID: uuid.New(), CustomerID: customerID}
	if row.DataEnc, err = s.cfg.PII.Encrypt(doc, addressAAD(customerID, row.ID)); err != nil {
		return nil, fmt.Errorf("encrypt address: %w", err)
	}
	err = s.cfg.DB.Customers.AddAddressCapped(ctx, row, maxAddresses)
	if errors.Is(err, store.ErrAddressBookFull) {
		return nil, bookstore.Errorf(bookstore.CodeBadUserInput, "an address book holds at most %d addresses", maxAddresses)
	}
	if err != nil {
		return nil, err
	}
	a.ID, a.CreatedAt = row.ID, row.CreatedAt
	return &a, nil
}

// Addresses returns the customer's address book, oldest first.
func (s *Service) Addresses(ctx context.Context, customerID uuid.UUID) ([]*Address, error) {
	rows, err := s.cfg.DB.Customers.Addresses(ctx, customerID)
	if err != nil {
		return nil, err
	}
	out := make([]*Address, 0, len(rows))
	for _, row := range rows {
		doc, err := s.cfg.PII.Decrypt(row.DataEnc, addressAAD(row.CustomerID, row.ID))
		if err != nil {
			return nil, fmt.Errorf("decrypt address %s: %w", row.ID, err)
		}
		var a Address
		if err := json.Unmarshal(doc, &a); err != nil {
			return nil, fmt.Errorf("decode address %s: %w", row.ID, err)
		}
		a.ID, a.CreatedAt = row.ID, row.CreatedAt
		out = append(out, &a)
	}
	return out, nil
}

// DeleteAddress removes an address from the customer's book; another customer's address
// is NOT_FOUND.
func (s *Service) DeleteAddress(ctx context.Context, customerID, addressID uuid.UUID) error {
	return s.cfg.DB.Customers.DeleteAddress(ctx, customerID, addressID)
}

// addressAAD binds an address ciphertext to its row and its owner, so that it cannot be
// moved to another customer's book.
func addressAAD(customerID, id uuid.UUID) []byte {
	return pii.AAD("addresses", "data_enc", customerID.String()+"/"+id.String())
}

func normalizeAddress(a *Address) error {
	return normalizeAddressFields(&a.Recipient, &a.Line1, &a.Line2, &a.City, &a.Region, &a.PostalCode, &a.Country)
}

// NormalizeAddress validates a shipping address (an order's) by the address book's rules
// and normalises it in place; errors are BAD_USER_INPUT naming the AddressInput field.
// Phone, when present, must be a valid phone number.
func NormalizeAddress(a *bookstore.Address) error {
	if err := normalizeAddressFields(&a.Recipient, &a.Line1, &a.Line2, &a.City, &a.Region, &a.PostalCode, &a.Country); err != nil {
		return err
	}
	if a.Phone != "" {
		p, err := validatePhone(a.Phone)
		if err != nil {
			return err
		}
		a.Phone = p
	}
	return nil
}

// ValidateEmail returns the trimmed email, or BAD_USER_INPUT on "email": a bare
// addr-spec of at most 254 bytes with a dotted domain (the rule sign-up uses).
func ValidateEmail(s string) (string, error) { return validateEmail(s) }

func normalizeAddressFields(recipient, line1, line2, city, region, postalCode, country *string) error {
	var err error
	fields := []struct {
		name     string
		v        *string
		min, max int
	}{
		{"recipient", recipient, 1, 100}, {"line1", line1, 1, 200}, {"line2", line2, 0, 200},
		{"city", city, 1, 100}, {"region", region, 0, 100}, {"postalCode", postalCode, 0, 20},
	}
	for _, f := range fields {
		if *f.v, err = validateText(f.name, *f.v, f.min, f.max); err != nil {
			return err
		}
	}
	*country = strings.ToUpper(strings.TrimSpace(*country))
	if !isCountry(*country) {
		return bookstore.InvalidField("country", "must be an ISO 3166-1 alpha-2 code such as GB or US")
	}
	return nil
}

// validateEmail returns the trimmed address, or BAD_USER_INPUT on "email". It accepts a
// bare addr-spec (no display name) of at most 254 bytes with a dotted domain.
func validateEmail(s string) (string, error) {
	bad := bookstore.InvalidField("email", "must be a valid email address")
	if len(s) > maxEmailBytes { // the same answer as Login's
		return "", bookstore.InvalidField("email", "must be at most %d bytes", maxEmailBytes)
	}
	s = strings.TrimSpace(s)
	if s == "" || !utf8.ValidString(s) {
		return "", bad
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", bad
	}
	at := strings.LastIndexByte(s, '@')
	domain := s[at+1:]
	if at < 1 || at > 64 || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") ||
		strings.ContainsAny(s, " \t\"") {
		return "", bad
	}
	return s, nil
}

// validateText trims s and checks its length in characters, that it has no control
// characters and no payment card number (PCI: card numbers must never be stored).
func validateText(field, s string, min, max int) (string, error) {
	if len(s) > 4*max+256 { // more bytes than max characters and some space can take
		return "", bookstore.InvalidField(field, "must be at most %d characters", max)
	}
	s = strings.TrimSpace(s)
	n := utf8.RuneCountInString(s)
	switch {
	case !utf8.ValidString(s):
		return "", bookstore.InvalidField(field, "must be valid text")
	case n < min && min == 1:
		return "", bookstore.InvalidField(field, "is required")
	case n < min:
		return "", bookstore.InvalidField(field, "must be at least %d characters", min)
	case n > max:
		return "", bookstore.InvalidField(field, "must be at most %d characters", max)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", bookstore.InvalidField(field, "must not contain control characters")
		}
	}
	if pii.ContainsCardNumber(s) {
		return "", bookstore.InvalidField(field, "must not contain a payment card number")
	}
	return s, nil
}

// validatePhone accepts an international number (a leading "+" and a country code) that
// the country's numbering plan admits (pii.ParsePhone), kept as typed once NFKC turns
// no-break spaces into plain ones. Luhn alone does not
// make a phone a card (one mobile in ten passes it), but a card number typed with a
// leading "+" often parses as a phone ("+4929 1234 5678 9015" is a valid German number),
// so a phone whose digits are a 15- or 16-digit PAN (card network's first digit, valid
// Luhn) is refused as a card. That costs few real phones: 16 digits exceeds E.164's 15;
// of the 914 example numbers in the phone library's metadata (every region and number
// type) one has 15 digits (a German toll-free number), and of 24,115 random 15-digit
// strings the library accepts as valid, 9.9% are refused, so about 1 valid number in
// 10,000 is (measured once with a throwaway test over phonenumbers'
// GetExampleNumberForType and 2 million random "+" + 15 digits).
func validatePhone(s string) (string, error) {
	if _, ok := pii.ParsePhone(s); ok && !phoneLooksLikeCard(s) {
		return pii.NormalizePhone(s), nil
	}
	// Only a number typed without the "+" of a phone number gets the card message: with
	// one it was meant as a phone and is told the format.
	if len(s) <= 64 {
		if s = pii.NormalizePhone(s); !strings.HasPrefix(s, "+") && pii.LooksLikeCardNumber(s) {
			return "", bookstore.InvalidField("phone", "must not contain a payment card number")
		}
	}
	return "", bookstore.InvalidField("phone", "must be an international phone number such as +44 20 7946 0958")
}

// phoneLooksLikeCard reports whether a phone number's digits (without the "+") are the
// length of the common card numbers (15 Amex, 16 Visa/Mastercard/Discover) and a PAN.
func phoneLooksLikeCard(s string) bool {
	var digits []byte
	for _, r := range s {
		if r >= '0' && r <= '9' {
			digits = append(digits, byte(r))
		}
	}
	return (len(digits) == 15 || len(digits) == 16) && pii.LooksLikeCardNumber(string(digits))
}

// RewrapStats counts what RewrapAll did.
type RewrapStats struct {
	Customers int // customer rows re-wrapped
	Addresses int // address rows re-wrapped
}

// RewrapAll re-wraps every encrypted value under the active master key (after
// PII_MASTER_KEYS gained a new first key), without decrypting the data. It is resumable
// and safe to run while serving: a row changed meanwhile is left to its writer, who used
// the active key anyway. When it returns without error, no row needs the older master
// keys and they can be removed from the configuration.
func (s *Service) RewrapAll(ctx context.Context) (RewrapStats, error) {
	const batch = 500
	var st RewrapStats
	rewrap := func(b []byte) ([]byte, bool, error) {
		if b == nil {
			return nil, false, nil
		}
		return s.cfg.PII.Rewrap(b)
	}
	for after := uuid.Nil; ; {
		rows, err := s.cfg.DB.Customers.CustomersAfter(ctx, after, batch)
		if err != nil {
			return st, err
		}
		for _, c := range rows {
			after = c.ID
			u := *c
			var ch [3]bool
			if u.EmailEnc, ch[0], err = rewrap(c.EmailEnc); err == nil {
				if u.NameEnc, ch[1], err = rewrap(c.NameEnc); err == nil {
					u.PhoneEnc, ch[2], err = rewrap(c.PhoneEnc)
				}
			}
			if err != nil {
				return st, fmt.Errorf("rewrap customer %s: %w", c.ID, err)
			}
			if ch == [3]bool{} {
				continue
			}
			if ok, err := s.cfg.DB.Customers.ReplaceCiphertexts(ctx, c, &u); err != nil {
				return st, err
			} else if ok {
				st.Customers++
			}
		}
		if len(rows) < batch {
			break
		}
	}
	for after := uuid.Nil; ; {
		rows, err := s.cfg.DB.Customers.AddressesAfter(ctx, after, batch)
		if err != nil {
			return st, err
		}
		for _, a := range rows {
			after = a.ID
			b, changed, err := s.cfg.PII.Rewrap(a.DataEnc)
			if err != nil {
				return st, fmt.Errorf("rewrap address %s: %w", a.ID, err)
			}
			if !changed {
				continue
			}
			if ok, err := s.cfg.DB.Customers.ReplaceAddressCiphertext(ctx, a.ID, a.DataEnc, b); err != nil {
				return st, err
			} else if ok {
				st.Addresses++
			}
		}
		if len(rows) < batch {
			break
		}
	}
	return st, nil
}
