package identity_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/identity"
	"github.com/shopfront/bookstore/internal/testdb"
)

// A login with the old password racing a password change never gets a session that
// survives the change: startSession opens it only while the verified hash is current.
func TestLoginRacingPasswordChangeIsRevoked(t *testing.T) {
	db := testdb.New(t)
	// Two looping logins plus the change's two hashes must never find the hasher
	// saturated (on a 2-core machine the default is one slot and a queue of two): this
	// test is about revocation, not about shedding load.
	e := newEnv(t, db, func(c *identity.Config) {
		h, err := auth.NewHasherWith(auth.TestPasswordParams(), auth.HashLimits{Concurrent: 2, Queue: 16, Wait: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		c.Hasher = h
	})
	ctx := context.Background()
	for trial := 0; trial < 10; trial++ {
		in := ann()
		in.Email = fmt.Sprintf("race%d@example.com", trial)
		s := register(t, e, in)
		var stop atomic.Bool
		var mu sync.Mutex
		var got []*identity.Session
		var wg sync.WaitGroup
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					if as, err := e.svc.Login(ctx, in.Email, password, "203.0.113.9"); err == nil {
						mu.Lock()
						got = append(got, as)
						mu.Unlock()
					}
				}
			}()
		}
		// Race the change only once logins are succeeding (a loaded machine may take a
		// while to run the first), and keep logging in for a while after it.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
			mu.Lock()
			n := len(got)
			mu.Unlock()
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("trial %d: no login succeeded in 30 s", trial)
			}
		}
		if _, err := e.svc.ChangePassword(ctx, s.Customer.ID, password, "a completely new passphrase"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		stop.Store(true)
		wg.Wait()
		if len(got) == 0 {
			t.Fatalf("trial %d: no login succeeded before the change; the race was not run", trial)
		}
		for _, as := range got {
			revoked, err := db.RefreshTokens.FamilyRevoked(ctx, mustSession(t, e, as))
			if err != nil {
				t.Fatal(err)
			}
			if !revoked {
				if _, err := e.svc.Refresh(ctx, as.RefreshToken); err == nil {
					t.Fatalf("trial %d: a session opened with the old password survives the password change", trial)
				}
			}
		}
	}
}
