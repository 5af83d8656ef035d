// Package redis stores carts in Redis: one hash per cart (version, owner, lines, codes,
// timestamps) expiring at the cart's expiresAt, which every write pushes forward (a
// sliding TTL), plus a pointer from each customer to their current cart. Writes are a
// compare-and-set on the version in a Lua script, so concurrent writers never lose an
// update; every script touches one key, so it runs on Redis Cluster too.
package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	"github.com/shopfront/bookstore"
)

// Store is a cart.Store over Redis.
type Store struct {
	rdb    goredis.UniversalClient
	prefix string
}

// New returns a Store whose keys start with prefix (e.g. "cart:").
func New(rdb goredis.UniversalClient, prefix string) *Store {
	return &Store{rdb: rdb, prefix: prefix}
}

func (s *Store) key(id string) string { return s.prefix + "c:" + id }
func (s *Store) customerKey(id uuid.UUID) string {
	return s.prefix + "u:" + id.String()
}

func fields(c *bookstore.Cart) []any {
	lines, codes := c.Lines, c.DiscountCodes
	if lines == nil {
		lines = []bookstore.CartLine{}
	}
	if codes == nil {
		codes = []string{}
	}
	l, _ := json.Marshal(lines)
	d, _ := json.Marshal(codes)
	owner := ""
	if c.CustomerID != nil {
		owner = c.CustomerID.String()
	}
	return []any{"v", c.Version, "o", owner, "l", l, "d", d,
		"ca", c.CreatedAt.UnixMicro(), "ua", c.UpdatedAt.UnixMicro(), "ea", c.ExpiresAt.UnixMicro()}
}

func decode(id string, m map[string]string) (*bookstore.Cart, error) {
	if len(m) == 0 {
		return nil, bookstore.ErrCartNotFound
	}
	c := &bookstore.Cart{ID: id}
	var err error
	num := func(k string) int64 {
		n, e := strconv.ParseInt(m[k], 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("cart field %s: %w", k, e)
		}
		return n
	}
	c.Version = num("v")
	c.CreatedAt = time.UnixMicro(num("ca")).UTC()
	c.UpdatedAt = time.UnixMicro(num("ua")).UTC()
	c.ExpiresAt = time.UnixMicro(num("ea")).UTC()
	if o := m["o"]; o != "" {
		u, e := uuid.Parse(o)
		if e != nil {
			return nil, fmt.Errorf("cart owner: %w", e)
		}
		c.CustomerID = &u
	}
	if e := json.Unmarshal([]byte(m["l"]), &c.Lines); e != nil {
		return nil, fmt.Errorf("cart lines: %w", e)
	}
	if e := json.Unmarshal([]byte(m["d"]), &c.DiscountCodes); e != nil {
		return nil, fmt.Errorf("cart codes: %w", e)
	}
	return c, err
}

// Create stores a new cart (version 1).
func (s *Store) Create(ctx context.Context, c *bookstore.Cart) error {
	c.Version = 1
	k := s.key(c.ID)
	_, err := s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.HSet(ctx, k, fields(c)...)
		p.PExpireAt(ctx, k, c.ExpiresAt)
		if c.CustomerID != nil {
			p.Set(ctx, s.customerKey(*c.CustomerID), c.ID, time.Until(c.ExpiresAt))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create cart: %w", err)
	}
	return nil
}

// Get returns the cart, or bookstore.ErrCartNotFound.
func (s *Store) Get(ctx context.Context, id string) (*bookstore.Cart, error) {
	m, err := s.rdb.HGetAll(ctx, s.key(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("get cart: %w", err)
	}
	return decode(id, m)
}

// Current returns the customer's current cart, or bookstore.ErrCartNotFound.
func (s *Store) Current(ctx context.Context, customer uuid.UUID) (*bookstore.Cart, error) {
	id, err := s.rdb.Get(ctx, s.customerKey(customer)).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, bookstore.ErrCartNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("current cart: %w", err)
	}
	c, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.CustomerID == nil || *c.CustomerID != customer {
		return nil, bookstore.ErrCartNotFound // a stale pointer
	}
	return c, nil
}

// cas writes the cart's fields if its version is still ARGV[1]: 1 written, 0 another
// write came first, -1 the cart is gone.
var cas = goredis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return -1 end
if v ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
`)

// Update applies fn and writes the result with a compare-and-set on the version,
// re-reading and re-applying fn when another write came first.
func (s *Store) Update(ctx context.Context, id string, fn func(*bookstore.Cart) error) (*bookstore.Cart, error) {
	k := s.key(id)
	for attempt := 0; ; attempt++ {
		c, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		old := c.Version
		if err := fn(c); err != nil {
			return nil, err
		}
		c.Version = old + 1
		args := append([]any{old, c.ExpiresAt.UnixMilli()}, fields(c)...)
		n, err := cas.Run(ctx, s.rdb, []string{k}, args...).Int()
		if err != nil {
			return nil, fmt.Errorf("update cart: %w", err)
		}
		switch n {
		case 1:
			if c.CustomerID != nil {
				// The pointer's own key (another hash slot): refreshed after the write.
				if err := s.rdb.Set(ctx, s.customerKey(*c.CustomerID), c.ID, time.Until(c.ExpiresAt)).Err(); err != nil {
					return nil, fmt.Errorf("refresh current cart: %w", err)
				}
			}
			return c, nil
		case -1:
			return nil, bookstore.ErrCartNotFound
		}
		if err := backoff(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

// Take deletes the cart and returns it (MULTI: read and delete are one step).
func (s *Store) Take(ctx context.Context, id string) (*bookstore.Cart, error) {
	k := s.key(id)
	var get *goredis.MapStringStringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		get = p.HGetAll(ctx, k)
		p.Del(ctx, k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("take cart: %w", err)
	}
	return decode(id, get.Val())
}

func backoff(ctx context.Context, attempt int) error {
	if attempt >= 200 {
		return errors.New("cart update: too much contention")
	}
	t := time.NewTimer(time.Duration(1+rand.IntN(min(attempt+1, 20))) * 100 * time.Microsecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
