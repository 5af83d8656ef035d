package identity_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/identity"
	"github.com/shopfront/bookstore/internal/testdb"
)

// BenchmarkRevoked measures the revocation check every authenticated request makes:
// the database set (cached, and uncached: a new session each time) and the Redis set.
func BenchmarkRevoked(b *testing.B) {
	db := testdb.New(b)
	ctx := context.Background()
	for _, bc := range []struct {
		name  string
		redis bool
		fresh bool
	}{{"db-cached", false, false}, {"db-uncached", false, true}, {"redis", true, false}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := identity.RevocationConfig{DB: db, AccessTTL: time.Minute}
			if bc.redis {
				cfg.Redis = testdb.Redis(b)
			}
			r := identity.NewRevocations(cfg)
			id := auth.Identity{CustomerID: uuid.New(), SessionID: uuid.New()}
			for b.Loop() {
				if bc.fresh {
					id.SessionID = uuid.New()
				}
				if _, err := r.Revoked(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
