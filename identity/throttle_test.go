package identity_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/identity"
	"github.com/shopfront/bookstore/internal/testdb"
)

// TestThrottlesCountAnIPv6SubnetAsOneClient: an IPv6 client owns a /64 and could use a
// fresh address per attempt; the login and registration throttles count the /64.
func TestThrottlesCountAnIPv6SubnetAsOneClient(t *testing.T) {
	db := testdb.New(t)
	e := newEnv(t, db, func(c *identity.Config) {
		c.LoginPerIP, c.RegisterPerIP, c.LoginPerAccount = nil, nil, nil // the defaults
	})
	ctx := context.Background()
	throttled := 0
	for i := range 100 {
		_, err := e.svc.Login(ctx, fmt.Sprintf("guess%d@example.com", i), "wrong password here", fmt.Sprintf("2001:db8:9:9::%x", i+1))
		var te *auth.ThrottledError
		if errors.As(err, &te) {
			throttled++
		}
	}
	// The per-IP login budget is a burst of 20.
	if throttled != 100-int(identity.DefaultLoginPerIP.Burst) {
		t.Fatalf("%d of 100 logins from one /64 were throttled, want %d", throttled, 100-identity.DefaultLoginPerIP.Burst)
	}
	registered := 0
	for i := range 20 {
		in := ann()
		in.Email, in.Phone = fmt.Sprintf("sock%d@example.com", i), nil
		if _, err := e.svc.Register(ctx, in, fmt.Sprintf("2001:db8:7:7::%x", i+1)); err == nil {
			registered++
		}
	}
	if registered != int(identity.DefaultRegisterPerIP.Burst) {
		t.Fatalf("%d registrations from one /64 succeeded, want the burst of %d", registered, identity.DefaultRegisterPerIP.Burst)
	}
	// Another subnet has its own budget.
	in := ann()
	in.Email, in.Phone = "elsewhere@example.com", nil
	if _, err := e.svc.Register(ctx, in, "2001:db8:7:8::1"); err != nil {
		t.Fatalf("a registration from another /64 was refused: %v", err)
	}
}
