package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/shopfront/bookstore"
)

// Limiter decides whether one more event for key (an IP, an account's blind index, a
// user id) may happen now. When it may not, retryAfter says when the next one will.
// Implementations are token buckets (GCRA in Redis): Rate events per Period on average,
// in bursts of up to Burst.
type Limiter interface {
	Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
}

// Limit is a token bucket: Burst events at once, refilled at Rate per Period.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// PerMinute allows n events a minute, all at once if need be.
func PerMinute(n int) Limit { return Limit{Rate: n, Period: time.Minute, Burst: n} }

// PerHour allows n events an hour, all at once if need be.
func PerHour(n int) Limit { return Limit{Rate: n, Period: time.Hour, Burst: n} }

func (l Limit) validate() error {
	if l.Rate <= 0 || l.Period <= 0 || l.Burst <= 0 {
		return fmt.Errorf("rate limit %+v: rate, period and burst must be positive", l)
	}
	return nil
}

// refill is how long an empty bucket takes to fill up again; a bucket untouched for
// that long is indistinguishable from a new one.
func (l Limit) refill() time.Duration {
	return time.Duration(float64(l.Period) / float64(l.Rate) * float64(l.Burst))
}

// LocalLimiter is an in-process Limiter (golang.org/x/time/rate buckets) for a single
// instance, tests and as a fallback. It keeps the most recently used MaxKeys buckets; an
// evicted key starts with a full bucket again, so MaxKeys must exceed the number of keys
// active within one refill period (10 buckets of 100k keys take ~20 MB).
type LocalLimiter struct {
	limit   Limit
	every   rate.Limit
	buckets *lru.Cache[string, *rate.Limiter]
	now     func() time.Time
	mu      sync.Mutex // makes get-or-create atomic
}

// LocalOptions tune a LocalLimiter.
type LocalOptions struct {
	MaxKeys int              // default 100,000
	Now     func() time.Time // default time.Now
}

// NewLocalLimiter returns an in-process limiter enforcing l per key.
func NewLocalLimiter(l Limit, opts LocalOptions) (*LocalLimiter, error) {
	if err := l.validate(); err != nil {
		return nil, err
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = 100_000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cache, err := lru.New[string, *rate.Limiter](opts.MaxKeys)
	if err != nil {
		return nil, err
	}
	return &LocalLimiter{limit: l, every: rate.Every(l.Period / time.Duration(l.Rate)), buckets: cache, now: opts.Now}, nil
}

// Allow implements Limiter. It never fails.
func (l *LocalLimiter) Allow(_ context.Context, key string) (bool, time.Duration, error) {
	b, ok := l.buckets.Get(key)
	if !ok {
		l.mu.Lock()
		if b, ok = l.buckets.Get(key); !ok {
			b = rate.NewLimiter(l.every, l.limit.Burst)
			l.buckets.Add(key, b)
		}
		l.mu.Unlock()
	}
	now := l.now()
	r := b.ReserveN(now, 1)
	if !r.OK() {
		return false, l.limit.refill(), nil
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now) // a refused event must not consume a token
		return false, d, nil
	}
	return true, 0, nil
}

// Refund gives back one event of key (a login that succeeded: only failures count).
// A bucket never holds more than Burst.
func (l *LocalLimiter) Refund(_ context.Context, key string) error {
	if b, ok := l.buckets.Get(key); ok {
		// A negative reservation adds a token; the next event caps the bucket at Burst.
		b.ReserveN(l.now(), -1)
	}
	return nil
}

// Refunder is a Limiter that can give an event back.
type Refunder interface {
	Refund(ctx context.Context, key string) error
}

// Refund gives back one event of key to l when l can (LocalLimiter, RedisLimiter and
// WithFallback's limiter can); it is a no-op for other limiters.
func Refund(ctx context.Context, l Limiter, key string) error {
	if r, ok := l.(Refunder); ok {
		return r.Refund(ctx, key)
	}
	return nil
}

// RedisLimiter is a Limiter shared by every instance through Redis (GCRA in a Lua script,
// github.com/go-redis/redis_rate). Each key is one Redis key "rate:<prefix>:<key>" that
// expires when its bucket is full again. Works with a single Redis and Redis Cluster.
type RedisLimiter struct {
	rl     *redis_rate.Limiter
	rdb    redis.UniversalClient
	limit  redis_rate.Limit
	prefix string
}

