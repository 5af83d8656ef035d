package identity_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/identity"
	"github.com/shopfront/bookstore/internal/testdb"
)

// With Redis, a revoked session's key outlives the access TTL by the verification leeway:
// a logged-out token is still refused after AccessTTL, while it still verifies.
func TestRevokedTokenStaysRevokedThroughTheLeeway(t *testing.T) {
	db := testdb.New(t)
	rdb := testdb.Redis(t)
	const ttl = 2 * time.Second
	var rev *identity.Revocations
	e := newEnv(t, db, func(c *identity.Config) {
		sk, _ := auth.GenerateSigningKey("k9")
		keys, _ := auth.NewKeyring(sk)
		c.Tokens = auth.NewTokens(keys, auth.TokenConfig{TTL: ttl})
		c.Now = time.Now
		rev = identity.NewRevocations(identity.RevocationConfig{DB: db, Redis: rdb, AccessTTL: ttl, CacheTTL: time.Millisecond})
		c.Revocations = rev
	})
	ctx := context.Background()
	s := register(t, e, ann())
	if err := e.svc.Logout(ctx, s.RefreshToken); err != nil {
		t.Fatal(err)
	}
	sid := mustSession(t, e, s)
	if left := rdb.TTL(ctx, "bookstore:revoked-session:"+sid.String()).Val(); left < ttl+auth.DefaultLeeway {
		t.Fatalf("revocation key lives %s; tokens verify for %s", left, ttl+auth.DefaultLeeway)
	}
	authed := func() bool {
		var ok bool
		h := auth.Middleware(e.tokens, rev)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, ok = auth.FromContext(r.Context())
		}))
		req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		req.Header.Set("Authorization", "Bearer "+s.AccessToken)
		h.ServeHTTP(httptest.NewRecorder(), req)
		return ok
	}
	if authed() {
		t.Fatal("accepted right after logout")
	}
	time.Sleep(ttl + 1500*time.Millisecond)
	if _, err := e.tokens.Verify(s.AccessToken); err != nil {
		t.Fatalf("the token should still verify within the leeway: %v", err)
	}
	if authed() {
		t.Fatal("a logged-out access token authenticates again past AccessTTL, within the leeway")
	}
}

// A logout whose Redis write fails is still seen by other instances, whose Redis answers
// "not revoked": they consult the database too.
func TestRevocationSurvivesARedisWriteFailure(t *testing.T) {
	db := testdb.New(t)
	good := testdb.Redis(t)
	bad := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = bad.Close() })
	e := newEnv(t, db, func(c *identity.Config) {
		c.Revocations = identity.NewRevocations(identity.RevocationConfig{DB: db, Redis: bad, AccessTTL: time.Minute})
	})
	other := identity.NewRevocations(identity.RevocationConfig{DB: db, Redis: good, AccessTTL: time.Minute})
	ctx := context.Background()
	s := register(t, e, ann())
	id, err := e.tokens.Verify(s.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if revoked, err := other.Revoked(ctx, id); err != nil || revoked {
		t.Fatalf("live session: revoked=%v err=%v", revoked, err)
	}
	err = e.svc.Logout(ctx, s.RefreshToken)
	t.Logf("logout during the Redis outage: %v", err)
	if fam, _ := db.RefreshTokens.FamilyRevoked(ctx, mustSession(t, e, s)); !fam {
		t.Fatal("not revoked in the database")
	}
	// The other instance cached "live" a moment ago; within CacheTTL it asks again.
	deadline := time.Now().Add(identity.DefaultRevocationCacheTTL + 2*time.Second)
	for {
		revoked, err := other.Revoked(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if revoked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("another instance (Redis up) accepts the logged-out token; the database says revoked")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Without Redis, the purge keeps a revoked session's rows while its last access token
// (which outlives the session by up to the access TTL) still verifies.
func TestPurgeKeepsRevokedSessionsWhileTheirTokensVerify(t *testing.T) {
	db := testdb.New(t)
	e := newEnv(t, db, func(c *identity.Config) { c.SessionTTL = time.Minute })
	ctx := context.Background()
	s := register(t, e, ann())
	if err := e.svc.Logout(ctx, s.RefreshToken); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(61 * time.Second) // session over; access token (15 min) still valid
	if n, err := db.RefreshTokens.DeleteExpired(ctx, e.clock.Now().Add(-identity.SessionPurgeDelay)); err != nil || n != 0 {
		t.Fatalf("purge deleted %d rows (%v) of a session whose token still verifies", n, err)
	}
	fresh := identity.NewRevocations(identity.RevocationConfig{DB: db}) // another instance
	id, err := e.tokens.Verify(s.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if revoked, _ := fresh.Revoked(ctx, id); !revoked {
		t.Fatal("a logged-out access token is live again after the purge")
	}
	// Once no token of it can verify, the session goes.
	e.clock.Add(identity.SessionPurgeDelay)
	if n, err := db.RefreshTokens.DeleteExpired(ctx, e.clock.Now().Add(-identity.SessionPurgeDelay)); err != nil || n == 0 {
		t.Fatalf("purge after the delay: %d, %v", n, err)
	}
	if identity.SessionPurgeDelay < identity.MaxAccessTTL+auth.DefaultLeeway {
		t.Fatalf("SessionPurgeDelay %s is shorter than a token can verify", identity.SessionPurgeDelay)
	}
}
