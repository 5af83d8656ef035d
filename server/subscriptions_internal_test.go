package server

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/auth"
)

// A signed-in stream ends when its access token expires, even if its session lives on
// and the periodic session check is far off.
func TestStreamEndsWhenItsAccessTokenExpires(t *testing.T) {
	kr, err := auth.DevKeyring()
	if err != nil {
		t.Fatal(err)
	}
	tokens := auth.NewTokens(kr, auth.TokenConfig{TTL: 2 * time.Second})
	tok, exp, err := tokens.Issue(auth.Identity{CustomerID: uuid.New(), Role: auth.RoleCustomer})
	if err != nil {
		t.Fatal(err)
	}
	s := &streams{opts: SubscriptionOptions{SessionCheck: time.Hour}.withDefaults(), tokens: tokens}
	ended := make(chan string, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go s.watchSession(ctx, tok, func(reason string) { ended <- reason })
	select {
	case reason := <-ended:
		if reason != "access token expired" {
			t.Fatalf("ended: %q", reason)
		}
		if time.Now().Before(exp) {
			t.Fatalf("ended before the token's expiry (%s)", exp)
		}
	case <-ctx.Done():
		t.Fatal("the stream outlived its access token")
	}
}
