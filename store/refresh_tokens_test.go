package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const ttl = 14 * 24 * time.Hour

// newFamily signs a customer in: the first token of a new family.
func newFamily(t testing.TB, db *store.DB, customerID uuid.UUID) *store.RefreshToken {
	t.Helper()
	rt := &store.RefreshToken{Hash: randomBytes(t, 32), FamilyID: uuid.New(), CustomerID: customerID,
		ExpiresAt: t0.Add(ttl), FamilyExpiresAt: t0.Add(90 * 24 * time.Hour)}
	if err := db.RefreshTokens.Create(context.Background(), rt); err != nil {
		t.Fatalf("create refresh token: %v", err)
	}
	return rt
}

func family(t testing.TB, db *store.DB, id uuid.UUID) []*store.RefreshToken {
	t.Helper()
	f, err := db.RefreshTokens.Family(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRefreshRotation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := newCustomer(t, db)
		first := newFamily(t, db, c.ID)

		second, err := db.RefreshTokens.Rotate(ctx, first.Hash, randomBytes(t, 32), t0.Add(time.Hour), ttl)
		if err != nil {
			t.Fatal(err)
		}
		if second.FamilyID != first.FamilyID || second.CustomerID != c.ID || !second.ExpiresAt.Equal(t0.Add(time.Hour+ttl)) ||
			!second.FamilyExpiresAt.Equal(first.FamilyExpiresAt) {
			t.Fatalf("rotated token %+v", second)
		}
		old, _ := db.RefreshTokens.ByHash(ctx, first.Hash)
		if old.UsedAt == nil || !old.UsedAt.Equal(t0.Add(time.Hour)) || old.RevokedAt != nil {
			t.Fatalf("old token after rotation: %+v", old)
		}
		third, err := db.RefreshTokens.Rotate(ctx, second.Hash, randomBytes(t, 32), t0.Add(2*time.Hour), ttl)
		if err != nil {
			t.Fatal(err)
		}

		// Replaying a spent token revokes the whole family, including the live token.
		_, err = db.RefreshTokens.Rotate(ctx, first.Hash, randomBytes(t, 32), t0.Add(3*time.Hour), ttl)
		var reuse *store.ReuseError
		if !errors.Is(err, store.ErrRefreshReused) || !errors.As(err, &reuse) ||
			reuse.FamilyID != first.FamilyID || reuse.CustomerID != c.ID {
			t.Fatalf("replay: %v, want a ReuseError naming the family", err)
		}
		for _, rt := range family(t, db, first.FamilyID) {
			if rt.RevokedAt == nil {
				t.Fatalf("token %x of a reused family not revoked", rt.Hash[:4])
			}
		}
		if len(family(t, db, first.FamilyID)) != 3 {
			t.Fatal("the failed replay inserted a token")
		}
		_, err = db.RefreshTokens.Rotate(ctx, third.Hash, randomBytes(t, 32), t0.Add(4*time.Hour), ttl)
		if !errors.Is(err, store.ErrRefreshRevoked) {
			t.Fatalf("live token of a revoked family: %v, want ErrRefreshRevoked", err)
		}

		if _, err := db.RefreshTokens.Rotate(ctx, randomBytes(t, 32), randomBytes(t, 32), t0, ttl); !errors.Is(err, store.ErrRefreshNotFound) {
			t.Fatalf("unknown token: %v", err)
		}
	})
}