// NewRedisLimiter returns a limiter enforcing l per key in rdb; prefix separates limiters
// ("login-ip", "login-account", "api-ip").
func NewRedisLimiter(rdb redis.UniversalClient, prefix string, l Limit) (*RedisLimiter, error) {
	if err := l.validate(); err != nil {
		return nil, err
	}
	if prefix == "" {
		return nil, errors.New("redis limiter: empty prefix")
	}
	return &RedisLimiter{
		rl:     redis_rate.NewLimiter(rdb),
		rdb:    rdb,
		limit:  redis_rate.Limit{Rate: l.Rate, Period: l.Period, Burst: l.Burst},
		prefix: prefix + ":",
	}, nil
}

// Allow implements Limiter.
func (l *RedisLimiter) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	res, err := l.rl.Allow(ctx, l.prefix+key, l.limit)
	if err != nil {
		return false, 0, fmt.Errorf("redis rate limit: %w", err)
	}
	if res.Allowed > 0 {
		return true, 0, nil
	}
	return false, max(res.RetryAfter, time.Millisecond), nil
}

// Refund implements Refunder: it moves the bucket's theoretical arrival time back by one
// emission interval, deleting the key when that makes the bucket full. redis_rate has no
// refund, and its AllowN(-1) stores nothing when the new arrival time is not after now,
// so a refund of the one event of a full bucket was lost; hence this script, which reads
// and writes redis_rate's key and its format (arrival time in seconds since 2017).
func (l *RedisLimiter) Refund(ctx context.Context, key string) error {
	interval := l.limit.Period.Seconds() / float64(l.limit.Rate)
	if err := refundScript.Run(ctx, l.rdb, []string{"rate:" + l.prefix + key}, interval).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redis rate limit refund: %w", err)
	}
	return nil
}

var refundScript = redis.NewScript(`
local tat = tonumber(redis.call("GET", KEYS[1]))
if not tat then
  return 0
end
local t = redis.call("TIME")
local now = (t[1] - 1483228800) + (t[2] / 1000000)
local new_tat = tat - tonumber(ARGV[1])
if new_tat <= now then
  redis.call("DEL", KEYS[1])
else
  redis.call("SET", KEYS[1], new_tat, "EX", math.ceil(new_tat - now))
end
return 1
`)

// Reset forgets key's history (an administrator lifting a throttle).
func (l *RedisLimiter) Reset(ctx context.Context, key string) error {
	return l.rl.Reset(ctx, l.prefix+key)
}

// WithFallback returns a Limiter that asks primary (Redis) and, when primary fails (Redis
// down), answers from fallback (a LocalLimiter) instead of failing: limits then hold per
// instance rather than across the fleet, but logins and API calls keep working.
// onError, if not nil, is told of each primary failure (to log or count it).
func WithFallback(primary, fallback Limiter, onError func(error)) Limiter {
	return fallbackLimiter{primary, fallback, onError}
}

type fallbackLimiter struct {
	primary, fallback Limiter
	onError           func(error)
}

func (f fallbackLimiter) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	ok, retry, err := f.primary.Allow(ctx, key)
	if err == nil || ctx.Err() != nil {
		return ok, retry, err
	}
	if f.onError != nil {
		f.onError(err)
	}
	return f.fallback.Allow(ctx, key)
}

// Refund refunds both limiters: the event was counted by whichever answered.
func (f fallbackLimiter) Refund(ctx context.Context, key string) error {
	_ = Refund(ctx, f.fallback, key)
	return Refund(ctx, f.primary, key)
}

// CodeRateLimited is the error code of ThrottledError (extensions.code in GraphQL).
const CodeRateLimited = "RATE_LIMITED"

// ThrottledError says a limit was hit and when to retry. It unwraps to a *bookstore.Error
// with CodeRateLimited, so error presenters show it like any client error; transports can
// turn RetryAfter into a Retry-After header.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string { return e.clientError().Error() }

// Unwrap exposes the client-facing *bookstore.Error.
func (e *ThrottledError) Unwrap() error { return e.clientError() }

func (e *ThrottledError) clientError() *bookstore.Error {
	secs := int((e.RetryAfter + time.Second - 1) / time.Second)
	return bookstore.Errorf(CodeRateLimited, "too many attempts; retry in %d seconds", max(secs, 1))
}
