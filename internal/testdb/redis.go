package testdb

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Redis connects to the Redis that the test command started (EnvRedis), closed when the
// test ends. Under CI a missing Redis fails the test; a plain `go test` outside the test
// command skips it.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	url := os.Getenv(EnvRedis)
	if url == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: run the tests with `make test` (it starts Redis)", EnvRedis)
		}
		t.Skipf("%s not set: run the tests with `make test` (it starts Redis)", EnvRedis)
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvRedis, err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping Redis: %v", err)
	}
	return rdb
}