func TestRefreshExpiry(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := newCustomer(t, db)

		// Idle timeout: the token's own expiry.
		idle := newFamily(t, db, c.ID)
		if _, err := db.RefreshTokens.Rotate(ctx, idle.Hash, randomBytes(t, 32), idle.ExpiresAt, ttl); !errors.Is(err, store.ErrRefreshExpired) {
			t.Fatalf("at expiry: %v, want ErrRefreshExpired", err)
		}
		if rt, _ := db.RefreshTokens.ByHash(ctx, idle.Hash); rt.UsedAt != nil || rt.RevokedAt != nil {
			t.Fatalf("an expired rotation changed the token: %+v", rt)
		}

		// Absolute session end: a new token never outlives its family.
		short := &store.RefreshToken{Hash: randomBytes(t, 32), FamilyID: uuid.New(), CustomerID: c.ID,
			ExpiresAt: t0.Add(ttl), FamilyExpiresAt: t0.Add(24 * time.Hour)}
		if err := db.RefreshTokens.Create(ctx, short); err != nil {
			t.Fatal(err)
		}
		if !short.ExpiresAt.Equal(t0.Add(24 * time.Hour)) {
			t.Fatalf("first token expires %v, after its family", short.ExpiresAt)
		}
		next, err := db.RefreshTokens.Rotate(ctx, short.Hash, randomBytes(t, 32), t0.Add(23*time.Hour), ttl)
		if err != nil {
			t.Fatal(err)
		}
		if !next.ExpiresAt.Equal(t0.Add(24 * time.Hour)) {
			t.Fatalf("rotated token expires %v, after its family (%v)", next.ExpiresAt, next.FamilyExpiresAt)
		}
		if _, err := db.RefreshTokens.Rotate(ctx, next.Hash, randomBytes(t, 32), t0.Add(24*time.Hour), ttl); !errors.Is(err, store.ErrRefreshExpired) {
			t.Fatalf("after the session's end: %v", err)
		}
		// Reuse is detected even on an expired token.
		if _, err := db.RefreshTokens.Rotate(ctx, short.Hash, randomBytes(t, 32), t0.Add(30*24*time.Hour), ttl); !errors.Is(err, store.ErrRefreshReused) {
			t.Fatalf("replay of an expired spent token: %v, want ErrRefreshReused", err)
		}

		// Purge deletes only families that have ended.
		live := newFamily(t, db, c.ID)
		n, err := db.RefreshTokens.DeleteExpired(ctx, t0.Add(25*time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("DeleteExpired = %d, %v; want the 2 tokens of the ended family", n, err)
		}
		if _, err := db.RefreshTokens.ByHash(ctx, live.Hash); err != nil {
			t.Fatalf("live family purged: %v", err)
		}
	})
}

func TestRefreshRevocation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ann, bob := newCustomer(t, db), newCustomer(t, db)
		a1, a2, b1 := newFamily(t, db, ann.ID), newFamily(t, db, ann.ID), newFamily(t, db, bob.ID)

		// Logout with a refresh token revokes that session only.
		got, err := db.RefreshTokens.RevokeByHash(ctx, a1.Hash, t0)
		if err != nil || got.FamilyID != a1.FamilyID {
			t.Fatalf("RevokeByHash = %+v, %v", got, err)
		}
		if _, err := db.RefreshTokens.Rotate(ctx, a1.Hash, randomBytes(t, 32), t0, ttl); !errors.Is(err, store.ErrRefreshRevoked) {
			t.Fatalf("rotate after logout: %v", err)
		}
		if _, err := db.RefreshTokens.RevokeByHash(ctx, randomBytes(t, 32), t0); !errors.Is(err, store.ErrRefreshNotFound) {
			t.Fatalf("RevokeByHash of an unknown token: %v", err)
		}

		// RevokeFamily by id (logout from an access token's sid).
		if n, err := db.RefreshTokens.RevokeFamily(ctx, a2.FamilyID, t0); err != nil || n != 1 {
			t.Fatalf("RevokeFamily = %d, %v", n, err)
		}
		if n, _ := db.RefreshTokens.RevokeFamily(ctx, a2.FamilyID, t0); n != 0 {
			t.Fatalf("second RevokeFamily revoked %d", n)
		}

		// Logout everywhere touches one customer only.
		a3 := newFamily(t, db, ann.ID)
		if n, err := db.RefreshTokens.RevokeCustomer(ctx, ann.ID, t0); err != nil || n != 1 {
			t.Fatalf("RevokeCustomer = %d, %v; want 1 live token", n, err)
		}
		if _, err := db.RefreshTokens.Rotate(ctx, a3.Hash, randomBytes(t, 32), t0, ttl); !errors.Is(err, store.ErrRefreshRevoked) {
			t.Fatalf("rotate after logout everywhere: %v", err)
		}
		if _, err := db.RefreshTokens.Rotate(ctx, b1.Hash, randomBytes(t, 32), t0, ttl); err != nil {
			t.Fatalf("another customer's session was revoked: %v", err)
		}
	})
}

