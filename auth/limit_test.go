package auth_test

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
	"github.com/redis/go-redis/v9"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/internal/testdb"
)

func TestLocalLimiter(t *testing.T) {
	ctx := context.Background()
	c := &clock{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	l, err := auth.NewLocalLimiter(auth.Limit{Rate: 6, Period: time.Minute, Burst: 3}, auth.LocalOptions{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if ok, _, err := l.Allow(ctx, "ip:1"); !ok || err != nil {
			t.Fatalf("attempt %d refused within the burst", i+1)
		}
	}
	ok, retry, err := l.Allow(ctx, "ip:1")
	if ok || err != nil || retry <= 0 || retry > 10*time.Second {
		t.Fatalf("4th attempt: ok %v, retry %v, %v; want refused with retry <= 10s", ok, retry, err)
	}
	// Refused attempts do not consume: after one emission interval exactly one more passes.
	for range 5 {
		_, _, _ = l.Allow(ctx, "ip:1")
	}
	if ok, _, _ := l.Allow(ctx, "ip:2"); !ok {
		t.Fatal("another key is throttled too")
	}
	c.t = c.t.Add(10 * time.Second)
	if ok, _, _ := l.Allow(ctx, "ip:1"); !ok {
		t.Fatal("refused after the retry interval")
	}
	if ok, _, _ := l.Allow(ctx, "ip:1"); ok {
		t.Fatal("two attempts passed after one interval")
	}
	c.t = c.t.Add(time.Hour)
	for i := range 3 {
		if ok, _, _ := l.Allow(ctx, "ip:1"); !ok {
			t.Fatalf("bucket not refilled after an hour (attempt %d)", i+1)
		}
	}
}

func TestLocalLimiterConcurrent(t *testing.T) {
	l, err := auth.NewLocalLimiter(auth.Limit{Rate: 1, Period: time.Hour, Burst: 10}, auth.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if ok, _, _ := l.Allow(context.Background(), "k"); ok {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 10 {
		t.Fatalf("%d of 500 concurrent attempts allowed, want exactly the burst of 10", allowed.Load())
	}
}

func TestLocalLimiterEvictsOldestKeys(t *testing.T) {
	l, _ := auth.NewLocalLimiter(auth.Limit{Rate: 1, Period: time.Hour, Burst: 1}, auth.LocalOptions{MaxKeys: 2})
	ctx := context.Background()
	l.Allow(ctx, "a")
	l.Allow(ctx, "b")
	if ok, _, _ := l.Allow(ctx, "b"); ok {
		t.Fatal("b not throttled")
	}
	l.Allow(ctx, "c") // evicts a, the least recently used
	if ok, _, _ := l.Allow(ctx, "b"); ok {
		t.Fatal("b was evicted instead of a")
	}
}

func TestLimitValidation(t *testing.T) {
	for _, l := range []auth.Limit{{}, {Rate: 1, Period: time.Second}, {Rate: 1, Burst: 1}, {Period: time.Second, Burst: 1}} {
		if _, err := auth.NewLocalLimiter(l, auth.LocalOptions{}); err == nil {
			t.Errorf("limit %+v accepted", l)
		}
	}
}

type failing struct{ calls atomic.Int64 }

func (f *failing) Allow(context.Context, string) (bool, time.Duration, error) {
	f.calls.Add(1)
	return false, 0, errors.New("redis: connection refused")
}

func TestWithFallback(t *testing.T) {
	local, _ := auth.NewLocalLimiter(auth.Limit{Rate: 1, Period: time.Hour, Burst: 1}, auth.LocalOptions{})
	primary := &failing{}
	var reported atomic.Int64
	l := auth.WithFallback(primary, local, func(error) { reported.Add(1) })
	if ok, _, err := l.Allow(context.Background(), "k"); !ok || err != nil {
		t.Fatalf("first: %v, %v", ok, err)
	}
	if ok, _, err := l.Allow(context.Background(), "k"); ok || err != nil {
		t.Fatalf("second: %v, %v; want refused by the local fallback", ok, err)
	}
	if primary.calls.Load() != 2 || reported.Load() != 2 {
		t.Fatalf("primary called %d times, %d errors reported", primary.calls.Load(), reported.Load())
	}
}

func TestThrottledError(t *testing.T) {
	err := fmt.Errorf("login: %w", &auth.ThrottledError{RetryAfter: 1500 * time.Millisecond})
	if bookstore.ErrorCode(err) != auth.CodeRateLimited {
		t.Fatalf("code = %q", bookstore.ErrorCode(err))
	}
	if msg := bookstore.ErrorMessage(err); !strings.Contains(msg, "2 seconds") {
		t.Fatalf("message = %q", msg)
	}
	var te *auth.ThrottledError
	if !errors.As(err, &te) || te.RetryAfter != 1500*time.Millisecond {
		t.Fatal("ThrottledError not found in the chain")
	}
}

func TestRedisLimiter(t *testing.T) {
	rdb := testdb.Redis(t)
	ctx := context.Background()
	prefix := "test-" + uuid.NewString() // isolates parallel test runs sharing a Redis
	limit := auth.Limit{Rate: 3, Period: time.Minute, Burst: 3}
	a, err := auth.NewRedisLimiter(rdb, prefix, limit)
	if err != nil {
		t.Fatal(err)
	}
	// A second limiter on the same prefix is another instance of the service: they share
	// the buckets.
	b, _ := auth.NewRedisLimiter(rdb, prefix, limit)
	for i, l := range []*auth.RedisLimiter{a, b, a} {
		if ok, _, err := l.Allow(ctx, "ip:1"); !ok || err != nil {
			t.Fatalf("attempt %d: %v, %v", i+1, ok, err)
		}
	}
	ok, retry, err := b.Allow(ctx, "ip:1")
	if ok || err != nil || retry <= 0 || retry > 21*time.Second {
		t.Fatalf("4th attempt across instances: ok %v, retry %v, %v; want refused, retry <= 20s", ok, retry, err)
	}
	if ok, _, _ := a.Allow(ctx, "ip:2"); !ok {
		t.Fatal("another key is throttled")
	}
	other, _ := auth.NewRedisLimiter(rdb, prefix+"-other", limit)
	if ok, _, _ := other.Allow(ctx, "ip:1"); !ok {
		t.Fatal("another prefix shares the bucket")
	}
	if err := a.Reset(ctx, "ip:1"); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := a.Allow(ctx, "ip:1"); !ok {
		t.Fatal("refused after Reset")
	}
	// The key expires on its own once the bucket is full again.
	ttl, err := rdb.TTL(ctx, "rate:"+prefix+":ip:2").Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL of a bucket key = %v, %v", ttl, err)
	}
}

func TestRedisLimiterConcurrent(t *testing.T) {
	rdb := testdb.Redis(t)
	l, err := auth.NewRedisLimiter(rdb, "test-"+uuid.NewString(), auth.Limit{Rate: 1, Period: time.Hour, Burst: 10})
	if err != nil {
		t.Fatal(err)
	}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				ok, _, err := l.Allow(context.Background(), "k")
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 10 {
		t.Fatalf("%d of 100 concurrent attempts allowed, want exactly the burst of 10", allowed.Load())
	}
}

func TestRedisLimiterDownFallsBack(t *testing.T) {
	// A client pointed at a closed port: the Redis limiter fails, the fallback answers.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer rdb.Close()
	primary, _ := auth.NewRedisLimiter(rdb, "x", auth.PerMinute(1))
	if _, _, err := primary.Allow(context.Background(), "k"); err == nil {
		t.Fatal("Allow against a dead Redis succeeded")
	}
	local, _ := auth.NewLocalLimiter(auth.PerMinute(1), auth.LocalOptions{})
	l := auth.WithFallback(primary, local, nil)
	if ok, _, err := l.Allow(context.Background(), "k"); !ok || err != nil {
		t.Fatalf("fallback: %v, %v", ok, err)
	}
}

// A refund gives one event back, never more than the burst: only failures count.
func TestRefund(t *testing.T) {
	ctx := context.Background()
	local, err := auth.NewLocalLimiter(auth.Limit{Rate: 1, Period: time.Hour, Burst: 2}, auth.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	remote, err := auth.NewRedisLimiter(testdb.Redis(t), "refund-test-"+t.Name(), auth.Limit{Rate: 1, Period: time.Hour, Burst: 2})
	if err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]auth.Limiter{"local": local, "redis": remote} {
		t.Run(name, func(t *testing.T) {
			allow := func() bool {
				ok, _, err := l.Allow(ctx, "k")
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}
			// Refunds on a full bucket do not raise it past the burst.
			for range 5 {
				if err := auth.Refund(ctx, l, "k"); err != nil {
					t.Fatal(err)
				}
			}
			if !allow() || !allow() || allow() {
				t.Fatal("burst of 2 not enforced after refunds on a full bucket")
			}
			if err := auth.Refund(ctx, l, "k"); err != nil {
				t.Fatal(err)
			}
			if !allow() || allow() {
				t.Fatal("a refund did not give back exactly one event")
			}
		})
	}
}

// A refund of the one event taken from a full bucket gives it back on both limiters (GCRA
// in redis_rate stores nothing for a negative cost that reaches now).
func TestRefundFromFullBucket(t *testing.T) {
	ctx := context.Background()
	l := auth.Limit{Rate: 1, Period: time.Hour, Burst: 2}
	local, _ := auth.NewLocalLimiter(l, auth.LocalOptions{})
	remote, _ := auth.NewRedisLimiter(testdb.Redis(t), "refund-full", l)
	for name, lim := range map[string]auth.Limiter{"local": local, "redis": remote} {
		ok1, _, _ := lim.Allow(ctx, "k")                   // a success...
		if err := auth.Refund(ctx, lim, "k"); err != nil { // ...gives its token back
			t.Fatal(err)
		}
		ok2, _, _ := lim.Allow(ctx, "k")
		ok3, _, _ := lim.Allow(ctx, "k") // two failures fit a burst of 2
		ok4, _, _ := lim.Allow(ctx, "k") // a third does not
		if !ok1 || !ok2 || !ok3 || ok4 {
			t.Errorf("%s: allow %v, then after a refund %v %v %v; want true, true true false", name, ok1, ok2, ok3, ok4)
		}
		// Refunds never lift a bucket above its burst.
		for range 5 {
			_ = auth.Refund(ctx, lim, "k2")
		}
		n := 0
		for range 5 {
			if ok, _, _ := lim.Allow(ctx, "k2"); ok {
				n++
			}
		}
		if n != 2 {
			t.Errorf("%s: %d events allowed after refunds to a fresh bucket; want the burst, 2", name, n)
		}
	}
}
