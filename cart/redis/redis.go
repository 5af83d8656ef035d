// Package redis stores carts in Redis: one hash per cart (version, owner, lines, codes,
// timestamps) expiring at the cart's expiresAt, which every write pushes forward (a
// sliding TTL), plus an index of each customer's carts by creation time (a sorted set):
// the current cart is the latest created live one, as in the database store. Writes are a
// compare-and-set on the version in a Lua script, so concurrent writers never lose an
// update; every script touches one key, so it runs on Redis Cluster too.
package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"syscall"
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

// maxIndexed bounds a customer's cart index: the newest carts are kept. An older cart
// stays readable by id; it just cannot become me.cart again, which needs every newer
// one of maxIndexed to have expired first.
const maxIndexed = 50

// extendTTL pushes a key's expiry out to ARGV[1] ms from now, never pulling it in: the
// index lives as long as its longest-lived cart.
var extendTTL = goredis.NewScript(`
local p = redis.call('PTTL', KEYS[1])
if p == -2 then return 0 end
if p < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
`)

// Create stores a new cart (version 1).
func (s *Store) Create(ctx context.Context, c *bookstore.Cart) error {
	c.Version = 1
	k := s.key(c.ID)
	_, err := s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.HSet(ctx, k, fields(c)...)
		p.PExpireAt(ctx, k, c.ExpiresAt)
		return nil
	})
	if err != nil {
		return failed("create cart", err)
	}
	if c.CustomerID != nil {
		// The index is its own key (another hash slot): written after the cart.
		ik := s.customerKey(*c.CustomerID)
		_, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			p.ZAdd(ctx, ik, goredis.Z{Score: float64(c.CreatedAt.UnixMicro()), Member: c.ID})
			p.ZRemRangeByRank(ctx, ik, 0, -maxIndexed-1)
			extendTTL.Eval(ctx, p, []string{ik}, max(time.Until(c.ExpiresAt).Milliseconds(), 1))
			return nil
		})
		if err != nil {
			return failed("index cart", err)
		}
	}
	return nil
}

// Get returns the cart, or bookstore.ErrCartNotFound.
func (s *Store) Get(ctx context.Context, id string) (*bookstore.Cart, error) {
	m, err := s.rdb.HGetAll(ctx, s.key(id)).Result()
	if err != nil {
		return nil, failed("get cart", err)
	}
	return decode(id, m)
}

// Current returns the customer's latest created live cart, or bookstore.ErrCartNotFound.
func (s *Store) Current(ctx context.Context, customer uuid.UUID) (*bookstore.Cart, error) {
	ik := s.customerKey(customer)
	ids, err := s.rdb.ZRevRange(ctx, ik, 0, -1).Result()
	if err != nil {
		return nil, failed("current cart", err)
	}
	for _, id := range ids {
		c, err := s.Get(ctx, id)
		if errors.Is(err, bookstore.ErrCartNotFound) {
			// Expired (or merged away): forget it. Removing only this member cannot
			// undo a concurrent Create.
			if err := s.rdb.ZRem(ctx, ik, id).Err(); err != nil {
				return nil, failed("current cart", err)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if c.CustomerID != nil && *c.CustomerID == customer {
			return c, nil
		}
	}
	return nil, bookstore.ErrCartNotFound
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
			return nil, failed("update cart", err)
		}
		switch n {
		case 1:
			if c.CustomerID != nil {
				// An update does not make a cart current (only creation does); the
				// index must just outlive the cart.
				if err := extendTTL.Run(ctx, s.rdb, []string{s.customerKey(*c.CustomerID)}, max(time.Until(c.ExpiresAt).Milliseconds(), 1)).Err(); err != nil {
					return nil, failed("refresh cart index", err)
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
		return nil, failed("take cart", err)
	}
	return decode(id, get.Val())
}

// errUnavailable is what a cart operation answers while Redis cannot be reached: the
// client may retry (UNAVAILABLE), rather than an INTERNAL error.
var errUnavailable = bookstore.Errorf(bookstore.CodeUnavailable, "carts are unavailable right now; retry shortly")

// failed wraps a Redis error; a connection failure (refused, reset, timed out, closed)
// also matches errUnavailable.
func failed(op string, err error) error {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, goredis.ErrClosed) || errors.Is(err, goredis.ErrPoolTimeout) {
		return errors.Join(errUnavailable, fmt.Errorf("%s: %w", op, err))
	}
	return fmt.Errorf("%s: %w", op, err)
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