// TestRotateSameTokenConcurrently is the theft-detection race: many holders present the
// SAME refresh token at once. Exactly one rotation may succeed; every other one must see
// the token spent and revoke the family, so the winner's new token dies too.
func TestRotateSameTokenConcurrently(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := newCustomer(t, db)
		const rounds, racers = 5, 12
		for round := range rounds {
			first := newFamily(t, db, c.ID)
			var wg sync.WaitGroup
			start := make(chan struct{})
			results := make([]error, racers)
			winners := make([]*store.RefreshToken, racers)
			for i := range racers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					winners[i], results[i] = db.RefreshTokens.Rotate(ctx, first.Hash, randomBytes(t, 32), t0.Add(time.Minute), ttl)
				}()
			}
			close(start)
			wg.Wait()

			var ok int
			var winner *store.RefreshToken
			for i, err := range results {
				switch {
				case err == nil:
					ok++
					winner = winners[i]
				case errors.Is(err, store.ErrRefreshReused):
				default:
					t.Fatalf("round %d racer %d: unexpected error %v", round, i, err)
				}
			}
			if ok != 1 {
				t.Fatalf("round %d: %d of %d concurrent rotations of one token succeeded, want exactly 1", round, ok, racers)
			}
			f := family(t, db, first.FamilyID)
			if len(f) != 2 {
				t.Fatalf("round %d: family has %d tokens, want the original and the winner's", round, len(f))
			}
			for _, rt := range f {
				if rt.RevokedAt == nil {
					t.Fatalf("round %d: token %x survived the reuse", round, rt.Hash[:4])
				}
			}
			if _, err := db.RefreshTokens.Rotate(ctx, winner.Hash, randomBytes(t, 32), t0.Add(2*time.Minute), ttl); !errors.Is(err, store.ErrRefreshRevoked) {
				t.Fatalf("round %d: the winner's token still rotates: %v", round, err)
			}
		}
	})
}

// TestRotateChainsConcurrently rotates many families at once, each along its own chain:
// serialization conflicts between unrelated families must be retried, never reported as
// reuse, and every chain must end with exactly one live token.
func TestRotateChainsConcurrently(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		const families, steps = 8, 15
		firsts := make([]*store.RefreshToken, families)
		for i := range firsts {
			firsts[i] = newFamily(t, db, newCustomer(t, db).ID)
		}
		var wg sync.WaitGroup
		for i := range families {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cur := firsts[i].Hash
				for step := range steps {
					next, err := db.RefreshTokens.Rotate(ctx, cur, randomBytes(t, 32), t0.Add(time.Duration(step+1)*time.Second), ttl)
					if err != nil {
						t.Errorf("family %d step %d: %v", i, step, err)
						return
					}
					cur = next.Hash
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		for i, first := range firsts {
			f := family(t, db, first.FamilyID)
			if len(f) != steps+1 {
				t.Fatalf("family %d has %d tokens, want %d", i, len(f), steps+1)
			}
			live := 0
			for _, rt := range f {
				if rt.RevokedAt != nil {
					t.Fatalf("family %d: token revoked without reuse", i)
				}
				if rt.UsedAt == nil {
					live++
				}
				if rt.CustomerID != first.CustomerID {
					t.Fatalf("family %d: token of another customer", i)
				}
			}
			if live != 1 {
				t.Fatalf("family %d has %d unused tokens, want 1", i, live)
			}
		}
	})
}
