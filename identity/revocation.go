package identity

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/redis/go-redis/v9"

	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/store"
)

// Revocations is the set of sessions ended before their access tokens expire (logout,
// refresh-token reuse, password change, role change). The HTTP layer asks it about every
// authenticated request (auth.SessionChecker), so an ended session's access token stops
// working at once rather than when it expires.
//
// The database (refresh_tokens.revoked_at) is the set; each instance caches its answers
// for CacheTTL, so another instance's logout takes effect within that time, this
// instance's at once. With Redis, a revoked session is also a key that lives as long as
// an access token still verifies (AccessTTL + Leeway, plus a margin): each check is one
// EXISTS, shared by every instance, so a logout takes effect everywhere at once. A "no"
// from Redis is not trusted alone: a logout whose Redis write failed is only in the
// database, so the (cached) database answer is consulted too, and the revocation takes
// effect everywhere within CacheTTL instead of never. That costs one cache lookup per
// request and one database query per session and CacheTTL (BenchmarkRevoked).
type Revocations struct {
	db    *store.DB
	rdb   redis.UniversalClient
	ttl   time.Duration
	cache *expirable.LRU[uuid.UUID, bool]
	log   *slog.Logger
}

// RevocationConfig configures NewRevocations.
type RevocationConfig struct {
	DB        *store.DB             // required
	Redis     redis.UniversalClient // optional
	AccessTTL time.Duration         // lifetime of access tokens; 0 means auth.DefaultAccessTTL
	Leeway    time.Duration         // verification leeway of access tokens; 0 means auth.DefaultLeeway
	CacheTTL  time.Duration         // database answers cached this long; 0 means 2 s
	Logger    *slog.Logger
}

// DefaultRevocationCacheTTL is how long an instance without Redis believes a session
// live before asking the database again.
const DefaultRevocationCacheTTL = 2 * time.Second

// MaxAccessTTL caps the access-token lifetime a deployment may configure: revocations
// must be remembered that long after a session ends (SessionPurgeDelay).
const MaxAccessTTL = time.Hour

// SessionPurgeDelay is how long after a session ends its rows are kept. Its last access
// token outlives it by up to the access TTL plus the verification leeway, and without
// Redis the rows' revoked_at is all that refuses a logged-out token: purged earlier, the
// token would work again. The purge deletes sessions that ended before now minus this.
const SessionPurgeDelay = MaxAccessTTL + auth.DefaultLeeway + revocationMargin

// revocationMargin keeps a Redis key a little longer than the last token it refuses
// could verify, for the clock skew between the servers and Redis.
const revocationMargin = time.Minute

// NewRevocations returns the revocation set.
func NewRevocations(cfg RevocationConfig) *Revocations {
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultRevocationCacheTTL
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = auth.DefaultAccessTTL
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = auth.DefaultLeeway
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Revocations{db: cfg.DB, rdb: cfg.Redis, ttl: cfg.AccessTTL + cfg.Leeway + revocationMargin,
		cache: expirable.NewLRU[uuid.UUID, bool](100_000, nil, cfg.CacheTTL), log: cfg.Logger}
}

var _ auth.SessionChecker = (*Revocations)(nil)

func revokedKey(sid uuid.UUID) string { return "bookstore:revoked-session:" + sid.String() }

// Revoked implements auth.SessionChecker. Every token the service issues names its
// session; one without a session id (made by tests or tools holding the signing key) has
// nothing to revoke and is not refused here.
func (r *Revocations) Revoked(ctx context.Context, id auth.Identity) (bool, error) {
	if id.SessionID == uuid.Nil {
		return false, nil
	}
	if revoked, ok := r.cache.Get(id.SessionID); ok && revoked {
		return true, nil
	}
	if r.rdb != nil {
		n, err := r.rdb.Exists(ctx, revokedKey(id.SessionID)).Result()
		switch {
		case err != nil:
			r.log.WarnContext(ctx, "revocation set in redis unavailable; asking the database", "err", err)
		case n > 0:
			r.cache.Add(id.SessionID, true)
			return true, nil
		}
	}
	if revoked, ok := r.cache.Get(id.SessionID); ok {
		return revoked, nil
	}
	revoked, err := r.db.RefreshTokens.FamilyRevoked(ctx, id.SessionID)
	if err != nil {
		return false, err
	}
	r.cache.Add(id.SessionID, revoked)
	return revoked, nil
}

// add records sessions as revoked (after the database revoked their refresh tokens).
func (r *Revocations) add(ctx context.Context, sids ...uuid.UUID) error {
	for _, sid := range sids {
		r.cache.Add(sid, true)
	}
	if r.rdb == nil || len(sids) == 0 {
		return nil
	}
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, sid := range sids {
			p.Set(ctx, revokedKey(sid), 1, r.ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record revoked sessions: %w", err)
	}
	return nil
}
